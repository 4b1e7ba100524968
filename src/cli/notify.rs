//! `orch notify test [--sink N]`: send a test message through each `[[notify]]` sink (or one)
//! and print the result per sink; exit 1 if any failed.
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::{Error, Result, notify};

#[derive(Debug, Subcommand)]
pub enum NotifyCmd {
    /// Send a test message through every sink, or sink N (0-based, in file order).
    ///
    /// Example: orch notify test --sink 0
    Test {
        #[arg(long)]
        sink: Option<usize>,
    },
}

pub fn run(cfg: &Config, cmd: NotifyCmd) -> Result<ExitCode> {
    let NotifyCmd::Test { sink } = cmd;
    if cfg.notify.is_empty() {
        return Err(Error::Usage(format!(
            "{} has no [[notify]] sink to test",
            cfg.path.display()
        )));
    }
    if let Some(n) = sink.filter(|n| *n >= cfg.notify.len()) {
        return Err(Error::Usage(format!(
            "--sink {n}: {} has {} [[notify]] sink(s), numbered from 0",
            cfg.path.display(),
            cfg.notify.len()
        )));
    }
    let results = notify::send_test(cfg, sink);
    let mut failed = 0;
    for r in &results {
        match &r.outcome {
            Ok(()) => println!("sink {} ({}, {}): sent", r.index, r.sink, r.format),
            Err(why) => {
                failed += 1;
                println!("sink {} ({}, {}): FAILED: {why}", r.index, r.sink, r.format);
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
