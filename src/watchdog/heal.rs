//! Healing on the heavy tick: restart a watched agent whose session is gone, whose pane runs
//! another declared backend's process, or whose pane shows its backend's fatal error.
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::Watchdog;
use crate::config::{Agent, Config, Kind, Watch};
use crate::tmux::Fleet;
use crate::{detect, events, fleet, phase};

/// A fatal banner restarts an agent at most once in this window: a backend that shows the
/// same error again right after a restart is reported, not restarted in a loop.
pub const FATAL_COOLDOWN: Duration = Duration::from_secs(600);

/// How many pane rows the healing and care checks read.
pub(crate) const CAPTURE_ROWS: usize = 40;

impl Watchdog {
    /// The agent's screen: this tick's capture if one was taken, else a fresh one (None, and a
    /// warning, when the pane cannot be read).
    pub(super) fn pane_text(
        &self,
        panes: &HashMap<String, String>,
        agent: &Agent,
    ) -> Option<String> {
        if let Some(p) = panes.get(&agent.name) {
            return Some(p.clone());
        }
        match self.tmux.capture(&agent.session, CAPTURE_ROWS) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!("cannot read the pane of {}: {e}", agent.name);
                None
            }
        }
    }
}

/// Why an agent is restarted (the `reason` of a `healed` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealReason {
    Gone,
    Mismatch,
    Fatal,
    Stall,
    /// The process exited on a known refusal (root, offline first run, not logged in).
    Refused,
}

impl HealReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HealReason::Gone => "gone",
            HealReason::Mismatch => "mismatch",
            HealReason::Fatal => "fatal",
            HealReason::Stall => "stall",
            HealReason::Refused => "refused",
        }
    }
}

/// True when the pane runs a definite other backend: `command` is the `process_name` of some
/// declared backend, but not `expected`. An agent whose backend declares no process name, or
/// a pane running anything unknown (a login shell while starting), is never a mismatch.
pub fn is_mismatch(expected: Option<&str>, known: &BTreeSet<&str>, command: &str) -> bool {
    match expected {
        Some(want) => known.contains(command) && command != want,
        None => false,
    }
}

/// True when a fatal banner may restart the agent now: it never did, or the last fatal restart
/// was at least [`FATAL_COOLDOWN`] ago.
pub fn fatal_restart_allowed(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= FATAL_COOLDOWN)
}

/// Enabled agents with `watch` other than none, in config order.
pub(super) fn watched(cfg: &Config) -> Vec<Agent> {
    cfg.agents
        .iter()
        .filter(|a| a.enabled && a.watch != Watch::None)
        .cloned()
        .collect()
}

/// True when `path` was modified less than `grace` ago.
fn written_within(path: &Path, grace: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < grace)
}

/// True when the pane shows the agent working (`active_re`; a `footer_ui` backend counts only
/// its bottom rows and, with `use_log`, a session log written within `log_grace`).
pub(super) fn pane_active(cfg: &Config, agent: &Agent, pane: &str, use_log: bool) -> bool {
    let b = cfg.backend_of(agent);
    if detect::screen_active(pane, b.active_re.as_ref(), b.footer_ui) {
        return true;
    }
    // A backend with screen rules: the classifier's `busy` is activity too.
    if crate::fleet::screen::classify_text(b, pane)
        .is_some_and(|c| c.state == detect::ScreenState::Busy)
    {
        return true;
    }
    b.footer_ui && use_log && written_within(&cfg.session_log(&agent.session), b.log_grace)
}

/// True when the pane shows a usage-limit banner while the agent is not working. The banner
/// must be below the last text orch typed into the agent (`typed`): a kickoff that mentions
/// "usage limit" is not one.
pub(super) fn pane_limited(cfg: &Config, agent: &Agent, pane: &str, typed: &[String]) -> bool {
    let b = cfg.backend_of(agent);
    let plain = detect::strip_ansi(pane);
    let drawn = detect::after_echo(&plain, typed);
    if detect::screen_active(pane, b.active_re.as_ref(), b.footer_ui) {
        return false;
    }
    b.limit_re.as_ref().is_some_and(|re| re.is_match(drawn))
        || (!b.screen_rules.is_empty()
            && detect::classify_typed(
                pane,
                &b.screen_rules,
                chrono::Local::now().fixed_offset(),
                typed,
            )
            .state
                == detect::ScreenState::RateLimited)
}

impl Watchdog {
    /// Kill (if running) and start `agent` again on the current phase; logs `healed`. Healing
    /// is bounded (`bounds.rs`): false, and nothing done, while it backs off or past its limit.
    pub(super) fn restart_agent(
        &mut self,
        agent: &Agent,
        reason: HealReason,
        detail: &str,
    ) -> bool {
        let screen = self.screens.get(&agent.name).map(|c| c.state.as_str());
        if !self.heal_allowed(agent, reason, screen) {
            return false;
        }
        tracing::warn!(agent = %agent.name, reason = reason.as_str(), "{detail}: restarting");
        if let Err(e) = fleet::stop_session_gracefully(
            &self.cfg,
            &self.tmux,
            &agent.session,
            agent.grace_period,
        ) {
            tracing::warn!("cannot stop {} before restarting it: {e}", agent.name);
        }
        self.idle_since.remove(&agent.session);
        let started = fleet::start_agent(&self.cfg, &self.tmux, agent, phase::current(&self.cfg));
        if let Err(e) = &started {
            tracing::error!("cannot restart {}: {e}", agent.name);
        }
        self.event(
            events::HEALED,
            json!({
                "agent": agent.name, "session": agent.session, "reason": reason.as_str(),
                "detail": detail, "restarted": started.is_ok(),
            }),
        );
        true
    }

