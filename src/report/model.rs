//! The report's data: what `orch report --json` prints (fields added, never renamed) and the
//! per-agent state spans the HTML timeline draws; small statistics helpers.
use std::collections::BTreeMap;

use serde::Serialize;

/// What window to report on.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Unix ms; events before it only set the state the window starts in.
    pub since_ms: Option<i64>,
    /// Unix ms: the end of the window while the watchdog is still running.
    pub now_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub window: Window,
    pub events: EventCounts,
    pub sequence_complete: bool,
    pub phases: Vec<PhaseFigures>,
    pub agents: Vec<AgentFigures>,
    pub health: Health,
}

#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from: Option<String>,
    pub to: Option<String>,
    pub seconds: f64,
    #[serde(skip)]
    pub from_ms: i64,
    #[serde(skip)]
    pub to_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventCounts {
    /// Events inside the window.
    pub read: usize,
    pub malformed: usize,
    pub unknown: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseFigures {
    pub id: String,
    pub index: Option<u64>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub duration_seconds: f64,
    pub claims: u64,
    pub reviews: u64,
    /// Reviews answered by a later claim in the same phase.
    pub findings: u64,
    /// The last review of a phase that reached DONE.
    pub approvals: u64,
    pub done: bool,
    /// Commits on the handoff repo's main made while the phase ran (null: repo not read).
    pub commits: Option<u64>,
    #[serde(skip)]
    pub start_ms: i64,
    #[serde(skip)]
    pub end_ms: Option<i64>,
    #[serde(skip)]
    pub(super) claim_ts: Vec<i64>,
    #[serde(skip)]
    pub(super) review_ts: Vec<i64>,
}

/// Seconds an agent spent in each state inside the window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StateSeconds {
    /// Alive, with no finer state in the log (no `state_changed` events).
    pub running: f64,
    pub working: f64,
    pub idle: f64,
    pub held: f64,
    pub dead: f64,
    pub unreachable: f64,
    pub stopped: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentFigures {
    pub name: String,
    /// Alive (running, working, idle, held) over alive + dead; null when never meant to run.
    pub uptime_pct: Option<f64>,
    pub seconds: StateSeconds,
    pub restarts: u64,
    pub restarts_by_reason: BTreeMap<String, u64>,
    pub stalls: u64,
    pub pings_received: u64,
    pub pings_by_reason: BTreeMap<String, u64>,
    pub limit_holds: u64,
    pub attention: u64,
    /// The agent's states over the window, for the timeline.
    #[serde(skip)]
    pub spans: Vec<Span>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub start_ms: i64,
    pub end_ms: i64,
    pub state: &'static str,
}

/// A distribution of durations in seconds (null figures when there are no samples).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub samples: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// `ack` (ping_acked latency_ms), `delivery` (the ping's own latency_ms) or `none`.
    pub source: &'static str,
    pub samples: usize,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub ping_ack_latency: Latency,
    pub pings: u64,
    pub pings_delivered: u64,
    pub pings_undelivered: u64,
    pub pings_lost: u64,
    /// From the agent falling quiet (idle, else its last ping or start) to its stall restart.
    pub stall_detect_seconds: Summary,
    /// From an agent found dead (exited, gave up) to running again.
    pub restart_mttr_seconds: Summary,
    pub restarts: u64,
    pub limit_held_hours: f64,
    /// claim, review and inbox pings.
    pub handoffs: u64,
    /// Handoffs per hour of phase time (window time when no phase ran).
    pub handoffs_per_hour: Option<f64>,
    pub commits: Option<u64>,
    pub attention: u64,
    pub config_errors: u64,
    pub fetch_errors: u64,
    pub watchdog_starts: u64,
}

impl AgentFigures {
    pub(super) fn new(name: &str) -> AgentFigures {
        AgentFigures {
            name: name.to_string(),
            uptime_pct: None,
            seconds: StateSeconds::default(),
            restarts: 0,
            restarts_by_reason: BTreeMap::new(),
            stalls: 0,
            pings_received: 0,
            pings_by_reason: BTreeMap::new(),
            limit_holds: 0,
            attention: 0,
            spans: Vec::new(),
        }
    }
}

impl Health {
    pub(super) fn empty() -> Health {
        Health {
            ping_ack_latency: Latency::of("none", &mut Vec::new()),
            pings: 0,
            pings_delivered: 0,
            pings_undelivered: 0,
            pings_lost: 0,
            stall_detect_seconds: Summary::default(),
            restart_mttr_seconds: Summary::default(),
            restarts: 0,
            limit_held_hours: 0.0,
            handoffs: 0,
            handoffs_per_hour: None,
            commits: None,
            attention: 0,
            config_errors: 0,
            fetch_errors: 0,
            watchdog_starts: 0,
        }
    }
}

/// The nearest-rank percentile `p` (0..=100) of sorted `v`.
pub fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank.min(v.len()) - 1])
}

fn sort(v: &mut [f64]) {
    v.sort_by(|a, b| a.total_cmp(b));
}

impl Summary {
    pub(super) fn of(v: &mut [f64]) -> Summary {
        sort(v);
        Summary {
            samples: v.len(),
            p50: percentile(v, 50.0).map(|x| round(x, 3)),
            p95: percentile(v, 95.0).map(|x| round(x, 3)),
            max: v.last().map(|x| round(*x, 3)),
        }
    }
}

impl Latency {
    pub(super) fn of(source: &'static str, v: &mut [f64]) -> Latency {
        sort(v);
        Latency {
            source,
            samples: v.len(),
            p50_ms: percentile(v, 50.0),
            p95_ms: percentile(v, 95.0),
        }
    }
}

pub fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}
