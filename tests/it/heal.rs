//! The watchdog's care for agents left alone: healing (gone, wrong backend, fatal), the
//! usage-limit hold and its probe, stall reboots, and scheduled wakes, on a private tmux server.
use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::project::Project;
use crate::support::{orch_bin, wait_for};

/// A project on 1 s ticks whose config gets `body(root)` appended; `scripts` are written
/// into the project root first (as `<root>/<name>`).
fn project(scripts: &[(&str, &str)], body: impl Fn(&str) -> String) -> Project {
    let p = Project::new("");
    let root = p.root.display().to_string();
    for (name, text) in scripts {
        std::fs::write(p.root.join(name), text).unwrap();
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&p.config)
        .unwrap();
    f.write_all(body(&root).as_bytes()).unwrap();
    p
}

/// An exec backend running `sh <root>/<script> <kickoff>` (exec'd: the pane runs the script's
/// last exec'd program); `extra` lines are appended to the table.
fn script_backend(name: &str, root: &str, script: &str, extra: &str) -> String {
    let path = shell_words::quote(&format!("{root}/{script}")).into_owned();
    format!(
        r#"
[backend.{name}]
bin = "exec sh {path} {{kickoff}}"
prompt_delivery = "exec"
active_re = "esc to interrupt"
limit_re = "limit reached|usage limit"
fatal_re = "session state corrupt"
{extra}
"#
    )
}

fn agent(name: &str, backend: &str, watch: &str, extra: &str) -> String {
    format!(
        r#"
[[agent]]
name = "{name}"
kind = "persistent"
backend = "{backend}"
watch = "{watch}"
prompt = "keep watch"
{extra}
"#
    )
}

fn for_agent(events: Vec<Value>, agent: &str) -> Vec<Value> {
    events.into_iter().filter(|e| e["agent"] == agent).collect()
}

fn healed(p: &Project, agent: &str, reason: &str) -> usize {
    for_agent(p.events_named("healed"), agent)
        .iter()
        .filter(|e| e["reason"] == reason)
        .count()
}

fn pings(p: &Project, agent: &str, reason: &str) -> Vec<Value> {
    for_agent(p.events_named("ping"), agent)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

fn session_command(p: &Project, session: &str) -> Option<String> {
    let fleet = p.server.tmux.fleet().ok()?;
    fleet.get(session).map(|i| i.command.clone())
}

/// Wait `secs` seconds of watchdog ticks (the test asserts nothing happened meanwhile).
fn let_ticks_pass(secs: u64) {
    std::thread::sleep(Duration::from_secs(secs));
}

const IDLE: &str = "printf 'ready\\n'\nexec cat >/dev/null\n";

#[test]
fn killed_session_is_back_within_one_heavy_tick() {
    let p = project(&[("idle.sh", IDLE)], |root| {
        script_backend("idle", root, "idle.sh", "") + &agent("a", "idle", "heal", "")
    });
    p.orch_ok(&["up"]);
    assert!(p.wait_events("watchdog_started", 1, Duration::from_secs(10)));
    assert!(wait_for(Duration::from_secs(10), || session_command(
        &p, "t-a"
    )
    .is_some()));
    assert!(p.server.tmux.kill_session("t-a").unwrap());
    assert!(
        wait_for(Duration::from_secs(10), || healed(&p, "a", "gone") >= 1),
        "events: {:#?}",
        p.events()
    );
    assert!(wait_for(Duration::from_secs(5), || session_command(
        &p, "t-a"
    )
    .is_some()));
    let_ticks_pass(2);
    assert_eq!(healed(&p, "a", "gone"), 1, "{:#?}", p.events());
    p.orch_ok(&["down"]);
}

#[test]
fn pane_running_another_backends_process_is_replaced() {
    // First start runs `tail` (the other backend's process); the restart runs `sleep`.
    let script = "if [ -e \"$ORCH_LOG_DIR/mm-once\" ]; then exec sleep 1000; fi\n\
                  touch \"$ORCH_LOG_DIR/mm-once\"\nexec tail -f /dev/null\n";
    let p = project(&[("mm.sh", script)], |root| {
        script_backend("good", root, "mm.sh", "process_name = \"sleep\"")
            + "\n[backend.other]\nbin = \"exec tail -f /dev/null\"\nprompt_delivery = \"exec\"\nprocess_name = \"tail\"\n"
            + &agent("a", "good", "heal", "")
    });
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(15), || healed(&p, "a", "mismatch") >= 1),
        "events: {:#?}",
        p.events()
    );
    assert!(wait_for(Duration::from_secs(10), || session_command(
        &p, "t-a"
    )
    .as_deref()
        == Some("sleep")));
    let_ticks_pass(3);
    assert_eq!(healed(&p, "a", "mismatch"), 1, "{:#?}", p.events());
    assert_eq!(healed(&p, "a", "gone"), 0);
    p.orch_ok(&["down"]);
}

