//! `orch attach NAME`: bring an agent's (or service's, or the watchdog's) session to this
//! terminal: `switch-client` inside a client of the same tmux server, else `attach-session`.
use std::process::ExitCode;

use crate::config::Config;
use crate::tmux::Tmux;
use crate::{Error, Result, fleet};

pub fn run(cfg: &Config, name: &str) -> Result<ExitCode> {
    let tmux = fleet::tmux_for(cfg);
    let session = live_session(cfg, &tmux, name)?;
    let env = std::env::var("TMUX").ok();
    let how = tmux.client_move(&session, env.as_deref())?;
    let status = tmux
        .client_process(&session, how)
        .status()
        .map_err(|e| Error::Runtime(format!("cannot run tmux to attach to {name}: {e}")))?;
    if status.success() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Error::Runtime(format!(
            "tmux could not attach to {name} (session {session}): it exited with {status}"
        )))
    }
}

/// The session of `name` when it runs; one sentence otherwise.
pub fn live_session(cfg: &Config, tmux: &Tmux, name: &str) -> Result<String> {
    super::up::check_names(cfg, &[name.to_string()])?;
    let session = match (cfg.agent(name), cfg.service(name)) {
        (Some(a), _) => a.session.clone(),
        (None, Some(s)) => s.session.clone(),
        (None, None) => cfg.watchdog_session(),
    };
    if !tmux.has_session(&session)? {
        return Err(Error::Runtime(format!(
            "{name} is not running (no session {session}); start it with `orch up {name}`"
        )));
    }
    Ok(session)
}
