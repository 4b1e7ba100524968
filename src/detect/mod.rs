//! Pure detectors over pane text: activity, usage-limit reset times, WAITING-UNTIL and DONE
//! markers, the stall rule, and the data-driven screen classifier. No tmux, no config, no I/O.
//!
//! Everything here takes text (and, where time matters, an injected `now`) and returns a
//! value, so the watchdog's decisions can be unit-tested without a terminal or a clock.

mod marker;
mod reset;
mod screen;
mod selftest;

#[cfg(test)]
mod fixture_tests;

use std::sync::LazyLock;

use regex::Regex;

pub use marker::{
    StallVerdict, done_in, is_placeholder, last_nonempty_line, parse_waiting_until, stall_verdict,
};
pub use reset::{LIMIT_HOLD_WINDOW, hold_until, parse_reset};
pub use screen::{
    Classification, ScreenRule, ScreenState, after_echo, builtin_presets, builtin_rules, classify,
    classify_typed, drawn_last_only, parse_rules_toml,
};
pub use selftest::selftest_checks;

/// How many bottom rows count for a `footer_ui` backend (a TUI whose footer lingers).
pub const FOOTER_ROWS: usize = 10;

/// Something in detector input (a rule file, a rule pattern) that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("screen rules {source_name}: TOML does not parse: {message}")]
    RulesToml {
        source_name: String,
        message: String,
    },
    #[error("screen rules {source_name}, preset {preset:?}, rule {index}: {message}")]
    Rule {
        source_name: String,
        preset: String,
        index: usize,
        message: String,
    },
    #[error("screen rule pattern {pattern:?} does not compile: {source}")]
    Pattern {
        pattern: String,
        source: Box<regex::Error>,
    },
}

/// The last `n` rows of `pane`, after dropping trailing blank rows (tmux pads a capture of a
/// main-screen app with empty rows below its content). `n == 0` gives "".
pub fn bottom_rows(pane: &str, n: usize) -> &str {
    let text = trim_trailing_blank_rows(pane);
    if n == 0 {
        return "";
    }
    let mut start = text.len();
    for _ in 0..n {
        match text[..start].rfind('\n') {
            Some(i) => start = i,
            None => return text,
        }
    }
    &text[start + 1..]
}

/// `pane` without its trailing whitespace-only rows (the last kept row keeps its own text).
fn trim_trailing_blank_rows(pane: &str) -> &str {
    let mut end = pane.len();
    loop {
        let head = &pane[..end];
        let line_start = head.rfind('\n').map_or(0, |i| i + 1);
        if head[line_start..].trim().is_empty() {
            if line_start == 0 {
                return "";
            }
            end = line_start - 1;
        } else {
            return head;
        }
    }
}

/// True when the pane shows the agent working: `active_re` matches the pane, or for a
/// `footer_ui` backend only its bottom [`FOOTER_ROWS`] rows (a stale footer higher up does not
/// count; the caller applies the recently-written-log grace fallback). No regex: never active.
pub fn screen_active(pane: &str, active_re: Option<&Regex>, footer_ui: bool) -> bool {
    let Some(re) = active_re else {
        return false;
    };
    if footer_ui {
        re.is_match(bottom_rows(pane, FOOTER_ROWS))
    } else {
        re.is_match(pane)
    }
}

/// True when the pane shows a usage-limit banner (`limit_re` matches anywhere) and the agent is
/// not working ([`screen_active`] is false): the reference tool's "limited now" test. A
/// banner left in the transcript while the agent works again does not count.
pub fn screen_limited(
    pane: &str,
    limit_re: Option<&Regex>,
    active_re: Option<&Regex>,
    footer_ui: bool,
) -> bool {
    limit_re.is_some_and(|re| re.is_match(pane)) && !screen_active(pane, active_re, footer_ui)
}

