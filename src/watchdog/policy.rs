//! Supervision policies on each tick: `timeout`, live reconcile (changed launch settings,
//! agents added/removed) and the `restart` policy with exponential backoff and `max_restarts`.
//!
//! The run records these decisions read and write are `fleet::records`. Healing (`heal`) must
//! leave an agent alone when [`owns_restart`] is true (the policy decides its restarts) or
//! `records::parked` names a reason.
use std::time::Duration;

use serde_json::json;

use super::Watchdog;
use crate::config::{Agent, Config, Restart, RestartPolicy};
use crate::fleet::records::{now_ms, record, update};
use crate::tmux::Fleet;
use crate::{events, fleet, phase};

/// How long to wait for tmux to report a dead pane's exit status.
const STATUS_SETTLE: Duration = Duration::from_secs(2);

/// The restart policy, not healing, decides when this agent restarts.
pub fn owns_restart(agent: &Agent) -> bool {
    agent.restart.is_some()
}

/// The wait before restart number `restarts + 1`: `backoff * 2^restarts`, capped.
pub fn backoff_delay(p: &RestartPolicy, restarts: u32) -> Duration {
    let factor = 2u32.saturating_pow(restarts.min(30));
    p.backoff.saturating_mul(factor).min(p.backoff_max)
}

/// What to do about an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Leave it stopped (restart = no, or a clean exit under on-failure).
    Leave,
    /// Restart after this delay.
    Restart(Duration),
    /// `max_restarts` used up: leave it stopped and say so.
    GiveUp,
}

