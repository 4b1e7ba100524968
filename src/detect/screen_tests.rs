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
