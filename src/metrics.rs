//! Prometheus metrics (text exposition 0.0.4): the fleet from the status snapshot, counters
//! from the event log, and the watchdog's in-memory tick-duration histogram.
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::{self, Log};
use crate::status;

/// Tick durations, seconds.
pub const TICK_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Ping → acknowledgement latency, seconds.
pub const ACK_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
];

/// Every state `orch status` knows: `orch_agents{state}` has a sample for each (0 when none).
pub const STATES: &[&str] = &[
    "working",
    "idle",
    "waiting_input",
    "held",
    "stalled",
    "dead",
    "stopped",
    "gave_up",
    "unreachable",
];

/// A histogram observed from one thread and read from another, without a lock.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus +Inf last.
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, secs: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (+Inf last) and the sum, in seconds.
    pub fn snapshot(&self) -> HistogramData {
        let mut acc = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                acc += c.load(Ordering::Relaxed);
                acc
            })
            .collect();
        HistogramData {
            bounds: self.bounds,
            cumulative,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A histogram's values at one moment.
#[derive(Debug, Clone)]
pub struct HistogramData {
    pub bounds: &'static [f64],
    /// Cumulative, one per bound then +Inf.
    pub cumulative: Vec<u64>,
    pub sum: f64,
}

impl HistogramData {
    pub fn of(bounds: &'static [f64], samples: impl Iterator<Item = f64>) -> HistogramData {
        let h = Histogram::new(bounds);
        for s in samples {
            h.observe(s);
        }
        h.snapshot()
    }
}

/// The counters read from the event log (recomputed only when the log changes).
#[derive(Debug, Clone, Default)]
pub struct LogCounters {
    pub pings: BTreeMap<(String, String), u64>,
    pub restarts: BTreeMap<(String, String), u64>,
    pub held_seconds: BTreeMap<String, f64>,
    /// Pools still held when counted, with the time (Unix ms) `held_seconds` runs to.
    pub held_open: BTreeMap<String, i64>,
    /// Ping → ack latencies, seconds.
    pub ack_latencies: Vec<f64>,
}

/// Count what the metrics need from `log`; a hold still open counts up to `now_ms`.
/// Agents without a pool are their own pool (`pool` = the agent's name).
pub fn log_counters(log: &Log, now_ms: i64) -> LogCounters {
    let mut c = LogCounters::default();
    for e in &log.events {
        let agent = e.agent.clone().unwrap_or_default();
        let reason = e.reason.clone().unwrap_or_default();
        match e.name.as_str() {
            "ping" => *c.pings.entry((agent, reason)).or_default() += 1,
            "healed" => *c.restarts.entry((agent, reason)).or_default() += 1,
            "restarted" => *c.restarts.entry((agent, "exited".into())).or_default() += 1,
            "ping_acked" => c
                .ack_latencies
                .extend(e.f64("latency_ms").map(|ms| ms / 1000.0)),
            _ => {}
        }
    }
    let figures = report::compute(
        log,
        report::Options {
            since_ms: None,
            now_ms,
        },
    );
    // Account pools: a hold runs from `pool_held` to the `pool_released` that frees the last
    // member; their members are counted under the pool, not one by one.
    let mut pooled: std::collections::BTreeSet<String> = Default::default();
    let mut open: BTreeMap<String, i64> = BTreeMap::new();
    for e in &log.events {
        let Some(pool) = e.str("pool").map(String::from) else {
            continue;
        };
        match e.name.as_str() {
            "pool_held" => {
                if let Some(m) = e.fields.get("members").and_then(|m| m.as_array()) {
                    pooled.extend(m.iter().filter_map(|v| v.as_str().map(String::from)));
                }
                pooled.extend(e.agent.clone());
                open.entry(pool.clone()).or_insert(e.ts);
                c.held_seconds.entry(pool).or_default();
            }
            "pool_released" if e.f64("remaining") == Some(0.0) => {
                if let Some(start) = open.remove(&pool) {
                    *c.held_seconds.entry(pool).or_default() +=
                        (e.ts - start).max(0) as f64 / 1000.0;
                }
            }
            _ => {}
        }
    }
    for (pool, start) in open {
        *c.held_seconds.entry(pool.clone()).or_default() += (now_ms - start).max(0) as f64 / 1000.0;
        c.held_open.insert(pool, now_ms);
    }
    for a in figures.agents.iter().filter(|a| !pooled.contains(&a.name)) {
        if a.limit_holds > 0 || a.seconds.held > 0.0 {
            c.held_seconds.insert(a.name.clone(), a.seconds.held);
        }
        if let Some(last) = a.spans.last()
            && last.state == "held"
            && last.end_ms == figures.window.to_ms
        {
            c.held_open.insert(a.name.clone(), last.end_ms);
        }
    }
    c
}

/// Everything one scrape shows.
pub struct Inputs<'a> {
    /// The status snapshot; None when tmux could not be read (fleet metrics are left out).
    pub status: Option<&'a status::Report>,
    pub phase: Option<&'a status::PhaseReport>,
    pub log: &'a LogCounters,
    pub ticks: Option<HistogramData>,
    pub watchdog_up: bool,
    /// Unix ms: an open hold counts up to now, between recounts of the log.
    pub now_ms: i64,
}

