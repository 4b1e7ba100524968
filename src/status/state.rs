//! The pure derivation of an agent's state (working, idle, waiting_input, held, stalled, dead,
//! stopped, gave_up) and since when, from what status observed: pane, hooks, events, hold file.
use crate::hooks::HookActivity;

/// Output newer than this (seconds) counts as working when no hook says otherwise.
pub const ACTIVE_WINDOW_SECS: i64 = 15;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AgentState {
    Working,
    Idle,
    WaitingInput,
    /// Inside a usage-limit hold until this Unix time.
    Held {
        until: f64,
    },
    Stalled,
    Dead,
    Stopped,
    GaveUp,
}

impl AgentState {
    pub fn as_str(&self) -> &'static str {
        match self {
            AgentState::Working => "working",
            AgentState::Idle => "idle",
            AgentState::WaitingInput => "waiting_input",
            AgentState::Held { .. } => "held",
            AgentState::Stalled => "stalled",
            AgentState::Dead => "dead",
            AgentState::Stopped => "stopped",
            AgentState::GaveUp => "gave_up",
        }
    }
}

/// The agent's last lifecycle event in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// `agent_started` or `healed`: orch meant it to run.
    Started,
    /// `agent_stopped`: stopped on purpose.
    Stopped,
    /// `gave_up`: the watchdog stopped healing it.
    GaveUp,
}

/// Everything the derivation looks at; times are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    pub now: i64,
    /// The session exists; `Some(dead)` says whether its pane's process has exited.
    pub pane_dead: Option<bool>,
    /// The last output in the pane's window.
    pub pane_activity: Option<i64>,
    /// What the hook records say, and since when.
    pub hook: Option<(HookActivity, i64)>,
    /// A usage-limit hold file exists: its `until`.
    pub hold_until: Option<f64>,
    /// When the last `limit_hit` for the agent was logged.
    pub limit_hit_at: Option<i64>,
    /// The last lifecycle event and its time.
    pub lifecycle: Option<(Lifecycle, i64)>,
    /// Idle longer than this is a stall (`watch = "heal+stall"` only).
    pub stall_after: Option<i64>,
    /// Its screen waits for a person (a dialog it may not answer, a login, an error): since when.
    pub waiting_on_human: Option<i64>,
}

/// The state and since when it holds (None when unknown).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Derived {
    pub state: AgentState,
    pub since: Option<i64>,
}

fn derived(state: AgentState, since: Option<i64>) -> Derived {
    Derived { state, since }
}

