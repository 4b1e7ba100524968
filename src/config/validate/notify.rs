//! Building `[[notify]]`: a webhook URL or a command argv (exactly one), a known body format,
//! known event names and agents. Messages never repeat a webhook URL (it may hold a secret).
use std::time::Duration;

use super::Checker;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::schema::Seg;
use crate::events;

/// The events a sink receives when it names none: what a person must act on, and the end.
pub const DEFAULT_EVENTS: &[&str] = &[
    events::NEEDS_ATTENTION,
    events::GAVE_UP,
    events::TIMED_OUT,
    events::STALLED,
    events::PHASE_QUIET,
    "host_unreachable",
    events::SEQUENCE_COMPLETE,
];

/// How long one delivery attempt may take unless the sink says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn build_notify(
    c: &mut Checker<'_>,
    raw: &[RawNotify],
    agents: &[Agent],
) -> Vec<NotifySink> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, n)| build_sink(c, i, n, agents))
        .collect()
}

fn build_sink(
    c: &mut Checker<'_>,
    i: usize,
    n: &RawNotify,
    agents: &[Agent],
) -> Option<NotifySink> {
    let here = [Seg::Key("notify"), Seg::Index(i)];
    let at = |key| [Seg::Key("notify"), Seg::Index(i), Seg::Key(key)];
    let target = match (&n.webhook, &n.command) {
        (Some(_), Some(_)) => {
            c.error(
                &here,
                format!("notify[{i}]: set webhook or command, not both"),
            );
            None
        }
        (None, None) => {
            c.error(
                &here,
                format!("notify[{i}]: set webhook = \"https://...\" or command = [\"argv\", ...]"),
            );
            None
        }
        (Some(url), None) => match check_url(url) {
            Ok(()) => Some(NotifyTarget::Webhook(url.clone())),
            Err(why) => {
                c.error(&at("webhook"), format!("notify[{i}].webhook {why}"));
                None
            }
        },
        (None, Some(argv)) => {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                c.error(&at("command"), format!("notify[{i}].command needs a program: command = [\"notify-send\", \"{{summary}}\"]"));
                None
            } else {
                Some(NotifyTarget::Command(argv.clone()))
            }
        }
    };
    let format = match n.format.as_deref() {
        None => Some(NotifyFormat::Json),
        Some(f) => NotifyFormat::parse(f).or_else(|| {
            c.error(
                &at("format"),
                format!(
                    "notify[{i}].format {f:?} is not known (use one of: {})",
                    NotifyFormat::NAMES.join(", ")
                ),
            );
            None
        }),
    };
    let events = match &n.events {
        None => DEFAULT_EVENTS.iter().map(|e| e.to_string()).collect(),
        Some(list) => {
            for e in list {
                if e == events::NOTIFY_FAILED {
                    c.error(&at("events"), format!("notify[{i}].events: {e} cannot be notified (a failing sink would notify about itself)"));
                } else if !events::ALL.contains(&e.as_str()) {
                    let hint = crate::config::schema::nearest(e, events::ALL)
                        .map(|k| format!(" (did you mean {k:?}?)"))
                        .unwrap_or_default();
                    c.error(
                        &at("events"),
                        format!("notify[{i}].events: {e:?} is not an event orch logs{hint}"),
                    );
                }
            }
            list.clone()
        }
    };
    if let Some(names) = &n.agents {
        for name in names {
            if !agents.iter().any(|a| &a.name == name) {
                c.error(
                    &at("agents"),
                    format!("notify[{i}].agents: no agent is named {name:?}"),
                );
            }
        }
    }
    let timeout = n.timeout.map_or(DEFAULT_TIMEOUT, |s| s.0);
    if timeout.is_zero() {
        c.error(
            &at("timeout"),
            format!("notify[{i}].timeout must be more than 0 seconds"),
        );
    }
    Some(NotifySink {
        target: target?,
        format: format?,
        events,
        agents: n.agents.clone(),
        timeout,
    })
}

/// An http(s) URL with a host; the reason it is not, without echoing the URL.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must be an http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err("has no host");
    }
    if url.parse::<hyper::Uri>().is_err() {
        return Err("is not a valid URL");
    }
    Ok(())
}
