//! The outbox with acknowledgement (issue 17): every ping typed with its `[orch:ping <id>]`,
//! acked by the agent's UserPromptSubmit hook or its transcript, never typed twice once seen,
//! typed again at most `max_resends` times, else lost. A sim playing Claude's hooks
//! (ORCH_SIM_HOOKS=1) and its faults, on a private tmux server, driven by `orch up`.
use std::time::Duration;

use serde_json::Value;

use crate::project::Project;
use crate::support::{orch_bin, wait_for};
use orch::config::{LoadOptions, load};
use orch::fleet::ping_log::{self, OutboxRecord};
use orch::fleet::pings::{self, PendingPing};

/// One persistent sim agent with hooks and screen rules, playing `faults` on typed pings.
fn body(faults: &str, watchdog: &str) -> String {
    let bin = shell_words::quote(&orch_bin().display().to_string()).into_owned();
    format!(
        r#"{watchdog}
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
dir = "watch"
hooks = true
prompt = "Check in and wait."
env = {{ ORCH_SIM_HOOKS = "1", ORCH_SIM_FAULT = "{faults}" }}
"#,
        bin = bin.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

/// Queue a ping for `agent` as the watchdog would (an id, a `queued` step); its id.
fn queue(p: &Project, agent: &str, text: &str) -> String {
    let cfg = load(&p.config, LoadOptions::WATCHDOG).unwrap().config;
    let mut ping = PendingPing::new(format!("test-{text}"), "inbox", text.into(), Value::Null);
    ping.ping_id = ping_log::next_id(&cfg, agent);
    let mut outbox = pings::load(&cfg, agent);
    assert!(pings::enqueue(&mut outbox, ping.clone()));
    pings::save(&cfg, agent, &outbox);
    ping_log::record(
        &cfg,
        agent,
        &OutboxRecord::new(&ping.ping_id, "queued", "inbox", 0),
    );
    ping.ping_id
}

fn for_id(p: &Project, event: &str, id: &str) -> Vec<Value> {
    p.events_named(event)
        .into_iter()
        .filter(|e| e["id"] == id)
        .collect()
}

fn history_states(p: &Project, id: &str) -> Vec<String> {
    let cfg = load(&p.config, LoadOptions::WATCHDOG).unwrap().config;
    ping_log::history(&cfg, "solo")
        .into_iter()
        .filter(|r| r.id == id)
        .map(|r| r.state)
        .collect()
}

fn start(p: &Project) {
    p.orch_ok(&["up"]);
    let session_ready = wait_for(Duration::from_secs(20), || {
        p.server
            .tmux
            .capture_history("t-solo")
            .is_ok_and(|t| t.contains("Checked in") || t.contains("Noted"))
    });
    assert!(session_ready, "the sim never came up");
}

#[test]
fn a_ping_is_typed_with_its_id_acked_by_the_hook_once_and_never_typed_again() {
    // The first submit is swallowed (deliver's own second Enter sends it) and the line is
    // echoed twice: still one ping, one ack.
    let p = Project::new(&body("swallow-enter,echo-twice", ""));
    start(&p);
    let id = queue(&p, "solo", "look at the board");
    assert!(id.starts_with("s-"), "{id}");
    assert!(
        wait_for(Duration::from_secs(30), || !for_id(&p, "ping_acked", &id)
            .is_empty()),
        "never acked: {:#?}",
        p.events()
    );
    let acked = for_id(&p, "ping_acked", &id);
    assert_eq!(acked[0]["source"], "hook", "{acked:#?}");
    assert!(acked[0]["latency_ms"].as_i64().is_some(), "{acked:#?}");
    let screen = p.server.tmux.capture_history("t-solo").unwrap();
    assert!(
        screen.contains(&format!("look at the board [orch:ping {id}]")),
        "{screen}"
    );
    // echo-twice: the sim drew its echo of the ping twice; still one ping.
    let echo = format!("› look at the board [orch:ping {id}]");
    assert!(screen.matches(&echo).count() >= 2, "{screen}");
    // Well past the ack wait: typed once, acked once.
    std::thread::sleep(Duration::from_secs(10));
    let typed = for_id(&p, "ping", &id);
    assert_eq!(typed.len(), 1, "{typed:#?}");
    assert_eq!(typed[0]["delivered"], true);
    assert_eq!(for_id(&p, "ping_acked", &id).len(), 1);
    assert!(for_id(&p, "ping_lost", &id).is_empty());
    assert_eq!(history_states(&p, &id), ["queued", "typed", "acked"]);
    let status: Value = serde_json::from_str(&p.orch_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["agents"][0]["pending_pings"], 0, "{status:#}");
    p.orch_ok(&["down"]);
}

#[test]
fn a_prompt_absorbed_mid_turn_counts_as_arrived_and_is_not_typed_again() {
    let p = Project::new(&body("absorb-prompt", ""));
    start(&p);
    let id = queue(&p, "solo", "a note while you work");
    assert!(
        wait_for(Duration::from_secs(30), || !for_id(&p, "ping_acked", &id)
            .is_empty()),
        "never arrived: {:#?}",
        p.events()
    );
    assert_eq!(for_id(&p, "ping_acked", &id)[0]["source"], "transcript");
    // No hook ever names it, yet it is not typed again.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(for_id(&p, "ping", &id).len(), 1, "{:#?}", p.events());
    assert!(for_id(&p, "ping_lost", &id).is_empty());
    assert_eq!(history_states(&p, &id), ["queued", "typed", "arrived"]);
    let hooks = std::fs::read_to_string(p.log_dir().join("hooks/solo.jsonl")).unwrap();
    assert!(!hooks.contains(&id), "{hooks}");
    p.orch_ok(&["down"]);
}

#[test]
fn a_swallowed_enter_is_typed_again_at_most_max_resends_times_then_lost() {
    // Every submit is swallowed: the text never leaves the input box.
    let p = Project::new(&body("swallow-enter=1000", "max_resends = 1\n"));
    start(&p);
    let id = queue(&p, "solo", "this never goes in");
    assert!(
        wait_for(Duration::from_secs(90), || !for_id(&p, "ping_lost", &id)
            .is_empty()),
        "never lost: {:#?}",
        p.events()
    );
    let typed = for_id(&p, "ping", &id);
    assert_eq!(typed.len(), 2, "first typing + max_resends: {typed:#?}");
    assert_eq!(typed[1]["attempt"], 2);
    assert!(typed.iter().all(|e| e["delivered"] == false), "{typed:#?}");
    let lost = for_id(&p, "ping_lost", &id);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0]["attempts"], 2);
    assert!(for_id(&p, "ping_acked", &id).is_empty());
    assert_eq!(
        history_states(&p, &id),
        ["queued", "typed", "typed", "lost"]
    );
    // Lost means left alone: nothing more is typed.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(for_id(&p, "ping", &id).len(), 2);
    p.orch_ok(&["down"]);
}

