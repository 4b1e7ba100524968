//! Unit tests for the classifier mechanics, the rule-file parser and the built-in rules on
//! hand-made screens (the real captures are checked in fixture_tests.rs).

use super::*;

fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-06-15T13:00:00-07:00").unwrap()
}

fn class(preset: &str, screen: &str) -> ScreenState {
    classify(screen, &builtin_rules(preset).unwrap(), now()).state
}

const CLAUDE_IDLE_TAIL: &str = "────────\n❯ \n────────\n  ⏵⏵ auto mode on (shift+tab to cycle)\n";

#[test]
fn every_state_name_round_trips() {
    for st in ScreenState::ALL {
        assert_eq!(st.as_str().parse::<ScreenState>(), Ok(st));
        assert_eq!(st.to_string(), st.as_str());
    }
    assert!("sleeping".parse::<ScreenState>().is_err());
}

#[test]
fn empty_and_blank_screens_are_starting() {
    for screen in ["", "\n\n   \n", "\x1b[0m\n \n"] {
        let c = classify(screen, &[], now());
        assert_eq!(c.state, ScreenState::Starting, "{screen:?}");
    }
}

#[test]
fn first_matching_rule_wins_and_unmatched_is_unknown() {
    let rules = vec![
        ScreenRule::new(ScreenState::Busy, "working", None).unwrap(),
        ScreenRule::new(ScreenState::IdleInput, "work", None).unwrap(),
    ];
    let c = classify("still working", &rules, now());
    assert_eq!(c.state, ScreenState::Busy);
    assert_eq!(c.rule.as_deref(), Some("working"));
    assert_eq!(
        classify("work", &rules, now()).state,
        ScreenState::IdleInput
    );
    let c = classify("nothing", &rules, now());
    assert_eq!((c.state, c.rule), (ScreenState::Unknown, None));
}

#[test]
fn rows_limit_ignores_text_above_the_bottom_rows() {
    let rules = vec![ScreenRule::new(ScreenState::Busy, "^busy$", Some(2)).unwrap()];
    assert_eq!(
        classify("busy\na\nb\n\n\n", &rules, now()).state,
        ScreenState::Unknown
    );
    assert_eq!(
        classify("x\nbusy\nb\n\n", &rules, now()).state,
        ScreenState::Busy
    );
}

#[test]
fn escapes_are_stripped_before_matching() {
    let rules = vec![ScreenRule::new(ScreenState::Busy, "esc to interrupt", None).unwrap()];
    let screen = "\x1b[38;5;246mesc\x1b[39m to \x1b[1minterrupt\x1b[0m";
    assert_eq!(classify(screen, &rules, now()).state, ScreenState::Busy);
}

#[test]
fn rate_limited_carries_the_parsed_reset() {
    let screen = format!("❯ go\n  ⎿  5-hour limit reached ∙ resets 5am\n{CLAUDE_IDLE_TAIL}");
    let c = classify(&screen, &builtin_rules("claude").unwrap(), now());
    assert_eq!(c.state, ScreenState::RateLimited);
    assert_eq!(
        c.reset,
        Some(DateTime::parse_from_rfc3339("2026-06-16T05:00:00-07:00").unwrap())
    );
}

#[test]
fn every_vendor_limit_banner_is_rate_limited() {
    let banners = [
        (
            "claude-code",
            "You've hit your session limit · resets 12:50am (America/Los_Angeles)",
        ),
        (
            "claude-code",
            "You've hit your weekly limit · resets Jun 16, 10pm",
        ),
        ("claude-code", "Claude AI usage limit reached|1781560800"),
        ("claude-code", "Limit reached, resets in 3h 47m"),
        (
            "codex",
            "■ You've hit your usage limit. Upgrade to Pro or try again in 2 days 17 hours 14 minutes.",
        ),
        (
            "codex",
            "■ You've hit your usage limit. try again at Oct 10th, 2026 10:57 PM.",
        ),
        ("gemini-cli", "✕ Usage limit reached for all Pro models."),
        (
            "gemini-cli",
            "You have reached your daily gemini-2.5-pro quota limit",
        ),
        ("gemini", "[API Error: RESOURCE_EXHAUSTED]"),
        (
            "opencode",
            "  ┃  Rate limit exceeded, please try again later",
        ),
        ("generic", "Error: 429 Too Many Requests"),
    ];
    for (preset, banner) in banners {
        let screen = format!("some output\n{banner}\n\n");
        assert_eq!(
            class(preset, &screen),
            ScreenState::RateLimited,
            "{preset}: {banner}"
        );
    }
}

