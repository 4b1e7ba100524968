//! `cargo bench --bench ping_ack`: ping→ack latency, from the moment the watchdog starts typing
//! a ping to the agent's UserPromptSubmit hook recording its `[orch:ping <id>]` (the
//! `latency_ms` of `ping_acked`), at `signal_interval = 1`.
//!
//! A sim agent playing Claude's hooks (ORCH_SIM_HOOKS=1) with screen rules on a private tmux
//! server (`tmux -L`), `orch up`; pings queued one at a time through `orch::fleet::pings`;
//! killed at the end. Skips without tmux.
use std::process::Command;
use std::time::{Duration, Instant};

use orch::config::{LoadOptions, load};
use orch::fleet::ping_log::{self, OutboxRecord};
use orch::fleet::pings::{self, PendingPing};

const RUNS: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

fn config(socket: &str) -> String {
    let bin = env!("CARGO_BIN_EXE_orch")
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        r#"[defaults]
session_prefix = "ack-"
log_dir = ".orch"
tmux_socket = "{socket}"

[watchdog]
signal_interval = 1
heavy_interval = 30

[backend.simui]
bin = "{bin} sim"
flags = "--step-ms 40"
prompt_delivery = "arg"
process_name = "orch"
active_re = "esc to interrupt"
screen_rules = [
  {{ state = "busy", pattern = "esc to interrupt", rows = 3 }},
  {{ state = "idle_input", pattern = "^>(?: |$)", rows = 2 }},
]

[[agent]]
name = "solo"
backend = "simui"
hooks = true
prompt = "Check in and wait."
env = {{ ORCH_SIM_HOOKS = "1" }}
"#
    )
}

fn acked_latency(log: &std::path::Path, id: &str) -> Option<f64> {
    orch::events::read_since(log, 0)
        .into_iter()
        .map(|(_, e)| e)
        .find(|e| e["event"] == "ping_acked" && e["id"] == id)
        .and_then(|e| e["latency_ms"].as_f64())
}

fn main() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("ping_ack bench skipped: tmux is not on PATH");
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return println!("ping_ack bench skipped: no temp dir: {e}"),
    };
    let root = dir.path();
    let socket = format!("orch-bench-ack-{}", std::process::id());
    let path = root.join("agents.toml");
    if std::fs::write(&path, config(&socket)).is_err() {
        return println!("ping_ack bench skipped: cannot write {}", path.display());
    }
    let orch = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_orch"))
            .arg("--config")
            .arg(&path)
            .args(args)
            .current_dir(root)
            .env_remove("ORCH_TMUX_SOCKET")
            .env_remove("TMUX")
            .output()
    };
    if !orch(&["up"]).is_ok_and(|o| o.status.success()) {
        return println!("ping_ack bench skipped: `orch up` failed");
    }
    let cfg = match load(&path, LoadOptions::WATCHDOG) {
        Ok(l) => l.config,
        Err(e) => return println!("ping_ack bench skipped: {e}"),
    };
    let events = cfg.log_dir.join("events.jsonl");
    std::thread::sleep(Duration::from_millis(2500));
    let mut ms = Vec::new();
    let mut queued_ms = Vec::new();
    for i in 1..=RUNS {
        let mut ping = PendingPing::new(
            format!("bench-{i}"),
            "inbox",
            format!("bench ping {i}"),
            serde_json::Value::Null,
        );
        ping.ping_id = ping_log::next_id(&cfg, "solo");
        let id = ping.ping_id.clone();
        let mut outbox = pings::load(&cfg, "solo");
        pings::enqueue(&mut outbox, ping);
        pings::save(&cfg, "solo", &outbox);
        ping_log::record(&cfg, "solo", &OutboxRecord::new(&id, "queued", "inbox", 0));
        let t0 = Instant::now();
        let mut got = None;
        while got.is_none() && t0.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(20));
            got = acked_latency(&events, &id);
        }
        match got {
            Some(l) => {
                ms.push(l);
                queued_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            None => {
                println!("ping_ack bench: ping {id} was not acked within {WAIT:?}");
                break;
            }
        }
        // The queue file is gone once the ping settled: the next one is queued alone.
        while pings::outbox_file(&cfg, "solo").exists() && t0.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = orch(&["down"]);
    for server in [socket.clone(), format!("{socket}-watchdog")] {
        let _ = Command::new("tmux")
            .args(["-L", &server, "kill-server"])
            .output();
    }
    if ms.is_empty() {
        return;
    }
    println!(
        "ping→ack latency (sim with hooks, signal_interval = 1, {} pings)",
        ms.len()
    );
    summary("typed → hook ack (latency_ms)", &ms);
    summary("queued → ack seen in events", &queued_ms);
}

fn summary(what: &str, ms: &[f64]) {
    let mut sorted = ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "    {what}: p50 {:.0} ms   p95 {:.0} ms   min {:.0} ms   max {:.0} ms",
        pct(0.5),
        pct(0.95),
        sorted[0],
        sorted[sorted.len() - 1]
    );
}
