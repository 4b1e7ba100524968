//! Starting and stopping sessions: agents (kickoff file, environment, delivery), services
//! and the watchdog. `up`, `down` and the watchdog all act through these functions.
use std::path::Path;

use crate::backend::{self, LaunchCommand, LaunchPlan};
use crate::config::{Agent, Config, Phase, Service};
use crate::tmux::{Command, DeliverOptions, NewSession, Tmux};
use crate::{Error, Result, events::EventLog, state};

/// The tmux server of this config: `ORCH_TMUX_SOCKET`, else `tmux_socket`, else the default.
pub fn tmux_for(cfg: &Config) -> Tmux {
    Tmux::resolve(cfg.tmux_socket.as_deref())
}

fn to_tmux(command: LaunchCommand) -> Command {
    match command {
        LaunchCommand::Shell(s) => Command::Shell(s),
        LaunchCommand::Argv(a) => Command::Argv(a),
    }
}

fn ensure_dirs(cfg: &Config) -> Result<()> {
    for dir in [&cfg.log_dir, &cfg.state_dir] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating the log folder", e))?;
    }
    Ok(())
}

/// Start `agent` for `phase` (its session must not exist). The kickoff file is written first;
/// a plan that fails (a vanished prompt file) leaves no session behind.
pub fn start_agent(
    cfg: &Config,
    tmux: &Tmux,
    agent: &Agent,
    phase: Option<&Phase>,
) -> Result<LaunchPlan> {
    let plan = backend::plan_launch(cfg, agent, phase)?;
    ensure_dirs(cfg)?;
    if agent.hooks {
        install_hooks(agent);
    }
    state::write_atomic(&plan.kickoff_file, plan.kickoff.as_bytes())
        .map_err(|e| Error::io(&plan.kickoff_file, "writing the kickoff file", e))?;
    let mut spec = NewSession::new(&plan.session, &plan.cwd, to_tmux(plan.command.clone()));
    spec.env = plan.env.clone();
    spec.log = Some(cfg.session_log(&plan.session));
    tmux.new_session(&spec)?;
    if let Some(Err(e)) = plan
        .ping
        .as_ref()
        .map(|boot| deliver_boot(tmux, &plan.session, boot))
    {
        let _ = tmux.kill_session(&plan.session);
        return Err(e);
    }
    tracing::debug!(agent = %agent.name, session = %plan.session, model = %plan.model, "started");
    log_event(
        cfg,
        crate::events::AGENT_STARTED,
        serde_json::json!({
            "agent": agent.name, "session": plan.session, "model": plan.model,
            "phase": phase.map(|p| p.id.as_str()),
        }),
    );
    Ok(plan)
}

/// Wire `orch hook` into the agent dir's Claude settings; a failure is reported, never fatal.
fn install_hooks(agent: &Agent) {
    let result = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| crate::hooks::install(&agent.dir, &exe).map_err(|e| e.to_string()));
    if let Err(e) = result {
        tracing::warn!(agent = %agent.name, "cannot wire the Claude hooks: {e}");
    }
}

/// `ping` delivery: wait (bounded by connect_delay) until the pane is quiet and shows an input,
/// then type the boot line and confirm it was submitted.
fn deliver_boot(tmux: &Tmux, session: &str, boot: &backend::PingBoot) -> Result<()> {
    let ready = tmux.wait_until_ready(session, boot.connect_delay, crate::detect::shows_input)?;
    if !ready {
        tracing::warn!(
            session,
            "no input prompt within connect_delay; typing the kickoff line anyway"
        );
    }
    let outcome = tmux.deliver(
        session,
        &boot.line,
        &boot.submit_key,
        &DeliverOptions::default(),
    )?;
    if !outcome.confirmed {
        tracing::warn!(
            session,
            submits = outcome.submits,
            "kickoff line typed but its submit was not confirmed"
        );
    }
    Ok(())
}

/// Start a service (its session must not exist).
pub fn start_service(cfg: &Config, tmux: &Tmux, svc: &Service) -> Result<()> {
    ensure_dirs(cfg)?;
    let (command, env) = backend::plan_service(svc);
    let mut spec = NewSession::new(&svc.session, &svc.dir, to_tmux(command));
    spec.env = env;
    spec.log = Some(cfg.session_log(&svc.session));
    tmux.new_session(&spec)?;
    Ok(())
}

/// Start the watchdog in session `<prefix>watchdog`, running this binary.
pub fn start_watchdog(cfg: &Config, tmux: &Tmux) -> Result<()> {
    ensure_dirs(cfg)?;
    let exe = std::env::current_exe().map_err(|e| {
        Error::Runtime(format!(
            "cannot find the orch binary to run the watchdog: {e}"
        ))
    })?;
    let session = cfg.watchdog_session();
    // Its output goes straight to its log (not through the pane), so the last lines it writes
    // while being stopped are kept.
    let argv = [
        "sh",
        "-c",
        r#"exec "$0" --config "$1" watchdog >>"$2" 2>&1"#,
        &exe.display().to_string(),
        &cfg.path.display().to_string(),
        &cfg.session_log(&session).display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut spec = NewSession::new(&session, &cfg.project_dir, Command::Argv(argv));
    if let Some(socket) = tmux.socket() {
        spec.env
            .push(("ORCH_TMUX_SOCKET".into(), socket.to_string()));
    }
    tmux.new_session(&spec)?;
    Ok(())
}

/// Stop a session; `false` when it was not running.
pub fn stop_session(tmux: &Tmux, session: &str) -> Result<bool> {
    Ok(tmux.kill_session(session)?)
}

/// Append to the event log; a failure to log is reported, never fatal.
pub fn log_event(cfg: &Config, event: &str, fields: serde_json::Value) {
    let result = EventLog::open(&cfg.log_dir).and_then(|log| log.append(event, fields));
    if let Err(e) = result {
        tracing::warn!("cannot append to {}: {e}", cfg.events_file().display());
    }
}

/// The tail of a session log (for `logs -n`).
pub fn read_log_tail(path: &Path, lines: usize) -> std::io::Result<String> {
    let text = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}
