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
    // Then everything else at once: each waits out its own grace period in parallel, and each
    // line is printed as soon as that one is stopped.
    let agents: Vec<_> = cfg.agents.iter().filter(|a| wanted(&a.name)).collect();
    let services: Vec<_> = cfg.services.iter().filter(|s| wanted(&s.name)).collect();
    let running = tmux.fleet().unwrap_or_default();
    let live = |session: &str| running.get(session).is_some();
    let waiting: Vec<(String, std::time::Duration)> = agents
        .iter()
        .filter(|a| live(&a.session))
        .map(|a| (a.name.clone(), a.grace_period))
        .chain(
            services
                .iter()
                .filter(|s| live(&s.session))
                .map(|s| (s.name.clone(), cfg.grace_period)),
        )
        .collect();
    if !waiting.is_empty() {
        let longest = waiting.iter().map(|w| w.1).max().unwrap_or_default();
        let names: Vec<&str> = waiting.iter().map(|w| w.0.as_str()).collect();
        println!(
            "stopping {} (in parallel: each gets its quit keys, then up to {} s before a kill)",
            names.join(", "),
            longest.as_secs()
        );
    }
    let pending = std::sync::Mutex::new(
        waiting
            .iter()
            .map(|w| w.0.clone())
            .collect::<std::collections::BTreeSet<String>>(),
    );
    let started = std::time::Instant::now();
    let finish = |name: &str, session: &str, stopped: &Result<bool>| {
        if let Ok(mut p) = pending.lock() {
            p.remove(name);
        }
        match stopped {
            Ok(true) => println!(
                "stopped {name} ({session}) after {:.1} s",
                started.elapsed().as_secs_f64()
            ),
            Ok(false) if !names.is_empty() => println!("{name} was not running ({session})"),
            _ => {}
        }
    };
    let results = std::thread::scope(|scope| {
        let tmux = &tmux;
        let finish = &finish;
        let agent_jobs: Vec<_> = agents
            .iter()
            .map(|a| {
                scope.spawn(move || {
                    let r = fleet::stop_agent(cfg, tmux, a);
                    finish(&a.name, &a.session, &r);
                    r
                })
            })
            .collect();
        let service_jobs: Vec<_> = services
            .iter()
            .map(|s| {
                scope.spawn(move || {
                    let r = fleet::stop_session_gracefully(cfg, tmux, &s.session, cfg.grace_period);
                    finish(&s.name, &s.session, &r);
                    r
                })
            })
            .collect();
        // Say what is still awaited every 5 s.
        let mut next_note = std::time::Duration::from_secs(5);
        while !agent_jobs.iter().all(|h| h.is_finished())
            || !service_jobs.iter().all(|h| h.is_finished())
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if started.elapsed() >= next_note {
                next_note += std::time::Duration::from_secs(5);
                let left: Vec<String> = pending
                    .lock()
                    .map(|p| p.iter().cloned().collect())
                    .unwrap_or_default();
                if !left.is_empty() {
                    println!("still waiting for {} to exit", left.join(", "));
                }
            }
        }
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
        match stopped {
            Ok(true) => fleet::log_event(
                cfg,
                crate::events::AGENT_STOPPED,
                serde_json::json!({"agent": a.name, "session": a.session, "by": "down"}),
            ),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    for stopped in service_results {
        if let Err(e) = stopped {
            first_error.get_or_insert(e);
        }
    }
    if names.is_empty() {
        // Everything is down: SLURM allocations are cancelled, master connections closed, containers removed.
        for e in fleet::slurm::cancel_all(cfg) {
            first_error.get_or_insert(crate::Error::Runtime(e));
        }
        tmux.close_hosts();
        for e in fleet::containers::remove_all(cfg) {
            first_error.get_or_insert(crate::Error::Runtime(e.to_string()));
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
