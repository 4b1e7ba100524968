//! The report's figures on the recorded demo log (answers computed by hand, see
//! tests/fixtures/report/README.md) and on synthetic logs with heals, holds and acks.
use serde_json::json;

use super::*;

const DEMO: &[u8] = include_bytes!("../../tests/fixtures/report/demo-events.jsonl");
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn at(ms: i64) -> Options {
    Options {
        since_ms: None,
        now_ms: ms,
    }
}

fn agent<'a>(r: &'a Report, name: &str) -> &'a AgentFigures {
    r.agents.iter().find(|a| a.name == name).unwrap()
}

#[test]
fn demo_log_gives_the_hand_computed_figures() {
    let log = parse_log(DEMO);
    let r = compute(&log, at(i64::MAX / 2));
    assert_eq!(r.events.read, 21);
    assert_eq!((r.events.malformed, r.events.unknown), (0, 0));
    assert_eq!(r.window.from.as_deref(), Some("2026-12-03T09:33:01.489Z"));
    assert_eq!(r.window.to.as_deref(), Some("2026-12-03T09:33:20.413Z"));
    assert_eq!(r.window.seconds, 18.924);
    assert!(r.sequence_complete);
    let ids: Vec<_> = r.phases.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2"]);
    let (p1, p2) = (&r.phases[0], &r.phases[1]);
    assert_eq!(p1.ended_at.as_deref(), Some("2026-12-03T09:33:10.719Z"));
    assert_eq!((p1.index, p2.index), (Some(0), Some(1)));
    assert_eq!((p1.duration_seconds, p2.duration_seconds), (9.23, 9.317));
    for p in [p1, p2] {
        assert_eq!(
            (p.claims, p.reviews, p.findings, p.approvals),
            (2, 2, 1, 1),
            "{}",
            p.id
        );
        assert!(p.done);
    }
    let b = agent(&r, "builder");
    assert_eq!((b.seconds.running, b.seconds.stopped), (18.307, 0.617));
    assert_eq!((b.pings_received, b.pings_by_reason["review"]), (4, 4));
    let a = agent(&r, "adversary");
    assert_eq!((a.seconds.running, a.seconds.stopped), (18.418, 0.466));
    assert_eq!(a.pings_by_reason["claim"], 4);
    assert_eq!(agent(&r, "finisher").seconds.running, 0.328);
    for a in &r.agents {
        assert_eq!(
            (a.uptime_pct, a.restarts, a.stalls),
            (Some(100.0), 0, 0),
            "{}",
            a.name
        );
    }
    let h = &r.health;
    assert_eq!((h.pings, h.pings_delivered, h.handoffs), (8, 8, 8));
    assert_eq!(h.handoffs_per_hour, Some(1552.81));
    assert_eq!(h.ping_ack_latency.source, "none");
    assert_eq!((h.restarts, h.watchdog_starts), (0, 1));
    assert_eq!(h.restart_mttr_seconds.samples, 0);
}

#[test]
fn malformed_lines_and_unknown_events_are_counted_not_fatal() {
    let mut bytes = DEMO.to_vec();
    bytes.extend_from_slice(b"garbage\n{\"ts\":\"2026-12-03T09:33:05Z\",\"event\":\"from_the_future\",\"agent\":\"builder\"}\n{\"ts\":");
    let r = compute(&parse_log(&bytes), at(0));
    assert_eq!(
        (r.events.malformed, r.events.unknown, r.events.read),
        (2, 1, 22)
    );
    assert_eq!(agent(&r, "builder").seconds.running, 18.307);
    assert_eq!(r.phases[0].findings, 1);
}

