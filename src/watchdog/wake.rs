//! Scheduled wakes: an agent with `wake = { interval, prompt_file }` gets the file's text typed
//! in every `interval`, only while its pane is idle (a busy pane is retried next tick).
use std::time::{Duration, Instant};

use serde_json::json;

use super::Watchdog;
use super::heal::pane_active;
use super::stall::Care;
use crate::fleet::pings::PendingPing;
use crate::tmux::Fleet;

/// True when a wake is due: `interval` passed since the last one (or since the watchdog
/// first saw the agent).
pub fn wake_due(last: Instant, now: Instant, interval: Duration) -> bool {
    now.saturating_duration_since(last) >= interval
}

/// The wake prompt as typed: every run of whitespace (newlines too) folded to one space.
pub fn fold_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Watchdog {
    /// Type due wakes into idle panes; nothing after SEQUENCE-COMPLETE.
    pub(super) fn wake_tick(&mut self, fleet: &Fleet, care: &Care) {
        if self.cfg.sequence_complete_file().exists() {
            return;
        }
        let now = Instant::now();
        let agents: Vec<_> = self
            .cfg
            .agents
            .iter()
            .filter(|a| a.enabled)
            .filter_map(|a| a.wake.clone().map(|w| (a.clone(), w)))
            .collect();
        for (agent, wake) in agents {
            let last = *self.last_wake.entry(agent.name.clone()).or_insert(now);
            if !wake_due(last, now, wake.interval) {
                continue;
            }
            if fleet.get(&agent.session).is_none_or(|i| i.dead)
                || care.held.contains(&agent.name)
                || care.skip.contains(&agent.name)
            {
                continue;
            }
            let Some(pane) = self.pane_text(&care.panes, &agent) else {
                continue;
            };
            // Typed only into a screen that takes input (never into a dialog or a login).
            if !self.screen_takes_input(&agent, false)
                || self
                    .screens
                    .get(&agent.name)
                    .is_some_and(|c| c.state == crate::detect::ScreenState::Busy)
            {
                tracing::debug!(agent = %agent.name, "wake due but the screen takes no wake now; retrying");
                continue;
            }
            if pane_active(&self.cfg, &agent, &pane, true) {
                tracing::debug!(agent = %agent.name, "wake due but the agent is busy; retrying");
                continue;
            }
            self.last_wake.insert(agent.name.clone(), now);
            let text = match std::fs::read_to_string(&wake.prompt_file) {
                Ok(t) => fold_whitespace(&t),
                Err(e) => {
                    tracing::warn!(
                        "wake skipped for {}: cannot read its prompt file {}: {e}",
                        agent.name,
                        wake.prompt_file.display()
                    );
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            // Queued with its ping id and typed by the outbox pass (acked like every ping).
            tracing::info!(agent = %agent.name, "wake");
            let key = format!("wake-{}", crate::fleet::records::now_ms());
            let ping = PendingPing::new(key, "wake", text, json!({}));
            self.queue_ping(&agent.name, ping);
            self.outbox_agent(fleet, &agent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_prompt_whitespace_is_folded() {
        assert_eq!(
            fold_whitespace("  Check\tthe   board.\n\nThen  report.\n"),
            "Check the board. Then report."
        );
        assert_eq!(fold_whitespace(" \n "), "");
    }

    #[test]
    fn wake_is_due_once_the_interval_passed() {
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        assert!(!wake_due(t0, t0, hour));
        assert!(!wake_due(t0, t0 + hour - Duration::from_secs(1), hour));
        assert!(wake_due(t0, t0 + hour, hour));
    }
}
