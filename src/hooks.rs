//! Claude Code hooks as signals: `orch hook <event>` turns a hook's stdin JSON into a compact
//! record in `<log_dir>/hooks/<agent>.jsonl` (last 500 kept), and the settings-file wiring.
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::write_atomic;

/// The hook events orch wires into `.claude/settings.local.json`.
pub const HOOK_EVENTS: &[&str] = &[
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "Stop",
    "Notification",
    "StopFailure",
    "PreCompact",
];

/// How many records a hook file keeps.
pub const MAX_RECORDS: usize = 500;

/// The most stdin a hook reads, and how long it waits for it.
const MAX_INPUT: u64 = 1 << 20;
const INPUT_WAIT: Duration = Duration::from_secs(2);
const LOCK_WAIT: Duration = Duration::from_millis(300);

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("I/O error at {path:?} while {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: io::Error,
    },
    #[error("{path:?} is not a JSON object, so orch will not rewrite it; fix or remove it")]
    NotAnObject { path: PathBuf },
    #[error("{path:?} is not valid JSON ({source}), so orch will not rewrite it; fix or remove it")]
    BadJson {
        path: PathBuf,
        source: serde_json::Error,
    },
}

fn io_err(path: &Path, doing: &'static str) -> impl FnOnce(io::Error) -> HookError + use<> {
    let path = path.to_path_buf();
    move |source| HookError::Io {
        path,
        doing,
        source,
    }
}

/// One compact hook record: a line of `<log_dir>/hooks/<agent>.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRecord {
    /// RFC 3339, when orch received the hook.
    pub ts: String,
    /// The hook event name, e.g. `PreToolUse`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// SessionStart's `source` (startup, resume, clear, compact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Notification's message, cut to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// UserPromptSubmit: the id of the orch ping in `prompt` (its trailing `[orch:ping <id>]`);
    /// the prompt itself is never kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_id: Option<String>,
    /// StopFailure: the kind of error that ended the turn (`rate_limit`, ...), cut to 80
    /// characters (from `error`, `error_type` or `reason`; an object's `type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// SessionStart: the session's transcript (its usage rows tell the context fill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_path: Option<String>,
}

/// The id in the last `[orch:ping <id>]` mark of `prompt`, if any (ids are `[A-Za-z0-9._-]`).
pub fn ping_id_in(prompt: &str) -> Option<String> {
    let start = prompt.rfind("[orch:ping ")? + "[orch:ping ".len();
    let rest = &prompt[start..];
    let id = &rest[..rest.find(']')?];
    let ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    ok.then(|| id.to_string())
}

impl HookRecord {
    /// The record's time in Unix seconds, if its `ts` parses.
    pub fn epoch(&self) -> Option<i64> {
        DateTime::parse_from_rfc3339(&self.ts)
            .ok()
            .map(|t| t.timestamp())
    }
}

/// The compact record of hook `event` with stdin `input` (any JSON; missing fields are fine).
pub fn record_from_input(event: &str, input: &Value, now: DateTime<Utc>) -> HookRecord {
    let text = |key: &str| {
        input
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    HookRecord {
        ts: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        event: event.to_string(),
        tool: text("tool_name"),
        session_id: text("session_id"),
        source: text("source"),
        message: text("message").map(|m| m.chars().take(200).collect()),
        ping_id: text("prompt").and_then(|p| ping_id_in(&p)),
        error: error_kind(input),
        transcript_path: text("transcript_path").filter(|_| event == "SessionStart"),
    }
}

/// The error kind of a StopFailure input: `error` / `error_type` / `reason` as a string, or
/// the `type` (else `code`) of an `error` object. Never the message text.
fn error_kind(input: &Value) -> Option<String> {
    let kind = ["error", "error_type", "reason"].iter().find_map(|k| {
        let v = input.get(*k)?;
        v.as_str().map(String::from).or_else(|| {
            v.get("type")
                .or_else(|| v.get("code"))
                .and_then(Value::as_str)
                .map(String::from)
        })
    })?;
    let kind: String = kind.chars().take(80).collect();
    (!kind.is_empty()).then_some(kind)
}

/// True when a hook record says the turn ended on a usage or rate limit (a Claude Code
/// `StopFailure` whose error is `rate_limit`).
pub fn is_rate_limit(record: &HookRecord) -> bool {
    record.event == "StopFailure"
        && record.error.as_deref().is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e.contains("rate_limit") || e.contains("rate limit") || e.contains("429")
        })
}

