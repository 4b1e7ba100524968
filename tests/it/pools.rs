//! Account pools: two sims on one account (`[pool.acct]`). The builder shows the limit; the
//! adversary is held without ever seeing a banner, its claim ping stays queued (also across a
//! watchdog SIGKILL), one probe at the reset, staggered release, the claim delivered once.
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use crate::project::{Project, loop_section, sim_backend};
use crate::support::wait_for;

/// Seconds between the releases of the two members.
const STAGGER: i64 = 3;

fn agents(limit_file: &Path) -> String {
    let file = limit_file.display().to_string().replace('\\', "\\\\");
    format!(
        r#"
[pool.acct]
release_stagger = {STAGGER}
reset_slack = 1
probe_ladder = ["5s"]

[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "sim"
dir = "builder"
watch = "heal+stall"
pool = "acct"
env = {{ ORCH_SIM_ACCOUNT_LIMIT_FILE = "{file}" }}

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "sim"
dir = "adversary"
watch = "heal+stall"
pool = "acct"
env = {{ ORCH_SIM_ACCOUNT_LIMIT_FILE = "{file}", ORCH_SIM_PING_ONLY = "1" }}
"#
    )
}

fn ts(e: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap_or_default()).unwrap()
}

fn for_agent(events: Vec<Value>, agent: &str) -> Vec<Value> {
    events.into_iter().filter(|e| e["agent"] == agent).collect()
}

fn status_json(p: &Project) -> Value {
    serde_json::from_str(&p.orch_ok(&["status", "--json"])).unwrap()
}

