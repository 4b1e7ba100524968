//! The command line: clap definitions and the dispatch of each verb to its module.
//! One file per verb; this file only routes.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{Error, Result};

mod classify;
mod down;
mod gc;
mod init;
mod logs;
mod phase;
mod service;
mod status;
mod up;
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
    /// Start enabled agents, services and the watchdog (or just NAME...); running sessions are left alone.
    ///
    /// Example: orch up            (everything)
    /// Example: orch up builder    (one agent)
    Up {
        /// Agents, services or "watchdog".
        names: Vec<String>,
    },
    /// Stop agents, services and the watchdog (or just NAME...): C-c, then kill after the grace period.
    ///
    /// Example: orch down adversary
    /// Example: orch down --clean   (also remove the agents' git worktrees)
    Down {
        /// Agents, services or "watchdog".
        names: Vec<String>,
        /// Also remove the stopped agents' worktrees (their orch/<agent> branches stay).
        #[arg(long)]
        clean: bool,
    },
    /// One table (or JSON object) of every agent, service, the watchdog and the phase.
    ///
    /// Example: orch status --json | jq '.agents[] | select(.running | not) | .name'
    Status {
        /// Print one JSON object (schema_version 1; fields are added, never renamed).
        #[arg(long)]
        json: bool,
    },
    /// Print the end of an agent's session log; -f follows it.
    ///
    /// Example: orch logs builder -f -n 100
    Logs {
        /// An agent, service or "watchdog".
        name: String,
        /// Keep printing what is appended.
        #[arg(short, long)]
        follow: bool,
        /// How many lines to print first.
        #[arg(short = 'n', long, default_value_t = 40)]
        lines: usize,
    },
    /// Inspect or move the phase index.
    ///
    /// Example: orch phase set 1
    Phase {
        #[command(subcommand)]
        cmd: Option<phase::PhaseCmd>,
    },
    /// The supervisor loop, in the foreground (`up` runs it in session <prefix>watchdog).
    ///
    /// Example: orch watchdog
    Watchdog,
    /// Classify a captured agent screen (FILE, or stdin for - / none): prints its state.
    ///
    /// Backends: the config's [backend.NAME] tables (when the config file exists), the
    /// built-in presets claude-code, codex, gemini-cli, opencode, and generic (the default).
    /// With --json: {"backend", "state", "rule", "reset" (RFC 3339 or null)}.
    ///
    /// Example: tmux capture-pane -p -t =proj-builder: | orch classify --backend claude-code
    Classify {
        /// A backend of the config, or a built-in preset.
        #[arg(long, default_value = "generic")]
        backend: String,
        /// Print one JSON object: the state, the rule that matched, the reset time.
        #[arg(long)]
        json: bool,
        /// The screen text (tmux capture-pane -p output); - or none reads stdin.
        file: Option<PathBuf>,
    },
    /// Record a Claude Code hook (JSON on stdin) for $ORCH_AGENT under $ORCH_LOG_DIR/hooks/.
    /// Always exits 0, fast, without tmux: wired by `hooks = true` on an agent.
    ///
    /// Example: echo '{"tool_name":"Bash"}' | ORCH_AGENT=builder ORCH_LOG_DIR=.orch orch hook PreToolUse
    Hook {
        /// The hook event: SessionStart, UserPromptSubmit, PreToolUse, Stop, Notification, ...
        event: String,
    },
    /// Run the shipped two-phase example on simulated agents in a throwaway project, to
    /// SEQUENCE-COMPLETE, on a private tmux server; then clean up (no network, no API key).
    ///
    /// Example: orch demo
    /// Example: orch demo --keep --dir /tmp/orch-demo
    Demo(crate::demo::DemoArgs),
    /// The simulated coding agent used by the demo and the tests.
    #[command(hide = true)]
    Sim(crate::sim::SimArgs),
    /// The session log filter tmux's pipe-pane runs: stdin redacted to stdout.
    #[command(hide = true)]
    Redact {
        /// A JSON file of `[NAME, value]` secret pairs, deleted once read.
        #[arg(long)]
        secrets_file: Option<PathBuf>,
    },
    /// Remove what this project leaked: sessions on its tmux servers that no agent or service
    /// of the config owns, worktrees and `orch/<agent>` branches of agents no longer in the
    /// config, kickoff and scrollback files older than --older-than days.
    ///
    /// Example: orch gc --dry-run
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Kickoff and scrollback files older than this many days are removed.
        #[arg(long, default_value_t = gc::DEFAULT_DAYS)]
        older_than: u64,
    },
    /// Run the fleet as a systemd user service (`orch up`, then the watchdog kept alive across
    /// logins and reboots); where systemd is absent, print the unit and where to put it.
    ///
    /// Example: orch service install --user
    Service {
        #[command(subcommand)]
        action: service::Action,
    },
}

/// Run one parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    // The watchdog narrates what it does; other verbs print their own lines and log only problems.
    init_tracing(cli.verbose, matches!(cli.verb, Verb::Watchdog));
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
        Verb::Selftest => Ok(selftest()),
        Verb::Classify {
            backend,
            json,
            file,
        } => classify::run(&cli.config, &backend, json, file.as_ref()),
        Verb::Sim(args) => crate::sim::run(args),
        Verb::Redact { secrets_file } => crate::redact::run_filter(secrets_file.as_deref())
            .map(|_| ExitCode::SUCCESS)
            .map_err(|e| Error::Runtime(format!("orch redact: {e}"))),
        Verb::Gc {
            dry_run,
            older_than,
        } => gc::run(&load(&cli.config)?, dry_run, older_than),
        Verb::Service { action } => service::run(&cli.config, action),
        Verb::Hook { event } => Ok(crate::hooks::run(&event)),
        Verb::Demo(args) => crate::demo::run(args),
        Verb::Watchdog => crate::watchdog::run(&cli.config),
        Verb::Up { names } => up::run(&load(&cli.config)?, &names),
        Verb::Down { names, clean } => down::run(&load(&cli.config)?, &names, clean),
        Verb::Status { json } => status::run(&load(&cli.config)?, json),
        Verb::Logs {
            name,
            follow,
            lines,
        } => logs::run(&load(&cli.config)?, &name, follow, lines),
        Verb::Phase { cmd } => phase::run(&load(&cli.config)?, cmd),
    }
}

/// Load the config for a verb that acts: unknown keys are warnings, not errors.
fn load(path: &std::path::Path) -> Result<crate::config::Config> {
    let loaded = crate::config::load(path, crate::config::LoadOptions::LENIENT)?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(loaded.config)
}

/// Print every detector regression check; exit 1 if any fails.
fn selftest() -> ExitCode {
    let checks = crate::detect::selftest_checks();
    let failed = checks.iter().filter(|(_, ok)| !ok).count();
    for (name, ok) in &checks {
        println!("  {}: {name}", if *ok { "PASS" } else { "FAIL" });
    }
    println!("{} checks, {failed} failed", checks.len());
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn init_tracing(verbose: u8, narrate: bool) {
    let default = match (verbose, narrate) {
        (0, false) => "orch=warn",
        (0, true) => "orch=info",
        (1, _) => "orch=debug",
        _ => "orch=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
