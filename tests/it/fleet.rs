//! The fleet verbs end to end on a private tmux server: `up`, `down`, `status --json`, `logs`,
//! `phase`, the three prompt deliveries checked from the started process's side, bad input.
mod delivery;
pub mod fixture;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::wait_for;
use fixture::Fx;

const THREE_AGENTS_AND_A_SERVICE: &str = r#"
[[agent]]
name = "a"
dir = "a-dir"
prompt = "hello a"

[[agent]]
name = "b"
dir = "b dir"
model = "m-b"
prompt = "hello b"

[[agent]]
name = "c"
enabled = false
prompt = "hello c"

[[service]]
name = "web"
dir = "svc"
command = "echo web up; exec sleep 600"
"#;

#[test]
fn up_starts_enabled_agents_services_and_the_watchdog_with_their_commands_and_dirs() {
    let fx = Fx::new(THREE_AGENTS_AND_A_SERVICE);
    let out = fx.orch_ok(&["up"]);
    assert!(out.contains("started a (x-a"), "{out}");
    assert!(out.contains("started watchdog (x-watchdog)"), "{out}");
    assert_eq!(fx.argv("a"), ["hello a"]);
    assert_eq!(fx.argv("b"), ["--model", "m-b", "hello b"]);
    assert_eq!(
        fx.record("a", "cwd").trim_end(),
        fx.root.join("a-dir").to_str().unwrap()
    );
    for (session, command) in [("x-a", "sleep"), ("x-b", "sleep"), ("x-web", "sleep")] {
        fx.wait_command(session, command);
    }
    fx.wait_command("x-watchdog", "orch");
    assert_eq!(
        fx.sessions(),
        ["x-a", "x-b", "x-watchdog", "x-web"],
        "c is disabled"
    );
    assert!(!fx.log_dir().join("c.done").exists());
    for (session, dir) in [
        ("x-a", fx.root.join("a-dir")),
        ("x-b", fx.root.join("b dir")),
        ("x-web", fx.root.join("svc")),
        ("x-watchdog", fx.root.clone()),
    ] {
        assert_eq!(fx.pane_path(session), dir, "cwd of {session}");
    }
    // The watchdog pane runs `orch --config <absolute config> watchdog`.
    let pid = fx.fleet().get("x-watchdog").unwrap().pid.unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = String::from_utf8(cmdline)
        .unwrap()
        .split_terminator('\0')
        .map(String::from)
        .collect();
    let config = fx.config.display().to_string();
    assert_eq!(
        argv[1..],
        ["--config", config.as_str(), "watchdog"],
        "{argv:?}"
    );
    assert_eq!(Path::new(&argv[0]).file_name().unwrap(), "orch");
}

#[test]
fn up_twice_leaves_running_sessions_untouched() {
    let fx = Fx::new(THREE_AGENTS_AND_A_SERVICE);
    fx.orch_ok(&["up"]);
    fx.record("a", "done");
    let pids = |fx: &Fx| -> Vec<(String, Option<u32>)> {
        fx.fleet()
            .panes()
            .map(|p| (p.session.clone(), p.pid))
            .collect()
    };
    let before = pids(&fx);
    assert_eq!(before.len(), 4, "{before:?}");
    std::fs::remove_file(fx.log_dir().join("a.done")).unwrap();
    let out = fx.orch_ok(&["up"]);
    assert_eq!(pids(&fx), before);
    for name in ["a", "b", "web", "watchdog"] {
        let line = format!("{name} already running (x-{name}): left alone");
        assert!(out.contains(&line), "{out}");
    }
    assert!(!out.contains("started"), "{out}");
    assert!(!fx.log_dir().join("a.done").exists(), "a was started again");
}

#[test]
fn down_name_stops_exactly_that_session_and_down_stops_all() {
    let fx = Fx::new(
        r#"
[[agent]]
name = "builder"
prompt = "b"

[[agent]]
name = "other"
prompt = "o"
"#,
    );
    // A foreign session whose name starts with the builder's session name.
    let mut spec = orch::tmux::NewSession::new(
        "x-builder2",
        &fx.root,
        orch::tmux::Command::Argv(vec!["sleep".into(), "600".into()]),
    );
    spec.log = None;
    fx.server.tmux.new_session(&spec).unwrap();
    fx.orch_ok(&["up"]);
    assert_eq!(
        fx.sessions(),
        ["x-builder", "x-builder2", "x-other", "x-watchdog"]
    );
    let out = fx.orch_ok(&["down", "builder"]);
    assert!(out.contains("stopped builder (x-builder)"), "{out}");
    assert_eq!(fx.sessions(), ["x-builder2", "x-other", "x-watchdog"]);
    // Not running: tmux would prefix-match a bare `x-builder` to `x-builder2`.
    let out = fx.orch_ok(&["down", "builder"]);
    assert!(out.contains("builder was not running (x-builder)"), "{out}");
    assert_eq!(fx.sessions(), ["x-builder2", "x-other", "x-watchdog"]);
    let out = fx.orch_ok(&["up", "builder"]);
    assert!(out.contains("started builder (x-builder"), "{out}");
    fx.orch_ok(&["down", "builder"]);
    let out = fx.orch_ok(&["down"]);
    assert!(out.contains("stopped other (x-other)"), "{out}");
    assert!(out.contains("stopped watchdog (x-watchdog)"), "{out}");
    assert_eq!(fx.sessions(), ["x-builder2"]);
}

