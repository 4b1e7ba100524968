//! Faults the simulated agent plays on demand (`--fault`, `ORCH_SIM_FAULT`, kickoff directives),
//! and the usage-limit banner with its reset time.
use chrono::{DateTime, Duration, TimeZone, Timelike};

/// One fault the sim can be asked to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Hit a usage limit before the first step.
    Limit,
    /// Hit a usage limit right after the first step (for a builder: after its claim).
    LimitAfterClaim,
    /// Exit 1 after the first step.
    Crash,
    /// Exit 1 right after the banner.
    CrashAtStart,
    /// After the first step: read nothing and print nothing, forever.
    Hang,
    /// After the first step: print a fatal error and stay idle.
    Fatal,
    /// After the first step: print `WAITING-UNTIL: <iso>` as the last line and stay idle.
    WaitingUntil(String),
    /// Exit 0 after the first step.
    Exit0,
    /// Before the kickoff: Claude's bypass-permissions warning (`❯ No, exit` / `Yes, I accept`).
    /// A line with the Down key accepts; any other line (a ping + Enter) picks "No, exit".
    BypassDialog,
    /// Refuse to start as Claude does as root: print its refusal line, exit 1.
    RefuseRoot,
    /// The kickoff is echoed in full, then the turn ends on Claude's network error; every later
    /// line gets the same error.
    NetworkError,
    /// Answer a handoff request without writing the note.
    NoHandoff,
    /// Answer a handoff request properly, then leave an uncommitted file.
    DirtyHandoff,
    /// Answer a handoff request properly, then compact (PreCompact ... SessionStart compact).
    CompactInHandoff,
    /// After the first step: compact the conversation (a compaction orch did not ask for).
    Compact,
    /// The next N submits of a ping (`swallow-enter`: 1) are swallowed: its text stays in the
    /// input box, and the submit after them sends it (with anything typed after it).
    SwallowEnter(u32),
    /// The next ping is absorbed mid-turn, as Claude takes a prompt typed while it works: no
    /// UserPromptSubmit hook, a `queue-operation` row in the transcript; then worked on.
    AbsorbPrompt,
    /// The next ping is echoed twice on screen.
    EchoTwice,
}

impl Fault {
    /// Faults played on what the sim is typed, not after its first step.
    pub fn on_input(&self) -> bool {
        matches!(
            self,
            Fault::SwallowEnter(_) | Fault::AbsorbPrompt | Fault::EchoTwice
        )
    }
}

impl Fault {
    /// Parse one fault spec such as `limit`, `crash` or `waiting-until=2030-01-01T00:00:00Z`.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let spec = spec.trim();
        if let Some(iso) = spec.strip_prefix("waiting-until=") {
            let iso = iso.trim();
            if iso.is_empty() {
                return Err(
                    "fault `waiting-until=` needs a time, e.g. waiting-until=2030-01-01T09:00:00Z"
                        .into(),
                );
            }
            return Ok(Fault::WaitingUntil(iso.to_string()));
        }
        if let Some(n) = spec.strip_prefix("swallow-enter=") {
            return match n.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok(Fault::SwallowEnter(n)),
                _ => Err(format!(
                    "fault `swallow-enter={n}` needs a count of 1 or more, e.g. swallow-enter=3"
                )),
            };
        }
        Ok(match spec {
            "limit" => Fault::Limit,
            "limit-after-claim" => Fault::LimitAfterClaim,
            "crash" => Fault::Crash,
            "crash-at-start" => Fault::CrashAtStart,
            "hang" => Fault::Hang,
            "fatal" => Fault::Fatal,
            "exit0" => Fault::Exit0,
            "bypass-dialog" => Fault::BypassDialog,
            "refuse-root" => Fault::RefuseRoot,
            "network-error" => Fault::NetworkError,
            "no-handoff" => Fault::NoHandoff,
            "dirty-handoff" => Fault::DirtyHandoff,
            "compact-in-handoff" => Fault::CompactInHandoff,
            "compact" => Fault::Compact,
            "swallow-enter" => Fault::SwallowEnter(1),
            "absorb-prompt" => Fault::AbsorbPrompt,
            "echo-twice" => Fault::EchoTwice,
            other => {
                return Err(format!(
                    "unknown fault `{other}` (known: limit, limit-after-claim, crash, crash-at-start, \
                     hang, fatal, waiting-until=<ISO>, exit0, bypass-dialog, refuse-root, network-error, \
                     no-handoff, dirty-handoff, compact-in-handoff, compact, \
                     swallow-enter[=N], absorb-prompt, echo-twice)"
                ));
            }
        })
    }

    /// Parse a comma-separated list of specs; empty items are skipped.
    pub fn parse_list(list: &str) -> Result<Vec<Fault>, String> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Fault::parse)
            .collect()
    }
}

/// Claude Code 2.1's bypass-permissions warning, as the `bypass-dialog` fault draws it.
pub const BYPASS_DIALOG: &str = "\
────────────────────────────────────────
  WARNING: Claude Code running in Bypass Permissions mode

  In Bypass Permissions mode, Claude Code will not ask for your approval before running
  potentially dangerous commands.

  ❯ No, exit
    Yes, I accept

  Enter to confirm · Esc to cancel";

/// Claude Code's refusal to run as root with --dangerously-skip-permissions.
pub const ROOT_REFUSAL: &str =
    "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons";

