//! Unit tests for WAITING-UNTIL parsing, the DONE placeholder rules and the stall rule.
//! Every time is fixed; nothing sleeps.

use super::*;

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

#[test]
fn waiting_until_accepts_z_and_offsets() {
    assert_eq!(
        parse_waiting_until("WAITING-UNTIL: 2026-06-15T20:00:00Z", false),
        Some(at("2026-06-15T20:00:00Z"))
    );
    assert_eq!(
        parse_waiting_until("WAITING-UNTIL: 2026-06-15T20:00:00+02:00", false),
        Some(at("2026-06-15T18:00:00Z"))
    );
    assert_eq!(
        parse_waiting_until("WAITING-UNTIL:2026-06-15T20:00-0700", false),
        Some(at("2026-06-16T03:00:00Z"))
    );
    assert_eq!(
        parse_waiting_until("WAITING-UNTIL: 2026-06-15T20:00:00.250Z.", false),
        Some(at("2026-06-15T20:00:00.250Z"))
    );
    assert_eq!(
        parse_waiting_until("note `WAITING-UNTIL: 2026-06-15T20:00Z`", false),
        Some(at("2026-06-15T20:00:00Z"))
    );
}

#[test]
fn waiting_until_refuses_naive_times_and_junk() {
    for pane in [
        "WAITING-UNTIL: 2026-06-15T20:00:00",
        "WAITING-UNTIL: <ISO time>",
        "WAITING-UNTIL: tomorrow",
        "no marker here",
    ] {
        assert_eq!(parse_waiting_until(pane, false), None, "{pane:?}");
    }
}

#[test]
fn waiting_until_takes_the_last_parsable_marker() {
    let pane = "WAITING-UNTIL: 2026-06-15T10:00:00Z\nwork\nWAITING-UNTIL: 2026-06-15T12:00:00Z\nWAITING-UNTIL: <later>\n";
    assert_eq!(
        parse_waiting_until(pane, false),
        Some(at("2026-06-15T12:00:00Z"))
    );
}

#[test]
fn footer_ui_waiting_until_must_be_on_the_last_nonempty_line() {
    let stale = "WAITING-UNTIL: 2026-06-15T12:00:00Z\nmore output\n\n";
    assert_eq!(parse_waiting_until(stale, true), None);
    let fresh = "output\n  WAITING-UNTIL: 2026-06-15T12:00:00Z  \n\n\n";
    assert_eq!(
        parse_waiting_until(fresh, true),
        Some(at("2026-06-15T12:00:00Z"))
    );
    assert_eq!(
        parse_waiting_until("say WAITING-UNTIL: 2026-06-15T12:00:00Z", true),
        None
    );
}

#[test]
fn placeholders_are_recognised_case_insensitively_at_the_body_start() {
    for body in [
        "not yet",
        "Not yet - the builder writes this",
        "NOT DONE",
        "not complete",
        "Incomplete.",
        "pending review",
        "TBD",
        "n/a",
        "N/A for now",
        "written here only when done",
        "Only when the adversary agrees",
        "to be written by the builder",
        "To be filled",
        "when all boxes are ticked",
        "<summary of what was delivered>",
        "   <tbd>",
        "",
        "   ",
    ] {
        assert!(is_placeholder(body), "{body:?} should be a placeholder");
    }
    for body in [
        "All five checks pass; see commit abc123.",
        "Delivered the parser and its tests.",
        "pendingness is not a word", // "pending" must be a whole word
        "notably complete",
        "Shipped <b>everything</b>",
    ] {
        assert!(!is_placeholder(body), "{body:?} should be a real body");
    }
}

#[test]
fn done_needs_the_marker_then_a_real_body() {
    let m = "## DONE";
    assert!(done_in("# p1\n## DONE\n\nAll checks pass.\n", m));
    assert!(done_in("## DONE 2026-06-15\nShipped.\n", m));
    assert!(!done_in("## DONE\nnot yet\n", m));
    assert!(!done_in("## DONE\n\n<what was done>\n", m));
    assert!(
        !done_in("## DONE\n", m),
        "a marker with no body is not done"
    );
    assert!(
        !done_in(" ## DONE\nShipped.\n", m),
        "the marker must start the line"
    );
    assert!(!done_in("nothing here\n", m));
}

#[test]
fn a_later_real_done_counts_after_a_placeholder_one() {
    let text = "## DONE\nTBD\n\n## DONE\nFinished: all green.\n";
    assert!(done_in(text, "## DONE"));
}

#[test]
fn stall_fine_while_idle_below_threshold() {
    let now = at("2026-06-15T12:00:00Z");
    let v = stall_verdict(
        Duration::from_secs(299),
        Duration::from_secs(300),
        None,
        now,
        Duration::from_secs(180),
    );
    assert_eq!(v, StallVerdict::Fine);
}

#[test]
fn stall_when_idle_reaches_threshold_without_marker() {
    let now = at("2026-06-15T12:00:00Z");
    let v = stall_verdict(
        Duration::from_secs(300),
        Duration::from_secs(300),
        None,
        now,
        Duration::from_secs(180),
    );
    assert_eq!(
        v,
        StallVerdict::Stalled {
            reason: "idle 300s with no WAITING-UNTIL marker".into()
        }
    );
}

#[test]
fn waiting_marker_holds_until_grace_passes_even_when_long_idle() {
    let until = at("2026-06-15T12:00:00Z");
    let grace = Duration::from_secs(180);
    let idle = Duration::from_secs(10_000);
    let stall_idle = Duration::from_secs(300);
    let v = stall_verdict(
        idle,
        stall_idle,
        Some(until),
        at("2026-06-15T12:03:00Z"),
        grace,
    );
    assert_eq!(v, StallVerdict::Waiting { until });
    let v = stall_verdict(
        idle,
        stall_idle,
        Some(until),
        at("2026-06-15T12:03:01Z"),
        grace,
    );
    assert_eq!(
        v,
        StallVerdict::Stalled {
            reason: "past its WAITING-UNTIL by 181s; its self-wake did not fire".into()
        }
    );
}

#[test]
fn last_nonempty_line_trims() {
    assert_eq!(last_nonempty_line("a\n  b  \n\n \n"), "b");
    assert_eq!(last_nonempty_line("\n\n"), "");
}