#[test]
fn claude_live_spinner_is_busy_without_esc_to_interrupt() {
    for spinner in [
        "✻ Cogitating… (2m 28s · ↓ 10.9k tokens)",
        "· Thinking… (esc to interrupt)",
        "✶ Reticulating… (12s · ↑ 1.2k tokens · esc to interrupt)",
        "✻ Can't reach the API server · retrying in 2s · attempt 2/10",
    ] {
        let screen = format!("❯ do it\n{spinner}\n{CLAUDE_IDLE_TAIL}");
        assert_eq!(
            class("claude-code", &screen),
            ScreenState::Busy,
            "{spinner}"
        );
    }
}

#[test]
fn claude_stale_spinner_or_finished_summary_is_idle() {
    for line in [
        "✻ Cogitating…",
        "✻ Worked for 2m 28s",
        "✻ Cooked for 1m 3s",
        "* Loading… (3 files)",
    ] {
        let screen = format!("❯ do it\n● Done.\n{line}\n{CLAUDE_IDLE_TAIL}");
        assert_eq!(
            class("claude-code", &screen),
            ScreenState::IdleInput,
            "{line}"
        );
    }
}

#[test]
fn busy_beats_a_limit_banner_higher_up() {
    let screen = format!(
        "  ⎿  5-hour limit reached ∙ resets 5am\n❯ resume\n✻ Working… (3s · esc to interrupt)\n{CLAUDE_IDLE_TAIL}"
    );
    assert_eq!(class("claude-code", &screen), ScreenState::Busy);
}

#[test]
fn claude_invalid_key_is_auth_error() {
    let screen = format!("❯ hi\n  ⎿  Invalid API key · Please run /login\n{CLAUDE_IDLE_TAIL}");
    assert_eq!(class("claude-code", &screen), ScreenState::AuthError);
}

#[test]
fn claude_tool_permission_prompt() {
    let screen = " Bash command\n   rm -rf build\n Do you want to proceed?\n ❯ 1. Yes\n   2. No\n";
    assert_eq!(class("claude-code", screen), ScreenState::PermissionPrompt);
}

#[test]
fn generic_rules_cover_dead_panes_and_interrupt_hints() {
    assert_eq!(
        class("generic", "$ run\nPane is dead (status 1, x)"),
        ScreenState::Exited
    );
    assert_eq!(
        class("generic", "thinking (esc to cancel)"),
        ScreenState::Busy
    );
    assert_eq!(class("generic", "$ "), ScreenState::Unknown);
}

#[test]
fn builtin_presets_and_aliases_resolve() {
    for p in builtin_presets() {
        assert!(!builtin_rules(p).unwrap().is_empty(), "{p}");
    }
    for alias in ["claude", "gemini"] {
        assert!(builtin_rules(alias).is_some(), "{alias}");
    }
    assert!(builtin_rules("no-such-cli").is_none());
}

#[test]
fn rule_files_report_bad_states_patterns_and_keys() {
    let ok = "[x]\naliases = [\"y\"]\n[[x.rules]]\nstate = \"busy\"\npattern = 'esc'\nrows = 3\nname = \"n\"\n";
    let map = parse_rules_toml(ok, "t.toml").unwrap();
    assert_eq!(map["x"][0].name, "n");
    assert_eq!(map["y"][0].rows, Some(3));

    let bad_state = "[x]\n[[x.rules]]\nstate = \"sleepy\"\npattern = 'a'\n";
    let e = parse_rules_toml(bad_state, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.toml") && e.contains("sleepy") && e.contains("rule 0"),
        "{e}"
    );

    let bad_re = "[x]\n[[x.rules]]\nstate = \"busy\"\npattern = '(unclosed'\n";
    let e = parse_rules_toml(bad_re, "t.toml").unwrap_err().to_string();
    assert!(e.contains("(unclosed"), "{e}");

    let typo = "[x]\n[[x.rules]]\nstate = \"busy\"\npatern = 'a'\n";
    assert!(parse_rules_toml(typo, "t.toml").is_err());
}

fn fixture(rel: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tui/");
    std::fs::read_to_string(format!("{path}{rel}")).unwrap()
}

