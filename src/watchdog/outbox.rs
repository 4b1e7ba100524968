//! The watchdog's outbox pass: a queued ping (`fleet::pings`) is typed only once the agent's
//! screen takes input; dialogs, logins, errors and starting screens make it wait.
use serde_json::{Value, json};

use super::Watchdog;
use crate::config::Agent;
use crate::detect::{Classification, ScreenState};
use crate::events;
use crate::fleet::pings::{Outbox, PendingPing, enqueue, load, outbox_file, save};
use crate::tmux::Fleet;

/// Typed but not confirmed this many times: given up (reported as not delivered).
pub const MAX_ATTEMPTS: u32 = 3;

/// The `waiting_on` of a ping held back because its agent's account pool is held.
pub const POOL_HELD: &str = "pool_held";

/// What typing into `state` would do: `Some(true)` takes input now, `Some(false)` must wait,
/// for a backend without screen rules (`None`) always true (typed as before). A `busy` screen
/// takes input when the CLI queues typed text (`busy_input`); a usage-limit screen takes only
/// the limit probe. Dialogs, login, errors, starting, exited and unknown screens wait: a ping's
/// keys must never answer a dialog. Pure.
pub fn takes_input(state: Option<ScreenState>, busy_input: bool, probe: bool) -> bool {
    match state {
        None => true,
        Some(ScreenState::IdleInput) => true,
        Some(ScreenState::Busy) => busy_input,
        Some(ScreenState::RateLimited) => probe,
        Some(_) => false,
    }
}

impl Watchdog {
    /// Queue a ping for `agent` on disk; it is typed by [`Watchdog::outbox_tick`].
    pub(super) fn queue_ping(&self, agent: &str, ping: PendingPing) {
        let mut outbox = load(&self.cfg, agent);
        if enqueue(&mut outbox, ping) {
            save(&self.cfg, agent, &outbox);
        }
    }

    /// True when `agent`'s screen (as classified this tick) takes typed input now.
    pub(super) fn screen_takes_input(&self, agent: &Agent, probe: bool) -> bool {
        let backend = self.cfg.backend_of(agent);
        let state = if backend.screen_rules.is_empty() {
            None
        } else {
            Some(
                self.screens
                    .get(&agent.name)
                    .map_or(ScreenState::Unknown, |c: &Classification| c.state),
            )
        };
        takes_input(state, backend.busy_input, probe)
    }

    /// Type the oldest queued ping of every agent that can take input now (one per agent per
    /// tick: the screen is looked at again before the next); the others keep waiting, with one
    /// `ping_queued` event per wait. A ping leaves the queue once delivered, or after
    /// [`MAX_ATTEMPTS`] unconfirmed submits. A backend without screen rules keeps the old
    /// behaviour: one attempt, and a ping for an agent that is not running is lost.
    pub(super) fn outbox_tick(&mut self, fleet: &Fleet) {
        let agents: Vec<Agent> = self.cfg.agents.clone();
        for agent in &agents {
            // During a handoff the agent writes its note: other pings wait for the new session.
            if !outbox_file(&self.cfg, &agent.name).exists()
                || crate::fleet::rotation::in_handoff(&self.cfg, &agent.name)
            {
                continue;
            }
            let mut outbox = load(&self.cfg, &agent.name);
            let before = outbox.clone();
            let running = fleet.get(&agent.session).is_some_and(|p| !p.dead);
            let has_rules = !self.cfg.backend_of(agent).screen_rules.is_empty();
            if let Some(hold) = self.pool_holding(&agent.name) {
                // Its account pool is held: nothing is typed, every ping stays queued.
                self.wait_on_pool(agent, &mut outbox, &hold.pool);
            } else if !has_rules && !running {
                for ping in outbox.pings.drain(..) {
                    self.log_ping(agent, &ping, false);
                }
            } else if !running || !self.screen_takes_input(agent, false) {
                let on = if running {
                    self.screens
                        .get(&agent.name)
                        .map_or("unknown", |c| c.state.as_str())
                } else {
                    "not running"
                };
                for ping in &mut outbox.pings {
                    if ping.waiting_on.as_deref() != Some(on) {
                        ping.waiting_on = Some(on.to_string());
                        tracing::info!(agent = %agent.name, id = %ping.id, waiting_on = on, "ping waits");
                        self.event(
                            events::PING_QUEUED,
                            json!({ "agent": agent.name, "reason": ping.reason, "id": ping.id, "waiting_on": on }),
                        );
                    }
                }
            } else if !has_rules {
                // As before the queue: every ping typed at once, one attempt each.
                for ping in std::mem::take(&mut outbox.pings) {
                    let delivered = self.ping_agent(&agent.name, &ping.text);
                    self.log_ping(agent, &ping, delivered);
                }
            } else if let Some(ping) = outbox.pings.first_mut() {
                let delivered = self.ping_agent(&agent.name, &ping.text);
                ping.attempts += 1;
                if delivered || ping.attempts >= MAX_ATTEMPTS {
                    let ping = outbox.pings.remove(0);
                    self.log_ping(agent, &ping, delivered);
                }
            }
            if outbox != before {
                save(&self.cfg, &agent.name, &outbox);
            }
        }
    }

