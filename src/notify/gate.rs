//! The pure notification decisions: which events a sink wants, the repeat rule (one message per
//! (event, agent) episode, again at most every `repeat_after`), and the batch window.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::message::{event_agent, event_name};
use crate::config::NotifySink;
use crate::events;

/// `<state_dir>/notify.json`: where the notifier is in the event log and when each episode
/// was last sent, so a restarted watchdog neither re-sends nor loses one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyState {
    /// Byte offset in `events.jsonl` up to which events were read.
    pub offset: u64,
    /// Unix seconds each episode key was last sent.
    #[serde(default)]
    pub last_sent: BTreeMap<String, i64>,
}

/// True if `sink` receives event `e`: its name is in the sink's list and, when the sink names
/// agents, the event is about one of them (events about no agent always pass).
pub fn wants(sink: &NotifySink, e: &Value) -> bool {
    let name = event_name(e);
    if name == events::NOTIFY_FAILED || !sink.events.iter().any(|n| n == name) {
        return false;
    }
    match (&sink.agents, event_agent(e)) {
        (Some(list), Some(agent)) => list.iter().any(|a| a == agent),
        _ => true,
    }
}

/// The episode an event belongs to for sink `sink`: (event, agent), and for `state_changed`
/// the state it changed to.
pub fn episode_key(sink: usize, e: &Value) -> String {
    let mut key = format!("{sink}|{}|{}", event_name(e), event_agent(e).unwrap_or(""));
    if event_name(e) == events::STATE_CHANGED {
        key.push('|');
        key.push_str(e.get("to").and_then(Value::as_str).unwrap_or(""));
    }
    key
}

impl NotifyState {
    /// The repeat rule: send unless this episode was sent less than `repeat_after` ago;
    /// records the send.
    pub fn admit(&mut self, key: &str, now: i64, repeat_after: Duration) -> bool {
        let gap = repeat_after.as_secs() as i64;
        if self
            .last_sent
            .get(key)
            .is_some_and(|t| now - t < gap && now >= *t)
        {
            return false;
        }
        self.last_sent.insert(key.to_string(), now);
        true
    }

    /// Forget episodes last sent more than `repeat_after` ago (they no longer hold anything back).
    pub fn prune(&mut self, now: i64, repeat_after: Duration) {
        let gap = repeat_after.as_secs() as i64;
        self.last_sent.retain(|_, t| now - *t < gap);
    }
}

/// The events a sink collected since the first of them, sent as one message when the window
/// closes.
#[derive(Debug, Default)]
pub struct Batch {
    events: Vec<Value>,
    opened: Option<Instant>,
}

