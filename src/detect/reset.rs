//! Usage-limit reset times read from vendor banners, and the hold rule built on them.
//! Pure: the clock (`now`) is always passed in; the local zone is `now`'s offset.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone,
};
use chrono_tz::Tz;
use regex::{Captures, Regex};

/// A parsed reset this close to `now` (or already past) is trusted; farther ones are not.
pub const LIMIT_HOLD_WINDOW: Duration = Duration::from_secs(6 * 3600);

fn re(p: &str) -> Regex {
    Regex::new(p).unwrap_or_else(|e| unreachable!("static reset regex {p:?}: {e}"))
}

/// "resets 3pm", "resets at 10:30 pm", "resets 14:00", "reset at 3pm",
/// "resets 12:50am (America/Los_Angeles)", "try again at 10:57 PM".
static TIME_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:resets?|try again)\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap])?(?:\.?m\b\.?)?(?:\s*\(([A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*)\))?",
    )
});

/// "resets Jun 16, 10pm", "try again at Oct 10th, 2026 10:57 PM", "resets on Jun 16 at 5:00".
static DATE_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:resets?|try again)\s+(?:at\s+|on\s+)?(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?(?:\s+(\d{4}),?)?(?:\s+(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*([ap])?(?:\.?m\b\.?)?)?(?:\s*\(([A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*)\))?",
    )
});

/// "resets in 3h 47m", "try again in 2 days 17 hours 14 minutes".
static REL_RE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:resets?|try again)\s+in\s+((?:\d+\s*(?:days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)\b[\s,]*(?:and\s+)?)+)",
    )
});

static REL_PART_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)(\d+)\s*([a-z]+)"));

/// The old Claude form: "Claude AI usage limit reached|1750000000".
static EPOCH_RE: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)limit reached\|(\d{9,11})\b"));

/// The reset time named by the LAST reset phrase on `pane`, in `now`'s offset.
///
/// A bare time of day already past today means tomorrow (in the banner's named zone when it
/// gives one, else in `now`'s zone). A month/day without a year is this year, unless that is
/// more than a month ago (then next year). Returns `None` when no phrase parses.
pub fn parse_reset(pane: &str, now: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    let mut best: Option<(usize, DateTime<FixedOffset>)> = None;
    let mut consider = |end: usize, value: Option<DateTime<FixedOffset>>| {
        if let Some(v) = value
            && best.is_none_or(|(e, _)| end >= e)
        {
            best = Some((end, v));
        }
    };
    for c in EPOCH_RE.captures_iter(pane) {
        let end = c.get(0).map_or(0, |m| m.end());
        let at = c[1]
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0));
        consider(end, at.map(|t| t.with_timezone(now.offset())));
    }
    for c in REL_RE.captures_iter(pane) {
        let end = c.get(0).map_or(0, |m| m.end());
        consider(end, relative(&c[1]).and_then(|d| now.checked_add_signed(d)));
    }
    for c in TIME_RE.captures_iter(pane) {
        let Some(m) = c.get(0) else { continue };
        // "resets 3h" / "resets 14 days": a number followed by a unit is not a time of day.
        if pane[m.end()..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        consider(m.end(), time_of_day(&c, now));
    }
    for c in DATE_RE.captures_iter(pane) {
        let end = c.get(0).map_or(0, |m| m.end());
        consider(end, month_day(&c, now));
    }
    best.map(|(_, v)| v.with_timezone(now.offset()))
}

/// Sum of "2 days 17 hours 14 minutes" / "3h 47m".
fn relative(text: &str) -> Option<TimeDelta> {
    let mut total = TimeDelta::zero();
    for p in REL_PART_RE.captures_iter(text) {
        let n: i64 = p[1].parse().ok()?;
        let unit = p[2].to_ascii_lowercase();
        let part = match unit.chars().next()? {
            'd' => TimeDelta::try_days(n)?,
            'h' => TimeDelta::try_hours(n)?,
            'm' => TimeDelta::try_minutes(n)?,
            's' => TimeDelta::try_seconds(n)?,
            _ => return None,
        };
        total = total.checked_add(&part)?;
    }
    Some(total)
}

