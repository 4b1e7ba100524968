//! Built-in detector regression checks for `orch selftest`: the reference tool's footer_ui
//! checks plus the reset, WAITING-UNTIL, stall and classifier rules, on a fixed clock.

use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use regex::RegexBuilder;

use super::{
    ScreenState, StallVerdict, builtin_rules, classify, done_in, hold_until, parse_reset,
    parse_waiting_until, screen_active, stall_verdict,
};

const FOOTER_ACTIVE_RE: &str =
    "esc interrupt|thinking|inferring|running tool|preparing patch|reading|searching";
const IDLE_FOOTER: &str = "\n ▣ Build · GPT-5.4 · 2m 19s\n 178.4K (17%) ctrl+p commands\n";
const ACTIVE_FOOTER: &str = "\n ~ Preparing patch...\n ⬝⬝⬝■■ esc interrupt 137.6K\n";

fn fixed(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

/// Every check as (name, passed). Pure and fast: no tmux, no files, no real clock.
pub fn selftest_checks() -> Vec<(&'static str, bool)> {
    let mut checks = Vec::new();
    let active = RegexBuilder::new(FOOTER_ACTIVE_RE)
        .case_insensitive(true)
        .build()
        .ok();
    let active = active.as_ref();
    checks.push((
        "footer_ui idle footer is idle",
        !screen_active(IDLE_FOOTER, active, true),
    ));
    checks.push((
        "footer_ui active footer is active",
        screen_active(ACTIVE_FOOTER, active, true),
    ));
    let limited = format!("{IDLE_FOOTER}\nYou've hit your weekly limit · resets Jun 16, 10pm\n");
    checks.push((
        "limit banner + idle footer is not active",
        !screen_active(&limited, active, true),
    ));

    let Some(now) = fixed("2026-06-15T13:00:00-07:00") else {
        checks.push(("fixed clock parses", false));
        return checks;
    };
    let reset_is = |pane: &str, want: &str| parse_reset(pane, now) == fixed(want);
    checks.push((
        "reset: bare hour later today",
        reset_is("limit reached · resets 3pm", "2026-06-15T15:00:00-07:00"),
    ));
    checks.push((
        "reset: past time of day means tomorrow",
        reset_is(
            "5-hour limit reached ∙ resets 5am",
            "2026-06-16T05:00:00-07:00",
        ),
    ));
    checks.push((
        "reset: named zone converts",
        reset_is(
            "You've hit your session limit · resets 12:50am (America/Los_Angeles)",
            "2026-06-16T00:50:00-07:00",
        ),
    ));
    checks.push((
        "reset: month, day and time",
        reset_is("resets Jun 16, 10pm", "2026-06-16T22:00:00-07:00"),
    ));
    checks.push((
        "reset: relative hours and minutes",
        reset_is(
            "Limit reached, resets in 3h 47m",
            "2026-06-15T16:47:00-07:00",
        ),
    ));
    checks.push((
        "reset: codex try again in days/hours/minutes",
        reset_is(
            "try again in 2 days 17 hours 14 minutes",
            "2026-06-18T06:14:00-07:00",
        ),
    ));
    checks.push((
        "reset: codex try again at a dated time",
        reset_is(
            "try again at Oct 10th, 2026 10:57 PM",
            "2026-10-10T22:57:00-07:00",
        ),
    ));
    checks.push((
        "reset: old claude epoch form",
        reset_is("usage limit reached|1781560800", "2026-06-15T22:00:00Z"),
    ));
    let slack = Duration::from_secs(45);
    let fallback = Duration::from_secs(300);
    checks.push((
        "hold: reset within 6h holds until reset + slack",
        hold_until(fixed("2026-06-15T15:00:00-07:00"), now, slack, fallback)
            == (now + chrono::TimeDelta::seconds(2 * 3600 + 45), true),
    ));
    checks.push((
        "hold: far reset falls back to a flat probe",
        hold_until(fixed("2026-06-16T15:00:00-07:00"), now, slack, fallback)
            == (now + chrono::TimeDelta::seconds(300), false),
    ));

    checks.push((
        "waiting-until: Z time parses",
        parse_waiting_until("WAITING-UNTIL: 2026-06-15T20:00:00Z", false)
            == fixed("2026-06-15T20:00:00Z"),
    ));
    checks.push((
        "waiting-until: footer_ui ignores a marker above the last line",
        parse_waiting_until("WAITING-UNTIL: 2026-06-15T20:00:00Z\nlater output", true).is_none(),
    ));
    checks.push((
        "waiting-until: naive time is refused",
        parse_waiting_until("WAITING-UNTIL: 2026-06-15T20:00:00", false).is_none(),
    ));

    let grace = Duration::from_secs(180);
    let stall_idle = Duration::from_secs(300);
    let long = Duration::from_secs(3600);
    checks.push((
        "stall: idle below stall_idle is fine",
        stall_verdict(Duration::from_secs(299), stall_idle, None, now, grace) == StallVerdict::Fine,
    ));
    checks.push((
        "stall: idle past stall_idle without marker stalls",
        matches!(
            stall_verdict(long, stall_idle, None, now, grace),
            StallVerdict::Stalled { .. }
        ),
    ));
    checks.push((
        "stall: a future WAITING-UNTIL holds off a reboot",
        matches!(
            stall_verdict(
                long,
                stall_idle,
                fixed("2026-06-15T13:30:00-07:00"),
                now,
                grace
            ),
            StallVerdict::Waiting { .. }
        ),
    ));
    checks.push((
        "stall: WAITING-UNTIL + grace passed stalls",
        matches!(
            stall_verdict(
                long,
                stall_idle,
                fixed("2026-06-15T12:56:59-07:00"),
                now,
                grace
            ),
            StallVerdict::Stalled { .. }
        ),
    ));

    checks.push((
        "done: placeholder body is not done",
        !done_in("## DONE\nnot yet\n", "## DONE") && done_in("## DONE\nShipped.\n", "## DONE"),
    ));

    let class = |preset: &str, screen: &str| {
        builtin_rules(preset).map(|rules| classify(screen, &rules, now).state)
    };
    checks.push((
        "classify: claude spinner is busy",
        class(
            "claude-code",
            "❯ fix it\n✻ Cogitating… (2m 28s · ↓ 10.9k tokens)\n───\n❯ \n───\n  ⏵⏵ auto mode on",
        ) == Some(ScreenState::Busy),
    ));
    checks.push((
        "classify: claude stale spinner is idle",
        class(
            "claude-code",
            "✻ Cogitating…\n───\n❯ \n───\n  ⏵⏵ auto mode on",
        ) == Some(ScreenState::IdleInput),
    ));
    checks.push((
        "classify: limit banner is rate_limited",
        class(
            "claude-code",
            "❯ go\n  ⎿  5-hour limit reached ∙ resets 5am\n───\n❯ \n───\n  ⏵⏵ auto mode on",
        ) == Some(ScreenState::RateLimited),
    ));
    checks.push((
        "classify: tmux pane is dead is exited",
        class(
            "generic",
            "bye\nPane is dead (status 0, Sat Nov 21 23:40:12 2026)",
        ) == Some(ScreenState::Exited),
    ));
    checks
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_selftest_check_passes() {
        let checks = super::selftest_checks();
        let failed: Vec<_> = checks
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(n, _)| n)
            .collect();
        assert!(failed.is_empty(), "failing selftest checks: {failed:?}");
        assert!(checks.len() >= 20);
    }
}