#[test]
fn a_loop_whose_agents_run_hooks_completes_with_every_handoff_ping_acked_once() {
    // The plain sim backend (no screen rules): idleness is read from the pane.
    let hooked = |name: &str, role: &str| {
        format!(
            r#"
[[agent]]
name = "{name}"
kind = "loop"
role = "{role}"
backend = "sim"
dir = "{name}"
hooks = true
env = {{ ORCH_SIM_HOOKS = "1" }}
"#
        )
    };
    let body = format!(
        "{}{}{}{}",
        crate::project::sim_backend("sim", ""),
        hooked("builder", "builder"),
        hooked("adversary", "adversary"),
        crate::project::loop_section(1, ""),
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(90), || p
            .log_dir()
            .join("SEQUENCE-COMPLETE")
            .exists()),
        "{:#?}",
        p.events()
    );
    let pings: Vec<Value> = p
        .events_named("ping")
        .into_iter()
        .filter(|e| e["reason"] == "claim" || e["reason"] == "review")
        .collect();
    assert!(pings.len() >= 2, "{pings:#?}");
    for ping in &pings {
        let id = ping["id"].as_str().unwrap();
        assert_eq!(for_id(&p, "ping", id).len(), 1, "{id} typed once");
        let acked = for_id(&p, "ping_acked", id);
        assert_eq!(acked.len(), 1, "{id}: {:#?}", p.events());
        assert_eq!(acked[0]["source"], "hook", "{acked:#?}");
    }
    assert!(p.events_named("ping_lost").is_empty(), "{:#?}", p.events());
    p.orch_ok(&["down"]);
}
