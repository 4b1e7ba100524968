//! `orch demo`: build a throwaway project, run the shipped two-phase example on simulated agents
//! to SEQUENCE-COMPLETE on a private tmux server, narrate each event, then clean everything up.
mod progress;
mod project;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::{Config, LoadOptions};
use crate::tmux::Tmux;
use crate::{Error, Result};

/// Build the demo's project in `root` (existing and empty: a bare remote, the watchdog's and
/// each agent's clone, plans, prompts and the config); returns the config's path. Tests use it
/// to check the shipped example against the layout it describes.
pub fn create_project(root: &Path, socket: &str, exe: &Path) -> Result<PathBuf> {
    project::create(root, socket, exe)
}

/// Options of `orch demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the project folder (config, clones, logs) instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// Build the project in DIR (created if missing, must be empty) instead of a temp folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Give up after this many seconds without SEQUENCE-COMPLETE.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,
}

/// How the loop part of the demo ended.
enum Outcome {
    Complete,
    TimedOut,
    Interrupted,
}

/// Run the demo; exit 0 when the sequence completed and the on-complete task ran, 1 otherwise.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Runtime(format!("cannot find the orch binary for the demo: {e}")))?;
    let (root, created) = prepare_dir(args.dir.as_deref())?;
    let stop = watch_signals()?;
    let mut cleanup = Cleanup {
        root: root.clone(),
        created,
        socket: unique_socket(),
        exe,
        config: None,
        events: None,
        done: false,
    };
    println!(
        "orch demo: a two-phase builder/adversary loop on simulated agents (no network, no API key)"
    );
    println!("  project  {}", root.display());
    println!("  tmux     private server `tmux -L {}`", cleanup.socket);
    let outcome = drive(&mut cleanup, &args, &stop);
    // A Ctrl-C also kills the git or orch child that was running: that error is the interrupt.
    let outcome = if stop.load(Ordering::SeqCst) {
        Ok(Outcome::Interrupted)
    } else {
        outcome
    };
    let (code, keep) = match outcome {
        Ok(Outcome::Complete) => (ExitCode::SUCCESS, args.keep),
        Ok(Outcome::Interrupted) => {
            println!("\ninterrupted");
            (ExitCode::FAILURE, args.keep)
        }
        Ok(Outcome::TimedOut) => (ExitCode::FAILURE, true),
        Err(e) => {
            println!("demo failed: {e}");
            (ExitCode::FAILURE, true)
        }
    };
    cleanup.finish(keep);
    Ok(code)
}

/// Build the project, `up`, follow the events to completion, print where everything is.
fn drive(cleanup: &mut Cleanup, args: &DemoArgs, stop: &AtomicBool) -> Result<Outcome> {
    let root = cleanup.root.clone();
    let config = project::create(&root, &cleanup.socket, &cleanup.exe)?;
    cleanup.config = Some(config.clone());
    let cfg = crate::config::load(&config, LoadOptions::STRICT)?.config;
    cleanup.events = Some(cfg.events_file());
    println!("  config   {}", config.display());
    if stop.load(Ordering::SeqCst) {
        return Ok(Outcome::Interrupted);
    }
    let start = Utc::now();
    let began = Instant::now();
    let ran = cleanup.orch(&["up"], "orch up")?;
    print_indented(&ran.stdout);
    if !ran.ok {
        return Err(Error::Runtime(format!(
            "`orch up` failed: {}",
            ran.stderr.trim()
        )));
    }
    println!("\n{}", progress::HEADER);
    let outcome = follow(&cfg, args, stop, start)?;
    match outcome {
        Outcome::Complete => {
            println!(
                "\nSEQUENCE-COMPLETE after {:.1} s, and the on-complete task ran.",
                began.elapsed().as_secs_f64()
            );
            print_places(&cfg, &root);
        }
        Outcome::TimedOut => {
            println!(
                "\nno SEQUENCE-COMPLETE within {} s; the last events:",
                args.timeout
            );
            for (_, e) in last_events(&cfg, 8) {
                println!("  {e}");
            }
            print_places(&cfg, &root);
        }
        Outcome::Interrupted => {}
    }
    Ok(outcome)
}

