//! The watchdog's phase machine end to end: a placeholder DONE stays, a real DONE advances and
//! restarts the loops on the next phase; the last phase completes the sequence exactly once.
use super::*;

const P1_STATUS: &str = "machine-docs/p1-STATUS.md";

fn phase_index(p: &Project) -> String {
    std::fs::read_to_string(p.log_dir().join("state/phase-idx")).unwrap_or_default()
}

#[test]
fn placeholder_done_stays_and_real_done_advances_restarting_loops_on_p2() {
    let (p, tester) = started(2, "", "");
    let _wd = Watchdog::start(&p, 1);
    p.git
        .commit_and_push(&tester, "status: p1", &[(P1_STATUS, "## DONE\nnot yet\n")]);
    sync(&p, &tester);
    assert!(
        p.events_named("phase_advanced").is_empty(),
        "{:#?}",
        p.events()
    );
    assert_ne!(phase_index(&p).trim(), "1");
    // A stale marker from an earlier run is cleared by the advance.
    std::fs::write(p.log_dir().join("SEQUENCE-COMPLETE"), "stale\n").unwrap();

    p.git.commit_and_push(
        &tester,
        "status: p1 done",
        &[(P1_STATUS, "## DONE\nAll gates verified by the adversary.\n")],
    );
    assert!(
        p.wait_events("phase_advanced", 1, WAIT),
        "{:#?}\n{}",
        p.events(),
        stderr_of(&p)
    );
    sync(&p, &tester);
    let advanced = p.events_named("phase_advanced");
    assert_eq!(advanced.len(), 1, "{advanced:#?}");
    assert_eq!(advanced[0]["from"], "p1");
    assert_eq!(advanced[0]["to"], "p2");
    assert_eq!(phase_index(&p).trim(), "1");
    assert!(!p.log_dir().join("SEQUENCE-COMPLETE").exists());
    for agent in ["builder", "adversary"] {
        let stopped: Vec<_> = p
            .events_named("agent_stopped")
            .into_iter()
            .filter(|e| e["agent"] == agent && e["by"] == "watchdog")
            .collect();
        assert_eq!(stopped.len(), 1, "{agent}: {:#?}", p.events());
        let started: Vec<_> = p
            .events_named("agent_started")
            .into_iter()
            .filter(|e| e["agent"] == agent && e["phase"] == "p2")
            .collect();
        assert_eq!(started.len(), 1, "{agent}: {:#?}", p.events());
        let session = format!("t-{agent}");
        assert!(p.server.tmux.has_session(&session).unwrap(), "{session}");
        let kickoff =
            std::fs::read_to_string(p.log_dir().join(format!("state/kickoff-{session}.txt")))
                .unwrap();
        assert!(kickoff.contains("phase p2 plan plans/p2.md"), "{kickoff}");
    }
}

#[test]
fn last_phase_done_completes_the_sequence_and_runs_on_complete_once() {
    let on_complete = "[loop.on_complete]\nrun = \"finisher\"\n";
    let (p, tester) = started(1, on_complete, MARK_TASK);
    let _wd = Watchdog::start(&p, 1);
    p.git.commit_and_push(
        &tester,
        "status: p1 done",
        &[(P1_STATUS, "## DONE\nShipped and reviewed.\n")],
    );
    assert!(
        p.wait_events("sequence_complete", 1, WAIT),
        "{:#?}\n{}",
        p.events(),
        stderr_of(&p)
    );
    let ran = p.log_dir().join("finisher.ran");
    let runs = || {
        std::fs::read_to_string(&ran)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert!(wait_for(WAIT, || runs() >= 1), "{:#?}", p.events());
    assert!(p.log_dir().join("SEQUENCE-COMPLETE").exists());
    // Several more ticks: nothing happens again.
    sync(&p, &tester);
    sync(&p, &tester);
    assert_eq!(p.events_named("sequence_complete").len(), 1);
    assert_eq!(
        p.events_named("sequence_complete")[0]["on_complete"],
        "finisher"
    );
    assert_eq!(runs(), 1);
    assert!(p.events_named("phase_advanced").is_empty());
    for session in ["t-builder", "t-adversary"] {
        assert!(!p.server.tmux.has_session(session).unwrap(), "{session}");
    }

    // Appending a phase later resumes: the done p1 advances to p2 and the marker goes.
    let text = std::fs::read_to_string(&p.config).unwrap();
    let two = text.replace(
        r#"status = "p1-STATUS.md" }]"#,
        r#"status = "p1-STATUS.md" }, { id = "p2", plan = "plans/p2.md", status = "p2-STATUS.md" }]"#,
    );
    assert_ne!(two, text);
    write_config(&p, &two);
    assert!(
        p.wait_events("phase_advanced", 1, WAIT),
        "{:#?}",
        p.events()
    );
    assert!(!p.log_dir().join("SEQUENCE-COMPLETE").exists());
    assert_eq!(runs(), 1);
}

#[test]
fn restarting_one_loop_agent_mid_sequence_keeps_the_phase_with_resume_phase_off() {
    let p = project(2, "resume_phase = false\n", "");
    p.orch_ok(&["up", "builder", "adversary"]);
    p.orch_ok(&["phase", "set", "1"]);
    assert!(p.server.tmux.kill_session("t-adversary").unwrap());
    // Only the adversary is new: the sequence is under way, not starting over.
    p.orch_ok(&["up", "adversary"]);
    assert_eq!(phase_index(&p).trim(), "1");
    let kickoff =
        std::fs::read_to_string(p.log_dir().join("state/kickoff-t-adversary.txt")).unwrap();
    assert!(kickoff.contains("phase p2"), "{kickoff}");
    // A fresh start (no loop running) does go back to the first phase.
    assert!(p.server.tmux.kill_session("t-adversary").unwrap());
    assert!(p.server.tmux.kill_session("t-builder").unwrap());
    p.orch_ok(&["up", "builder", "adversary"]);
    assert_eq!(phase_index(&p).trim(), "0");
}

#[test]
fn done_phase_stays_when_auto_advance_is_off() {
    let (p, tester) = started(2, "auto_advance = false\n", "");
    let _wd = Watchdog::start(&p, 1);
    p.git.commit_and_push(
        &tester,
        "status: p1 done",
        &[(P1_STATUS, "## DONE\nAll gates verified.\n")],
    );
    sync(&p, &tester);
    sync(&p, &tester);
    assert!(
        p.events_named("phase_advanced").is_empty(),
        "{:#?}",
        p.events()
    );
    assert!(p.events_named("agent_stopped").is_empty());
    assert_ne!(phase_index(&p).trim(), "1");
}
