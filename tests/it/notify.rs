//! Notifications: each webhook format on a real HTTP server, a command sink without a shell,
//! the repeat and batch rules on the real notifier, and on real tmux fleets: gave_up notified
//! exactly once across a watchdog restart, a dead sink that does not stop the loop.
mod server;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::project::{Project, loop_section, sim_backend};
use crate::support::{orch_cmd, wait_for};
use server::{Server, closed_port};

/// A config in `dir` with `watchdog` keys and `body` (sinks, agents); loaded as the watchdog does.
fn config(dir: &Path, watchdog: &str, body: &str) -> orch::config::Config {
    let path = dir.join("agents.toml");
    let text = format!(
        "[defaults]\nsession_prefix = \"n-\"\nlog_dir = \".orch\"\n\n[watchdog]\n{watchdog}\n{body}"
    );
    std::fs::write(&path, text).unwrap();
    orch::config::load(&path, orch::config::LoadOptions::WATCHDOG)
        .unwrap()
        .config
}

/// A command sink that records each run in `out`: the `{summary}` argument, the env, a run mark.
fn recorder_sink(out: &Path, events: &str) -> String {
    format!(
        r#"
[[notify]]
command = ["sh", "-c", '''
d="$1"; n=$(($(cat "$d/runs" 2>/dev/null | wc -l) + 1))
printf '%s' "$2" > "$d/arg.$n"; printf '%s' "$ORCH_SUMMARY" > "$d/summary.$n"
printf '%s' "$ORCH_EVENT" > "$d/event.$n"; printf '%s' "$ORCH_AGENT" > "$d/agent.$n"
printf '%s' "$ORCH_EVENT_JSON" > "$d/json.$n"; echo run >> "$d/runs"
''', "rec", "{out}", "{{summary}}"]
events = {events}
"#,
        out = out.display()
    )
}

