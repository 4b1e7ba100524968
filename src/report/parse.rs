//! Reading `events.jsonl` for the report: each line parsed once into an [`Event`] with its time
//! in milliseconds; malformed lines and unknown event names are counted, never fatal.
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;

/// One event of the log, with the fields every figure reads pulled out.
#[derive(Debug, Clone)]
pub struct Event {
    /// Unix milliseconds.
    pub ts: i64,
    pub name: String,
    pub agent: Option<String>,
    pub reason: Option<String>,
    /// The whole object, for the fields only some events carry.
    pub fields: Value,
}

impl Event {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    pub fn f64(&self, key: &str) -> Option<f64> {
        self.fields.get(key).and_then(Value::as_f64)
    }
}

/// The events of one log, in time order, and what could not be read.
#[derive(Debug, Default, Clone)]
pub struct Log {
    pub events: Vec<Event>,
    /// Non-blank lines that are not a JSON object with a string `event` and an RFC 3339 `ts`.
    pub malformed: usize,
    /// Events whose name the report does not know (kept in the timeline, left out of figures).
    pub unknown: usize,
}

/// Every event name the report reads; others are counted as unknown.
const KNOWN: &[&str] = &[
    "state_changed",
    "ping_acked",
    "ping_lost",
    "pool_held",
    "pool_probe",
    "pool_released",
    "host_unreachable",
    "host_back",
    "notify_failed",
    "tmux_server_lost",
];

/// Read and parse the log at `path`; a missing file is an empty log.
pub fn read_log(path: &Path) -> std::io::Result<Log> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(parse_log(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Log::default()),
        Err(e) => Err(e),
    }
}

/// Parse the bytes of an events.jsonl (pure).
pub fn parse_log(bytes: &[u8]) -> Log {
    let mut log = Log::default();
    for line in bytes.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(line) {
            Some(e) => {
                if !crate::events::ALL.contains(&e.name.as_str())
                    && !KNOWN.contains(&e.name.as_str())
                {
                    log.unknown += 1;
                }
                log.events.push(e);
            }
            None => log.malformed += 1,
        }
    }
    // Appends from several processes can be a few milliseconds out of order.
    log.events.sort_by_key(|e| e.ts);
    log
}

fn parse_line(line: &[u8]) -> Option<Event> {
    let fields: Value = serde_json::from_slice(line).ok()?;
    let obj = fields.as_object()?;
    let name = obj.get("event")?.as_str()?.to_string();
    let ts = parse_ts(obj.get("ts")?.as_str()?)?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(String::from);
    Some(Event {
        ts,
        agent: text("agent"),
        reason: text("reason"),
        name,
        fields,
    })
}

/// RFC 3339 to Unix milliseconds.
pub fn parse_ts(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// `--since`: a duration back from `now_ms` (`90m`, `24h`, `3d`, `45s`) or an RFC 3339 time
/// (a bare date `2026-12-01` is its midnight UTC). Unix milliseconds, or why not.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    let unit = |c: char| match c {
        's' => Some(1_000),
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        'w' => Some(7 * 86_400_000),
        _ => None,
    };
    if let Some(last) = t.chars().last()
        && let Some(ms) = unit(last)
        && let Ok(n) = t[..t.len() - 1].parse::<f64>()
        && n >= 0.0
        && n.is_finite()
    {
        return Ok(now_ms - (n * ms as f64) as i64);
    }
    if let Some(ms) = parse_ts(t) {
        return Ok(ms);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d")
        && let Some(dt) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(DateTime::<Utc>::from_naive_utc_and_offset(dt, Utc).timestamp_millis());
    }
    Err(format!(
        "--since {text:?} is neither a duration back from now (30m, 24h, 3d) nor an RFC 3339 time (2026-12-01T08:00:00Z)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_counted_and_unknown_events_kept() {
        let text = b"{\"ts\":\"2026-01-01T00:00:01Z\",\"event\":\"ping\",\"agent\":\"a\",\"reason\":\"claim\"}\n\
            not json\n[1]\n\n{\"event\":\"ping\"}\n{\"ts\":\"yesterday\",\"event\":\"ping\"}\n\
            {\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"brand_new\"}\n{\"ts\":\"2026-01";
        let log = parse_log(text);
        assert_eq!(log.events.len(), 2);
        assert_eq!(log.malformed, 5);
        assert_eq!(log.unknown, 1);
        assert_eq!(log.events[0].name, "brand_new", "sorted by time");
        assert_eq!(log.events[1].agent.as_deref(), Some("a"));
        assert_eq!(log.events[1].reason.as_deref(), Some("claim"));
        assert_eq!(log.events[1].ts, 1_767_225_601_000);
    }

    #[test]
    fn since_takes_durations_back_from_now_and_absolute_times() {
        let now = 1_000_000_000;
        assert_eq!(parse_since("24h", now), Ok(now - 86_400_000));
        assert_eq!(parse_since("90m", now), Ok(now - 5_400_000));
        assert_eq!(parse_since("2d", now), Ok(now - 172_800_000));
        assert_eq!(
            parse_since("2026-01-01T00:00:01Z", now),
            Ok(1_767_225_601_000)
        );
        assert_eq!(parse_since("2026-01-01", now), Ok(1_767_225_600_000));
        assert!(
            parse_since("yesterday", now)
                .unwrap_err()
                .contains("--since")
        );
        assert!(parse_since("-3h", now).is_err());
    }
}
