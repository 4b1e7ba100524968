//! The attention pass: from this tick's status snapshot, `state_changed` (debounced) and the
//! attention episodes the tick does not log itself (waiting_input too long, an uncured stall,
//! a quiet phase), each logged once per episode and again at most every `repeat_after`.
use std::time::Duration;

use serde_json::{Value, json};

use super::Watchdog;
use crate::events;
use crate::notify::episodes::{self, Episode, Episodes};
use crate::notify::message::human_secs;
use crate::notify::tail;
use crate::status::{self, Report};
use crate::tmux::Fleet;

/// A derived state must hold this long before `state_changed` is logged.
pub const STATE_DEBOUNCE_SECS: i64 = 5;
/// Stall restarts without the agent working in between before the stall needs a person.
pub const UNCURED_STALL_RESTARTS: u64 = 2;
/// Working this long (seconds) after stall restarts counts as cured.
pub const STALL_CURED_SECS: i64 = 60;

/// What one agent looks like this tick (from the status snapshot).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentView {
    pub name: String,
    pub state: String,
    pub since: Option<i64>,
    /// The screen pass's own open needs-attention episode (login, auth, dialog).
    pub screen_attention: bool,
    pub restarts: u64,
    pub last_heal_reason: Option<String>,
}

/// Everything the decision reads; times in Unix seconds.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub now: i64,
    pub agents: Vec<AgentView>,
    /// The current phase's id, if one is running (not done, sequence not complete).
    pub open_phase: Option<String>,
    /// When handoffs (claim/review pings, phase advances) were logged since the last pass.
    pub handoffs: Vec<i64>,
    pub attention_after: Duration,
    pub phase_quiet_after: Duration,
    pub repeat_after: Duration,
}