    /// The healing pass of the heavy tick over `fleet` (one snapshot for the whole tick).
    /// `skip` names agents already handled this tick (held by a limit, or just restarted);
    /// `panes` holds captures taken earlier this tick.
    pub(super) fn heal_tick(
        &mut self,
        fleet: &Fleet,
        skip: &BTreeSet<String>,
        panes: &HashMap<String, String>,
    ) {
        let seq_done = self.cfg.sequence_complete_file().exists();
        let known: BTreeSet<String> = self
            .cfg
            .backends
            .values()
            .filter_map(|b| b.process_name.clone())
            .collect();
        for agent in watched(&self.cfg) {
            if skip.contains(&agent.name) || (seq_done && agent.kind == Kind::Loop) {
                continue;
            }
            // On a host that is not answering: not gone, just unknown. Never restarted.
            if fleet.unreachable(&agent.session) {
                continue;
            }
            let info = fleet.get(&agent.session);
            let Some(info) = info.filter(|i| !i.dead) else {
                // The restart policy owns exits of agents with `restart` set; an agent stopped
                // on purpose, timed out or given up on stays down.
                if super::policy::owns_restart(&agent)
                    || crate::fleet::records::parked(&self.cfg, &agent.name).is_some()
                {
                    continue;
                }
                // A pane kept after its process exited was read by the screen pass: a known
                // refusal is healed as `refused` (bounded like every heal).
                let refused = info.is_some()
                    && crate::fleet::screen::load_attention(&self.cfg)
                        .get(&agent.name)
                        .is_some_and(|a| a.state != super::screen::HEAL_LIMIT);
                let (reason, detail) = match info {
                    Some(_) if refused => (HealReason::Refused, "its process refused to start"),
                    Some(_) => (HealReason::Gone, "its process exited"),
                    None => (HealReason::Gone, "session is gone"),
                };
                if info.is_none() {
                    crate::fleet::records::update(&self.cfg, &agent.name, |r| {
                        if r.exit_reason.is_none() {
                            r.exit_reason = Some("session gone".into());
                        }
                    });
                }
                if self.restart_agent(&agent, reason, detail) {
                    super::limit::clear_hold(&self.cfg, &agent.session);
                }
                continue;
            };
            let expected = self.cfg.backend_of(&agent).process_name.clone();
            let known_refs: BTreeSet<&str> = known.iter().map(String::as_str).collect();
            let own = &self.cfg.backend_of(&agent).process_names;
            if is_mismatch(expected.as_deref(), &known_refs, &info.command)
                && !own.contains(&info.command)
            {
                let detail = format!(
                    "pane runs {:?}, expected {:?}",
                    info.command,
                    expected.unwrap_or_default()
                );
                self.restart_agent(&agent, HealReason::Mismatch, &detail);
                continue;
            }
            if super::limit::load_hold(&self.cfg, &agent.session).is_some() {
                continue;
            }
            let Some(pane) = self.pane_text(panes, &agent) else {
                continue;
            };
            self.heal_fatal(&agent, &pane);
        }
    }

    fn heal_fatal(&mut self, agent: &Agent, pane: &str) {
        let b = self.cfg.backend_of(agent);
        let typed = self.typed_texts(agent);
        let plain = detect::strip_ansi(pane);
        let drawn = detect::after_echo(&plain, &typed);
        let fatal = b.fatal_re.as_ref().is_some_and(|re| re.is_match(drawn));
        if !fatal
            || pane_active(&self.cfg, agent, pane, true)
            || pane_limited(&self.cfg, agent, pane, &typed)
        {
            return;
        }
        let now = Instant::now();
        if !fatal_restart_allowed(self.last_fatal.get(&agent.name).copied(), now) {
            if self.fatal_reported.insert(agent.name.clone()) {
                tracing::error!(
                    agent = %agent.name,
                    "fatal error again right after a restart; not restarting in a loop"
                );
            }
            return;
        }
        if self.restart_agent(agent, HealReason::Fatal, "pane shows a fatal error") {
            self.fatal_reported.remove(&agent.name);
            self.last_fatal.insert(agent.name.clone(), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_definite_other_backend_process_is_a_mismatch() {
        let known: BTreeSet<&str> = ["claude", "codex", "node"].into();
        assert!(is_mismatch(Some("claude"), &known, "codex"));
        assert!(!is_mismatch(Some("claude"), &known, "claude"));
        assert!(!is_mismatch(Some("claude"), &known, "bash"), "a shell");
        assert!(!is_mismatch(None, &known, "codex"), "nothing expected");
    }

    #[test]
    fn a_fatal_restart_waits_out_its_cooldown() {
        let now = Instant::now();
        assert!(fatal_restart_allowed(None, now));
        assert!(!fatal_restart_allowed(Some(now), now));
        let later = now + FATAL_COOLDOWN;
        assert!(fatal_restart_allowed(Some(now), later));
    }
}
