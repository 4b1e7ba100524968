//! What `orch status` shows: every agent, service and the watchdog, and the phase, gathered
//! from one tmux call; rendered as a table or as the JSON of DESIGN.md (fields never renamed).
pub mod attention;
pub mod pools;
mod state;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::backend::model_for;
use crate::config::{Agent, Config, Watch};
use crate::fleet::{records, screen};
use crate::hooks::{self, HookSummary};
use crate::phase;
use crate::tmux::{Fleet, HostReport, PaneInfo};

pub use state::{ACTIVE_WINDOW_SECS, AgentState, Derived, Lifecycle, Observation, derive_state};
pub use table::{human_duration, render_table_styled};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub phase: Option<PhaseReport>,
    pub agents: Vec<AgentReport>,
    pub services: Vec<ServiceReport>,
    pub watchdog: WatchdogReport,
    /// Each `[host.NAME]`: reachable, round trip, tmux version, error (empty without hosts).
    pub hosts: Vec<HostReport>,
    /// Account pools: members, hold, queued pings (empty without pools).
    pub pools: Vec<pools::PoolReport>,
}

#[derive(Debug, Serialize)]
pub struct PhaseReport {
    pub id: String,
    pub index: usize,
    pub count: usize,
    pub done: bool,
    pub plan: String,
    pub sequence_complete: bool,
}

#[derive(Debug, Serialize)]
pub struct AgentReport {
    pub name: String,
    pub kind: &'static str,
    pub backend: String,
    pub model: String,
    pub session: String,
    pub watch: &'static str,
    pub enabled: bool,
    pub running: bool,
    /// What the pane runs now (tmux's pane_current_command); empty when stopped.
    pub command: String,
    pub pid: Option<u32>,
    /// `login_required` / `auth_error` / `network_error` / a dialog (`permission_prompt`...) /
    /// `exited` (a refusal) / `heal_limit` while a human must act (the watchdog's open episode).
    pub needs_attention: Option<String>,
    /// The open episode in full: `state`, `since`, `rule`, `reason`, `exit_status`, `lines`.
    pub attention: Option<screen::Attention>,
    /// Why its last run ended (a refusal's rule, `exited with status N`, `session gone`);
    /// always set for a `dead` agent.
    pub exit_reason: Option<String>,
    /// Pings queued for it, waiting for a screen that takes input.
    pub pending_pings: usize,
    /// working | idle | waiting_input | held | stalled | dead | stopped | gave_up.
    pub state: &'static str,
    /// RFC 3339: for `held`, the end of the usage-limit hold.
    pub until: Option<String>,
    /// RFC 3339: when the current state began (null when unknown).
    pub since: Option<String>,
    /// RFC 3339: the last pane output or hook record.
    pub last_activity_at: Option<String>,
    /// Why a supervision policy keeps it stopped: `gave_up`, `timed_out` or `stopped`.
    pub parked: Option<&'static str>,
    /// How many times the watchdog restarted it (`healed` and `restarted` events).
    pub restarts: u64,
    /// The exit status of its last exit, when one was seen.
    pub last_exit: Option<i32>,
    /// Why it was last restarted: a `healed` reason, or `exited` (restart policy).
    pub last_heal_reason: Option<String>,
    pub last_tool: Option<String>,
    pub last_tool_at: Option<String>,
    /// Tool uses among the kept hook records (the last 500).
    pub tool_counts: BTreeMap<String, u64>,
    /// The `[host.NAME]` it runs on, `"local"` for this machine.
    pub host: String,
    /// The account pool it is in (`[pool.NAME]` or a derived `<backend>-<key>`), if any.
    pub pool: Option<String>,
    /// How full its context window is this session (percent), where known.
    pub context_pct: Option<f64>,
    /// Where `context_pct` comes from: `statusline` or `transcript`.
    pub context_source: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub name: String,
    pub session: String,
    pub running: bool,
    pub command: String,
    /// The `[host.NAME]` it runs on, `"local"` for this machine.
    pub host: String,
}

#[derive(Debug, Serialize)]
pub struct WatchdogReport {
    pub running: bool,
    pub session: String,
}

/// Build the report from the config and one snapshot of the tmux server.
pub fn gather(cfg: &Config, fleet: &Fleet) -> Report {
    gather_at(cfg, fleet, Utc::now().timestamp())
}

