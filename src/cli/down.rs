//! `orch down [NAME...] [--clean]`: stop agents, services and the watchdog (or just the named
//! ones) gracefully, each by its exact session name; `--clean` also removes agent worktrees.
use std::process::ExitCode;

use crate::config::Config;
use crate::{Result, fleet, workspace};

pub fn run(cfg: &Config, names: &[String], clean: bool) -> Result<ExitCode> {
    super::up::check_names(cfg, names)?;
    let tmux = fleet::tmux_for(cfg);
    let wanted = |n: &str| names.is_empty() || names.iter().any(|x| x == n);
    let report = |name: &str, session: &str, stopped: Result<bool>| -> Result<()> {
        if stopped? {
            println!("stopped {name} ({session})");
        } else if !names.is_empty() {
            println!("{name} was not running ({session})");
        }
        Ok(())
    };
    // The watchdog first, so it does not restart what is being stopped.
    if wanted("watchdog") {
        let session = cfg.watchdog_session();
        report("watchdog", &session, fleet::stop_watchdog(cfg))?;
    }
    // Then everything else at once: each waits out its own grace period in parallel.
    let agents: Vec<_> = cfg.agents.iter().filter(|a| wanted(&a.name)).collect();
    let services: Vec<_> = cfg.services.iter().filter(|s| wanted(&s.name)).collect();
    let results = std::thread::scope(|scope| {
        let tmux = &tmux;
        let agent_jobs: Vec<_> = agents
            .iter()
            .map(|a| scope.spawn(move || fleet::stop_agent(cfg, tmux, a)))
            .collect();
        let service_jobs: Vec<_> = services
            .iter()
            .map(|s| {
                scope.spawn(move || {
                    fleet::stop_session_gracefully(cfg, tmux, &s.session, cfg.grace_period)
                })
            })
            .collect();
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<bool>>| {
            h.join()
                .unwrap_or_else(|_| Err(crate::Error::Runtime("a stopping thread panicked".into())))
        };
        let a: Vec<Result<bool>> = agent_jobs.into_iter().map(join).collect();
        let s: Vec<Result<bool>> = service_jobs.into_iter().map(join).collect();
        (a, s)
    });
    let (agent_results, service_results) = results;
    let mut first_error = None;
    for (a, stopped) in agents.iter().zip(agent_results) {
        let was = matches!(stopped, Ok(true));
        if let Err(e) = report(&a.name, &a.session, stopped) {
            first_error.get_or_insert(e);
        }
        if was {
            fleet::log_event(
                cfg,
                crate::events::AGENT_STOPPED,
                serde_json::json!({"agent": a.name, "session": a.session, "by": "down"}),
            );
        }
    }
    for (s, stopped) in services.iter().zip(service_results) {
        if let Err(e) = report(&s.name, &s.session, stopped) {
            first_error.get_or_insert(e);
        }
    }
    if clean {
        for a in agents.iter().filter(|a| a.worktree) {
            match workspace::remove_worktree(cfg, &a.name) {
                Ok(true) => println!(
                    "removed worktree of {} (branch {} kept)",
                    a.name,
                    workspace::worktree_branch(&a.name)
                ),
                Ok(false) => {}
                Err(e) => {
                    first_error.get_or_insert(crate::Error::Runtime(format!(
                        "cannot remove the worktree of {}: {e}",
                        a.name
                    )));
                }
            }
        }
    }
    if clean && names.is_empty() {
        // Everything of the project is down: reap what it leaked (see `orch gc`).
        if let Err(e) = super::gc::reap(cfg, false, super::gc::DEFAULT_DAYS) {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}
