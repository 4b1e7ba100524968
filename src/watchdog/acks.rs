//! Acknowledgement of typed pings: acked by the agent's hook, arrived by its transcript or
//! screen, typed again (at most `max_resends` times, only into an idle agent) or lost.
use std::time::Duration;

use serde_json::json;

use super::Watchdog;
use crate::config::Agent;
use crate::detect::ScreenState;
use crate::events;
use crate::fleet::ping_log::{self, AckView, OutboxRecord};
use crate::fleet::pings::{Outbox, PendingPing};

/// How long a confirmed ping to an agent with hooks may go without an ack before it is typed
/// again (its UserPromptSubmit hook fires within a second of a submit that took).
pub const ACK_WAIT: Duration = Duration::from_secs(8);
/// The same for a submit the screen did not confirm (it may still have gone in).
pub const UNCONFIRMED_WAIT: Duration = Duration::from_secs(2);

/// What to do with a typed ping that is neither acked nor arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypedStep {
    Wait,
    Resend,
    Lost,
}

/// The next step of a typed, unacknowledged ping: typed `attempts` times, the last `since` ago,
/// waiting `wait` for an ack; typed again only into an `idle` agent and while `max_resends`
/// is not spent, lost once the wait after the last allowed typing is over. Pure.
pub fn typed_step(
    attempts: u32,
    max_resends: u32,
    since: Duration,
    wait: Duration,
    idle: bool,
) -> TypedStep {
    if since < wait {
        TypedStep::Wait
    } else if attempts > max_resends {
        TypedStep::Lost
    } else if idle {
        TypedStep::Resend
    } else {
        TypedStep::Wait
    }
}

