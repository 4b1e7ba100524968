//! The pending-ping queue on disk: `<state_dir>/pings/<agent>.json`, one JSON record per ping
//! (`{id, reason, text, state, created_at, attempts, waiting_on, fields}`), written atomically.
//!
//! `state` is `pending` today (an outbox with acknowledgement adds `delivered`, `acked`,
//! `lost`). The watchdog's outbox pass types them; `status` counts them.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;

/// One ping waiting to be typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPing {
    /// Unique per ping (`claim-<sha>`, `review-<sha>`, `inbox-<file>-<ms>`): queued once.
    pub id: String,
    /// `claim`, `review`, `inbox` (the `reason` of its `ping` event).
    pub reason: String,
    pub text: String,
    /// `pending`.
    pub state: String,
    pub created_at: String,
    #[serde(default)]
    pub attempts: u32,
    /// The screen state it last waited on (a `ping_queued` event was logged for it).
    #[serde(default)]
    pub waiting_on: Option<String>,
    /// Extra fields of its `ping` event (`commits`, `file`).
    #[serde(default)]
    pub fields: Value,
}

impl PendingPing {
    pub fn new(id: String, reason: &str, text: String, fields: Value) -> Self {
        PendingPing {
            id,
            reason: reason.to_string(),
            text,
            state: "pending".into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            attempts: 0,
            waiting_on: None,
            fields,
        }
    }
}

/// One agent's queue, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outbox {
    pub pings: Vec<PendingPing>,
}

/// Add `ping` unless a ping with its id is queued already; true when added. Pure.
pub fn enqueue(outbox: &mut Outbox, ping: PendingPing) -> bool {
    if outbox.pings.iter().any(|p| p.id == ping.id) {
        return false;
    }
    outbox.pings.push(ping);
    true
}

pub fn outbox_file(cfg: &Config, agent: &str) -> PathBuf {
    cfg.state_dir.join("pings").join(format!("{agent}.json"))
}

/// The agent's queue (empty when none; a corrupt file is reported and read as empty).
pub fn load(cfg: &Config, agent: &str) -> Outbox {
    match crate::state::load_json(&outbox_file(cfg, agent)) {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("{e}; agent {agent}'s pending pings are dropped");
            Outbox::default()
        }
    }
}

/// Save the queue atomically (an empty queue removes the file).
pub fn save(cfg: &Config, agent: &str, outbox: &Outbox) {
    let path = outbox_file(cfg, agent);
    if outbox.pings.is_empty() {
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
        return;
    }
    let saved = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(|e| e.to_string())
        .and_then(|()| crate::state::save_json(&path, outbox).map_err(|e| e.to_string()));
    if let Err(e) = saved {
        tracing::error!("cannot save the pending pings of {agent}: {e}");
    }
}

/// How many pings wait for `agent` (for status).
pub fn pending_count(cfg: &Config, agent: &str) -> usize {
    if !outbox_file(cfg, agent).exists() {
        return 0;
    }
    load(cfg, agent).pings.len()
}