#[test]
fn a_limit_on_one_member_holds_the_pool_then_one_probe_and_a_staggered_release() {
    let tmp = tempfile::tempdir().unwrap();
    let limit_file = tmp.path().join("account-limit");
    let body = format!(
        "{}{}{}",
        sim_backend("sim", ""),
        agents(&limit_file),
        loop_section(1, "")
    );
    let p = Project::new(&body);

    // The adversary checks in while the account still has quota.
    p.orch_ok(&["up", "adversary"]);
    assert!(
        wait_for(Duration::from_secs(20), || p
            .server
            .tmux
            .capture("t-adversary", 50)
            .is_ok_and(|s| s.contains("Checked in"))),
        "the adversary never checked in"
    );
    // The account runs dry; the builder is asked to work (its kickoff) and shows the limit.
    let until = chrono::Utc::now().timestamp() + 14;
    std::fs::write(&limit_file, format!("until={until}\n")).unwrap();
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("pool_held", 1, Duration::from_secs(20)),
        "{:#?}",
        p.events()
    );
    let held = &p.events_named("pool_held")[0];
    assert_eq!(held["pool"], "acct", "{held}");
    assert_eq!(held["source"], "screen", "{held}");
    assert_eq!(held["agent"], "builder", "{held}");
    assert_eq!(held["reset_parsed"], true, "{held}");
    let held_until = DateTime::parse_from_rfc3339(held["until"].as_str().unwrap()).unwrap();
    assert_eq!(
        held_until.timestamp(),
        until + 1,
        "the reset + slack: {held}"
    );

    // A claim lands (pushed as the builder would); its ping to the adversary waits.
    let pusher = p.clone_repo("pusher");
    p.git.commit_and_push(
        &pusher,
        "claim: p1",
        &[("work/p1.md", "# Phase p1: work notes\n\n## Claim\nready\n")],
    );
    assert!(
        wait_for(Duration::from_secs(20), || p
            .events_named("ping_queued")
            .iter()
            .any(
                |e| e["agent"] == "adversary" && e["waiting_on"] == "pool_held"
            )),
        "{:#?}",
        p.events()
    );

    // status: the pool, both members held, the queued claim.
    let json = status_json(&p);
    let pool = &json["pools"][0];
    assert_eq!(pool["name"], "acct", "{json}");
    assert_eq!(pool["held"], true, "{pool}");
    assert_eq!(pool["queued_pings"], 1, "{pool}");
    assert_eq!(pool["members"], serde_json::json!(["builder", "adversary"]));
    for a in json["agents"].as_array().unwrap() {
        assert_eq!(a["pool"], "acct", "{a}");
        assert_eq!(a["state"], "held", "{a}");
    }
    let table = p.orch_ok(&["status"]);
    assert!(
        table.contains("pool acct  held") && table.contains("queued: 1"),
        "{table}"
    );

    // SIGKILL the watchdog (its pid from its lock file) in the middle of the hold.
    let lock = p.log_dir().join("state/watchdog.lock");
    let pid: i32 = std::fs::read_to_string(&lock)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 1);
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        wait_for(Duration::from_secs(10), || unsafe {
            libc::kill(pid, 0) != 0
        }),
        "the watchdog outlived SIGKILL"
    );
    assert!(
        chrono::Utc::now().timestamp() < until,
        "the test was too slow to kill during the hold"
    );
    assert!(p.log_dir().join("state/pool-acct.json").exists());
    assert!(wait_for(Duration::from_secs(10), || !p
        .server
        .tmux
        .has_session("t-watchdog")
        .unwrap_or(true)));
    p.orch_ok(&["up", "watchdog"]);
    assert!(p.wait_events("watchdog_started", 2, Duration::from_secs(10)));

    // The release: the builder (probed) first, the adversary one stagger later.
    assert!(
        wait_for(Duration::from_secs(45), || for_agent(
            p.events_named("pool_released"),
            "adversary"
        )
        .len()
            == 1),
        "{:#?}",
        p.events()
    );
    assert!(
        wait_for(Duration::from_secs(30), || p
            .remote_subjects()
            .iter()
            .any(|s| s.starts_with("review: p1"))),
        "the adversary never reviewed the claim: {:?} {:#?}",
        p.remote_subjects(),
        p.events()
    );
    let events = p.events();
    let named =
        |n: &str| -> Vec<Value> { events.iter().filter(|e| e["event"] == n).cloned().collect() };
    assert_eq!(
        named("pool_held").len(),
        1,
        "one hold, kept across the restart"
    );
    let probes = named("pool_probe");
    assert_eq!(probes.len(), 1, "exactly one probe: {probes:#?}");
    assert_eq!(probes[0]["agent"], "builder");
    assert!(ts(&probes[0]).timestamp() > until, "{probes:#?}");
    let released = named("pool_released");
    assert_eq!(released.len(), 2, "{released:#?}");
    assert_eq!(released[0]["agent"], "builder");
    assert_eq!(released[0]["how"], "probe");
    assert_eq!(released[1]["agent"], "adversary");
    assert_eq!(released[1]["remaining"], 0);
    let gap = ts(&released[1]) - ts(&released[0]);
    assert!(
        gap.num_milliseconds() >= STAGGER * 1000 - 200,
        "released {gap} apart"
    );
    // Nothing was typed into the adversary while held; its claim came once, after release.
    let adversary_pings = for_agent(named("ping"), "adversary");
    assert_eq!(adversary_pings.len(), 1, "{adversary_pings:#?}");
    assert_eq!(adversary_pings[0]["reason"], "claim");
    assert_eq!(adversary_pings[0]["delivered"], true);
    assert!(ts(&adversary_pings[0]) >= ts(&released[1]));
    let builder_pings = for_agent(named("ping"), "builder");
    assert!(
        builder_pings
            .iter()
            .filter(|e| ts(e) < ts(&released[0]))
            .all(|e| e["reason"] == "limit_probe"),
        "{builder_pings:#?}"
    );
    let log = std::fs::read_to_string(p.log_dir().join("t-adversary.log")).unwrap_or_default();
    assert!(
        !log.contains("limit reached"),
        "the adversary saw a banner: {log}"
    );
    assert!(named("healed").is_empty(), "{events:#?}");
    assert!(named("stalled").is_empty(), "{events:#?}");
    assert!(!p.log_dir().join("state/pool-acct.json").exists());
    let json = status_json(&p);
    assert_eq!(json["pools"][0]["held"], false, "{json}");
    p.orch_ok(&["down"]);
}