/// 24-hour clock from an hour, optional minutes and an optional "a"/"p".
fn clock(hour: &str, minute: Option<&str>, ampm: Option<&str>) -> Option<NaiveTime> {
    let mut h: u32 = hour.parse().ok()?;
    let m: u32 = minute.map_or(Some(0), |m| m.parse().ok())?;
    match ampm.map(str::to_ascii_lowercase).as_deref() {
        Some("p") if (1..=11).contains(&h) => h += 12,
        Some("a") if h == 12 => h = 0,
        Some(_) if !(1..=12).contains(&h) => return None,
        _ => {}
    }
    NaiveTime::from_hms_opt(h, m, 0)
}

/// The zone a banner names in parentheses, if it is a known IANA zone.
fn named_zone(c: &Captures<'_>, group: usize) -> Option<Tz> {
    c.get(group).and_then(|z| z.as_str().parse::<Tz>().ok())
}

fn time_of_day(c: &Captures<'_>, now: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    let t = clock(
        &c[1],
        c.get(2).map(|m| m.as_str()),
        c.get(3).map(|m| m.as_str()),
    )?;
    match named_zone(c, 4) {
        Some(tz) => next_time_in(&tz, t, now),
        None => next_time_in(now.offset(), t, now),
    }
}

/// The first `t` (wall clock in `tz`) after `now`: today, or tomorrow if already past.
fn next_time_in<Z: TimeZone>(
    tz: &Z,
    t: NaiveTime,
    now: DateTime<FixedOffset>,
) -> Option<DateTime<FixedOffset>> {
    let today = now.with_timezone(tz).date_naive();
    let first = resolve(tz, today.and_time(t))?;
    if first > now {
        return Some(first);
    }
    resolve(tz, today.succ_opt()?.and_time(t))
}

/// A wall-clock time in `tz` as a fixed-offset instant (a DST gap moves it one hour on).
fn resolve<Z: TimeZone>(tz: &Z, local: NaiveDateTime) -> Option<DateTime<FixedOffset>> {
    let at = tz.from_local_datetime(&local).earliest().or_else(|| {
        tz.from_local_datetime(&(local + TimeDelta::hours(1)))
            .earliest()
    })?;
    Some(at.fixed_offset())
}

fn month_day(c: &Captures<'_>, now: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month_name = c[1].to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let day: u32 = c[2].parse().ok()?;
    let t = match c.get(4) {
        Some(h) => clock(
            h.as_str(),
            c.get(5).map(|m| m.as_str()),
            c.get(6).map(|m| m.as_str()),
        )?,
        None => NaiveTime::MIN,
    };
    let tz = named_zone(c, 7);
    let at = |year: i32| -> Option<DateTime<FixedOffset>> {
        let local = NaiveDate::from_ymd_opt(year, month, day)?.and_time(t);
        match &tz {
            Some(z) => resolve(z, local),
            None => resolve(now.offset(), local),
        }
    };
    if let Some(y) = c.get(3) {
        return at(y.as_str().parse().ok()?);
    }
    let this_year = at(now.year())?;
    if now - this_year > TimeDelta::days(31) {
        at(now.year() + 1)
    } else {
        Some(this_year)
    }
}

/// How long to hold a limited agent: until `reset + slack` when the banner's reset is within
/// [`LIMIT_HOLD_WINDOW`] of `now` (or already past), else `now + fallback` (an unparsable or
/// implausibly far reset gets a flat probe). The flag says which rule applied.
pub fn hold_until(
    parsed: Option<DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
    slack: Duration,
    fallback: Duration,
) -> (DateTime<FixedOffset>, bool) {
    let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    if let Some(reset) = parsed
        && reset - now <= delta(LIMIT_HOLD_WINDOW)
    {
        return (
            reset.checked_add_signed(delta(slack)).unwrap_or(reset),
            true,
        );
    }
    (
        now.checked_add_signed(delta(fallback)).unwrap_or(now),
        false,
    )
}

#[cfg(test)]
#[path = "reset_tests.rs"]
mod tests;
