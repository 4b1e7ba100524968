//! What the sim does as Claude Code around a prompt when `ORCH_SIM_HOOKS=1`: it runs
//! `orch hook UserPromptSubmit` / `StopFailure` with Claude-shaped JSON and keeps a transcript.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::Identity;

/// The sim's Claude-like side effects; inert unless `ORCH_SIM_HOOKS=1` and `ORCH_LOG_DIR` set.
pub struct Claude {
    /// `<log_dir>/sim/<agent>-<pid>.jsonl` (Claude keeps `~/.claude/projects/<dir>/<id>.jsonl`).
    transcript: Option<PathBuf>,
    session_id: String,
    cwd: String,
}

impl Claude {
    pub fn from_env(id: &Identity) -> Self {
        let on = std::env::var("ORCH_SIM_HOOKS").is_ok_and(|v| v.trim() == "1");
        let transcript = id.log_dir.as_ref().filter(|_| on).map(|dir| {
            dir.join("sim")
                .join(format!("{}-{}.jsonl", id.agent, std::process::id()))
        });
        Claude {
            transcript,
            session_id: format!("sim-{}-{}", id.agent, std::process::id()),
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        }
    }

    /// A prompt was submitted (idle): the UserPromptSubmit hook runs first, then the transcript
    /// gets its `user` row, as Claude does.
    pub fn prompt_submitted(&self, prompt: &str) {
        if self.transcript.is_none() {
            return;
        }
        self.hook("UserPromptSubmit", json!({ "prompt": prompt }));
        self.append(json!({
            "type": "user", "message": { "role": "user", "content": prompt },
        }));
    }

    /// A prompt typed while a turn runs: Claude queues it into the running turn; no hook fires,
    /// the transcript gets a `queue-operation` row.
    pub fn prompt_absorbed(&self, prompt: &str) {
        self.append(json!({
            "type": "queue-operation", "operation": "enqueue", "content": prompt,
        }));
    }

    /// The turn ended on a usage limit: the StopFailure hook (`error = "rate_limit"`) and a 429
    /// row in the transcript.
    pub fn limit_hit(&self, banner: &str) {
        if self.transcript.is_none() {
            return;
        }
        let text = format!("API Error: 429 {banner}");
        self.append(json!({
            "type": "assistant", "isApiErrorMessage": true,
            "message": { "role": "assistant", "content": [{ "type": "text", "text": text }] },
        }));
        self.hook(
            "StopFailure",
            json!({ "error": "rate_limit", "error_details": banner }),
        );
    }

    fn base(&self, event: &str) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("session_id".into(), json!(self.session_id));
        m.insert(
            "transcript_path".into(),
            json!(self.transcript.as_ref().map(|p| p.display().to_string())),
        );
        m.insert("cwd".into(), json!(self.cwd));
        m.insert("hook_event_name".into(), json!(event));
        m
    }

    /// Run `<this orch> hook <event>` with the event's JSON on stdin and wait for it (Claude
    /// waits for its hooks); a hook that cannot run is only a missing record.
    fn hook(&self, event: &str, fields: Value) {
        let mut input = self.base(event);
        if let Value::Object(f) = fields {
            input.extend(f);
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let child = Command::new(exe)
            .args(["hook", event])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(Value::Object(input).to_string().as_bytes());
            }
            let _ = child.wait();
        }
    }

    fn append(&self, row: Value) {
        let Some(path) = &self.transcript else { return };
        let mut row = match row {
            Value::Object(m) => m,
            _ => return,
        };
        row.insert("sessionId".into(), json!(self.session_id));
        row.insert(
            "timestamp".into(),
            json!(crate::fleet::ping_log::now_rfc3339()),
        );
        let line = format!("{}\n", Value::Object(row));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
            })
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "orch sim: cannot write the transcript {}: {e}",
                path.display()
            );
        }
    }
}
