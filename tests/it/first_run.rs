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

/// An agent that leaves processes behind: a child that ignores HUP, INT and TERM, and a daemon
/// that forked into its own session (reparented to init, like `codex app-server`) and ignores
/// them too. Each records its pid under the log dir.
const LEAVER: &str = r#"#!/bin/sh
d="$ORCH_LOG_DIR"
setsid -f sh -c 'echo $$ > "$0/$1.daemon.pid"; trap "" HUP INT TERM; exec sleep 601' "$d" "$ORCH_AGENT"
(trap '' HUP INT TERM; exec sleep 602) &
echo $! > "$d/$ORCH_AGENT.child.pid"
echo $$ > "$d/$ORCH_AGENT.main.pid"
exec sleep 600
"#;

/// An agent that quits only on the third C-c (a CLI that clears, then asks "press again").
const THREE_INTS: &str = r#"#!/bin/sh
n=0
trap 'n=$((n+1)); [ "$n" -ge 3 ] && exit 0' INT
echo ready
while :; do sleep 0.05; done
"#;

/// Kills the pids a test's agents recorded, whatever the test's outcome.
struct Pids(Vec<i32>);

impl Drop for Pids {
    fn drop(&mut self) {
        for pid in &self.0 {
            // SAFETY: kill has no memory preconditions; these are this test's processes.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
    }
}

fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn script_backend(fx: &Fx, name: &str, script: &str, extra: &str) -> String {
    fx.write(&format!("bin/{name}.sh"), script);
    let path = fx.root.join(format!("bin/{name}.sh"));
    format!(
        "[backend.{name}]\nbin = {}\nprompt_delivery = \"exec\"\nprocess_name = \"sleep\"\n{extra}\n",
        crate::fleet::fixture::toml_str(&format!("sh {}", crate::fleet::fixture::quote(&path)))
    )
}

#[test]
fn down_ends_every_process_an_agent_started_including_detached_ones() {
    let fx = Fx::new("");
    let backend = script_backend(&fx, "leaver", LEAVER, "");
    let mut text = std::fs::read_to_string(&fx.config).unwrap();
    text += &backend;
    text += "\n[[agent]]\nname = \"a\"\nbackend = \"leaver\"\ngrace_period = 20\n";
    std::fs::write(&fx.config, text).unwrap();
    fx.orch_ok(&["up", "a"]);
    let pid_of = |what: &str| -> Option<i32> {
        std::fs::read_to_string(fx.log_dir().join(format!("a.{what}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    assert!(
        wait_for(Duration::from_secs(10), || {
            ["main", "child", "daemon"]
                .iter()
                .all(|w| pid_of(w).is_some())
        }),
        "the agent recorded its processes"
    );
    let pids: Vec<i32> = ["main", "child", "daemon"]
        .iter()
        .filter_map(|w| pid_of(w))
        .collect();
    let _guard = Pids(pids.clone());
    assert!(pids.iter().all(|p| running(*p)), "{pids:?}");
    let began = std::time::Instant::now();
    let out = fx.orch_ok(&["down", "a"]);
    let took = began.elapsed();
    assert!(out.contains("stopping a"), "says what it waits for: {out}");
    assert!(out.contains("stopped a (x-a)"), "{out}");
    let left: Vec<i32> = pids.iter().copied().filter(|p| running(*p)).collect();
    assert!(
        left.is_empty(),
        "processes left after down: {left:?} of {pids:?}"
    );
    assert!(took < Duration::from_secs(12), "down took {took:?}");
}

#[test]
fn down_sends_the_backend_stop_keys_and_stops_agents_in_parallel() {
    let fx = Fx::new("");
    let quick = script_backend(
        &fx,
        "quick",
        THREE_INTS,
        r#"stop_keys = ["C-c", "C-c", "C-c"]"#,
    );
    let deaf = script_backend(&fx, "deaf", "#!/bin/sh\ntrap '' INT\nexec sleep 600\n", "");
    let mut text = std::fs::read_to_string(&fx.config).unwrap();
    text += &quick;
    text += &deaf;
    text += "\n[[agent]]\nname = \"q\"\nbackend = \"quick\"\ngrace_period = 20\n";
    for name in ["d1", "d2"] {
        text += &format!("\n[[agent]]\nname = \"{name}\"\nbackend = \"deaf\"\ngrace_period = 6\n");
    }
    std::fs::write(&fx.config, text).unwrap();
    fx.orch_ok(&["up", "q", "d1", "d2"]);
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(fx.log_dir().join("x-q.log")).is_ok_and(|t| t.contains("ready"))
    }));
    // The quitting keys: three C-c at once, so `q` is gone well before its 20 s grace (one C-c,
    // then another after 3 s, would leave it running to the end of it).
    let began = std::time::Instant::now();
    let out = fx.orch_ok(&["down", "q"]);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}: {out}",
        began.elapsed()
    );
    // Two agents that ignore C-c wait out their 6 s grace side by side, and down says so.
    let began = std::time::Instant::now();
    let out = fx.orch_ok(&["down"]);
    let took = began.elapsed();
    assert!(took >= Duration::from_secs(6), "{took:?}");
    assert!(
        took < Duration::from_secs(11),
        "in parallel: {took:?}: {out}"
    );
    assert!(out.contains("stopping d1, d2"), "{out}");
    assert!(out.contains("still waiting for d1, d2"), "{out}");
    assert!(fx.sessions().is_empty(), "{:?}", fx.sessions());
}