/// Claude Code's end of a turn after its network retries.
pub const API_ERROR: &str =
    "● API Error: Can't reach the API server — check your internet or DNS (ENOTFOUND)";

/// When a limit hit at `now` lifts: `now + secs`, rounded up to the next whole minute.
pub fn limit_reset_time<Tz: TimeZone>(now: DateTime<Tz>, secs: u64) -> DateTime<Tz> {
    // Capped at a week: a simulated limit never needs more.
    let secs = i64::try_from(secs.min(7 * 24 * 3600)).unwrap_or(0);
    let t = now + Duration::seconds(secs);
    if t.second() == 0 && t.nanosecond() == 0 {
        return t;
    }
    let into_minute =
        Duration::seconds(i64::from(t.second())) + Duration::nanoseconds(i64::from(t.nanosecond()));
    t - into_minute + Duration::minutes(1)
}

/// The banner a limited agent shows: `Limit reached · resets 3:07pm`, in the time zone of `until`.
pub fn limit_banner<Tz: TimeZone>(until: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!("Limit reached · resets {}", until.format("%-I:%M%P"))
}

/// The environment variable naming the shared-account limit file: every sim given the same
/// file plays one account. While the file says `until=EPOCH` (Unix seconds; a bare number
/// works too) and that time is ahead, a sim asked to work shows [`account_banner`] instead.
pub const ACCOUNT_LIMIT_ENV: &str = "ORCH_SIM_ACCOUNT_LIMIT_FILE";

/// The end of the shared-account limit in `text` (`until=EPOCH` or `EPOCH`), if it parses.
pub fn parse_account_limit(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = t.strip_prefix("until=").unwrap_or(t).trim();
    t.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0)
        .map(|f| f.ceil() as i64)
}

/// The shared-account limit in force now: its end when the file named by
/// [`ACCOUNT_LIMIT_ENV`] says a time still ahead of `now` (Unix seconds).
pub fn account_limit_until(now: i64) -> Option<i64> {
    let path = std::env::var_os(ACCOUNT_LIMIT_ENV)?;
    let until = parse_account_limit(&std::fs::read_to_string(path).ok()?)?;
    (until > now).then_some(until)
}

/// The banner of a shared-account limit: Claude's older form with the reset in Unix seconds
/// (second-exact, so a test's reset can be seconds away).
pub fn account_banner(until: i64) -> String {
    format!("Claude AI usage limit reached|{until}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn parses_every_known_fault() {
        let all = Fault::parse_list(
            "limit, limit-after-claim,crash,crash-at-start,hang,fatal,exit0,waiting-until=2030-01-01T09:00:00Z,bypass-dialog,refuse-root,network-error,no-handoff,dirty-handoff,compact-in-handoff,compact,swallow-enter,swallow-enter=3,absorb-prompt,echo-twice",
        )
        .unwrap();
        assert_eq!(
            all,
            vec![
                Fault::Limit,
                Fault::LimitAfterClaim,
                Fault::Crash,
                Fault::CrashAtStart,
                Fault::Hang,
                Fault::Fatal,
                Fault::Exit0,
                Fault::WaitingUntil("2030-01-01T09:00:00Z".into()),
                Fault::BypassDialog,
                Fault::RefuseRoot,
                Fault::NetworkError,
                Fault::NoHandoff,
                Fault::DirtyHandoff,
                Fault::CompactInHandoff,
                Fault::Compact,
                Fault::SwallowEnter(1),
                Fault::SwallowEnter(3),
                Fault::AbsorbPrompt,
                Fault::EchoTwice,
            ]
        );
    }

    #[test]
    fn unknown_or_empty_fault_is_refused() {
        assert!(Fault::parse("explode").unwrap_err().contains("explode"));
        assert!(Fault::parse("waiting-until=").is_err());
        assert!(Fault::parse("swallow-enter=0").is_err());
        assert_eq!(Fault::parse_list(" , ").unwrap(), vec![]);
    }

    #[test]
    fn reset_time_rounds_up_to_the_next_minute() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 14, 5, 20).unwrap();
        let until = limit_reset_time(now, 60);
        assert_eq!(until, Utc.with_ymd_and_hms(2030, 1, 1, 14, 7, 0).unwrap());
        let exact = Utc.with_ymd_and_hms(2030, 1, 1, 14, 5, 0).unwrap();
        assert_eq!(
            limit_reset_time(exact, 60),
            Utc.with_ymd_and_hms(2030, 1, 1, 14, 6, 0).unwrap()
        );
    }

    #[test]
    fn the_account_limit_file_says_until_when() {
        assert_eq!(
            parse_account_limit("until=1750000000\n"),
            Some(1_750_000_000)
        );
        assert_eq!(parse_account_limit(" 1750000000.2 "), Some(1_750_000_001));
        assert_eq!(parse_account_limit("soon"), None);
        assert_eq!(parse_account_limit("until=-5"), None);
        assert_eq!(
            account_banner(1_750_000_000),
            "Claude AI usage limit reached|1750000000"
        );
    }

    #[test]
    fn banner_names_the_reset_time_in_12_hour_form() {
        let pm = Utc.with_ymd_and_hms(2030, 1, 1, 15, 7, 0).unwrap();
        assert_eq!(limit_banner(&pm), "Limit reached · resets 3:07pm");
        let am = Utc.with_ymd_and_hms(2030, 1, 1, 0, 30, 0).unwrap();
        assert_eq!(limit_banner(&am), "Limit reached · resets 12:30am");
    }
}
