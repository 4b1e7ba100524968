//! What a notification says: each event's one-line human summary, a batch of events as one
//! message, the body and headers of each webhook format, and a sink described without secrets.
use serde_json::{Map, Value, json};

use crate::config::{NotifyFormat, NotifyTarget};
use crate::events;

/// The name of the event `orch notify test` sends.
pub const TEST_EVENT: &str = "notify_test";

/// Discord rejects longer `content`.
const DISCORD_MAX: usize = 2000;

fn text<'a>(e: &'a Value, key: &str) -> Option<&'a str> {
    e.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The event's name ("" when it has none).
pub fn event_name(e: &Value) -> &str {
    text(e, "event").unwrap_or("")
}

/// The agent (or host) the event is about, if any.
pub fn event_agent(e: &Value) -> Option<&str> {
    text(e, "agent")
}

/// `7m`, `2h`, `1h30m`, `45s`.
pub fn human_secs(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ if s % 3600 / 60 == 0 => format!("{}h", s / 3600),
        _ => format!("{}h{}m", s / 3600, s % 3600 / 60),
    }
}

/// One line a person can act on. An event's own `summary` field wins.
pub fn summary(e: &Value) -> String {
    if let Some(s) = text(e, "summary") {
        return one_line(s);
    }
    let agent = event_agent(e).unwrap_or("an agent");
    let num = |key: &str| e.get(key).and_then(Value::as_i64);
    let line = match event_name(e) {
        events::NEEDS_ATTENTION => match text(e, "state") {
            Some("waiting_input") => {
                format!("{agent} is waiting for input (a dialog or permission prompt)")
            }
            Some("login_required") => format!("{agent} needs a login"),
            Some("auth_error") => format!("{agent} has an auth error: check its key"),
            Some(other) => format!("{agent} needs attention: {other}"),
            None => format!("{agent} needs attention"),
        },
        events::GAVE_UP => format!(
            "{agent} exited {} times; orch gave up restarting it",
            num("restarts").unwrap_or(0)
        ),
        events::TIMED_OUT => match num("timeout_secs") {
            Some(t) => format!(
                "{agent} ran past its timeout ({}) and was stopped",
                human_secs(t)
            ),
            None => format!("{agent} ran past its timeout and was stopped"),
        },
        events::STALLED => format!(
            "{agent} is still stalled after {} restarts",
            num("restarts").unwrap_or(0)
        ),
        events::PHASE_QUIET => format!(
            "phase {} has had no handoff commit for {}",
            text(e, "phase").unwrap_or("?"),
            human_secs(num("quiet_secs").unwrap_or(0))
        ),
        "host_unreachable" => {
            let host = text(e, "host").or(event_agent(e)).unwrap_or("a host");
            match text(e, "error") {
                Some(err) => format!("host {host} is unreachable: {err}"),
                None => format!("host {host} is unreachable"),
            }
        }
        events::SEQUENCE_COMPLETE => "every phase is done: the sequence is complete".into(),
        events::STATE_CHANGED => format!(
            "{agent}: {} -> {}",
            text(e, "from").unwrap_or("?"),
            text(e, "to").unwrap_or("?")
        ),
        events::LIMIT_HIT => format!("{agent} hit a usage limit"),
        events::PHASE_ADVANCED => format!(
            "phase advanced from {} to {}",
            e.get("from").unwrap_or(&Value::Null),
            e.get("to").unwrap_or(&Value::Null)
        ),
        TEST_EVENT => "a test notification from orch notify test".into(),
        other => match event_agent(e) {
            Some(a) => format!("{other}: {a}"),
            None => other.to_string(),
        },
    };
    one_line(&line)
}

/// Newlines and control characters become spaces: a summary is one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Events that are a person's problem get a high ntfy priority.
fn is_attention(name: &str) -> bool {
    !matches!(
        name,
        events::SEQUENCE_COMPLETE | events::STATE_CHANGED | events::PHASE_ADVANCED | TEST_EVENT
    )
}

/// One delivery: the events a sink receives within one batch window.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub project: String,
    pub events: Vec<Value>,
    /// Where command sinks run: the project folder.
    pub dir: std::path::PathBuf,
}

impl Message {
    /// The event name, or `batch` when the events differ.
    pub fn event(&self) -> &str {
        let first = self.events.first().map_or("", event_name);
        if self.events.iter().all(|e| event_name(e) == first) {
            first
        } else {
            "batch"
        }
    }

    /// The agent all events are about, or "" when none or several.
    pub fn agent(&self) -> &str {
        let first = self.events.first().and_then(|e| event_agent(e));
        if self.events.iter().all(|e| event_agent(e) == first) {
            first.unwrap_or("")
        } else {
            ""
        }
    }

