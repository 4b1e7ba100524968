//! Each agent CLI's headless form: the argv (and whether the prompt goes on stdin) and the
//! parser of its output, read line by line from disk so a huge log is never held in memory.
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::Value;

use super::model::{Outcome, Reason};
use crate::config::{Backend, Profile};

/// Which output shape a backend prints headless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `claude -p --output-format stream-json --verbose`: JSON lines ending in a `result` object.
    Claude,
    /// `codex exec --json`: JSON lines (`thread.started`, `item.completed`, `turn.completed|failed`).
    Codex,
    /// `gemini -p --output-format json`: one JSON object; errors as JSON on stderr, exit 41...
    Gemini,
    /// `opencode run --format json`: JSON lines (`step_start`, `text`, `step_finish`, `error`).
    Opencode,
    /// Any other command: the prompt on stdin, plain text out; the exit status decides.
    Plain,
}

impl Form {
    pub fn of(backend: &Backend) -> Form {
        match backend.preset.as_deref() {
            Some("claude-code") => Form::Claude,
            Some("codex") => Form::Codex,
            Some("gemini-cli") => Form::Gemini,
            Some("opencode") => Form::Opencode,
            _ => Form::Plain,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Claude => "claude",
            Form::Codex => "codex",
            Form::Gemini => "gemini",
            Form::Opencode => "opencode",
            Form::Plain => "plain",
        }
    }
}

/// How to start the agent: the argv, and the prompt on stdin or not (then it is in the argv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub argv: Vec<String>,
    pub prompt_on_stdin: bool,
}

/// The headless argv for `backend` under `profile`. `bin` is split like a shell would
/// (`bin = "node /opt/claude.js"`); the backend's interactive `flags` are not used.
pub fn invocation(backend: &Backend, profile: &Profile, prompt: &str) -> Invocation {
    let mut argv = shell_words::split(&backend.bin).unwrap_or_else(|_| vec![backend.bin.clone()]);
    let form = Form::of(backend);
    let model = profile.model.clone();
    let perm = profile.permission_mode.clone();
    let mut push = |items: &[&str]| argv.extend(items.iter().map(|s| s.to_string()));
    let prompt_on_stdin = match form {
        Form::Claude => {
            push(&["-p", "--output-format", "stream-json", "--verbose"]);
            push(&[
                "--permission-mode",
                perm.as_deref().unwrap_or("bypassPermissions"),
            ]);
            if let Some(m) = &model {
                push(&["--model", m]);
            }
            if let Some(n) = profile.max_turns {
                push(&["--max-turns", &n.to_string()]);
            }
            true
        }
        Form::Codex => {
            push(&["exec", "--json", "--skip-git-repo-check"]);
            match perm.as_deref() {
                Some(p) => push(&["--sandbox", p]),
                None => push(&["--full-auto"]),
            }
            if let Some(m) = &model {
                push(&["--model", m]);
            }
            push(&["-"]);
            true
        }
        Form::Gemini => {
            push(&["--output-format", "json"]);
            push(&["--approval-mode", perm.as_deref().unwrap_or("yolo")]);
            if let Some(m) = &model {
                push(&["--model", m]);
            }
            push(&["-p", prompt]);
            false
        }
        Form::Opencode => {
            push(&["run", "--format", "json", "--auto"]);
            if let Some(m) = &model {
                push(&["--model", m]);
            }
            push(&[prompt]);
            false
        }
        Form::Plain => true,
    };
    Invocation {
        argv,
        prompt_on_stdin,
    }
}

/// Usage-limit wording the CLIs print (checked on failures only).
fn is_limit_text(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "usage limit",
        "limit reached",
        "rate limit",
        "quota exceeded",
        "resource_exhausted",
    ]
    .iter()
    .any(|p| t.contains(p))
}

fn short(text: &str) -> String {
    const MAX: usize = 2000;
    let t = text.trim();
    if t.len() <= MAX {
        return t.to_string();
    }
    let mut end = MAX;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &t[..end])
}

/// Each JSON line of a file, streamed (non-JSON lines are skipped).
fn json_lines(path: &Path, mut each: impl FnMut(Value)) {
    let Ok(f) = std::fs::File::open(path) else {
        return;
    };
    let mut reader = BufReader::new(f);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let trimmed = line.trim_ascii();
        if trimmed.first() == Some(&b'{')
            && let Ok(v) = serde_json::from_slice::<Value>(trimmed)
        {
            each(v);
        }
    }
}

