//! events: the `<log_dir>/events.jsonl` contract — one JSON object a line,
//! `{"ts": RFC 3339, "event": NAME, ...fields}`, appended atomically; the event names.
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use serde_json::Value;

pub mod human;
pub mod tail;

/// The event log's file name inside the log dir.
pub const EVENTS_FILE: &str = "events.jsonl";

pub const AGENT_STARTED: &str = "agent_started";
pub const AGENT_STOPPED: &str = "agent_stopped";
/// Fields: `agent` (who was pinged), `reason` = claim|review|inbox|wake|limit_probe|human|redeliver
/// (`human`: `orch send` or the console's `s` key), `delivered`, `id` (the ping id typed in its
/// trailing `[orch:ping <id>]`), `attempt` (1 = first typing).
pub const PING: &str = "ping";
/// A typed ping is known to have reached the agent. Fields: `agent`, `id`, `reason`, `source` =
/// hook (its UserPromptSubmit hook saw the id) | transcript (its transcript shows it: a prompt
/// absorbed mid-turn) | screen (no hooks: the submit was seen on screen), `latency_ms` (typed
/// to acknowledged), `attempts`.
pub const PING_ACKED: &str = "ping_acked";
/// A ping given up: typed `1 + max_resends` times (or not confirmed where it cannot be typed
/// again) and never acknowledged. Fields: `agent`, `id`, `reason`, `attempts`, `why`.
pub const PING_LOST: &str = "ping_lost";
/// Fields: `from`, `to`.
pub const PHASE_ADVANCED: &str = "phase_advanced";
pub const SEQUENCE_COMPLETE: &str = "sequence_complete";
/// Fields: `agent`, `reason` = gone|mismatch|fatal|stall.
pub const HEALED: &str = "healed";
/// Fields: `agent`, `until`.
pub const LIMIT_HIT: &str = "limit_hit";
pub const LIMIT_LIFTED: &str = "limit_lifted";
pub const CONFIG_ERROR: &str = "config_error";
pub const FETCH_ERROR: &str = "fetch_error";
pub const WATCHDOG_STARTED: &str = "watchdog_started";
pub const WATCHDOG_STOPPED: &str = "watchdog_stopped";
/// Supervision policies. Fields: `agent`, `timeout_secs`.
pub const TIMED_OUT: &str = "timed_out";
/// Fields: `agent`, `change` = settings|added.
pub const RECONCILED: &str = "reconciled";
/// The agent's process exited. Fields: `agent`, `status` (null when tmux did not say), `restarts`.
pub const AGENT_EXITED: &str = "agent_exited";
/// Fields: `agent`, `attempt`, `after_status`.
pub const RESTARTED: &str = "restarted";
/// `max_restarts` used up; the agent is left stopped. Fields: `agent`, `restarts`, `status`.
pub const GAVE_UP: &str = "gave_up";
/// A dialog answered for an agent that opted in with `auto_accept`. Fields: `agent`, `dialog`.
pub const AUTO_ACCEPTED: &str = "auto_accepted";
/// Login or auth failed: a person must act (logged once per episode). Fields: `agent`, `state`.
pub const NEEDS_ATTENTION: &str = "needs_attention";
/// A ping waits because the agent's screen takes no input (a dialog, a login, an error...).
/// Fields: `agent`, `reason`, `id`, `waiting_on` (the screen state). Its `ping` event follows
/// once it is typed.
pub const PING_QUEUED: &str = "ping_queued";
/// Healing left the agent alone: it was healed `max_restarts` times within
/// `restart_reset_after`. Fields: `agent`, `reason`, `heals`.
pub const HEAL_LIMIT: &str = "heal_limit";

/// An agent's derived state changed and held a few seconds. Fields: `agent`, `from`, `to`.
pub const STATE_CHANGED: &str = "state_changed";
/// A notification sink failed after its retries. Fields: `sink` (scheme and host or the
/// command's name, never a URL's secret parts), `reason`, `events`.
pub const NOTIFY_FAILED: &str = "notify_failed";
/// A stall that restarts did not cure. Fields: `agent`, `restarts`, `summary`.
pub const STALLED: &str = "stalled";
/// A phase with no handoff commit for `phase_quiet_after`. Fields: `phase`, `quiet_secs`, `summary`.
pub const PHASE_QUIET: &str = "phase_quiet";

/// An account pool is held: one member showed a usage limit, so no ping is typed into any
/// member and none is counted stalled or healed. Fields: `pool`, `until` (RFC 3339: the next
/// probe), `source` = screen|hook|probe, `agent` (the member that showed it), `members`,
/// `reset_parsed`, `key` (a derived pool's account key: a hash, never a secret).
pub const POOL_HELD: &str = "pool_held";
/// One member of a held pool was typed the limit probe. Fields: `pool`, `agent`, `probe`
/// (count in this hold), `delivered`.
pub const POOL_PROBE: &str = "pool_probe";
/// A member of a pool is released after a successful probe (the prober first, then one every
/// `release_stagger`); its queued pings follow. Fields: `pool`, `agent`, `how` = probe|stagger,
/// `held_secs`, `remaining` (members still held; 0: the pool is free).
pub const POOL_RELEASED: &str = "pool_released";

