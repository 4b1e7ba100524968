//! `cargo bench --bench report`: `orch report` over a 100,000-event log (a 3-day run of six
//! agents: pings, state changes, heals, holds, phase advances) — read, figures, text, HTML —
//! and the metrics' event-log counters over the same log. Goal: the report in under 1 s.
use std::time::{Duration, Instant};

use serde_json::json;

const EVENTS: i64 = 100_000;
const RUNS: usize = 5;

fn log_text() -> String {
    let t0 = 1_767_225_600_000i64;
    let agents = [
        "builder",
        "adversary",
        "reviewer",
        "docs",
        "ops",
        "finisher",
    ];
    let states = ["working", "idle", "working", "waiting_input", "working"];
    let mut out = String::with_capacity(EVENTS as usize * 120);
    for i in 0..EVENTS {
        let ts = orch::report::rfc3339_ms(t0 + i * 2_600).unwrap_or_default();
        let a = agents[(i % 6) as usize];
        let mut ev = match i % 11 {
            0 => {
                json!({"event": "ping", "agent": a, "reason": "claim", "delivered": true, "commits": ["0123456789abcdef0123456789abcdef01234567"]})
            }
            1 => json!({"event": "ping", "agent": a, "reason": "review", "delivered": true}),
            2 => json!({"event": "ping_acked", "agent": a, "latency_ms": (i % 5000) as f64}),
            3 if i % 300 == 3 => {
                json!({"event": "healed", "agent": a, "reason": "stall", "restarted": true})
            }
            4 if i % 900 == 4 => json!({"event": "limit_hit", "agent": a, "until": "later"}),
            5 if i % 900 == 5 => json!({"event": "limit_lifted", "agent": a}),
            6 if i % 5000 == 6 => {
                json!({"event": "phase_advanced", "from": format!("p{}", i / 5000), "to": format!("p{}", i / 5000 + 1)})
            }
            7 if i % 1000 == 7 => json!({"event": "agent_exited", "agent": a, "status": 1}),
            8 if i % 1000 == 8 => json!({"event": "restarted", "agent": a, "attempt": 1}),
            _ => json!({"event": "state_changed", "agent": a, "state": states[(i % 5) as usize]}),
        };
        ev["ts"] = json!(ts);
        out.push_str(&ev.to_string());
        out.push('\n');
    }
    out
}

fn best(mut f: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("events.jsonl");
    let text = log_text();
    std::fs::write(&path, &text).expect("writing the log");
    let mut html_len = 0;
    let report = best(|| {
        let log = orch::report::read_log(&path).expect("reading the log");
        let now = chrono::Utc::now().timestamp_millis();
        let r = orch::report::compute(
            &log,
            orch::report::Options {
                since_ms: None,
                now_ms: now,
            },
        );
        let text = orch::report::render_text(&r);
        let html = orch::report::render_html(&r, &log);
        let json = serde_json::to_string(&r).unwrap_or_default();
        html_len = html.len();
        std::hint::black_box((text, json));
    });
    let counters = best(|| {
        let log = orch::report::read_log(&path).expect("reading the log");
        std::hint::black_box(orch::metrics::log_counters(&log, 0));
    });
    println!(
        "report over {EVENTS} events ({:.1} MB): {:.0} ms (best of {RUNS}; goal < 1000 ms), HTML {:.0} KB",
        text.len() as f64 / 1e6,
        report.as_secs_f64() * 1e3,
        html_len as f64 / 1e3
    );
    println!(
        "metrics counters over the same log: {:.0} ms (recomputed only when the log changes)",
        counters.as_secs_f64() * 1e3
    );
    if report > Duration::from_secs(1) {
        println!("SLOWER THAN THE GOAL");
    }
}