/// Print one line per new event until the sequence completed and the task's done file exists.
fn follow(
    cfg: &Config,
    args: &DemoArgs,
    stop: &AtomicBool,
    start: chrono::DateTime<Utc>,
) -> Result<Outcome> {
    let events = cfg.events_file();
    let watch = crate::phase::handoff_repo(cfg);
    let subjects = |shas: &[String]| commit_subjects(&watch, shas);
    let task_done = cfg
        .loop_
        .as_ref()
        .and_then(|l| l.on_complete.as_ref())
        .map(|oc| cfg.log_dir.join(format!("task-{}.done", oc.run)));
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let (mut seen, mut complete) = (0, false);
    loop {
        for (n, event) in crate::events::read_since(&events, seen) {
            seen = n + 1;
            println!("{}", progress::line(&event, start, &subjects));
            complete |= event.get("event").and_then(|v| v.as_str())
                == Some(crate::events::SEQUENCE_COMPLETE);
        }
        if complete && task_done.as_ref().is_none_or(|f| f.exists()) {
            if let Some(file) = &task_done {
                let ms = (Utc::now() - start).num_milliseconds().max(0);
                println!(
                    "  {}  {:<29} ({} written)",
                    progress::clock(ms),
                    "on-complete task done",
                    file.display()
                );
            }
            print_notifications(cfg, start);
            return Ok(Outcome::Complete);
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(Outcome::Interrupted);
        }
        if Instant::now() >= deadline {
            return Ok(Outcome::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The example's `[[notify]]` command sink appends each summary to this file.
const NOTIFICATIONS: &str = "notifications.txt";

/// Wait (5 s at most) for the notification the sequence's end sends through the example's
/// command sink, and print what it received.
fn print_notifications(cfg: &Config, start: chrono::DateTime<Utc>) {
    let file = cfg.log_dir.join(NOTIFICATIONS);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let ms = (Utc::now() - start).num_milliseconds().max(0);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            for line in text.lines() {
                println!("  {}  notify: {line}", progress::clock(ms));
            }
        }
        Err(_) => println!(
            "  {}  notify: nothing arrived in {}",
            progress::clock(ms),
            file.display()
        ),
    }
}

/// The subjects of `shas` in `repo` (one bounded git call); empty when git cannot tell.
fn commit_subjects(repo: &Path, shas: &[String]) -> Vec<String> {
    let hex: Vec<&str> = shas
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    if hex.is_empty() {
        return Vec::new();
    }
    let mut args = vec!["show", "-s", "--format=%s"];
    args.extend(hex);
    project::git(repo, &args)
        .map(|out| out.lines().map(String::from).collect())
        .unwrap_or_default()
}

fn last_events(cfg: &Config, n: usize) -> Vec<(usize, serde_json::Value)> {
    let all = crate::events::read_since(&cfg.events_file(), 0);
    let from = all.len().saturating_sub(n);
    all.into_iter().skip(from).collect()
}

fn print_places(cfg: &Config, root: &Path) {
    println!(
        "  project  {}  (agents.toml, prompts/, plans/)",
        root.display()
    );
    println!(
        "  clones   {}/{{watch,builder,adversary}}  (the watchdog's and each agent's)",
        root.display()
    );
    println!(
        "  logs     {}  (one <session>.log per agent, state/, SEQUENCE-COMPLETE)",
        cfg.log_dir.display()
    );
    println!("  events   {}", cfg.events_file().display());
    let remote = root.join("remote.git");
    println!("  remote   {}; its history:", remote.display());
    match project::git(&remote, &["log", "--oneline", "main"]) {
        Ok(log) => print_indented(&log),
        Err(e) => println!("    (cannot read it: {e})"),
    }
}

fn print_indented(text: &str) {
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        println!("    {l}");
    }
}

/// Use `dir` (created if missing; must be empty) or a new temp folder. Returns the folder's
/// canonical path and whether the demo created it.
fn prepare_dir(dir: Option<&Path>) -> Result<(PathBuf, bool)> {
    let (path, created) = match dir {
        None => {
            let tmp = tempfile::Builder::new()
                .prefix("orch-demo-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), "creating the demo folder", e))?;
            (tmp.keep(), true)
        }
        Some(dir) if dir.exists() => {
            let mut entries =
                std::fs::read_dir(dir).map_err(|e| Error::io(dir, "reading the demo folder", e))?;
            if entries.next().is_some() {
                return Err(Error::Usage(format!(
                    "the demo folder {} is not empty (give a new or empty folder)",
                    dir.display()
                )));
            }
            (dir.to_path_buf(), false)
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(dir, "creating the demo folder", e))?;
            (dir.to_path_buf(), true)
        }
    };
    let path = std::fs::canonicalize(&path)
        .map_err(|e| Error::io(&path, "resolving the demo folder", e))?;
    Ok((path, created))
}

/// A tmux socket name no other demo or test uses.
fn unique_socket() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("orch-demo-{}-{nanos}", std::process::id())
}

