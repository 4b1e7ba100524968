//! `orch restart NAME...`: a graceful stop (as `down`) then a start (as `up`) with the current
//! config, phase and kickoff; the single-name stop/start/restart the console's keys use too.
use std::process::ExitCode;

use serde_json::json;

use crate::config::Config;
use crate::tmux::Tmux;
use crate::{Error, Result, events, fleet, phase};

pub fn run(cfg: &Config, names: &[String]) -> Result<ExitCode> {
    super::up::check_names(cfg, names)?;
    let tmux = fleet::tmux_for(cfg);
    let mut failures = Vec::new();
    for name in names {
        match restart_one(cfg, &tmux, name, "restart") {
            Ok(session) => println!("restarted {name} ({session})"),
            Err(e) => failures.push(e),
        }
    }
    match failures.pop() {
        None => Ok(ExitCode::SUCCESS),
        Some(last) => {
            for e in &failures {
                eprintln!("orch: {e}");
            }
            Err(last)
        }
    }
}

/// Stop `name` (an agent, service or "watchdog") gracefully; `by` is logged in the agent's
/// `agent_stopped` event. `Ok(false)` when it was not running.
pub fn stop_one(cfg: &Config, tmux: &Tmux, name: &str, by: &str) -> Result<bool> {
    if let Some(agent) = cfg.agent(name) {
        let stopped = fleet::stop_agent(cfg, tmux, agent)?;
        if stopped {
            fleet::log_event(
                cfg,
                events::AGENT_STOPPED,
                json!({"agent": name, "session": agent.session, "by": by}),
            );
        }
        return Ok(stopped);
    }
    let session = session_of(cfg, name)?;
    fleet::stop_session_gracefully(cfg, tmux, &session, cfg.grace_period)
}

/// Start `name` (an agent on the current phase, a service, or "watchdog") unless it already
/// runs; its session name.
pub fn start_one(cfg: &Config, tmux: &Tmux, name: &str) -> Result<String> {
    let session = session_of(cfg, name)?;
    if tmux.fleet()?.get(&session).is_some_and(|p| !p.dead) {
        return Ok(session);
    }
    if let Some(agent) = cfg.agent(name) {
        fleet::start_agent(cfg, tmux, agent, phase::current(cfg))?;
    } else if let Some(svc) = cfg.service(name) {
        fleet::start_service(cfg, tmux, svc)?;
    } else {
        fleet::start_watchdog(cfg, tmux)?;
    }
    Ok(session)
}

/// [`stop_one`] then [`start_one`]; the session name.
pub fn restart_one(cfg: &Config, tmux: &Tmux, name: &str, by: &str) -> Result<String> {
    stop_one(cfg, tmux, name, by)?;
    start_one(cfg, tmux, name)
}

/// The session of an agent, a service or "watchdog".
fn session_of(cfg: &Config, name: &str) -> Result<String> {
    if let Some(a) = cfg.agent(name) {
        Ok(a.session.clone())
    } else if let Some(s) = cfg.service(name) {
        Ok(s.session.clone())
    } else if name == "watchdog" {
        Ok(cfg.watchdog_session())
    } else {
        Err(Error::Usage(format!(
            "unknown name {name:?} in {} (known: {})",
            cfg.path.display(),
            cfg.known_names().join(", ")
        )))
    }
}
