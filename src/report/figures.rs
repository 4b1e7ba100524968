//! The report's figures, computed from the parsed event log in one pass (pure): per phase,
//! per agent (time in each state, restarts, stalls, pings) and the loop's health.
use std::collections::BTreeMap;

use super::model::{
    AgentFigures, EventCounts, Health, Latency, Options, PhaseFigures, Report, Span, Summary,
    Window, round,
};
use super::parse::{Event, Log};

/// Per-agent running state while walking the log.
#[derive(Default)]
struct Walk {
    state: Option<&'static str>,
    since: i64,
    down_since: Option<i64>,
    quiet_since: Option<i64>,
    fig: Option<AgentFigures>,
}

const ALIVE: &[&str] = &["running", "working", "idle", "held"];

/// The state an event moves its agent to, if any.
fn next_state(e: &Event, cur: Option<&'static str>) -> Option<&'static str> {
    Some(match e.name.as_str() {
        "agent_started" | "restarted" | "reconciled" | "limit_lifted" | "host_back" => "running",
        "healed" => match e.fields.get("restarted").and_then(|v| v.as_bool()) {
            Some(false) => "dead",
            _ => "running",
        },
        "limit_hit" => "held",
        "agent_exited" | "gave_up" => "dead",
        "agent_stopped" | "timed_out" => "stopped",
        "host_unreachable" if cur.is_some() => "unreachable",
        "state_changed" => match e.str("state").or(e.str("to")).unwrap_or("") {
            "working" => "working",
            "idle" | "waiting_input" | "stalled" => "idle",
            "held" => "held",
            "dead" | "exited" | "gave_up" => "dead",
            "stopped" => "stopped",
            "unreachable" => "unreachable",
            _ => "running",
        },
        _ => return None,
    })
}

/// Compute every figure of the report from `log` (pure).
pub fn compute(log: &Log, opts: Options) -> Report {
    let first = log.events.first().map_or(opts.now_ms, |e| e.ts);
    let last = log.events.last().map_or(opts.now_ms, |e| e.ts);
    let from_ms = opts.since_ms.unwrap_or(first);
    let watchdog_live = log
        .events
        .iter()
        .rev()
        .find(|e| e.name == "watchdog_started" || e.name == "watchdog_stopped")
        .is_some_and(|e| e.name == "watchdog_started");
    let to_ms = if watchdog_live {
        opts.now_ms.max(last)
    } else {
        last
    }
    .max(from_ms);
    let inside = |ts: i64| ts >= from_ms && ts <= to_ms;

    let mut walks: BTreeMap<String, Walk> = BTreeMap::new();
    let mut phases: Vec<PhaseFigures> = Vec::new();
    let mut cur: Option<usize> = None;
    let mut acks = Vec::new();
    let mut delivery = Vec::new();
    let mut stall_samples = Vec::new();
    let mut mttr_samples = Vec::new();
    let mut h = Health::empty();
    let mut read = 0;
    let mut complete = false;

    for e in &log.events {
        let counted = inside(e.ts);
        read += usize::from(counted);
        // Phases.
        match e.name.as_str() {
            "watchdog_started" | "agent_started" => {
                if let Some(id) = e.str("phase")
                    && cur.is_none_or(|i| phases[i].id != id && phases[i].end_ms.is_none())
                    && !complete
                {
                    if let Some(i) = cur {
                        phases[i].end_ms = Some(e.ts);
                    }
                    cur = Some(open_phase(&mut phases, id, None, e.ts));
                }
            }
            "phase_advanced" => {
                let from_index = e.fields.get("from_index").and_then(|v| v.as_u64());
                match cur {
                    Some(i) if phases[i].end_ms.is_none() => {
                        phases[i].end_ms = Some(e.ts);
                        phases[i].done = true;
                        phases[i].index = phases[i].index.or(from_index);
                    }
                    _ => {}
                }
                let to_index = e.fields.get("to_index").and_then(|v| v.as_u64());
                cur = e
                    .str("to")
                    .map(|id| open_phase(&mut phases, id, to_index, e.ts));
            }
            "sequence_complete" => {
                complete = true;
                if let Some(i) = cur
                    && phases[i].end_ms.is_none()
                {
                    phases[i].end_ms = Some(e.ts);
                    phases[i].done = true;
                }
            }
            "ping" if counted => {
                if let Some(p) = cur
                    .and_then(|i| phases.get_mut(i))
                    .filter(|p| p.end_ms.is_none())
                {
                    match e.reason.as_deref() {
                        Some("claim") => p.claim_ts.push(e.ts),
                        Some("review") => p.review_ts.push(e.ts),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        // Loop health.
        if counted {
            match e.name.as_str() {
                "ping" => {
                    h.pings += 1;
                    match e.fields.get("delivered").and_then(|v| v.as_bool()) {
                        Some(true) => h.pings_delivered += 1,
                        Some(false) => h.pings_undelivered += 1,
                        None => {}
                    }
                    if matches!(e.reason.as_deref(), Some("claim" | "review" | "inbox")) {
                        h.handoffs += 1;
                    }
                    if let Some(ms) = e.f64("latency_ms") {
                        delivery.push(ms);
                    }
                }
                "ping_acked" => acks.extend(e.f64("latency_ms")),
                "ping_lost" => h.pings_lost += 1,
                "config_error" => h.config_errors += 1,
                "fetch_error" => h.fetch_errors += 1,
                "watchdog_started" => h.watchdog_starts += 1,
                _ => {}
            }
        }
        // Agents.
        let Some(name) = &e.agent else { continue };
        let w = walks.entry(name.clone()).or_default();
        let fig = w.fig.get_or_insert_with(|| AgentFigures::new(name));
        if counted {
            match e.name.as_str() {
                "ping" => {
                    fig.pings_received += 1;
                    let reason = e.reason.clone().unwrap_or_default();
                    *fig.pings_by_reason.entry(reason).or_default() += 1;
                }
                "healed" | "restarted" => {
                    let reason = match e.name.as_str() {
                        "restarted" => "exited".to_string(),
                        _ => e.reason.clone().unwrap_or_default(),
                    };
                    if reason == "stall" {
                        fig.stalls += 1;
                        if let Some(q) = w.quiet_since {
                            stall_samples.push((e.ts - q) as f64 / 1000.0);
                        }
                    }
                    fig.restarts += 1;
                    *fig.restarts_by_reason.entry(reason).or_default() += 1;
                }
                "limit_hit" => fig.limit_holds += 1,
                "needs_attention" => fig.attention += 1,
                _ => {}
            }
        }
        if e.name == "ping" {
            w.quiet_since = Some(e.ts);
        }
        let Some(next) = next_state(e, w.state) else {
            continue;
        };
        // Quiet from a (re)start, from work, or from the moment work turned to idle.
        let fell_quiet = next == "working"
            || (next == "running" && w.state != Some("held"))
            || (next == "idle" && w.state == Some("working"));
        if fell_quiet {
            w.quiet_since = Some(e.ts);
        }
        if next == "dead" {
            w.down_since.get_or_insert(e.ts);
        } else if ALIVE.contains(&next)
            && let Some(down) = w.down_since.take()
            && counted
        {
            mttr_samples.push((e.ts - down) as f64 / 1000.0);
        }
        if let Some(s) = w.state {
            push_span(fig, w.since, e.ts, s, from_ms, to_ms);
        }
        w.state = Some(next);
        w.since = e.ts;
    }

    let mut agents = Vec::new();
    for (_, mut w) in walks {
        let Some(mut fig) = w.fig.take() else {
            continue;
        };
        if let Some(s) = w.state {
            push_span(&mut fig, w.since, to_ms, s, from_ms, to_ms);
        }
        let s = &mut fig.seconds;
        for v in [
            &mut s.running,
            &mut s.working,
            &mut s.idle,
            &mut s.held,
            &mut s.dead,
            &mut s.unreachable,
            &mut s.stopped,
        ] {
            *v = round(*v, 3);
        }
        let alive = s.running + s.working + s.idle + s.held;
        fig.uptime_pct = (alive + s.dead > 0.0).then(|| round(100.0 * alive / (alive + s.dead), 2));
        h.restarts += fig.restarts;
        h.attention += fig.attention;
        h.limit_held_hours += fig.seconds.held / 3600.0;
        agents.push(fig);
    }
    h.limit_held_hours = round(h.limit_held_hours, 3);

    let mut phase_secs = 0.0;
    for p in &mut phases {
        let end = p.end_ms.unwrap_or(to_ms);
        p.duration_seconds = round((end - p.start_ms) as f64 / 1000.0, 3);
        p.started_at = crate::report::rfc3339_ms(p.start_ms);
        p.ended_at = p.end_ms.and_then(crate::report::rfc3339_ms);
        p.claims = p.claim_ts.len() as u64;
        p.reviews = p.review_ts.len() as u64;
        for r in &p.review_ts {
            if p.claim_ts.iter().any(|c| c > r) {
                p.findings += 1;
            } else if p.done {
                p.approvals += 1;
            }
        }
        phase_secs += (end.min(to_ms) - p.start_ms.max(from_ms)).max(0) as f64 / 1000.0;
    }
    phases.retain(|p| p.start_ms <= to_ms && p.end_ms.is_none_or(|e| e >= from_ms));

    let hours = if phase_secs > 0.0 {
        phase_secs
    } else {
        (to_ms - from_ms) as f64 / 1000.0
    } / 3600.0;
    h.handoffs_per_hour = (hours > 0.0).then(|| round(h.handoffs as f64 / hours, 2));
    h.ping_ack_latency = if !acks.is_empty() {
        Latency::of("ack", &mut acks)
    } else if !delivery.is_empty() {
        Latency::of("delivery", &mut delivery)
    } else {
        Latency::of("none", &mut Vec::new())
    };
    h.stall_detect_seconds = Summary::of(&mut stall_samples);
    h.restart_mttr_seconds = Summary::of(&mut mttr_samples);

    Report {
        schema_version: super::SCHEMA_VERSION,
        window: Window {
            from: super::rfc3339_ms(from_ms),
            to: super::rfc3339_ms(to_ms),
            seconds: round((to_ms - from_ms) as f64 / 1000.0, 3),
            from_ms,
            to_ms,
        },
        events: EventCounts {
            read,
            malformed: log.malformed,
            unknown: log.unknown,
        },
        sequence_complete: complete,
        phases,
        agents,
        health: h,
    }
}

fn open_phase(phases: &mut Vec<PhaseFigures>, id: &str, index: Option<u64>, ts: i64) -> usize {
    phases.push(PhaseFigures {
        id: id.to_string(),
        index,
        started_at: None,
        ended_at: None,
        duration_seconds: 0.0,
        claims: 0,
        reviews: 0,
        findings: 0,
        approvals: 0,
        done: false,
        commits: None,
        start_ms: ts,
        end_ms: None,
        claim_ts: Vec::new(),
        review_ts: Vec::new(),
    });
    phases.len() - 1
}

/// Add `[start, end)` in `state` to the agent, clipped to the window; adjacent spans in the
/// same state merge.
fn push_span(
    fig: &mut AgentFigures,
    start: i64,
    end: i64,
    state: &'static str,
    from: i64,
    to: i64,
) {
    let (a, b) = (start.max(from), end.min(to));
    if b <= a {
        return;
    }
    let secs = (b - a) as f64 / 1000.0;
    let s = &mut fig.seconds;
    *match state {
        "working" => &mut s.working,
        "idle" => &mut s.idle,
        "held" => &mut s.held,
        "dead" => &mut s.dead,
        "unreachable" => &mut s.unreachable,
        "stopped" => &mut s.stopped,
        _ => &mut s.running,
    } += secs;
    match fig.spans.last_mut() {
        Some(last) if last.state == state && last.end_ms == a => last.end_ms = b,
        _ => fig.spans.push(Span {
            start_ms: a,
            end_ms: b,
            state,
        }),
    }
}
