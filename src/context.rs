//! How full an agent's context window is: the statusline record `<log_dir>/state/context/
//! <agent>.json` (written by `orch statusline` or the sim), else a transcript's usage rows.
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::write_atomic;

/// The window assumed when a transcript is all there is (Claude's standard 200k).
pub const DEFAULT_WINDOW_TOKENS: f64 = 200_000.0;
/// How much of a transcript's end is read for its last usage row.
const TRANSCRIPT_TAIL: u64 = 512 * 1024;

/// What the statusline said last, per agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextRecord {
    /// RFC 3339, when it was written.
    pub ts: String,
    /// The percentage of the window in use, when the JSON allowed computing it.
    #[serde(default)]
    pub context_pct: Option<f64>,
    /// The statusline JSON's `context_window` and `rate_limits`, as given.
    #[serde(default)]
    pub context_window: Value,
    #[serde(default)]
    pub rate_limits: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_path: Option<String>,
}

impl ContextRecord {
    /// Unix milliseconds of `ts`, if it parses.
    pub fn at_ms(&self) -> Option<i64> {
        DateTime::parse_from_rfc3339(&self.ts)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

/// One reading of an agent's context fill.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub pct: f64,
    /// `statusline` or `transcript`.
    pub source: &'static str,
}

/// `<log_dir>/state/context/<agent>.json`.
pub fn context_file(log_dir: &Path, agent: &str) -> PathBuf {
    log_dir
        .join("state")
        .join("context")
        .join(format!("{agent}.json"))
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The fill of a statusline `context_window` object: its `used_percentage`, else its
/// `current_usage` input tokens (fresh + cache) over `context_window_size`. Pure.
pub fn pct_of(window: &Value) -> Option<f64> {
    if let Some(p) = num(window, "used_percentage") {
        return Some(p.clamp(0.0, 100.0));
    }
    let size = num(window, "context_window_size").filter(|s| *s > 0.0)?;
    let used = window.get("current_usage").and_then(usage_tokens)?;
    Some((used / size * 100.0).clamp(0.0, 100.0))
}

/// Input tokens of a usage object (fresh + cache creation + cache read). Pure.
pub fn usage_tokens(usage: &Value) -> Option<f64> {
    let keys = [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ];
    let parts: Vec<f64> = keys.iter().filter_map(|k| num(usage, k)).collect();
    (!parts.is_empty()).then(|| parts.iter().sum())
}

/// The record a statusline JSON `input` makes. Pure.
pub fn record_from_statusline(input: &Value, now: DateTime<Utc>) -> ContextRecord {
    let window = input.get("context_window").cloned().unwrap_or(Value::Null);
    let text = |k: &str| input.get(k).and_then(Value::as_str).map(String::from);
    ContextRecord {
        ts: now.to_rfc3339_opts(SecondsFormat::Millis, true),
        context_pct: pct_of(&window),
        rate_limits: input.get("rate_limits").cloned().unwrap_or(Value::Null),
        context_window: window,
        session_id: text("session_id"),
        transcript_path: text("transcript_path"),
    }
}

/// Store what a statusline JSON says about `agent` (atomically).
pub fn record_statusline(
    log_dir: &Path,
    agent: &str,
    input: &Value,
    now: DateTime<Utc>,
) -> std::io::Result<()> {
    let path = context_file(log_dir, agent);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let rec = record_from_statusline(input, now);
    let text = serde_json::to_vec(&rec).map_err(std::io::Error::other)?;
    write_atomic(&path, &text)
}

/// The agent's statusline record, if one was written and reads.
pub fn load(log_dir: &Path, agent: &str) -> Option<ContextRecord> {
    let bytes = fs::read(context_file(log_dir, agent)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Forget the agent's record (a new session starts from an empty window).
pub fn forget(log_dir: &Path, agent: &str) {
    let _ = fs::remove_file(context_file(log_dir, agent));
}

/// The input tokens of the last usage row in transcript text (JSON lines, oldest first). Pure.
pub fn last_usage_tokens(text: &str) -> Option<f64> {
    text.lines().rev().find_map(|line| {
        let v: Value = serde_json::from_str(line).ok()?;
        let usage = v.pointer("/message/usage").or_else(|| v.get("usage"))?;
        usage_tokens(usage)
    })
}

/// The fill a transcript file implies, from the last usage row in its last 512 KiB.
pub fn transcript_pct(path: &Path, window_tokens: f64) -> Option<f64> {
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(TRANSCRIPT_TAIL);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    // A cut first line does not parse and is skipped.
    let used = last_usage_tokens(&text)?;
    Some((used / window_tokens * 100.0).clamp(0.0, 100.0))
}

/// The agent's context fill for its session started at `since_ms` (Unix ms; older records
/// belong to an earlier session): the statusline record, else the transcript named by the
/// record or by `transcript` (from the hooks), else nothing.
pub fn current(
    log_dir: &Path,
    agent: &str,
    since_ms: Option<i64>,
    transcript: Option<&Path>,
) -> Option<Reading> {
    let rec =
        load(log_dir, agent).filter(|r| since_ms.is_none_or(|s| r.at_ms().is_some_and(|t| t >= s)));
    if let Some(pct) = rec.as_ref().and_then(|r| r.context_pct) {
        return Some(Reading {
            pct,
            source: "statusline",
        });
    }
    let window = rec
        .as_ref()
        .and_then(|r| num(&r.context_window, "context_window_size"))
        .filter(|s| *s > 0.0)
        .unwrap_or(DEFAULT_WINDOW_TOKENS);
    let path = rec
        .as_ref()
        .and_then(|r| r.transcript_path.as_deref().map(PathBuf::from))
        .or_else(|| transcript.map(Path::to_path_buf))?;
    transcript_pct(&path, window).map(|pct| Reading {
        pct,
        source: "transcript",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn used_percentage_wins_over_token_counts() {
        let w = json!({"used_percentage": 42.5, "context_window_size": 200000,
                       "current_usage": {"input_tokens": 10}});
        assert_eq!(pct_of(&w), Some(42.5));
    }

    #[test]
    fn token_counts_over_the_window_size_give_the_fill() {
        let w = json!({"context_window_size": 200000,
                       "current_usage": {"input_tokens": 1000, "cache_creation_input_tokens": 19000,
                                         "cache_read_input_tokens": 100000, "output_tokens": 5}});
        assert_eq!(pct_of(&w), Some(60.0));
        assert_eq!(pct_of(&json!({"context_window_size": 200000})), None);
        assert_eq!(pct_of(&Value::Null), None);
    }

    #[test]
    fn a_statusline_record_keeps_window_and_rate_limits() {
        let now = Utc::now();
        let input = json!({"session_id": "s1", "context_window": {"used_percentage": 61},
                           "rate_limits": {"five_hour": {"used_percentage": 3}}, "model": {}});
        let r = record_from_statusline(&input, now);
        assert_eq!(r.context_pct, Some(61.0));
        assert_eq!(r.rate_limits["five_hour"]["used_percentage"], 3);
        assert_eq!(r.session_id.as_deref(), Some("s1"));
    }

    #[test]
    fn the_last_usage_row_of_a_transcript_counts() {
        let text = concat!(
            "{\"type\":\"assistant\",\"message\":{\"usage\":{\"input_tokens\":5,\"cache_read_input_tokens\":995}}}\n",
            "{\"type\":\"user\",\"message\":{\"content\":\"hi\"}}\n",
            "{\"type\":\"assistant\",\"message\":{\"usage\":{\"input_tokens\":100,\"cache_read_input_tokens\":99900}}}\n",
            "not json\n"
        );
        assert_eq!(last_usage_tokens(text), Some(100_000.0));
        assert_eq!(last_usage_tokens("{}\n"), None);
    }

    #[test]
    fn a_record_older_than_the_session_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let input = json!({"context_window": {"used_percentage": 70}});
        record_statusline(d.path(), "b", &input, Utc::now()).unwrap();
        let now = Utc::now().timestamp_millis();
        assert_eq!(
            current(d.path(), "b", Some(now - 60_000), None).map(|r| r.pct),
            Some(70.0)
        );
        assert_eq!(current(d.path(), "b", Some(now + 60_000), None), None);
        let t = d.path().join("t.jsonl");
        fs::write(&t, "{\"message\":{\"usage\":{\"input_tokens\":50000}}}\n").unwrap();
        let r = current(d.path(), "b", Some(now + 60_000), Some(&t)).unwrap();
        assert_eq!((r.pct, r.source), (25.0, "transcript"));
    }
}
