//! The shortest whole-loop check: two sim agents and the watchdog take one phase to
//! SEQUENCE-COMPLETE through real git pushes and pings.
use std::time::Duration;

use crate::project::{Project, loop_agents, loop_section, sim_backend};

#[test]
fn one_phase_loop_reaches_sequence_complete() {
    let body = format!(
        "{}{}{}",
        sim_backend("sim", ""),
        loop_agents("sim"),
        loop_section(1, "")
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("sequence_complete", 1, Duration::from_secs(40)),
        "events: {:#?}",
        p.events()
    );
    assert!(p.log_dir().join("SEQUENCE-COMPLETE").exists());
    let subjects = p.remote_subjects();
    assert!(subjects.iter().any(|s| s == "claim: p1"), "{subjects:?}");
    assert!(
        subjects.iter().any(|s| s == "review: p1 ok"),
        "{subjects:?}"
    );
    p.orch_ok(&["down"]);
    assert!(p.wait_events("watchdog_stopped", 1, Duration::from_secs(10)));
}