fn runs(out: &Path) -> usize {
    std::fs::read_to_string(out.join("runs"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn read(out: &Path, what: &str, n: usize) -> String {
    std::fs::read_to_string(out.join(format!("{what}.{n}"))).unwrap_or_default()
}

fn log(cfg: &orch::config::Config) -> orch::events::EventLog {
    orch::events::EventLog::open(&cfg.log_dir).unwrap()
}

#[test]
fn notify_test_posts_each_format_with_its_body_and_headers() {
    let srv = Server::start(200);
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::new();
    for f in ["json", "slack", "discord", "ntfy"] {
        let url = srv.url(&format!("/{f}/SECRETPATH?token=SECRET"));
        body += &format!("[[notify]]\nwebhook = \"{url}\"\nformat = \"{f}\"\n\n");
    }
    let cfg = config(dir.path(), "", &body);
    let out = orch_cmd(&cfg.path, "unused", dir.path(), &["notify", "test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches(": sent").count(), 4, "{stdout}");
    let host = format!("http://127.0.0.1:{}", srv.port);
    assert!(
        stdout.contains(&format!("sink 3 ({host}, ntfy): sent")),
        "{stdout}"
    );
    assert!(
        !stdout.contains("SECRET"),
        "a URL's secret parts were printed: {stdout}"
    );
    let reqs = srv.wait(4, Duration::from_secs(10));
    let by = |f: &str| {
        reqs.iter()
            .find(|r| r.target.starts_with(&format!("/{f}/")))
            .unwrap_or_else(|| panic!("no {f} request: {reqs:#?}"))
            .clone()
    };
    assert!(reqs.iter().all(|r| r.method == "POST"));
    let j = by("json");
    assert_eq!(j.headers["content-type"], "application/json");
    let v = j.json();
    assert_eq!(v["event"], "notify_test");
    assert_eq!(
        v["project"],
        dir.path().file_name().unwrap().to_str().unwrap()
    );
    assert!(v["summary"].as_str().unwrap().contains("test"), "{v}");
    assert!(v["ts"].is_string());
    let text = by("slack").json();
    assert_eq!(
        text.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["text"]
    );
    assert!(
        text["text"].as_str().unwrap().starts_with("orch "),
        "{text}"
    );
    let d = by("discord").json();
    assert_eq!(
        d.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["content"]
    );
    assert_eq!(d["content"], text["text"]);
    let n = by("ntfy");
    assert_eq!(n.text(), v["summary"].as_str().unwrap());
    assert!(
        n.headers["title"].ends_with(": notify_test"),
        "{:?}",
        n.headers
    );
    assert_eq!(n.headers["priority"], "default");
    assert!(n.headers["tags"].contains("notify_test"), "{:?}", n.headers);
    assert!(n.headers["content-type"].starts_with("text/plain"));

    // One sink only.
    let out = orch_cmd(
        &cfg.path,
        "unused",
        dir.path(),
        &["notify", "test", "--sink", "1"],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(srv.wait(5, Duration::from_secs(10)).len(), 5);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(srv.requests().len(), 5, "--sink 1 sent to one sink only");
    let out = orch_cmd(
        &cfg.path,
        "unused",
        dir.path(),
        &["notify", "test", "--sink", "9"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn notify_test_reports_a_dead_sink_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let body = format!(
        "[[notify]]\nwebhook = \"http://127.0.0.1:{port}/hook?token=SECRET\"\ntimeout = 2\n\n[[notify]]\ncommand = [\"true\"]\n"
    );
    let cfg = config(dir.path(), "", &body);
    let out = orch_cmd(&cfg.path, "unused", dir.path(), &["notify", "test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("sink 0 (http://127.0.0.1:{port}, json): FAILED")),
        "{stdout}"
    );
    assert!(stdout.contains("after 3 attempts"), "{stdout}");
    assert!(
        stdout.contains("sink 1 (command true, json): sent"),
        "{stdout}"
    );
    assert!(!stdout.contains("SECRET"), "{stdout}");
}

#[test]
fn a_command_sink_gets_the_env_and_a_verbatim_summary_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let cfg = config(
        dir.path(),
        "batch_window = 1",
        &recorder_sink(&out, r#"["gave_up", "needs_attention"]"#),
    );
    let notifier = orch::notify::Notifier::spawn(&cfg);
    let pwned = dir.path().join("PWNED");
    let nasty = format!(
        "b's \"quoted\" $(touch {p}) `touch {p}` ; touch {p} {{agent}}",
        p = pwned.display()
    );
    let log = log(&cfg);
    log.append(
        "gave_up",
        json!({"agent": "b", "restarts": 3, "summary": nasty}),
    )
    .unwrap();
    log.append(
        "needs_attention",
        json!({"agent": "b", "state": "auth_error"}),
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(10), || runs(&out) >= 1));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        runs(&out),
        1,
        "two events within the batch window: one message"
    );
    let expected = format!("- {nasty}\n- b has an auth error: check its key");
    assert_eq!(read(&out, "arg", 1), expected);
    assert_eq!(read(&out, "summary", 1), expected);
    assert_eq!(read(&out, "event", 1), "batch");
    assert_eq!(read(&out, "agent", 1), "b");
    let j: Value = serde_json::from_str(&read(&out, "json", 1)).unwrap();
    assert_eq!(j["events"][0]["summary"], nasty);
    assert_eq!(j["events"][1]["event"], "needs_attention");
    assert!(!pwned.exists(), "the summary went through a shell");
    drop(notifier);
}

#[test]
fn a_flapping_episode_is_sent_no_more_often_than_repeat_after() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let cfg = config(
        dir.path(),
        "batch_window = 0\nrepeat_after = 2",
        &recorder_sink(&out, r#"["needs_attention"]"#),
    );
    let notifier = orch::notify::Notifier::spawn(&cfg);
    let log = log(&cfg);
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(4500) {
        log.append(
            "needs_attention",
            json!({"agent": "b", "state": "login_required"}),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(notifier);
    let sent = runs(&out);
    assert!(
        (2..=3).contains(&sent),
        "45 events over 4.5 s, repeat_after 2 s: {sent} messages"
    );
}

#[test]
fn a_restarted_notifier_neither_resends_old_events_nor_an_episode_inside_repeat_after() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let cfg = config(
        dir.path(),
        "batch_window = 0",
        &recorder_sink(&out, r#"["needs_attention"]"#),
    );
    let log = log(&cfg);
    let attention = |agent: &str| {
        log.append(
            "needs_attention",
            json!({"agent": agent, "state": "login_required"}),
        )
        .unwrap()
    };
    let notifier = orch::notify::Notifier::spawn(&cfg);
    attention("b");
    assert!(wait_for(Duration::from_secs(10), || runs(&out) == 1));
    drop(notifier);
    let notifier = orch::notify::Notifier::spawn(&cfg);
    attention("b");
    attention("c");
    assert!(wait_for(Duration::from_secs(10), || runs(&out) >= 2));
    std::thread::sleep(Duration::from_millis(800));
    drop(notifier);
    assert_eq!(runs(&out), 2, "only c's new episode");
    assert_eq!(read(&out, "agent", 2), "c", "{}", read(&out, "summary", 2));
    assert_eq!(read(&out, "event", 2), "needs_attention");
}

/// An exec backend running `script` with `sh -c`.
fn sh_backend(name: &str, script: &str) -> String {
    format!("\n[backend.{name}]\nbin = '''sh -c \"{script}\" '''\nprompt_delivery = \"exec\"\n")
}

#[test]
fn an_agent_exiting_into_gave_up_is_notified_exactly_once_across_a_watchdog_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_path_buf();
    let body = format!(
        "batch_window = 0\n{}{}\n[[agent]]\nname = \"c\"\nbackend = \"crash\"\nrestart = \"on-failure\"\nmax_restarts = 1\nrestart_backoff = 1\n",
        sh_backend("crash", "sleep 0.3; exit 1"),
        recorder_sink(&out, r#"["gave_up", "needs_attention", "stalled"]"#),
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("gave_up", 1, Duration::from_secs(60)),
        "{:#?}",
        p.events()
    );
    assert!(
        wait_for(Duration::from_secs(10), || runs(&out) >= 1),
        "{:#?}",
        p.events()
    );
    assert_eq!(read(&out, "event", 1), "gave_up");
    assert_eq!(read(&out, "agent", 1), "c");
    assert!(
        read(&out, "summary", 1).contains("gave up"),
        "{}",
        read(&out, "summary", 1)
    );
    // The status lists it first.
    let st: Value = serde_json::from_str(&p.orch_ok(&["status", "--json"])).unwrap();
    assert_eq!(st["attention"][0]["event"], "gave_up", "{st}");
    let table = p.orch_ok(&["status"]);
    assert!(
        table.starts_with("needs attention:\n  ! c: orch gave up"),
        "{table}"
    );
    p.orch_ok(&["down", "watchdog"]);
    assert!(p.wait_events("watchdog_stopped", 1, Duration::from_secs(15)));
    p.orch_ok(&["up", "watchdog"]);
    assert!(p.wait_events("watchdog_started", 2, Duration::from_secs(15)));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(runs(&out), 1, "{:#?}", p.events());
    // The derived state's change has an event of its own once it held a few seconds.
    let gave_up_state = || {
        p.events_named("state_changed")
            .iter()
            .any(|e| e["agent"] == "c" && e["to"] == "gave_up")
    };
    assert!(
        wait_for(Duration::from_secs(20), gave_up_state),
        "{:#?}",
        p.events()
    );
    assert_eq!(runs(&out), 1, "{:#?}", p.events());
    p.orch_ok(&["down"]);
}

#[test]
fn a_sink_on_a_closed_port_logs_notify_failed_and_the_loop_still_completes() {
    let port = closed_port();
    let tmp = tempfile::tempdir().unwrap();
    let out: PathBuf = tmp.path().to_path_buf();
    let body = format!(
        "batch_window = 0\n{}[[notify]]\nwebhook = \"http://127.0.0.1:{port}/hook/SECRET\"\ntimeout = 2\n{}{}{}{}",
        sim_backend("sim", ""),
        recorder_sink(&out, r#"["sequence_complete"]"#),
        crate::e2e::agents("sim"),
        loop_section(2, ""),
        crate::e2e::ON_COMPLETE,
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    crate::e2e::wait_complete(&p, Duration::from_secs(90));
    assert!(
        p.wait_events("notify_failed", 1, Duration::from_secs(20)),
        "{:#?}",
        p.events()
    );
    let failed = p.events_named("notify_failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["sink"], format!("http://127.0.0.1:{port}"));
    assert_eq!(failed[0]["events"], json!(["sequence_complete"]));
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("after 3 attempts"),
        "{failed:#?}"
    );
    let text = std::fs::read_to_string(p.log_dir().join("events.jsonl")).unwrap();
    assert!(
        !text.contains("SECRET"),
        "a URL's secret parts reached the event log"
    );
    assert!(wait_for(Duration::from_secs(10), || runs(&out) >= 1));
    assert_eq!(read(&out, "event", 1), "sequence_complete");
    assert_eq!(p.events_named("phase_advanced").len(), 1);
    p.orch_ok(&["down"]);
}

/// The error text of loading `body` strictly (as `orch validate` does).
fn config_error(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agents.toml");
    let text = format!(
        "[defaults]\nsession_prefix = \"n-\"\nlog_dir = \".orch\"\n\n[[agent]]\nname = \"builder\"\nbackend = \"codex\"\nprompt = \"x\"\n\n{body}"
    );
    std::fs::write(&path, text).unwrap();
    match orch::config::load(&path, orch::config::LoadOptions::STRICT) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn notify_sinks_are_validated_with_clear_errors_that_never_echo_the_url() {
    let e = config_error("[[notify]]\nwebhook = \"https://h/SECRET\"\ncommand = [\"x\"]\n");
    assert!(
        e.contains("notify[0]: set webhook or command, not both"),
        "{e}"
    );
    assert!(!e.contains("SECRET"), "{e}");
    let e = config_error("[[notify]]\nformat = \"slack\"\n");
    assert!(e.contains("notify[0]: set webhook"), "{e}");
    let e = config_error("[[notify]]\nwebhook = \"ftp://h/SECRET\"\n");
    assert!(
        e.contains("notify[0].webhook must be an http:// or https:// URL"),
        "{e}"
    );
    assert!(!e.contains("SECRET"), "{e}");
    let e = config_error("[[notify]]\ncommand = []\n");
    assert!(e.contains("notify[0].command needs a program"), "{e}");
    let e = config_error("[[notify]]\ncommand = [\"x\"]\nformat = \"teams\"\n");
    assert!(
        e.contains(
            "notify[0].format \"teams\" is not known (use one of: json, slack, discord, ntfy)"
        ),
        "{e}"
    );
    let e = config_error("[[notify]]\ncommand = [\"x\"]\nevents = [\"gave_upp\"]\n");
    assert!(
        e.contains("\"gave_upp\" is not an event orch logs (did you mean \"gave_up\"?)"),
        "{e}"
    );
    let e = config_error("[[notify]]\ncommand = [\"x\"]\nevents = [\"notify_failed\"]\n");
    assert!(e.contains("notify_failed cannot be notified"), "{e}");
    let e = config_error("[[notify]]\ncommand = [\"x\"]\nagents = [\"bilder\"]\n");
    assert!(
        e.contains("notify[0].agents: no agent is named \"bilder\""),
        "{e}"
    );
    assert!(
        e.contains("agents.toml:12:10: notify"),
        "the error points at the line: {e}"
    );
    let e = config_error("[[notify]]\ncommand = [\"x\"]\nevent = [\"gave_up\"]\n");
    assert!(e.contains("notify[0].event"), "an unknown key: {e}");
    // A good sink, with host_unreachable (logged by hosts) accepted.
    let ok = "[[notify]]\nwebhook = \"http://127.0.0.1:9/x\"\nformat = \"ntfy\"\nevents = [\"host_unreachable\", \"state_changed\"]\nagents = [\"builder\"]\ntimeout = \"5s\"\n";
    assert_eq!(config_error(ok), "");
}

#[test]
fn notify_defaults_are_the_attention_events_and_sequence_complete() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "", "[[notify]]\ncommand = [\"true\"]\n");
    let sink = &cfg.notify[0];
    assert_eq!(sink.format, orch::config::NotifyFormat::Json);
    assert_eq!(sink.events, orch::config::DEFAULT_NOTIFY_EVENTS.to_vec());
    assert!(sink.agents.is_none());
    let w = &cfg.watchdog;
    assert_eq!(
        [
            w.attention_after,
            w.phase_quiet_after,
            w.repeat_after,
            w.batch_window
        ],
        [300, 6 * 3600, 3600, 30].map(Duration::from_secs)
    );
}

#[test]
fn the_demo_shows_the_notification_its_sink_received() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::support::orch_bin())
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .current_dir(dir.path())
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("notify: every phase is done: the sequence is complete"),
        "{stdout}"
    );
}
