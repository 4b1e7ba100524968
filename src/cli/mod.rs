//! The command line: clap definitions and the dispatch of each verb to its module.
//! One file per verb; this file only routes.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{Error, Result};

mod attach;
mod classify;
mod completions;
mod down;
mod events;
mod gc;
mod hosts;
mod hosts_slurm;
mod init;
mod job;
mod logs;
mod notify;
mod phase;
mod report;
mod restart;
mod send;
mod service;
mod status;
mod top;
mod up;
mod up_slurm;
mod validate;

pub use init::scaffold;
pub use send::send_message;

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
    /// Check every [host.NAME]: ssh reachable, tmux and orch_bin there (and their versions),
    /// the round trip; one sentence per problem saying what to fix. Exit 1 if any.
    ///
    /// Example: orch hosts --json
    Hosts {
        /// Print one JSON object `{"hosts": [...]}`.
        #[arg(long)]
        json: bool,
    },
    /// Print an agent's output as text (its pane's history and screen, or its session log
    /// rendered); -f follows the log; --raw prints the log's bytes as written.
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
        /// The session log's bytes (escape codes and all), not the rendered text.
        #[arg(long)]
        raw: bool,
    },
    /// Inspect or move the phase index.
    ///
    /// Example: orch phase set 1
    Phase {
        #[command(subcommand)]
        cmd: Option<phase::PhaseCmd>,
    },
    /// The morning report: per phase, per agent and loop-health figures from the event log
    /// (text, or one JSON object), and optionally a self-contained HTML timeline.
    ///
    /// Example: orch report --since 24h
    /// Example: orch report --json | jq .health
    /// Example: orch report --html report.html
    Report {
        /// Only the last DURATION (30m, 24h, 3d) or since an RFC 3339 time.
        #[arg(long, value_name = "DURATION|TIME")]
        since: Option<String>,
        /// Print one JSON object (schema_version 1; fields are added, never renamed).
        #[arg(long)]
        json: bool,
        /// Also write the timeline and figures as one self-contained HTML file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Notification sinks ([[notify]]): `test` sends a test message through each (or --sink N).
    ///
    /// Example: orch notify test
    Notify {
        #[command(subcommand)]
        cmd: notify::NotifyCmd,
    },
    /// Type a message into an agent's pane and confirm it was submitted (as the watchdog
    /// pings); `-` reads it from stdin. Exit 0 confirmed, 1 not (not running, held,
    /// unconfirmed), 2 unknown agent or empty text. Logged as a `ping` with reason `human`.
    ///
    /// Example: orch send builder "run the tests again, then push"
    /// Example: git diff | orch send adversary -
    Send {
        /// The agent.
        name: String,
        /// The message, or - to read it from stdin.
        text: String,
    },
    /// Stop NAME... gracefully (as `down`) and start them again with the current config,
    /// phase and kickoff (as `up`).
    ///
    /// Example: orch restart builder adversary
    Restart {
        /// Agents, services or "watchdog".
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The event log (events.jsonl) as readable lines, or raw JSON lines; -f follows it.
    ///
    /// Example: orch events -f --agent builder
    /// Example: orch events --since 1h --event ping --json | jq .reason
    Events(events::EventsArgs),
    /// Bring an agent's session to this terminal (switch-client when already inside a client
    /// of the same tmux server, else attach; detach with C-b d).
    ///
    /// Example: orch attach builder
    Attach {
        /// An agent, service or "watchdog".
        name: String,
    },
    /// Print a shell completion script.
    ///
    /// Example: orch completions bash > ~/.local/share/bash-completion/completions/orch
    /// Example: orch completions zsh > "${fpath[1]}/_orch"
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The operator's console: the fleet, its events and the selected agent's screen, live;
    /// act with keys (Enter attach, s send, r restart, d stop, u start, n next phase, l log,
    /// / filter, ? help, q quit). NO_COLOR turns colours off.
    ///
    /// Example: orch top
    /// Example: orch top --interval 2
    Top(top::TopArgs),
    /// Print the man page (roff) to stdout.
    ///
    /// Example: orch man > ~/.local/share/man/man1/orch.1 && man orch
    Man,
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
    /// Claude Code's statusline command: records the statusline JSON's context window and rate
    /// limits for $ORCH_AGENT under $ORCH_LOG_DIR/state/context/, then prints the wrapped
    /// statusline's output unchanged (or `ctx N%`). Wired with the hooks (`hooks = true`).
    ///
    /// Example: echo '{"context_window":{"used_percentage":42}}' | ORCH_AGENT=builder ORCH_LOG_DIR=.orch orch statusline --wrap 'my-line.sh'
    Statusline {
        /// The user's own statusline command (a shell line) whose output is printed.
        #[arg(long, value_name = "CMD")]
        wrap: Option<String>,
    },
    /// Run the shipped two-phase example on simulated agents in a throwaway project, to
    /// SEQUENCE-COMPLETE, on a private tmux server; then clean up (no network, no API key).
    ///
    /// Example: orch demo
    /// Example: orch demo --keep --dir /tmp/orch-demo
    Demo(crate::demo::DemoArgs),
    /// One-shot agent tasks on a repository, ending in a pushed branch and a pull request.
    ///
    /// Example: orch job add --repo https://github.com/o/r "Fix issue 12"
    /// Example: orch job run --repo . --no-pr "Add a --version flag"
    Job {
        #[command(subcommand)]
        cmd: job::JobCmd,
    },
    /// The job profiles ([profile.NAME]): backend, headless form, model; --check looks that
    /// each backend's command exists (exit 1 if one does not).
    ///
    /// Example: orch profiles --check
    Profiles {
        #[arg(long)]
        check: bool,
        #[arg(long)]
        json: bool,
    },
    /// An MCP server on stdio (tools run_task, get_job, list_jobs, cancel_job, list_profiles,
    /// fleet_status), for an orchestrator agent to drive orch.
    ///
    /// Example: claude mcp add orch -- orch --config /path/agents.toml mcp
    Mcp,
    /// The simulated coding agent used by the demo and the tests.
    #[command(hide = true)]
    Sim(crate::sim::SimArgs),
    /// The simulated agent run headless, printing a real CLI's output shape (tests).
    #[command(hide = true)]
    SimHeadless(crate::sim::headless::HeadlessArgs),
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
            let done = scaffold(&dir)?;
            for f in &done.files {
                println!("wrote {}", f.display());
            }
            if let Some(g) = &done.gitignore {
                println!("added the log dir to {}", g.display());
            }
            println!("{}", init::next_steps(&dir, &done.name));
            Ok(ExitCode::SUCCESS)
        }
        Verb::Selftest => Ok(selftest()),
        Verb::Classify {
            backend,
            json,
            file,
        } => classify::run(&cli.config, &backend, json, file.as_ref()),
        Verb::Sim(args) => crate::sim::run(args),
        Verb::SimHeadless(args) => crate::sim::headless::run(args),
        Verb::Redact { secrets_file } => crate::redact::run_filter(secrets_file.as_deref())
            .map(|_| ExitCode::SUCCESS)
            .map_err(|e| Error::Runtime(format!("orch redact: {e}"))),
        Verb::Gc {
            dry_run,
            older_than,
        } => gc::run(&load(&cli.config)?, dry_run, older_than),
        Verb::Service { action } => service::run(&cli.config, action),
        Verb::Hook { event } => Ok(crate::hooks::run(&event)),
        Verb::Statusline { wrap } => Ok(crate::statusline::run(wrap.as_deref())),
        Verb::Demo(args) => crate::demo::run(args),
        Verb::Watchdog => crate::watchdog::run(&cli.config),
        Verb::Up { names } => up::run(&load(&cli.config)?, &names),
        Verb::Down { names, clean } => down::run(&load(&cli.config)?, &names, clean),
        Verb::Status { json } => status::run(&load(&cli.config)?, json),
        Verb::Hosts { json } => hosts::run(&load(&cli.config)?, json),
        Verb::Logs {
            name,
            follow,
            lines,
            raw,
        } => logs::run(&load(&cli.config)?, &name, follow, lines, raw),
        Verb::Phase { cmd } => phase::run(&load(&cli.config)?, cmd),
        Verb::Report { since, json, html } => {
            report::run(&load(&cli.config)?, since.as_deref(), json, html.as_deref())
        }
        Verb::Notify { cmd } => notify::run(&load(&cli.config)?, cmd),
        Verb::Send { name, text } => send::run(&load(&cli.config)?, &name, &text),
        Verb::Restart { names } => restart::run(&load(&cli.config)?, &names),
        Verb::Events(args) => events::run(&load(&cli.config)?, &args),
        Verb::Attach { name } => attach::run(&load(&cli.config)?, &name),
        Verb::Completions { shell } => completions::completions(shell),
        Verb::Man => completions::man(),
        Verb::Top(args) => top::run(&load(&cli.config)?, &args),
        Verb::Mcp => crate::mcp::run(&cli.config),
        Verb::Job { cmd } => job::run(&load(&cli.config)?, cmd),
        Verb::Profiles { check, json } => job::profiles(&load(&cli.config)?, check, json),
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
