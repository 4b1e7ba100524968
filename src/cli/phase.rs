//! `orch phase [show|next|set N]`: inspect or move the phase index (bounds-checked).
//! Moving it while the loops run: the watchdog moves them to the new phase on its next tick
//! and logs `phase_advanced` with `by: "human"`.
use std::process::ExitCode;

use crate::config::Config;
use crate::{Error, Result, phase};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum PhaseCmd {
    /// Show the current phase and the sequence.
    Show,
    /// Move to the next phase (an error at the last one).
    Next,
    /// Move to phase N (0-based).
    Set { index: usize },
}

pub fn run(cfg: &Config, cmd: Option<PhaseCmd>) -> Result<ExitCode> {
    let phases = cfg.phases();
    if phases.is_empty() {
        return Err(Error::Usage(format!(
            "{} has no [loop].phases",
            cfg.path.display()
        )));
    }
    let idx = phase::current_index(cfg);
    match cmd.unwrap_or(PhaseCmd::Show) {
        PhaseCmd::Show => {
            let p = &phases[idx];
            let seq: Vec<&str> = phases.iter().map(|p| p.id.as_str()).collect();
            let done = if phase::is_done(cfg, p) {
                "DONE"
            } else {
                "in progress"
            };
            println!(
                "phase {}  [{}/{}]  ({done})  seq: {}",
                p.id,
                idx + 1,
                phases.len(),
                seq.join(" ")
            );
        }
        PhaseCmd::Next => {
            if idx + 1 >= phases.len() {
                return Err(Error::Usage(format!(
                    "already at the last phase ({}, {}/{}): there is no next phase",
                    phases[idx].id,
                    idx + 1,
                    phases.len()
                )));
            }
            let p = phase::set_index(cfg, idx + 1)?;
            let _ = std::fs::remove_file(phase::watchdog_advance_file(cfg));
            println!("phase index now {} ({})", idx + 1, p.id);
            say_what_follows(cfg);
        }
        PhaseCmd::Set { index } => {
            let p = phase::set_index(cfg, index)?;
            let _ = std::fs::remove_file(phase::watchdog_advance_file(cfg));
            println!("phase index now {index} ({})", p.id);
            say_what_follows(cfg);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What happens to running loops after a move: the watchdog restarts them on the new phase.
fn say_what_follows(cfg: &Config) {
    let Ok(fleet) = crate::fleet::snapshot(cfg) else {
        return;
    };
    let loops_run = cfg.loop_agents().any(|a| fleet.contains(&a.session));
    match (loops_run, fleet.contains(&cfg.watchdog_session())) {
        (true, true) => println!(
            "the watchdog moves the running loops to it on its next tick (event phase_advanced, by human)"
        ),
        (true, false) => println!(
            "the loops still run on the old phase and no watchdog runs: `orch up watchdog` moves them"
        ),
        _ => {}
    }
}