fn millis(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Watchdog {
    /// Settle `agent`'s typed pings: an acked or arrived one leaves the queue (`ping_acked`),
    /// one past its last allowed typing is lost (`ping_lost`). Returns the index of the first
    /// one to type again now, if any.
    pub(super) fn settle_typed(
        &self,
        agent: &Agent,
        outbox: &mut Outbox,
        running: bool,
        hooked: bool,
    ) -> Option<usize> {
        if !outbox.pings.iter().any(|p| p.state == "typed") {
            return None;
        }
        let view = hooked.then(|| AckView::read(&self.cfg, &agent.name));
        let idle = running && self.agent_idle(agent, hooked);
        let now = chrono::Utc::now().timestamp_millis();
        let mut resend = None;
        let mut kept = Vec::with_capacity(outbox.pings.len());
        for mut ping in std::mem::take(&mut outbox.pings) {
            if ping.state != "typed" {
                kept.push(ping);
                continue;
            }
            let typed_at = ping.typed_at.as_deref().and_then(millis).unwrap_or(now);
            if let Some((source, at)) = view.as_ref().and_then(|v| v.ack(&ping.ping_id)) {
                let latency = (at.unwrap_or(now) - typed_at).max(0);
                self.settle(agent, &ping, source.as_str(), source.state(), Some(latency));
                continue;
            }
            let wait = match (hooked, ping.confirmed) {
                (true, true) => ACK_WAIT,
                (true, false) => UNCONFIRMED_WAIT,
                (false, _) => Duration::ZERO,
            };
            let since = Duration::from_millis((now - typed_at).max(0) as u64);
            match typed_step(
                ping.attempts,
                self.cfg.watchdog.max_resends,
                since,
                wait,
                idle,
            ) {
                TypedStep::Lost => {
                    let why = if ping.confirmed {
                        "never acknowledged"
                    } else {
                        "submit not confirmed"
                    };
                    self.lose(agent, &mut ping, why);
                    continue;
                }
                TypedStep::Resend if resend.is_none() => resend = Some(kept.len()),
                TypedStep::Resend | TypedStep::Wait => {}
            }
            kept.push(ping);
        }
        outbox.pings = kept;
        resend
    }

    /// Settle `ping`, just typed, at once when its ack is in already (the hook runs as the
    /// submit takes, often before the screen confirms it); true when it was.
    pub(super) fn acked_already(&self, agent: &Agent, ping: &PendingPing) -> bool {
        let Some((source, at)) = AckView::read(&self.cfg, &agent.name).ack(&ping.ping_id) else {
            return false;
        };
        let now = chrono::Utc::now().timestamp_millis();
        let typed_at = ping.typed_at.as_deref().and_then(millis).unwrap_or(now);
        let latency = (at.unwrap_or(now) - typed_at).max(0);
        self.settle(agent, ping, source.as_str(), source.state(), Some(latency));
        true
    }

    /// Whether `agent` is idle enough to be typed into again: its screen shows the input box
    /// (screen rules; `takes_input` for an agent without hooks, whose busy CLI queues input),
    /// or, without screen rules, its pane shows no activity.
    fn agent_idle(&self, agent: &Agent, hooked: bool) -> bool {
        let backend = self.cfg.backend_of(agent);
        if !backend.screen_rules.is_empty() {
            if !hooked {
                return self.screen_takes_input(agent, false);
            }
            return self
                .screens
                .get(&agent.name)
                .is_some_and(|c| c.state == ScreenState::IdleInput);
        }
        match self.tmux.capture(&agent.session, super::heal::CAPTURE_ROWS) {
            Ok(pane) => !super::heal::pane_active(&self.cfg, agent, &pane, true),
            Err(_) => false,
        }
    }

    /// `ping` reached `agent` (`source` = hook, transcript or screen): its final step and a
    /// `ping_acked` event.
    pub(super) fn settle(
        &self,
        agent: &Agent,
        ping: &PendingPing,
        source: &str,
        state: &str,
        latency_ms: Option<i64>,
    ) {
        let mut rec = OutboxRecord::new(&ping.ping_id, state, &ping.reason, ping.attempts);
        rec.confirmed_by = Some(source.to_string());
        rec.latency_ms = latency_ms;
        ping_log::record(&self.cfg, &agent.name, &rec);
        tracing::info!(agent = %agent.name, id = %ping.ping_id, source, ?latency_ms, "ping acknowledged");
        self.event(
            events::PING_ACKED,
            json!({
                "agent": agent.name, "id": ping.ping_id, "reason": ping.reason, "source": source,
                "latency_ms": latency_ms, "attempts": ping.attempts,
            }),
        );
    }

    /// `ping` is given up: its `lost` step and a `ping_lost` event.
    pub(super) fn lose(&self, agent: &Agent, ping: &mut PendingPing, why: &str) {
        if ping.ping_id.is_empty() {
            ping.ping_id = ping_log::next_id(&self.cfg, &agent.name);
        }
        let rec = OutboxRecord::new(&ping.ping_id, "lost", &ping.reason, ping.attempts);
        ping_log::record(&self.cfg, &agent.name, &rec);
        tracing::warn!(agent = %agent.name, id = %ping.ping_id, attempts = ping.attempts, why, "ping lost");
        self.event(
            events::PING_LOST,
            json!({
                "agent": agent.name, "id": ping.ping_id, "reason": ping.reason,
                "attempts": ping.attempts, "why": why,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn max_resends(watchdog: &str) -> crate::Result<u32> {
        let text = format!(
            "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[watchdog]\n{watchdog}\n"
        );
        let path = std::path::Path::new("/tmp/agents.toml");
        crate::config::load_str(&text, path, crate::config::LoadOptions::STRICT)
            .map(|l| l.config.watchdog.max_resends)
    }

    #[test]
    fn max_resends_defaults_to_two_and_a_bad_value_names_the_key() {
        assert_eq!(max_resends("").unwrap(), 2);
        assert_eq!(max_resends("max_resends = 0").unwrap(), 0);
        let err = max_resends("max_resends = 99").unwrap_err().to_string();
        assert!(err.contains("[watchdog].max_resends is 99"), "{err}");
        assert!(max_resends("max_resends = -1").is_err());
    }

    #[test]
    fn a_typed_ping_waits_for_its_ack_before_anything_else() {
        assert_eq!(typed_step(1, 2, S, ACK_WAIT, true), TypedStep::Wait);
        assert_eq!(typed_step(3, 2, S, ACK_WAIT, true), TypedStep::Wait);
    }

    #[test]
    fn an_unacked_ping_is_typed_again_only_into_an_idle_agent() {
        assert_eq!(
            typed_step(1, 2, ACK_WAIT, ACK_WAIT, true),
            TypedStep::Resend
        );
        assert_eq!(typed_step(1, 2, ACK_WAIT, ACK_WAIT, false), TypedStep::Wait);
    }

    #[test]
    fn a_ping_is_resent_at_most_max_resends_times_then_lost() {
        assert_eq!(
            typed_step(2, 2, ACK_WAIT, ACK_WAIT, true),
            TypedStep::Resend
        );
        assert_eq!(typed_step(3, 2, ACK_WAIT, ACK_WAIT, true), TypedStep::Lost);
        assert_eq!(typed_step(3, 2, ACK_WAIT, ACK_WAIT, false), TypedStep::Lost);
        assert_eq!(typed_step(1, 0, ACK_WAIT, ACK_WAIT, true), TypedStep::Lost);
    }
}
