//! The watchdog process itself: exactly-once pings across a restart, the single-instance lock,
//! clean stops on signals, an unreachable origin and a config that stops parsing mid-run.
use super::*;

#[test]
fn killed_and_restarted_watchdog_neither_loses_nor_repeats_a_ping() {
    let (p, tester) = started(1, "", "");
    let mut wd = Watchdog::start(&p, 1);
    let first = p.git.commit_and_push(&tester, "claim: gate 1", &[]);
    p.git.commit_and_push(
        &tester,
        "note: finding",
        &[("machine-docs/ADVERSARY-INBOX.md", "finding 1\n")],
    );
    let inbox_text = inbox_ping("machine-docs", "ADVERSARY-INBOX.md");
    wait_typed(&p, "adversary", CLAIM_PING, 1);
    wait_typed(&p, "adversary", &inbox_text, 1);
    sync(&p, &tester);

    wd.signal(libc::SIGTERM);
    assert!(wd.wait_exit(WAIT).is_some(), "the watchdog ignored SIGTERM");
    let second = p.git.commit_and_push(&tester, "claim: gate 2", &[]);
    let _wd = Watchdog::start(&p, 2);
    wait_typed(&p, "adversary", CLAIM_PING, 2);
    sync(&p, &tester);

    let claims = pings(&p, "claim", "adversary");
    assert_eq!(claims.len(), 2, "{claims:#?}");
    assert_eq!(commit_sha_list(&claims[0]), vec![first]);
    assert_eq!(commit_sha_list(&claims[1]), vec![second]);
    assert_eq!(
        pings(&p, "inbox", "adversary").len(),
        1,
        "{:#?}",
        p.events()
    );
    assert_eq!(typed_count(&p, "adversary", CLAIM_PING), 2);
    assert_eq!(typed_count(&p, "adversary", &inbox_text), 1);
}

#[test]
fn second_watchdog_for_the_same_log_dir_is_refused_at_once() {
    let p = project(1, "", "");
    let mut first = Watchdog::start(&p, 1);
    let mut second = Watchdog::spawn_piped(&p);
    let status = second
        .wait_exit(Duration::from_secs(10))
        .expect("the second watchdog did not exit at once");
    assert!(!status.success());
    let mut err = String::new();
    use std::io::Read;
    second
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("another watchdog holds") && err.contains("watchdog.lock"),
        "{err}"
    );
    assert!(first.alive());
    assert_eq!(p.events_named("watchdog_started").len(), 1);
}

#[test]
fn sigterm_and_sigint_stop_cleanly_and_release_the_lock() {
    let p = project(1, "", "");
    for (i, (sig, name)) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")]
        .into_iter()
        .enumerate()
    {
        let mut wd = Watchdog::start(&p, i + 1);
        wd.signal(sig);
        let status = wd.wait_exit(WAIT).expect("the watchdog did not stop");
        assert!(status.success(), "{name}: {status:?}\n{}", stderr_of(&p));
        let stopped = p.events_named("watchdog_stopped");
        assert_eq!(stopped.len(), i + 1, "{stopped:#?}");
        assert_eq!(stopped[i]["reason"], name);
    }
    // The lock was released: a new watchdog starts.
    let mut wd = Watchdog::start(&p, 3);
    assert!(wd.alive());
}

#[test]
fn unreachable_origin_logs_fetch_error_once_and_the_loop_goes_on() {
    let (p, tester) = started(3, "", "");
    let watch = p.path("watch");
    let remote = p.git.remote.display().to_string();
    git(
        &watch,
        &["remote", "set-url", "origin", "/nonexistent/nowhere.git"],
    );
    let mut wd = Watchdog::start(&p, 1);
    assert!(p.wait_events("fetch_error", 1, WAIT), "{:#?}", p.events());
    // The phase part still works from the working tree, tick after tick.
    let status_dir = watch.join("machine-docs");
    std::fs::create_dir_all(&status_dir).unwrap();
    for (n, id) in [(1, "p1"), (2, "p2")] {
        std::fs::write(
            status_dir.join(format!("{id}-STATUS.md")),
            "## DONE\nverified\n",
        )
        .unwrap();
        assert!(
            p.wait_events("phase_advanced", n, WAIT),
            "{:#?}",
            p.events()
        );
    }
    assert!(wd.alive());
    assert_eq!(p.events_named("fetch_error").len(), 1, "{:#?}", p.events());
    // Origin fixed: fetches work again and a claim pings.
    git(&watch, &["remote", "set-url", "origin", &remote]);
    p.git.commit_and_push(&tester, "claim: p3 gate", &[]);
    wait_typed(&p, "adversary", CLAIM_PING, 1);
    assert_eq!(p.events_named("fetch_error").len(), 1);
    assert!(wd.alive());
}

#[test]
fn config_that_stops_parsing_is_logged_once_and_the_last_good_one_kept() {
    let (p, tester) = started(1, "", "");
    let _wd = Watchdog::start(&p, 1);
    let good = std::fs::read_to_string(&p.config).unwrap();
    write_config(&p, &format!("{good}\n[[[ not toml\n"));
    assert!(p.wait_events("config_error", 1, WAIT), "{:#?}", p.events());
    // The last good config still drives pings.
    p.git.commit_and_push(&tester, "claim: gate 1", &[]);
    wait_typed(&p, "adversary", CLAIM_PING, 1);
    sync(&p, &tester);
    assert_eq!(p.events_named("config_error").len(), 1, "{:#?}", p.events());
    // Fixed with a change: claims now ping the builder.
    let changed = good.replace(
        "[loop.handoff]\n",
        "[loop.handoff]\nclaim_pings = \"builder\"\n",
    );
    assert_ne!(changed, good);
    write_config(&p, &changed);
    sync(&p, &tester);
    p.git.commit_and_push(&tester, "claim: gate 2", &[]);
    wait_typed(&p, "builder", CLAIM_PING, 1);
    sync(&p, &tester);
    assert_eq!(pings(&p, "claim", "adversary").len(), 1);
    assert_eq!(pings(&p, "claim", "builder").len(), 1);
    assert_eq!(p.events_named("config_error").len(), 1);
}

#[test]
fn claim_pushed_while_watchdog_and_one_loop_were_down_is_pinged_after_up() {
    let (p, tester) = started(1, "", "");
    let mut wd = Watchdog::start(&p, 1);
    p.git.commit_and_push(&tester, "claim: gate 1", &[]);
    wait_typed(&p, "adversary", CLAIM_PING, 1);
    sync(&p, &tester);
    wd.signal(libc::SIGTERM);
    assert!(wd.wait_exit(WAIT).is_some(), "the watchdog ignored SIGTERM");
    assert!(p.server.tmux.kill_session("t-adversary").unwrap());
    // The builder keeps working while the adversary and the watchdog are down.
    let second = p.git.commit_and_push(&tester, "claim: gate 2", &[]);
    p.orch_ok(&["up", "adversary"]);
    let _wd = Watchdog::start(&p, 2);
    wait_typed(&p, "adversary", CLAIM_PING, 2);
    sync(&p, &tester);
    let claims = pings(&p, "claim", "adversary");
    assert_eq!(claims.len(), 2, "{claims:#?}");
    assert_eq!(commit_sha_list(&claims[1]), vec![second]);
}