#[test]
fn fatal_banner_triggers_one_restart_not_a_loop() {
    let orch = shell_words::quote(&orch_bin().display().to_string()).into_owned();
    // `once` shows the fatal banner on its first run only; `always` shows it every run.
    let once = format!(
        "if [ -e \"$ORCH_LOG_DIR/fatal-once\" ]; then exec {orch} sim --step-ms 40 \"$(cat \"$1\")\"; fi\n\
         touch \"$ORCH_LOG_DIR/fatal-once\"\nexec {orch} sim --step-ms 40 --fault fatal \"$(cat \"$1\")\"\n"
    );
    let always = format!("exec {orch} sim --step-ms 40 --fault fatal \"$(cat \"$1\")\"\n");
    let p = project(&[("once.sh", &once), ("always.sh", &always)], |root| {
        script_backend("once", root, "once.sh", "")
            + &script_backend("always", root, "always.sh", "")
            + &agent("a", "once", "heal", "")
            + &agent("b", "always", "heal", "")
    });
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(15), || healed(&p, "a", "fatal") >= 1
            && healed(&p, "b", "fatal") >= 1),
        "events: {:#?}",
        p.events()
    );
    let_ticks_pass(4);
    assert_eq!(healed(&p, "a", "fatal"), 1, "{:#?}", p.events());
    assert_eq!(
        healed(&p, "b", "fatal"),
        1,
        "a banner shown again right after the restart does not loop"
    );
    let started = for_agent(p.events_named("agent_started"), "a").len();
    assert_eq!(started, 2, "the up start and one restart");
    p.orch_ok(&["down"]);
}

#[test]
fn limited_pane_is_held_without_restart_then_probed_and_lifted() {
    // The banner's reset is 8 s away (slack 1 s); once typed into, the agent works again.
    let script = "printf 'Limit reached · resets in 8s\\n'\n\
                  while IFS= read -r l; do printf '%s\\n' \"$l\" >> \"$ORCH_LOG_DIR/$ORCH_AGENT.typed\"; \
                  printf '\\033[2J\\033[H✻ resumed (esc to interrupt)\\n'; done\n";
    let p = project(&[("lim.sh", script)], |root| {
        // stall_idle 1 s: without the hold, the idle limited pane would be rebooted at once.
        script_backend("lim", root, "lim.sh", "stall_idle = 1")
            + &agent("a", "lim", "heal+stall", "")
    });
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("limit_hit", 1, Duration::from_secs(10)),
        "events: {:#?}",
        p.events()
    );
    let hold_file = p.log_dir().join("state/limited-t-a.json");
    assert!(hold_file.exists(), "the hold is saved on disk");
    let hit = &p.events_named("limit_hit")[0];
    let until = chrono::DateTime::parse_from_rfc3339(hit["until"].as_str().unwrap()).unwrap();
    let hit_at = chrono::DateTime::parse_from_rfc3339(hit["ts"].as_str().unwrap()).unwrap();
    let held_for = (until - hit_at).num_seconds();
    assert!((6..=10).contains(&held_for), "held {held_for}s: {hit}");

    // The hold survives a watchdog restart: no second limit_hit, no early probe.
    p.orch_ok(&["down", "watchdog"]);
    assert!(p.wait_events("watchdog_stopped", 1, Duration::from_secs(10)));
    p.orch_ok(&["up", "watchdog"]);
    assert!(p.wait_events("watchdog_started", 2, Duration::from_secs(10)));

    assert!(
        wait_for(Duration::from_secs(20), || !pings(&p, "a", "limit_probe")
            .is_empty()),
        "events: {:#?}",
        p.events()
    );
    let probe = &pings(&p, "a", "limit_probe")[0];
    let probed_at = chrono::DateTime::parse_from_rfc3339(probe["ts"].as_str().unwrap()).unwrap();
    assert!(
        probed_at >= until,
        "probed at {probed_at}, hold until {until}"
    );
    assert!(p.wait_events("limit_lifted", 1, Duration::from_secs(10)));
    assert!(!hold_file.exists(), "a lifted hold is cleared");
    assert!(
        p.typed("a").to_lowercase().contains("quota"),
        "{}",
        p.typed("a")
    );
    assert_eq!(p.events_named("limit_hit").len(), 1, "{:#?}", p.events());
    assert!(
        for_agent(p.events_named("healed"), "a").is_empty(),
        "a limited agent is never rebooted: {:#?}",
        p.events()
    );
    assert_eq!(for_agent(p.events_named("agent_started"), "a").len(), 1);
    p.orch_ok(&["down"]);
}

