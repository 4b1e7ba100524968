use super::*;
use crate::config::{NotifyFormat, NotifyTarget};
use serde_json::json;

fn msg(events: Vec<Value>) -> Message {
    Message {
        project: "demo".into(),
        events,
        dir: std::env::temp_dir(),
    }
}

fn gave_up() -> Value {
    json!({"ts": "T", "event": "gave_up", "agent": "builder", "restarts": 3, "status": 1})
}

fn body_json(b: &Body) -> Value {
    serde_json::from_slice(&b.bytes).unwrap()
}

#[test]
fn each_attention_event_has_a_one_line_summary() {
    assert_eq!(
        summary(&gave_up()),
        "builder exited 3 times; orch gave up restarting it"
    );
    let w = json!({"event": "needs_attention", "agent": "b", "state": "waiting_input"});
    assert_eq!(
        summary(&w),
        "b is waiting for input (a dialog or permission prompt)"
    );
    let t = json!({"event": "timed_out", "agent": "b", "timeout_secs": 5400});
    assert_eq!(
        summary(&t),
        "b ran past its timeout (1h30m) and was stopped"
    );
    let q = json!({"event": "phase_quiet", "phase": "p1", "quiet_secs": 21600});
    assert_eq!(summary(&q), "phase p1 has had no handoff commit for 6h");
    let h = json!({"event": "host_unreachable", "host": "lab", "error": "timed out"});
    assert_eq!(summary(&h), "host lab is unreachable: timed out");
    let own = json!({"event": "stalled", "agent": "b", "summary": "line one\nline two"});
    assert_eq!(
        summary(&own),
        "line one line two",
        "an own summary, one line"
    );
    assert!(!summary(&json!({"event": "sequence_complete"})).is_empty());
}

#[test]
fn slack_and_discord_post_the_text_under_their_own_key() {
    let m = msg(vec![gave_up()]);
    let s = body(NotifyFormat::Slack, &m);
    assert_eq!(s.content_type, "application/json");
    assert_eq!(
        body_json(&s),
        json!({"text": "orch demo: builder exited 3 times; orch gave up restarting it"})
    );
    let d = body(NotifyFormat::Discord, &m);
    assert_eq!(body_json(&d)["content"], body_json(&s)["text"]);
    let long = msg(vec![json!({"event": "x", "summary": "y".repeat(5000)})]);
    let d = body(NotifyFormat::Discord, &long);
    assert_eq!(
        body_json(&d)["content"].as_str().unwrap().chars().count(),
        2000
    );
}

#[test]
fn json_is_the_event_plus_summary_and_project() {
    let b = body(NotifyFormat::Json, &msg(vec![gave_up()]));
    let v = body_json(&b);
    assert_eq!(v["event"], "gave_up");
    assert_eq!(v["agent"], "builder");
    assert_eq!(v["restarts"], 3);
    assert_eq!(v["project"], "demo");
    assert_eq!(v["summary"], summary(&gave_up()));
}

#[test]
fn ntfy_posts_the_summary_with_title_priority_and_tags() {
    let b = body(NotifyFormat::Ntfy, &msg(vec![gave_up()]));
    assert_eq!(
        String::from_utf8(b.bytes.clone()).unwrap(),
        summary(&gave_up())
    );
    let h: std::collections::HashMap<_, _> = b.headers.iter().cloned().collect();
    assert_eq!(h["Title"], "orch demo: gave_up");
    assert_eq!(h["Priority"], "high");
    assert_eq!(h["Tags"], "warning,gave_up");
    let done = body(
        NotifyFormat::Ntfy,
        &msg(vec![json!({"event": "sequence_complete"})]),
    );
    let h: std::collections::HashMap<_, _> = done.headers.iter().cloned().collect();
    assert_eq!(h["Priority"], "default");
}

#[test]
fn a_batch_is_one_message_listing_every_summary() {
    let m = msg(vec![gave_up(), json!({"event": "sequence_complete"})]);
    assert_eq!(m.event(), "batch");
    assert_eq!(m.agent(), "");
    assert_eq!(m.title(), "orch demo: 2 events");
    assert_eq!(m.summary().lines().count(), 2);
    let v = m.json();
    assert_eq!(v["event"], "batch");
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
    assert_eq!(v["events"][0]["project"], "demo");
    let same = msg(vec![gave_up(), gave_up()]);
    assert_eq!((same.event(), same.agent()), ("gave_up", "builder"));
}

#[test]
fn a_sink_is_described_by_scheme_and_host_only() {
    let w = |u: &str| describe(&NotifyTarget::Webhook(u.into()));
    assert_eq!(
        w("https://hooks.slack.com/services/T0/B0/SECRET"),
        "https://hooks.slack.com"
    );
    assert_eq!(
        w("http://user:pw@127.0.0.1:8080/x?token=abc"),
        "http://127.0.0.1:8080"
    );
    let c = describe(&NotifyTarget::Command(vec![
        "/usr/bin/notify-send".into(),
        "tok".into(),
    ]));
    assert_eq!(c, "command notify-send");
}

#[test]
fn placeholders_are_filled_per_argument_in_one_pass() {
    let m = msg(vec![
        json!({"event": "gave_up", "agent": "b", "summary": "has {agent} $(x)"}),
    ]);
    let argv: Vec<String> = [
        "n",
        "orch: {event}",
        "{summary}",
        "{agent}{agent}",
        "{other}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        fill_argv(&argv, &m),
        vec!["n", "orch: gave_up", "has {agent} $(x)", "bb", "{other}"]
    );
}
