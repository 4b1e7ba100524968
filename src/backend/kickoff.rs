//! Kickoff assembly: a loop agent gets the kickoff template (slots filled from the current
//! phase) followed by `<roles_dir>/<role>.md`; other agents get `prompt_file` or `prompt`.
use std::path::Path;

use crate::config::{Agent, Config, Kind, Phase};
use crate::{Error, Result};

/// Replace `{phase_id} {plan} {status} {role}` in `text`; other braces are left alone.
pub fn render_slots(text: &str, phase: Option<&Phase>, role: &str) -> String {
    let (id, plan, status) = phase.map_or(("", "", ""), |p| {
        (p.id.as_str(), p.plan.as_str(), p.status.as_str())
    });
    text.replace("{phase_id}", id)
        .replace("{plan}", plan)
        .replace("{status}", status)
        .replace("{role}", role)
}

fn read_prompt(path: &Path, agent: &Agent, what: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "agent {}: cannot read its {what} {}: {e}",
            agent.name,
            path.display()
        ))
    })
}

/// The full kickoff text of `agent` for `phase` (the current phase for loop agents).
pub fn kickoff_text(cfg: &Config, agent: &Agent, phase: Option<&Phase>) -> Result<String> {
    if agent.kind == Kind::Loop {
        let role = agent.role.as_deref().unwrap_or_default();
        let mut text = String::new();
        if let Some(l) = &cfg.loop_ {
            if let Some(t) = &l.kickoff_template {
                text = render_slots(&read_prompt(t, agent, "kickoff template")?, phase, role);
            }
            let role_file = l.roles_dir.join(format!("{role}.md"));
            text.push_str(&read_prompt(&role_file, agent, "role prompt")?);
        }
        return Ok(text);
    }
    match (&agent.prompt_file, &agent.prompt) {
        (Some(f), _) => read_prompt(f, agent, "prompt_file"),
        (None, Some(p)) => Ok(p.clone()),
        (None, None) => Ok(String::new()),
    }
}
