//! Markers agents write for the watchdog: `WAITING-UNTIL: <time>` on screen and the phase
//! STATUS file's DONE marker, plus the pure stall rule that uses the former.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta};
use regex::Regex;

static WAITING_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"WAITING-UNTIL:\s*(\S+)")
        .unwrap_or_else(|e| unreachable!("static WAITING-UNTIL regex: {e}"))
});

static PLACEHOLDER_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:not yet|not done|not complete|incomplete|pending\b|tbd\b|n/?a\b|written here only|only when|to be (?:written|filled)|when all|<.*>)",
    )
    .unwrap_or_else(|e| unreachable!("static placeholder regex: {e}"))
});

/// The last non-empty line of `text`, trimmed ("" when there is none).
pub fn last_nonempty_line(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// An ISO 8601 / RFC 3339 time that carries its zone: `Z` or an offset (`+02:00`, `+0200`),
/// seconds and fractions optional. A naive time (no zone) is refused: the agent and the
/// watchdog may not share a local zone, so the marker must say which it means.
fn parse_marker_time(raw: &str) -> Option<DateTime<FixedOffset>> {
    let s = raw.trim_end_matches(['.', ',', ';', ')', ']', '`', '\'', '"', '*']);
    let s = s.trim_start_matches(['`', '\'', '"', '(', '[', '*']);
    let s = match s.strip_suffix(['Z', 'z']) {
        Some(head) => format!("{head}+00:00"),
        None => s.to_owned(),
    };
    let s = s.replacen(['t', ' '], "T", 1);
    const FORMATS: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M%z",
    ];
    FORMATS
        .iter()
        .find_map(|f| DateTime::parse_from_str(&s, f).ok())
}

/// The time in the last parsable `WAITING-UNTIL: <ISO 8601 with Z or offset>` marker.
///
/// For a `footer_ui` backend only a marker that starts the last non-empty line counts (the
/// transcript above may hold stale ones). Markers whose time does not parse are skipped.
pub fn parse_waiting_until(pane: &str, footer_ui: bool) -> Option<DateTime<FixedOffset>> {
    if footer_ui {
        let line = last_nonempty_line(pane);
        if !line.starts_with("WAITING-UNTIL:") {
            return None;
        }
        return WAITING_RE
            .captures(line)
            .and_then(|c| parse_marker_time(&c[1]));
    }
    WAITING_RE
        .captures_iter(pane)
        .filter_map(|c| parse_marker_time(&c[1]))
        .last()
}

/// True when `body` is a placeholder rather than a real DONE body: it starts (after blanks,
/// any case) with "not yet", "not done", "not complete", "incomplete", "pending", "TBD",
/// "n/a", "written here only", "only when", "to be written/filled", "when all" or "<...>".
/// An empty body is a placeholder too.
pub fn is_placeholder(body: &str) -> bool {
    body.trim().is_empty() || PLACEHOLDER_RE.is_match(body)
}

/// True when `text` has a line starting with `marker` whose next non-empty line is a real
/// body (see [`is_placeholder`]). A marker with nothing after it does not count.
pub fn done_in(text: &str, marker: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().enumerate().any(|(i, line)| {
        line.starts_with(marker) && {
            let body = lines[i + 1..]
                .iter()
                .find(|l| !l.trim().is_empty())
                .copied()
                .unwrap_or("");
            !is_placeholder(body)
        }
    })
}

/// What the stall rule says about an idle agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallVerdict {
    /// Not idle long enough to matter (and no WAITING-UNTIL marker).
    Fine,
    /// The agent said it is waiting, and `until + grace` has not passed.
    Waiting { until: DateTime<FixedOffset> },
    /// Reboot it; `reason` is one sentence for the log.
    Stalled { reason: String },
}

/// The stall rule. With a WAITING-UNTIL marker the agent is left alone until `until + grace`,
/// then stalled (its self-wake did not fire). Without one it is stalled once it has been idle
/// for `stall_idle`.
pub fn stall_verdict(
    idle_for: Duration,
    stall_idle: Duration,
    waiting_until: Option<DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
    grace: Duration,
) -> StallVerdict {
    if let Some(until) = waiting_until {
        let grace = TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX);
        let deadline = until.checked_add_signed(grace).unwrap_or(until);
        if now <= deadline {
            return StallVerdict::Waiting { until };
        }
        let late = (now - until).num_seconds();
        return StallVerdict::Stalled {
            reason: format!("past its WAITING-UNTIL by {late}s; its self-wake did not fire"),
        };
    }
    if idle_for < stall_idle {
        return StallVerdict::Fine;
    }
    StallVerdict::Stalled {
        reason: format!("idle {}s with no WAITING-UNTIL marker", idle_for.as_secs()),
    }
}

#[cfg(test)]
#[path = "marker_tests.rs"]
mod tests;