static ANSI_RE: LazyLock<Regex> = LazyLock::new(|| {
    // CSI (SGR, cursor moves, bracketed-paste markers), OSC/APC/DCS strings ended by BEL or ST,
    // then any other two-byte escape.
    Regex::new(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[\]_P^X][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\r")
        .unwrap_or_else(|e| unreachable!("static ANSI regex: {e}"))
});

/// A settled screen that can take input: something is drawn and the process is alive. Used to
/// decide when a `ping`-delivery agent may be typed into (after the screen went quiet).
pub fn shows_input(screen: &str) -> bool {
    let last = last_nonempty_line(screen);
    !last.is_empty() && !last.starts_with("Pane is dead")
}

/// `text` without terminal escape sequences (SGR colours, other CSI, OSC/APC strings) and
/// carriage returns, as `tmux capture-pane -e` output would read on screen.
pub fn strip_ansi(text: &str) -> String {
    if !text.contains('\x1b') && !text.contains('\r') {
        return text.to_owned();
    }
    ANSI_RE.replace_all(text, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(p: &str) -> Regex {
        Regex::new(&format!("(?i){p}")).unwrap()
    }

    #[test]
    fn bottom_rows_takes_last_rows_and_skips_trailing_blank_rows() {
        assert_eq!(bottom_rows("a\nb\nc\n", 2), "b\nc");
        assert_eq!(bottom_rows("a\nb\nc\n\n   \n\n", 2), "b\nc");
        assert_eq!(bottom_rows("a\nb", 5), "a\nb");
        assert_eq!(bottom_rows("a\nb", 0), "");
        assert_eq!(bottom_rows("\n\n  \n", 3), "");
        assert_eq!(bottom_rows("", 3), "");
    }

    #[test]
    fn whole_screen_activity_matches_anywhere() {
        let mut pane = String::from("esc to interrupt\n");
        pane.push_str(&"x\n".repeat(30));
        assert!(screen_active(&pane, Some(&re("esc to interrupt")), false));
        assert!(!screen_active(&pane, Some(&re("esc to interrupt")), true));
        assert!(!screen_active(&pane, None, false));
    }

    #[test]
    fn footer_ui_activity_counts_only_the_bottom_ten_rows() {
        let mut pane = "x\n".repeat(30);
        pane.push_str(" ⬝⬝⬝■■ esc interrupt\n");
        pane.push_str(&"\n".repeat(12)); // padding below the content does not push it out
        assert!(screen_active(&pane, Some(&re("esc interrupt")), true));
        let mut stale = String::from(" ⬝⬝⬝■■ esc interrupt\n");
        stale.push_str(&"y\n".repeat(10));
        assert!(!screen_active(&stale, Some(&re("esc interrupt")), true));
    }

    #[test]
    fn limit_banner_counts_only_while_the_agent_is_not_working() {
        let limit = re("usage limit|limit reached");
        let active = re("esc to interrupt");
        let idle = "⎿ 5-hour limit reached ∙ resets 5am\n❯ \n";
        let working = "⎿ 5-hour limit reached ∙ resets 5am\n✻ Working… (esc to interrupt)\n";
        assert!(screen_limited(idle, Some(&limit), Some(&active), false));
        assert!(!screen_limited(working, Some(&limit), Some(&active), false));
        assert!(!screen_limited(
            "all good\n",
            Some(&limit),
            Some(&active),
            false
        ));
        assert!(!screen_limited(idle, None, Some(&active), false));
    }

    #[test]
    fn strip_ansi_removes_sgr_csi_osc_and_carriage_returns() {
        let s = "\x1b[38;5;174mWelcome\x1b[39m \x1b[1;7m› 1.\x1b[0m\r\n\x1b]0;title\x07ok\x1b[200~x\x1b[201~";
        assert_eq!(strip_ansi(s), "Welcome › 1.\nokx");
        assert_eq!(strip_ansi("plain"), "plain");
        assert_eq!(strip_ansi("\x1b_Gi=31;AAAA\x1b\\done"), "done");
    }
}