/// Derive the state: no session → gave_up / dead (orch meant it to run) / stopped; a dead pane
/// → dead; a hold file → held; else hooks (newer than the last start) or pane output decide
/// working / idle / waiting_input, and idle past `stall_after` is stalled.
pub fn derive_state(o: &Observation) -> Derived {
    let started_at = match o.lifecycle {
        Some((Lifecycle::Started, t)) => Some(t),
        _ => None,
    };
    if o.pane_dead != Some(false) {
        // No session, or one whose process has exited (kept by a restart policy).
        let died_at = o.pane_activity.or(o.hook.map(|h| h.1));
        return match (o.lifecycle, o.pane_dead) {
            (Some((Lifecycle::GaveUp, t)), _) => derived(AgentState::GaveUp, Some(t)),
            (Some((Lifecycle::Stopped, t)), _) => derived(AgentState::Stopped, Some(t)),
            (Some((Lifecycle::Started, _)), _) | (_, Some(true)) => {
                derived(AgentState::Dead, died_at)
            }
            (None, _) => derived(AgentState::Stopped, None),
        };
    }
    if let Some(until) = o.hold_until {
        return derived(AgentState::Held { until }, o.limit_hit_at);
    }
    // A dialog, login or error screen is never idle (nor stalled): it waits for a person.
    if let Some(since) = o.waiting_on_human {
        return derived(AgentState::WaitingInput, Some(since));
    }
    // A hook record older than the last (re)start describes the previous process.
    let hook = o.hook.filter(|(_, t)| started_at.is_none_or(|s| *t >= s));
    let (activity, since) = match hook {
        Some(h) => h,
        None => match o.pane_activity {
            Some(a) if o.now - a <= ACTIVE_WINDOW_SECS => {
                (HookActivity::Working, started_at.unwrap_or(a).min(a))
            }
            Some(a) => (HookActivity::Idle, a),
            None => (HookActivity::Idle, started_at.unwrap_or(o.now)),
        },
    };
    match activity {
        HookActivity::Working => derived(AgentState::Working, Some(since)),
        HookActivity::WaitingInput => derived(AgentState::WaitingInput, Some(since)),
        HookActivity::Idle => match o.stall_after {
            Some(limit) if o.now - since > limit => {
                derived(AgentState::Stalled, Some(since + limit))
            }
            _ => derived(AgentState::Idle, Some(since)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn running() -> Observation {
        Observation {
            now: NOW,
            pane_dead: Some(false),
            pane_activity: Some(NOW - 2),
            lifecycle: Some((Lifecycle::Started, NOW - 100)),
            ..Observation::default()
        }
    }

    fn state(o: &Observation) -> AgentState {
        derive_state(o).state
    }

    #[test]
    fn no_session_is_stopped_dead_or_gave_up_by_the_last_lifecycle_event() {
        let mut o = Observation {
            now: NOW,
            ..Observation::default()
        };
        assert_eq!(derive_state(&o), derived(AgentState::Stopped, None));
        o.lifecycle = Some((Lifecycle::Stopped, 5));
        assert_eq!(derive_state(&o), derived(AgentState::Stopped, Some(5)));
        o.lifecycle = Some((Lifecycle::Started, 5));
        assert_eq!(state(&o), AgentState::Dead);
        o.lifecycle = Some((Lifecycle::GaveUp, 7));
        assert_eq!(derive_state(&o), derived(AgentState::GaveUp, Some(7)));
    }

    #[test]
    fn a_dead_pane_is_dead_even_with_a_hold_unless_the_watchdog_gave_up() {
        let mut o = running();
        o.pane_dead = Some(true);
        o.hold_until = Some(1e9);
        assert_eq!(state(&o), AgentState::Dead);
        o.lifecycle = None;
        assert_eq!(state(&o), AgentState::Dead);
        o.lifecycle = Some((Lifecycle::GaveUp, NOW - 3));
        assert_eq!(derive_state(&o), derived(AgentState::GaveUp, Some(NOW - 3)));
    }

    #[test]
    fn a_hold_file_wins_over_activity() {
        let mut o = running();
        o.hold_until = Some(2_000_000.5);
        o.limit_hit_at = Some(NOW - 30);
        o.hook = Some((HookActivity::Working, NOW - 1));
        assert_eq!(
            derive_state(&o),
            derived(AgentState::Held { until: 2_000_000.5 }, Some(NOW - 30))
        );
    }

    #[test]
    fn hooks_decide_working_idle_and_waiting_input() {
        let mut o = running();
        o.pane_activity = Some(NOW - 1000);
        o.hook = Some((HookActivity::Working, NOW - 50));
        assert_eq!(
            derive_state(&o),
            derived(AgentState::Working, Some(NOW - 50))
        );
        o.pane_activity = Some(NOW);
        o.hook = Some((HookActivity::Idle, NOW - 40));
        assert_eq!(derive_state(&o), derived(AgentState::Idle, Some(NOW - 40)));
        o.hook = Some((HookActivity::WaitingInput, NOW - 30));
        assert_eq!(state(&o), AgentState::WaitingInput);
    }

    #[test]
    fn hook_records_from_before_the_last_start_are_ignored() {
        let mut o = running();
        o.hook = Some((HookActivity::WaitingInput, NOW - 500));
        assert_eq!(state(&o), AgentState::Working);
        o.pane_activity = Some(NOW - 60);
        assert_eq!(derive_state(&o), derived(AgentState::Idle, Some(NOW - 60)));
    }

    #[test]
    fn pane_output_decides_without_hooks() {
        let mut o = running();
        o.pane_activity = Some(NOW - ACTIVE_WINDOW_SECS);
        assert_eq!(
            derive_state(&o),
            derived(AgentState::Working, Some(NOW - 100))
        );
        o.pane_activity = Some(NOW - ACTIVE_WINDOW_SECS - 1);
        assert_eq!(state(&o), AgentState::Idle);
    }

    #[test]
    fn idle_past_the_stall_limit_is_stalled_only_when_stalls_are_watched() {
        let mut o = running();
        o.pane_activity = Some(NOW - 400);
        assert_eq!(state(&o), AgentState::Idle);
        o.stall_after = Some(300);
        assert_eq!(
            derive_state(&o),
            derived(AgentState::Stalled, Some(NOW - 100))
        );
        o.pane_activity = Some(NOW - 299);
        assert_eq!(state(&o), AgentState::Idle);
        o.hook = Some((HookActivity::WaitingInput, NOW - 90));
        o.pane_activity = Some(NOW - 5000);
        assert_eq!(state(&o), AgentState::WaitingInput);
    }

    #[test]
    fn a_screen_waiting_for_a_person_is_waiting_input_never_idle_or_stalled() {
        let mut o = running();
        o.pane_activity = Some(NOW - 5000);
        o.stall_after = Some(300);
        assert_eq!(state(&o), AgentState::Stalled);
        o.waiting_on_human = Some(NOW - 4000);
        assert_eq!(
            derive_state(&o),
            derived(AgentState::WaitingInput, Some(NOW - 4000))
        );
    }

    #[test]
    fn state_names_match_the_json() {
        let held = AgentState::Held { until: 1.0 };
        assert_eq!(held.as_str(), "held");
        assert_eq!(AgentState::WaitingInput.as_str(), "waiting_input");
        assert_eq!(AgentState::GaveUp.as_str(), "gave_up");
    }
}
