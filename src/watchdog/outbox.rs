//! The watchdog's outbox pass: a queued ping (`fleet::pings`) is typed, with its
//! `[orch:ping <id>]` mark, only once the agent's screen takes input; acks in `acks.rs`.
use std::time::Instant;

use serde_json::{Value, json};

use super::Watchdog;
use crate::config::Agent;
use crate::detect::{Classification, ScreenState};
use crate::events;
use crate::fleet::ping_log::{self, OutboxRecord};
use crate::fleet::pings::{Outbox, PendingPing, enqueue, load, outbox_file, save};
use crate::tmux::Fleet;

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
    /// Queue a ping for `agent` on disk (it gets its ping id now, and a `queued` step in the
    /// outbox history); it is typed by [`Watchdog::outbox_tick`]. Returns its ping id (the
    /// queued one's when a ping with its key waits already): ask
    /// [`crate::fleet::pings::has_arrived`] about it later.
    pub(super) fn queue_ping(&self, agent: &str, mut ping: PendingPing) -> String {
        let mut outbox = load(&self.cfg, agent);
        if let Some(queued) = outbox.pings.iter().find(|p| p.id == ping.id) {
            return queued.ping_id.clone();
        }
        if ping.ping_id.is_empty() {
            ping.ping_id = ping_log::next_id(&self.cfg, agent);
        }
        let id = ping.ping_id.clone();
        let mut rec = OutboxRecord::new(&id, "queued", &ping.reason, 0);
        rec.key = Some(ping.id.clone());
        if enqueue(&mut outbox, ping) {
            save(&self.cfg, agent, &outbox);
            ping_log::record(&self.cfg, agent, &rec);
        }
        id
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

    /// Settle the typed pings of every agent (acked, arrived, typed again or lost: `acks.rs`),
    /// then type the oldest queued ping of every agent that can take input now (one per agent
    /// per tick: the screen is looked at again before the next); the others keep waiting, with
    /// one `ping_queued` event per wait. A backend without screen rules and without hooks keeps
    /// the old behaviour: every ping typed at once, one attempt each, and a ping for an agent
    /// that is not running is lost.
    pub(super) fn outbox_tick(&mut self, fleet: &Fleet) {
        let agents: Vec<Agent> = self.cfg.agents.clone();
        for agent in &agents {
            self.outbox_agent(fleet, agent);
        }
    }

    /// The outbox pass for one agent (see [`Watchdog::outbox_tick`]).
    pub(super) fn outbox_agent(&mut self, fleet: &Fleet, agent: &Agent) {
        // During a handoff the agent writes its note: other pings wait for the new session.
        if !outbox_file(&self.cfg, &agent.name).exists()
            || crate::fleet::rotation::in_handoff(&self.cfg, &agent.name)
        {
            return;
        }
        let mut outbox = load(&self.cfg, &agent.name);
        let before = outbox.clone();
        let running = fleet.get(&agent.session).is_some_and(|p| !p.dead);
        let has_rules = !self.cfg.backend_of(agent).screen_rules.is_empty();
        let hooked = acks_by_hook(&self.cfg, agent);
        let resend = self.settle_typed(agent, &mut outbox, running, hooked);
        let queued = outbox.pings.iter().position(|p| p.state != "typed");
        if let Some(hold) = self.pool_holding(&agent.name) {
            // Its account pool is held: nothing is typed, every ping stays queued.
            self.wait_on_pool(agent, &mut outbox, &hold.pool);
        } else if !has_rules && !hooked && !running {
            for mut ping in take_queued(&mut outbox) {
                self.log_ping(agent, &ping, false);
                self.lose(agent, &mut ping, "not running");
            }
        } else if !running
            || !self.screen_takes_input(agent, false)
            || self.redeliver_waits(agent, &outbox)
        {
            let on = if running {
                self.screens
                    .get(&agent.name)
                    .map_or("unknown", |c| c.state.as_str())
            } else {
                "not running"
            };
            for ping in outbox.pings.iter_mut().filter(|p| p.state != "typed") {
                if ping.waiting_on.as_deref() != Some(on) {
                    ping.waiting_on = Some(on.to_string());
                    tracing::info!(agent = %agent.name, id = %ping.ping_id, waiting_on = on, "ping waits");
                    self.event(
                        events::PING_QUEUED,
                        json!({
                            "agent": agent.name, "reason": ping.reason, "id": ping.ping_id,
                            "key": ping.id, "waiting_on": on,
                        }),
                    );
                }
            }
        } else if !has_rules && !hooked {
            // As before the acks: every ping typed at once, one attempt each.
            for mut ping in take_queued(&mut outbox) {
                self.type_ping(agent, &mut ping);
                self.after_screen_typing(agent, &mut ping, hooked, true);
            }
        } else if let Some(i) = queued.into_iter().chain(resend).min() {
            // The oldest first: a ping due again goes before the ones queued after it.
            let mut ping = outbox.pings.remove(i);
            self.type_ping(agent, &mut ping);
            let settled = if hooked {
                self.acked_already(agent, &ping)
            } else {
                self.after_screen_typing(agent, &mut ping, hooked, false)
            };
            if !settled {
                outbox.pings.insert(i, ping);
            }
        }
        if outbox != before {
            save(&self.cfg, &agent.name, &outbox);
        }
    }

    /// True when the next ping is a redelivery to an agent whose backend has no screen rules and
    /// whose pane is (or may still be) working: the new process is still on its kickoff, and a
    /// line typed now would go unconfirmed and be lost. It waits for a quiet screen instead.
    fn redeliver_waits(&self, agent: &Agent, outbox: &Outbox) -> bool {
        let next = outbox.pings.iter().find(|p| p.state != "typed");
        if next.is_none_or(|p| p.reason != "redeliver")
            || !self.cfg.backend_of(agent).screen_rules.is_empty()
        {
            return false;
        }
        match self.pane_cache.get(&agent.session) {
            Some(c) => super::heal::pane_active(&self.cfg, agent, &c.text, true),
            // Not looked at yet this process (the care pass captures watched agents only).
            None => agent.watch != crate::config::Watch::None,
        }
    }

    /// Mark every queued ping of `agent` as waiting on its held pool (one `ping_queued` each).
    fn wait_on_pool(&self, agent: &Agent, outbox: &mut Outbox, pool: &str) {
        for ping in outbox.pings.iter_mut().filter(|p| p.state != "typed") {
            if ping.waiting_on.as_deref() != Some(POOL_HELD) {
                ping.waiting_on = Some(POOL_HELD.to_string());
                tracing::info!(agent = %agent.name, id = %ping.ping_id, pool, "ping waits for its pool");
                self.event(
                    events::PING_QUEUED,
                    json!({
                        "agent": agent.name, "reason": ping.reason, "id": ping.ping_id,
                        "key": ping.id, "waiting_on": POOL_HELD, "pool": pool,
                    }),
                );
            }
        }
    }

    /// Type `ping` (its text and `[orch:ping <id>]` mark) into `agent` now: a `typed` step in
    /// the history and a `ping` event; the ping's `attempts`, `typed_at`, `confirmed` move.
    pub(super) fn type_ping(&self, agent: &Agent, ping: &mut PendingPing) -> bool {
        if ping.ping_id.is_empty() {
            ping.ping_id = ping_log::next_id(&self.cfg, &agent.name);
        }
        let text = ping_log::mark(&ping.text, &ping.ping_id);
        let typed_at = ping_log::now_rfc3339();
        let began = Instant::now();
        let delivered = self.ping_agent(&agent.name, &text);
        ping.attempts += 1;
        ping.state = "typed".into();
        ping.typed_at = Some(typed_at);
        ping.confirmed = delivered;
        ping.waiting_on = None;
        let mut rec = OutboxRecord::new(&ping.ping_id, "typed", &ping.reason, ping.attempts);
        rec.confirmed = Some(delivered);
        rec.latency_ms = delivered.then(|| began.elapsed().as_millis() as i64);
        ping_log::record(&self.cfg, &agent.name, &rec);
        self.log_ping(agent, ping, delivered);
        delivered
    }

    /// After typing into an agent without hooks: a confirmed submit is the ping's arrival
    /// (`confirmed_by = "screen"`); an unconfirmed one is lost when it may not be typed again
    /// (`last`, or `max_resends` spent). True when the ping is settled (leaves the queue).
    fn after_screen_typing(
        &self,
        agent: &Agent,
        ping: &mut PendingPing,
        hooked: bool,
        last: bool,
    ) -> bool {
        if hooked {
            return false;
        }
        if ping.confirmed {
            let latency = ping_log::history(&self.cfg, &agent.name)
                .iter()
                .rev()
                .find(|r| r.id == ping.ping_id && r.state == "typed")
                .and_then(|r| r.latency_ms);
            self.settle(agent, ping, "screen", "arrived", latency);
            return true;
        }
        if last || ping.attempts > self.cfg.watchdog.max_resends {
            self.lose(agent, ping, "submit not confirmed");
            return true;
        }
        false
    }

    fn log_ping(&self, agent: &Agent, ping: &PendingPing, delivered: bool) {
        tracing::info!(agent = %agent.name, reason = %ping.reason, id = %ping.ping_id, delivered, "ping");
        let mut fields = json!({
            "agent": agent.name, "reason": ping.reason, "id": ping.ping_id, "key": ping.id,
            "delivered": delivered, "attempt": ping.attempts, "queued_at": ping.created_at,
        });
        if let (Value::Object(extra), Value::Object(out)) = (&ping.fields, &mut fields) {
            for (k, v) in extra {
                out.insert(k.clone(), v.clone());
            }
        }
        self.event(events::PING, fields);
    }
}

/// Whether `agent`'s pings wait for an ack from its hooks: `hooks = true` and its hooks have
/// recorded something (a CLI that never runs them, or wiring that did not take, must not make
/// every ping look lost and typed again); otherwise its screen confirms them.
pub fn acks_by_hook(cfg: &crate::config::Config, agent: &Agent) -> bool {
    agent.hooks
        && std::fs::metadata(crate::hooks::hooks_file(&cfg.log_dir, &agent.name))
            .is_ok_and(|m| m.len() > 0)
}

/// The pings of `outbox` not typed yet, taken out of it (oldest first).
fn take_queued(outbox: &mut Outbox) -> Vec<PendingPing> {
    let (queued, typed) = std::mem::take(&mut outbox.pings)
        .into_iter()
        .partition(|p| p.state != "typed");
    outbox.pings = typed;
    queued
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::pings::Outbox;

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
