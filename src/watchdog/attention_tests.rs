use super::*;

const NOW: i64 = 1_000_000;

fn agent(name: &str, state: &str, since: i64) -> AgentView {
    AgentView {
        name: name.into(),
        state: state.into(),
        since: Some(since),
        ..AgentView::default()
    }
}

fn inputs(now: i64, agents: Vec<AgentView>) -> Inputs {
    Inputs {
        now,
        agents,
        open_phase: None,
        handoffs: Vec::new(),
        attention_after: Duration::from_secs(300),
        phase_quiet_after: Duration::from_secs(6 * 3600),
        repeat_after: Duration::from_secs(3600),
    }
}

fn names(out: &[(&'static str, Value)]) -> Vec<&'static str> {
    out.iter().map(|(n, _)| *n).collect()
}

#[test]
fn first_sight_records_the_state_and_logs_nothing() {
    let (next, out) = decide(
        &Episodes::default(),
        &inputs(NOW, vec![agent("b", "working", NOW)]),
    );
    assert!(out.is_empty());
    assert_eq!(next.states["b"], "working");
}

#[test]
fn a_state_change_is_logged_once_it_holds_a_few_seconds() {
    let (e, _) = decide(
        &Episodes::default(),
        &inputs(NOW, vec![agent("b", "working", NOW)]),
    );
    // Just changed: pending, not logged.
    let (e, out) = decide(&e, &inputs(NOW + 1, vec![agent("b", "idle", NOW + 1)]));
    assert!(out.is_empty());
    // A blip back to working cancels it.
    let (e, out) = decide(&e, &inputs(NOW + 2, vec![agent("b", "working", NOW)]));
    assert!(out.is_empty());
    let (e, _) = decide(&e, &inputs(NOW + 3, vec![agent("b", "idle", NOW + 3)]));
    let (e, out) = decide(
        &e,
        &inputs(
            NOW + 3 + STATE_DEBOUNCE_SECS,
            vec![agent("b", "idle", NOW + 3)],
        ),
    );
    assert_eq!(names(&out), vec!["state_changed"]);
    assert_eq!(out[0].1["from"], "working");
    assert_eq!(out[0].1["to"], "idle");
    let (_, out) = decide(&e, &inputs(NOW + 100, vec![agent("b", "idle", NOW + 3)]));
    assert!(out.is_empty(), "logged once");
}

#[test]
fn a_state_that_began_long_ago_needs_no_second_look() {
    let (e, _) = decide(
        &Episodes::default(),
        &inputs(NOW, vec![agent("b", "working", NOW)]),
    );
    let (_, out) = decide(&e, &inputs(NOW + 30, vec![agent("b", "idle", NOW)]));
    assert_eq!(names(&out), vec!["state_changed"]);
}

#[test]
fn waiting_input_needs_attention_only_after_attention_after_and_once() {
    let mut e = Episodes::default();
    let mut logged = Vec::new();
    for t in (0..=3 * 3600).step_by(30) {
        let (n, out) = decide(&e, &inputs(NOW + t, vec![agent("b", "waiting_input", NOW)]));
        logged.extend(
            out.into_iter()
                .filter(|(n, _)| *n == "needs_attention")
                .map(|o| (t, o.1)),
        );
        e = n;
    }
    let times: Vec<i64> = logged.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        times,
        vec![300, 300 + 3600, 300 + 7200],
        "once, then every repeat_after"
    );
    assert_eq!(logged[0].1["state"], "waiting_input");
    assert!(
        logged[0].1["summary"]
            .as_str()
            .unwrap()
            .contains("waiting for input for 5m")
    );
    assert_eq!(logged[1].1["repeat"], 1);
    assert_eq!(e.open.len(), 1);
    // Answered: the episode closes; a new wait is a new episode.
    let (e, out) = decide(
        &e,
        &inputs(NOW + 20_000, vec![agent("b", "working", NOW + 20_000)]),
    );
    assert!(e.open.is_empty());
    assert!(!names(&out).contains(&"needs_attention"));
}

#[test]
fn idle_and_working_never_need_attention() {
    let mut e = Episodes::default();
    for t in (0..=24 * 3600).step_by(600) {
        let (n, out) = decide(
            &e,
            &inputs(
                NOW + t,
                vec![agent("b", "idle", NOW), agent("c", "working", NOW)],
            ),
        );
        assert!(out.iter().all(|(n, _)| *n == "state_changed"));
        e = n;
    }
}

#[test]
fn a_dialog_the_screen_pass_already_reported_is_not_reported_again() {
    let mut a = agent("b", "waiting_input", NOW - 10_000);
    a.screen_attention = true;
    let (_, out) = decide(&Episodes::default(), &inputs(NOW, vec![a]));
    assert!(out.is_empty());
}

#[test]
fn a_stall_that_two_restarts_did_not_cure_needs_attention() {
    let view = |state: &str, since: i64, restarts: u64| AgentView {
        restarts,
        last_heal_reason: Some("stall".into()),
        ..agent("b", state, since)
    };
    let (e, out) = decide(
        &Episodes::default(),
        &inputs(NOW, vec![view("working", NOW, 0)]),
    );
    assert!(out.is_empty());
    let (e, out) = decide(&e, &inputs(NOW + 400, vec![view("stalled", NOW + 300, 1)]));
    assert!(
        !names(&out).contains(&"stalled"),
        "one restart may still cure it"
    );
    // The output a restarted agent prints while starting is no cure.
    let (e, _) = decide(&e, &inputs(NOW + 410, vec![view("working", NOW + 405, 1)]));
    let (e, out) = decide(&e, &inputs(NOW + 800, vec![view("stalled", NOW + 700, 2)]));
    let stalled: Vec<_> = out.iter().filter(|(n, _)| *n == "stalled").collect();
    assert_eq!(stalled.len(), 1);
    assert_eq!(stalled[0].1["restarts"], 2);
    let (e, out) = decide(&e, &inputs(NOW + 810, vec![view("working", NOW + 805, 2)]));
    assert!(!names(&out).contains(&"stalled"), "still the same episode");
    assert_eq!(e.open.len(), 1);
    // Working for a while cures it and resets the count.
    let (e, _) = decide(&e, &inputs(NOW + 900, vec![view("working", NOW + 805, 2)]));
    assert!(e.open.is_empty());
    let (_, out) = decide(
        &e,
        &inputs(NOW + 1300, vec![view("stalled", NOW + 1200, 3)]),
    );
    assert!(!names(&out).contains(&"stalled"));
}

#[test]
fn a_phase_without_handoffs_for_phase_quiet_after_needs_attention() {
    let mut inp = inputs(NOW, vec![]);
    inp.open_phase = Some("p1".into());
    let (e, out) = decide(&Episodes::default(), &inp);
    assert!(out.is_empty());
    inp.now = NOW + 5 * 3600;
    inp.handoffs = vec![NOW + 3600];
    let (e, out) = decide(&e, &inp);
    assert!(out.is_empty());
    inp.handoffs.clear();
    inp.now = NOW + 3600 + 6 * 3600;
    let (e, out) = decide(&e, &inp);
    assert_eq!(names(&out), vec!["phase_quiet"]);
    assert_eq!(out[0].1["phase"], "p1");
    assert_eq!(out[0].1["quiet_secs"], 6 * 3600);
    // The next phase starts its own clock.
    inp.open_phase = Some("p2".into());
    let (e, out) = decide(&e, &inp);
    assert!(out.is_empty());
    assert!(e.open.is_empty());
}
