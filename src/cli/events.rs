//! `orch events [-f] [--json] [--since N|DURATION] [--agent NAME] [--event NAME]`: the event
//! log as the demo's human lines (or raw JSON lines), filtered, and followed with `-f`.
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use serde_json::Value;

use crate::config::Config;
use crate::events::{human, tail::Tail};
use crate::{Error, Result};

#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Keep printing events as they are appended.
    #[arg(short, long)]
    pub follow: bool,
    /// Print the raw JSON lines of events.jsonl.
    #[arg(long)]
    pub json: bool,
    /// The last N events (a number), or those newer than a duration (90s, 10m, 2h, 1d) or an
    /// RFC 3339 time.
    #[arg(long, value_name = "N|DURATION")]
    pub since: Option<String>,
    /// Only the events of this agent.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Only events of this name (ping, healed, limit_hit, ...).
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
}

/// Where the listing starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The last N matching events.
    Last(usize),
    /// Events at or after this time.
    After(DateTime<Utc>),
}

/// `12` (the last 12 events), `10m` / `1h30m` (newer than that), or an RFC 3339 time.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<Since, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<usize>() {
        return Ok(Since::Last(n));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(Since::After(at.with_timezone(&Utc)));
    }
    let secs = crate::config::parse_duration(t).map_err(|_| {
        format!("--since {text:?} is not a count, a duration (10m, 2h, 1d) or an RFC 3339 time")
    })?;
    let ago = chrono::Duration::milliseconds((secs * 1000.0) as i64);
    Ok(Since::After(now - ago))
}

fn ts_of(e: &Value) -> Option<DateTime<Utc>> {
    e.get("ts")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `e` passes the `--agent` / `--event` filters.
pub fn matches(e: &Value, agent: Option<&str>, event: Option<&str>) -> bool {
    let field = |k: &str| e.get(k).and_then(Value::as_str);
    agent.is_none_or(|a| field("agent") == Some(a))
        && event.is_none_or(|n| field("event") == Some(n))
}

/// The events to print first, in log order.
pub fn select(
    events: Vec<Read>,
    since: Option<Since>,
    agent: Option<&str>,
    event: Option<&str>,
) -> Vec<Read> {
    let mut kept: Vec<Read> = events
        .into_iter()
        .filter(|e| matches(&e.1, agent, event))
        .collect();
    match since {
        None => {}
        Some(Since::Last(n)) => {
            kept.drain(..kept.len().saturating_sub(n));
        }
        Some(Since::After(at)) => kept.retain(|e| ts_of(&e.1).is_some_and(|t| t >= at)),
    }
    kept
}

/// The human line of one event: local wall-clock time, then the demo's columns.
pub fn human_line(e: &Value) -> String {
    let time = ts_of(e)
        .map(|t| t.with_timezone(&Local).format("%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "--------------".into());
    human::line(e, &time, &human::no_subjects)
}

/// One event: its line as written (printed unchanged with --json) and its parsed value.
pub type Read = (String, Value);

fn render(e: &Read, json: bool) -> String {
    if json { e.0.clone() } else { human_line(&e.1) }
}

pub fn run(cfg: &Config, args: &EventsArgs) -> Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, Utc::now()))
        .transpose()
        .map_err(Error::Usage)?;
    let path = cfg.events_file();
    if !path.exists() && !args.follow {
        return Err(Error::Runtime(format!(
            "no events yet ({} does not exist): the watchdog and the fleet verbs write it",
            path.display()
        )));
    }
    let (agent, event) = (args.agent.as_deref(), args.event.as_deref());
    let mut tail = Tail::new(&path);
    let mut out = std::io::stdout().lock();
    let read = |tail: &mut Tail| tail.read_new_lines();
    for e in select(read(&mut tail), since, agent, event) {
        if writeln!(out, "{}", render(&e, args.json)).is_err() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let _ = out.flush();
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_millis(250));
        for e in read(&mut tail)
            .iter()
            .filter(|e| matches(&e.1, agent, event))
        {
            if writeln!(out, "{}", render(e, args.json)).is_err() {
                return Ok(ExitCode::SUCCESS); // the reader went away (e.g. piped into head)
            }
        }
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn since_reads_a_count_a_duration_or_a_time() {
        assert_eq!(parse_since("5", now()), Ok(Since::Last(5)));
        let ten = now() - chrono::Duration::minutes(10);
        assert_eq!(parse_since("10m", now()), Ok(Since::After(ten)));
        assert_eq!(
            parse_since("2030-01-01T11:50:00Z", now()),
            Ok(Since::After(ten))
        );
        let err = parse_since("yesterday", now()).unwrap_err();
        assert!(err.contains("--since \"yesterday\""), "{err}");
    }

    #[test]
    fn select_filters_then_keeps_the_last_n_or_the_recent_ones() {
        let events: Vec<Read> = [
            json!({"ts": "2030-01-01T11:00:00Z", "event": "ping", "agent": "a"}),
            json!({"ts": "2030-01-01T11:55:00Z", "event": "healed", "agent": "a"}),
            json!({"ts": "2030-01-01T11:56:00Z", "event": "ping", "agent": "b"}),
            json!({"ts": "2030-01-01T11:57:00Z", "event": "ping", "agent": "a"}),
        ]
        .into_iter()
        .map(|v| (v.to_string(), v))
        .collect();
        let names = |v: Vec<Read>| -> Vec<String> {
            v.iter()
                .map(|(_, e)| {
                    format!(
                        "{}/{}",
                        e["event"].as_str().unwrap(),
                        e["agent"].as_str().unwrap()
                    )
                })
                .collect()
        };
        assert_eq!(
            names(select(
                events.clone(),
                Some(Since::Last(2)),
                Some("a"),
                None
            )),
            ["healed/a", "ping/a"]
        );
        let recent = parse_since("10m", now()).ok();
        assert_eq!(
            names(select(events.clone(), recent, None, Some("ping"))),
            ["ping/b", "ping/a"]
        );
        assert_eq!(select(events, None, None, None).len(), 4);
    }

    #[test]
    fn human_lines_use_the_demo_columns() {
        let e = json!({"ts": "2030-01-01T11:00:00Z", "event": "ping", "agent": "builder",
                       "reason": "human", "delivered": true});
        let line = human_line(&e);
        let time = ts_of(&e)
            .unwrap()
            .with_timezone(&Local)
            .format("%m-%d %H:%M:%S")
            .to_string();
        assert_eq!(
            line,
            format!("  {time}  ping               builder    (human)")
        );
    }
}
