//! `orch service install|uninstall`: a systemd user unit for the fleet.
//! (filled in below)
use std::path::Path;
use std::process::ExitCode;

use crate::Result;

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    Install,
    Uninstall,
}

pub fn run(_config: &Path, _action: Action) -> Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
