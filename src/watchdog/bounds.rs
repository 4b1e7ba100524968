//! Bounded healing: every heal of one agent (gone, mismatch, fatal, stall, refusal) is
//! recorded; the next waits a doubling backoff, and past `max_restarts` heals within
//! `restart_reset_after` the agent is left alone with a `heal_limit` needs-attention episode.
use std::time::Duration;

use serde_json::json;

use super::Watchdog;
use super::heal::HealReason;
use super::screen::HEAL_LIMIT;
use crate::config::{Agent, HealBounds};
use crate::events;
use crate::fleet::records::{self, now_ms};
use crate::fleet::screen::{Attention, load_attention, save_attention};

/// What healing may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealStep {
    /// Heal now.
    Now,
    /// Too soon after the last heal: not before this time (Unix ms).
    Wait(i64),
    /// `max` heals within the window already: leave it to a person.
    Limit,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The heal rule over the earlier heals' times (Unix ms, any order): only those within
/// `window` of `now` count; with `max` (non-zero) of them the answer is `Limit`; otherwise
/// heal number n+1 waits `backoff * 2^(n-1)` (capped at `backoff_max`) after the last. Pure.
pub fn heal_step(heals: &[i64], now: i64, b: &HealBounds) -> HealStep {
    let recent: Vec<i64> = heals
        .iter()
        .copied()
        .filter(|t| now.saturating_sub(*t) < ms(b.window))
        .collect();
    let n = u32::try_from(recent.len()).unwrap_or(u32::MAX);
    if b.max > 0 && n >= b.max {
        return HealStep::Limit;
    }
    let Some(last) = recent.iter().max() else {
        return HealStep::Now;
    };
    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(30));
    let wait = b.backoff.saturating_mul(factor).min(b.backoff_max);
    let due = last.saturating_add(ms(wait));
    if now >= due {
        HealStep::Now
    } else {
        HealStep::Wait(due)
    }
}

impl Watchdog {
    /// True when `agent` may be healed for `reason` now; records the heal when it may. Past
    /// the limit the agent gets one `heal_limit` event and a needs-attention episode, and is
    /// left alone until a person acts (the screen changes, or `down`/`up`).
    pub(super) fn heal_allowed(
        &mut self,
        agent: &Agent,
        reason: HealReason,
        screen: Option<&str>,
    ) -> bool {
        let mut open = load_attention(&self.cfg);
        if open.get(&agent.name).is_some_and(|a| a.state == HEAL_LIMIT) {
            return false;
        }
        let rec = records::record(&self.cfg, &agent.name);
        let now = now_ms();
        match heal_step(&rec.heals, now, &agent.heal) {
            HealStep::Now => {
                records::update(&self.cfg, &agent.name, |r| {
                    r.heals
                        .retain(|t| now.saturating_sub(*t) < ms(agent.heal.window));
                    r.heals.push(now);
                });
                true
            }
            HealStep::Wait(due) => {
                tracing::debug!(agent = %agent.name, reason = reason.as_str(), due, "heal backs off");
                false
            }
            HealStep::Limit => {
                let heals = rec.heals.len();
                tracing::error!(
                    agent = %agent.name, reason = reason.as_str(), heals,
                    "healed too often: leaving it to a person"
                );
                self.event(
                    events::HEAL_LIMIT,
                    json!({ "agent": agent.name, "reason": reason.as_str(), "heals": heals }),
                );
                // What was already known (a refusal's rule, lines, exit status) is kept.
                let earlier = open.remove(&agent.name).unwrap_or_default();
                let episode = Attention {
                    state: HEAL_LIMIT.into(),
                    since: chrono::Local::now().fixed_offset().to_rfc3339(),
                    reason: Some(reason.as_str().into()),
                    screen: screen.map(String::from).or(earlier.screen),
                    ..earlier
                };
                self.event(
                    events::NEEDS_ATTENTION,
                    json!({
                        "agent": agent.name, "state": HEAL_LIMIT, "reason": reason.as_str(),
                        "heals": heals, "rule": episode.rule, "exit_status": episode.exit_status,
                        "lines": episode.lines,
                    }),
                );
                open.insert(agent.name.clone(), episode);
                save_attention(&self.cfg, &open);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(max: u32) -> HealBounds {
        HealBounds {
            max,
            backoff: Duration::from_secs(10),
            backoff_max: Duration::from_secs(40),
            window: Duration::from_secs(600),
        }
    }

    const S: i64 = 1000;

    #[test]
    fn the_first_heal_is_at_once() {
        assert_eq!(heal_step(&[], 0, &bounds(5)), HealStep::Now);
    }

    #[test]
    fn repeated_heals_back_off_doubling_up_to_the_cap() {
        let b = bounds(0);
        assert_eq!(heal_step(&[0], 5 * S, &b), HealStep::Wait(10 * S));
        assert_eq!(heal_step(&[0], 10 * S, &b), HealStep::Now);
        assert_eq!(heal_step(&[0, 10 * S], 20 * S, &b), HealStep::Wait(30 * S));
        assert_eq!(heal_step(&[0, S, 2 * S], 3 * S, &b), HealStep::Wait(42 * S));
        let many: Vec<i64> = (0..8).map(|i| i * S).collect();
        assert_eq!(
            heal_step(&many, 8 * S, &b),
            HealStep::Wait(47 * S),
            "capped"
        );
    }

    #[test]
    fn past_the_limit_within_the_window_the_agent_is_left_alone() {
        let b = bounds(3);
        assert_eq!(
            heal_step(&[0, 100 * S, 200 * S], 300 * S, &b),
            HealStep::Limit
        );
        // Heals older than the window no longer count.
        assert_eq!(
            heal_step(&[0, 100 * S, 200 * S], 650 * S, &b),
            HealStep::Now
        );
    }
}