/// [`gather`] as of `now` (Unix seconds). Reads the event log once, each agent's hook records
/// and hold file; never calls tmux.
pub fn gather_at(cfg: &Config, fleet: &Fleet, now: i64) -> Report {
    let current = phase::current(cfg);
    let live = |session: &str| fleet.get(session).filter(|p| !p.dead);
    let history = EventHistory::read(&cfg.events_file());
    let attention = screen::load_attention(cfg);
    let (pool_reports, pooled) = pools::gather(cfg);
    let agents = cfg
        .agents
        .iter()
        .map(|a| {
            let pane = live(&a.session);
            let record = records::record(cfg, &a.name);
            let mut report = AgentReport {
                name: a.name.clone(),
                kind: a.kind.as_str(),
                backend: a.backend.clone(),
                model: model_for(a, current),
                session: a.session.clone(),
                watch: a.watch.as_str(),
                enabled: a.enabled,
                running: pane.is_some(),
                command: pane.map(|p| p.command.clone()).unwrap_or_default(),
                pid: pane.and_then(|p| p.pid),
                needs_attention: attention
                    .get(&a.name)
                    .filter(|x| opened_since_start(&x.since, record.started_at))
                    .map(|x| x.state.clone()),
                attention: attention
                    .get(&a.name)
                    .filter(|x| opened_since_start(&x.since, record.started_at))
                    .cloned(),
                exit_reason: record.exit_reason.clone(),
                pending_pings: crate::fleet::pings::pending_count(cfg, &a.name),
                state: "stopped",
                until: None,
                since: None,
                last_activity_at: None,
                parked: records::parked(cfg, &a.name).filter(|_| pane.is_none()),
                restarts: 0,
                last_exit: record.exit_status,
                last_heal_reason: None,
                last_tool: None,
                last_tool_at: None,
                tool_counts: BTreeMap::new(),
                host: host_name(a.host.as_deref()),
                pool: pooled.get(&a.name).map(|(p, _)| p.clone()),
                context_pct: None,
                context_source: None,
            };
            observe_agent(cfg, a, fleet.get(&a.session), &history, now, &mut report);
            if let Some((_, Some(hold))) = pooled.get(&a.name)
                && report.parked.is_none()
            {
                // Its account pool is held: held, whatever its own screen shows.
                report.state = "held";
                report.until = hold
                    .next_release
                    .or(Some(hold.until))
                    .and_then(|u| rfc3339(u.floor() as i64));
                report.since = rfc3339(hold.since.floor() as i64);
            }
            if fleet.unreachable(&a.session) {
                // Its host did not answer: not dead, not stopped, just not known right now.
                report.state = "unreachable";
                report.since = None;
                // A SLURM host whose allocation is queued: its agents are starting.
                let pending = fleet.hosts().iter().any(|h| {
                    Some(h.name.as_str()) == a.host.as_deref()
                        && h.job_state
                            .as_deref()
                            .is_some_and(crate::transport::slurm::is_pending)
                });
                if pending {
                    report.state = "starting";
                }
            }
            report
        })
        .collect();
    let services = cfg
        .services
        .iter()
        .map(|s| ServiceReport {
            name: s.name.clone(),
            session: s.session.clone(),
            running: live(&s.session).is_some(),
            command: live(&s.session)
                .map(|p| p.command.clone())
                .unwrap_or_default(),
            host: host_name(s.host.as_deref()),
        })
        .collect();
    let phase = phase_report(cfg);
    let wd = cfg.watchdog_session();
    Report {
        schema_version: SCHEMA_VERSION,
        phase,
        agents,
        services,
        watchdog: WatchdogReport {
            running: live(&wd).is_some(),
            session: wd,
        },
        hosts: fleet.hosts().to_vec(),
        pools: pool_reports,
    }
}

/// A host name for the report: `"local"` for this machine.
fn host_name(host: Option<&str>) -> String {
    host.unwrap_or(crate::config::LOCAL).to_string()
}

/// The phase part of the report (None without `[loop].phases`); no tmux.
pub fn phase_report(cfg: &Config) -> Option<PhaseReport> {
    phase::current(cfg).map(|p| PhaseReport {
        id: p.id.clone(),
        index: phase::current_index(cfg),
        count: cfg.phases().len(),
        done: phase::is_done(cfg, p),
        plan: p.plan.clone(),
        sequence_complete: cfg.sequence_complete_file().exists(),
    })
}

