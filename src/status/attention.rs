//! What needs a person, for the top of `orch status`: login/auth and dialog episodes, agents
//! the watchdog gave up on or timed out, and the attention pass's open episodes.
use serde::Serialize;

use super::Report;
use crate::config::Config;
use crate::notify::episodes;

/// One thing that needs attention.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttentionItem {
    /// The event that reports it (`needs_attention`, `gave_up`, `timed_out`, `stalled`, ...).
    pub event: String,
    /// The agent, or null for the project (a quiet phase).
    pub agent: Option<String>,
    pub summary: String,
    /// RFC 3339: since when (null when unknown).
    pub since: Option<String>,
}

/// Everything that needs attention, agents in config order, the project last.
pub fn list(cfg: &Config, r: &Report) -> Vec<AttentionItem> {
    let open = episodes::load(cfg).open;
    let mut items = Vec::new();
    for a in &r.agents {
        let mut add = |event: &str, summary: String, since: Option<String>| {
            if !items
                .iter()
                .any(|i: &AttentionItem| i.event == event && i.agent.as_deref() == Some(&a.name))
            {
                items.push(AttentionItem {
                    event: event.into(),
                    agent: Some(a.name.clone()),
                    summary,
                    since,
                });
            }
        };
        if let Some(state) = &a.needs_attention {
            let what = match state.as_str() {
                "login_required" => "needs a login".to_string(),
                "auth_error" => "has an auth error: check its key".to_string(),
                other => format!("needs attention: {other}"),
            };
            add(
                "needs_attention",
                format!("{} {what}", a.name),
                a.since.clone(),
            );
        }
        match (a.state, a.parked) {
            ("gave_up", _) => add(
                "gave_up",
                format!("{}: orch gave up restarting it", a.name),
                a.since.clone(),
            ),
            (_, Some("timed_out")) => add(
                "timed_out",
                format!("{} ran past its timeout and was stopped", a.name),
                a.since.clone(),
            ),
            _ => {}
        }
        for ep in open.values().filter(|e| e.agent == a.name) {
            add(&ep.event, ep.summary.clone(), super::rfc3339(ep.opened));
        }
    }
    for ep in open.values().filter(|e| e.agent.is_empty()) {
        items.push(AttentionItem {
            event: ep.event.clone(),
            agent: None,
            summary: ep.summary.clone(),
            since: super::rfc3339(ep.opened),
        });
    }
    items
}

/// The lines above the status table: `needs attention:` and one line per item (none: nothing).
pub fn render(items: &[AttentionItem]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut out = String::from("needs attention:\n");
    for i in items {
        out += &format!("  ! {}\n", i.summary);
    }
    out
}
