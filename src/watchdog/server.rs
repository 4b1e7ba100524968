//! The agents' tmux server as a whole: notices when it vanished (a tmux crash, an OOM kill,
//! `kill-server`) and recreates every session that ran on it in one pass, on any tick.
use std::collections::BTreeSet;

use serde_json::json;

use super::Watchdog;
use crate::config::{Config, Kind};
use crate::tmux::Fleet;
use crate::{events, fleet, phase};

/// What this tick's look at the agents' server means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server runs (or never ran while we watched, or was already handled): nothing to do.
    Quiet,
    /// The server ran these live sessions last time and is gone now: log once, recreate.
    Lost(BTreeSet<String>),
}

/// Pure: the server is lost when none of the at least two live sessions of the last look is
/// there any more (all gone at once: a crash). A server whose one session ended exits with it
/// (tmux does), which is that session's own exit for healing and policies to handle.
/// `last_live` is forgotten once a loss is handled, so a loss is reported once.
/// `now` is this look's sessions, live or dead (None: no server). A server that still answers but has
/// none of them left (it is going down, or was started anew by someone) is lost too.
pub fn judge(last_live: Option<&BTreeSet<String>>, now: Option<&BTreeSet<String>>) -> Verdict {
    match last_live {
        Some(live) if live.len() >= 2 && now.is_none_or(|n| n.is_disjoint(live)) => {
            Verdict::Lost(live.clone())
        }
        _ => Verdict::Quiet,
    }
}

/// Pure: the sessions of `cfg` to recreate after a loss, agents then services, in config
/// order: enabled ones that were live on the lost server (loop agents not once the sequence is
/// complete). Returns (agent names, service names).
pub fn recreate_plan(
    cfg: &Config,
    live: &BTreeSet<String>,
    sequence_complete: bool,
) -> (Vec<String>, Vec<String>) {
    let agents = cfg
        .agents
        .iter()
        .filter(|a| a.enabled && live.contains(&a.session))
        .filter(|a| !(sequence_complete && a.kind == Kind::Loop))
        .map(|a| a.name.clone())
        .collect();
    let services = cfg
        .services
        .iter()
        .filter(|s| s.enabled && live.contains(&s.session))
        .map(|s| s.name.clone())
        .collect();
    (agents, services)
}

/// The live (not dead) sessions of a snapshot.
fn live_sessions(f: &Fleet) -> BTreeSet<String> {
    f.panes()
        .filter(|p| !p.dead)
        .map(|p| p.session.clone())
        .collect()
}

