//! The usage-limit hold: an agent showing a limit banner is held (never rebooted) until the
//! banner's reset time, then probed; the hold lives in `<state_dir>/limited-<session>.json`.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Local, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Watchdog;
use super::heal::{CAPTURE_ROWS, pane_limited};
use crate::config::{Agent, Config, Kind};
use crate::{detect, events, state};

/// After this many probes without a lift, a warning is logged and probing goes flat.
pub const PROBES_BEFORE_WARNING: u32 = 3;

/// How long after typing a probe the pane is watched for the limit to lift.
pub const PROBE_SETTLE: Duration = Duration::from_secs(3);

/// A held agent, as saved on disk (the reference tool's fields: `until` in Unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LimitHold {
    /// Unix seconds when the next probe is due.
    pub until: f64,
    /// Probes typed so far.
    #[serde(default)]
    pub nudges: u32,
}

/// What the limit check does on this tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitStep {
    /// Not held and not limited.
    Free,
    /// A fresh banner: start a hold.
    Enter,
    /// Held, but the pane is no longer limited: clear the hold.
    Lift,
    /// Held and the hold has not run out.
    Wait,
    /// Held and the hold ran out: type a probe.
    Probe,
}

/// The hold rule: `limited_now` is "banner shown and not working" for this tick's pane.
pub fn limit_step(hold: Option<&LimitHold>, limited_now: bool, now_unix: f64) -> LimitStep {
    match hold {
        None if limited_now => LimitStep::Enter,
        None => LimitStep::Free,
        Some(_) if !limited_now => LimitStep::Lift,
        Some(h) if now_unix < h.until => LimitStep::Wait,
        Some(_) => LimitStep::Probe,
    }
}

/// When to probe next after probe number `nudges` failed: the banner's reset (as
/// [`detect::hold_until`]) for the first probes, then flatly every `fallback`.
pub fn next_probe_at(
    nudges: u32,
    parsed: Option<DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
    slack: Duration,
    fallback: Duration,
) -> DateTime<FixedOffset> {
    if nudges >= PROBES_BEFORE_WARNING {
        return detect::hold_until(None, now, slack, fallback).0;
    }
    detect::hold_until(parsed, now, slack, fallback).0
}

/// The probe typed into a held agent once its hold ran out.
pub fn probe_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Persistent | Kind::Orchestrator => {
            "watchdog probe: the quota window may have reset. If it has, resume now: re-check \
             your status and carry on from where you stopped."
        }
        Kind::Loop | Kind::Task => {
            "watchdog probe: the quota window may have reset. If it has, resume your loop now: \
             pull the latest, re-read your phase STATUS and review files, and carry on."
        }
    }
}

pub fn hold_file(cfg: &Config, session: &str) -> PathBuf {
    cfg.state_dir.join(format!("limited-{session}.json"))
}

/// The saved hold of `session`; a corrupt file is reported and read as no hold.
pub fn load_hold(cfg: &Config, session: &str) -> Option<LimitHold> {
    match state::load_json(&hold_file(cfg, session)) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("{e}; treating {session} as not held");
            None
        }
    }
}

fn save_hold(cfg: &Config, session: &str, hold: &LimitHold) {
    let saved = std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| state::save_json(&hold_file(cfg, session), hold).map_err(|e| e.to_string()));
    if let Err(e) = saved {
        tracing::error!("cannot save the limit hold of {session}: {e}");
    }
}