/// orch's kickoff for the builder of p1, as the 2.1.330 captures were given it.
fn kickoff() -> String {
    let template = include_str!("../../prompts/kickoff.md");
    template
        .replace("{phase_id}", "p1")
        .replace("{role}", "builder")
        .replace("{plan}", "docs/p1-plan.md")
        .replace("{status}", "p1-STATUS.md")
        + "\nYou are the builder.\n"
}

#[test]
fn rows_echoing_typed_text_end_before_what_the_agent_drew_last() {
    let typed = vec!["If you hit a usage limit, stop; the watchdog will tell you.".to_string()];
    let screen =
        "› If you hit a usage limit, stop; the watchdog\n  will tell you.\n● API Error\n> ";
    assert_eq!(after_echo(screen, &typed), "● API Error\n> ");
    assert_eq!(
        after_echo(screen, &[]),
        screen,
        "nothing typed: the whole screen"
    );
    let other = vec!["something else entirely, typed".to_string()];
    assert_eq!(after_echo(screen, &other), screen);
    // A ping's `[orch:ping <id>]` mark, on its row or wrapped below it, is part of the echo.
    let marked = "› If you hit a usage limit, stop; the watchdog will tell you. [orch:ping b-0001]\n● API Error\n> ";
    assert_eq!(after_echo(marked, &typed), "● API Error\n> ");
    let wrapped =
        "› If you hit a usage limit, stop; the watchdog will tell you.\n  [orch:ping b-0001]\nok";
    assert_eq!(after_echo(wrapped, &typed), "ok");
    // Markdown marks and re-wrapping do not hide an echo.
    let md = vec!["You are the **builder** of a `two-agent` loop.".to_string()];
    assert_eq!(
        after_echo("❯ You are the builder of a two-agent\n  loop.\nok", &md),
        "ok"
    );
}

#[test]
fn the_kickoffs_own_usage_limit_line_is_not_a_usage_limit() {
    // The issue-13 screen: claude gave up on the network with orch's kickoff still on screen.
    let rules = vec![
        ScreenRule::new(ScreenState::RateLimited, "(?i)usage limit", None).unwrap(),
        ScreenRule::new(ScreenState::IdleInput, "^❯", None).unwrap(),
    ];
    for rel in [
        "claude/2.1.330-kickoff-api-error-xs.txt",
        "claude/2.1.330-kickoff-retrying-xs.txt",
    ] {
        let screen = fixture(rel);
        assert_eq!(
            classify(&screen, &rules, now()).state,
            ScreenState::RateLimited,
            "{rel}: the echo alone reads as a limit"
        );
        let typed = classify_typed(&screen, &rules, now(), &[kickoff()]);
        assert_eq!(typed.state, ScreenState::IdleInput, "{rel}");
    }
    let claude = builtin_rules("claude-code").unwrap();
    let screen = fixture("claude/2.1.330-kickoff-api-error-xs.txt");
    let c = classify_typed(&screen, &claude, now(), &[kickoff()]);
    assert_eq!(c.state, ScreenState::NetworkError, "{c:?}");
}

#[test]
fn an_error_banner_above_an_empty_input_box_is_the_error_not_idle_input() {
    let banner = "❯ say hi\n● API Error: Can't reach the API server — check your internet or DNS (ENOTFOUND)\n\n";
    let screen = format!("{banner}{CLAUDE_IDLE_TAIL}");
    assert_eq!(class("claude-code", &screen), ScreenState::NetworkError);
    let typed = screen.replace("❯ \n", "❯ next question\n");
    assert_eq!(class("claude-code", &typed), ScreenState::IdleInput);
}

#[test]
fn a_shell_showing_only_the_launch_command_is_starting() {
    for (preset, line) in [
        (
            "claude-code",
            "bash-5.2# claude --dangerously-skip-permissions 'say hi'",
        ),
        ("codex", "user@host:~/p$ codex --model x"),
        ("gemini-cli", "$ exec gemini --yolo -i hi"),
        ("opencode", "% /usr/local/bin/opencode --prompt hi"),
    ] {
        assert_eq!(
            class(preset, &format!("{line}\n\n")),
            ScreenState::Starting,
            "{line}"
        );
    }
    // Another program's command, or the CLI's own output below it, is not.
    assert_ne!(
        class("claude-code", "bash-5.2# vim notes\n"),
        ScreenState::Starting
    );
}
