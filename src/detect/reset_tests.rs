//! Unit tests for the reset-time parser and the hold rule, all on a fixed clock.
//! The fixed `now` is 2026-06-15 13:00 at UTC-07:00 (a Monday, PDT).

use super::*;

fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-06-15T13:00:00-07:00").unwrap()
}

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn parsed(pane: &str) -> DateTime<FixedOffset> {
    parse_reset(pane, now()).unwrap_or_else(|| panic!("no reset parsed from {pane:?}"))
}

#[test]
fn bare_pm_hour_later_today_is_today() {
    assert_eq!(
        parsed("limit reached · resets 3pm"),
        at("2026-06-15T15:00:00-07:00")
    );
}

#[test]
fn at_with_minutes_and_spaced_pm() {
    assert_eq!(
        parsed("resets at 10:30 pm"),
        at("2026-06-15T22:30:00-07:00")
    );
}

#[test]
fn twenty_four_hour_clock() {
    assert_eq!(parsed("resets 14:00"), at("2026-06-15T14:00:00-07:00"));
}

#[test]
fn time_already_past_today_means_tomorrow() {
    assert_eq!(
        parsed("5-hour limit reached ∙ resets 5am"),
        at("2026-06-16T05:00:00-07:00")
    );
    assert_eq!(parsed("resets 1pm"), at("2026-06-16T13:00:00-07:00"));
}

#[test]
fn twelve_am_is_midnight_and_twelve_pm_is_noon() {
    assert_eq!(parsed("resets 12am"), at("2026-06-16T00:00:00-07:00"));
    assert_eq!(parsed("resets 12pm"), at("2026-06-16T12:00:00-07:00"));
}

#[test]
fn named_zone_is_converted_to_the_local_offset() {
    // 12:50am in Los Angeles (PDT, -07:00) seen from a UTC+02:00 clock at 10:00 local.
    let now = at("2026-06-15T10:00:00+02:00");
    let pane = "You've hit your session limit · resets 12:50am (America/Los_Angeles)";
    let got = parse_reset(pane, now).unwrap();
    assert_eq!(got, at("2026-06-16T07:50:00Z"));
    assert_eq!(got.offset(), now.offset());
}

#[test]
fn named_zone_time_past_in_that_zone_rolls_to_its_tomorrow() {
    // 08:00 in Berlin; "resets 7am (Europe/Berlin)" has passed there.
    let now = at("2026-06-15T06:00:00Z");
    let got = parse_reset("resets 7am (Europe/Berlin)", now).unwrap();
    assert_eq!(got, at("2026-06-16T05:00:00Z"));
}

#[test]
fn unknown_zone_falls_back_to_local() {
    assert_eq!(
        parsed("resets 3pm (Mars/Olympus)"),
        at("2026-06-15T15:00:00-07:00")
    );
}

#[test]
fn older_claude_will_reset_at_with_zone() {
    let pane = "Claude usage limit reached. Your limit will reset at 3pm (Europe/Berlin).";
    assert_eq!(parsed(pane), at("2026-06-16T15:00:00+02:00"));
}

#[test]
fn try_again_at_a_bare_time() {
    assert_eq!(
        parsed("Try again at 10:57 PM."),
        at("2026-06-15T22:57:00-07:00")
    );
}

#[test]
fn month_day_and_time() {
    assert_eq!(
        parsed("You've hit your weekly limit · resets Jun 16, 10pm"),
        at("2026-06-16T22:00:00-07:00")
    );
}

#[test]
fn month_day_with_zone() {
    assert_eq!(
        parsed("resets Jun 16, 10pm (Europe/London)"),
        at("2026-06-16T22:00:00+01:00")
    );
}

#[test]
fn month_day_long_ago_this_year_means_next_year() {
    assert_eq!(parsed("resets Jan 2, 9am"), at("2027-01-02T09:00:00-07:00"));
}

#[test]
fn relative_hours_and_minutes() {
    assert_eq!(
        parsed("Limit reached, resets in 3h 47m"),
        at("2026-06-15T16:47:00-07:00")
    );
    assert_eq!(parsed("resets in 2h 13m"), at("2026-06-15T15:13:00-07:00"));
}

#[test]
fn codex_relative_days_hours_minutes() {
    let pane = "■ You've hit your usage limit. Upgrade to Pro, or try again in 2 days 17 hours 14 minutes.";
    assert_eq!(parsed(pane), at("2026-06-18T06:14:00-07:00"));
}

#[test]
fn codex_absolute_date_with_ordinal_and_year() {
    let pane = "You've hit your usage limit. try again at Oct 10th, 2026 10:57 PM.";
    assert_eq!(parsed(pane), at("2026-10-10T22:57:00-07:00"));
}

#[test]
fn old_claude_epoch_form() {
    let pane = "Claude AI usage limit reached|1781560800";
    assert_eq!(parsed(pane), at("2026-06-15T22:00:00Z"));
    assert_eq!(parsed(pane).offset(), now().offset());
}

#[test]
fn the_last_phrase_on_screen_wins() {
    let pane = "resets 3pm\n...\nresets in 2h 13m\nlater: resets 11pm\n";
    assert_eq!(parsed(pane), at("2026-06-15T23:00:00-07:00"));
    let pane = "resets 11pm\nresets in 1h";
    assert_eq!(parsed(pane), at("2026-06-15T14:00:00-07:00"));
}

#[test]
fn non_reset_text_parses_to_nothing() {
    for pane in [
        "",
        "the counter resets every loop",
        "resets 3 days from now",
        "resets 25:00",
        "resets 13pm",
        "nothing to see",
    ] {
        assert_eq!(parse_reset(pane, now()), None, "{pane:?}");
    }
}

#[test]
fn hold_until_trusts_a_reset_within_six_hours() {
    let slack = Duration::from_secs(45);
    let fallback = Duration::from_secs(300);
    let reset = at("2026-06-15T15:00:00-07:00");
    assert_eq!(
        hold_until(Some(reset), now(), slack, fallback),
        (at("2026-06-15T15:00:45-07:00"), true)
    );
    let edge = now() + TimeDelta::hours(6);
    assert!(hold_until(Some(edge), now(), slack, fallback).1);
}

#[test]
fn hold_until_falls_back_when_far_or_unparsed() {
    let slack = Duration::from_secs(45);
    let fallback = Duration::from_secs(300);
    let far = now() + TimeDelta::hours(6) + TimeDelta::seconds(1);
    let flat = (at("2026-06-15T13:05:00-07:00"), false);
    assert_eq!(hold_until(Some(far), now(), slack, fallback), flat);
    assert_eq!(hold_until(None, now(), slack, fallback), flat);
}

#[test]
fn hold_until_a_past_reset_probes_right_after_it() {
    let past = now() - TimeDelta::minutes(10);
    let (until, parsed) = hold_until(Some(past), now(), Duration::from_secs(45), Duration::ZERO);
    assert!(parsed);
    assert_eq!(until, past + TimeDelta::seconds(45));
}