/// A sample of an agent's context fill (logged when it moved by 5 points or more, not every
/// tick). Fields: `agent`, `context_pct`, `source` (`statusline` | `transcript`).
pub const CONTEXT_SAMPLE: &str = "context_sample";
/// An idle agent was asked for a handoff note before being started afresh. Fields: `agent`,
/// `id` (the ping's), `reason` (`context` | `iterations` | `compaction`), `context_pct`,
/// `iterations`, `handoff_file`, `session`.
pub const ROTATION_REQUESTED: &str = "rotation_requested";
/// The handoff was verified and the agent runs on a new session. Fields: `agent`, `id`,
/// `old_session`, `new_session`, `handoff_file`.
pub const ROTATED: &str = "rotated";
/// A handoff was not completed (no note with its marker, a dirty or unpushed tree, a timeout);
/// the old session keeps running. Fields: `agent`, `id`, `reason`, `summary`.
pub const ROTATION_FAILED: &str = "rotation_failed";

/// A job was added (or retried). Fields: `id`, `profile`, `repo`, `after`.
pub const JOB_QUEUED: &str = "job_queued";
/// A job was claimed and its runner started. Fields: `id`, `session` (null in the foreground).
pub const JOB_STARTED: &str = "job_started";
/// A job ended. Fields: `id`, `status`, `reason`, `pr`, `url`.
pub const JOB_FINISHED: &str = "job_finished";
/// A finished job was queued again. Fields: `id`, `attempt`.
pub const JOB_RETRIED: &str = "job_retried";
/// `orch job pr` redid a job's PR step. Fields: `id`, `state`, `url`.
pub const JOB_PR: &str = "job_pr";
/// A `[host.NAME]` stopped answering (logged once until it is back). Fields: `host`, `error`,
/// `agents` (on that host: left alone, never restarted, while it is down).
pub const HOST_UNREACHABLE: &str = "host_unreachable";
/// A host that was unreachable answers again. Fields: `host`, `down_secs`.
pub const HOST_BACK: &str = "host_back";
/// The agents' tmux server vanished (crash, OOM kill); logged once, then every session that
/// ran on it is recreated (`healed`, `reason = "server_lost"`). Fields: `socket`, `sessions`.
pub const TMUX_SERVER_LOST: &str = "tmux_server_lost";
/// A `transport = "slurm"` host got an allocation. Fields: `host`, `job_id`, `previous` (the
/// job it replaces, or null), `by` (`up` or `watchdog`).
pub const SLURM_ALLOCATED: &str = "slurm_allocated";
/// A SLURM host's job ended (walltime, preemption, scancel): its sessions are gone. Fields:
/// `host`, `job_id`, `state`, `agents`.
pub const SLURM_JOB_ENDED: &str = "slurm_job_ended";
/// A SLURM host's job got its walltime warning; its loop agents were asked to push their work.
/// Fields: `host`, `job_id`, `agents`.
pub const SLURM_WALLTIME_WARNING: &str = "slurm_walltime_warning";
/// A new allocation for a SLURM host failed (retried with backoff) or the retries ran out.
/// Fields: `host`, `error`, `attempt`, `gave_up`.
pub const SLURM_ALLOCATION_FAILED: &str = "slurm_allocation_failed";

/// Every event name DESIGN.md defines.
pub const ALL: &[&str] = &[
    AGENT_STARTED,
    AGENT_STOPPED,
    PING,
    PHASE_ADVANCED,
    SEQUENCE_COMPLETE,
    HEALED,
    LIMIT_HIT,
    LIMIT_LIFTED,
    CONFIG_ERROR,
    FETCH_ERROR,
    WATCHDOG_STARTED,
    WATCHDOG_STOPPED,
    TIMED_OUT,
    RECONCILED,
    AGENT_EXITED,
    RESTARTED,
    GAVE_UP,
    AUTO_ACCEPTED,
    NEEDS_ATTENTION,
    POOL_HELD,
    POOL_PROBE,
    POOL_RELEASED,
    STATE_CHANGED,
    NOTIFY_FAILED,
    STALLED,
    PHASE_QUIET,
    PING_QUEUED,
    PING_ACKED,
    PING_LOST,
    HEAL_LIMIT,
    JOB_QUEUED,
    JOB_STARTED,
    JOB_FINISHED,
    JOB_RETRIED,
    JOB_PR,
    HOST_UNREACHABLE,
    HOST_BACK,
    TMUX_SERVER_LOST,
    SLURM_ALLOCATED,
    SLURM_JOB_ENDED,
    SLURM_WALLTIME_WARNING,
    SLURM_ALLOCATION_FAILED,
    CONTEXT_SAMPLE,
    ROTATION_REQUESTED,
    ROTATED,
    ROTATION_FAILED,
];

/// Appends events to `<log_dir>/events.jsonl`.
#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
    /// Secret values replaced in every string field (token shapes always are).
    redactor: Option<std::sync::Arc<crate::redact::Redactor>>,
    secrets: Vec<(String, String)>,
}