pub fn clear_hold(cfg: &Config, session: &str) {
    let path = hold_file(cfg, session);
    if let Err(e) = std::fs::remove_file(&path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

fn unix(t: DateTime<FixedOffset>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn rfc3339(unix_secs: f64) -> String {
    let millis = (unix_secs * 1000.0) as i64;
    Utc.timestamp_millis_opt(millis)
        .single()
        .map(|t| {
            t.with_timezone(&Local)
                .to_rfc3339_opts(SecondsFormat::Secs, false)
        })
        .unwrap_or_default()
}

impl Watchdog {
    /// The limit check of one watched, running agent; true while it is held (the caller then
    /// leaves it alone: no stall reboot, no healing).
    pub(super) fn limit_check(&mut self, agent: &Agent, pane: &str) -> bool {
        let now = Local::now().fixed_offset();
        let hold = load_hold(&self.cfg, &agent.session);
        let typed = self.typed_texts(agent);
        let limited = pane_limited(&self.cfg, agent, pane, &typed);
        let wd = self.cfg.watchdog.clone();
        match limit_step(hold.as_ref(), limited, unix(now)) {
            LimitStep::Free => false,
            LimitStep::Wait => true,
            LimitStep::Lift => {
                self.lift(agent, "screen");
                false
            }
            LimitStep::Enter => {
                let plain = detect::strip_ansi(pane);
                let parsed = detect::parse_reset(detect::after_echo(&plain, &typed), now);
                let (until, trusted) =
                    detect::hold_until(parsed, now, wd.limit_reset_slack, wd.limit_probe_fallback);
                let hold = LimitHold {
                    until: unix(until),
                    nudges: 0,
                };
                save_hold(&self.cfg, &agent.session, &hold);
                let until_text = until.to_rfc3339_opts(SecondsFormat::Secs, false);
                tracing::warn!(agent = %agent.name, until = %until_text, trusted, "usage limit: holding, no reboots");
                self.event(
                    events::LIMIT_HIT,
                    json!({
                        "agent": agent.name, "session": agent.session, "until": until_text,
                        "reset_parsed": trusted,
                    }),
                );
                true
            }
            LimitStep::Probe if !self.screen_takes_input(agent, true) => {
                // A dialog or login screen: the probe waits for a screen that takes input.
                tracing::debug!(agent = %agent.name, "limit probe due, but the screen takes no input");
                true
            }
            LimitStep::Probe => {
                let nudges = hold.map_or(0, |h| h.nudges) + 1;
                // Typed at once (the hold watches its outcome), with a ping id; not re-sent by
                // the outbox: the hold probes again on its own ladder.
                let mut ping = crate::fleet::pings::PendingPing::new(
                    format!("limit_probe-{}", crate::fleet::records::now_ms()),
                    "limit_probe",
                    probe_text(agent.kind).to_string(),
                    json!({ "probe": nudges }),
                );
                let delivered = self.type_ping(agent, &mut ping);
                if delivered {
                    self.settle(agent, &ping, "screen", "arrived", None);
                } else {
                    self.lose(agent, &mut ping, "submit not confirmed");
                }
                tracing::info!(agent = %agent.name, probe = nudges, delivered, "limit probe");
                let after = self.watch_probe(agent, &typed);
                if !pane_limited(&self.cfg, agent, &after, &typed) {
                    self.lift(agent, "probe");
                    return true;
                }
                let now = Local::now().fixed_offset();
                let parsed = detect::parse_reset(&after, now);
                let next = next_probe_at(
                    nudges,
                    parsed,
                    now,
                    wd.limit_reset_slack,
                    wd.limit_probe_fallback,
                );
                if nudges == PROBES_BEFORE_WARNING {
                    tracing::warn!(
                        agent = %agent.name,
                        "still limited after {nudges} probes; probing every {}s, never rebooting",
                        wd.limit_probe_fallback.as_secs()
                    );
                }
                let hold = LimitHold {
                    until: unix(next),
                    nudges,
                };
                save_hold(&self.cfg, &agent.session, &hold);
                true
            }
        }
    }

    /// Watch the pane for up to [`PROBE_SETTLE`] after a probe; returns the last capture
    /// (early as soon as it no longer shows the limit).
    pub(super) fn watch_probe(&self, agent: &Agent, typed: &[String]) -> String {
        let deadline = Instant::now() + PROBE_SETTLE;
        let mut last = String::new();
        loop {
            std::thread::sleep(Duration::from_millis(250));
            match self.tmux.capture(&agent.session, CAPTURE_ROWS) {
                Ok(p) => last = p,
                Err(e) => tracing::warn!("cannot read the pane of {}: {e}", agent.name),
            }
            if !pane_limited(&self.cfg, agent, &last, typed) || Instant::now() >= deadline {
                return last;
            }
        }
    }

    fn lift(&mut self, agent: &Agent, how: &str) {
        let hold = load_hold(&self.cfg, &agent.session);
        clear_hold(&self.cfg, &agent.session);
        tracing::info!(agent = %agent.name, how, "usage limit lifted");
        self.event(
            events::LIMIT_LIFTED,
            json!({
                "agent": agent.name, "session": agent.session, "how": how,
                "held_until": hold.map(|h| rfc3339(h.until)),
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn hold_rule_enters_waits_probes_and_lifts() {
        let h = LimitHold {
            until: 100.0,
            nudges: 0,
        };
        assert_eq!(limit_step(None, false, 50.0), LimitStep::Free);
        assert_eq!(limit_step(None, true, 50.0), LimitStep::Enter);
        assert_eq!(limit_step(Some(&h), true, 99.9), LimitStep::Wait);
        assert_eq!(limit_step(Some(&h), true, 100.0), LimitStep::Probe);
        assert_eq!(limit_step(Some(&h), false, 50.0), LimitStep::Lift);
        assert_eq!(limit_step(Some(&h), false, 150.0), LimitStep::Lift);
    }

    #[test]
    fn probes_follow_the_banner_then_go_flat_after_three() {
        let now = t("2026-06-15T13:00:00-07:00");
        let reset = Some(t("2026-06-15T14:00:00-07:00"));
        let slack = Duration::from_secs(45);
        let fallback = Duration::from_secs(300);
        assert_eq!(
            next_probe_at(1, reset, now, slack, fallback),
            t("2026-06-15T14:00:45-07:00")
        );
        assert_eq!(
            next_probe_at(3, reset, now, slack, fallback),
            t("2026-06-15T13:05:00-07:00")
        );
        assert_eq!(
            next_probe_at(1, None, now, slack, fallback),
            t("2026-06-15T13:05:00-07:00")
        );
    }

    #[test]
    fn loop_and_supervisor_agents_get_distinct_probes() {
        assert_ne!(probe_text(Kind::Loop), probe_text(Kind::Persistent));
        assert_eq!(probe_text(Kind::Orchestrator), probe_text(Kind::Persistent));
        for k in [Kind::Loop, Kind::Persistent] {
            let p = probe_text(k).to_lowercase();
            assert!(p.contains("quota") && p.contains("resume"), "{p}");
        }
    }

    #[test]
    fn hold_file_reads_the_reference_format() {
        let h: LimitHold = serde_json::from_str(r#"{"until": 1750000000.5, "nudges": 2}"#).unwrap();
        assert_eq!(h.nudges, 2);
        let h: LimitHold = serde_json::from_str(r#"{"until": 1750000000}"#).unwrap();
        assert_eq!(h.nudges, 0);
        assert!(rfc3339(1_750_000_000.0).starts_with("2025-06-1"));
    }
}
