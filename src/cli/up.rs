//! `orch up [NAME...]`: start enabled agents, services and the watchdog (or just the named
//! ones). A session that exists is left alone; loops start on the current phase.
use std::process::ExitCode;

use crate::config::{Config, Kind};
use crate::{Error, Result, fleet, phase};

pub fn run(cfg: &Config, names: &[String]) -> Result<ExitCode> {
    check_names(cfg, names)?;
    let tmux = fleet::tmux_for(cfg);
    let wanted = |n: &str| names.is_empty() || names.iter().any(|x| x == n);
    let queued = super::up_slurm::allocate(cfg, names)?;
    let running = fleet::snapshot(cfg)?;
    let agents: Vec<_> = cfg
        .agents
        .iter()
        .filter(|a| {
            if names.is_empty() {
                a.enabled
            } else {
                wanted(&a.name)
            }
        })
        .collect();
    let new_loops = agents
        .iter()
        .any(|a| a.kind == Kind::Loop && !running.contains(&a.session));
    if new_loops {
        // A fresh start: no loop agent and no watchdog running (else the sequence is under
        // way and only some of its sessions are being restarted).
        let fresh = !running.contains(&cfg.watchdog_session())
            && !cfg.loop_agents().any(|a| running.contains(&a.session));
        prepare_loops(cfg, running.contains(&cfg.watchdog_session()), fresh)?;
    }
    let current = phase::current(cfg);
    // One agent that fails to start does not keep the others down; the failures are reported
    // (and the exit code set) once everything else was started.
    let mut failures: Vec<Error> = Vec::new();
    for agent in agents {
        // A dead pane (kept by remain-on-exit) is not running: start_agent replaces it.
        if running.get(&agent.session).is_some_and(|p| !p.dead) {
            println!(
                "{} already running ({}): left alone",
                agent.name, agent.session
            );
            continue;
        }
        if let Some(job) = agent.host.as_ref().and_then(|h| queued.get(h)) {
            println!(
                "{} waits for allocation {job} of host {} (queued): the watchdog starts it once it runs",
                agent.name,
                agent.host.as_deref().unwrap_or_default()
            );
            continue;
        }
        if running.unreachable(&agent.session) {
            let host = agent.host.as_deref().unwrap_or_default();
            failures.push(Error::Runtime(format!(
                "agent {} not started: host {host} is unreachable (see `orch hosts`)",
                agent.name
            )));
            continue;
        }
        let plan = match fleet::start_agent_by(cfg, &tmux, agent, current, "up") {
            Ok(plan) => plan,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        let model = if plan.model.is_empty() {
            "default"
        } else {
            &plan.model
        };
        println!(
            "started {} ({}, {}, model {model})",
            agent.name, agent.session, agent.backend
        );
    }
    for svc in cfg.services.iter().filter(|s| {
        if names.is_empty() {
            s.enabled
        } else {
            wanted(&s.name)
        }
    }) {
        if running.contains(&svc.session) {
            println!("{} already running ({}): left alone", svc.name, svc.session);
        } else if let Some(job) = svc.host.as_ref().and_then(|h| queued.get(h)) {
            println!(
                "service {} waits for allocation {job} (queued): start it again once it runs",
                svc.name
            );
        } else {
            fleet::start_service(cfg, &tmux, svc)?;
            println!("started service {} ({})", svc.name, svc.session);
        }
    }
    if wanted("watchdog") {
        let session = cfg.watchdog_session();
        if running.contains(&session) {
            println!("watchdog already running ({session}): left alone");
        } else {
            fleet::start_watchdog(cfg, &tmux)?;
            println!("started watchdog ({session})");
        }
    }
    match failures.pop() {
        None => Ok(ExitCode::SUCCESS),
        Some(last) => {
            for e in &failures {
                eprintln!("orch: {e}");
            }
            Err(last)
        }
    }
}

/// Every name must be an agent, a service or "watchdog".
pub fn check_names(cfg: &Config, names: &[String]) -> Result<()> {
    let known = cfg.known_names();
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !known.contains(n))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "unknown name{} {} in {} (known: {})",
        if unknown.len() > 1 { "s" } else { "" },
        unknown.join(", "),
        cfg.path.display(),
        known.join(", ")
    )))
}

/// Before loop agents start: on a `fresh` start `resume_phase = false` resets to phase 0 (a
/// crashed loop agent restarted mid-sequence keeps the current phase), and the handoff
/// baseline (the origin/main tip already handled) is recorded so that a claim pushed right
/// after start is pinged even if the watchdog's first fetch comes later. Not fresh, a
/// remembered tip is kept so claims pushed while the watchdog was down are still pinged.
fn prepare_loops(cfg: &Config, watchdog_running: bool, fresh: bool) -> Result<()> {
    let Some(l) = &cfg.loop_ else { return Ok(()) };
    if fresh && !l.resume_phase && !l.phases.is_empty() {
        phase::set_index(cfg, 0)?;
    }
    if l.handoff.is_some() && !watchdog_running {
        let repo = phase::handoff_repo(cfg);
        if let Err(e) = crate::watchdog::record_baseline(cfg, &repo, !fresh) {
            tracing::warn!(
                "could not record the handoff baseline of {}: {e}",
                repo.display()
            );
        }
    }
    Ok(())
}