/// The decision: the new episodes and the events to log (name, fields).
pub fn decide(prev: &Episodes, inp: &Inputs) -> (Episodes, Vec<(&'static str, Value)>) {
    let mut next = prev.clone();
    let mut out = Vec::new();
    let now = inp.now;
    next.states
        .retain(|a, _| inp.agents.iter().any(|v| &v.name == a));
    next.pending
        .retain(|a, _| inp.agents.iter().any(|v| &v.name == a));
    let mut holding: Vec<(String, &'static str, Value)> = Vec::new();
    for a in &inp.agents {
        state_change(&mut next, a, now, &mut out);
        let waited = a.since.map_or(0, |s| now - s);
        if a.state == "waiting_input"
            && !a.screen_attention
            && waited >= inp.attention_after.as_secs() as i64
        {
            let summary = format!(
                "{} has been waiting for input for {} (a dialog or permission prompt)",
                a.name,
                human_secs(waited)
            );
            let fields = json!({"agent": a.name, "state": "waiting_input",
                                "waiting_secs": waited, "summary": summary});
            holding.push((a.name.clone(), events::NEEDS_ATTENTION, fields));
        }
        let base = next
            .restarts_when_working
            .entry(a.name.clone())
            .or_insert(a.restarts);
        // Output right after a restart is start-up, not a cure: working a while is.
        let cured = a.state == "working" && a.since.is_some_and(|s| now - s >= STALL_CURED_SECS);
        if cured || a.restarts < *base {
            *base = a.restarts;
        }
        let stall_restarts = a.restarts - *base;
        if matches!(
            a.state.as_str(),
            "stalled" | "idle" | "working" | "waiting_input"
        ) && a.last_heal_reason.as_deref() == Some("stall")
            && stall_restarts >= UNCURED_STALL_RESTARTS
        {
            let summary = format!(
                "{} is still stalled after {stall_restarts} restarts",
                a.name
            );
            let fields = json!({"agent": a.name, "restarts": stall_restarts, "summary": summary});
            holding.push((a.name.clone(), events::STALLED, fields));
        }
    }
    next.restarts_when_working
        .retain(|a, _| inp.agents.iter().any(|v| &v.name == a));
    match &inp.open_phase {
        Some(id) => {
            let last = match &next.phase {
                Some((p, t)) if p == id => *t,
                _ => now,
            };
            let last = inp.handoffs.iter().copied().fold(last, i64::max);
            next.phase = Some((id.clone(), last));
            let quiet = now - last;
            if quiet >= inp.phase_quiet_after.as_secs() as i64 {
                let summary = format!(
                    "phase {id} has had no handoff commit for {}",
                    human_secs(quiet)
                );
                let fields = json!({"phase": id, "quiet_secs": quiet, "summary": summary});
                holding.push((String::new(), events::PHASE_QUIET, fields));
            }
        }
        None => next.phase = None,
    }
    let keys: Vec<String> = holding
        .iter()
        .map(|(agent, event, _)| format!("{event}|{agent}"))
        .collect();
    next.open.retain(|k, _| keys.contains(k));
    for ((agent, event, mut fields), key) in holding.into_iter().zip(keys) {
        let summary = fields["summary"].as_str().unwrap_or_default().to_string();
        match next.open.get_mut(&key) {
            None => {
                next.open.insert(
                    key,
                    Episode {
                        event: event.to_string(),
                        agent,
                        summary,
                        opened: now,
                        last_logged: now,
                        repeats: 0,
                    },
                );
                out.push((event, fields));
            }
            Some(ep) => {
                ep.summary = summary;
                if now - ep.last_logged >= inp.repeat_after.as_secs() as i64 {
                    ep.last_logged = now;
                    ep.repeats += 1;
                    fields["repeat"] = json!(ep.repeats);
                    out.push((event, fields));
                }
            }
        }
    }
    (next, out)
}

/// Log `state_changed` once the agent's new state has held [`STATE_DEBOUNCE_SECS`]; the first
/// sight of an agent only records its state.
fn state_change(
    next: &mut Episodes,
    a: &AgentView,
    now: i64,
    out: &mut Vec<(&'static str, Value)>,
) {
    let Some(reported) = next.states.get(&a.name).cloned() else {
        next.states.insert(a.name.clone(), a.state.clone());
        return;
    };
    if reported == a.state {
        next.pending.remove(&a.name);
        return;
    }
    let first_seen = match next.pending.get(&a.name) {
        Some((s, t)) if *s == a.state => *t,
        _ => now,
    };
    let held = (now - first_seen).max(a.since.map_or(0, |s| now - s));
    if held >= STATE_DEBOUNCE_SECS {
        next.pending.remove(&a.name);
        next.states.insert(a.name.clone(), a.state.clone());
        let summary = format!("{}: {reported} -> {}", a.name, a.state);
        out.push((
            events::STATE_CHANGED,
            json!({"agent": a.name, "from": reported, "to": a.state, "summary": summary}),
        ));
    } else {
        next.pending
            .insert(a.name.clone(), (a.state.clone(), first_seen));
    }
}

/// The agents as the decision sees them.
pub fn views(r: &Report) -> Vec<AgentView> {
    r.agents
        .iter()
        .map(|a| AgentView {
            name: a.name.clone(),
            state: a.state.to_string(),
            since: a
                .since
                .as_deref()
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.timestamp()),
            screen_attention: a.needs_attention.is_some(),
            restarts: a.restarts,
            last_heal_reason: a.last_heal_reason.clone(),
        })
        .collect()
}

/// When each handoff among `evs` was logged: claim/review pings and phase advances.
fn handoff_times(evs: &[Value]) -> Vec<i64> {
    evs.iter()
        .filter(|e| match e["event"].as_str() {
            Some(events::PING) => matches!(e["reason"].as_str(), Some("claim" | "review")),
            Some(events::PHASE_ADVANCED) => true,
            _ => false,
        })
        .filter_map(|e| e["ts"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .collect()
}

impl Watchdog {
    /// Read this tick's status snapshot and new events, decide, log, save.
    pub(super) fn attention_tick(&mut self, fleet: &Fleet) {
        let now = chrono::Utc::now().timestamp();
        let report = status::gather_at(&self.cfg, fleet, now);
        let prev = episodes::load(&self.cfg);
        let (new, offset) = tail::read_from(&self.cfg.events_file(), prev.events_offset);
        let open_phase = report
            .phase
            .as_ref()
            .filter(|p| !p.done && !p.sequence_complete)
            .map(|p| p.id.clone());
        let w = &self.cfg.watchdog;
        let inputs = Inputs {
            now,
            agents: views(&report),
            open_phase,
            handoffs: handoff_times(&new),
            attention_after: w.attention_after,
            phase_quiet_after: w.phase_quiet_after,
            repeat_after: w.repeat_after,
        };
        let (mut next, out) = decide(&prev, &inputs);
        next.events_offset = offset;
        for (name, fields) in out {
            self.event(name, fields);
        }
        if next != prev {
            episodes::save(&self.cfg, &next);
        }
    }
}

#[cfg(test)]
#[path = "attention_tests.rs"]
mod tests;
