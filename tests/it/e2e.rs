//! End to end: simulated builder and adversary through two phases (with a finding) to
//! SEQUENCE-COMPLETE and the on-complete task; then the same with the builder held at a usage limit.
use std::time::Duration;

use serde_json::Value;

use crate::gitfix::git;
use crate::project::{Project, loop_section, sim_backend};
use crate::support::wait_for;

/// Builder (on `builder_backend`), adversary (finds once) and the on-complete task `finisher`.
pub(crate) fn agents(builder_backend: &str) -> String {
    format!(
        r#"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "{builder_backend}"
dir = "builder"
watch = "heal+stall"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "sim"
dir = "adversary"
watch = "heal+stall"
env = {{ ORCH_SIM_FIND = "1" }}

[[agent]]
name = "finisher"
kind = "task"
backend = "sim"
enabled = false
dir = "watch"
prompt = "The sequence is complete: write the release note and exit."
"#
    )
}

pub(crate) const ON_COMPLETE: &str = "\n[loop.on_complete]\nrun = \"finisher\"\n";

/// A two-phase project; `builder_backend` is either "sim" or an extra backend in `extra`.
fn two_phase_project(builder_backend: &str, extra: &str) -> Project {
    let body = format!(
        "{}{extra}{}{}{ON_COMPLETE}",
        sim_backend("sim", ""),
        agents(builder_backend),
        loop_section(2, ""),
    );
    Project::new(&body)
}

/// (sha, subject) of the remote's main, oldest first.
fn remote_commits(p: &Project) -> Vec<(String, String)> {
    git(
        &p.git.remote,
        &["log", "--reverse", "--format=%H %s", "main"],
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(h, s)| (h.to_string(), s.to_string()))
    .collect()
}

/// The loop's commits on the remote (claims, reviews, status), oldest first.
fn loop_subjects(p: &Project) -> Vec<String> {
    p.remote_subjects()
        .into_iter()
        .filter(|s| {
            ["claim:", "review:", "status:"]
                .iter()
                .any(|v| s.starts_with(v))
        })
        .collect()
}

fn expected_loop_subjects() -> Vec<String> {
    ["p1", "p2"]
        .iter()
        .flat_map(|ph| {
            [
                format!("claim: {ph}"),
                format!("review: {ph} finding"),
                format!("claim: {ph} (fix)"),
                format!("review: {ph} ok"),
                format!("status: {ph} done"),
            ]
        })
        .collect()
}

/// Every `verb:` commit was named by exactly one ping with `reason`, sent to `target`, and
/// there were no other such pings.
fn assert_pinged_once(p: &Project, verb: &str, reason: &str, target: &str) {
    let shas: Vec<String> = remote_commits(p)
        .into_iter()
        .filter(|(_, s)| s.starts_with(verb))
        .map(|(h, _)| h)
        .collect();
    let pings: Vec<Value> = p
        .events_named("ping")
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect();
    for sha in &shas {
        let naming: Vec<&Value> = pings
            .iter()
            .filter(|e| {
                e["commits"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x == sha.as_str()))
            })
            .collect();
        assert_eq!(
            naming.len(),
            1,
            "{verb} {sha} pinged {} times: {pings:#?}",
            naming.len()
        );
        assert_eq!(naming[0]["agent"], target, "{naming:#?}");
    }
    assert_eq!(pings.len(), shas.len(), "{reason} pings: {pings:#?}");
}

/// Wait for SEQUENCE-COMPLETE and the finisher's done file.
pub(crate) fn wait_complete(p: &Project, timeout: Duration) {
    assert!(
        p.wait_events("sequence_complete", 1, timeout),
        "no sequence_complete; remote: {:#?}\nevents: {:#?}",
        p.remote_subjects(),
        p.events()
    );
    let done = p.log_dir().join("task-finisher.done");
    assert!(
        wait_for(Duration::from_secs(20), || done.exists()),
        "the on-complete task never wrote {}; events: {:#?}",
        done.display(),
        p.events()
    );
}