/// SIGINT, SIGTERM and SIGHUP set the returned flag instead of killing the demo, so it can
/// stop its tmux server first.
fn watch_signals() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<std::result::Result<(), String>>();
    let set = Arc::clone(&flag);
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (mut int, mut term, mut hup) = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(a), Ok(b), Ok(c)) => (a, b, c),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = tx.send(Ok(()));
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                set.store(true, Ordering::SeqCst);
            }
        });
    });
    match rx.recv() {
        Ok(Ok(())) => Ok(flag),
        Ok(Err(e)) => Err(Error::Runtime(format!(
            "cannot install the demo's signal handlers: {e}"
        ))),
        Err(_) => Err(Error::Runtime(
            "the demo's signal thread died before installing its handlers".into(),
        )),
    }
}

/// Everything the demo must undo: its sessions, its tmux server and (unless kept) its folder.
/// `finish` runs once, explicitly or on drop (a panic still kills the tmux server).
struct Cleanup {
    root: PathBuf,
    created: bool,
    socket: String,
    exe: PathBuf,
    config: Option<PathBuf>,
    events: Option<PathBuf>,
    done: bool,
}

impl Cleanup {
    /// `orch --config <config> ARGS` on the demo's private server, bounded.
    fn orch(&self, args: &[&str], what: &str) -> Result<project::Ran> {
        let mut cmd = Command::new(&self.exe);
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(args)
            .current_dir(&self.root)
            .env("ORCH_TMUX_SOCKET", &self.socket)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE");
        project::run_bounded(cmd, Duration::from_secs(60), what)
    }

    /// Give a watchdog that `down` stopped a moment to log its last event (so the folder is
    /// not removed under it); bounded, and only if it was running.
    fn wait_watchdog_stopped(&self, from_line: usize) {
        let Some(events) = &self.events else { return };
        let was_running = crate::events::read_since(events, 0)
            .iter()
            .any(|(_, e)| e["event"] == crate::events::WATCHDOG_STARTED);
        let deadline = Instant::now() + Duration::from_secs(5);
        while was_running && Instant::now() < deadline {
            let stopped = crate::events::read_since(events, from_line)
                .iter()
                .any(|(_, e)| e["event"] == crate::events::WATCHDOG_STOPPED);
            if stopped {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// tmux leaves its socket file behind when the server exits: remove the demo's own (only
    /// a socket, only at the exact path `tmux -L` uses, only once the server is gone).
    fn remove_socket_file(&self, socket: &str) {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let Ok(uid) = std::fs::metadata(&self.root).map(|m| m.uid()) else {
            return;
        };
        let base = std::env::var_os("TMUX_TMPDIR")
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
        let path = base.join(format!("tmux-{uid}")).join(socket);
        let is_socket = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket());
        let alive = Tmux::new(Some(socket.to_string()))
            .fleet()
            .is_ok_and(|f| !f.is_empty());
        if is_socket && !alive {
            let _ = std::fs::remove_file(&path);
        }
    }

    fn finish(&mut self, keep: bool) {
        if self.done {
            return;
        }
        self.done = true;
        println!("\ncleaning up");
        if self.config.is_some() {
            let before = self
                .events
                .as_ref()
                .map_or(0, |f| crate::events::read_since(f, 0).len());
            match self.orch(&["down"], "orch down") {
                Ok(ran) => print_indented(&ran.stdout),
                Err(e) => println!("    orch down: {e}"),
            }
            self.wait_watchdog_stopped(before);
        }
        // The agents' server and the watchdog's own one next to it.
        let watchdog = crate::fleet::watchdog_socket_name(Some(&self.socket), "");
        for socket in [self.socket.clone(), watchdog] {
            match Tmux::new(Some(socket.clone())).kill_server() {
                Ok(killed) => {
                    if killed {
                        println!("    killed the private tmux server {socket}");
                    } else {
                        println!("    no tmux server left on {socket}");
                    }
                    self.remove_socket_file(&socket);
                }
                Err(e) => println!("    could not kill the tmux server {socket}: {e}"),
            }
        }
        if keep {
            println!("    kept {}", self.root.display());
            if let Some(config) = &self.config {
                println!(
                    "    an agent's screen log: orch --config {} logs builder",
                    shell_words::quote(&config.display().to_string())
                );
            }
            return;
        }
        let removed = if self.created {
            std::fs::remove_dir_all(&self.root)
        } else {
            remove_contents(&self.root)
        };
        match removed {
            Ok(()) => println!("    removed {}", self.root.display()),
            Err(e) => println!("    could not remove {}: {e}", self.root.display()),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.finish(true);
    }
}

fn remove_contents(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
