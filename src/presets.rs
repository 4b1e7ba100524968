//! Built-in backend presets (claude-code, codex, gemini-cli, opencode) as embedded TOML, and
//! the first-run dialog answers an agent can opt into with `auto_accept`.
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

use crate::detect::{ScreenState, bottom_rows, strip_ansi};

const PRESETS_TOML: &str = include_str!("presets/presets.toml");

/// How many bottom rows a dialog answer's pattern looks at.
pub const DIALOG_ROWS: usize = 15;

static PRESETS: LazyLock<toml::Table> = LazyLock::new(|| {
    toml::from_str(PRESETS_TOML).unwrap_or_else(|e| {
        panic!("the built-in presets (src/backend/presets.toml) are broken: {e}")
    })
});

/// The names of the built-in presets, sorted.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.keys().map(String::as_str).collect()
}

/// True when `name` is a built-in preset.
pub fn is_preset(name: &str) -> bool {
    PRESETS.contains_key(name)
}

/// The preset's keys as a `[backend.NAME]` table would hold them.
pub fn preset_table(name: &str) -> Option<toml::Table> {
    match PRESETS.get(name) {
        Some(toml::Value::Table(t)) => Some(t.clone()),
        _ => None,
    }
}

/// `preset`'s keys, overridden one by one by the user's `[backend.X]` table.
pub fn merge_preset(preset: &str, user: Option<&toml::Table>) -> Option<toml::Table> {
    let mut merged = preset_table(preset)?;
    if let Some(user) = user {
        for (k, v) in user {
            merged.insert(k.clone(), v.clone());
        }
    }
    Some(merged)
}

/// How one first-run dialog is answered: when the screen is in `state` and `pattern` matches
/// its last [`DIALOG_ROWS`] rows, send `keys` (tmux key names, one call).
#[derive(Debug, Clone)]
pub struct DialogAnswer {
    /// The name an agent lists in `auto_accept` ("trust", "bypass-permissions", ...).
    pub key: String,
    pub state: ScreenState,
    pub pattern: Regex,
    pub keys: Vec<String>,
}

impl DialogAnswer {
    /// An answer from its parts; the pattern is compiled multi-line. The error says what is wrong.
    pub fn new(key: &str, state: &str, pattern: &str, keys: Vec<String>) -> Result<Self, String> {
        let state: ScreenState = state.parse()?;
        if !matches!(
            state,
            ScreenState::TrustPrompt | ScreenState::PermissionPrompt | ScreenState::Onboarding
        ) {
            return Err(format!(
                "dialog {key:?}: state {state} is not a dialog (trust_prompt, permission_prompt, onboarding)"
            ));
        }
        if keys.is_empty() {
            return Err(format!("dialog {key:?}: keys is empty"));
        }
        let pattern = RegexBuilder::new(pattern)
            .multi_line(true)
            .build()
            .map_err(|e| format!("dialog {key:?}: pattern does not compile: {e}"))?;
        Ok(DialogAnswer {
            key: key.to_string(),
            state,
            pattern,
            keys,
        })
    }
}

/// The answer to send for `screen` (classified as `state`): the first dialog entry the agent
/// opted into (`auto_accept`) whose state is `state` and whose pattern matches the last
/// [`DIALOG_ROWS`] rows. `None` when the agent did not opt in or nothing matches.
pub fn dialog_answer<'a>(
    dialogs: &'a [DialogAnswer],
    auto_accept: &[String],
    screen: &str,
    state: ScreenState,
) -> Option<&'a DialogAnswer> {
    let plain = strip_ansi(screen);
    let tail = bottom_rows(&plain, DIALOG_ROWS);
    dialogs.iter().find(|d| {
        d.state == state && auto_accept.iter().any(|k| k == &d.key) && d.pattern.is_match(tail)
    })
}

#[cfg(test)]
mod tests;