fn status_of(fx: &Fx, agent: &str) -> Value {
    let json: Value = serde_json::from_str(&stdout(fx, &["status", "--json"])).unwrap();
    json["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == agent)
        .cloned()
        .unwrap()
}

#[test]
fn a_fresh_up_clears_old_attention_and_counts_restarts_anew() {
    let fx = Fx::new("\n[[agent]]\nname = \"a\"\nprompt = \"hi\"\n");
    fx.orch_ok(&["up", "a"]);
    // What a watchdog left from the last run: a login episode and two heals.
    let an_hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    std::fs::write(
        fx.state_dir().join("attention.json"),
        format!(r#"{{"a": {{"state": "login_required", "since": "{an_hour_ago}"}}}}"#),
    )
    .unwrap();
    let mut events = std::fs::read_to_string(fx.log_dir().join("events.jsonl")).unwrap();
    for _ in 0..2 {
        events += &format!(
            "{{\"ts\":\"{}\",\"event\":\"healed\",\"agent\":\"a\",\"reason\":\"gone\"}}\n",
            chrono::Utc::now().to_rfc3339()
        );
    }
    std::fs::write(fx.log_dir().join("events.jsonl"), events).unwrap();
    let before = status_of(&fx, "a");
    assert_eq!(before["restarts"], 2, "{before}");
    fx.orch_ok(&["down", "a"]);
    fx.orch_ok(&["up", "a"]);
    let after = status_of(&fx, "a");
    assert_eq!(after["restarts"], 0, "a fresh up is a fresh count: {after}");
    assert_eq!(after["last_heal_reason"], Value::Null, "{after}");
    assert_eq!(after["needs_attention"], Value::Null, "{after}");
    let open = std::fs::read_to_string(fx.state_dir().join("attention.json")).unwrap();
    assert!(
        !open.contains("\"a\""),
        "the episode was closed at the start: {open}"
    );
}

#[test]
fn phase_next_while_the_loops_run_moves_them_and_logs_it() {
    let fx = Fx::new(
        r#"
[watchdog]
signal_interval = 1
heavy_interval = 1

[[agent]]
name = "builder"
kind = "loop"
role = "builder"

[loop]
roles_dir = "prompts"
phases = [
  { id = "p1", plan = "plans/p1.md", status = "p1-STATUS.md" },
  { id = "p2", plan = "plans/p2.md", status = "p2-STATUS.md" },
]
"#,
    );
    fx.write("prompts/builder.md", "build\n");
    fx.orch_ok(&["up"]);
    let phase_env = |fx: &Fx| {
        fx.env("builder")
            .into_iter()
            .find(|(k, _)| k == "ORCH_PHASE")
            .map(|(_, v)| v)
    };
    assert_eq!(phase_env(&fx).as_deref(), Some("p1"));
    std::fs::remove_file(fx.log_dir().join("builder.done")).unwrap();
    let events = fx.log_dir().join("events.jsonl");
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&events).is_ok_and(|t| t.contains("watchdog_started"))
    }));
    let out = fx.orch_ok(&["phase", "next"]);
    assert!(
        out.contains("the watchdog moves the running loops"),
        "{out}"
    );
    let events = fx.log_dir().join("events.jsonl");
    let moved = || -> Option<Value> {
        std::fs::read_to_string(&events)
            .ok()?
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|e| e["event"] == "phase_advanced")
    };
    assert!(
        wait_for(Duration::from_secs(15), || moved().is_some()),
        "no phase_advanced: {:?}",
        std::fs::read_to_string(&events)
    );
    let e = moved().unwrap();
    assert_eq!(
        (&e["from"], &e["to"], &e["by"]),
        (
            &Value::from("p1"),
            &Value::from("p2"),
            &Value::from("human")
        ),
        "{e}"
    );
    assert_eq!(
        phase_env(&fx).as_deref(),
        Some("p2"),
        "restarted on the new phase"
    );
    fx.orch_ok(&["down"]);
}

#[test]
fn the_readme_real_project_example_validates_once_its_steps_are_done() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("## Pointing it at a real project").unwrap()..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    assert!(example.contains(r#"auto_accept = ["trust", "bypass-permissions"]"#));
    assert!(
        !example.contains("\nmodel ="),
        "no model forced on other backends"
    );
    let fx = crate::gitfix::GitFixture::new();
    let project = fx.clone("myproj");
    for role in ["kickoff", "builder", "adversary"] {
        std::fs::create_dir_all(project.join("prompts")).unwrap();
        std::fs::write(project.join(format!("prompts/{role}.md")), "x {role}\n").unwrap();
    }
    std::fs::write(project.join("agents.toml"), example).unwrap();
    let validate = || {
        crate::support::orch_cmd(
            &project.join("agents.toml"),
            "orch-readme-unused",
            &project,
            &["validate"],
        )
        .output()
        .unwrap()
    };
    let out = validate();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("docs/p1-plan.md") && err.contains("myproj-builder"),
        "{err}"
    );
    fx.clone("myproj-builder");
    fx.clone("myproj-adversary");
    std::fs::create_dir_all(project.join("docs")).unwrap();
    std::fs::write(project.join("docs/p1-plan.md"), "# p1\n").unwrap();
    let out = validate();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
