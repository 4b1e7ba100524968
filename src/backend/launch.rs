//! Launch plans: the session, cwd, environment and command line an agent or service starts
//! with, for each prompt delivery (`arg`, `ping`, `exec`). No shell string holds unquoted data.
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Agent, Config, Delivery, Kind, Phase, Service};
use crate::{Error, Result};

/// What tmux runs in the new pane.
#[derive(Debug, Clone, PartialEq)]
pub enum LaunchCommand {
    /// A shell command line (run by tmux through `sh -c`): user-written fragments, data quoted.
    Shell(String),
    /// Program and arguments, executed directly.
    Argv(Vec<String>),
}

/// For the `ping` delivery: what to type once the pane shows its input.
#[derive(Debug, Clone)]
pub struct PingBoot {
    pub connect_delay: Duration,
    pub line: String,
    pub submit_key: String,
}

/// Everything needed to start one agent's session.
#[derive(Debug, Clone)]
pub struct LaunchPlan {
    pub name: String,
    pub session: String,
    pub cwd: PathBuf,
    /// ORCH_* identity plus the agent's `env` table (values are secrets: never logged).
    pub env: Vec<(String, String)>,
    pub command: LaunchCommand,
    pub kickoff_file: PathBuf,
    pub kickoff: String,
    pub model: String,
    pub ping: Option<PingBoot>,
}

/// Reads the kickoff file into one argument and execs the agent with it: the script is
/// constant, every variable part is a positional argument. The `x` sentinel keeps the
/// kickoff's trailing newlines, which `$(...)` would strip.
const ARG_SCRIPT: &str =
    r#"k=$(cat -- "$1" && printf x) || exit 127; k=${k%x}; shift; exec "$@" "$k""#;

/// The line typed into a `ping`-delivery agent once it is ready.
pub fn ping_boot_line(kickoff_file: &std::path::Path) -> String {
    format!("read {} and follow it", kickoff_file.display())
}

/// The model for `agent` in `phase`: for a loop agent the phase's per-role override wins.
pub fn model_for(agent: &Agent, phase: Option<&Phase>) -> String {
    let phase = phase.filter(|_| agent.kind == Kind::Loop);
    agent
        .role
        .as_ref()
        .and_then(|r| phase.and_then(|p| p.models.get(r)))
        .cloned()
        .unwrap_or_else(|| agent.model.clone())
}

/// Split a user template into argv words, then fill `{name}` placeholders in each word.
fn argv_template(template: &str, vars: &[(&str, &str)], what: &str) -> Result<Vec<String>> {
    let words = shell_words::split(template).map_err(|e| {
        Error::Config(format!(
            "{what} {template:?} cannot be split into words: {e}"
        ))
    })?;
    Ok(words
        .into_iter()
        .map(|w| {
            vars.iter()
                .fold(w, |w, (k, v)| w.replace(&format!("{{{k}}}"), v))
        })
        .collect())
}

/// Fill `{name}` placeholders in a shell template with shell-quoted values; quotes the user put
/// around a placeholder (`'{kickoff}'`) are dropped, since the value is quoted already.
pub fn shell_template(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        let quoted = shell_words::quote(v).into_owned();
        for q in ["'", "\""] {
            out = out.replace(&format!("{q}{{{k}}}{q}"), &quoted);
        }
        out = out.replace(&format!("{{{k}}}"), &quoted);
    }
    out
}