    /// Mark every queued ping of `agent` as waiting on its held pool (one `ping_queued` each).
    fn wait_on_pool(&self, agent: &Agent, outbox: &mut Outbox, pool: &str) {
        for ping in &mut outbox.pings {
            if ping.waiting_on.as_deref() != Some(POOL_HELD) {
                ping.waiting_on = Some(POOL_HELD.to_string());
                tracing::info!(agent = %agent.name, id = %ping.id, pool, "ping waits for its pool");
                self.event(
                    events::PING_QUEUED,
                    json!({
                        "agent": agent.name, "reason": ping.reason, "id": ping.id,
                        "waiting_on": POOL_HELD, "pool": pool,
                    }),
                );
            }
        }
    }

    fn log_ping(&self, agent: &Agent, ping: &PendingPing, delivered: bool) {
        tracing::info!(agent = %agent.name, reason = %ping.reason, delivered, "ping");
        let mut fields = json!({
            "agent": agent.name, "reason": ping.reason, "id": ping.id, "delivered": delivered,
            "queued_at": ping.created_at,
        });
        if let (Value::Object(extra), Value::Object(out)) = (&ping.fields, &mut fields) {
            for (k, v) in extra {
                out.insert(k.clone(), v.clone());
            }
        }
        self.event(events::PING, fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_waits_on_dialogs_logins_errors_and_starting_screens() {
        for s in [
            ScreenState::TrustPrompt,
            ScreenState::PermissionPrompt,
            ScreenState::Onboarding,
            ScreenState::LoginRequired,
            ScreenState::AuthError,
            ScreenState::NetworkError,
            ScreenState::Starting,
            ScreenState::Exited,
            ScreenState::Unknown,
            ScreenState::RateLimited,
        ] {
            assert!(!takes_input(Some(s), true, false), "{s}");
        }
    }

    #[test]
    fn a_ping_goes_into_an_input_box_and_into_a_busy_cli_that_queues_input() {
        assert!(takes_input(Some(ScreenState::IdleInput), false, false));
        assert!(takes_input(Some(ScreenState::Busy), true, false));
        assert!(!takes_input(Some(ScreenState::Busy), false, false));
    }

    #[test]
    fn only_the_limit_probe_goes_into_a_limit_screen() {
        assert!(takes_input(Some(ScreenState::RateLimited), true, true));
        assert!(!takes_input(
            Some(ScreenState::PermissionPrompt),
            true,
            true
        ));
    }

    #[test]
    fn a_backend_without_screen_rules_is_typed_into_as_before() {
        assert!(takes_input(None, false, false));
    }

    #[test]
    fn a_ping_is_queued_once_by_its_id() {
        let mut o = Outbox::default();
        let p = PendingPing::new("claim-abc".into(), "claim", "ping".into(), Value::Null);
        assert!(enqueue(&mut o, p.clone()));
        assert!(!enqueue(&mut o, p));
        assert_eq!(o.pings.len(), 1);
    }
}
