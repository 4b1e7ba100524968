//! One readable progress line per watchdog event for `orch demo`:
//! `  00:03.2  ping               adversary  (claim: p1)`. Pure: the caller resolves commit subjects.
use chrono::{DateTime, Utc};
use serde_json::Value;

/// The header printed above the progress lines.
pub const HEADER: &str = "  time     event              agent      what";

/// Format `event` (one events.jsonl object) relative to `start`; `subjects` turns the commit
/// shas of a ping into their subjects (empty when unknown).
pub fn line(
    event: &Value,
    start: DateTime<Utc>,
    subjects: &dyn Fn(&[String]) -> Vec<String>,
) -> String {
    let elapsed = event
        .get("ts")
        .and_then(Value::as_str)
        .and_then(|ts| DateTime::parse_from_rfc3339(ts).ok())
        .map(|ts| (ts.with_timezone(&Utc) - start).num_milliseconds().max(0))
        .unwrap_or(0);
    crate::events::human::line(event, &clock(elapsed), subjects)
}

/// `mm:ss.d` for a number of milliseconds.
pub fn clock(ms: i64) -> String {
    let tenths = ms / 100;
    format!(
        "{:02}:{:02}.{}",
        tenths / 600,
        (tenths / 10) % 60,
        tenths % 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn none(_: &[String]) -> Vec<String> {
        Vec::new()
    }

    #[test]
    fn ping_line_names_the_commit_subject() {
        let e = json!({"ts": "2030-01-01T00:00:03.250Z", "event": "ping", "agent": "adversary",
                       "reason": "claim", "commits": ["abc123"], "delivered": true});
        let subjects = |shas: &[String]| shas.iter().map(|_| "claim: p1".to_string()).collect();
        assert_eq!(
            line(&e, start(), &subjects),
            "  00:03.2  ping               adversary  (claim: p1)"
        );
    }

    #[test]
    fn ping_without_known_subjects_shows_its_reason() {
        let e = json!({"ts": "2030-01-01T00:01:05Z", "event": "ping", "agent": "builder",
                       "reason": "inbox", "file": "BUILDER-INBOX.md", "delivered": false});
        assert_eq!(
            line(&e, start(), &none),
            "  01:05.0  ping               builder    (inbox, BUILDER-INBOX.md, not confirmed)"
        );
    }

    #[test]
    fn phase_and_completion_lines_read_as_sentences() {
        let adv = json!({"ts": "2030-01-01T00:00:10Z", "event": "phase_advanced", "from": "p1", "to": "p2"});
        assert!(line(&adv, start(), &none).ends_with("(p1 -> p2)"));
        let done = json!({"ts": "2030-01-01T00:00:20Z", "event": "sequence_complete",
                          "phase": "p2", "on_complete": "finisher"});
        assert!(line(&done, start(), &none).ends_with("(after p2, on-complete task finisher)"));
    }

    #[test]
    fn unknown_events_show_their_fields_and_early_times_clamp_to_zero() {
        let e = json!({"ts": "2029-12-31T23:59:59Z", "event": "something_new", "x": 1});
        assert_eq!(
            line(&e, start(), &none),
            r#"  00:00.0  something_new                 ({"x":1})"#
        );
    }

    #[test]
    fn clock_counts_minutes_seconds_and_tenths() {
        assert_eq!(clock(0), "00:00.0");
        assert_eq!(clock(61_990), "01:01.9");
        assert_eq!(clock(3_600_000), "60:00.0");
    }
}