/// `<log_dir>/hooks/<agent>.jsonl`.
pub fn hooks_file(log_dir: &Path, agent: &str) -> PathBuf {
    log_dir.join("hooks").join(format!("{agent}.jsonl"))
}

/// A name safe to use as one path component (agent names, session ids).
fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c))
}

/// `orch hook <event>`: record the hook and exit 0 whatever happens, fast, without tmux.
/// The agent comes from `ORCH_AGENT`, the log dir from `ORCH_LOG_DIR`; without them it is a no-op.
pub fn run(event: &str) -> ExitCode {
    let (Some(agent), Some(log_dir)) = (
        std::env::var("ORCH_AGENT").ok(),
        std::env::var_os("ORCH_LOG_DIR"),
    ) else {
        return ExitCode::SUCCESS;
    };
    let input = read_stdin();
    if let Err(e) = handle(Path::new(&log_dir), &agent, event, &input, Utc::now()) {
        eprintln!("orch hook {event}: {e}");
    }
    ExitCode::SUCCESS
}

/// Read stdin (at most 1 MiB, at most 2 s; nothing from a terminal) as JSON; Null if it is not.
fn read_stdin() -> Value {
    if std::io::IsTerminal::is_terminal(&io::stdin()) {
        return Value::Null;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = io::stdin().take(MAX_INPUT).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    // A writer that never closes stdin only costs the wait: the reader thread dies with us.
    rx.recv_timeout(INPUT_WAIT)
        .ok()
        .and_then(|buf| serde_json::from_slice(&buf).ok())
        .unwrap_or(Value::Null)
}

/// Record one hook for `agent` under `log_dir`; SessionStart also stores the resume id.
pub fn handle(
    log_dir: &Path,
    agent: &str,
    event: &str,
    input: &Value,
    now: DateTime<Utc>,
) -> Result<(), HookError> {
    if !safe_component(agent) {
        return Ok(());
    }
    let record = record_from_input(event, input, now);
    if event == "SessionStart"
        && let Some(id) = record.session_id.as_deref().filter(|id| safe_component(id))
    {
        let state_dir = log_dir.join("state");
        fs::create_dir_all(&state_dir).map_err(io_err(&state_dir, "creating the state folder"))?;
        let path = state_dir.join(format!("{agent}.id"));
        write_atomic(&path, format!("{id}\n").as_bytes())
            .map_err(io_err(&path, "writing the resume id"))?;
    }
    if let Some(path) = input
        .get("transcript_path")
        .and_then(Value::as_str)
        .filter(|p| Path::new(p).is_absolute() && !p.contains('\n'))
    {
        remember_transcript(log_dir, agent, path)?;
    }
    append_record(&hooks_file(log_dir, agent), &record)
}

/// `<log_dir>/state/<agent>.transcript`: the path of the agent's transcript (jsonl), as its last
/// hook named it; orch reads it to find pings absorbed mid-turn.
pub fn transcript_file(log_dir: &Path, agent: &str) -> PathBuf {
    log_dir.join("state").join(format!("{agent}.transcript"))
}

/// The transcript path the agent's hooks last named, if any.
pub fn transcript_of(log_dir: &Path, agent: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(transcript_file(log_dir, agent)).ok()?;
    let path = text.trim();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

fn remember_transcript(log_dir: &Path, agent: &str, path: &str) -> Result<(), HookError> {
    if transcript_of(log_dir, agent).is_some_and(|p| p == Path::new(path)) {
        return Ok(());
    }
    let file = transcript_file(log_dir, agent);
    let dir = log_dir.join("state");
    fs::create_dir_all(&dir).map_err(io_err(&dir, "creating the state folder"))?;
    write_atomic(&file, format!("{path}\n").as_bytes())
        .map_err(io_err(&file, "writing the transcript path"))
}

/// Append `record`, then keep only the last [`MAX_RECORDS`] lines. Writers take a short-lived
/// lock on `<file>.lock` (given up after 300 ms: a record is never worth blocking an agent).
pub fn append_record(path: &Path, record: &HookRecord) -> Result<(), HookError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir, "creating the hooks folder"))?;
    let mut line = serde_json::to_string(record).map_err(|e| HookError::Io {
        path: path.to_path_buf(),
        doing: "encoding a hook record",
        source: io::Error::other(e),
    })?;
    line.push('\n');
    let lock_path = path.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .ok();
    let locked = lock.as_ref().is_some_and(|f| {
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            if f.try_lock().is_ok() {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path, "opening the hook record file"))?;
    file.write_all(line.as_bytes())
        .map_err(io_err(path, "appending a hook record"))?;
    drop(file);
    if locked {
        trim(path)?;
    }
    Ok(())
}

