//! A held account pool on disk: `<state_dir>/pool-<name>.json` (written temp-then-rename), so a
//! hold outlives a watchdog restart; the watchdog moves it, `status` reads it.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// One held pool. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolHold {
    pub pool: String,
    /// When the next probe is due (the reset + slack, or a step of the probe ladder).
    pub until: f64,
    /// When the hold began.
    pub since: f64,
    /// What showed the limit: `screen`, `hook` or `probe` (a probe that was refused).
    pub source: String,
    /// The member that showed the limit (it gets the probe).
    pub agent: String,
    /// True when `until` comes from a reset time the agent printed.
    #[serde(default)]
    pub reset_known: bool,
    /// Probes typed in this hold.
    #[serde(default)]
    pub probes: u32,
    /// Members released after a successful probe, in release order.
    #[serde(default)]
    pub released: Vec<String>,
    /// When the next member is released (set once a probe succeeded).
    #[serde(default)]
    pub next_release: Option<f64>,
}

impl PoolHold {
    /// True while `agent` is held: the hold is on and it was not released yet.
    pub fn holds(&self, agent: &str) -> bool {
        !self.released.iter().any(|r| r == agent)
    }

    /// `held` until a probe succeeded, then `releasing`.
    pub fn phase(&self) -> &'static str {
        if self.next_release.is_some() {
            "releasing"
        } else {
            "held"
        }
    }
}

pub fn hold_file(cfg: &Config, pool: &str) -> PathBuf {
    cfg.state_dir.join(format!("pool-{pool}.json"))
}

/// The saved hold of `pool`; a corrupt file is reported and read as no hold.
pub fn load(cfg: &Config, pool: &str) -> Option<PoolHold> {
    match crate::state::load_json(&hold_file(cfg, pool)) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("{e}; treating pool {pool} as not held");
            None
        }
    }
}

pub fn save(cfg: &Config, hold: &PoolHold) {
    let saved = std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            crate::state::save_json(&hold_file(cfg, &hold.pool), hold).map_err(|e| e.to_string())
        });
    if let Err(e) = saved {
        tracing::error!("cannot save the hold of pool {}: {e}", hold.pool);
    }
}

pub fn clear(cfg: &Config, pool: &str) {
    let path = hold_file(cfg, pool);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

/// The pool holding `agent` right now and its hold, if any (reads the config's pools and the
/// hold file of the agent's pool).
pub fn holding(cfg: &Config, agent: &str) -> Option<PoolHold> {
    let pool = cfg.pool_of(agent)?;
    load(cfg, &pool.pool.name).filter(|h| h.holds(agent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_holds_every_member_until_released() {
        let mut h: PoolHold = serde_json::from_str(
            r#"{"pool": "p", "until": 10.0, "since": 1.0, "source": "screen", "agent": "a"}"#,
        )
        .unwrap();
        assert!(h.holds("a") && h.holds("b"));
        assert_eq!(h.phase(), "held");
        h.released.push("a".into());
        h.next_release = Some(12.0);
        assert!(!h.holds("a") && h.holds("b"));
        assert_eq!(h.phase(), "releasing");
    }
}
