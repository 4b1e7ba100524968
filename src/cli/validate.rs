//! `orch validate`: load the config strictly (unknown keys are errors here, warnings elsewhere),
//! then check what it names on disk; report every problem, or say it is fine.
use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, LoadOptions};
use crate::{Error, Result, phase};

pub fn run(path: &Path) -> Result<ExitCode> {
    let loaded = config::load(path, LoadOptions::STRICT)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let c = &loaded.config;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read config {}: {e}", path.display())))?;
    let on_disk = config::check_paths(c, &text, phase::current_index(c));
    for w in &on_disk.warnings {
        eprintln!("warning: {w}");
    }
    if !on_disk.errors.is_empty() {
        return Err(Error::Config(on_disk.errors.join("\n")));
    }
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