#[test]
fn status_json_reflects_a_session_killed_from_outside() {
    let fx = Fx::new(&format!(
        "{THREE_AGENTS_AND_A_SERVICE}{}",
        r#"
[loop]
phases = [{ id = "p1", plan = "plans/p1.md", status = "p1-STATUS.md" },
          { id = "p2", plan = "plans/p2.md", status = "p2-STATUS.md" }]
"#
    ));
    fx.orch_ok(&["up"]);
    fx.record("a", "done");
    assert!(fx.server.tmux.kill_session("x-a").unwrap());
    let json: Value = serde_json::from_str(&fx.orch_ok(&["status", "--json"])).unwrap();
    assert_eq!(json["schema_version"], 1);
    let phase = &json["phase"];
    assert_eq!(
        (
            &phase["id"],
            &phase["index"],
            &phase["count"],
            &phase["done"]
        ),
        (&"p1".into(), &0.into(), &2.into(), &false.into()),
        "{json:#}"
    );
    let agents = json["agents"].as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    for a in agents {
        for key in [
            "name", "kind", "backend", "model", "session", "watch", "enabled", "running", "command",
        ] {
            assert!(a.get(key).is_some(), "agent lacks {key}: {a}");
        }
    }
    let (a, b, c) = (&agents[0], &agents[1], &agents[2]);
    assert_eq!((&a["running"], &a["command"]), (&false.into(), &"".into()));
    assert_eq!(
        (&b["running"], &b["command"]),
        (&true.into(), &"sleep".into())
    );
    assert_eq!(
        (&c["running"], &c["enabled"]),
        (&false.into(), &false.into())
    );
    assert_eq!(
        (
            &b["kind"],
            &b["backend"],
            &b["model"],
            &b["session"],
            &b["watch"]
        ),
        (
            &"persistent".into(),
            &"dump".into(),
            &"m-b".into(),
            &"x-b".into(),
            &"none".into()
        )
    );
    let web = &json["services"][0];
    assert_eq!(
        (&web["name"], &web["session"], &web["running"]),
        (&"web".into(), &"x-web".into(), &true.into())
    );
    assert_eq!(json["watchdog"]["running"], true);
    fx.watchdog_tmux().kill_session("x-watchdog").unwrap();
    // The hung-up watchdog takes a moment to exit (and close its API socket).
    let stopped = || {
        let json: Value = serde_json::from_str(&fx.orch_ok(&["status", "--json"])).unwrap();
        json["watchdog"]["running"] == false
    };
    assert!(wait_for(Duration::from_secs(10), stopped));
    let json: Value = serde_json::from_str(&fx.orch_ok(&["status", "--json"])).unwrap();
    assert_eq!(json["agents"][1]["running"], true);
    let table = fx.orch_ok(&["status"]);
    assert!(table.contains("stopped"), "{table}");
    assert!(
        table.contains("idle") || table.contains("working"),
        "{table}"
    );
    let b_row = table
        .lines()
        .find(|l| l.starts_with("b "))
        .unwrap_or_default();
    assert!(b_row.ends_with("sleep"), "what b's pane runs: {table}");
    assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");
}

#[test]
fn session_log_receives_pane_output_and_logs_prints_its_tail() {
    let fx = Fx::new(THREE_AGENTS_AND_A_SERVICE);
    fx.orch_ok(&["up", "a", "web"]);
    let log = fx.log_dir().join("x-a.log");
    let logged = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("output line 20"))
    });
    assert!(logged, "{:?}", std::fs::read_to_string(&log));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("output line 1\r\n"), "{text:?}");
    let out = fx.orch_ok(&["logs", "a", "-n", "5"]);
    let lines: Vec<&str> = out.lines().collect();
    let want: Vec<String> = (16..=20).map(|i| format!("output line {i}")).collect();
    assert_eq!(lines, want, "{out:?}");
    let svc = fx.log_dir().join("x-web.log");
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&svc).is_ok_and(|t| t.contains("web up"))
    }));
}

