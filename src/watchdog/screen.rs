//! What the watchdog does with the screen classifier: answers first-run dialogs an agent opted
//! into (`auto_accept`), and reports a login or credentials problem once per episode.
//!
//! `screen_state` is the one place that captures and classifies an agent's pane; the healing
//! code (busy = activity, rate_limited = limit hold) calls it too.
use serde_json::json;

use super::Watchdog;
use crate::config::Agent;
use crate::detect::{Classification, ScreenState, classify};
use crate::events::NEEDS_ATTENTION;
use crate::fleet::screen::{Attention, answer_dialog, attention_file, classify_session, load_attention, needs_human};
use crate::tmux::{Fleet, PaneInfo};

impl Watchdog {
    /// The classified screen of `agent`'s live pane; `None` when its backend has no screen
    /// rules, or the pane is gone or unreadable. A dead pane is `exited`.
    pub fn screen_state(&self, agent: &Agent, pane: &PaneInfo) -> Option<Classification> {
        let backend = self.cfg.backend_of(agent);
        if backend.screen_rules.is_empty() {
            return None;
        }
        if pane.dead {
            return Some(Classification {
                state: ScreenState::Exited,
                rule: Some("tmux pane is dead".into()),
                reset: None,
            });
        }
        classify_session(&self.tmux, backend, &agent.session)
    }

    /// Every tick: answer opted-in dialogs, and open or close needs-attention episodes.
    pub(super) fn screen_tick(&mut self, fleet: &Fleet) {
        let agents: Vec<&Agent> = self
            .cfg
            .agents
            .iter()
            .filter(|a| a.enabled && !self.cfg.backend_of(a).screen_rules.is_empty())
            .collect();
        if agents.is_empty() {
            return;
        }
        let mut open = load_attention(&self.cfg);
        let before = open.clone();
        for agent in agents {
            let Some(pane) = fleet.get(&agent.session).filter(|p| !p.dead) else {
                continue;
            };
            let backend = self.cfg.backend_of(agent);
            // The whole screen, reused while the pane shows no new output (like the care pass).
            let captured = super::pane_cache::capture_cached(
                &mut self.screen_cache,
                &self.tmux,
                pane,
                usize::MAX,
            );
            let Ok(screen) = captured else {
                continue;
            };
            let now = chrono::Local::now().fixed_offset();
            let c = classify(&screen, &backend.screen_rules, now);
            answer_dialog(&self.cfg, &self.tmux, agent, &screen, &c);
            if needs_human(c.state) {
                if !open.contains_key(&agent.name) {
                    tracing::warn!(agent = %agent.name, state = %c.state, "needs attention");
                    self.event(
                        NEEDS_ATTENTION,
                        json!({ "agent": agent.name, "state": c.state.as_str(), "rule": c.rule }),
                    );
                    open.insert(
                        agent.name.clone(),
                        Attention {
                            state: c.state.as_str().to_string(),
                            since: now.to_rfc3339(),
                        },
                    );
                }
            } else if matches!(c.state, ScreenState::IdleInput | ScreenState::Busy) {
                open.remove(&agent.name);
            }
        }
        if open != before
            && let Err(e) = crate::state::save_json(&attention_file(&self.cfg), &open)
        {
            tracing::warn!("cannot save the needs-attention list: {e}");
        }
    }
}