impl Batch {
    pub fn push(&mut self, e: Value, now: Instant) {
        self.opened.get_or_insert(now);
        self.events.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events, if the window that opened with the first of them has closed.
    pub fn take_due(&mut self, now: Instant, window: Duration) -> Option<Vec<Value>> {
        let opened = self.opened?;
        (now.saturating_duration_since(opened) >= window).then(|| self.take_all())?
    }

    /// Everything collected, whatever the window (shutdown).
    pub fn take_all(&mut self) -> Option<Vec<Value>> {
        self.opened = None;
        (!self.events.is_empty()).then(|| std::mem::take(&mut self.events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NotifyFormat, NotifyTarget};
    use serde_json::json;

    fn sink(events: &[&str], agents: Option<&[&str]>) -> NotifySink {
        NotifySink {
            target: NotifyTarget::Command(vec!["true".into()]),
            format: NotifyFormat::Json,
            events: events.iter().map(|s| s.to_string()).collect(),
            agents: agents.map(|a| a.iter().map(|s| s.to_string()).collect()),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_sink_wants_its_events_for_its_agents_and_agentless_events() {
        let s = sink(&["gave_up", "sequence_complete"], Some(&["builder"]));
        assert!(wants(&s, &json!({"event": "gave_up", "agent": "builder"})));
        assert!(!wants(
            &s,
            &json!({"event": "gave_up", "agent": "adversary"})
        ));
        assert!(!wants(&s, &json!({"event": "healed", "agent": "builder"})));
        assert!(wants(&s, &json!({"event": "sequence_complete"})));
        let all = sink(&["gave_up", "notify_failed"], None);
        assert!(wants(&all, &json!({"event": "gave_up", "agent": "x"})));
        assert!(
            !wants(&all, &json!({"event": "notify_failed"})),
            "never loops"
        );
    }

    #[test]
    fn idle_and_end_of_turn_are_not_in_the_default_events() {
        let defaults = crate::config::DEFAULT_NOTIFY_EVENTS;
        assert!(!defaults.contains(&"state_changed"));
        assert!(!defaults.contains(&"idle"));
        assert!(defaults.contains(&"sequence_complete"));
        assert!(defaults.contains(&"needs_attention"));
    }

    #[test]
    fn one_episode_is_sent_once_then_again_only_after_repeat_after() {
        let mut st = NotifyState::default();
        let hour = Duration::from_secs(3600);
        let e = json!({"event": "gave_up", "agent": "b"});
        let k = episode_key(0, &e);
        assert!(st.admit(&k, 1000, hour));
        assert!(!st.admit(&k, 1001, hour));
        assert!(!st.admit(&k, 1000 + 3599, hour));
        assert!(st.admit(&k, 1000 + 3600, hour));
        // Another agent, another sink or another event is another episode.
        assert!(st.admit(
            &episode_key(0, &json!({"event": "gave_up", "agent": "a"})),
            1001,
            hour
        ));
        assert!(st.admit(&episode_key(1, &e), 1001, hour));
        assert!(st.admit(
            &episode_key(0, &json!({"event": "timed_out", "agent": "b"})),
            1001,
            hour
        ));
    }

    #[test]
    fn a_flapping_episode_is_sent_no_more_often_than_the_repeat_rule() {
        let mut st = NotifyState::default();
        let e = json!({"event": "needs_attention", "agent": "b", "state": "auth_error"});
        let k = episode_key(0, &e);
        let sent = (0..120)
            .filter(|i| st.admit(&k, 10_000 + i * 60, Duration::from_secs(3600)))
            .count();
        assert_eq!(sent, 2, "two hours of flapping every minute: two messages");
    }

    #[test]
    fn state_changes_to_different_states_are_different_episodes() {
        let a = json!({"event": "state_changed", "agent": "b", "from": "working", "to": "idle"});
        let b = json!({"event": "state_changed", "agent": "b", "from": "idle", "to": "working"});
        assert_ne!(episode_key(0, &a), episode_key(0, &b));
    }

    #[test]
    fn pruning_forgets_only_expired_episodes() {
        let mut st = NotifyState::default();
        let hour = Duration::from_secs(3600);
        st.admit("old", 0, hour);
        st.admit("new", 3000, hour);
        st.prune(3700, hour);
        assert_eq!(st.last_sent.keys().collect::<Vec<_>>(), vec!["new"]);
    }

    #[test]
    fn events_within_the_batch_window_leave_together() {
        let t0 = Instant::now();
        let w = Duration::from_secs(30);
        let mut b = Batch::default();
        assert_eq!(b.take_due(t0, w), None);
        b.push(json!({"event": "a"}), t0);
        b.push(json!({"event": "b"}), t0 + Duration::from_secs(20));
        assert_eq!(b.take_due(t0 + Duration::from_secs(29), w), None);
        let out = b.take_due(t0 + w, w).unwrap();
        assert_eq!(out.len(), 2);
        assert!(b.is_empty());
        b.push(json!({"event": "c"}), t0 + Duration::from_secs(31));
        assert_eq!(
            b.take_due(t0 + Duration::from_secs(40), w),
            None,
            "a new window"
        );
        assert_eq!(b.take_all().map(|v| v.len()), Some(1));
        let mut z = Batch::default();
        z.push(json!({"event": "a"}), t0);
        assert!(
            z.take_due(t0, Duration::ZERO).is_some(),
            "a zero window sends at once"
        );
    }
}
