//! The parts of a graceful stop that are not tmux's: the keys that make an agent's CLI quit
//! (its backend's `stop_keys`), and every process the session started, ended after it.
use std::time::Duration;

use crate::config::Config;
use crate::proctree::{self, ProcId};
use crate::tmux::{Tmux, TmuxError};

/// The pause between two stop keys: "C-c twice in quick succession" for the CLIs that ask.
const KEY_GAP: Duration = Duration::from_millis(200);

/// How long the processes left after the session are given between SIGTERM and SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

/// The keys that stop what runs in `session`: its agent's backend `stop_keys`, else C-c.
pub fn stop_keys(cfg: &Config, session: &str) -> Vec<String> {
    cfg.agents
        .iter()
        .find(|a| a.session == session)
        .map(|a| cfg.backend_of(a).stop_keys.clone())
        .unwrap_or_else(|| vec!["C-c".to_string()])
}

/// Send the stop keys one at a time, `KEY_GAP` apart; stops early once the pane is dead.
pub fn send_stop_keys(cfg: &Config, tmux: &Tmux, session: &str) -> Result<(), TmuxError> {
    for (i, key) in stop_keys(cfg, session).iter().enumerate() {
        if i > 0 {
            std::thread::sleep(KEY_GAP);
            if tmux.pane_dead(session)? != Some(false) {
                return Ok(());
            }
        }
        tmux.send_keys(session, &[key.as_str()])?;
    }
    Ok(())
}

/// The processes of one session: found before it is stopped and again after, ended last.
pub struct Tree {
    root: Option<i32>,
    marker: Vec<(String, String)>,
    seen: Vec<ProcId>,
}

impl Tree {
    /// The session's processes now: the pane's process (`pid`), its descendants, everything
    /// in its session, and for an agent everything carrying its environment marker
    /// (`ORCH_SESSION` and `ORCH_LOG_DIR`: daemons that detached keep their environment).
    pub fn of(cfg: &Config, session: &str, pid: Option<u32>) -> Tree {
        let marker = if cfg.agents.iter().any(|a| a.session == session) {
            vec![
                ("ORCH_SESSION".to_string(), session.to_string()),
                (
                    "ORCH_LOG_DIR".to_string(),
                    cfg.log_dir.display().to_string(),
                ),
            ]
        } else {
            Vec::new()
        };
        let root = pid.and_then(|p| i32::try_from(p).ok());
        let mut tree = Tree {
            root,
            marker,
            seen: Vec::new(),
        };
        tree.look();
        tree
    }

    fn look(&mut self) {
        let marker: Vec<(&str, &str)> = self
            .marker
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for id in proctree::snapshot(self.root, &marker) {
            if !self.seen.contains(&id) {
                self.seen.push(id);
            }
        }
    }

    /// After the session is gone: end whatever of the tree is left (SIGTERM, then SIGKILL).
    pub fn end(mut self, session: &str) {
        self.look();
        let left = proctree::alive(&self.seen);
        if left.is_empty() {
            return;
        }
        let pids: Vec<i32> = left.iter().map(|(p, _)| *p).collect();
        tracing::info!(session, ?pids, "ending processes the session left behind");
        let survivors = proctree::end(&left, LEFTOVER_GRACE);
        if !survivors.is_empty() {
            tracing::warn!(session, ?survivors, "processes survived SIGKILL");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoadOptions, load_str};

    #[test]
    fn presets_quit_on_repeated_c_c_and_other_sessions_get_one() {
        let text = "[defaults]\nsession_prefix = \"p-\"\nlog_dir = \".orch\"\n\
            [[agent]]\nname = \"cc\"\nbackend = \"claude-code\"\nprompt = \"hi\"\n\
            [[agent]]\nname = \"cx\"\nbackend = \"codex\"\nprompt = \"hi\"\n\
            [[service]]\nname = \"web\"\ncommand = \"true\"\n";
        let cfg = load_str(
            text,
            std::path::Path::new("/tmp/agents.toml"),
            LoadOptions::STRICT,
        )
        .unwrap()
        .config;
        for session in ["p-cc", "p-cx"] {
            let keys = stop_keys(&cfg, session);
            assert!(
                keys.iter().filter(|k| *k == "C-c").count() >= 2,
                "{session}: {keys:?}"
            );
        }
        assert_eq!(stop_keys(&cfg, "p-web"), ["C-c"]);
    }
}