/// Escape a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn num(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, pairs: &[(&str, &str)], v: f64) {
        let _ = writeln!(self.0, "{name}{} {}", labels(pairs), num(v));
    }
    fn histogram(&mut self, name: &str, help: &str, h: &HistogramData) {
        self.family(name, "histogram", help);
        for (i, count) in h.cumulative.iter().enumerate() {
            let le = h.bounds.get(i).map_or("+Inf".to_string(), |b| num(*b));
            self.sample(&format!("{name}_bucket"), &[("le", &le)], *count as f64);
        }
        self.sample(&format!("{name}_sum"), &[], h.sum);
        let total = h.cumulative.last().copied().unwrap_or(0);
        self.sample(&format!("{name}_count"), &[], total as f64);
    }
}

/// The whole exposition text.
pub fn render(i: &Inputs<'_>) -> String {
    let mut o = Out(String::new());
    o.family(
        "orch_watchdog_up",
        "gauge",
        "1 while the watchdog serving these metrics runs.",
    );
    o.sample(
        "orch_watchdog_up",
        &[],
        if i.watchdog_up { 1.0 } else { 0.0 },
    );
    o.family("orch_phase_count", "gauge", "Phases in [loop].phases.");
    o.sample(
        "orch_phase_count",
        &[],
        i.phase.map_or(0, |p| p.count) as f64,
    );
    if let Some(p) = i.phase {
        o.family(
            "orch_phase_index",
            "gauge",
            "The current phase index (0-based).",
        );
        o.sample("orch_phase_index", &[], p.index as f64);
    }
    if let Some(s) = i.status {
        let mut by_state: BTreeMap<&str, u64> = STATES.iter().map(|s| (*s, 0)).collect();
        for a in &s.agents {
            *by_state.entry(a.state).or_default() += 1;
        }
        o.family("orch_agents", "gauge", "Agents by state.");
        for (state, n) in by_state {
            o.sample("orch_agents", &[("state", state)], n as f64);
        }
        o.family(
            "orch_agent_up",
            "gauge",
            "1 when the agent's session is running.",
        );
        for a in &s.agents {
            let up = if a.running { 1.0 } else { 0.0 };
            o.sample(
                "orch_agent_up",
                &[("agent", &a.name), ("host", "local")],
                up,
            );
        }
    }
    o.family(
        "orch_pings_total",
        "counter",
        "Pings typed into agents, by reason.",
    );
    for ((agent, reason), n) in &i.log.pings {
        o.sample(
            "orch_pings_total",
            &[("agent", agent), ("reason", reason)],
            *n as f64,
        );
    }
    o.family(
        "orch_restarts_total",
        "counter",
        "Agent restarts by the watchdog, by reason.",
    );
    for ((agent, reason), n) in &i.log.restarts {
        o.sample(
            "orch_restarts_total",
            &[("agent", agent), ("reason", reason)],
            *n as f64,
        );
    }
    o.family(
        "orch_limit_held_seconds_total",
        "counter",
        "Seconds agents were held for a usage limit, by pool.",
    );
    for (pool, secs) in &i.log.held_seconds {
        let open = i
            .log
            .held_open
            .get(pool)
            .map_or(0.0, |since| (i.now_ms - since).max(0) as f64 / 1000.0);
        o.sample(
            "orch_limit_held_seconds_total",
            &[("pool", pool)],
            secs + open,
        );
    }
    let acks = HistogramData::of(ACK_BUCKETS, i.log.ack_latencies.iter().copied());
    o.histogram(
        "orch_ping_ack_latency_seconds",
        "From a ping to the agent's acknowledgement.",
        &acks,
    );
    if let Some(t) = &i.ticks {
        o.histogram(
            "orch_tick_duration_seconds",
            "How long each watchdog tick took.",
            t,
        );
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        let h = Histogram::new(&[0.1, 1.0]);
        for s in [0.05, 0.5, 0.7, 3.0] {
            h.observe(s);
        }
        let d = h.snapshot();
        assert_eq!(d.cumulative, vec![1, 3, 4]);
        assert!((d.sum - 4.25).abs() < 1e-6);
        let mut o = Out(String::new());
        o.histogram("x_seconds", "X.", &d);
        assert_eq!(
            o.0,
            "# HELP x_seconds X.\n# TYPE x_seconds histogram\nx_seconds_bucket{le=\"0.1\"} 1\n\
             x_seconds_bucket{le=\"1\"} 3\nx_seconds_bucket{le=\"+Inf\"} 4\nx_seconds_sum 4.25\nx_seconds_count 4\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(labels(&[("agent", "x\"y")]), "{agent=\"x\\\"y\"}");
    }

    #[test]
    fn a_pool_hold_counts_once_under_the_pool_until_its_last_release() {
        let text = concat!(
            "{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"limit_hit\",\"agent\":\"a\",\"pool\":\"acct\"}\n",
            "{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"pool_held\",\"agent\":\"a\",\"pool\":\"acct\",\"members\":[\"a\",\"b\"]}\n",
            "{\"ts\":\"2026-01-01T00:01:00Z\",\"event\":\"pool_released\",\"agent\":\"a\",\"pool\":\"acct\",\"remaining\":1}\n",
            "{\"ts\":\"2026-01-01T00:01:30Z\",\"event\":\"pool_released\",\"agent\":\"b\",\"pool\":\"acct\",\"remaining\":0}\n",
            "{\"ts\":\"2026-01-01T00:02:00Z\",\"event\":\"pool_held\",\"agent\":\"b\",\"pool\":\"acct\",\"members\":[\"a\",\"b\"]}\n",
        );
        let log = report::parse_log(text.as_bytes());
        let c = log_counters(&log, 1_767_225_720_000 + 10_000);
        assert_eq!(c.held_seconds["acct"], 100.0, "{:?}", c.held_seconds);
        assert!(!c.held_seconds.contains_key("a"), "{:?}", c.held_seconds);
        assert!(c.held_open.contains_key("acct"), "the second hold is open");
    }

    #[test]
    fn counters_come_from_the_event_log() {
        let text = concat!(
            "{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"agent_started\",\"agent\":\"b\"}\n",
            "{\"ts\":\"2026-01-01T00:00:01Z\",\"event\":\"ping\",\"agent\":\"b\",\"reason\":\"review\"}\n",
            "{\"ts\":\"2026-01-01T00:00:02Z\",\"event\":\"ping\",\"agent\":\"b\",\"reason\":\"review\"}\n",
            "{\"ts\":\"2026-01-01T00:00:03Z\",\"event\":\"healed\",\"agent\":\"b\",\"reason\":\"gone\"}\n",
            "{\"ts\":\"2026-01-01T00:00:04Z\",\"event\":\"restarted\",\"agent\":\"b\"}\n",
            "{\"ts\":\"2026-01-01T00:00:10Z\",\"event\":\"limit_hit\",\"agent\":\"b\"}\n",
            "{\"ts\":\"2026-01-01T00:01:10Z\",\"event\":\"limit_lifted\",\"agent\":\"b\"}\n",
            "{\"ts\":\"2026-01-01T00:01:11Z\",\"event\":\"ping_acked\",\"agent\":\"b\",\"latency_ms\":1500}\n",
        );
        let log = report::parse_log(text.as_bytes());
        let c = log_counters(&log, 0);
        assert!(c.held_open.is_empty(), "the hold was lifted");
        let held = report::parse_log(b"{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"watchdog_started\"}\n{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"limit_hit\",\"agent\":\"h\"}\n");
        let open = log_counters(&held, 1_767_225_610_000);
        assert_eq!(open.held_seconds["h"], 10.0);
        let later = render(&Inputs {
            status: None,
            phase: None,
            log: &open,
            ticks: None,
            watchdog_up: true,
            now_ms: 1_767_225_615_000,
        });
        assert!(
            later.contains("orch_limit_held_seconds_total{pool=\"h\"} 15\n"),
            "{later}"
        );
        let key = |a: &str, r: &str| (a.to_string(), r.to_string());
        assert_eq!(c.pings[&key("b", "review")], 2);
        assert_eq!(c.restarts[&key("b", "gone")], 1);
        assert_eq!(c.restarts[&key("b", "exited")], 1);
        assert_eq!(c.held_seconds["b"], 60.0);
        assert_eq!(c.ack_latencies, vec![1.5]);
        let text = render(&Inputs {
            status: None,
            phase: None,
            log: &c,
            ticks: None,
            watchdog_up: true,
            now_ms: 0,
        });
        assert!(
            text.contains("orch_pings_total{agent=\"b\",reason=\"review\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("orch_limit_held_seconds_total{pool=\"b\"} 60\n"),
            "{text}"
        );
        assert!(
            text.contains("orch_ping_ack_latency_seconds_bucket{le=\"2.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("orch_watchdog_up 1\norch_phase_count")
                || text.contains("# HELP orch_phase_count")
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP"
            );
        }
    }
}
