//! Pending handoff redelivery: an adversary killed after the claim ping and before its review
//! is healed, gets the claim again (once, reason `redeliver`), and the loop completes.
use std::time::Duration;

use serde_json::Value;

use crate::e2e::wait_complete;
use crate::project::{Project, loop_section, sim_backend};
use crate::support::wait_for;

const AGENTS: &str = r#"
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
env = { ORCH_SIM_REVIEW_DELAY_MS = "4000", ORCH_SIM_PING_ONLY = "1" }

[[agent]]
name = "finisher"
kind = "task"
backend = "sim"
enabled = false
dir = "watch"
prompt = "The sequence is complete: write the release note and exit."
"#;

fn pings(p: &Project, reason: &str) -> Vec<Value> {
    p.events_named("ping")
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[test]
fn an_adversary_killed_before_its_review_gets_the_claim_again_and_the_loop_completes() {
    let body = format!(
        "{}{AGENTS}{}{}",
        sim_backend("sim", ""),
        loop_section(1, ""),
        crate::e2e::ON_COMPLETE
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(40), || pings(&p, "claim")
            .iter()
            .any(|e| e["agent"] == "adversary" && e["delivered"] == true)),
        "no claim ping: {:#?}",
        p.events()
    );
    // The adversary is inside its review delay: nothing reviewed yet.
    assert!(
        !p.remote_subjects().iter().any(|s| s.starts_with("review:")),
        "{:?}",
        p.remote_subjects()
    );
    assert!(p.server.tmux.kill_session("t-adversary").unwrap());
    wait_complete(&p, Duration::from_secs(90));
    let again = pings(&p, "redeliver");
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0]["agent"], "adversary");
    assert_eq!(again[0]["handoff"], "claim");
    assert!(
        again[0]["redelivers"]
            .as_str()
            .is_some_and(|id| id.starts_with("claim-")),
        "{again:#?}"
    );
    let healed: Vec<Value> = p
        .events_named("healed")
        .into_iter()
        .filter(|e| e["agent"] == "adversary")
        .collect();
    assert!(!healed.is_empty(), "{:#?}", p.events());
    p.orch_ok(&["down"]);
}
