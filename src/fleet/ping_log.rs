//! Ping ids and the outbox history: `<state_dir>/outbox-<agent>.jsonl` (one record per step of a
//! ping: queued → typed → arrived | acked | lost, appended, compacted), and the acknowledgements.
//!
//! A ping's id (`b-0042`: the agent's prefix and a counter kept in `<state_dir>/ping-ids.json`)
//! is typed at the end of its text as `[orch:ping b-0042]`. It is acked when the agent's own
//! UserPromptSubmit hook recorded it (`hooks/<agent>.jsonl`, `ping_id`), arrived when the
//! transcript its hooks named shows it (a prompt absorbed mid-turn fires no hook).
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The history is compacted once it holds more lines than this ...
const COMPACT_OVER: usize = 2000;
/// ... down to the records of this many most recent lines (plus every record of an open ping).
const COMPACT_KEEP: usize = 1000;
/// How much of a transcript's end is read when looking for an id.
const TRANSCRIPT_TAIL: u64 = 2 << 20;
const LOCK_WAIT: Duration = Duration::from_millis(300);

/// `text` as typed: `text [orch:ping <id>]` (the mark on the last line of a multi-line text).
pub fn mark(text: &str, id: &str) -> String {
    format!("{} [orch:ping {id}]", text.trim_end())
}

/// One step of one ping: a line of `outbox-<agent>.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// RFC 3339 with milliseconds, when this step happened.
    pub ts: String,
    /// The ping id (`b-0042`).
    pub id: String,
    /// `queued`, `typed`, `arrived`, `acked` or `lost`.
    pub state: String,
    /// The ping's reason (`claim`, `review`, `inbox`, `wake`, `limit_probe`, `human`, `redeliver`).
    pub reason: String,
    /// Typings so far (1 = the first).
    #[serde(default)]
    pub attempt: u32,
    /// The queue key it was queued under once (`claim-<sha>`, ...), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// typed: the screen saw the submit take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// arrived/acked: `hook`, `transcript` or `screen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
    /// arrived/acked: milliseconds from the (last) typing to the acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
}

impl OutboxRecord {
    pub fn new(id: &str, state: &str, reason: &str, attempt: u32) -> Self {
        OutboxRecord {
            ts: now_rfc3339(),
            id: id.to_string(),
            state: state.to_string(),
            reason: reason.to_string(),
            attempt,
            key: None,
            confirmed: None,
            confirmed_by: None,
            latency_ms: None,
        }
    }

