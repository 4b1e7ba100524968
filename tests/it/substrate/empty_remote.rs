//! A claim that is the very first commit of an empty remote is pinged, not taken as the
//! baseline (`up` looked at the empty remote and remembered it was empty).
use std::time::Duration;

use crate::gitfix::git;
use crate::project::{Project, RECORDER_BACKEND, loop_agents, loop_section};
use crate::support::wait_for;

#[test]
fn a_claim_that_is_the_first_commit_of_an_empty_remote_pings_the_adversary() {
    let body = format!(
        "{RECORDER_BACKEND}{}{}",
        loop_agents("rec"),
        loop_section(1, "")
    );
    let p = Project::new(&body);
    // Point the watchdog's clone at a new, empty remote.
    let root = p.dir().to_path_buf();
    git(&root, &["init", "-q", "--bare", "-b", "main", "empty.git"]);
    let empty = root.join("empty.git");
    let watch = root.join("watch");
    git(
        &watch,
        &["remote", "set-url", "origin", empty.to_str().unwrap()],
    );
    git(&watch, &["update-ref", "-d", "refs/remotes/origin/main"]);
    p.orch_ok(&["up"]);
    // The builder's very first push to the empty remote is its claim.
    git(&root, &["clone", "-q", empty.to_str().unwrap(), "first"]);
    let first = root.join("first");
    git(
        &first,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "claim: p1 gate 1",
        ],
    );
    git(&first, &["push", "-q", "origin", "HEAD:main"]);
    let sha = git(&first, &["rev-parse", "HEAD"]);
    assert!(
        p.wait_events("ping", 1, Duration::from_secs(20)),
        "the first commit was taken as the baseline: {:#?}",
        p.events()
    );
    let pings = p.events_named("ping");
    assert_eq!(pings.len(), 1, "{pings:#?}");
    assert_eq!(
        (&pings[0]["agent"], &pings[0]["reason"]),
        (&"adversary".into(), &"claim".into())
    );
    assert_eq!(pings[0]["commits"][0], sha.as_str());
    assert!(
        wait_for(Duration::from_secs(10), || p
            .typed("adversary")
            .contains("CLAIM")),
        "the adversary was not typed the ping: {:?}",
        p.typed("adversary")
    );
    p.orch_ok(&["down"]);
}
