//! Account pools in the watchdog: a usage limit seen on one member (screen banner or a
//! `StopFailure` rate_limit hook) holds every member; one probe at the reset, staggered release.
use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Local, SecondsFormat, TimeDelta, TimeZone, Utc};
use serde_json::json;

use super::Watchdog;
use super::heal::pane_limited;
use super::limit::probe_text;
use super::stall::Care;
use crate::config::{Agent, Config, PoolMembers};
use crate::detect;
use crate::events;
use crate::fleet::pool_hold::{self, PoolHold};
use crate::hooks::{self, HookRecord};
use crate::tmux::Fleet;

/// What a held pool does on this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolStep {
    /// Nothing due.
    Wait,
    /// The probe is due: type it into this member.
    Probe(String),
    /// The next member is due for release.
    Release(String),
}

/// The pool rule. Before a probe succeeded: probe at `until`, into the member that showed the
/// limit when it runs, else the first running member; with none running, release the first
/// member (healing starts it, and its kickoff is the probe: a banner holds the pool again).
/// After: release the members still held one at a time, in config order, each
/// `release_stagger` apart. Pure.
pub fn pool_step(hold: &PoolHold, members: &[String], running: &[String], now: f64) -> PoolStep {
    match hold.next_release {
        None if now < hold.until => PoolStep::Wait,
        None => {
            let prober = if running.contains(&hold.agent) {
                Some(hold.agent.clone())
            } else {
                members.iter().find(|m| running.contains(m)).cloned()
            };
            match (prober, members.first()) {
                (Some(p), _) => PoolStep::Probe(p),
                (None, Some(first)) => PoolStep::Release(first.clone()),
                (None, None) => PoolStep::Wait,
            }
        }
        Some(at) if now < at => PoolStep::Wait,
        Some(_) => members
            .iter()
            .find(|m| hold.holds(m))
            .map_or(PoolStep::Wait, |m| PoolStep::Release(m.clone())),
    }
}

/// When to probe after `failed` probes of this hold: a reset time the agent printed (within
/// [`detect::LIMIT_HOLD_WINDOW`]) plus `slack`; otherwise the probe ladder's step `failed`
/// (its last step repeats). The bool says the reset was read from the agent. Pure.
pub fn next_until(
    failed: u32,
    parsed: Option<DateTime<FixedOffset>>,
    now: DateTime<FixedOffset>,
    slack: Duration,
    ladder: &[Duration],
) -> (DateTime<FixedOffset>, bool) {
    let step = ladder
        .get(failed as usize)
        .or(ladder.last())
        .copied()
        .unwrap_or(Duration::from_secs(15 * 60));
    let delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    if let Some(reset) = parsed
        && reset - now <= delta(detect::LIMIT_HOLD_WINDOW)
    {
        let at = reset.checked_add_signed(delta(slack)).unwrap_or(reset);
        return (at.max(now), true);
    }
    (now.checked_add_signed(delta(step)).unwrap_or(now), false)
}

/// True when the last record of an agent's hooks is a rate-limit `StopFailure` newer than
/// `after` (Unix seconds): the agent has done nothing since its turn failed on the limit. Pure.
pub fn hook_limited(records: &[HookRecord], after: f64) -> bool {
    records
        .last()
        .is_some_and(|r| hooks::is_rate_limit(r) && r.epoch().is_some_and(|t| t as f64 > after))
}

/// `<state_dir>/pool-<name>.released`: when the pool's last hold ended (Unix seconds), so a
/// hook record from before it never holds the pool again.
fn released_file(cfg: &Config, pool: &str) -> std::path::PathBuf {
    cfg.state_dir.join(format!("pool-{pool}.released"))
}

fn last_release(cfg: &Config, pool: &str) -> f64 {
    std::fs::read_to_string(released_file(cfg, pool))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0.0)
}

