//! The console without a terminal: key handling through `update`, and the rendered buffer of a
//! fixed fleet snapshotted with ratatui's TestBackend (80x24 and 200x50, help, input line).
use std::collections::BTreeMap;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::state::{Effect, Mode, Msg, State, update};
use super::{Captured, needs_capture, render};
use crate::status::{AgentReport, PhaseReport, Report, ServiceReport, WatchdogReport};

const NOW: i64 = 1_767_225_600;

fn ts(secs_ago: i64) -> Option<String> {
    crate::status::rfc3339(NOW - secs_ago)
}

fn agent(name: &str, state: &'static str, since_ago: i64) -> AgentReport {
    AgentReport {
        name: name.into(),
        host: "local".into(),
        context_pct: None,
        context_source: None,
        kind: "loop",
        backend: "claude".into(),
        model: "sonnet".into(),
        session: format!("p-{name}"),
        watch: "heal",
        enabled: true,
        running: state != "stopped",
        command: if state == "stopped" { "" } else { "claude" }.into(),
        pid: None,
        needs_attention: None,
        attention: None,
        exit_reason: None,
        pending_pings: 0,
        state,
        until: None,
        since: ts(since_ago),
        last_activity_at: ts(5),
        parked: None,
        restarts: 0,
        last_exit: None,
        last_heal_reason: None,
        last_tool: None,
        last_tool_at: None,
        tool_counts: BTreeMap::new(),
        pool: None,
    }
}

fn report() -> Report {
    let mut adversary = agent("adversary", "waiting_input", 3 * 3600 + 300);
    adversary.last_tool = Some("Bash".into());
    adversary.restarts = 2;
    let mut stopped = agent("finisher", "stopped", 90);
    stopped.kind = "task";
    stopped.last_activity_at = None;
    Report {
        schema_version: 1,
        phase: Some(PhaseReport {
            id: "p1".into(),
            index: 0,
            count: 2,
            done: true,
            plan: "docs/p1.md".into(),
            sequence_complete: false,
        }),
        agents: vec![agent("builder", "working", 42), adversary, stopped],
        services: vec![ServiceReport {
            name: "web".into(),
            host: "local".into(),
            session: "p-web".into(),
            running: true,
            command: "python3".into(),
        }],
        watchdog: WatchdogReport {
            running: true,
            session: "p-watchdog".into(),
        },
        hosts: Vec::new(),
        pools: Vec::new(),
    }
}

fn state() -> State {
    let mut s = State::new("demo", false, 30);
    update(
        &mut s,
        Msg::Snapshot {
            report: report(),
            now: NOW,
        },
    );
    update(
        &mut s,
        Msg::Events(vec![
            "  12:00:01  agent_started      builder    (phase p1)".into(),
            "  12:00:09  ping               adversary  (claim)".into(),
        ]),
    );
    update(
        &mut s,
        Msg::Preview {
            name: "builder".into(),
            text: "\x1b[1mClaude\x1b[0m working\n> fix the tests\n\n\n".into(),
        },
    );
    s
}

