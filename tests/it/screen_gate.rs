//! Input only into a screen that takes input, and healing that knows when to stop (issue 13):
//! pings wait (on disk) while the agent shows a dialog, the kickoff's own words are never a
//! usage limit, a refusal to start is read before its pane goes, and every heal is bounded.
//! All on the simulated agent drawing Claude's screens, on a private tmux server.
use std::time::Duration;

use serde_json::Value;

use crate::project::{Project, loop_section};
use crate::support::{orch_bin, wait_for};

/// The sim with screen rules (so its screen is classified) and the bypass-dialog answer.
fn simui_backend(extra: &str) -> String {
    let bin = shell_words::quote(&orch_bin().display().to_string()).into_owned();
    format!(
        r#"
[backend.simui]
bin = "{bin} sim"
flags = "--step-ms 40"
prompt_delivery = "arg"
process_name = "orch"
active_re = "esc to interrupt"
limit_re = "limit reached|usage limit"
fatal_re = "session state corrupt"
screen_rules = [
  {{ state = "exited", pattern = "cannot be used with root/sudo privileges", name = "refused as root" }},
  {{ state = "busy", pattern = "esc to interrupt", rows = 3 }},
  {{ state = "network_error", pattern = "API Error: Can't reach the API server", rows = 4, name = "api error" }},
  {{ state = "rate_limited", pattern = "(?i)usage limit|limit reached", rows = 12 }},
  {{ state = "permission_prompt", pattern = "Yes, I accept", rows = 10, name = "bypass warning" }},
  {{ state = "idle_input", pattern = "^>(?: |$)", rows = 2 }},
]
dialogs = [{{ key = "bypass-permissions", state = "permission_prompt", pattern = '❯ No, exit\s*\n\s*Yes, I accept', keys = ["Down", "Enter"] }}]
{extra}
"#,
        bin = bin.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

fn for_agent(events: Vec<Value>, agent: &str) -> Vec<Value> {
    events.into_iter().filter(|e| e["agent"] == agent).collect()
}

fn agent_status(p: &Project, name: &str) -> Value {
    let status: Value = serde_json::from_str(&p.orch_ok(&["status", "--json"])).unwrap();
    status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap()
}

fn pane_alive(p: &Project, session: &str) -> bool {
    p.server
        .tmux
        .fleet()
        .ok()
        .and_then(|f| f.get(session).map(|i| !i.dead))
        .unwrap_or(false)
}

#[test]
fn a_ping_waits_on_disk_while_the_agent_shows_a_dialog_and_goes_in_once_it_is_answered() {
    // The adversary sits on Claude's bypass warning, where a typed ping + Enter would pick
    // "No, exit" and end it. The builder only records what it is typed.
    let body = simui_backend("stall_idle = 1")
        + crate::project::RECORDER_BACKEND
        + r#"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "rec"
dir = "builder"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "simui"
dir = "adversary"
watch = "heal+stall"
env = { ORCH_SIM_FAULT = "bypass-dialog" }
"# + &loop_section(1, "");
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(p.wait_events("watchdog_started", 1, Duration::from_secs(10)));
    let clone = p.clone_repo("pusher");
    p.git.commit_and_push(&clone, "claim: p1 gate 1", &[]);
    assert!(
        p.wait_events("ping_queued", 1, Duration::from_secs(15)),
        "{:#?}",
        p.events()
    );
    let queued = &p.events_named("ping_queued")[0];
    assert_eq!(queued["agent"], "adversary");
    assert_eq!(queued["waiting_on"], "permission_prompt");
    let queue = p.log_dir().join("state/pings/adversary.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&queue).unwrap()).unwrap();
    assert_eq!(saved["pings"][0]["reason"], "claim");
    assert_eq!(saved["pings"][0]["state"], "pending");
    // Several ticks later: nothing typed, not restarted as stalled, still on its dialog.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        pane_alive(&p, "t-adversary"),
        "the dialog was not answered by a ping"
    );
    let typed: Vec<Value> = for_agent(p.events_named("ping"), "adversary");
    assert!(typed.is_empty(), "{typed:#?}");
    assert!(
        for_agent(p.events_named("healed"), "adversary").is_empty(),
        "{:#?}",
        p.events()
    );
    let a = agent_status(&p, "adversary");
    assert_eq!(a["state"], "waiting_input", "{a:#}");
    assert_eq!(a["needs_attention"], "permission_prompt", "{a:#}");
    assert_eq!(a["pending_pings"], 1, "{a:#}");
    assert_eq!(
        for_agent(p.events_named("needs_attention"), "adversary").len(),
        1
    );
    // A person accepts the dialog: the waiting ping goes in, once, and the episode closes.
    p.server.tmux.send_keys("t-adversary", &["Down"]).unwrap();
    p.server.tmux.send_keys("t-adversary", &["Enter"]).unwrap();
    // One `ping` event per typing: a submit the screen did not confirm (a loaded machine) is
    // typed again, as the same ping (one id).
    assert!(
        wait_for(Duration::from_secs(15), || for_agent(
            p.events_named("ping"),
            "adversary"
        )
        .iter()
        .any(|e| e["delivered"] == true)),
        "{:#?}",
        p.events()
    );
    let pings = for_agent(p.events_named("ping"), "adversary");
    assert!(
        pings.iter().all(|e| e["id"] == pings[0]["id"]),
        "{pings:#?}"
    );
    assert_eq!(pings[0]["reason"], "claim");
    assert_eq!(pings.last().unwrap()["delivered"], true, "{pings:#?}");
    assert!(wait_for(Duration::from_secs(5), || !queue.exists()));
    assert!(!queue.exists(), "a delivered ping leaves the queue");
    assert!(pane_alive(&p, "t-adversary"));
    assert!(wait_for(Duration::from_secs(5), || agent_status(
        &p,
        "adversary"
    )["needs_attention"]
        .is_null()));
    p.orch_ok(&["down"]);
}

#[test]
fn the_kickoffs_own_usage_limit_line_is_a_network_error_screen_not_a_limit() {
    let body = simui_backend("stall_idle = 1")
        + r#"
[[agent]]
name = "a"
kind = "persistent"
backend = "simui"
watch = "heal+stall"
prompt = "If you hit a usage limit, stop; the watchdog will tell you when to resume.\nWork through the plan."
env = { ORCH_SIM_FAULT = "network-error" }

# Works, then waits at its prompt with the same line on screen.
[[agent]]
name = "b"
kind = "persistent"
backend = "simui"
watch = "heal"
prompt = "If you hit a usage limit, stop; the watchdog will tell you when to resume."
"#;
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("needs_attention", 1, Duration::from_secs(15)),
        "{:#?}",
        p.events()
    );
    let attn = &p.events_named("needs_attention")[0];
    assert_eq!(attn["state"], "network_error", "{attn}");
    assert_eq!(attn["rule"], "api error");
    std::thread::sleep(Duration::from_secs(3));
    let screen = p.server.tmux.capture("t-a", usize::MAX).unwrap();
    assert!(
        screen.contains("usage limit"),
        "the kickoff is on screen: {screen}"
    );
    let b_screen = p.server.tmux.capture("t-b", usize::MAX).unwrap();
    assert!(b_screen.contains("usage limit"), "{b_screen}");
    assert!(p.events_named("limit_hit").is_empty(), "{:#?}", p.events());
    assert_eq!(agent_status(&p, "b")["needs_attention"], Value::Null);
    assert!(p.events_named("healed").is_empty(), "{:#?}", p.events());
    assert!(
        for_agent(p.events_named("ping"), "a").is_empty(),
        "no probe is typed into it: {:#?}",
        p.events()
    );
    let a = agent_status(&p, "a");
    assert_eq!(a["state"], "waiting_input", "{a:#}");
    assert_eq!(a["needs_attention"], "network_error");
    p.orch_ok(&["down"]);
}

#[test]
fn a_refusal_to_start_is_read_before_its_pane_goes_and_healed_a_bounded_number_of_times() {
    let body = simui_backend("")
        + r#"
[[agent]]
name = "a"
kind = "persistent"
backend = "simui"
watch = "heal"
prompt = "work"
env = { ORCH_SIM_FAULT = "refuse-root" }
restart_backoff = 1
restart_backoff_max = 2
max_restarts = 3
"#;
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("needs_attention", 1, Duration::from_secs(15)),
        "{:#?}",
        p.events()
    );
    let attn = &p.events_named("needs_attention")[0];
    assert_eq!(attn["state"], "exited", "{attn}");
    assert_eq!(attn["rule"], "refused as root");
    assert_eq!(attn["exit_status"], 1, "{attn}");
    let lines = attn["lines"].as_array().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.as_str().unwrap().contains("root/sudo privileges")),
        "{attn}"
    );
    assert!(
        p.wait_events("heal_limit", 1, Duration::from_secs(30)),
        "{:#?}",
        p.events()
    );
    let heals: Vec<Value> = for_agent(p.events_named("healed"), "a");
    assert_eq!(heals.len(), 3, "{heals:#?}");
    assert!(heals.iter().all(|h| h["reason"] == "refused"), "{heals:#?}");
    // Backed off: each heal later than the one before by more than the last.
    let ts: Vec<chrono::DateTime<chrono::FixedOffset>> = heals
        .iter()
        .map(|h| chrono::DateTime::parse_from_rfc3339(h["ts"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        (ts[2] - ts[1]) >= chrono::TimeDelta::milliseconds(1900),
        "{ts:?}"
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        for_agent(p.events_named("healed"), "a").len(),
        3,
        "left alone"
    );
    assert_eq!(p.events_named("heal_limit").len(), 1);
    let a = agent_status(&p, "a");
    assert_eq!(a["state"], "dead", "{a:#}");
    assert_eq!(a["last_exit"], 1, "{a:#}");
    assert_eq!(a["exit_reason"], "refused as root", "{a:#}");
    assert_eq!(a["needs_attention"], "heal_limit", "{a:#}");
    assert_eq!(a["attention"]["rule"], "refused as root", "{a:#}");
    p.orch_ok(&["down"]);
}

#[test]
fn a_stall_that_restarts_do_not_cure_is_left_to_a_person() {
    // The sim goes idle after its kickoff: with stall_idle 1 s every restart stalls again.
    let body = crate::project::sim_backend("simple", "")
        + "stall_idle = 1\n"
        + r#"
[[agent]]
name = "a"
kind = "persistent"
backend = "simple"
watch = "heal+stall"
prompt = "work"
restart_backoff = 1
restart_backoff_max = 2
max_restarts = 3
"#;
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("heal_limit", 1, Duration::from_secs(40)),
        "{:#?}",
        p.events()
    );
    let heals = for_agent(p.events_named("healed"), "a");
    assert_eq!(heals.len(), 3, "{heals:#?}");
    assert!(heals.iter().all(|h| h["reason"] == "stall"));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        for_agent(p.events_named("healed"), "a").len(),
        3,
        "left alone"
    );
    let a = agent_status(&p, "a");
    assert_eq!(a["needs_attention"], "heal_limit", "{a:#}");
    assert_eq!(a["attention"]["reason"], "stall", "{a:#}");
    assert!(
        pane_alive(&p, "t-a"),
        "left running for a person to look at"
    );
    p.orch_ok(&["down"]);
}

#[test]
fn a_refusal_under_a_restart_policy_is_read_before_the_policy_clears_its_pane() {
    let body = simui_backend("")
        + r#"
[[agent]]
name = "a"
kind = "persistent"
backend = "simui"
prompt = "work"
restart = "no"
env = { ORCH_SIM_FAULT = "refuse-root" }
"#;
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("agent_exited", 1, Duration::from_secs(15)),
        "{:#?}",
        p.events()
    );
    let attn = p.events_named("needs_attention");
    assert_eq!(attn.len(), 1, "{:#?}", p.events());
    assert_eq!(attn[0]["rule"], "refused as root");
    assert_eq!(attn[0]["exit_status"], 1);
    let a = agent_status(&p, "a");
    assert_eq!(a["exit_reason"], "refused as root", "{a:#}");
    assert_eq!(a["last_exit"], 1, "{a:#}");
    p.orch_ok(&["down"]);
}