fn unix(t: DateTime<FixedOffset>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn now_unix() -> f64 {
    Utc::now().timestamp_millis() as f64 / 1000.0
}

/// Unix seconds as local RFC 3339 (as `limit_hit`'s `until`).
pub fn rfc3339(secs: f64) -> String {
    Utc.timestamp_millis_opt((secs * 1000.0) as i64)
        .single()
        .map(|t| {
            t.with_timezone(&Local)
                .to_rfc3339_opts(SecondsFormat::Secs, false)
        })
        .unwrap_or_default()
}

impl Watchdog {
    /// The pool of `agent` that holds it now, if any (the outbox keeps its pings queued).
    pub(super) fn pool_holding(&self, agent: &str) -> Option<PoolHold> {
        pool_hold::holding(&self.cfg, agent)
    }

    /// The care pass's pool check of one running agent: `None` when it is in no pool (the
    /// per-agent limit check applies), else whether it is held. A limit seen on a member that
    /// is not held (no hold, or already released) holds the whole pool again.
    pub(super) fn pool_check(
        &mut self,
        pools: &BTreeMap<String, PoolMembers>,
        agent: &Agent,
        pane: &str,
    ) -> Option<bool> {
        let pm = pools.values().find(|p| p.members.contains(&agent.name))?;
        let hold = pool_hold::load(&self.cfg, &pm.pool.name);
        if hold.as_ref().is_some_and(|h| h.holds(&agent.name)) {
            return Some(true);
        }
        let typed = self.typed_texts(agent);
        let source = if pane_limited(&self.cfg, agent, pane, &typed) {
            "screen"
        } else if hook_limited(
            &hooks::read_records(&self.cfg.log_dir, &agent.name),
            // A record from before this hold (or the last one) began was handled already.
            hold.as_ref()
                .map_or(0.0, |h| h.since)
                .max(last_release(&self.cfg, &pm.pool.name)),
        ) {
            "hook"
        } else {
            return Some(false);
        };
        let shown = (source == "screen").then_some(pane);
        self.hold_pool(pm, agent, source, shown, 0);
        Some(true)
    }

    /// Start (or restart, with a fresh reset) the hold of `pm` because `agent` is limited.
    fn hold_pool(
        &mut self,
        pm: &PoolMembers,
        agent: &Agent,
        source: &str,
        pane: Option<&str>,
        failed: u32,
    ) {
        let now = Local::now().fixed_offset();
        let typed = self.typed_texts(agent);
        let parsed = pane.and_then(|p| {
            let plain = detect::strip_ansi(p);
            detect::parse_reset(detect::after_echo(&plain, &typed), now)
        });
        let slack = pm
            .pool
            .reset_slack
            .unwrap_or(self.cfg.watchdog.limit_reset_slack);
        let (until, known) = next_until(failed, parsed, now, slack, &pm.pool.probe_ladder);
        let since = pool_hold::load(&self.cfg, &pm.pool.name)
            .filter(|h| h.next_release.is_none())
            .map_or(unix(now), |h| h.since);
        let hold = PoolHold {
            pool: pm.pool.name.clone(),
            until: unix(until),
            since,
            source: source.to_string(),
            agent: agent.name.clone(),
            reset_known: known,
            probes: failed,
            released: Vec::new(),
            next_release: None,
        };
        pool_hold::save(&self.cfg, &hold);
        let until_text = until.to_rfc3339_opts(SecondsFormat::Secs, false);
        tracing::warn!(
            pool = %pm.pool.name, key = pm.key.as_deref().unwrap_or("-"), agent = %agent.name,
            source, until = %until_text, "account pool held: no pings, no stall reboots"
        );
        self.event(
            events::POOL_HELD,
            json!({
                "pool": pm.pool.name, "until": until_text, "source": source, "agent": agent.name,
                "members": pm.members, "reset_parsed": known, "key": pm.key,
            }),
        );
        if source != "probe" {
            self.event(
                events::LIMIT_HIT,
                json!({
                    "agent": agent.name, "session": agent.session, "until": until_text,
                    "reset_parsed": known, "pool": pm.pool.name,
                }),
            );
        }
    }

    /// After the care pass: every held pool probes or releases when due, and every member
    /// still held (running or not) is left alone by healing, stall checks and wakes.
    pub(super) fn pool_tick(
        &mut self,
        fleet: &Fleet,
        pools: &BTreeMap<String, PoolMembers>,
        care: &mut Care,
    ) {
        for pm in pools.values() {
            let Some(hold) = pool_hold::load(&self.cfg, &pm.pool.name) else {
                continue;
            };
            let running: Vec<String> = pm
                .members
                .iter()
                .filter(|m| {
                    self.cfg
                        .agent(m)
                        .and_then(|a| fleet.get(&a.session))
                        .is_some_and(|p| !p.dead)
                })
                .cloned()
                .collect();
            match pool_step(&hold, &pm.members, &running, now_unix()) {
                PoolStep::Wait => {}
                PoolStep::Probe(name) => {
                    if let Some(agent) = self.cfg.agent(&name).cloned() {
                        self.probe_pool(pm, hold, &agent);
                    }
                }
                PoolStep::Release(name) => {
                    let how = if hold.next_release.is_some() {
                        "stagger"
                    } else {
                        "none_running"
                    };
                    self.release(pm, hold, &name, how);
                }
            }
            if let Some(hold) = pool_hold::load(&self.cfg, &pm.pool.name) {
                for m in pm.members.iter().filter(|m| hold.holds(m)) {
                    care.skip.insert(m.clone());
                    care.held.insert(m.clone());
                    if let Some(a) = self.cfg.agent(m) {
                        self.idle_since.remove(&a.session);
                    }
                }
            }
        }
    }

    /// Type the probe into `agent`; its screen decides: limit gone, release it (the others
    /// follow staggered); limit still shown, hold again with the fresh reset.
    fn probe_pool(&mut self, pm: &PoolMembers, hold: PoolHold, agent: &Agent) {
        if !self.screen_takes_input(agent, true) {
            tracing::debug!(pool = %pm.pool.name, agent = %agent.name, "pool probe due, but the screen takes no input");
            return;
        }
        let probe = hold.probes + 1;
        let typed = self.typed_texts(agent);
        let delivered = self.ping_agent(&agent.name, probe_text(agent.kind));
        tracing::info!(pool = %pm.pool.name, agent = %agent.name, probe, delivered, "pool probe");
        self.event(
            events::POOL_PROBE,
            json!({ "pool": pm.pool.name, "agent": agent.name, "probe": probe, "delivered": delivered }),
        );
        self.event(
            events::PING,
            json!({
                "agent": agent.name, "reason": "limit_probe", "probe": probe,
                "delivered": delivered, "pool": pm.pool.name,
            }),
        );
        let after = self.watch_probe(agent, &typed);
        if delivered && !pane_limited(&self.cfg, agent, &after, &typed) {
            let mut hold = hold;
            hold.probes = probe;
            self.event(
                events::LIMIT_LIFTED,
                json!({
                    "agent": agent.name, "session": agent.session, "how": "probe",
                    "held_until": rfc3339(hold.until), "pool": pm.pool.name,
                }),
            );
            self.release(pm, hold, &agent.name, "probe");
            return;
        }
        self.hold_pool(pm, agent, "probe", Some(&after), probe);
    }

    /// Release one member; the last release ends the hold.
    fn release(&mut self, pm: &PoolMembers, mut hold: PoolHold, name: &str, how: &str) {
        let now = now_unix();
        hold.released.push(name.to_string());
        hold.next_release = Some(now + pm.pool.release_stagger.as_secs_f64());
        let remaining = pm.members.iter().filter(|m| hold.holds(m)).count();
        let held_secs = (now - hold.since).max(0.0).round() as u64;
        tracing::info!(pool = %pm.pool.name, agent = %name, how, remaining, "pool member released");
        self.event(
            events::POOL_RELEASED,
            json!({
                "pool": pm.pool.name, "agent": name, "how": how, "held_secs": held_secs,
                "remaining": remaining,
            }),
        );
        if remaining == 0 {
            pool_hold::clear(&self.cfg, &pm.pool.name);
            let marker = released_file(&self.cfg, &pm.pool.name);
            if let Err(e) = crate::state::write_atomic(&marker, format!("{now}\n").as_bytes()) {
                tracing::warn!("cannot write {}: {e}", marker.display());
            }
        } else {
            pool_hold::save(&self.cfg, &hold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(until: f64) -> PoolHold {
        PoolHold {
            pool: "p".into(),
            until,
            since: 0.0,
            source: "screen".into(),
            agent: "b".into(),
            reset_known: true,
            probes: 0,
            released: vec![],
            next_release: None,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_held_pool_waits_then_probes_the_member_that_showed_the_limit() {
        let members = names(&["a", "b", "c"]);
        let all = members.clone();
        assert_eq!(
            pool_step(&hold(100.0), &members, &all, 99.0),
            PoolStep::Wait
        );
        assert_eq!(
            pool_step(&hold(100.0), &members, &all, 100.0),
            PoolStep::Probe("b".into())
        );
        // The limited member is gone: the first running one probes; none running: the first
        // is released, to be started (its kickoff probes).
        assert_eq!(
            pool_step(&hold(100.0), &members, &names(&["c"]), 100.0),
            PoolStep::Probe("c".into())
        );
        assert_eq!(
            pool_step(&hold(100.0), &members, &[], 100.0),
            PoolStep::Release("a".into())
        );
        assert_eq!(pool_step(&hold(100.0), &members, &[], 99.0), PoolStep::Wait);
    }

    #[test]
    fn after_a_probe_members_are_released_one_at_a_time() {
        let members = names(&["a", "b", "c"]);
        let mut h = hold(100.0);
        h.released = names(&["b"]);
        h.next_release = Some(110.0);
        assert_eq!(pool_step(&h, &members, &members, 109.0), PoolStep::Wait);
        assert_eq!(
            pool_step(&h, &members, &members, 110.0),
            PoolStep::Release("a".into())
        );
        h.released.push("a".into());
        h.next_release = Some(120.0);
        assert_eq!(
            pool_step(&h, &members, &[], 121.0),
            PoolStep::Release("c".into()),
            "a member that is not running is released too (its pings wait for its start)"
        );
    }

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn the_next_probe_follows_the_reset_else_climbs_the_ladder() {
        let now = t("2026-06-15T13:00:00+00:00");
        let slack = Duration::from_secs(45);
        let ladder = [
            Duration::from_secs(900),
            Duration::from_secs(1800),
            Duration::from_secs(3600),
        ];
        let reset = Some(t("2026-06-15T14:00:00+00:00"));
        assert_eq!(
            next_until(0, reset, now, slack, &ladder),
            (t("2026-06-15T14:00:45+00:00"), true)
        );
        assert_eq!(
            next_until(0, None, now, slack, &ladder),
            (t("2026-06-15T13:15:00+00:00"), false)
        );
        assert_eq!(
            next_until(1, None, now, slack, &ladder).0,
            t("2026-06-15T13:30:00+00:00")
        );
        assert_eq!(
            next_until(7, None, now, slack, &ladder).0,
            t("2026-06-15T14:00:00+00:00"),
            "the last step repeats"
        );
        // A reset days away is not trusted; one already past probes now.
        let far = Some(t("2026-06-20T14:00:00+00:00"));
        assert!(!next_until(0, far, now, slack, &ladder).1);
        let past = Some(t("2026-06-15T12:00:00+00:00"));
        assert_eq!(next_until(0, past, now, slack, &ladder).0, now);
    }

    #[test]
    fn only_a_last_rate_limit_stop_failure_after_the_last_release_holds() {
        let rec = |event: &str, error: Option<&str>, secs: i64| {
            let input = json!({ "error": error });
            hooks::record_from_input(event, &input, Utc.timestamp_opt(secs, 0).unwrap())
        };
        let limited = vec![
            rec("UserPromptSubmit", None, 10),
            rec("StopFailure", Some("rate_limit"), 20),
        ];
        assert!(hook_limited(&limited, 0.0));
        assert!(
            !hook_limited(&limited, 20.0),
            "seen before the last release"
        );
        let resumed = vec![limited[1].clone(), rec("UserPromptSubmit", None, 30)];
        assert!(!hook_limited(&resumed, 0.0));
        assert!(!hook_limited(
            &[rec("StopFailure", Some("server_error"), 20)],
            0.0
        ));
        assert!(!hook_limited(&[], 0.0));
    }
}