#[test]
fn an_undeclared_pool_or_a_bad_knob_is_a_config_error_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let head =
        "[defaults]\nsession_prefix = \"p-\"\nlog_dir = \".orch\"\n\n[backend.sh]\nbin = \"sh\"\n";
    for (body, want) in [
        (
            "[[agent]]\nname = \"a\"\nbackend = \"sh\"\npool = \"max-a\"\n",
            "agents.toml:10:8: agent a: pool \"max-a\" is not declared; add a [pool.max-a] table (declared: none)",
        ),
        (
            "[pool.max-a]\nrelease_stagger = \"soon\"\n[[agent]]\nname = \"a\"\nbackend = \"sh\"\npool = \"max-a\"\n",
            "agents.toml:8:19: pool.max-a.release_stagger",
        ),
    ] {
        let config = dir.path().join("agents.toml");
        std::fs::write(&config, format!("{head}{body}")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_orch"))
            .args(["--config", &config.display().to_string(), "validate"])
            .current_dir(dir.path())
            .env_remove("ORCH_TMUX_SOCKET")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn a_rate_limit_stop_failure_hook_holds_the_pool_until_one_probe_releases_it() {
    let body = format!(
        r#"{}
[pool.acct]
release_stagger = 1
probe_ladder = ["4s"]

[[agent]]
name = "a"
backend = "rec"
kind = "persistent"
watch = "heal"
pool = "acct"

[[agent]]
name = "b"
backend = "rec"
kind = "persistent"
watch = "heal"
pool = "acct"
"#,
        crate::project::RECORDER_BACKEND
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(p.wait_events("watchdog_started", 1, Duration::from_secs(10)));
    // Claude Code's StopFailure hook, as `orch hook` receives it from agent b's CLI.
    let mut hook = std::process::Command::new(crate::support::orch_bin())
        .args(["hook", "StopFailure"])
        .env("ORCH_AGENT", "b")
        .env("ORCH_LOG_DIR", p.log_dir())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = hook.stdin.take().unwrap();
        stdin
            .write_all(
                br#"{"hook_event_name": "StopFailure", "error": "rate_limit", "session_id": "s1"}"#,
            )
            .unwrap();
    }
    assert!(hook.wait().unwrap().success());
    assert!(
        p.wait_events("pool_held", 1, Duration::from_secs(10)),
        "{:#?}",
        p.events()
    );
    let held = &p.events_named("pool_held")[0];
    assert_eq!(held["source"], "hook", "{held}");
    assert_eq!(held["agent"], "b", "{held}");
    assert_eq!(held["reset_parsed"], false, "{held}");
    let json = status_json(&p);
    for a in json["agents"].as_array().unwrap() {
        assert_eq!(a["state"], "held", "{a}");
    }
    assert!(
        wait_for(Duration::from_secs(20), || p
            .events_named("pool_released")
            .iter()
            .any(|e| e["remaining"] == 0)),
        "{:#?}",
        p.events()
    );
    let probes = p.events_named("pool_probe");
    assert_eq!(probes.len(), 1, "{probes:#?}");
    assert_eq!(probes[0]["agent"], "b");
    assert!(
        p.typed("b").to_lowercase().contains("quota"),
        "{}",
        p.typed("b")
    );
    assert!(
        !p.typed("a").to_lowercase().contains("quota"),
        "{}",
        p.typed("a")
    );
    // The old StopFailure record does not hold the pool again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.events_named("pool_held").len(), 1, "{:#?}", p.events());
    p.orch_ok(&["down"]);
}