#[test]
fn stalled_pane_is_restarted_once_while_a_waiting_pane_is_left_alone() {
    // `stuck` is idle on its first run and busy after its restart.
    let stuck = "if [ -e \"$ORCH_LOG_DIR/stuck-once\" ]; then printf '✻ Working (esc to interrupt)\\n'; exec cat >/dev/null; fi\n\
                 touch \"$ORCH_LOG_DIR/stuck-once\"\nprintf 'idle\\n'\nexec cat >/dev/null\n";
    let future = (chrono::Utc::now() + chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let waiting =
        format!("printf 'done for now\\nWAITING-UNTIL: {future}\\n'\nexec cat >/dev/null\n");
    let p = project(&[("stuck.sh", stuck), ("wait.sh", &waiting)], |root| {
        script_backend("stuck", root, "stuck.sh", "stall_idle = 2")
            + &script_backend("waiter", root, "wait.sh", "stall_idle = 2")
            + &agent("stuck", "stuck", "heal+stall", "")
            + &agent("waiting", "waiter", "heal+stall", "")
    });
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(15), || healed(&p, "stuck", "stall")
            >= 1),
        "events: {:#?}",
        p.events()
    );
    let_ticks_pass(4);
    assert_eq!(healed(&p, "stuck", "stall"), 1, "{:#?}", p.events());
    assert!(
        for_agent(p.events_named("healed"), "waiting").is_empty(),
        "{:#?}",
        p.events()
    );
    p.orch_ok(&["down"]);
}

#[test]
fn wake_lands_only_once_the_pane_is_idle() {
    let script = "printf '✻ Working… (esc to interrupt)\\n'\n\
                  while [ ! -e \"$ORCH_LOG_DIR/idle-now\" ]; do sleep 0.1; done\n\
                  printf '\\033[2J\\033[H> ready\\n'\n\
                  while IFS= read -r l; do printf '%s\\n' \"$l\" >> \"$ORCH_LOG_DIR/$ORCH_AGENT.typed\"; done\n";
    let p = project(&[("wake.sh", script)], |root| {
        script_backend("busy", root, "wake.sh", "")
            + &agent(
                "sup",
                "busy",
                "none",
                "wake = { interval = 1, prompt_file = \"prompts/wake.md\" }",
            )
    });
    std::fs::write(
        p.path("prompts/wake.md"),
        "Wake up:\n  check   the board.\n\nThen report.\n",
    )
    .unwrap();
    p.orch_ok(&["up"]);
    assert!(p.wait_events("watchdog_started", 1, Duration::from_secs(10)));
    let_ticks_pass(3);
    assert!(pings(&p, "sup", "wake").is_empty(), "{:#?}", p.events());
    assert_eq!(p.typed("sup"), "");
    std::fs::write(p.log_dir().join("idle-now"), "").unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || p
            .typed("sup")
            .contains("Wake up: check the board. Then report.")),
        "typed {:?}; events: {:#?}",
        p.typed("sup"),
        p.events()
    );
    assert!(wait_for(Duration::from_secs(10), || !pings(
        &p, "sup", "wake"
    )
    .is_empty()));
    p.orch_ok(&["down"]);
}
