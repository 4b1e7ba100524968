//! The screen classifier: ordered, data-driven rules (first match wins) that name the state an
//! agent CLI's pane is in, with built-in rule sets for the known CLIs loaded from rules.toml.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset};
use regex::{Regex, RegexBuilder};
use serde::Deserialize;

use super::{DetectError, bottom_rows, parse_reset, strip_ansi, trim_trailing_blank_rows};

/// What an agent CLI's screen shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScreenState {
    /// Blank, or a "restarting" notice: the CLI has not drawn its UI yet.
    Starting,
    /// A first-run dialog (theme, "use this API key?").
    Onboarding,
    /// "Do you trust this folder?"
    TrustPrompt,
    /// A permission / bypass-mode / tool-approval confirmation.
    PermissionPrompt,
    /// A sign-in menu, key box or "not logged in".
    LoginRequired,
    /// The input box, waiting for the user.
    IdleInput,
    /// A turn is running (spinner, "esc to interrupt", retrying).
    Busy,
    /// The credentials were refused (invalid key, 401).
    AuthError,
    /// A turn, login or start-up ended on a network error.
    NetworkError,
    /// A usage or rate limit banner.
    RateLimited,
    /// The process has exited (tmux's "Pane is dead", a goodbye screen).
    Exited,
    /// Non-empty, but no rule matched.
    Unknown,
}

impl ScreenState {
    pub const ALL: [ScreenState; 12] = [
        ScreenState::Starting,
        ScreenState::Onboarding,
        ScreenState::TrustPrompt,
        ScreenState::PermissionPrompt,
        ScreenState::LoginRequired,
        ScreenState::IdleInput,
        ScreenState::Busy,
        ScreenState::AuthError,
        ScreenState::NetworkError,
        ScreenState::RateLimited,
        ScreenState::Exited,
        ScreenState::Unknown,
    ];