impl EventLog {
    /// The event log of `log_dir` (created if missing; the file itself on first append).
    pub fn open(log_dir: &Path) -> io::Result<EventLog> {
        fs::create_dir_all(log_dir)?;
        Ok(EventLog {
            path: log_dir.join(EVENTS_FILE),
            redactor: None,
            secrets: Vec::new(),
        })
    }

    /// Redact these `(NAME, value)` secrets (every agent's `env` and `secrets_dir`) from every
    /// event from now on; the filter is rebuilt only when the list changed.
    pub fn set_secrets(&mut self, secrets: Vec<(String, String)>) {
        if secrets != self.secrets || self.redactor.is_none() {
            self.redactor = Some(std::sync::Arc::new(crate::redact::Redactor::new(&secrets)));
            self.secrets = secrets;
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `{"ts": now, "event": event, ...fields}` as one line with one write on an
    /// O_APPEND file, so concurrent writers never interleave within a line. `fields` should be
    /// an object (its `ts`/`event` keys are ignored); null adds nothing; any other value is
    /// stored under `data`.
    pub fn append(&self, event: &str, mut fields: Value) -> io::Result<()> {
        match &self.redactor {
            Some(r) => r.redact_json(&mut fields),
            None => crate::redact::Redactor::tokens_only().redact_json(&mut fields),
        }
        let line = render_line(&now_rfc3339(), event, fields)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(line.as_bytes())
    }

    /// This log's events from line `line_no` (0-based) on; see [`read_since`].
    pub fn read_since(&self, line_no: usize) -> Vec<(usize, Value)> {
        read_since(&self.path, line_no)
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One event line, `ts` and `event` first, ending in a newline.
fn render_line(ts: &str, event: &str, fields: Value) -> io::Result<String> {
    let mut line = format!("{{\"ts\":{},\"event\":{}", enc(ts)?, enc(event)?);
    let fields = match fields {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("data".to_string(), other)]),
    };
    for (key, value) in fields {
        if key == "ts" || key == "event" {
            continue;
        }
        line.push(',');
        line.push_str(&enc(&key)?);
        line.push(':');
        line.push_str(&enc(&value)?);
    }
    line.push_str("}\n");
    Ok(line)
}

fn enc<T: serde::Serialize + ?Sized>(value: &T) -> io::Result<String> {
    serde_json::to_string(value).map_err(io::Error::other)
}

/// The events in the file at `path` from line `line_no` (0-based) on, each with its line
/// number. A missing file gives nothing; blank, garbled or non-object lines are skipped (the
/// watchdog may be mid-write, or someone edited the file).
pub fn read_since(path: &Path, line_no: usize) -> Vec<(usize, Value)> {
    let Ok(bytes) = fs::read(path) else {
        return Vec::new();
    };
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .skip(line_no)
        .filter_map(|(n, line)| match serde_json::from_slice::<Value>(line) {
            Ok(v @ Value::Object(_)) => Some((n, v)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn appended_events_read_back_with_ts_event_and_fields() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("logs")).unwrap();
        log.append(PING, json!({"agent": "adversary", "reason": "claim"}))
            .unwrap();
        log.append(PHASE_ADVANCED, json!({"from": 0, "to": 1}))
            .unwrap();
        let events = log.read_since(0);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, 0);
        assert_eq!(events[0].1["event"], "ping");
        assert_eq!(events[0].1["agent"], "adversary");
        assert_eq!(events[1].1["to"], 1);
        let ts = events[0].1["ts"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(log.read_since(1).len(), 1);
        assert_eq!(log.read_since(1)[0].0, 1);
    }

    #[test]
    fn each_event_is_one_line_starting_with_ts_then_event() {
        let line = render_line("T", "healed", json!({"reason": "a\nb", "event": "x"})).unwrap();
        assert_eq!(
            line,
            "{\"ts\":\"T\",\"event\":\"healed\",\"reason\":\"a\\nb\"}\n"
        );
        let line = render_line("T", "x", json!([1])).unwrap();
        assert_eq!(line, "{\"ts\":\"T\",\"event\":\"x\",\"data\":[1]}\n");
    }

    #[test]
    fn garbled_lines_are_skipped_and_line_numbers_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        fs::write(
            &path,
            "{\"event\":\"a\"}\nnot json\n[1]\n\n{\"event\":\"b\"}\n{\"ev",
        )
        .unwrap();
        let got: Vec<_> = read_since(&path, 0).into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, vec![0, 4]);
        assert!(read_since(&dir.path().join("missing"), 0).is_empty());
    }

    #[test]
    fn concurrent_appenders_never_interleave_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path()).unwrap();
        let big = "x".repeat(2000);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (log, big) = (log.clone(), big.clone());
                s.spawn(move || {
                    for i in 0..50 {
                        log.append(PING, json!({"t": t, "i": i, "pad": big}))
                            .unwrap();
                    }
                });
            }
        });
        let text = fs::read_to_string(log.path()).unwrap();
        assert_eq!(text.lines().count(), 200);
        assert_eq!(log.read_since(0).len(), 200);
    }

    #[test]
    fn every_design_event_name_is_listed_once() {
        let mut names = ALL.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
    }
}
