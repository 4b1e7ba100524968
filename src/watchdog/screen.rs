//! What the watchdog does with the screen classifier each tick: classifies every agent with
//! screen rules once (the tick's `screens`, read by pings, wakes and probes), answers dialogs
//! an agent opted into (`auto_accept`), and opens or closes needs-attention episodes.
//!
//! Limit, error and exit rules see only what the agent drew after the last text orch typed
//! into it (its kickoff, its pings): `typed_texts` lists those texts.
use std::collections::BTreeMap;

use serde_json::json;

use super::Watchdog;
use crate::config::Agent;
use crate::detect::{Classification, ScreenState, classify_typed};
use crate::events::NEEDS_ATTENTION;
use crate::fleet::screen::{
    Attention, answer_dialog, is_dialog, load_attention, needs_human, save_attention,
};
use crate::tmux::{Fleet, PaneInfo};

/// The `state` of an episode opened because healing ran out (see `bounds.rs`).
pub const HEAL_LIMIT: &str = "heal_limit";

/// What to do about one agent's needs-attention episode on this tick's screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionStep {
    Keep,
    /// Open (or replace) an episode for this screen state.
    Open,
    Close,
}

/// The attention rule: a login, credentials or network error, or a dialog nobody may answer
/// (`answered` is false), needs a person: open an episode, once per state. An open episode
/// closes when the screen shows the CLI working or waiting at its input box again; one opened
/// because healing ran out closes once the screen differs from the one it gave up on. Pure.
pub fn attention_step(
    open: Option<&Attention>,
    state: ScreenState,
    answered: bool,
) -> AttentionStep {
    let wants = needs_human(state) || (is_dialog(state) && !answered);
    match open {
        Some(a) if a.state == HEAL_LIMIT => {
            if a.screen.as_deref().is_some_and(|s| s != state.as_str()) {
                AttentionStep::Close
            } else {
                AttentionStep::Keep
            }
        }
        Some(a) if wants && a.state != state.as_str() => AttentionStep::Open,
        Some(_) if matches!(state, ScreenState::IdleInput | ScreenState::Busy) => {
            AttentionStep::Close
        }
        Some(_) => AttentionStep::Keep,
        None if wants => AttentionStep::Open,
        None => AttentionStep::Keep,
    }
}

/// The last non-blank rows of `screen` (at most `n`), for an event or status.
pub fn last_lines(screen: &str, n: usize) -> Vec<String> {
    let plain = crate::detect::strip_ansi(screen);
    let rows: Vec<&str> = plain
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    rows[rows.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.chars().take(200).collect())
        .collect()
}

impl Watchdog {
    /// The texts orch types into `agent`: its kickoff (as last written) and every ping, probe
    /// and wake text. Rows echoing them are not what the agent drew.
    pub fn typed_texts(&self, agent: &Agent) -> Vec<String> {
        let mut texts = vec![
            crate::handoff::CLAIM_PING.to_string(),
            crate::handoff::REVIEW_PING.to_string(),
            super::limit::probe_text(agent.kind).to_string(),
        ];
        if let Some(h) = self.cfg.loop_.as_ref().and_then(|l| l.handoff.as_ref()) {
            for f in &h.inboxes {
                texts.push(crate::handoff::inbox_ping(&h.state_subdir, f));
            }
        }
        if let Ok(k) = std::fs::read_to_string(self.cfg.kickoff_file(&agent.session)) {
            texts.push(k);
        }
        if let Some(w) = &agent.wake
            && let Ok(t) = std::fs::read_to_string(&w.prompt_file)
        {
            texts.push(t);
        }
        texts
    }

    /// Classify `screen` of `agent` with its backend's rules (`None`: no rules).
    pub fn classify_screen(&self, agent: &Agent, screen: &str) -> Option<Classification> {
        let backend = self.cfg.backend_of(agent);
        if backend.screen_rules.is_empty() {
            return None;
        }
        let now = chrono::Local::now().fixed_offset();
        Some(classify_typed(
            screen,
            &backend.screen_rules,
            now,
            &self.typed_texts(agent),
        ))
    }