/// Fill the derived fields of one agent's report.
fn observe_agent(
    cfg: &Config,
    a: &Agent,
    pane: Option<&PaneInfo>,
    history: &EventHistory,
    now: i64,
    r: &mut AgentReport,
) {
    let records = hooks::read_records(&cfg.log_dir, &a.name);
    let summary: HookSummary = hooks::summarize(&records);
    if pane.is_some_and(|p| !p.dead) {
        let started = crate::fleet::records::record(cfg, &a.name).started_at;
        let transcript = records
            .iter()
            .rev()
            .find_map(|r| r.transcript_path.as_deref())
            .map(std::path::Path::new);
        if let Some(c) = crate::context::current(&cfg.log_dir, &a.name, started, transcript) {
            r.context_pct = Some((c.pct * 10.0).round() / 10.0);
            r.context_source = Some(c.source);
        }
    }
    let mine = history.agents.get(&a.name);
    let lifecycle = match r.parked {
        Some(why) => {
            let l = if why == "gave_up" {
                Lifecycle::GaveUp
            } else {
                Lifecycle::Stopped
            };
            let at = mine.and_then(|m| m.lifecycle).map_or(now, |(_, t)| t);
            Some((l, at))
        }
        None => mine.and_then(|m| m.lifecycle),
    };
    let obs = Observation {
        now,
        pane_dead: pane.map(|p| p.dead),
        pane_activity: pane.and_then(|p| p.activity),
        hook: summary.activity,
        hold_until: read_hold(&cfg.state_dir, &a.session),
        limit_hit_at: mine.and_then(|m| m.limit_hit_at),
        lifecycle,
        stall_after: (a.watch == Watch::HealStall)
            .then(|| cfg.backend_of(a).stall_idle.as_secs() as i64),
        waiting_on_human: r
            .attention
            .as_ref()
            .filter(|x| x.state != "heal_limit")
            .map(|x| {
                DateTime::parse_from_rfc3339(&x.since)
                    .map(|t| t.timestamp())
                    .unwrap_or(now)
            }),
    };
    let d = derive_state(&obs);
    r.state = d.state.as_str();
    if d.state == AgentState::Dead && r.exit_reason.is_none() {
        r.exit_reason = Some(match (pane.map(|p| p.dead), r.last_exit) {
            (Some(true), Some(s)) => format!("exited with status {s}"),
            (Some(true), None) => "exited".into(),
            _ => "session gone".into(),
        });
    }
    if let AgentState::Held { until } = d.state {
        r.until = rfc3339(until.floor() as i64);
    }
    r.since = d.since.and_then(rfc3339);
    r.last_activity_at = match (obs.pane_activity, summary.last_at) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
    .and_then(rfc3339);
    if let Some(m) = mine {
        r.restarts = m.restarts;
        r.last_heal_reason = m.last_heal_reason.clone();
    }
    r.last_tool = summary.last_tool;
    r.last_tool_at = summary.last_tool_at.and_then(rfc3339);
    r.tool_counts = summary.tool_counts;
}

