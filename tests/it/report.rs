//! The morning report against real tools: `orch report --json` on the recorded demo log, the
//! `[api]` config check, and the HTML timeline in headless Chromium.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{TempDir, orch_bin};

const DEMO_LOG: &str = include_str!("../fixtures/report/demo-events.jsonl");

/// An installed program (Debian's paths first), or None with a clear skip message.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/usr/local/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!(
            "SKIPPED: `{name}` is not installed (.ci/run installs it with apt-get install -y)"
        );
    }
    found
}

/// A project with no tmux needs: `body` after `[defaults]`, the demo log as its event log.
fn project_with_demo_log(body: &str) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agents.toml");
    std::fs::write(
        &config,
        format!("[defaults]\nsession_prefix = \"r-\"\nlog_dir = \".orch\"\n{body}"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join(".orch")).unwrap();
    std::fs::write(dir.path().join(".orch/events.jsonl"), DEMO_LOG).unwrap();
    (dir, config)
}

fn orch(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(orch_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ORCH_LOG")
        .output()
        .unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[test]
fn report_json_keeps_its_schema_on_the_recorded_demo_log() {
    let (_dir, config) = project_with_demo_log("");
    let out = orch(&config, &["report", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(
        keys(&r),
        [
            "agents",
            "events",
            "health",
            "phases",
            "schema_version",
            "sequence_complete",
            "window"
        ]
    );
    assert_eq!(
        keys(&r["phases"][0]),
        [
            "approvals",
            "claims",
            "commits",
            "done",
            "duration_seconds",
            "ended_at",
            "findings",
            "id",
            "index",
            "reviews",
            "started_at"
        ]
    );
    assert_eq!(
        keys(&r["agents"][0]),
        [
            "attention",
            "limit_holds",
            "name",
            "pings_by_reason",
            "pings_received",
            "restarts",
            "restarts_by_reason",
            "seconds",
            "stalls",
            "uptime_pct"
        ]
    );
    assert_eq!(
        keys(&r["agents"][0]["seconds"]),
        [
            "dead",
            "held",
            "idle",
            "running",
            "stopped",
            "unreachable",
            "working"
        ]
    );
    assert_eq!(
        keys(&r["health"]),
        [
            "attention",
            "commits",
            "config_errors",
            "fetch_errors",
            "handoffs",
            "handoffs_per_hour",
            "limit_held_hours",
            "ping_ack_latency",
            "pings",
            "pings_delivered",
            "pings_lost",
            "pings_undelivered",
            "restart_mttr_seconds",
            "restarts",
            "stall_detect_seconds",
            "watchdog_starts"
        ]
    );
    assert_eq!(
        keys(&r["health"]["ping_ack_latency"]),
        ["p50_ms", "p95_ms", "samples", "source"]
    );
    assert_eq!(
        keys(&r["health"]["restart_mttr_seconds"]),
        ["max", "p50", "p95", "samples"]
    );
    let p: Vec<(String, u64, u64, bool)> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_u64().unwrap();
            (
                p["id"].as_str().unwrap().into(),
                n("findings"),
                n("approvals"),
                p["done"] == true,
            )
        })
        .collect();
    assert_eq!(p, [("p1".into(), 1, 1, true), ("p2".into(), 1, 1, true)]);

    let text = String::from_utf8(orch(&config, &["report"]).stdout).unwrap();
    assert!(
        text.contains("PHASES") && text.contains("LOOP HEALTH"),
        "{text}"
    );
    let since = orch(&config, &["report", "--since", "yesterday"]);
    assert_eq!(since.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&since.stderr).contains("--since"));
}

#[test]
fn a_bad_metrics_listen_address_is_a_config_error_naming_the_key() {
    let (_dir, config) = project_with_demo_log("[api]\nmetrics_listen = \"localhost\"\n");
    let out = orch(&config, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[api].metrics_listen") && err.contains("agents.toml:"),
        "{err}"
    );
}

/// Run `cmd` to its end within `limit`, killing it past that; its stdout.
fn run_with_deadline(mut cmd: Command, limit: Duration) -> (bool, Vec<u8>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let ok = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.success();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (ok, reader.join().unwrap())
}

fn chromium(bin: &Path, profile: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    cmd
}

#[test]
fn html_timeline_renders_one_lane_per_agent_in_headless_chromium() {
    let Some(bin) = tool("chromium") else { return };
    let (dir, config) = project_with_demo_log("");
    let html = dir.path().join("report.html");
    let out = orch(&config, &["report", "--html", html.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = format!("file://{}", html.display());
    let profile = tempfile::tempdir().unwrap();

    let (ok, dom) = run_with_deadline(
        chromium(&bin, profile.path(), &["--dump-dom", &url]),
        Duration::from_secs(90),
    );
    let dom = String::from_utf8_lossy(&dom);
    assert!(ok, "chromium --dump-dom failed: {dom}");
    assert_eq!(dom.matches("class=\"lane\"").count(), 3, "{dom}");
    for agent in ["builder", "adversary", "finisher"] {
        assert!(
            dom.contains(&format!("data-agent=\"{agent}\"")),
            "no lane for {agent}"
        );
    }

    let shot = dir.path().join("shot.png");
    let (ok, _) = run_with_deadline(
        chromium(
            &bin,
            profile.path(),
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1300,700",
                &url,
            ],
        ),
        Duration::from_secs(90),
    );
    assert!(ok && shot.exists(), "chromium took no screenshot");
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(px).collect();
    let not_white = pixels.iter().filter(|p| p[..3] != [255, 255, 255]).count();
    // The "running" colour of the lanes, #5dade2.
    let running = pixels
        .iter()
        .filter(|p| p[..3] == [0x5d, 0xad, 0xe2])
        .count();
    assert!(
        not_white * 20 > pixels.len(),
        "the screenshot is blank: {not_white} of {}",
        pixels.len()
    );
    assert!(
        running > 5_000,
        "no lanes drawn: {running} running-coloured pixels"
    );
}
