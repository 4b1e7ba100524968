//! What `orch status` shows: every agent, service and the watchdog, and the phase, gathered
//! from one tmux call; rendered as a table or as the JSON of DESIGN.md (fields never renamed).
use serde::Serialize;

use crate::backend::model_for;
use crate::config::Config;
use crate::phase;
use crate::tmux::Fleet;
use crate::watchdog::policy;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub phase: Option<PhaseReport>,
    pub agents: Vec<AgentReport>,
    pub services: Vec<ServiceReport>,
    pub watchdog: WatchdogReport,
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
    /// Why a supervision policy keeps it stopped: `gave_up`, `timed_out` or `stopped`.
    pub parked: Option<&'static str>,
    /// Restarts by the restart policy since its last fresh start.
    pub restarts: u32,
    /// The exit status of its last exit, when one was seen.
    pub last_exit: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct ServiceReport {
    pub name: String,
    pub session: String,
    pub running: bool,
    pub command: String,
}

#[derive(Debug, Serialize)]
pub struct WatchdogReport {
    pub running: bool,
    pub session: String,
}

/// Build the report from the config and one snapshot of the tmux server.
pub fn gather(cfg: &Config, fleet: &Fleet) -> Report {
    let current = phase::current(cfg);
    let live = |session: &str| fleet.get(session).filter(|p| !p.dead);
    let agents = cfg
        .agents
        .iter()
        .map(|a| {
            let pane = live(&a.session);
            let record = policy::record(cfg, &a.name);
            AgentReport {
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
                parked: policy::parked(cfg, &a.name).filter(|_| pane.is_none()),
                restarts: record.restarts,
                last_exit: record.exit_status,
            }
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
        })
        .collect();
    let phase = current.map(|p| PhaseReport {
        id: p.id.clone(),
        index: phase::current_index(cfg),
        count: cfg.phases().len(),
        done: phase::is_done(cfg, p),
        plan: p.plan.clone(),
        sequence_complete: cfg.sequence_complete_file().exists(),
    });
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
    }
}

/// The human table.
pub fn render_table(r: &Report) -> String {
    let mut out = String::new();
    if let Some(p) = &r.phase {
        let state = match (p.sequence_complete, p.done) {
            (true, _) => "sequence complete",
            (false, true) => "DONE",
            (false, false) => "in progress",
        };
        let plan = if p.plan.is_empty() { "-" } else { &p.plan };
        out += &format!(
            "phase {}  [{}/{}]  plan={plan}  ({state})\n",
            p.id,
            p.index + 1,
            p.count
        );
    }
    out += &format!(
        "{:<14} {:<12} {:<9} {:<12} {:<10} STATE\n",
        "NAME", "KIND", "BACKEND", "MODEL", "WATCH"
    );
    for a in &r.agents {
        let mut state = if a.running {
            "RUNNING".to_string()
        } else {
            "stopped".to_string()
        };
        if !a.enabled {
            state += " (disabled)";
        }
        if let Some(why) = a.parked {
            state += &format!(" ({})", why.replace('_', " "));
        }
        if a.running && !a.command.is_empty() {
            state += &format!(" [{}]", a.command);
        }
        let model = if a.model.is_empty() {
            "default"
        } else {
            &a.model
        };
        out += &format!(
            "{:<14} {:<12} {:<9} {:<12} {:<10} {state}\n",
            a.name, a.kind, a.backend, model, a.watch
        );
    }
    for s in &r.services {
        let state = if s.running { "RUNNING" } else { "stopped" };
        out += &format!(
            "{:<14} {:<12} {:<9} {:<12} {:<10} {state}\n",
            s.name, "service", "-", "-", "-"
        );
    }
    let state = if r.watchdog.running {
        "RUNNING"
    } else {
        "stopped"
    };
    out += &format!(
        "{:<14} {:<12} {:<9} {:<12} {:<10} {state}\n",
        "watchdog", "watchdog", "-", "-", "-"
    );
    out
}