/// Plan the launch of `agent` for `phase` (the current phase for loop agents).
pub fn plan_launch(cfg: &Config, agent: &Agent, phase: Option<&Phase>) -> Result<LaunchPlan> {
    let backend = cfg.backend_of(agent);
    let phase = phase.filter(|_| agent.kind == Kind::Loop);
    let kickoff = super::kickoff_text(cfg, agent, phase)?;
    let kickoff_file = cfg.kickoff_file_of(agent);
    let model = model_for(agent, phase);
    let what = |key: &str| format!("backend {}: {key}", backend.name);
    let session = agent.session.as_str();
    let mut ping = None;
    let command = match backend.prompt_delivery {
        Delivery::Arg => {
            let mut argv: Vec<String> = ["sh", "-c", ARG_SCRIPT, "orch-launch"]
                .map(String::from)
                .into();
            argv.push(kickoff_file.display().to_string());
            argv.extend(on_host(
                cfg,
                agent,
                argv_template(&backend.bin, &[], &what("bin"))?,
            ));
            let resume = agent.resume && backend.supports_resume;
            if let Some(id) = resume.then(|| read_resume_id(cfg, agent)).flatten() {
                argv.extend(argv_template(
                    &backend.resume_flag,
                    &[("id", &id)],
                    &what("resume_flag"),
                )?);
            }
            if backend.remote_control {
                let flag = &backend.remote_control_flag;
                argv.extend(argv_template(
                    flag,
                    &[("session", session)],
                    &what("remote_control_flag"),
                )?);
            }
            if !model.is_empty() {
                argv.extend(argv_template(
                    &backend.model_flag,
                    &[("model", &model)],
                    &what("model_flag"),
                )?);
            }
            argv.extend(argv_template(&backend.flags, &[], &what("flags"))?);
            LaunchCommand::Argv(argv)
        }
        Delivery::Exec => {
            let kf = kickoff_file.display().to_string();
            let vars = [
                ("kickoff", kf.as_str()),
                ("session", session),
                ("model", model.as_str()),
            ];
            LaunchCommand::Shell(shell_template(&backend.bin, &vars))
        }
        Delivery::Ping => {
            let dir = agent.dir.display().to_string();
            let attach = backend
                .attach
                .replace("{bin}", &backend.bin)
                .replace("{server}", &backend.server);
            let attach = shell_template(&attach, &[("dir", &dir)]);
            let model_env = if backend.model_env && !model.is_empty() {
                let json = serde_json::json!({ "model": model }).to_string();
                format!("OPENCODE_CONFIG_CONTENT={} ", shell_words::quote(&json))
            } else {
                String::new()
            };
            let sep = if backend.preamble.is_empty() {
                ""
            } else {
                "; "
            };
            ping = Some(PingBoot {
                connect_delay: backend.connect_delay,
                line: ping_boot_line(&kickoff_file),
                submit_key: backend.submit_key.clone(),
            });
            LaunchCommand::Shell(format!("{}{sep}{model_env}{attach}", backend.preamble))
        }
    };
    let mut env = identity_env(cfg, agent, phase, &kickoff_file);
    env.extend(agent.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(LaunchPlan {
        name: agent.name.clone(),
        session: agent.session.clone(),
        cwd: agent.dir.clone(),
        env,
        command,
        kickoff_file,
        kickoff,
        model,
        ping,
    })
}

/// The `ORCH_*` variables that tell an agent who it is.
fn identity_env(
    cfg: &Config,
    agent: &Agent,
    phase: Option<&Phase>,
    kickoff: &std::path::Path,
) -> Vec<(String, String)> {
    let (id, plan, status) = phase.map_or(("", "", ""), |p| {
        (p.id.as_str(), p.plan.as_str(), p.status.as_str())
    });
    // On a host, the project and log folders are the agent's own there.
    let (project, log_dir) = match cfg.host_dir_of(&agent.name) {
        Some(dir) => (agent.dir.clone(), dir),
        None => (cfg.project_dir.clone(), cfg.log_dir.clone()),
    };
    [
        ("ORCH_AGENT", agent.name.as_str()),
        ("ORCH_ROLE", agent.role.as_deref().unwrap_or("")),
        ("ORCH_KIND", agent.kind.as_str()),
        ("ORCH_SESSION", agent.session.as_str()),
        ("ORCH_PHASE", id),
        ("ORCH_PLAN", plan),
        ("ORCH_STATUS", status),
        ("ORCH_PROJECT_DIR", &project.display().to_string()),
        ("ORCH_LOG_DIR", &log_dir.display().to_string()),
        ("ORCH_KICKOFF", &kickoff.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A backend `bin` starting with the word `orch` runs the host's `orch_bin` on a host.
fn on_host(cfg: &Config, agent: &Agent, mut argv: Vec<String>) -> Vec<String> {
    let host = agent.host.as_ref().and_then(|h| cfg.hosts.get(h));
    if let (Some(host), Some(first)) = (host, argv.first_mut())
        && first == "orch"
    {
        *first = host.orch_bin.clone();
    }
    argv
}

fn read_resume_id(cfg: &Config, agent: &Agent) -> Option<String> {
    let text = std::fs::read_to_string(cfg.resume_id_file(&agent.name)).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Plan a service: its command line as written, in its dir.
pub fn plan_service(s: &Service) -> (LaunchCommand, Vec<(String, String)>) {
    let env = s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    (LaunchCommand::Shell(s.command.clone()), env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_template_keeps_a_value_with_spaces_as_one_word() {
        let words = argv_template("--model '{model}'", &[("model", "big model's")], "t").unwrap();
        assert_eq!(words, ["--model", "big model's"]);
    }

    #[test]
    fn shell_template_quotes_values_and_drops_user_quotes() {
        let out = shell_template(
            "run '{kickoff}' -s {session}",
            &[("kickoff", "/a b/k$1.txt"), ("session", "s")],
        );
        assert_eq!(out, "run '/a b/k$1.txt' -s s");
        let words = shell_words::split(&out).unwrap();
        assert_eq!(words, ["run", "/a b/k$1.txt", "-s", "s"]);
    }

    #[test]
    fn unbalanced_quote_in_a_template_is_a_config_error() {
        let err = argv_template("--model '{model}", &[], "backend x: model_flag").unwrap_err();
        assert!(err.to_string().contains("backend x: model_flag"), "{err}");
    }
}