    /// Whether this step ends the ping (nothing more will be typed or recorded for it).
    pub fn is_final(&self) -> bool {
        matches!(self.state.as_str(), "arrived" | "acked" | "lost")
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `<state_dir>/outbox-<agent>.jsonl`.
pub fn history_file(cfg: &Config, agent: &str) -> PathBuf {
    cfg.state_dir.join(format!("outbox-{agent}.jsonl"))
}

/// Take `<path>` (a `.lock` file) for a short critical section; None when it cannot be had in
/// time (the caller goes on without it: a record is never worth blocking the loop).
fn lock(path: &Path, wait: Duration) -> Option<fs::File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    let deadline = Instant::now() + wait;
    loop {
        if f.try_lock().is_ok() {
            return Some(f);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Append one step to the agent's history (one write on an O_APPEND file), compacting it when
/// it grew past [`COMPACT_OVER`] lines. Failing to record is logged, never fatal.
pub fn record(cfg: &Config, agent: &str, rec: &OutboxRecord) {
    let path = history_file(cfg, agent);
    if let Err(e) = append(&path, rec) {
        tracing::warn!("cannot record ping {} in {}: {e}", rec.id, path.display());
    }
}

fn append(path: &Path, rec: &OutboxRecord) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_string(rec).map_err(std::io::Error::other)?;
    line.push('\n');
    let guard = lock(&path.with_extension("lock"), LOCK_WAIT);
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())?;
    if guard.is_some() {
        compact(path, COMPACT_OVER, COMPACT_KEEP)?;
    }
    Ok(())
}

/// Rewrite `path` (temp + rename) keeping its last `keep` lines and every record of a ping that
/// has no final step yet, when it has more than `over` lines.
fn compact(path: &Path, over: usize, keep: usize) -> std::io::Result<()> {
    let text = fs::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() <= over {
        return Ok(());
    }
    let recs: Vec<Option<OutboxRecord>> =
        lines.iter().map(|l| serde_json::from_str(l).ok()).collect();
    let mut open = std::collections::BTreeMap::<&str, bool>::new();
    for r in recs.iter().flatten() {
        open.insert(&r.id, !r.is_final());
    }
    let cut = lines.len() - keep;
    let mut out = String::with_capacity(text.len() / 2);
    for (i, l) in lines.iter().enumerate() {
        let keep_it = i >= cut
            || recs[i]
                .as_ref()
                .is_some_and(|r| open.get(r.id.as_str()) == Some(&true));
        if keep_it {
            out.push_str(l);
            out.push('\n');
        }
    }
    crate::state::write_atomic(path, out.as_bytes())
}

/// The agent's history, oldest first (a missing file or garbled lines give nothing).
pub fn history(cfg: &Config, agent: &str) -> Vec<OutboxRecord> {
    let Ok(text) = fs::read_to_string(history_file(cfg, agent)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The last recorded state of ping `id` of `agent` (`queued`, `typed`, `arrived`, `acked`,
/// `lost`), None when it was never recorded.
pub fn ping_state(cfg: &Config, agent: &str, id: &str) -> Option<String> {
    history(cfg, agent)
        .into_iter()
        .rev()
        .find(|r| r.id == id)
        .map(|r| r.state)
}

/// True once ping `id` of `agent` reached it: acked by its hook, seen in its transcript, or
/// (an agent without hooks) its submit seen on screen.
pub fn has_arrived(cfg: &Config, agent: &str, id: &str) -> bool {
    matches!(
        ping_state(cfg, agent, id).as_deref(),
        Some("arrived" | "acked")
    )
}

/// The agent's prefix in ping ids: the shortest start of its name (lowercase letters and
/// digits) that no other configured agent's name shares; `p` for a name with neither.
pub fn id_prefix(cfg: &Config, agent: &str) -> String {
    let clean = |n: &str| -> String {
        n.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let me = clean(agent);
    if me.is_empty() {
        return "p".into();
    }
    let others: Vec<String> = cfg
        .agents
        .iter()
        .filter(|a| a.name != agent)
        .map(|a| clean(&a.name))
        .collect();
    let mut len = 1;
    while len < me.len() && others.iter().any(|o| o.starts_with(&me[..len])) {
        len += 1;
    }
    me[..len].to_string()
}

fn ids_file(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("ping-ids.json")
}

/// A new ping id for `agent` (`b-0042`), its counter kept in `<state_dir>/ping-ids.json` under a
/// lock (the watchdog and `orch send` both take ids). Never the same id twice for one agent.
pub fn next_id(cfg: &Config, agent: &str) -> String {
    let prefix = id_prefix(cfg, agent);
    let path = ids_file(cfg);
    let _ = fs::create_dir_all(&cfg.state_dir);
    let guard = lock(&path.with_extension("lock"), Duration::from_secs(2));
    let mut counters: std::collections::BTreeMap<String, u64> = crate::state::load_json(&path)
        .ok()
        .flatten()
        .unwrap_or_default();
    let n = counters.get(agent).copied().unwrap_or(0) + 1;
    counters.insert(agent.to_string(), n);
    if let Err(e) = crate::state::save_json(&path, &counters) {
        tracing::warn!("cannot save the ping id counters {}: {e}", path.display());
    }
    drop(guard);
    format!("{prefix}-{n:04}")
}

/// How a typed ping was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckSource {
    /// The agent's UserPromptSubmit hook recorded its id.
    Hook,
    /// Its transcript shows it (absorbed mid-turn; no hook fired).
    Transcript,
}

impl AckSource {
    pub fn as_str(self) -> &'static str {
        match self {
            AckSource::Hook => "hook",
            AckSource::Transcript => "transcript",
        }
    }

    /// The outbox state it moves the ping to.
    pub fn state(self) -> &'static str {
        match self {
            AckSource::Hook => "acked",
            AckSource::Transcript => "arrived",
        }
    }
}

/// Where the ids of `agent`'s pings show up: its hook records and its transcript's tail, read
/// once and asked about any number of ids.
pub struct AckView {
    /// `ping_id` → the hook record's time (Unix ms).
    hooked: std::collections::HashMap<String, Option<i64>>,
    transcript: String,
}

impl AckView {
    /// Read `agent`'s hook records and transcript tail (both may be absent).
    pub fn read(cfg: &Config, agent: &str) -> Self {
        let hooked = crate::hooks::read_records(&cfg.log_dir, agent)
            .into_iter()
            .filter(|r| r.event == "UserPromptSubmit")
            .filter_map(|r| {
                let at = chrono::DateTime::parse_from_rfc3339(&r.ts)
                    .ok()
                    .map(|t| t.timestamp_millis());
                r.ping_id.map(|id| (id, at))
            })
            .collect();
        let transcript = crate::hooks::transcript_of(&cfg.log_dir, agent)
            .and_then(|p| read_tail(&p, TRANSCRIPT_TAIL))
            .unwrap_or_default();
        AckView { hooked, transcript }
    }

    /// How ping `id` was acknowledged, and when (Unix ms, for a hook), if it was.
    pub fn ack(&self, id: &str) -> Option<(AckSource, Option<i64>)> {
        if let Some(at) = self.hooked.get(id) {
            return Some((AckSource::Hook, *at));
        }
        let needle = format!("[orch:ping {id}]");
        self.transcript
            .contains(&needle)
            .then_some((AckSource::Transcript, None))
    }
}

/// The last `max` bytes of `path` as text (lossy), None when it cannot be read.
fn read_tail(path: &Path, max: u64) -> Option<String> {
    let mut f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    if len > max {
        f.seek(SeekFrom::Start(len - max)).ok()?;
    }
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests;
