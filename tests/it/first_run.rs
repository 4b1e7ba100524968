//! What a new user meets on a first run (issue 13, the CLI half): readable `logs`, a `down`
//! that stops every process an agent started, status fields that tell the truth after restarts.
use std::time::Duration;

use serde_json::Value;

use crate::fleet::fixture::Fx;
use crate::support::wait_for;

/// A service drawing like a TUI: colours, a spinner redrawn in place, a cleared line.
const PAINTER: &str = r#"
[[service]]
name = "paint"
command = "printf '\\033[31mred\\033[0m plain\\r\\nspin |\\rspin /\\rspin -\\r\\033[2Kdone\\r\\n'; exec sleep 600"
"#;

fn stdout(fx: &Fx, args: &[&str]) -> String {
    fx.orch_ok(args)
}

#[test]
fn logs_prints_rendered_text_and_raw_prints_the_byte_stream() {
    let fx = Fx::new(PAINTER);
    fx.orch_ok(&["up", "paint"]);
    let log = fx.log_dir().join("x-paint.log");
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("done"))
    }));
    let readable = |out: &str, when: &str| {
        assert!(!out.contains('\x1b'), "{when}: no escape codes: {out:?}");
        assert!(!out.contains('\r'), "{when}: no carriage returns: {out:?}");
        assert!(out.contains("red plain"), "{when}: {out:?}");
        assert!(
            out.lines().any(|l| l.trim_end() == "done"),
            "{when}: {out:?}"
        );
        assert!(
            !out.contains("spin"),
            "{when}: the redrawn line shows once: {out:?}"
        );
    };
    // While the session runs: the pane's history and screen.
    readable(&stdout(&fx, &["logs", "paint"]), "running");
    let raw = stdout(&fx, &["logs", "paint", "--raw"]);
    assert!(
        raw.contains("\x1b[31m"),
        "--raw is the byte stream: {raw:?}"
    );
    // After it stopped: the session log, rendered.
    fx.orch_ok(&["down", "paint"]);
    assert!(!fx.sessions().contains(&"x-paint".to_string()));
    readable(&stdout(&fx, &["logs", "paint"]), "stopped");
    let tail = stdout(&fx, &["logs", "paint", "-n", "2"]);
    assert!(
        tail.lines().count() <= 2 && !tail.contains('\x1b'),
        "{tail:?}"
    );
}

#[test]
fn status_json_times_are_rfc3339_and_the_table_shows_claude_code_whole() {
    let fx = Fx::new(
        r#"
[backend.claude-code]
bin = "sh -c 'exec sleep 600'"
prompt_delivery = "arg"
process_name = "sleep"
screen_rules = []

[[agent]]
name = "builder"
backend = "claude-code"
prompt = "hi"
"#,
    );
    fx.orch_ok(&["up", "builder"]);
    // A usage-limit hold, as the watchdog writes it (epoch seconds on disk).
    std::fs::create_dir_all(fx.state_dir()).unwrap();
    std::fs::write(
        fx.state_dir().join("limited-x-builder.json"),
        r#"{"until": 1767229200.5, "nudges": 0}"#,
    )
    .unwrap();
    let json: Value = serde_json::from_str(&stdout(&fx, &["status", "--json"])).unwrap();
    let a = &json["agents"][0];
    assert_eq!(a["state"], "held", "{a}");
    assert_eq!(a["until"], "2026-01-01T01:00:00Z", "{a}");
    for key in ["since", "last_activity_at"] {
        if let Some(t) = a[key].as_str() {
            assert!(
                chrono::DateTime::parse_from_rfc3339(t).is_ok(),
                "{key}: {t}"
            );
        }
    }
    let table = stdout(&fx, &["status"]);
    assert!(table.contains(" claude-code "), "{table}");
    assert!(!table.contains("claude-~"), "{table}");
    assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");
}
