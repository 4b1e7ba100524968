//! The metrics against real tools: `promtool check metrics` on the text, and a real Prometheus
//! scraping the watchdog's `[api].metrics_listen` and answering queries about the fleet.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::report::tool;
use crate::support::{TmuxServer, orch_cmd, stdout_ok, wait_for};

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over HTTP/1.0: (status, body), or None when nothing answers.
fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let code = raw.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        code,
        raw.split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string(),
    ))
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A child process killed (and reaped) on drop; SIGTERM first for the watchdog.
struct Proc(Child, bool);

impl Drop for Proc {
    fn drop(&mut self) {
        if self.1 {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
            if wait_for(Duration::from_secs(10), || {
                matches!(self.0.try_wait(), Ok(Some(_)))
            }) {
                return;
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `promtool check metrics` on `text`: (passed, what it printed).
fn promtool_check(promtool: &Path, text: &str) -> (bool, String) {
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn prometheus_scrapes_the_metrics_listener_and_promtool_accepts_the_text() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let server = TmuxServer::new();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let config = root.join("agents.toml");
    std::fs::write(
        &config,
        format!(
            r#"[defaults]
session_prefix = "m-"
log_dir = ".orch"
tmux_socket = "{}"

[watchdog]
signal_interval = 1
heavy_interval = 1

[api]
metrics_listen = "{addr}"

[backend.sleeper]
bin = "sleep 1000"
prompt_delivery = "exec"
process_name = "sleep"

[[agent]]
name = "builder"
backend = "sleeper"
prompt = "hi"

[loop]
phases = [{{ id = "p1", plan = "p1.md", status = "p1-S.md" }}, {{ id = "p2", plan = "p2.md", status = "p2-S.md" }}, {{ id = "p3", plan = "p3.md", status = "p3-S.md" }}]
"#,
            server.socket
        ),
    )
    .unwrap();
    let ok = |args: &[&str]| stdout_ok(orch_cmd(&config, &server.socket, &root, args), args);
    ok(&["phase", "set", "1"]);
    ok(&["up", "builder"]);
    let wd = orch_cmd(&config, &server.socket, &root, &["watchdog"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _wd = Proc(wd, true);
    assert!(
        wait_for(Duration::from_secs(20), || get(&addr, "/metrics")
            .is_some_and(|(c, _)| c == 200)),
        "the metrics listener never answered on {addr}"
    );
    // A tick has run: the tick histogram has a sample.
    assert!(wait_for(Duration::from_secs(20), || {
        get(&addr, "/metrics")
            .is_some_and(|(_, t)| !t.contains("orch_tick_duration_seconds_count 0\n"))
    }));
    let (_, text) = get(&addr, "/metrics").unwrap();
    assert!(text.contains("\norch_phase_index 1\n"), "{text}");
    assert!(text.contains("\norch_phase_count 3\n"), "{text}");
    assert!(
        text.contains("orch_agent_up{agent=\"builder\",host=\"local\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("orch_watchdog_up 1\n"), "{text}");
    // Metrics only on the TCP listener; the socket serves them too.
    assert_eq!(get(&addr, "/v1/agents").map(|r| r.0), Some(404));
    let mut sock = std::os::unix::net::UnixStream::connect(root.join(".orch/orch.sock")).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(sock, "GET /metrics HTTP/1.0\r\nHost: orch\r\n\r\n").unwrap();
    let mut raw = String::new();
    sock.read_to_string(&mut raw).unwrap();
    assert!(
        raw.starts_with("HTTP/1.0 200") || raw.starts_with("HTTP/1.1 200"),
        "{raw}"
    );
    assert!(
        raw.contains("text/plain; version=0.0.4") && raw.contains("\norch_phase_index 1\n"),
        "{raw}"
    );

    // DESIGN.md fixes the name orch_phase_count, which promtool's lint flags for its `_count`
    // suffix: that one remark is expected; the text without that family must pass clean.
    let (ok_full, said) = promtool_check(&promtool, &text);
    let remarks: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        remarks,
        [
            "orch_phase_count non-histogram and non-summary metrics should not have \"_count\" suffix"
        ],
        "promtool check metrics (exit ok: {ok_full}):\n{text}"
    );
    let without: String = text
        .lines()
        .filter(|l| !l.contains("orch_phase_count"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (clean, said) = promtool_check(&promtool, &without);
    assert!(clean, "promtool check metrics: {said}\n{without}");

    let prom_port = free_port();
    let prom_addr = format!("127.0.0.1:{prom_port}");
    let prom_yml = root.join("prometheus.yml");
    std::fs::write(
        &prom_yml,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: orch\n    static_configs:\n      - targets: [\"{addr}\"]\n"
        ),
    )
    .unwrap();
    let prom = Command::new(&prometheus)
        .arg(format!("--config.file={}", prom_yml.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            root.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prom = Proc(prom, false);
    let query = |q: &str| -> Option<Vec<Value>> {
        let (code, body) = get(&prom_addr, &format!("/api/v1/query?query={}", encode(q)))?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200)
            .then(|| v["data"]["result"].as_array().cloned())
            .flatten()
    };
    let value = |q: &str| query(q).and_then(|r| r.first().map(|s| s["value"][1].clone()));
    assert!(
        wait_for(Duration::from_secs(90), || value("orch_phase_index")
            == Some("1".into())),
        "Prometheus never returned orch_phase_index 1: {:?}",
        query("orch_phase_index")
    );
    assert_eq!(value("orch_phase_count"), Some("3".into()));
    assert_eq!(value("sum(orch_agents)"), Some("1".into()));
    // The builder's state in Prometheus is the one `orch status` shows.
    assert!(wait_for(Duration::from_secs(30), || {
        let status: Value = serde_json::from_str(&ok(&["status", "--json"])).unwrap();
        let state = status["agents"][0]["state"].as_str().unwrap().to_string();
        value(&format!("orch_agents{{state=\"{state}\"}}")) == Some("1".into())
    }));
    let states = query("orch_agents").unwrap();
    assert!(states.len() >= 9, "a sample for every state: {states:?}");
}
