//! The command line: clap definitions and the dispatch of each verb to its module.
//! One file per verb; this file only routes.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::Result;

mod init;
mod validate;

pub use init::scaffold;

/// Run and supervise fleets of AI coding agents in tmux, from one TOML config.
#[derive(Debug, Parser)]
#[command(name = "orch", version, about, long_about = None)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = "agents.toml")]
    pub config: PathBuf,
    /// More log output (-v, -vv); ORCH_LOG sets a tracing filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Check the config: exit 0, or print every problem with file:line:col and exit 2.
    ///
    /// Example: orch --config agents.toml validate
    Validate,
    /// Run the built-in detector regression checks (no config needed).
    ///
    /// Example: orch selftest
    Selftest,
    /// Scaffold agents.toml and prompts/ in DIR (default: here); refuses to overwrite.
    ///
    /// Example: orch init my-project
    Init {
        /// The project folder to scaffold.
        dir: Option<PathBuf>,
    },
    /// The simulated coding agent used by the demo and the tests.
    #[command(hide = true)]
    Sim(crate::sim::SimArgs),
}

/// Run one parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    init_tracing(cli.verbose);
    match cli.verb {
        Verb::Validate => validate::run(&cli.config),
        Verb::Init { dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            for f in scaffold(&dir)? {
                println!("wrote {}", f.display());
            }
            println!(
                "next: edit {}, then `orch validate` and `orch up`",
                dir.join("agents.toml").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Verb::Selftest => Ok(ExitCode::SUCCESS),
        Verb::Sim(args) => crate::sim::run(args),
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "orch=info",
        1 => "orch=debug",
        _ => "orch=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