/// The last `max` bytes of a file, as text.
pub fn tail_text(path: &Path, max: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.take(max).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Parse a finished run: its stdout and stderr files and its exit code (`None`: killed).
pub fn parse(form: Form, stdout: &Path, stderr: &Path, exit: Option<i32>) -> Outcome {
    let mut o = match form {
        Form::Claude => parse_claude(stdout),
        Form::Codex => parse_codex(stdout),
        Form::Gemini => parse_gemini(stdout, stderr),
        Form::Opencode => parse_opencode(stdout),
        Form::Plain => Outcome {
            success: true,
            summary: Some(short(&tail_text(stdout, 2000))),
            ..Outcome::default()
        },
    };
    o.exit_code = exit;
    if exit != Some(0) {
        o.success = false;
    }
    if !o.success {
        let err_tail = tail_text(stderr, 4000);
        if o.error.is_none() && !err_tail.trim().is_empty() {
            o.error = Some(short(&err_tail));
        }
        let limit = o.error.as_deref().is_some_and(is_limit_text)
            || is_limit_text(&err_tail)
            || (form == Form::Plain && is_limit_text(&tail_text(stdout, 4000)));
        if limit && o.reason != Some(Reason::MaxTurns) {
            o.reason = Some(Reason::Limit);
        }
        if o.reason.is_none() {
            o.reason = Some(Reason::Exit);
        }
        if o.error.is_none() {
            o.error = Some(match exit {
                Some(c) => format!("the agent exited with status {c}"),
                None => "the agent was killed by a signal".into(),
            });
        }
    } else {
        o.reason = Some(Reason::Ok);
    }
    o
}

/// Claude: success needs the `result` object with `is_error == false` (a failed API call can
/// say `subtype: "success"` with `is_error: true`).
fn parse_claude(stdout: &Path) -> Outcome {
    let mut o = Outcome::default();
    let mut result: Option<Value> = None;
    json_lines(stdout, |v| {
        if o.session_id.is_none()
            && let Some(s) = v.get("session_id").and_then(Value::as_str)
        {
            o.session_id = Some(s.to_string());
        }
        if v.get("type").and_then(Value::as_str) == Some("result") {
            result = Some(v);
        }
    });
    let Some(r) = result else {
        o.error = Some("the agent printed no result object".into());
        o.reason = Some(Reason::AgentError);
        return o;
    };
    let subtype = r.get("subtype").and_then(Value::as_str).unwrap_or("");
    let is_error = r.get("is_error").and_then(Value::as_bool).unwrap_or(true);
    o.session_id = r
        .get("session_id")
        .and_then(Value::as_str)
        .map(String::from)
        .or(o.session_id);
    o.cost_usd = r.get("total_cost_usd").and_then(Value::as_f64);
    o.turns = r.get("num_turns").and_then(Value::as_u64);
    let text = r.get("result").and_then(Value::as_str).map(short);
    o.success = !is_error && subtype == "success";
    if o.success {
        o.summary = text;
    } else {
        o.reason = Some(if subtype == "error_max_turns" {
            Reason::MaxTurns
        } else {
            Reason::AgentError
        });
        o.error = Some(text.unwrap_or_else(|| format!("the agent ended with {subtype}")));
    }
    o
}

/// Codex: `turn.completed` is success, `turn.failed` (or a non-reconnect `error`) failure;
/// `error` events saying "Reconnecting..." are retries, not the end.
fn parse_codex(stdout: &Path) -> Outcome {
    let mut o = Outcome::default();
    let mut completed = false;
    let mut failed: Option<String> = None;
    let mut turns = 0u64;
    json_lines(stdout, |v| {
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "thread.started" => {
                o.session_id = v.get("thread_id").and_then(Value::as_str).map(String::from)
            }
            "turn.completed" => {
                completed = true;
                turns += 1;
            }
            "turn.failed" => {
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("the turn failed");
                failed = Some(msg.to_string());
            }
            "error" => {
                let msg = v.get("message").and_then(Value::as_str).unwrap_or("error");
                if !msg.to_ascii_lowercase().starts_with("reconnecting") {
                    failed = Some(msg.to_string());
                }
            }
            "item.completed" => {
                if v.pointer("/item/type").and_then(Value::as_str) == Some("agent_message")
                    && let Some(t) = v.pointer("/item/text").and_then(Value::as_str)
                {
                    o.summary = Some(short(t));
                }
            }
            _ => {}
        }
    });
    o.turns = (turns > 0).then_some(turns);
    match failed {
        Some(e) => {
            o.error = Some(short(&e));
            o.reason = Some(Reason::AgentError);
        }
        None if completed => o.success = true,
        None => {
            o.error = Some("the agent never completed a turn".into());
            o.reason = Some(Reason::AgentError);
        }
    }
    o
}