/// Pure: the decision for an exit with `status` (`None` = unknown, counted as a failure)
/// after `restarts` restarts.
pub fn decide_exit(p: &RestartPolicy, status: Option<i32>, restarts: u32) -> OnExit {
    let wants = match p.mode {
        Restart::No => false,
        Restart::OnFailure => status != Some(0),
        Restart::Always => true,
    };
    if !wants {
        OnExit::Leave
    } else if p.max_restarts > 0 && restarts >= p.max_restarts {
        OnExit::GiveUp
    } else {
        OnExit::Restart(backoff_delay(p, restarts))
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Watchdog {
    /// The policy part of every tick; `before` is the config as it was before this tick's
    /// re-read, `snapshot` the tick's view of the tmux server. True when it started or stopped
    /// a session (the caller's snapshot is then stale).
    pub(super) fn policy_tick(&mut self, before: &Config, snapshot: Option<&Fleet>) -> bool {
        let start = self.policy_changes.get();
        self.reconcile_membership(before);
        let fresh;
        let fleet = match snapshot {
            Some(f) if self.policy_changes.get() == start => f,
            _ => match self.tmux.fleet() {
                Ok(f) => {
                    fresh = f;
                    &fresh
                }
                Err(e) => {
                    tracing::warn!("cannot list tmux sessions (policies skipped this tick): {e}");
                    return self.policy_changes.get() != start;
                }
            },
        };
        let agents: Vec<Agent> = self
            .cfg
            .agents
            .iter()
            .filter(|a| a.enabled)
            .cloned()
            .collect();
        for a in &agents {
            match fleet.get(&a.session) {
                Some(p) if p.dead => {
                    // Why it exited is read before the policy clears its pane.
                    self.read_exit_once(a, p);
                    self.handle_exit(a, p.dead_status)
                }
                Some(_) => self.check_running(a),
                // Its host did not answer: nothing is known, so nothing is done.
                None if fleet.unreachable(&a.session) => {}
                None => self.restart_if_due(a),
            }
        }
        self.policy_changes.get() != start
    }

    /// Count a session started or stopped by the policy pass.
    fn changed(&self) {
        self.policy_changes
            .set(self.policy_changes.get().wrapping_add(1));
    }

    fn phase_of(&self, a: &Agent) -> Option<crate::config::Phase> {
        (a.kind == crate::config::Kind::Loop)
            .then(|| phase::current(&self.cfg).cloned())
            .flatten()
    }

    fn start(&self, a: &Agent) -> bool {
        self.changed();
        let phase = self.phase_of(a);
        match fleet::start_agent(&self.cfg, &self.tmux, a, phase.as_ref()) {
            Ok(_) => true,
            Err(e) => {
                tracing::error!("cannot start agent {}: {e}", a.name);
                false
            }
        }
    }

    fn stop(&self, a: &Agent) {
        self.changed();
        if let Err(e) = fleet::stop_agent(&self.cfg, &self.tmux, a) {
            tracing::error!("cannot stop agent {}: {e}", a.name);
        }
    }

    /// Agents added to the config (or enabled) start; removed (or disabled) ones stop.
    fn reconcile_membership(&self, before: &Config) {
        let enabled = |c: &Config, name: &str| c.agent(name).is_some_and(|a| a.enabled);
        for old in before.agents.iter().filter(|a| a.enabled) {
            if !enabled(&self.cfg, &old.name) {
                tracing::info!(agent = %old.name, "removed from the config: stopping it");
                self.changed();
                if let Ok(true) = fleet::stop_agent(&self.cfg, &self.tmux, old) {
                    self.event(
                        events::AGENT_STOPPED,
                        json!({ "agent": old.name, "session": old.session, "by": "reconcile" }),
                    );
                }
            }
        }
        for new in self.cfg.agents.iter().filter(|a| a.enabled) {
            if !enabled(before, &new.name) && !self.tmux.has_session(&new.session).unwrap_or(true) {
                tracing::info!(agent = %new.name, "added to the config: starting it");
                if self.start(new) {
                    self.event(
                        events::RECONCILED,
                        json!({ "agent": new.name, "change": "added" }),
                    );
                }
            }
        }
    }

    /// A live agent: its timeout, a changed launch fingerprint, the restart-count reset.
    fn check_running(&self, a: &Agent) {
        let rec = record(&self.cfg, &a.name);
        if rec.stopped {
            return;
        }
        let now = now_ms();
        let up_for = rec.started_at.map(|t| now.saturating_sub(t));
        if let (Some(limit), Some(up)) = (a.timeout, up_for)
            && up >= ms(limit)
        {
            tracing::info!(agent = %a.name, ?limit, "ran past its timeout: stopping it");
            self.stop(a);
            update(&self.cfg, &a.name, |r| r.timed_out = true);
            self.event(
                events::TIMED_OUT,
                json!({ "agent": a.name, "session": a.session, "timeout_secs": limit.as_secs_f64() }),
            );
            return;
        }
        let phase = self.phase_of(a);
        if rec.phase.is_some() && rec.phase.as_deref() != phase.as_ref().map(|p| p.id.as_str()) {
            return; // the phase moved under a running loop: human_phase_tick moves the loops
        }
        match fleet::launch_fingerprint(&self.cfg, a, phase.as_ref()) {
            Ok(now_fp) => match &rec.fingerprint {
                None => update(&self.cfg, &a.name, |r| r.fingerprint = Some(now_fp)),
                // A held agent is never rebooted: the change is applied once the hold lifts.
                Some(fp)
                    if *fp != now_fp
                        && super::limit::load_hold(&self.cfg, &a.session).is_none()
                        && crate::fleet::pool_hold::holding(&self.cfg, &a.name).is_none() =>
                {
                    tracing::info!(agent = %a.name, "launch settings changed: restarting it");
                    self.stop(a);
                    if self.start(a) {
                        self.event(
                            events::RECONCILED,
                            json!({ "agent": a.name, "change": "settings" }),
                        );
                    }
                    return;
                }
                Some(_) => {}
            },
            Err(e) => tracing::warn!("cannot plan agent {} to compare its settings: {e}", a.name),
        }
        if let (Some(p), Some(up)) = (&a.restart, up_for)
            && rec.restarts > 0
            && up >= ms(p.reset_after)
        {
            update(&self.cfg, &a.name, |r| r.restarts = 0);
        }
    }

    /// The agent's process exited (its pane is dead): record it, save the scrollback, and
    /// schedule a restart, give up or leave it stopped as the policy says.
    fn handle_exit(&self, a: &Agent, status: Option<i32>) {
        let rec = record(&self.cfg, &a.name);
        if rec.stopped {
            return;
        }
        let Some(policy) = &a.restart else {
            return; // no policy: healing's business
        };
        let status = status
            .or_else(|| fleet::recorded_exit_status(&self.cfg, &a.session))
            .or_else(|| self.settled_status(&a.session));
        let now = now_ms();
        let decision = decide_exit(policy, status, rec.restarts);
        self.changed();
        tracing::info!(agent = %a.name, ?status, ?decision, "agent exited");
        if let Err(e) =
            fleet::stop_session_gracefully(&self.cfg, &self.tmux, &a.session, a.grace_period)
        {
            tracing::warn!("cannot clear agent {}'s dead session: {e}", a.name);
        }
        self.event(
            events::AGENT_EXITED,
            json!({ "agent": a.name, "status": status, "restarts": rec.restarts }),
        );
        update(&self.cfg, &a.name, |r| {
            r.exited_at = Some(now);
            r.exit_status = status;
            r.next_restart_at = match decision {
                OnExit::Restart(d) => Some(now.saturating_add(ms(d))),
                _ => None,
            };
            r.gave_up = decision == OnExit::GiveUp;
        });
        if decision == OnExit::GiveUp {
            self.event(
                events::GAVE_UP,
                json!({ "agent": a.name, "restarts": rec.restarts, "status": status }),
            );
        }
    }

    /// tmux 3.3 marks a pane dead when its output ends, and fills `pane_dead_status` only once
    /// it has reaped the process: ask again for a moment before calling the status unknown.
    fn settled_status(&self, session: &str) -> Option<i32> {
        let deadline = std::time::Instant::now() + STATUS_SETTLE;
        while std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let pane = self.tmux.fleet().ok()?.get(session).cloned()?;
            if pane.dead_status.is_some() {
                return pane.dead_status;
            }
        }
        tracing::warn!(
            session,
            "tmux gave no exit status for the dead pane: counted as a failure"
        );
        None
    }

    /// A scheduled restart whose backoff has passed.
    fn restart_if_due(&self, a: &Agent) {
        if a.restart.is_none() {
            return;
        }
        let rec = record(&self.cfg, &a.name);
        let Some(due) = rec.next_restart_at else {
            return;
        };
        if rec.stopped || rec.gave_up || now_ms() < due {
            return;
        }
        let attempt = rec.restarts + 1;
        if self.start(a) {
            update(&self.cfg, &a.name, |r| r.restarts = attempt);
            self.event(
                events::RESTARTED,
                json!({ "agent": a.name, "attempt": attempt, "after_status": rec.exit_status }),
            );
        } else {
            // Try again after the next backoff rather than every tick.
            if let Some(p) = &a.restart {
                let next = now_ms().saturating_add(ms(backoff_delay(p, attempt)));
                update(&self.cfg, &a.name, |r| {
                    r.restarts = attempt;
                    r.next_restart_at = Some(next);
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: Restart, max: u32) -> RestartPolicy {
        RestartPolicy {
            mode,
            max_restarts: max,
            backoff: Duration::from_secs(2),
            backoff_max: Duration::from_secs(10),
            reset_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy(Restart::Always, 0);
        let d: Vec<u64> = (0..5).map(|n| backoff_delay(&p, n).as_secs()).collect();
        assert_eq!(d, [2, 4, 8, 10, 10]);
        assert_eq!(backoff_delay(&p, 1000), Duration::from_secs(10));
    }

    #[test]
    fn on_failure_restarts_a_crash_but_not_a_clean_exit() {
        let p = policy(Restart::OnFailure, 3);
        assert_eq!(decide_exit(&p, Some(0), 0), OnExit::Leave);
        assert_eq!(
            decide_exit(&p, Some(1), 0),
            OnExit::Restart(Duration::from_secs(2))
        );
        assert_eq!(
            decide_exit(&p, None, 1),
            OnExit::Restart(Duration::from_secs(4))
        );
        assert_eq!(decide_exit(&p, Some(1), 3), OnExit::GiveUp);
    }

    #[test]
    fn always_restarts_both_and_no_restarts_neither() {
        let always = policy(Restart::Always, 0);
        assert!(matches!(
            decide_exit(&always, Some(0), 99),
            OnExit::Restart(_)
        ));
        assert!(matches!(
            decide_exit(&always, Some(1), 0),
            OnExit::Restart(_)
        ));
        let no = policy(Restart::No, 0);
        assert_eq!(decide_exit(&no, Some(1), 0), OnExit::Leave);
    }
}
