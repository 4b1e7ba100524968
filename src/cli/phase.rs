//! `orch phase [show|next|set N]`: inspect or move the phase index (bounds-checked).
//! Moving it does not restart the loops; the watchdog starts them on the new phase.
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
            println!("phase index now {} ({})", idx + 1, p.id);
        }
        PhaseCmd::Set { index } => {
            let p = phase::set_index(cfg, index)?;
            println!("phase index now {index} ({})", p.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
