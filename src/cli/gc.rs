//! `orch gc [--dry-run] [--older-than DAYS]`: remove what this project leaked (see
//! fleet/gc.rs); `--dry-run` lists it. `down --clean` runs the same pass after stopping.
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::{Result, fleet::gc};

/// Kickoff and scrollback files older than this many days go (the `--older-than` default).
pub const DEFAULT_DAYS: u64 = 14;

pub fn run(cfg: &Config, dry_run: bool, older_than_days: u64) -> Result<ExitCode> {
    reap(cfg, dry_run, older_than_days)?;
    Ok(ExitCode::SUCCESS)
}

/// Find and (unless `dry_run`) remove every leak, one line each; the first failure is
/// returned once everything else was tried.
pub fn reap(cfg: &Config, dry_run: bool, older_than_days: u64) -> Result<()> {
    let limit = Duration::from_secs(older_than_days.saturating_mul(86_400));
    let leaks = gc::find(cfg, limit)?;
    if leaks.is_empty() && dry_run {
        println!("nothing to remove");
    }
    let mut first_error = None;
    for leak in &leaks {
        if dry_run {
            println!("would remove {leak}");
            continue;
        }
        match gc::reap(cfg, leak) {
            Ok(()) => println!("removed {leak}"),
            Err(e) => {
                eprintln!("orch: cannot remove {leak}: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