/// Keep the last [`MAX_RECORDS`] lines of `path` (rewritten atomically, only when longer).
fn trim(path: &Path) -> Result<(), HookError> {
    let text = fs::read(path).map_err(io_err(path, "reading the hook record file"))?;
    let lines = text.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let count = lines.clone().count();
    if count <= MAX_RECORDS {
        return Ok(());
    }
    let mut kept = Vec::with_capacity(text.len());
    for l in lines.skip(count - MAX_RECORDS) {
        kept.extend_from_slice(l);
        kept.push(b'\n');
    }
    write_atomic(path, &kept).map_err(io_err(path, "trimming the hook record file"))
}

/// The records of `agent` (oldest first); a missing file or garbled lines give nothing.
pub fn read_records(log_dir: &Path, agent: &str) -> Vec<HookRecord> {
    let Ok(text) = fs::read(hooks_file(log_dir, agent)) else {
        return Vec::new();
    };
    text.split(|b| *b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// What an agent's activity looks like according to its hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookActivity {
    Working,
    Idle,
    WaitingInput,
}

/// The summary of an agent's hook records that status and the API show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookSummary {
    /// The activity the last state-bearing record implies, and since when (Unix seconds):
    /// the first record of the current streak.
    pub activity: Option<(HookActivity, i64)>,
    /// The time of the last record of any kind.
    pub last_at: Option<i64>,
    pub last_tool: Option<String>,
    pub last_tool_at: Option<i64>,
    pub tool_counts: BTreeMap<String, u64>,
}

fn activity_of(event: &str) -> Option<HookActivity> {
    match event {
        "PreToolUse" | "PostToolUse" | "UserPromptSubmit" => Some(HookActivity::Working),
        "Stop" | "SessionStart" | "SubagentStop" => Some(HookActivity::Idle),
        "Notification" => Some(HookActivity::WaitingInput),
        _ => None,
    }
}

/// Summarise records (oldest first): pure.
pub fn summarize(records: &[HookRecord]) -> HookSummary {
    let mut s = HookSummary::default();
    for r in records {
        let Some(at) = r.epoch() else { continue };
        s.last_at = Some(s.last_at.map_or(at, |t| t.max(at)));
        if let Some(tool) = r.tool.as_ref().filter(|_| r.event == "PreToolUse") {
            *s.tool_counts.entry(tool.clone()).or_default() += 1;
            s.last_tool = Some(tool.clone());
            s.last_tool_at = Some(at);
        }
        if let Some(act) = activity_of(&r.event) {
            s.activity = match s.activity {
                Some((prev, since)) if prev == act => Some((act, since)),
                _ => Some((act, at)),
            };
        }
    }
    s
}

