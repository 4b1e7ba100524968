//! An agent's screen at the launch level: classifying its pane with its backend's rules, the
//! start-up settle that answers opted-in dialogs, and the open needs-attention episodes.
//!
//! Used by `start_agent` (both `up` and the watchdog) and read by `status`; the watchdog's
//! per-tick screen pass builds on it.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::presets::dialog_answer;
use crate::config::{Agent, Backend, Config, Delivery};
use crate::detect::{Classification, ScreenState, classify};
use crate::events::AUTO_ACCEPTED;
use crate::tmux::Tmux;

/// `<state_dir>/attention.json`: the open needs-attention episodes, by agent.
pub const ATTENTION_FILE: &str = "attention.json";

/// An open needs-attention episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attention {
    pub state: String,
    pub since: String,
}

pub fn attention_file(cfg: &Config) -> PathBuf {
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
pub fn answer_dialog(
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

