//! `orch completions SHELL` (clap_complete) and `orch man` (clap_mangen): generated from the
//! same clap definitions as the parser, so they never drift from the verbs.
use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::{Error, Result};

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "orch", &mut out);
    write_out(&out)
}

pub fn man() -> Result<ExitCode> {
    let mut out = Vec::new();
    clap_mangen::Man::new(super::Cli::command())
        .render(&mut out)
        .map_err(|e| Error::Runtime(format!("cannot render the man page: {e}")))?;
    write_out(&out)
}

fn write_out(bytes: &[u8]) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (e.g. `| head`) is not an error.
    let _ = stdout.write_all(bytes).and_then(|_| stdout.flush());
    Ok(ExitCode::SUCCESS)
}