/// The command a settings file runs for `event`.
fn hook_command(orch: &Path, event: &str) -> String {
    format!(
        "{} hook {event}",
        shell_words::quote(&orch.display().to_string())
    )
}

/// Whether a settings hook command is one orch wrote (any orch path) for `event`.
fn is_orch_command(command: &str, event: &str) -> bool {
    match shell_words::split(command).as_deref() {
        Ok([exe, verb, ev]) => {
            verb == "hook"
                && ev == event
                && Path::new(exe)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("orch"))
        }
        _ => false,
    }
}

/// Merge orch's hook wiring into the settings JSON `existing` (None = no file): every key the
/// user has is kept; orch's own entries (from any orch path) are replaced by current ones. Pure.
pub fn merge_settings(existing: Option<Value>, orch: &Path) -> Option<Value> {
    let mut root = match existing {
        None => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return None,
    };
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| Value::Object(Map::new()));
    if !hooks.is_object() {
        *hooks = Value::Object(Map::new());
    }
    let hooks = hooks.as_object_mut()?;
    for event in HOOK_EVENTS {
        let list = hooks
            .entry(*event)
            .or_insert_with(|| Value::Array(Vec::new()));
        if !list.is_array() {
            *list = Value::Array(Vec::new());
        }
        let list = list.as_array_mut()?;
        // Drop orch's own commands (an older orch path), then any matcher left empty by that.
        for entry in list.iter_mut() {
            if let Some(inner) = entry.get_mut("hooks").and_then(Value::as_array_mut) {
                inner.retain(|h| {
                    !h.get("command")
                        .and_then(Value::as_str)
                        .is_some_and(|c| is_orch_command(c, event))
                });
            }
        }
        list.retain(|e| {
            e.get("hooks")
                .and_then(Value::as_array)
                .is_none_or(|h| !h.is_empty())
        });
        let mut entry = Map::new();
        if *event == "PreToolUse" {
            entry.insert("matcher".into(), Value::String("*".into()));
        }
        entry.insert(
            "hooks".into(),
            serde_json::json!([{"type": "command", "command": hook_command(orch, event), "timeout": 10}]),
        );
        list.push(Value::Object(entry));
    }
    Some(Value::Object(root))
}

/// Wire the hooks into `<agent_dir>/.claude/settings.local.json` (atomic write; a file that is
/// not a JSON object is left alone and reported).
pub fn install(agent_dir: &Path, orch: &Path) -> Result<PathBuf, HookError> {
    let dir = agent_dir.join(".claude");
    let path = dir.join("settings.local.json");
    let existing =
        match fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => None,
            Ok(bytes) => Some(serde_json::from_slice::<Value>(&bytes).map_err(|source| {
                HookError::BadJson {
                    path: path.clone(),
                    source,
                }
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err(&path, "reading the Claude settings")(e)),
        };
    let mut merged = merge_settings(existing, orch)
        .ok_or_else(|| HookError::NotAnObject { path: path.clone() })?;
    // The statusline records the context window (wrapping any statusline already shown).
    if let Value::Object(root) = &mut merged {
        crate::statusline::wire(root, orch, crate::statusline::user_statusline(agent_dir));
    }
    fs::create_dir_all(&dir).map_err(io_err(&dir, "creating the .claude folder"))?;
    let mut text = serde_json::to_string_pretty(&merged).map_err(|e| HookError::Io {
        path: path.clone(),
        doing: "encoding the Claude settings",
        source: io::Error::other(e),
    })?;
    text.push('\n');
    write_atomic(&path, text.as_bytes()).map_err(io_err(&path, "writing the Claude settings"))?;
    Ok(path)
}

#[cfg(test)]
mod tests;
