//! `orch down [NAME...]`: stop agents, services and the watchdog (or just the named ones),
//! each by its exact session name.
use std::process::ExitCode;

use crate::config::Config;
use crate::{Result, fleet};

pub fn run(cfg: &Config, names: &[String]) -> Result<ExitCode> {
    super::up::check_names(cfg, names)?;
    let tmux = fleet::tmux_for(cfg);
    let wanted = |n: &str| names.is_empty() || names.iter().any(|x| x == n);
    let mut targets: Vec<(String, String)> = Vec::new();
    targets.extend(
        cfg.agents
            .iter()
            .filter(|a| wanted(&a.name))
            .map(|a| (a.name.clone(), a.session.clone())),
    );
    targets.extend(
        cfg.services
            .iter()
            .filter(|s| wanted(&s.name))
            .map(|s| (s.name.clone(), s.session.clone())),
    );
    if wanted("watchdog") {
        targets.push(("watchdog".into(), cfg.watchdog_session()));
    }
    for (name, session) in targets {
        if fleet::stop_session(&tmux, &session)? {
            println!("stopped {name} ({session})");
            if cfg.agent(&name).is_some() {
                fleet::log_event(
                    cfg,
                    crate::events::AGENT_STOPPED,
                    serde_json::json!({"agent": name, "session": session, "by": "down"}),
                );
            }
        } else if !names.is_empty() {
            println!("{name} was not running ({session})");
        }
    }
    Ok(ExitCode::SUCCESS)
}