/// Index of the first event matching `pred`.
fn position(events: &[Value], pred: impl Fn(&Value) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

#[test]
fn two_phases_with_a_finding_reach_sequence_complete_and_the_on_complete_task() {
    let p = two_phase_project("sim", "");
    p.orch_ok(&["up"]);
    wait_complete(&p, Duration::from_secs(90));

    assert_eq!(loop_subjects(&p), expected_loop_subjects());
    assert_pinged_once(&p, "claim:", "claim", "adversary");
    assert_pinged_once(&p, "review:", "review", "builder");
    let advanced = p.events_named("phase_advanced");
    assert_eq!(advanced.len(), 1, "{advanced:#?}");
    assert_eq!(
        (&advanced[0]["from"], &advanced[0]["to"]),
        (&"p1".into(), &"p2".into())
    );
    let complete = p.events_named("sequence_complete");
    assert_eq!(complete.len(), 1, "{complete:#?}");
    assert_eq!(complete[0]["on_complete"], "finisher");
    assert!(p.log_dir().join("SEQUENCE-COMPLETE").exists());
    let finisher_starts = p
        .events_named("agent_started")
        .into_iter()
        .filter(|e| e["agent"] == "finisher")
        .count();
    assert_eq!(finisher_starts, 1);
    let healed = p.events_named("healed");
    assert!(healed.is_empty(), "a clean run needed healing: {healed:#?}");
    let done = std::fs::read_to_string(p.log_dir().join("task-finisher.done")).unwrap();
    assert_eq!(done.lines().count(), 1, "{done}");
    assert!(done.starts_with("orch-sim task finisher done"), "{done}");

    p.orch_ok(&["down"]);
    assert!(p.wait_events("watchdog_stopped", 1, Duration::from_secs(10)));
}

#[test]
fn builder_held_at_a_usage_limit_resumes_and_the_loop_completes() {
    // In p1 the builder claims, then shows a usage-limit banner that resets at the next minute
    // (5 s at least); p2's builder (a new process) runs clean.
    let limited = sim_backend(
        "simlim",
        "--fault limit-after-claim --fault-phase p1 --limit-secs 5",
    );
    let p = two_phase_project("simlim", &limited);
    p.orch_ok(&["up"]);
    wait_complete(&p, Duration::from_secs(100));
    let events = p.events();
    let is = |name: &'static str| move |e: &Value| e["event"] == name && e["agent"] == "builder";
    let hit = position(&events, is("limit_hit")).unwrap();
    assert!(events[hit]["until"].is_string(), "{:#?}", events[hit]);
    let lifted = position(&events, is("limit_lifted"))
        .unwrap_or_else(|| panic!("no limit_lifted for the builder: {events:#?}"));
    assert!(hit < lifted, "{events:#?}");
    let probe = position(&events, |e| {
        e["event"] == "ping" && e["agent"] == "builder" && e["reason"] == "limit_probe"
    })
    .unwrap_or_else(|| panic!("the held builder was never probed: {events:#?}"));
    assert!(hit < probe, "{events:#?}");
    // Held means left alone: not healed, not restarted by any route.
    let touched_in_hold: Vec<&Value> = events[hit..lifted]
        .iter()
        .filter(|e| e["agent"] == "builder")
        .filter(|e| {
            ["healed", "agent_started", "agent_stopped", "reconciled"]
                .iter()
                .any(|n| e["event"] == *n)
        })
        .collect();
    assert!(
        touched_in_hold.is_empty(),
        "the held builder was restarted: {touched_in_hold:#?}"
    );
    let hits = p
        .events_named("limit_hit")
        .into_iter()
        .filter(|e| e["agent"] == "builder")
        .count();
    assert_eq!(hits, 1, "{events:#?}");
    let complete = position(&events, |e| e["event"] == "sequence_complete").unwrap();
    assert!(lifted < complete, "{events:#?}");

    assert_eq!(loop_subjects(&p), expected_loop_subjects());
    assert_pinged_once(&p, "claim:", "claim", "adversary");
    assert_eq!(p.events_named("phase_advanced").len(), 1);
    assert_eq!(p.events_named("sequence_complete").len(), 1);

    p.orch_ok(&["down"]);
}
