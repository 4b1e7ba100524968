//! `orch validate`: load the config strictly and report every problem, or say it is fine.
//! Unknown keys are errors here, while `up` and `watchdog` only warn about them.
use std::path::Path;
use std::process::ExitCode;

use crate::Result;
use crate::config::{self, LoadOptions};

pub fn run(path: &Path) -> Result<ExitCode> {
    let loaded = config::load(path, LoadOptions::STRICT)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let c = &loaded.config;
    println!(
        "{}: ok ({} agents, {} services, {} backends, {} phases)",
        path.display(),
        c.agents.len(),
        c.services.len(),
        c.backends.len(),
        c.phases().len()
    );
    Ok(ExitCode::SUCCESS)
}