#[test]
fn phase_show_next_and_set_are_bounds_checked_and_write_the_index_file() {
    let fx = Fx::new(
        r#"
[loop]
phases = [{ id = "p1", plan = "plans/p1.md", status = "p1-STATUS.md" },
          { id = "p2", plan = "plans/p2.md", status = "p2-STATUS.md" }]
"#,
    );
    let idx = fx.state_dir().join("phase-idx");
    let show = fx.orch_ok(&["phase"]);
    assert!(
        show.contains("phase p1") && show.contains("[1/2]"),
        "{show}"
    );
    assert!(fx.orch_ok(&["phase", "next"]).contains("p2"));
    assert_eq!(std::fs::read_to_string(&idx).unwrap().trim(), "1");
    assert!(fx.orch_ok(&["phase", "show"]).contains("[2/2]"));
    let (code, err) = fx.orch_err(&["phase", "next"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("last phase"), "{err}");
    let (code, err) = fx.orch_err(&["phase", "set", "5"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("phase 5 does not exist") && err.contains("2 phases"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&idx).unwrap().trim(), "1");
    assert!(fx.orch_ok(&["phase", "set", "0"]).contains("p1"));
    assert_eq!(std::fs::read_to_string(&idx).unwrap().trim(), "0");
}

#[test]
fn unknown_names_are_usage_errors_listing_the_known_names() {
    let fx = Fx::new(THREE_AGENTS_AND_A_SERVICE);
    for verb in ["up", "down", "logs"] {
        let (code, err) = fx.orch_err(&[verb, "nope"]);
        assert_eq!(code, 2, "{verb}: {err}");
        assert!(err.contains("nope"), "{verb}: {err}");
        assert!(
            err.contains("known: a, b, c, web, watchdog"),
            "{verb}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let (_, err) = fx.orch_err(&["up", "a", "nope"]);
    assert!(err.contains("nope"), "{err}");
    assert!(fx.sessions().is_empty(), "nothing starts on a bad name");
}

#[test]
fn vanished_prompt_file_fails_up_naming_it_and_leaves_no_session() {
    let fx = Fx::new(
        r#"
[[agent]]
name = "gone"
prompt_file = "prompts/gone.md"
"#,
    );
    let file = fx.root.join("prompts/gone.md");
    std::fs::write(&file, "soon gone").unwrap();
    // Vanishing between the config check and the launch (library path).
    let cfg = orch::config::load(&fx.config, orch::config::LoadOptions::LENIENT)
        .unwrap()
        .config;
    std::fs::remove_file(&file).unwrap();
    let tmux = orch::fleet::tmux_for(&cfg);
    let err = orch::fleet::start_agent(&cfg, &tmux, cfg.agent("gone").unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(!fx.server.tmux.has_session("x-gone").unwrap());
    // Vanished before `up` runs.
    let (code, err) = fx.orch_err(&["up", "gone"]);
    assert!(code == 1 || code == 2, "{code}: {err}");
    assert!(err.contains("gone.md"), "{err}");
    assert!(fx.sessions().is_empty(), "{:?}", fx.sessions());
}

#[test]
fn missing_tmux_binary_is_one_clear_error() {
    let fx = Fx::new(THREE_AGENTS_AND_A_SERVICE);
    let bin = fx.root.join("only-git-and-sh");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["git", "sh"] {
        let found = which(tool).unwrap_or_else(|| panic!("{tool} not on PATH"));
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    for args in [&["up"][..], &["status"], &["down", "a"]] {
        let out = fx.orch_cmd(args).env("PATH", &bin).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("tmux is not installed"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one error line: {err}"
        );
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[test]
fn an_agent_that_dies_while_starting_is_reported_and_the_others_still_start() {
    let fx = Fx::new(
        r#"
[backend.dies]
bin = "sh -c 'echo bye; exit 3'"
prompt_delivery = "ping"
connect_delay = 2

[[agent]]
name = "a"
backend = "dies"

[[agent]]
name = "b"
prompt = "hello b"
"#,
    );
    let out = fx.orch(&["up", "a", "b"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("agent a exited while starting"), "{err}");
    assert!(err.contains("x-a.log"), "names the log: {err}");
    assert!(
        wait_for(Duration::from_secs(5), || fx
            .server
            .tmux
            .has_session("x-b")
            .unwrap_or(false)),
        "b was started although a failed"
    );
}
