//! The preset-derived parts of a backend: classifier rules (the backend's own `screen_rules`
//! before its preset's), dialog answers, and the check of each agent's `auto_accept` keys.
use std::collections::BTreeMap;

use super::model::{Agent, Backend};
use super::raw::RawBackend;
use super::schema::Seg;
use super::problem::Checker;
use crate::presets::DialogAnswer;
use crate::detect::{ScreenRule, builtin_rules};

/// The backend's `screen_rules` (compiled, in order), then the rules of its preset.
pub(super) fn screen_rules(
    c: &mut Checker<'_>,
    name: &str,
    b: &RawBackend,
    preset: Option<&str>,
) -> Vec<ScreenRule> {
    let mut rules = Vec::new();
    for (i, r) in b.screen_rules.iter().flatten().enumerate() {
        let at = [
            Seg::Key("backend"),
            Seg::Key(name),
            Seg::Key("screen_rules"),
            Seg::Index(i),
        ];
        let who = format!("backend {name}: screen_rules[{i}]");
        let state = match r.state.as_deref().unwrap_or("").parse() {
            Ok(s) => s,
            Err(e) => {
                c.error(&at, format!("{who}: {e}"));
                continue;
            }
        };
        let Some(pattern) = r.pattern.as_deref().filter(|p| !p.is_empty()) else {
            c.error(&at, format!("{who}: pattern is required"));
            continue;
        };
        match ScreenRule::new(state, pattern, r.rows) {
            Ok(mut rule) => {
                rule.name = r
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{name} screen_rules[{i}]"));
                rules.push(rule);
            }
            Err(e) => c.error(&at, format!("{who}: {e}")),
        }
    }
    rules.extend(preset.and_then(builtin_rules).unwrap_or_default());
    rules
}

/// The backend's dialog answers, compiled.
pub(super) fn dialogs(c: &mut Checker<'_>, name: &str, b: &RawBackend) -> Vec<DialogAnswer> {
    let mut out = Vec::new();
    for (i, d) in b.dialogs.iter().flatten().enumerate() {
        let at = [
            Seg::Key("backend"),
            Seg::Key(name),
            Seg::Key("dialogs"),
            Seg::Index(i),
        ];
        let key = d.key.as_deref().unwrap_or("");
        let built = DialogAnswer::new(
            key,
            d.state.as_deref().unwrap_or(""),
            d.pattern.as_deref().unwrap_or(""),
            d.keys.clone().unwrap_or_default(),
        );
        match built {
            Ok(a) if !key.is_empty() => out.push(a),
            Ok(_) => c.error(&at, format!("backend {name}: dialogs[{i}] has no key")),
            Err(e) => c.error(&at, format!("backend {name}: dialogs[{i}]: {e}")),
        }
    }
    out
}

/// Every `auto_accept` entry must name a dialog the agent's backend knows how to answer.
pub(super) fn check_auto_accept(
    c: &mut Checker<'_>,
    agents: &[Agent],
    backends: &BTreeMap<String, Backend>,
) {
    for (i, a) in agents.iter().enumerate() {
        let Some(backend) = backends.get(&a.backend) else {
            continue;
        };
        let mut known: Vec<&str> = backend.dialogs.iter().map(|d| d.key.as_str()).collect();
        known.dedup();
        for key in a
            .auto_accept
            .iter()
            .filter(|k| !known.contains(&k.as_str()))
        {
            let list = if known.is_empty() {
                "it answers none".to_string()
            } else {
                format!("known: {}", known.join(", "))
            };
            c.error(
                &[Seg::Key("agent"), Seg::Index(i), Seg::Key("auto_accept")],
                format!(
                    "agent {}: auto_accept {key:?} is not a dialog of backend {} ({list})",
                    a.name, a.backend
                ),
            );
        }
    }
}