    /// The classified screen of `agent`'s live pane; `None` when its backend has no screen
    /// rules, or the pane is gone or unreadable. A dead pane is `exited`.
    pub fn screen_state(&self, agent: &Agent, pane: &PaneInfo) -> Option<Classification> {
        if self.cfg.backend_of(agent).screen_rules.is_empty() {
            return None;
        }
        if pane.dead {
            return Some(Classification {
                state: ScreenState::Exited,
                rule: Some("tmux pane is dead".into()),
                reset: None,
            });
        }
        let screen = self.tmux.capture(&agent.session, usize::MAX).ok()?;
        self.classify_screen(agent, &screen)
    }

    /// Every tick: classify each live agent with screen rules (kept in `screens` for the rest
    /// of the tick), answer opted-in dialogs, open or close needs-attention episodes.
    pub(super) fn screen_tick(&mut self, fleet: &Fleet) {
        self.screens.clear();
        let agents: Vec<Agent> = self
            .cfg
            .agents
            .iter()
            .filter(|a| a.enabled && !self.cfg.backend_of(a).screen_rules.is_empty())
            .cloned()
            .collect();
        if agents.is_empty() {
            return;
        }
        let mut open = load_attention(&self.cfg);
        let before = open.clone();
        for agent in &agents {
            let Some(pane) = fleet.get(&agent.session) else {
                continue;
            };
            if pane.dead {
                // Read once per dead pane: why did it exit?
                if self.read_dead.insert(dead_key(pane)) {
                    self.read_exit(&mut open, agent, pane);
                }
                continue;
            }
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
            let Some(c) = self.classify_screen(agent, &screen) else {
                continue;
            };
            let answered = is_dialog(c.state)
                && answer_dialog(&self.cfg, &self.tmux, agent, &screen, &c).is_some();
            self.update_attention(&mut open, agent, &c, answered, &screen);
            self.screens.insert(agent.name.clone(), c);
        }
        if open != before {
            save_attention(&self.cfg, &open);
        }
    }

    /// [`Self::read_exit`] for a dead pane not read yet, outside the screen pass (the restart
    /// policy clears a dead pane in the same tick it sees it: it is read first).
    pub(super) fn read_exit_once(&mut self, agent: &Agent, pane: &PaneInfo) {
        if self.cfg.backend_of(agent).screen_rules.is_empty()
            || !self.read_dead.insert(dead_key(pane))
        {
            return;
        }
        let mut open = load_attention(&self.cfg);
        let before = open.clone();
        self.read_exit(&mut open, agent, pane);
        if open != before {
            save_attention(&self.cfg, &open);
        }
    }

    /// A pane whose process exited (kept by remain-on-exit): classify its last screen (with
    /// its history: a refusal may have scrolled up), record why it ended and its exit status,
    /// and open a needs-attention episode for a known refusal (root, offline first run, not
    /// logged in, credentials) with the rule and the last lines.
    fn read_exit(&self, open: &mut BTreeMap<String, Attention>, agent: &Agent, pane: &PaneInfo) {
        let history = match self.tmux.capture_history(&agent.session) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("cannot read the exited pane of {}: {e}", agent.name);
                String::new()
            }
        };
        // tmux's own "Pane is dead (status N, ...)" line is not what the agent drew.
        let drawn: String = history
            .lines()
            .filter(|l| !l.starts_with("Pane is dead"))
            .collect::<Vec<_>>()
            .join("\n");
        let tail = crate::detect::bottom_rows(&drawn, 40).to_string();
        let status = pane
            .dead_status
            .or_else(|| crate::fleet::recorded_exit_status(&self.cfg, &agent.session));
        let c = self.classify_screen(agent, &tail);
        let refusal = c.as_ref().filter(|c| {
            matches!(
                c.state,
                ScreenState::Exited
                    | ScreenState::NetworkError
                    | ScreenState::LoginRequired
                    | ScreenState::AuthError
            )
        });
        let lines = last_lines(&tail, 6);
        let reason = match (refusal.and_then(|c| c.rule.clone()), status) {
            (Some(rule), _) => rule,
            (None, Some(s)) => format!("exited with status {s}"),
            (None, None) => "exited".to_string(),
        };
        tracing::warn!(agent = %agent.name, ?status, reason = %reason, "agent exited");
        crate::fleet::records::update(&self.cfg, &agent.name, |r| {
            r.exited_at = Some(crate::fleet::records::now_ms());
            r.exit_status = status;
            r.exit_reason = Some(reason.clone());
        });
        let Some(c) = refusal else {
            return;
        };
        if open
            .get(&agent.name)
            .is_some_and(|a| a.state == c.state.as_str() || a.state == HEAL_LIMIT)
        {
            return;
        }
        self.event(
            NEEDS_ATTENTION,
            json!({
                "agent": agent.name, "state": c.state.as_str(), "rule": c.rule,
                "exit_status": status, "lines": lines,
            }),
        );
        open.insert(
            agent.name.clone(),
            Attention {
                state: c.state.as_str().to_string(),
                since: chrono::Local::now().fixed_offset().to_rfc3339(),
                rule: c.rule.clone(),
                screen: Some(c.state.as_str().to_string()),
                exit_status: status,
                lines,
                ..Attention::default()
            },
        );
    }

    fn update_attention(
        &self,
        open: &mut BTreeMap<String, Attention>,
        agent: &Agent,
        c: &Classification,
        answered: bool,
        screen: &str,
    ) {
        match attention_step(open.get(&agent.name), c.state, answered) {
            AttentionStep::Keep => {}
            AttentionStep::Close => {
                tracing::info!(agent = %agent.name, state = %c.state, "attention no longer needed");
                open.remove(&agent.name);
            }
            AttentionStep::Open => {
                let lines = last_lines(screen, 6);
                tracing::warn!(agent = %agent.name, state = %c.state, "needs attention");
                self.event(
                    NEEDS_ATTENTION,
                    json!({
                        "agent": agent.name, "state": c.state.as_str(), "rule": c.rule,
                        "lines": lines,
                    }),
                );
                open.insert(
                    agent.name.clone(),
                    Attention {
                        state: c.state.as_str().to_string(),
                        since: chrono::Local::now().fixed_offset().to_rfc3339(),
                        rule: c.rule.clone(),
                        screen: Some(c.state.as_str().to_string()),
                        lines,
                        ..Attention::default()
                    },
                );
            }
        }
    }
}