/// An attention episode opened at `since` (RFC 3339) still describes the process started at
/// `started_ms` (Unix ms): one from before the last (re)start is stale.
fn opened_since_start(since: &str, started_ms: Option<i64>) -> bool {
    match (DateTime::parse_from_rfc3339(since), started_ms) {
        (Ok(t), Some(start)) => t.timestamp_millis() >= start - 1000,
        _ => true,
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> Option<String> {
    DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// The end of a usage-limit hold from `<state_dir>/limited-<session>.json`
/// (`{"until": <epoch secs>, "nudges": n}`); a missing or garbled file is no hold.
pub fn read_hold(state_dir: &Path, session: &str) -> Option<f64> {
    let bytes = std::fs::read(state_dir.join(format!("limited-{session}.json"))).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("until")?.as_f64().filter(|u| u.is_finite())
}

/// What the event log says about each agent.
#[derive(Debug, Default)]
struct EventHistory {
    agents: HashMap<String, AgentHistory>,
}

#[derive(Debug, Default)]
struct AgentHistory {
    lifecycle: Option<(Lifecycle, i64)>,
    restarts: u64,
    last_heal_reason: Option<String>,
    limit_hit_at: Option<i64>,
}

impl EventHistory {
    /// One pass over `events.jsonl`; a missing file or garbled lines give nothing.
    fn read(path: &Path) -> EventHistory {
        let mut h = EventHistory::default();
        for (_, e) in crate::events::read_since(path, 0) {
            let Some(agent) = e.get("agent").and_then(Value::as_str) else {
                continue;
            };
            let name = e.get("event").and_then(Value::as_str).unwrap_or("");
            let ts = e
                .get("ts")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp());
            let entry = h.agents.entry(agent.to_string()).or_default();
            let lifecycle = match name {
                crate::events::AGENT_STARTED => {
                    // A fresh `up` (after `down`, or of a dead agent) counts restarts anew.
                    if e.get("by").and_then(Value::as_str) == Some("up") {
                        entry.restarts = 0;
                        entry.last_heal_reason = None;
                    }
                    Some(Lifecycle::Started)
                }
                crate::events::AGENT_STOPPED => Some(Lifecycle::Stopped),
                crate::events::HEALED => {
                    entry.restarts += 1;
                    entry.last_heal_reason =
                        e.get("reason").and_then(Value::as_str).map(String::from);
                    Some(Lifecycle::Started)
                }
                crate::events::RESTARTED => {
                    entry.restarts += 1;
                    entry.last_heal_reason = Some("exited".into());
                    Some(Lifecycle::Started)
                }
                crate::events::TIMED_OUT => Some(Lifecycle::Stopped),
                crate::events::LIMIT_HIT => {
                    entry.limit_hit_at = ts.or(entry.limit_hit_at);
                    None
                }
                n if n.contains("gave_up") => Some(Lifecycle::GaveUp),
                _ => None,
            };
            if let (Some(l), Some(t)) = (lifecycle, ts) {
                entry.lifecycle = Some((l, t));
            }
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_history_counts_heals_and_keeps_the_last_lifecycle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(
            &path,
            concat!(
                "{\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"agent_started\",\"agent\":\"b\"}\n",
                "{\"ts\":\"2026-01-01T00:01:00Z\",\"event\":\"healed\",\"agent\":\"b\",\"reason\":\"gone\"}\n",
                "garbage\n",
                "{\"ts\":\"2026-01-01T00:02:00Z\",\"event\":\"healed\",\"agent\":\"b\",\"reason\":\"stall\"}\n",
                "{\"ts\":\"2026-01-01T00:03:00Z\",\"event\":\"limit_hit\",\"agent\":\"b\",\"until\":1}\n",
                "{\"ts\":\"2026-01-01T00:04:00Z\",\"event\":\"agent_stopped\",\"agent\":\"a\"}\n",
                "{\"ts\":\"2026-01-01T00:05:00Z\",\"event\":\"healed\",\"agent\":\"c\",\"reason\":\"gone\"}\n",
                "{\"ts\":\"2026-01-01T00:06:00Z\",\"event\":\"agent_started\",\"agent\":\"c\",\"by\":\"up\"}\n",
                "{\"ts\":\"2026-01-01T00:07:00Z\",\"event\":\"agent_started\",\"agent\":\"c\",\"by\":\"watchdog\"}\n",
            ),
        )
        .unwrap();
        let h = EventHistory::read(&path);
        let b = &h.agents["b"];
        assert_eq!(b.restarts, 2);
        assert_eq!(b.last_heal_reason.as_deref(), Some("stall"));
        assert_eq!(b.lifecycle.map(|l| l.0), Some(Lifecycle::Started));
        assert!(b.limit_hit_at.is_some());
        assert_eq!(
            h.agents["a"].lifecycle.map(|l| l.0),
            Some(Lifecycle::Stopped)
        );
        // A fresh `up` starts the count over; the watchdog's own starts do not.
        assert_eq!(h.agents["c"].restarts, 0);
        assert_eq!(h.agents["c"].last_heal_reason, None);
    }

    #[test]
    fn an_attention_episode_from_before_the_last_start_is_stale() {
        let start = 1_767_225_600_000;
        assert!(!opened_since_start(
            "2026-01-01T00:00:00Z",
            Some(start + 60_000)
        ));
        assert!(opened_since_start(
            "2026-01-01T00:02:00Z",
            Some(start + 60_000)
        ));
        assert!(opened_since_start("2026-01-01T00:00:00Z", None));
        assert!(opened_since_start("garbled", Some(start)));
    }

    #[test]
    fn hold_files_are_read_defensively() {
        let dir = tempfile::tempdir().unwrap();
        let p = |s: &str| dir.path().join(format!("limited-{s}.json"));
        std::fs::write(p("a"), r#"{"until": 1700000000.5, "nudges": 2}"#).unwrap();
        std::fs::write(p("b"), r#"{"until": 1700000000}"#).unwrap();
        std::fs::write(p("c"), "{garbled").unwrap();
        std::fs::write(p("d"), r#"{"until": "soon"}"#).unwrap();
        assert_eq!(read_hold(dir.path(), "a"), Some(1_700_000_000.5));
        assert_eq!(read_hold(dir.path(), "b"), Some(1_700_000_000.0));
        assert_eq!(read_hold(dir.path(), "c"), None);
        assert_eq!(read_hold(dir.path(), "d"), None);
        assert_eq!(read_hold(dir.path(), "missing"), None);
    }
}