fn synthetic() -> Vec<u8> {
    let s = 1000;
    let lines = [
        (0, json!({"event": "watchdog_started", "phase": "p1"})),
        (
            0,
            json!({"event": "agent_started", "agent": "builder", "phase": "p1"}),
        ),
        (
            0,
            json!({"event": "agent_started", "agent": "adversary", "phase": "p1"}),
        ),
        (
            10,
            json!({"event": "ping", "agent": "adversary", "reason": "claim", "delivered": true}),
        ),
        (
            12,
            json!({"event": "ping_acked", "agent": "adversary", "latency_ms": 2000}),
        ),
        (
            20,
            json!({"event": "ping", "agent": "builder", "reason": "review", "delivered": false}),
        ),
        (
            21,
            json!({"event": "ping_acked", "agent": "builder", "latency_ms": 1000}),
        ),
        (
            30,
            json!({"event": "state_changed", "agent": "builder", "state": "idle"}),
        ),
        (
            100,
            json!({"event": "healed", "agent": "builder", "reason": "stall", "restarted": true}),
        ),
        (
            200,
            json!({"event": "agent_exited", "agent": "adversary", "status": 1}),
        ),
        (
            230,
            json!({"event": "restarted", "agent": "adversary", "attempt": 1}),
        ),
        (
            300,
            json!({"event": "limit_hit", "agent": "builder", "until": "x"}),
        ),
        (3900, json!({"event": "limit_lifted", "agent": "builder"})),
        (
            4000,
            json!({"event": "needs_attention", "agent": "adversary", "state": "login_required"}),
        ),
        (
            4100,
            json!({"event": "phase_advanced", "from": "p1", "to": "p2", "from_index": 0, "to_index": 1}),
        ),
        (4200, json!({"event": "bogus_event"})),
        (5000, json!({"event": "watchdog_stopped"})),
    ];
    let mut out = String::new();
    for (t, mut v) in lines {
        v["ts"] = json!(rfc3339_ms(T0 + t * s).unwrap());
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

#[test]
fn heals_holds_exits_and_acks_give_the_health_figures() {
    let r = compute(&parse_log(&synthetic()), at(0));
    let b = agent(&r, "builder");
    assert_eq!(
        (b.seconds.running, b.seconds.idle, b.seconds.held),
        (1330.0, 70.0, 3600.0)
    );
    assert_eq!(
        (b.stalls, b.restarts, b.restarts_by_reason["stall"]),
        (1, 1, 1)
    );
    assert_eq!((b.limit_holds, b.uptime_pct), (1, Some(100.0)));
    let a = agent(&r, "adversary");
    assert_eq!((a.seconds.running, a.seconds.dead), (4970.0, 30.0));
    assert_eq!(
        (a.uptime_pct, a.restarts_by_reason["exited"]),
        (Some(99.4), 1)
    );
    assert_eq!(a.attention, 1);
    let h = &r.health;
    let l = &h.ping_ack_latency;
    assert_eq!(
        (l.source, l.samples, l.p50_ms, l.p95_ms),
        ("ack", 2, Some(1000.0), Some(2000.0))
    );
    assert_eq!((h.pings, h.pings_delivered, h.pings_undelivered), (2, 1, 1));
    assert_eq!(
        h.stall_detect_seconds.p50,
        Some(80.0),
        "from the last ping at 20 s to 100 s"
    );
    assert_eq!(h.restart_mttr_seconds.p50, Some(30.0));
    assert_eq!((h.restarts, h.attention, h.limit_held_hours), (2, 1, 1.0));
    assert_eq!(h.handoffs_per_hour, Some(1.44));
    assert_eq!(r.events.unknown, 1);
    let (p1, p2) = (&r.phases[0], &r.phases[1]);
    assert_eq!(
        (p1.claims, p1.reviews, p1.findings, p1.approvals),
        (1, 1, 0, 1)
    );
    assert!(p1.done && !p2.done);
    assert_eq!((p2.ended_at.clone(), p2.duration_seconds), (None, 900.0));
}

#[test]
fn since_clips_the_window_but_keeps_the_state_it_starts_in() {
    let opts = Options {
        since_ms: Some(T0 + 3_000_000),
        now_ms: 0,
    };
    let r = compute(&parse_log(&synthetic()), opts);
    assert_eq!(r.window.seconds, 2000.0);
    let b = agent(&r, "builder");
    assert_eq!(
        (b.seconds.held, b.seconds.running, b.restarts),
        (900.0, 1100.0, 0)
    );
    assert_eq!(agent(&r, "adversary").seconds.running, 2000.0);
    assert_eq!(r.phases.len(), 2);
    assert_eq!((r.phases[0].claims, r.health.pings), (0, 0));
    assert_eq!(r.health.restart_mttr_seconds.samples, 0);
}

#[test]
fn a_live_watchdog_reports_up_to_now() {
    let mut bytes = synthetic();
    bytes.truncate(bytes.len() - 1);
    let cut = bytes.iter().rposition(|b| *b == b'\n').unwrap();
    bytes.truncate(cut + 1); // without watchdog_stopped
    let r = compute(&parse_log(&bytes), at(T0 + 6_000_000));
    assert_eq!(r.window.seconds, 6000.0);
    assert_eq!(r.phases[1].duration_seconds, 1900.0);
}

#[test]
fn html_has_one_lane_per_agent_and_hover_titles() {
    let log = parse_log(&synthetic());
    let html = render_html(&compute(&log, at(0)), &log);
    assert_eq!(html.matches("class=\"lane\"").count(), 2);
    assert!(html.contains("data-agent=\"builder\""));
    assert!(html.contains("<title>") && html.contains("healed"));
    assert!(
        !html.contains("http://") || !html.contains("src=\"http"),
        "no network"
    );
    assert!(!html.contains("<script"));
}

#[test]
fn three_days_of_ten_thousand_events_stay_small_and_one_lane_each() {
    let mut text = String::new();
    let agents = ["builder", "adversary", "reviewer", "docs", "ops"];
    let states = ["working", "idle", "working", "held", "working"];
    for i in 0..10_000i64 {
        let ts = rfc3339_ms(T0 + i * 26_000).unwrap();
        let a = agents[(i % 5) as usize];
        let ev = match i % 7 {
            0 => json!({"event": "ping", "agent": a, "reason": "claim", "delivered": true}),
            1 => json!({"event": "state_changed", "agent": a, "state": states[(i % 5) as usize]}),
            2 if i % 70 == 2 => json!({"event": "healed", "agent": a, "reason": "gone"}),
            3 if i % 500 == 3 => {
                json!({"event": "phase_advanced", "from": "x", "to": format!("p{i}")})
            }
            _ => json!({"event": "state_changed", "agent": a, "state": "working"}),
        };
        let mut ev = ev;
        ev["ts"] = json!(ts);
        text.push_str(&ev.to_string());
        text.push('\n');
    }
    let log = parse_log(text.as_bytes());
    let html = render_html(&compute(&log, at(0)), &log);
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
    assert_eq!(html.matches("class=\"lane\"").count(), 5);
}

#[test]
fn digest_names_the_phases_the_trouble_and_the_html_report() {
    let r = compute(&parse_log(&synthetic()), at(0));
    let text = digest(&r, Some(std::path::Path::new("/x/report.html")));
    assert!(
        text.starts_with("orch: loop report — 1/2 phases done"),
        "{text}"
    );
    assert!(
        text.contains("p1 ") && text.contains("1 approvals, DONE"),
        "{text}"
    );
    assert!(text.contains("builder (1 restarts, 0 attention)"), "{text}");
    assert!(text.ends_with("report: /x/report.html"), "{text}");
    let demo = compute(&parse_log(DEMO), at(0));
    assert!(digest(&demo, None).starts_with("orch: sequence complete — 2/2 phases done"));
}

#[test]
fn commits_are_counted_in_the_phase_that_ran_when_they_were_made() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git2::Repository::init(dir.path()).unwrap();
    let mut parent: Option<git2::Oid> = None;
    for secs in [5, 15, 25, 26, 60] {
        let sig = git2::Signature::new("t", "t@x", &git2::Time::new(T0 / 1000 + secs, 0)).unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        let parents: Vec<git2::Commit> = parent
            .iter()
            .map(|p| repo.find_commit(*p).unwrap())
            .collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        parent = Some(
            repo.commit(Some("HEAD"), &sig, &sig, "c", &tree, &refs)
                .unwrap(),
        );
    }
    let text = format!(
        "{}\n{}\n{}\n",
        json!({"ts": rfc3339_ms(T0 + 10_000), "event": "watchdog_started", "phase": "p1"}),
        json!({"ts": rfc3339_ms(T0 + 20_000), "event": "phase_advanced", "from": "p1", "to": "p2"}),
        json!({"ts": rfc3339_ms(T0 + 30_000), "event": "sequence_complete"}),
    );
    let mut r = compute(&parse_log(text.as_bytes()), at(0));
    add_commits(&mut r, dir.path());
    assert_eq!(r.phases[0].commits, Some(1));
    assert_eq!(r.phases[1].commits, Some(2));
    assert_eq!(r.health.commits, Some(3));
    let mut none = compute(&parse_log(text.as_bytes()), at(0));
    add_commits(&mut none, &dir.path().join("missing"));
    assert_eq!(none.health.commits, None);
}