    /// The snake_case name used in rule files, fixtures and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ScreenState::Starting => "starting",
            ScreenState::Onboarding => "onboarding",
            ScreenState::TrustPrompt => "trust_prompt",
            ScreenState::PermissionPrompt => "permission_prompt",
            ScreenState::LoginRequired => "login_required",
            ScreenState::IdleInput => "idle_input",
            ScreenState::Busy => "busy",
            ScreenState::AuthError => "auth_error",
            ScreenState::NetworkError => "network_error",
            ScreenState::RateLimited => "rate_limited",
            ScreenState::Exited => "exited",
            ScreenState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ScreenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ScreenState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScreenState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ScreenState::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown screen state {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// One classifier rule: when `pattern` matches the screen (or only its last `rows` rows,
/// counted after trailing blank rows are dropped), the screen is in `state`.
#[derive(Debug, Clone)]
pub struct ScreenRule {
    /// A short label for logs; defaults to the pattern text.
    pub name: String,
    pub state: ScreenState,
    /// Compiled multi-line (`^`/`$` match at line ends); use `(?i)` for case-insensitivity.
    pub pattern: Regex,
    pub rows: Option<usize>,
}

impl ScreenRule {
    /// A rule from its parts; the pattern is compiled multi-line.
    pub fn new(
        state: ScreenState,
        pattern: &str,
        rows: Option<usize>,
    ) -> Result<Self, DetectError> {
        let compiled = RegexBuilder::new(pattern)
            .multi_line(true)
            .build()
            .map_err(|source| DetectError::Pattern {
                pattern: pattern.to_owned(),
                source: Box::new(source),
            })?;
        Ok(ScreenRule {
            name: pattern.to_owned(),
            state,
            pattern: compiled,
            rows,
        })
    }

    fn matches(&self, screen: &str) -> bool {
        match self.rows {
            Some(n) => self.pattern.is_match(bottom_rows(screen, n)),
            None => self.pattern.is_match(screen),
        }
    }
}

/// The classifier's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub state: ScreenState,
    /// The name of the rule that matched (`None` for an unmatched screen).
    pub rule: Option<String>,
    /// For `RateLimited`: the reset time read from the screen, if any.
    pub reset: Option<DateTime<FixedOffset>>,
}

/// Classify `screen` (escapes are stripped first): an empty screen is `Starting`; otherwise
/// the first rule that matches wins; nothing matching is `Unknown`.
pub fn classify(screen: &str, rules: &[ScreenRule], now: DateTime<FixedOffset>) -> Classification {
    classify_typed(screen, rules, now, &[])
}

/// True for the states whose rules see only what the agent drew last (see [`after_echo`]):
/// a usage limit, a credentials or network error, an exit or refusal.
pub fn drawn_last_only(state: ScreenState) -> bool {
    matches!(
        state,
        ScreenState::RateLimited
            | ScreenState::AuthError
            | ScreenState::NetworkError
            | ScreenState::Exited
    )
}

/// [`classify`], knowing the texts orch typed into the agent (its kickoff, its pings): the
/// rules of [`drawn_last_only`] states see only the rows below the last row that echoes one
/// of them, so a kickoff that says "if you hit a usage limit" is never a usage limit.
pub fn classify_typed(
    screen: &str,
    rules: &[ScreenRule],
    now: DateTime<FixedOffset>,
    typed: &[String],
) -> Classification {
    let plain = strip_ansi(screen);
    let text = trim_trailing_blank_rows(&plain);
    if text.trim().is_empty() {
        return Classification {
            state: ScreenState::Starting,
            rule: Some("empty screen".to_owned()),
            reset: None,
        };
    }
    let last = after_echo(text, typed);
    let seen = |r: &ScreenRule| if drawn_last_only(r.state) { last } else { text };
    match rules.iter().find(|r| r.matches(seen(r))) {
        Some(rule) => Classification {
            state: rule.state,
            rule: Some(rule.name.clone()),
            reset: (rule.state == ScreenState::RateLimited)
                .then(|| parse_reset(seen(rule), now))
                .flatten(),
        },
        None => Classification {
            state: ScreenState::Unknown,
            rule: None,
            reset: None,
        },
    }
}

/// Folded for comparing a screen row with typed text: markdown marks dropped (CLIs render
/// `**bold**` and `` `code` `` without them), runs of whitespace made one space.
fn fold_for_echo(text: &str) -> String {
    let kept: String = text
        .chars()
        .filter(|c| !matches!(c, '*' | '`' | '#'))
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A row this short is never taken for an echo on its own ("---", "Rules").
const ECHO_MIN_CHARS: usize = 12;

/// The part of `text` below its last row that echoes one of `typed` (a row whose text, less
/// a leading prompt mark, is a piece of a typed text at least [`ECHO_MIN_CHARS`] long): what
/// the agent drew after the last prompt it was given. All of `text` when no row echoes. Pure.
pub fn after_echo<'a>(text: &'a str, typed: &[String]) -> &'a str {
    let folded: Vec<String> = typed
        .iter()
        .map(|t| fold_for_echo(t))
        .filter(|t| t.chars().count() >= ECHO_MIN_CHARS)
        .collect();
    if folded.is_empty() {
        return text;
    }
    let mut end_of_echo = None;
    let mut offset = 0;
    let mut in_echo = false;
    for row in text.split_inclusive('\n') {
        let body = row.trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, '❯' | '›' | '>' | '│' | '┃' | '▎' | '*')
        });
        // orch's own `[orch:ping <id>]` mark ends a typed ping: not part of its text.
        let (body, marked) = match body.find("[orch:ping ") {
            Some(i) => (&body[..i], true),
            None => (body, false),
        };
        let body = fold_for_echo(body);
        let piece = (!body.is_empty() && folded.iter().any(|t| t.contains(&body)))
            || (marked && body.is_empty() && in_echo);
        // A short piece counts only right below a longer echoed row (a wrapped tail).
        in_echo = piece && (in_echo || body.chars().count() >= ECHO_MIN_CHARS);
        if in_echo {
            end_of_echo = Some(offset + row.len());
        }
        offset += row.len();
    }
    match end_of_echo {
        Some(end) => &text[end.min(text.len())..],
        None => text,
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    state: String,
    pattern: String,
    rows: Option<usize>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreset {
    #[serde(default)]
    aliases: Vec<String>,
    rules: Vec<RawRule>,
}

/// Parse a rule file: one table per preset, `[[<preset>.rules]]` entries with `state`,
/// `pattern`, optional `rows` and `name`, and an optional `<preset>.aliases` list. The map
/// holds every preset under its name and each alias. `source_name` is for error messages.
pub fn parse_rules_toml(
    text: &str,
    source_name: &str,
) -> Result<BTreeMap<String, Vec<ScreenRule>>, DetectError> {
    let raw: BTreeMap<String, RawPreset> =
        toml::from_str(text).map_err(|e| DetectError::RulesToml {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
    let mut out = BTreeMap::new();
    for (preset, body) in raw {
        let rules = compile_preset(source_name, &preset, body.rules)?;
        for alias in body.aliases {
            out.insert(alias, rules.clone());
        }
        out.insert(preset, rules);
    }
    Ok(out)
}

/// Compile one preset's rules, in order.
fn compile_preset(
    source_name: &str,
    preset: &str,
    raw: Vec<RawRule>,
) -> Result<Vec<ScreenRule>, DetectError> {
    let mut rules = Vec::with_capacity(raw.len());
    for (index, r) in raw.into_iter().enumerate() {
        let fail = |message: String| DetectError::Rule {
            source_name: source_name.to_owned(),
            preset: preset.to_owned(),
            index,
            message,
        };
        let state: ScreenState = r.state.parse().map_err(fail)?;
        let mut rule =
            ScreenRule::new(state, r.pattern.trim(), r.rows).map_err(|e| fail(e.to_string()))?;
        if let Some(name) = r.name {
            rule.name = name;
        }
        rules.push(rule);
    }
    Ok(rules)
}

const BUILTIN_TOML: &str = include_str!("rules.toml");

/// The canonical names of the built-in presets (aliases such as `claude` also resolve).
const PRESETS: [&str; 5] = ["claude-code", "codex", "opencode", "gemini-cli", "generic"];

/// The built-in rule file, parsed once; each preset's regexes are compiled on first use only
/// (compiling every preset's rules would be most of a config load).
static BUILTIN_RAW: LazyLock<BTreeMap<String, RawPreset>> = LazyLock::new(|| {
    toml::from_str(BUILTIN_TOML)
        .unwrap_or_else(|e| panic!("the built-in screen rules do not parse: {e}"))
});

static BUILTIN: LazyLock<std::sync::Mutex<BTreeMap<String, Vec<ScreenRule>>>> =
    LazyLock::new(Default::default);

/// The built-in presets' canonical names: `claude-code`, `codex`, `opencode`, `gemini-cli`,
/// and `generic` (the fallback for any other command).
pub fn builtin_presets() -> &'static [&'static str] {
    &PRESETS
}

/// The built-in rules for `preset` (a canonical name or alias such as `claude`, `gemini`).
pub fn builtin_rules(preset: &str) -> Option<Vec<ScreenRule>> {
    let (name, body) = BUILTIN_RAW
        .iter()
        .find(|(name, body)| *name == preset || body.aliases.iter().any(|a| a == preset))?;
    let mut cache = BUILTIN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(rules) = cache.get(name) {
        return Some(rules.clone());
    }
    let rules = compile_preset("src/detect/rules.toml (built in)", name, body.rules.clone())
        .unwrap_or_else(|e| panic!("the built-in screen rules are broken: {e}"));
    cache.insert(name.clone(), rules.clone());
    Some(rules)
}

#[cfg(test)]
#[path = "screen_tests.rs"]
mod tests;