impl Watchdog {
    /// This tick's snapshot of the agents' server (`None` when tmux cannot be asked). When the
    /// server vanished since the last tick, logs `tmux_server_lost` and recreates what ran on
    /// it, then returns a snapshot taken after that.
    pub(super) fn server_tick(&mut self) -> Option<Fleet> {
        let observed = match self.tmux.fleet() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("cannot list the tmux sessions (retrying next tick): {e}");
                return None;
            }
        };
        // Every session of the agents' own server still there counts, a dead pane (kept by
        // remain-on-exit) too: its server did not crash, its process exited (the restart
        // policy's business). Sessions on hosts are the hosts' business (watchdog/hosts.rs).
        let here = |s: &&str| self.tmux.host_of(s).is_none();
        let present: BTreeSet<String> =
            observed.sessions().filter(here).map(String::from).collect();
        let verdict = judge(self.server_live.as_ref(), Some(&present));
        let Verdict::Lost(live) = verdict else {
            let live: BTreeSet<String> = live_sessions(&observed)
                .into_iter()
                .filter(|s| self.tmux.host_of(s).is_none())
                .collect();
            self.server_live = (!live.is_empty()).then_some(live);
            return Some(observed);
        };
        self.server_live = None;
        self.recreate_server(&live);
        self.fleet_snapshot()
    }

    fn recreate_server(&mut self, live: &BTreeSet<String>) {
        let seq_done = self.cfg.sequence_complete_file().exists();
        let (mut agents, services) = recreate_plan(&self.cfg, live, seq_done);
        // Stopped on purpose, timed out or given up on in the meantime: they stay down.
        agents.retain(|a| fleet::records::parked(&self.cfg, a).is_none());
        if agents.is_empty() && services.is_empty() {
            return;
        }
        let socket = self.tmux.socket().unwrap_or("default").to_string();
        tracing::error!(
            socket,
            sessions = live.len(),
            "the agents' tmux server is gone: recreating its sessions"
        );
        self.event(
            events::TMUX_SERVER_LOST,
            json!({ "socket": socket, "sessions": live }),
        );
        // Everything cached about the old server's panes is void.
        self.pane_cache.clear();
        self.screen_cache.clear();
        self.idle_since.clear();
        let current = phase::current(&self.cfg).cloned();
        for name in agents {
            let Some(agent) = self.cfg.agent(&name).cloned() else {
                continue;
            };
            super::limit::clear_hold(&self.cfg, &agent.session);
            let started = fleet::start_agent(&self.cfg, &self.tmux, &agent, current.as_ref());
            if let Err(e) = &started {
                tracing::error!("cannot recreate {}: {e}", agent.name);
            }
            self.event(
                events::HEALED,
                json!({
                    "agent": agent.name, "session": agent.session, "reason": "server_lost",
                    "detail": "the tmux server was gone", "restarted": started.is_ok(),
                }),
            );
        }
        for name in services {
            let Some(svc) = self.cfg.service(&name).cloned() else {
                continue;
            };
            let started = fleet::start_service(&self.cfg, &self.tmux, &svc);
            if let Err(e) = &started {
                tracing::error!("cannot recreate service {}: {e}", svc.name);
            }
            self.event(
                events::HEALED,
                json!({
                    "service": svc.name, "session": svc.session, "reason": "server_lost",
                    "detail": "the tmux server was gone", "restarted": started.is_ok(),
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_server_that_ran_sessions_and_is_gone_is_lost() {
        let live = set(&["p-builder", "p-adversary"]);
        assert_eq!(judge(Some(&live), None), Verdict::Lost(live.clone()));
    }

    #[test]
    fn a_server_that_answers_without_any_of_its_sessions_is_lost_too() {
        let live = set(&["p-builder", "p-adversary"]);
        assert_eq!(
            judge(Some(&live), Some(&BTreeSet::new())),
            Verdict::Lost(live.clone())
        );
        assert_eq!(
            judge(Some(&live), Some(&set(&["p-other"]))),
            Verdict::Lost(live.clone())
        );
    }

    #[test]
    fn a_server_that_keeps_some_sessions_is_not_lost() {
        assert_eq!(
            judge(Some(&set(&["p-builder", "p-web"])), Some(&set(&["p-web"]))),
            Verdict::Quiet
        );
        assert_eq!(judge(None, Some(&set(&["p-a"]))), Verdict::Quiet);
    }

    #[test]
    fn a_server_never_seen_or_already_handled_is_not_lost_again() {
        assert_eq!(judge(None, None), Verdict::Quiet, "first look, or handled");
        assert_eq!(
            judge(Some(&BTreeSet::new()), None),
            Verdict::Quiet,
            "nothing ran on it"
        );
        assert_eq!(
            judge(Some(&set(&["p-a"])), None),
            Verdict::Quiet,
            "it exited with its last session"
        );
    }

    #[test]
    fn only_enabled_sessions_that_were_live_are_recreated() {
        let toml = r#"
[defaults]
session_prefix = "p-"
log_dir = ".orch"
backend = "claude-code"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
[[agent]]
name = "helper"
prompt = "x"
[[agent]]
name = "off"
prompt = "x"
enabled = false
[[service]]
name = "web"
command = "sleep 100"
[loop]
phases = [{ id = "p1", plan = "a.md", status = "s.md" }]
"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.toml");
        std::fs::write(&path, toml).unwrap();
        std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
        std::fs::write(dir.path().join("prompts/builder.md"), "b").unwrap();
        let cfg = crate::config::load(&path, crate::config::LoadOptions::WATCHDOG)
            .unwrap()
            .config;
        let live = set(&["p-builder", "p-off", "p-web", "p-watchdog", "other-x"]);
        let (agents, services) = recreate_plan(&cfg, &live, false);
        assert_eq!(agents, vec!["builder".to_string()]);
        assert_eq!(services, vec!["web".to_string()]);
        let (agents, _) = recreate_plan(&cfg, &live, true);
        assert!(agents.is_empty(), "no loop once the sequence is complete");
    }
}
