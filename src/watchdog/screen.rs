//! What the watchdog does with the screen classifier: answers first-run dialogs an agent opted
//! into (`auto_accept`), and reports a login or credentials problem once per episode.
//!
//! `screen_state` is the one place that captures and classifies an agent's pane; the healing
//! code (busy = activity, rate_limited = limit hold) calls it too.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Watchdog;
use crate::backend::presets::dialog_answer;
use crate::config::{Agent, Backend, Config, Delivery};
use crate::detect::{Classification, ScreenState, classify};
use crate::events::{AUTO_ACCEPTED, NEEDS_ATTENTION};
use crate::tmux::{Fleet, PaneInfo, Tmux};

/// `<state_dir>/attention.json`: the open needs-attention episodes, by agent.
pub const ATTENTION_FILE: &str = "attention.json";

/// An open needs-attention episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attention {
    pub state: String,
    pub since: String,
}

fn attention_file(cfg: &Config) -> PathBuf {
    cfg.state_dir.join(ATTENTION_FILE)
}

/// The open needs-attention episodes (empty when none or unreadable).
pub fn load_attention(cfg: &Config) -> BTreeMap<String, Attention> {
    crate::state::load_json(&attention_file(cfg))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// True for the states a restart cannot fix: a human has to log in or fix the key.
pub fn needs_human(state: ScreenState) -> bool {
    matches!(state, ScreenState::LoginRequired | ScreenState::AuthError)
}

/// Classify the pane of `session` with `backend`'s rules; `None` when the backend has no
/// rules or the pane cannot be read.
pub fn classify_session(tmux: &Tmux, backend: &Backend, session: &str) -> Option<Classification> {
    if backend.screen_rules.is_empty() {
        return None;
    }
    let screen = tmux.capture(session, usize::MAX).ok()?;
    Some(classify(
        &screen,
        &backend.screen_rules,
        chrono::Local::now().fixed_offset(),
    ))
}

/// Classify already-captured `pane` text with `backend`'s rules (`None`: no rules).
pub fn classify_text(backend: &Backend, pane: &str) -> Option<Classification> {
    (!backend.screen_rules.is_empty()).then(|| {
        classify(
            pane,
            &backend.screen_rules,
            chrono::Local::now().fixed_offset(),
        )
    })
}

/// If `c` is a dialog the agent opted into, send its answer; the dialog key answered.
fn answer_dialog(
    cfg: &Config,
    tmux: &Tmux,
    agent: &Agent,
    screen: &str,
    c: &Classification,
) -> Option<String> {
    let backend = cfg.backend_of(agent);
    let answer = dialog_answer(&backend.dialogs, &agent.auto_accept, screen, c.state)?;
    let keys: Vec<&str> = answer.keys.iter().map(String::as_str).collect();
    if let Err(e) = tmux.send_keys(&agent.session, &keys) {
        tracing::warn!(agent = %agent.name, "cannot answer the {} dialog: {e}", answer.key);
        return None;
    }
    tracing::info!(agent = %agent.name, dialog = %answer.key, ?keys, "auto-accepted");
    crate::fleet::log_event(
        cfg,
        AUTO_ACCEPTED,
        json!({ "agent": agent.name, "dialog": answer.key, "state": c.state.as_str(), "keys": keys }),
    );
    Some(answer.key.clone())
}

/// Right after start: while the agent's screen is starting or shows a dialog it opted into,
/// answer it; return once the screen has kept another state (the input box, busy, an error)
/// for the backend's `startup_settle` (codex draws its idle view for seconds before its
/// trust dialog appears, gemini its input box for a moment), or after the backend's `connect_delay`. Runs only for backends with screen
/// rules and agents that auto-accept or take the `ping` delivery (whose boot line must not
/// land in a dialog). Later dialogs are answered by the watchdog's tick.
pub fn settle_start(cfg: &Config, tmux: &Tmux, agent: &Agent) -> Option<Classification> {
    let backend = cfg.backend_of(agent);
    let wanted = !agent.auto_accept.is_empty() || backend.prompt_delivery == Delivery::Ping;
    if backend.screen_rules.is_empty() || !wanted {
        return None;
    }
    let deadline = Instant::now() + backend.connect_delay;
    let mut last: Option<Classification> = None;
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(screen) = tmux.capture(&agent.session, usize::MAX) else {
            break;
        };
        let c = classify(
            &screen,
            &backend.screen_rules,
            chrono::Local::now().fixed_offset(),
        );
        if last.as_ref().is_none_or(|l| l.state != c.state) {
            since = Instant::now();
        }
        let waiting = match c.state {
            ScreenState::Starting | ScreenState::Unknown => true,
            ScreenState::TrustPrompt | ScreenState::PermissionPrompt | ScreenState::Onboarding
                if answer_dialog(cfg, tmux, agent, &screen, &c).is_some() =>
            {
                // Give the CLI time to take the keys before looking again.
                std::thread::sleep(Duration::from_millis(750));
                true
            }
            _ => since.elapsed() < backend.startup_settle,
        };
        last = Some(c);
        if !waiting {
            break;
        }
    }
    last
}

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
