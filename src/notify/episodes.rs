//! `<state_dir>/attention-episodes.json`: the attention episodes the watchdog's attention pass
//! keeps open (and the states it last reported), read by `orch status` to list them first.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Config;

pub const EPISODES_FILE: &str = "attention-episodes.json";

/// One open episode: an attention event that still holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub event: String,
    /// The agent, or "" for the project (a quiet phase).
    pub agent: String,
    pub summary: String,
    /// Unix seconds: when it was first logged, and last logged (repeats).
    pub opened: i64,
    pub last_logged: i64,
    #[serde(default)]
    pub repeats: u32,
}

/// Everything the attention pass carries across watchdog restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Episodes {
    /// Open episodes by key `event|agent`.
    #[serde(default)]
    pub open: BTreeMap<String, Episode>,
    /// The derived state last reported per agent (`state_changed`).
    #[serde(default)]
    pub states: BTreeMap<String, String>,
    /// A state seen but not yet held long enough: agent -> (state, first seen).
    #[serde(default)]
    pub pending: BTreeMap<String, (String, i64)>,
    /// Per agent, the restart count when it was last seen working (uncured stalls).
    #[serde(default)]
    pub restarts_when_working: BTreeMap<String, u64>,
    /// The current phase and when it last saw a handoff (a commit ping or its start).
    #[serde(default)]
    pub phase: Option<(String, i64)>,
    /// Byte offset in the event log up to which handoffs were looked for.
    #[serde(default)]
    pub events_offset: u64,
}

pub fn episodes_file(cfg: &Config) -> PathBuf {
    cfg.state_dir.join(EPISODES_FILE)
}

/// The saved episodes (empty when none or unreadable).
pub fn load(cfg: &Config) -> Episodes {
    crate::state::load_json(&episodes_file(cfg))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Save atomically; a failure is logged, never fatal.
pub fn save(cfg: &Config, e: &Episodes) {
    let _ = std::fs::create_dir_all(&cfg.state_dir);
    if let Err(err) = crate::state::save_json(&episodes_file(cfg), e) {
        tracing::warn!("cannot save {}: {err}", episodes_file(cfg).display());
    }
}