    /// One summary line per event.
    pub fn summary(&self) -> String {
        match self.events.as_slice() {
            [one] => summary(one),
            many => many
                .iter()
                .map(|e| format!("- {}", summary(e)))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The title line: `orch <project>: <event>` or `... N events`.
    pub fn title(&self) -> String {
        match self.events.len() {
            1 => format!("orch {}: {}", self.project, self.event()),
            n => format!("orch {}: {n} events", self.project),
        }
    }

    /// The text chat formats post: the summary, prefixed by the project.
    pub fn text(&self) -> String {
        match self.events.len() {
            1 => format!("orch {}: {}", self.project, self.summary()),
            _ => format!("{}\n{}", self.title(), self.summary()),
        }
    }

    /// The json format: one event plus `summary` and `project`; several as
    /// `{"event": "batch", "project", "summary", "events": [...]}`.
    pub fn json(&self) -> Value {
        let with_summary = |e: &Value| {
            let mut m = e.as_object().cloned().unwrap_or_else(Map::new);
            m.insert("summary".into(), Value::String(summary(e)));
            m.insert("project".into(), Value::String(self.project.clone()));
            Value::Object(m)
        };
        match self.events.as_slice() {
            [one] => with_summary(one),
            many => json!({
                "event": "batch",
                "project": self.project,
                "summary": self.summary(),
                "events": many.iter().map(with_summary).collect::<Vec<_>>(),
            }),
        }
    }
}

/// A webhook request's body and the headers beyond the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub bytes: Vec<u8>,
}

/// The body each format posts: Slack `{"text"}`, Discord `{"content"}`, ntfy the summary with
/// Title/Priority/Tags headers, json the event(s) with `summary` and `project`.
pub fn body(format: NotifyFormat, m: &Message) -> Body {
    let json_body = |v: Value| Body {
        content_type: "application/json",
        headers: Vec::new(),
        bytes: v.to_string().into_bytes(),
    };
    match format {
        NotifyFormat::Json => json_body(m.json()),
        NotifyFormat::Slack => json_body(json!({ "text": m.text() })),
        NotifyFormat::Discord => {
            let text: String = m.text().chars().take(DISCORD_MAX).collect();
            json_body(json!({ "content": text }))
        }
        NotifyFormat::Ntfy => {
            let urgent = m.events.iter().any(|e| is_attention(event_name(e)));
            let mut tags: Vec<&str> = vec![if urgent {
                "warning"
            } else {
                "white_check_mark"
            }];
            for e in &m.events {
                let n = event_name(e);
                if !n.is_empty() && !tags.contains(&n) {
                    tags.push(n);
                }
            }
            Body {
                content_type: "text/plain; charset=utf-8",
                headers: vec![
                    ("Title", header_safe(&m.title())),
                    ("Priority", if urgent { "high" } else { "default" }.into()),
                    ("Tags", header_safe(&tags.join(","))),
                ],
                bytes: m.summary().into_bytes(),
            }
        }
    }
}

/// Header values are visible ASCII: anything else becomes `?`.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A sink as logs and events may show it: scheme and host of a URL (no user, path or query,
/// which may hold a secret), or the command's program.
pub fn describe(target: &NotifyTarget) -> String {
    match target {
        NotifyTarget::Webhook(url) => match url.parse::<hyper::Uri>() {
            Ok(u) => format!(
                "{}://{}{}",
                u.scheme_str().unwrap_or("?"),
                u.host().unwrap_or("?"),
                u.port_u16().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Err(_) => "webhook (unparsable URL)".into(),
        },
        NotifyTarget::Command(argv) => {
            let prog = argv.first().map(String::as_str).unwrap_or("");
            let base = std::path::Path::new(prog)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| prog.to_string());
            format!("command {base}")
        }
    }
}

/// A command sink's argv with `{event}`, `{summary}`, `{agent}` filled in each argument, in one
/// pass (a summary that contains `{agent}` stays as it is).
pub fn fill_argv(argv: &[String], m: &Message) -> Vec<String> {
    let summary = m.summary();
    let slots = [
        ("{event}", m.event()),
        ("{summary}", summary.as_str()),
        ("{agent}", m.agent()),
    ];
    argv.iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            'scan: while !rest.is_empty() {
                for (slot, value) in slots {
                    if let Some(after) = rest.strip_prefix(slot) {
                        out.push_str(value);
                        rest = after;
                        continue 'scan;
                    }
                }
                let c = rest.chars().next().unwrap_or_default();
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
            out
        })
        .collect()
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
