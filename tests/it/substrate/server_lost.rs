//! Killing the agents' tmux server mid-phase: the watchdog (on its own server) logs
//! `tmux_server_lost` once, recreates the loop agents, and the loop reaches SEQUENCE-COMPLETE.
use std::time::Duration;

use serde_json::Value;

use crate::project::{Project, loop_section, sim_backend};
use crate::support::wait_for;

fn two_phase_sim_project(adversary_env: &str) -> Project {
    let body = format!(
        "{}{}{}",
        sim_backend("sim", ""),
        r#"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "sim"
dir = "builder"
watch = "heal+stall"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "sim"
dir = "adversary"
watch = "heal+stall"
env = { ORCH_SIM_FIND = "1"ADV_ENV }

[[service]]
name = "web"
command = "sleep 1000"
"#,
        loop_section(2, ""),
    )
    .replace("ADV_ENV", adversary_env);
    Project::new(&body)
}

fn kill_agents_server(p: &Project) {
    let out = std::process::Command::new("tmux")
        .args(["-L", &p.server.socket, "kill-server"])
        .env_remove("TMUX")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// Runs the loop, kills the agents' server once `trigger` has been logged, and checks that the
/// watchdog brought everything back and the sequence completed without anyone acting.
fn server_killed_after(adversary_env: &str, trigger: impl Fn(&Value) -> bool) -> Project {
    let p = two_phase_sim_project(adversary_env);
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(60), || p.events().iter().any(&trigger)),
        "the trigger never came: {:#?}",
        p.events()
    );
    kill_agents_server(&p);
    assert!(
        p.wait_events("sequence_complete", 1, Duration::from_secs(90)),
        "no sequence_complete after the server was killed; remote: {:#?}\nevents: {:#?}",
        p.remote_subjects(),
        p.events()
    );
    let lost = p.events_named("tmux_server_lost");
    assert_eq!(lost.len(), 1, "{lost:#?}");
    let healed: Vec<Value> = p
        .events_named("healed")
        .into_iter()
        .filter(|e| e["reason"] == "server_lost")
        .collect();
    let mut who: Vec<String> = healed
        .iter()
        .map(|e| {
            e["agent"]
                .as_str()
                .or(e["service"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    who.sort();
    assert_eq!(who, ["adversary", "builder", "web"], "{healed:#?}");
    assert!(healed.iter().all(|e| e["restarted"] == true), "{healed:#?}");
    // The watchdog itself never stopped: one start, and it is still running.
    assert_eq!(p.events_named("watchdog_started").len(), 1);
    let status = p.orch_ok(&["status", "--json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["watchdog"]["running"], true, "{status:#}");
    p
}

#[test]
#[ignore = "intermittent (about 1 run in 8): the builder killed while fixing a finding comes back, \
            takes the redelivered review, and pushes nothing; suspected a git lock its killed \
            predecessor left in its clone. The review-in-flight case below runs"]
fn killing_the_agents_tmux_server_mid_phase_heals_and_the_loop_completes() {
    // After the builder was pinged for the finding: the builder is fixing when the server dies.
    let p = server_killed_after("", |e| e["event"] == "ping" && e["reason"] == "review");
    let subjects = p.remote_subjects();
    for ph in ["p1", "p2"] {
        assert!(
            subjects.iter().any(|s| s == &format!("status: {ph} done")),
            "{subjects:#?}"
        );
    }
    p.orch_ok(&["down"]);
    assert!(p.wait_events("watchdog_stopped", 1, Duration::from_secs(10)));
}

#[test]
fn killing_the_server_with_a_review_in_flight_still_completes() {
    // Right after the adversary was pinged for a claim, while it takes its time to review
    // (and reviews only when pinged): its review dies with the server, so only the claim ping
    // delivered again to the recreated adversary (`redeliver`) can end the phase.
    let env = r#", ORCH_SIM_REVIEW_DELAY_MS = "4000", ORCH_SIM_PING_ONLY = "1""#;
    let p = server_killed_after(env, |e| e["event"] == "ping" && e["reason"] == "claim");
    let redelivered: Vec<Value> = p
        .events_named("ping")
        .into_iter()
        .filter(|e| e["reason"] == "redeliver")
        .collect();
    assert!(
        redelivered
            .iter()
            .any(|e| e["agent"] == "adversary" && e["handoff"] == "claim"),
        "{redelivered:#?}"
    );
    p.orch_ok(&["down"]);
}
