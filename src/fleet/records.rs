//! Per-agent run records, `<state_dir>/agents/<name>.json`: start time, launch fingerprint,
//! restart count, last exit and why an agent is parked (gave_up / timed_out / stopped).
//!
//! Written by the launch code (`start_agent`, `stop_agent`) and the watchdog's policies; read by
//! `status`, so a restarted watchdog keeps counting.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::state;

/// What the watchdog remembers about one agent's current run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// When the session was last started (Unix ms).
    pub started_at: Option<i64>,
    /// The launch fingerprint at that start (see `fleet::launch_fingerprint`).
    pub fingerprint: Option<String>,
    /// Restarts by the policy since the last fresh start or reset.
    pub restarts: u32,
    /// The last exit seen (Unix ms) and its status (`None`: tmux did not say).
    pub exited_at: Option<i64>,
    pub exit_status: Option<i32>,
    /// A restart is due at this time (Unix ms).
    pub next_restart_at: Option<i64>,
    pub gave_up: bool,
    pub timed_out: bool,
    /// Stopped on purpose (`down`, phase change): not to be restarted.
    pub stopped: bool,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn record_file(cfg: &Config, agent: &str) -> PathBuf {
    cfg.state_dir.join("agents").join(format!("{agent}.json"))
}

/// The agent's run record (default when none was written or it cannot be read).
pub fn record(cfg: &Config, agent: &str) -> AgentRecord {
    match state::load_json(&record_file(cfg, agent)) {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("{e}; starting agent {agent}'s run record afresh");
            AgentRecord::default()
        }
    }
}

pub fn save(cfg: &Config, agent: &str, rec: &AgentRecord) {
    let path = record_file(cfg, agent);
    let result = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(|e| e.to_string())
        .and_then(|_| state::save_json(&path, rec).map_err(|e| e.to_string()));
    if let Err(e) = result {
        tracing::error!("cannot save {}: {e}", path.display());
    }
}

pub fn update(cfg: &Config, agent: &str, f: impl FnOnce(&mut AgentRecord)) {
    let mut rec = record(cfg, agent);
    f(&mut rec);
    save(cfg, agent, &rec);
}

/// A fresh start: the time and fingerprint recorded, earlier exits and verdicts forgotten.
pub fn record_start(cfg: &Config, agent: &str, fingerprint: &str) {
    save(
        cfg,
        agent,
        &AgentRecord {
            started_at: Some(now_ms()),
            fingerprint: Some(fingerprint.to_string()),
            ..AgentRecord::default()
        },
    );
}

/// The agent is being stopped on purpose: the restart policy must not bring it back.
pub fn record_stopped(cfg: &Config, agent: &str) {
    update(cfg, agent, |r| {
        r.stopped = true;
        r.next_restart_at = None;
    });
}

/// Why the agent must stay stopped, if it must: `gave_up`, `timed_out` or `stopped`.
pub fn parked(cfg: &Config, agent: &str) -> Option<&'static str> {
    let r = record(cfg, agent);
    if r.gave_up {
        Some("gave_up")
    } else if r.timed_out {
        Some("timed_out")
    } else if r.stopped {
        Some("stopped")
    } else {
        None
    }
}

