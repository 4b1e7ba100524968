//! The live ping queue on disk: `<state_dir>/pings/<agent>.json`, one JSON record per ping not
//! settled yet (`{id, ping_id, reason, text, state, created_at, attempts, typed_at, ...}`).
//!
//! `state` is `pending` (queued, not typed yet) or `typed` (typed, waiting for its ack). A ping
//! leaves this file once it arrived, was acked or was lost; its history stays in
//! `outbox-<agent>.jsonl` ([`super::ping_log`]). The watchdog's outbox pass types them;
//! `status` counts the ones not typed yet.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;

/// One ping waiting to be typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingPing {
    /// The queue key, unique per ping (`claim-<sha>`, `review-<sha>`, `inbox-<file>-<ms>`):
    /// queued once.
    pub id: String,
    /// The ping id typed in its `[orch:ping <id>]` mark (`b-0042`); given when it is queued.
    #[serde(default)]
    pub ping_id: String,
    /// `claim`, `review`, `inbox` (the `reason` of its `ping` event).
    pub reason: String,
    pub text: String,
    /// `pending` or `typed`.
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
    /// When it was last typed (RFC 3339, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typed_at: Option<String>,
    /// Whether the screen saw its last submit take.
    #[serde(default)]
    pub confirmed: bool,
}

impl PendingPing {
    pub fn new(id: String, reason: &str, text: String, fields: Value) -> Self {
        PendingPing {
            id,
            ping_id: String::new(),
            reason: reason.to_string(),
            text,
            state: "pending".into(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            attempts: 0,
            waiting_on: None,
            fields,
            typed_at: None,
            confirmed: false,
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

/// How many pings wait to be typed into `agent` (for status; typed ones waiting for their ack
/// are not counted).
pub fn pending_count(cfg: &Config, agent: &str) -> usize {
    if !outbox_file(cfg, agent).exists() {
        return 0;
    }
    load(cfg, agent)
        .pings
        .iter()
        .filter(|p| p.state != "typed")
        .count()
}

/// Whether ping `ping_id` of `agent` reached it (acked by its hook, seen in its transcript, or
/// confirmed on screen for an agent without hooks): see [`super::ping_log::has_arrived`].
pub fn has_arrived(cfg: &Config, agent: &str, ping_id: &str) -> bool {
    super::ping_log::has_arrived(cfg, agent, ping_id)
}