/// A dead pane, for "read once": its tmux id and process. tmux numbers panes from %0 again on
/// a new server (the agents' server exits with its last session), so an id alone repeats.
fn dead_key(pane: &PaneInfo) -> String {
    format!("{}/{}", pane.pane_id, pane.pid.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(state: &str, screen: Option<&str>) -> Attention {
        Attention {
            state: state.into(),
            screen: screen.map(String::from),
            ..Attention::default()
        }
    }

    #[test]
    fn a_dialog_nobody_may_answer_needs_a_person_an_answered_one_does_not() {
        assert_eq!(
            attention_step(None, ScreenState::PermissionPrompt, false),
            AttentionStep::Open
        );
        assert_eq!(
            attention_step(None, ScreenState::PermissionPrompt, true),
            AttentionStep::Keep
        );
    }

    #[test]
    fn login_and_network_errors_open_one_episode_per_state() {
        assert_eq!(
            attention_step(None, ScreenState::NetworkError, false),
            AttentionStep::Open
        );
        let login = open("login_required", Some("login_required"));
        assert_eq!(
            attention_step(Some(&login), ScreenState::LoginRequired, false),
            AttentionStep::Keep
        );
        assert_eq!(
            attention_step(Some(&login), ScreenState::NetworkError, false),
            AttentionStep::Open
        );
    }

    #[test]
    fn stale_attention_clears_when_the_screen_works_or_waits_for_input_again() {
        let login = open("login_required", Some("login_required"));
        for s in [ScreenState::IdleInput, ScreenState::Busy] {
            assert_eq!(attention_step(Some(&login), s, false), AttentionStep::Close);
        }
        assert_eq!(
            attention_step(Some(&login), ScreenState::Starting, false),
            AttentionStep::Keep
        );
    }

    #[test]
    fn a_heal_limit_episode_closes_only_when_the_screen_changes() {
        let gave_up = open(HEAL_LIMIT, Some("idle_input"));
        assert_eq!(
            attention_step(Some(&gave_up), ScreenState::IdleInput, false),
            AttentionStep::Keep
        );
        assert_eq!(
            attention_step(Some(&gave_up), ScreenState::Busy, false),
            AttentionStep::Close
        );
    }

    #[test]
    fn last_lines_are_the_bottom_non_blank_rows() {
        assert_eq!(last_lines("a\n\nb\nc\n\n\n", 2), ["b", "c"]);
        assert_eq!(last_lines("", 3), Vec::<String>::new());
    }
}
