//! Unit tests of the rotation rules: when a rotation is due, the note's marker, compaction
//! windows, dirty trees and the pending-handoff decision.
use super::*;

fn rot(iters: Option<u32>, pct: Option<f64>) -> Rotation {
    Rotation {
        every_iterations: iters,
        at_context_pct: pct,
        handoff_file: "machine-docs/HANDOFF-{agent}.md".into(),
        handoff_timeout: Duration::from_secs(600),
    }
}

fn rec(event: &str, source: Option<&str>, ts: &str) -> HookRecord {
    HookRecord {
        ts: ts.into(),
        event: event.into(),
        tool: None,
        session_id: None,
        source: source.map(String::from),
        message: None,
        ping_id: None,
        error: None,
        transcript_path: None,
    }
}

fn epoch(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp()
}

#[test]
fn a_rotation_is_due_at_the_threshold_and_after_an_unasked_compaction() {
    let r = rot(Some(3), Some(60.0));
    assert_eq!(due(&r, Some(59.9), 2, false), None);
    assert_eq!(due(&r, Some(60.0), 0, false), Some("context"));
    assert_eq!(due(&r, None, 3, false), Some("iterations"));
    assert_eq!(due(&r, Some(10.0), 0, true), Some("compaction"));
    assert_eq!(due(&rot(None, None), Some(99.0), 99, false), None);
}

#[test]
fn the_note_must_end_with_the_marker_of_this_request() {
    let id = "rotate-builder-1";
    let good = format!("# Handoff\n- next: p2\n\n{}\n\n", marker(id));
    assert!(note_has_marker(&good, id));
    assert!(!note_has_marker(&good, "rotate-builder-2"));
    let not_last = format!("{}\nmore text\n", marker(id));
    assert!(!note_has_marker(&not_last, id));
    assert!(!note_has_marker("", id));
}

#[test]
fn the_request_names_the_file_the_marker_and_the_ping_id() {
    let text = request_text("machine-docs/HANDOFF-b.md", "rotate-b-7");
    assert!(text.contains("`machine-docs/HANDOFF-b.md`"));
    assert!(text.contains("[orch:handoff rotate-b-7]"));
    assert_eq!(
        crate::hooks::ping_id_in(&text).as_deref(),
        Some("rotate-b-7")
    );
    assert!(!text.contains('\n'), "one line: typed as one ping");
}

#[test]
fn compacting_lasts_from_pre_compact_to_the_compact_session_start() {
    let t0 = "2030-01-01T10:00:00.000Z";
    let now = epoch(t0) + 30;
    let mut records = vec![rec("Stop", None, t0), rec("PreCompact", None, t0)];
    assert!(compacting(&records, now));
    records.push(rec("SessionStart", Some("startup"), t0));
    assert!(compacting(&records, now), "only a compact start ends it");
    records.push(rec(
        "SessionStart",
        Some("compact"),
        "2030-01-01T10:00:20.000Z",
    ));
    assert!(!compacting(&records, now));
    let stale = vec![rec("PreCompact", None, t0)];
    assert!(!compacting(&stale, epoch(t0) + 3600));
}

#[test]
fn the_last_compaction_since_the_session_start_is_found() {
    let records = vec![
        rec("SessionStart", Some("compact"), "2030-01-01T10:00:00.000Z"),
        rec("SessionStart", Some("startup"), "2030-01-01T10:05:00.000Z"),
        rec("SessionStart", Some("compact"), "2030-01-01T10:10:00.000Z"),
    ];
    let t10 = epoch("2030-01-01T10:10:00.000Z") * 1000;
    assert_eq!(last_compaction(&records, 0), Some(t10));
    assert_eq!(last_compaction(&records, t10 + 1), None);
}

#[test]
fn orch_files_are_not_dirt() {
    let out = " M work/p1.md\n?? .claude/settings.local.json\n?? notes.txt\n?? .env\n";
    assert_eq!(
        dirty_paths(out, &[".env".into()]),
        vec!["work/p1.md".to_string(), "notes.txt".to_string()]
    );
}

fn check() -> Check {
    Check {
        same_process: true,
        compacting: false,
        idle: true,
        note_ok: true,
        tree: Some(Tree::default()),
        elapsed: Duration::from_secs(5),
        timeout: Duration::from_secs(60),
        dirty_checks: 0,
    }
}

#[test]
fn a_done_note_over_a_clean_pushed_tree_rotates() {
    assert_eq!(decide(&check()), Step::Rotate);
}

#[test]
fn a_compacting_agent_is_never_rotated_even_with_its_note_done() {
    let c = Check {
        compacting: true,
        ..check()
    };
    assert_eq!(decide(&c), Step::Wait);
    let late = Check {
        elapsed: Duration::from_secs(61),
        ..c
    };
    assert!(matches!(decide(&late), Step::Fail(r) if r.contains("compacting")));
}

#[test]
fn a_busy_agent_is_waited_for() {
    let c = Check {
        idle: false,
        ..check()
    };
    assert_eq!(decide(&c), Step::Wait);
}

#[test]
fn a_dirty_tree_fails_after_a_few_checks_and_names_the_paths() {
    let dirty = Tree {
        dirty: vec!["work/p1.md".into()],
        unpushed: 1,
    };
    let c = Check {
        tree: Some(dirty),
        ..check()
    };
    assert_eq!(decide(&c), Step::Dirty);
    let last = Check {
        dirty_checks: DIRTY_CHECKS - 1,
        ..c
    };
    match decide(&last) {
        Step::Fail(r) => {
            assert!(r.contains("work/p1.md") && r.contains("1 unpushed"), "{r}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn no_note_by_the_timeout_fails_and_before_it_waits() {
    let c = Check {
        note_ok: false,
        tree: None,
        ..check()
    };
    assert_eq!(decide(&c), Step::Wait);
    let late = Check {
        elapsed: Duration::from_secs(60),
        ..c
    };
    assert!(matches!(decide(&late), Step::Fail(r) if r.contains("no handoff note")));
}

#[test]
fn a_session_restarted_meanwhile_abandons_the_handoff() {
    let c = Check {
        same_process: false,
        ..check()
    };
    assert_eq!(decide(&c), Step::Abandon);
}

#[test]
fn an_ack_is_a_hook_record_with_the_ping_id() {
    let mut r = rec("UserPromptSubmit", None, "2030-01-01T10:00:00.000Z");
    r.ping_id = Some("rotate-b-1".into());
    assert!(ping_acked(&[r], "rotate-b-1"));
    assert!(!ping_acked(&[], "rotate-b-1"));
}