fn key(s: &mut State, code: KeyCode) -> Option<Effect> {
    update(s, Msg::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn typed(s: &mut State, text: &str) {
    for c in text.chars() {
        assert_eq!(key(s, KeyCode::Char(c)), None);
    }
}

/// The rendered buffer as lines of text, trailing spaces cut.
fn screen(s: &State, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render(s, f)).unwrap();
    let buf = t.backend().buffer().clone();
    (0..h)
        .map(|y| {
            let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_80x24_layout_shows_header_fleet_screen_events_and_keys() {
    let got = screen(&state(), 80, 24);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/cli/top/snapshots/80x24.txt"
    );
    if std::env::var_os("ORCH_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, format!("{got}\n")).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap();
    assert_eq!(got, want.trim_end_matches('\n'), "got:\n{got}");
}

#[test]
fn a_wide_terminal_puts_the_screen_and_the_events_side_by_side() {
    let got = screen(&state(), 200, 50);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 50);
    let row = lines
        .iter()
        .find(|l| l.contains("builder: screen"))
        .expect(&got);
    assert!(row.contains(" events "), "side by side: {row}");
    assert!(got.contains("Claude working"), "{got}");
    assert!(
        got.contains("ping               adversary  (claim)"),
        "{got}"
    );
}

#[test]
fn every_size_from_80x24_up_renders_without_panicking() {
    let s = state();
    for (w, h) in [
        (80, 24),
        (81, 25),
        (100, 30),
        (139, 40),
        (140, 40),
        (300, 100),
    ] {
        let text = screen(&s, w, h);
        assert!(text.contains("attention 1"), "{w}x{h}:\n{text}");
    }
}

#[test]
fn help_opens_with_question_mark_and_any_key_closes_it() {
    let mut s = state();
    assert_eq!(key(&mut s, KeyCode::Char('?')), None);
    assert_eq!(s.mode, Mode::Help);
    let text = screen(&s, 80, 24);
    assert!(text.contains(" keys "), "{text}");
    assert!(text.contains("send the agent a message"), "{text}");
    // The key that closes the help does nothing else (here: no quit).
    assert_eq!(key(&mut s, KeyCode::Char('q')), None);
    assert_eq!(s.mode, Mode::Normal);
}

#[test]
fn j_and_k_move_the_selection_within_the_rows() {
    let mut s = state();
    assert_eq!(s.selected.as_deref(), Some("builder"));
    key(&mut s, KeyCode::Char('k'));
    assert_eq!(s.selected.as_deref(), Some("builder"));
    key(&mut s, KeyCode::Char('j'));
    key(&mut s, KeyCode::Down);
    assert_eq!(s.selected.as_deref(), Some("finisher"));
    for _ in 0..5 {
        key(&mut s, KeyCode::Char('j'));
    }
    assert_eq!(s.selected.as_deref(), Some("web"));
    key(&mut s, KeyCode::Up);
    assert_eq!(s.selected.as_deref(), Some("finisher"));
    // A refresh keeps the selection by name.
    update(
        &mut s,
        Msg::Snapshot {
            report: report(),
            now: NOW + 1,
        },
    );
    assert_eq!(s.selected.as_deref(), Some("finisher"));
}

#[test]
fn s_opens_an_input_line_and_enter_sends_what_was_typed() {
    let mut s = state();
    key(&mut s, KeyCode::Char('j'));
    assert_eq!(key(&mut s, KeyCode::Char('s')), None);
    typed(&mut s, "run tests!");
    key(&mut s, KeyCode::Backspace);
    let footer = screen(&s, 80, 24);
    assert!(
        footer.ends_with("message to adversary: run tests█  (Enter sends, Esc cancels)"),
        "{footer}"
    );
    assert_eq!(
        key(&mut s, KeyCode::Enter),
        Some(Effect::Send {
            to: "adversary".into(),
            text: "run tests".into()
        })
    );
    assert_eq!(s.mode, Mode::Normal);
    assert_eq!(s.busy.as_deref(), Some("sending to adversary"));
    update(&mut s, Msg::Done("delivered to adversary".into()));
    assert!(screen(&s, 80, 24).ends_with("delivered to adversary"));
}

#[test]
fn an_empty_or_cancelled_message_is_not_sent_and_services_take_none() {
    let mut s = state();
    key(&mut s, KeyCode::Char('s'));
    assert_eq!(key(&mut s, KeyCode::Enter), None);
    key(&mut s, KeyCode::Char('s'));
    typed(&mut s, "x");
    assert_eq!(key(&mut s, KeyCode::Esc), None);
    assert_eq!(s.message.as_deref(), Some("message not sent"));
    key(&mut s, KeyCode::End);
    assert_eq!(key(&mut s, KeyCode::Char('s')), None);
    assert_eq!(s.mode, Mode::Normal);
    assert!(s.message.as_deref().unwrap().contains("web is a service"));
}

#[test]
fn destructive_keys_ask_first_and_only_y_confirms() {
    let mut s = state();
    assert_eq!(key(&mut s, KeyCode::Char('d')), None);
    assert!(screen(&s, 80, 24).ends_with("stop builder? (y/n)"));
    assert_eq!(key(&mut s, KeyCode::Char('n')), None);
    assert_eq!(s.message.as_deref(), Some("cancelled"));
    key(&mut s, KeyCode::Char('r'));
    assert_eq!(
        key(&mut s, KeyCode::Char('y')),
        Some(Effect::Restart("builder".into()))
    );
    key(&mut s, KeyCode::Char('n'));
    assert_eq!(key(&mut s, KeyCode::Char('y')), Some(Effect::PhaseNext));
    // Starting, attaching and paging act at once.
    assert_eq!(
        key(&mut s, KeyCode::Char('u')),
        Some(Effect::Start("builder".into()))
    );
    assert_eq!(
        key(&mut s, KeyCode::Enter),
        Some(Effect::Attach("builder".into()))
    );
    assert_eq!(
        key(&mut s, KeyCode::Char('l')),
        Some(Effect::Logs("builder".into()))
    );
    assert_eq!(key(&mut s, KeyCode::Char('q')), Some(Effect::Quit));
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    key(&mut s, KeyCode::Char('s'));
    assert_eq!(update(&mut s, Msg::Key(ctrl_c)), Some(Effect::Quit));
}

#[test]
fn the_filter_narrows_the_table_and_esc_clears_it() {
    let mut s = state();
    key(&mut s, KeyCode::Char('/'));
    typed(&mut s, "adv");
    key(&mut s, KeyCode::Enter);
    let names: Vec<&str> = s.visible().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["adversary"]);
    assert_eq!(s.selected_row().map(|r| r.name.as_str()), Some("adversary"));
    assert!(screen(&s, 80, 24).contains("fleet (filter: adv)"));
    key(&mut s, KeyCode::Esc);
    assert_eq!(s.visible().len(), 4);
}

#[test]
fn colour_is_used_only_when_allowed() {
    let mut s = state();
    let coloured =
        |s: &State| {
            let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
            t.draw(|f| render(s, f)).unwrap();
            t.backend().buffer().content().iter().any(|c| {
                c.fg != ratatui::style::Color::Reset || c.bg != ratatui::style::Color::Reset
            })
        };
    assert!(!coloured(&s), "NO_COLOR: no colour at all");
    s.colour = true;
    assert!(coloured(&s));
}

#[test]
fn the_preview_is_captured_again_only_after_new_output() {
    assert!(needs_capture(None, Some(100)));
    let last = Captured {
        activity: Some(100),
        at: 105,
    };
    assert!(!needs_capture(Some(last), Some(100)));
    assert!(needs_capture(Some(last), Some(106)));
    // Output in the very second of the capture may have come after it.
    let same = Captured {
        activity: Some(105),
        at: 105,
    };
    assert!(needs_capture(Some(same), Some(105)));
    let after = Captured {
        activity: Some(105),
        at: 106,
    };
    assert!(!needs_capture(Some(after), Some(105)));
    assert!(!needs_capture(
        Some(Captured {
            activity: None,
            at: 1
        }),
        None
    ));
}
