//! Starting and stopping sessions: agents (kickoff file, environment, delivery), services
//! and the watchdog. `up`, `down` and the watchdog all act through these functions.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::backend::{self, LaunchCommand, LaunchPlan};
use crate::config::{Agent, Config, Phase, Service};
use crate::tmux::{Command, DeliverOptions, NewSession, Tmux, TmuxError};
use crate::{Error, Result, events::EventLog, state, workspace};

pub mod containers;
pub mod gc;
pub mod hosts;
pub mod ping_log;
pub mod pings;
pub mod pool_hold;
pub mod records;
pub mod redaction;
pub mod render;
pub mod rotation;
pub mod screen;
pub mod slurm;
pub mod stop;

/// The tmux server of this config: `ORCH_TMUX_SOCKET`, else `tmux_socket`, else the default.
/// Sessions of agents and services on a `[host.NAME]` are routed to that host's server.
pub fn tmux_for(cfg: &Config) -> Tmux {
    hosts::routed(cfg, Tmux::resolve(cfg.tmux_socket.as_deref()))
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

/// The launch plan of `agent` as it will really run: in its worktree when `worktree = true`,
/// with its secrets under its `env` (values never logged). Returns the effective agent too.
pub fn plan_agent(
    cfg: &Config,
    agent: &Agent,
    phase: Option<&Phase>,
) -> Result<(Agent, LaunchPlan)> {
    let agent = workspace::effective_agent(cfg, agent);
    let mut plan = backend::plan_launch(cfg, &agent, phase)?;
    if let Some(dir) = &agent.secrets_dir {
        let secrets = crate::secrets::read_dir(dir)
            .map_err(|e| Error::Config(format!("agent {}: {e}", agent.name)))?;
        crate::secrets::merge_under(&mut plan.env, secrets);
    }
    Ok((agent, plan))
}

/// A digest of everything launch-relevant in the agent's plan (backend, model, command line,
/// env with secrets, kickoff and workspace files, dir), without volatile parts (the resume id).
/// The watchdog restarts an agent whose fingerprint changed since it started.
pub fn launch_fingerprint(cfg: &Config, agent: &Agent, phase: Option<&Phase>) -> Result<String> {
    let mut a = agent.clone();
    a.resume = false;
    let (eff, plan) = plan_agent(cfg, &a, phase)?;
    let mut env = plan.env.clone();
    env.sort();
    let text = format!(
        "{}\0{}\0{:?}\0{:?}\0{}\0{}\0{:?}\0{}",
        eff.backend,
        plan.cwd.display(),
        plan.command,
        env,
        plan.kickoff,
        plan.model,
        plan.ping.as_ref().map(|p| (&p.line, &p.submit_key)),
        workspace::files_digest_input(&eff),
    );
    Ok(crate::handoff::md5_hex(text.as_bytes()))
}

/// Start `agent` for `phase` (its session must not exist, or hold only a dead pane). The
/// worktree, workspace files and kickoff file come first; a plan that fails (a vanished prompt
/// file) leaves no session behind. Records the start (time, fingerprint) for the watchdog.
pub fn start_agent(
    cfg: &Config,
    tmux: &Tmux,
    agent: &Agent,
    phase: Option<&Phase>,
) -> Result<LaunchPlan> {
    start_agent_by(cfg, tmux, agent, phase, "watchdog")
}

/// [`start_agent`], saying who starts it in the `agent_started` event (`by`: `up` is a fresh
/// start, whose restart count begins at 0).
pub fn start_agent_by(
    cfg: &Config,
    tmux: &Tmux,
    agent: &Agent,
    phase: Option<&Phase>,
    by: &str,
) -> Result<LaunchPlan> {
    start_with(cfg, tmux, agent, phase, by, None)
}

/// Start `agent` afresh after a context rotation: never resumed (whatever `resume` says), its
/// kickoff the usual one followed by `note` ("read <handoff_file> first").
pub fn start_agent_rotated(
    cfg: &Config,
    tmux: &Tmux,
    agent: &Agent,
    phase: Option<&Phase>,
    note: &str,
) -> Result<LaunchPlan> {
    let mut fresh = agent.clone();
    fresh.resume = false;
    start_with(cfg, tmux, &fresh, phase, "rotation", Some(note))
}

fn start_with(
    cfg: &Config,
    tmux: &Tmux,
    agent: &Agent,
    phase: Option<&Phase>,
    by: &str,
    note: Option<&str>,
) -> Result<LaunchPlan> {
    let fingerprint = launch_fingerprint(cfg, agent, phase)?;
    if agent.worktree {
        workspace::ensure_worktree(cfg, &agent.name)
            .map_err(|e| Error::Runtime(format!("cannot prepare the worktree: {e}")))?;
    }
    let (eff, mut plan) = plan_agent(cfg, agent, phase)?;
    if let Some(note) = note {
        // The fingerprint stays the usual kickoff's: a rotated agent is not a changed one.
        if !plan.kickoff.is_empty() && !plan.kickoff.ends_with('\n') {
            plan.kickoff.push('\n');
        }
        plan.kickoff.push('\n');
        plan.kickoff.push_str(note);
        plan.kickoff.push('\n');
    }
    if agent.host.is_none() && !plan.cwd.is_dir() {
        return Err(Error::Config(format!(
            "agent {}: its dir {} does not exist (orch does not create it: clone the project there, or fix `dir`)",
            agent.name,
            plan.cwd.display()
        )));
    }
    ensure_dirs(cfg)?;
    if agent.host.is_some() {
        containers::ensure_running(cfg, agent.host.as_deref())?;
        hosts::prepare_on_host(tmux, &eff, &plan)?;
    } else {
        workspace::write_files(&eff, &plan.env)
            .map_err(|e| Error::Runtime(format!("cannot write the workspace files: {e}")))?;
        if agent.hooks {
            install_hooks(&agent.name, &plan.cwd);
        }
        state::write_atomic(&plan.kickoff_file, plan.kickoff.as_bytes())
            .map_err(|e| Error::io(&plan.kickoff_file, "writing the kickoff file", e))?;
    }
    // A (re)started agent's old needs-attention episode describes the process that is gone.
    records::clear_attention(cfg, &agent.name);
    if tmux.pane_dead(&plan.session)? == Some(true) {
        stop_session_gracefully(cfg, tmux, &plan.session, agent.grace_period)?;
    }
    let mut command = to_tmux(plan.command.clone());
    // A restart policy needs the exit status, and an agent whose screen is classified is read
    // after it exits (a refusal to start is news for a person): the pane stays (dead) after
    // its process exits, and the process runs under a recorder (tmux 3.3 sometimes never
    // fills #{pane_dead_status}).
    let keep_dead = agent.restart.is_some() || !cfg.backend_of(agent).screen_rules.is_empty();
    // The exit-status file is a local path: agents on a host keep their dead pane only.
    if keep_dead && agent.host.is_none() {
        let file = exit_status_file(cfg, &plan.session);
        let _ = std::fs::remove_file(&file);
        command = record_exit_status(command, &file);
    }
    let mut spec = NewSession::new(&plan.session, &plan.cwd, command);
    spec.env = plan.env.clone();
    spec.log = Some(cfg.log_of(&agent.name));
    if cfg.host_dir_of(&agent.name).is_none() {
        spec.log_filter = redaction::log_filter(&redaction::agent_secrets(&eff));
    }
    spec.remain_on_exit = keep_dead;
    tmux.new_session(&spec)?;
    // Answer the first dialogs (auto_accept) before anything is typed; see watchdog/screen.rs.
    screen::settle_start(cfg, tmux, agent);
    if let Some(Err(e)) = plan
        .ping
        .as_ref()
        .map(|boot| deliver_boot(tmux, &plan.session, boot))
    {
        // A session that is going away can still be listed for a moment (its capture then
        // fails with "no current target"): look again before calling it anything but an exit.
        let gone = || !matches!(tmux.pane_dead(&plan.session), Ok(Some(false)));
        let exited = gone() || {
            std::thread::sleep(Duration::from_millis(200));
            gone()
        };
        if exited {
            return Err(Error::Runtime(format!(
                "agent {} exited while starting, before its kickoff could be typed (its screen is in {})",
                agent.name,
                cfg.session_log(&plan.session).display()
            )));
        }
        let _ = tmux.kill_session(&plan.session);
        return Err(e);
    }
    records::record_start(cfg, &agent.name, &fingerprint);
    if let Some(p) = phase.filter(|_| agent.kind == crate::config::Kind::Loop) {
        records::update(cfg, &agent.name, |r| r.phase = Some(p.id.clone()));
    }
    tracing::debug!(agent = %agent.name, session = %plan.session, model = %plan.model, "started");
    log_event(
        cfg,
        crate::events::AGENT_STARTED,
        serde_json::json!({
            "agent": agent.name, "session": plan.session, "model": plan.model,
            "phase": phase.map(|p| p.id.as_str()), "by": by,
        }),
    );
    Ok(plan)
}

/// Wire `orch hook` into the agent dir's Claude settings; a failure is reported, never fatal.
fn install_hooks(agent: &str, dir: &Path) {
    let result = std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|exe| crate::hooks::install(dir, &exe).map_err(|e| e.to_string()));
    if let Err(e) = result {
        tracing::warn!(agent, "cannot wire the Claude hooks: {e}");
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

/// Where an agent's exit status is recorded when it runs under a restart policy.
pub fn exit_status_file(cfg: &Config, session: &str) -> PathBuf {
    cfg.state_dir.join(format!("exit-{session}"))
}

/// The exit status recorded for `session`'s last process, if any.
pub fn recorded_exit_status(cfg: &Config, session: &str) -> Option<i32> {
    std::fs::read_to_string(exit_status_file(cfg, session))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Runs the command as a job of its own (`set -m`: it becomes the terminal's foreground
/// process group, so tmux still reports its name and C-c reaches it) and writes its exit status.
const RECORD_SCRIPT: &str =
    r#"f=$1; shift; set -m; "$@"; s=$?; printf '%s\n' "$s" > "$f"; exit "$s""#;

fn record_exit_status(command: Command, file: &Path) -> Command {
    let mut argv: Vec<String> = ["sh", "-c", RECORD_SCRIPT, "orch-exit"]
        .map(String::from)
        .into();
    argv.push(file.display().to_string());
    match command {
        Command::Argv(a) => argv.extend(a),
        Command::Shell(s) => argv.extend(["sh".to_string(), "-c".to_string(), s]),
    }
    Command::Argv(argv)
}

/// Start a service (its session must not exist).
pub fn start_service(cfg: &Config, tmux: &Tmux, svc: &Service) -> Result<()> {
    ensure_dirs(cfg)?;
    containers::ensure_running(cfg, svc.host.as_deref())?;
    let (command, env) = backend::plan_service(svc);
    let mut spec = NewSession::new(&svc.session, &svc.dir, to_tmux(command));
    spec.env = env;
    spec.log = Some(cfg.log_of(&svc.name));
    if cfg.host_dir_of(&svc.name).is_none() {
        spec.log_filter = redaction::log_filter(&redaction::session_secrets(cfg, &svc.session));
    }
    tmux.new_session(&spec)?;
    Ok(())
}

/// The name of the watchdog's own tmux server: `<agents' socket>-watchdog`, or
/// `orch-<prefix>watchdog` when the agents run on the default server. Pure.
pub fn watchdog_socket_name(agents_socket: Option<&str>, session_prefix: &str) -> String {
    match agents_socket.filter(|s| !s.is_empty()) {
        Some(socket) => format!("{socket}-watchdog"),
        None => {
            let prefix: String = session_prefix
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("orch-{prefix}watchdog")
        }
    }
}

/// The watchdog's own tmux server, next to the agents' one, so that a crash of the agents'
/// server (`tmux kill-server`, an OOM kill) cannot take the supervisor down with it.
pub fn watchdog_tmux(cfg: &Config) -> Tmux {
    let agents = tmux_for(cfg);
    Tmux::new(Some(watchdog_socket_name(
        agents.socket(),
        &cfg.session_prefix,
    )))
}

/// The agents' server snapshot with the watchdog's session (on its own server, or on the
/// agents' one when an older orch started it there) merged in: what `status` and `up` read.
pub fn snapshot(cfg: &Config) -> Result<crate::tmux::Fleet> {
    let mut fleet = tmux_for(cfg).fleet()?;
    let session = cfg.watchdog_session();
    if !fleet.contains(&session) && api_answers(cfg) {
        // The watchdog's API socket accepts a connection: it runs, no second tmux call.
        fleet.insert(crate::tmux::PaneInfo {
            session,
            pane_id: String::new(),
            pid: None,
            command: "orch".into(),
            dead: false,
            dead_status: None,
            activity: None,
            window_index: 0,
            pane_index: 0,
        });
        return Ok(fleet);
    }
    if !fleet.contains(&session) && watchdog_server_socket_exists(cfg) {
        match watchdog_tmux(cfg).fleet() {
            Ok(wd) => {
                if let Some(pane) = wd.get(&session) {
                    fleet.insert(pane.clone());
                }
            }
            Err(e) => tracing::warn!("cannot list the watchdog's tmux server: {e}"),
        }
    }
    Ok(fleet)
}

/// False when the watchdog's tmux server surely does not run: its socket file is absent (at
/// `$TMUX_TMPDIR/tmux-<uid>/<name>`, as tmux places it), so no tmux call is needed to know.
fn watchdog_server_socket_exists(cfg: &Config) -> bool {
    let tmux = watchdog_tmux(cfg);
    let Some(name) = tmux.socket() else {
        return true;
    };
    let base = std::env::var_os("TMUX_TMPDIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    base.join(format!("tmux-{uid}")).join(name).exists()
}

/// True when something accepts connections on the watchdog's API socket (`<log_dir>/orch.sock`,
/// removed when the watchdog exits; a stale file refuses the connection).
fn api_answers(cfg: &Config) -> bool {
    std::os::unix::net::UnixStream::connect(cfg.log_dir.join("orch.sock")).is_ok()
}

/// Stop the watchdog gracefully wherever it runs (its own server, or the agents' one when an
/// older orch started it there); `false` when it was not running.
pub fn stop_watchdog(cfg: &Config) -> Result<bool> {
    let session = cfg.watchdog_session();
    let own = stop_session_gracefully(cfg, &watchdog_tmux(cfg), &session, cfg.grace_period)?;
    let legacy = stop_session_gracefully(cfg, &tmux_for(cfg), &session, cfg.grace_period)?;
    Ok(own || legacy)
}

/// Start the watchdog in session `<prefix>watchdog` on its own tmux server (see
/// [`watchdog_tmux`]), running this binary; it supervises the agents' server `tmux`.
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
    // The watchdog's server may have been started with another environment: name the agents'
    // server explicitly (empty: the default server).
    spec.env.push((
        crate::tmux::SOCKET_ENV.into(),
        tmux.socket().unwrap_or_default().to_string(),
    ));
    // What SLURM hosts' commands read, from this shell (a server started earlier lacks it).
    if let Some(conf) = std::env::var_os("SLURM_CONF").filter(|c| !c.is_empty()) {
        spec.env
            .push(("SLURM_CONF".into(), conf.to_string_lossy().into_owned()));
    }
    watchdog_tmux(cfg).new_session(&spec)?;
    Ok(())
}

/// Stop a session at once (no grace); `false` when it was not running.
pub fn stop_session(tmux: &Tmux, session: &str) -> Result<bool> {
    Ok(tmux.kill_session(session)?)
}

/// How often a graceful stop looks whether the pane's process has exited.
const STOP_POLL: Duration = Duration::from_millis(100);

/// The graceful stop every caller uses: the backend's `stop_keys` (C-c by default) one at a
/// time, again after 3 s, wait up to `grace` for the pane's process to exit, append the pane's
/// whole scrollback to `<log_dir>/<session>.scrollback.log`, kill the session, then end every
/// process the session started that is still there (children that detached too; see
/// `fleet::stop::Tree`). `false` when the session was not there.
pub fn stop_session_gracefully(
    cfg: &Config,
    tmux: &Tmux,
    session: &str,
    grace: Duration,
) -> Result<bool> {
    let Some(pane) = tmux.fleet()?.get(session).cloned() else {
        return Ok(false);
    };
    // A dead pane's pid may be another process's by now: only a live one names the tree.
    let tree = stop::Tree::of(cfg, session, pane.pid.filter(|_| !pane.dead));
    if !pane.dead {
        // Keep the pane once its process exits, so its scrollback can still be read.
        let prepared = tmux
            .set_remain_on_exit(session)
            .and_then(|_| stop::send_stop_keys(cfg, tmux, session));
        if let Err(e) = prepared {
            // Gone in the meantime (it exited by itself): nothing left to stop.
            if matches!(e, TmuxError::NoSession { .. }) || !tmux.has_session(session)? {
                tree.end(session);
                return Ok(true);
            }
            return Err(e.into());
        }
        let start = Instant::now();
        let mut again = false;
        loop {
            match tmux.pane_dead(session)? {
                None => {
                    tree.end(session);
                    return Ok(true);
                }
                Some(true) => break,
                Some(false) if start.elapsed() >= grace => {
                    tracing::info!(
                        session,
                        ?grace,
                        "still running after the grace period: killing it"
                    );
                    break;
                }
                Some(false) => {}
            }
            if !again && start.elapsed() >= Duration::from_secs(3) {
                again = true;
                let _ = stop::send_stop_keys(cfg, tmux, session);
            }
            std::thread::sleep(STOP_POLL);
        }
    }
    save_scrollback(cfg, tmux, session);
    let killed = tmux.kill_session(session)?;
    tree.end(session);
    Ok(killed)
}

/// Append the pane's history to `<log_dir>/<session>.scrollback.log`; failures are reported only.
fn save_scrollback(cfg: &Config, tmux: &Tmux, session: &str) {
    let text = match tmux.capture_history(session) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(
                session,
                "cannot capture the scrollback before stopping: {e}"
            );
            return;
        }
    };
    let text = redaction::session_redactor(cfg, session).redact(&text);
    let path = cfg.log_dir.join(format!("{session}.scrollback.log"));
    let header = format!(
        "===== {session} stopped {} =====\n",
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
    );
    let result = std::fs::create_dir_all(&cfg.log_dir).and_then(|_| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(header.as_bytes())?;
        f.write_all(text.trim_end_matches('\n').as_bytes())?;
        f.write_all(b"\n")
    });
    if let Err(e) = result {
        tracing::warn!("cannot append to {}: {e}", path.display());
    }
}

/// Stop an agent gracefully (its `grace_period`), marking it deliberately stopped so the
/// restart policy leaves it down; `false` when it was not running.
pub fn stop_agent(cfg: &Config, tmux: &Tmux, agent: &Agent) -> Result<bool> {
    records::record_stopped(cfg, &agent.name);
    screen::clear_attention(cfg, &agent.name);
    stop_session_gracefully(cfg, tmux, &agent.session, agent.grace_period)
}

/// Append to the event log; a failure to log is reported, never fatal.
pub fn log_event(cfg: &Config, event: &str, fields: serde_json::Value) {
    let result = EventLog::open(&cfg.log_dir).and_then(|mut log| {
        log.set_secrets(redaction::config_secrets(cfg));
        log.append(event, fields)
    });
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

#[cfg(test)]
mod tests {
    use super::watchdog_socket_name;

    #[test]
    fn the_watchdog_server_sits_next_to_the_agents_one() {
        assert_eq!(
            watchdog_socket_name(Some("orch-x"), "x-"),
            "orch-x-watchdog"
        );
        assert_eq!(
            watchdog_socket_name(None, "my proj/"),
            "orch-my_proj_watchdog"
        );
        assert_eq!(watchdog_socket_name(Some(""), "p-"), "orch-p-watchdog");
    }
}
