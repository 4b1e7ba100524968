//! Building `[loop]`: phases, the handoff (patterns, ping targets), on_complete, and the
//! checks that loop agents have a role prompt and the kickoff template exists.
use std::collections::BTreeSet;
use std::path::Path;

use regex::Regex;

use super::{Checker, canonical};
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::schema::Seg;

pub(super) fn build_loop(
    c: &mut Checker<'_>,
    l: &RawLoop,
    project_dir: &Path,
    agents: &[Agent],
) -> LoopCfg {
    let roles_dir = resolve(project_dir, l.roles_dir.as_deref().unwrap_or("prompts"));
    let kickoff_template = l
        .kickoff_template
        .as_deref()
        .map(|p| resolve(project_dir, p));
    if let Some(t) = kickoff_template.as_ref().filter(|t| !t.is_file()) {
        c.error(
            &[Seg::Key("loop"), Seg::Key("kickoff_template")],
            format!("[loop].kickoff_template {} does not exist", t.display()),
        );
    }
    for (i, a) in agents
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind == Kind::Loop)
    {
        let at = [Seg::Key("agent"), Seg::Index(i), Seg::Key("role")];
        match &a.role {
            None => c.error(
                &[Seg::Key("agent"), Seg::Index(i)],
                format!(
                    "agent {}: a loop agent needs a role (its prompt is <roles_dir>/<role>.md)",
                    a.name
                ),
            ),
            Some(role) => {
                let file = roles_dir.join(format!("{role}.md"));
                if !file.is_file() {
                    c.error(
                        &at,
                        format!(
                            "agent {}: role prompt {} does not exist",
                            a.name,
                            file.display()
                        ),
                    );
                }
            }
        }
    }
    let mut phases = Vec::new();
    let mut ids = BTreeSet::new();
    for (i, p) in l.phases.iter().enumerate() {
        let at = [Seg::Key("loop"), Seg::Key("phases"), Seg::Index(i)];
        let id = p.id.clone().unwrap_or_default();
        let status = p.status.clone().unwrap_or_default();
        if id.is_empty() {
            c.error(&at, format!("[loop].phases[{i}] has no id"));
        } else if !ids.insert(id.clone()) {
            c.error(
                &at,
                format!("[loop].phases[{i}]: phase id {id:?} is used twice"),
            );
        }
        if status.is_empty() {
            c.error(&at, format!("[loop].phases[{i}] ({id}) has no status file"));
        }
        phases.push(Phase {
            id,
            plan: p.plan.clone().unwrap_or_default(),
            status,
            models: p.models.clone(),
        });
    }
    let names: BTreeSet<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    let handoff = l.handoff.as_ref().map(|h| {
        let at = |key| [Seg::Key("loop"), Seg::Key("handoff"), Seg::Key(key)];
        let claim_pings = h.claim_pings.clone().unwrap_or_else(|| "adversary".into());
        let review_pings = h.review_pings.clone().unwrap_or_else(|| "builder".into());
        for (key, target) in [("claim_pings", &claim_pings), ("review_pings", &review_pings)] {
            if !names.contains(target.as_str()) {
                c.warn(&at(key), format!("[loop.handoff].{key} names {target:?}, which is not an agent; its pings go nowhere"));
            }
        }
        let pattern = |c: &mut Checker<'_>, key, value: &Option<String>, default: &str| {
            let text = value.as_deref().unwrap_or(default);
            // Compiled the way the watchdog matches commit subjects (handoff owns that rule).
            let compiled = crate::handoff::compile_subject_pattern(text);
            c.compiled(&at(key), &format!("[loop.handoff].{key}"), compiled)
                .unwrap_or_else(|| Regex::new("$^").expect("constant regex"))
        };
        Handoff {
            repo: canonical(resolve(project_dir, h.repo.as_deref().unwrap_or("."))),
            state_subdir: h.state_subdir.clone().unwrap_or_else(|| "machine-docs".into()),
            claim_pattern: pattern(c, "claim_pattern", &h.claim_pattern, "^claim"),
            review_pattern: pattern(c, "review_pattern", &h.review_pattern, "^review"),
            claim_pings,
            review_pings,
            inboxes: h.inboxes.clone().unwrap_or_default(),
        }
    });
    let on_complete = l.on_complete.as_ref().and_then(|o| {
        let at = [Seg::Key("loop"), Seg::Key("on_complete"), Seg::Key("run")];
        let run = o.run.clone().unwrap_or_default();
        if run.is_empty() {
            c.error(&at, "[loop.on_complete].run is required: the task agent to launch when the last phase is done".into());
            return None;
        }
        if !names.contains(run.as_str()) {
            c.error(&at, format!("[loop.on_complete].run names {run:?}, which is not an agent"));
        }
        Some(OnComplete {
            run,
            trigger_file: o.trigger_file.clone().unwrap_or_else(|| ".run-on-complete".into()),
        })
    });
    LoopCfg {
        state_file: l.state_file.clone().unwrap_or_else(|| "phase-idx".into()),
        done_marker: l.done_marker.clone().unwrap_or_else(|| "## DONE".into()),
        kickoff_template,
        roles_dir,
        auto_advance: l.auto_advance.unwrap_or(true),
        resume_phase: l.resume_phase.unwrap_or(true),
        phases,
        handoff,
        on_complete,
    }
}