/// Gemini: one JSON object on stdout (`response`, `stats`, `session_id`); an error is a JSON
/// `error` object on stderr with a non-zero exit (41 authentication, 53 turn limit...).
fn parse_gemini(stdout: &Path, stderr: &Path) -> Outcome {
    let mut o = Outcome::default();
    let mut last: Option<Value> = None;
    json_lines(stdout, |v| last = Some(v));
    // The object may be pretty-printed over several lines: fall back to the whole (small) file.
    if last.is_none()
        && std::fs::metadata(stdout).is_ok_and(|m| m.len() < 16 << 20)
        && let Ok(text) = std::fs::read_to_string(stdout)
    {
        last = serde_json::from_str(text.trim()).ok();
    }
    let err_text = tail_text(stderr, 64 << 10);
    let err_obj = err_text
        .find('{')
        .and_then(|i| serde_json::from_str::<Value>(err_text[i..].trim()).ok());
    if let Some(v) = &last {
        o.session_id = v
            .get("session_id")
            .and_then(Value::as_str)
            .map(String::from);
        o.summary = v.get("response").and_then(Value::as_str).map(short);
        if let Some(models) = v.pointer("/stats/models").and_then(Value::as_object) {
            let n: u64 = models
                .values()
                .filter_map(|m| m.pointer("/api/totalRequests").and_then(Value::as_u64))
                .sum();
            o.turns = (n > 0).then_some(n);
        }
    }
    let error = last
        .as_ref()
        .and_then(|v| v.get("error"))
        .or_else(|| err_obj.as_ref().and_then(|v| v.get("error")));
    if let Some(e) = error {
        let msg = e.get("message").and_then(Value::as_str).unwrap_or("error");
        o.error = Some(short(msg));
        let code = e.get("code").and_then(Value::as_i64);
        let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
        o.reason = Some(if code == Some(53) || kind.contains("TurnLimit") {
            Reason::MaxTurns
        } else {
            Reason::AgentError
        });
    } else if o.summary.is_some() {
        o.success = true;
    } else {
        o.error = Some("the agent printed no response".into());
        o.reason = Some(Reason::AgentError);
    }
    o
}

/// opencode: `error` events fail the run; success needs a `step_finish`.
fn parse_opencode(stdout: &Path) -> Outcome {
    let mut o = Outcome::default();
    let mut finished = false;
    let mut cost = 0.0;
    let mut steps = 0u64;
    let mut text = String::new();
    let mut failed: Option<String> = None;
    json_lines(stdout, |v| {
        if o.session_id.is_none() {
            o.session_id = v.get("sessionID").and_then(Value::as_str).map(String::from);
        }
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => {
                if let Some(t) = v.pointer("/part/text").and_then(Value::as_str) {
                    text = t.to_string();
                }
            }
            "step_finish" => {
                finished = true;
                steps += 1;
                cost += v
                    .pointer("/part/cost")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
            }
            "error" => {
                let msg = v
                    .pointer("/error/data/message")
                    .or_else(|| v.pointer("/error/message"))
                    .or_else(|| v.pointer("/error/name"))
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                failed = Some(msg.to_string());
            }
            _ => {}
        }
    });
    o.turns = (steps > 0).then_some(steps);
    o.cost_usd = finished.then_some(cost);
    if !text.is_empty() {
        o.summary = Some(short(&text));
    }
    match failed {
        Some(e) => {
            o.error = Some(short(&e));
            o.reason = Some(Reason::AgentError);
        }
        None if finished => o.success = true,
        None => {
            o.error = Some("the agent finished no step".into());
            o.reason = Some(Reason::AgentError);
        }
    }
    o
}

#[cfg(test)]
#[path = "headless_tests.rs"]
mod tests;
