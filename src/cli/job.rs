//! `orch job ...` and `orch profiles`: one-shot agent tasks from the command line; every read
//! verb takes `--json`.
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::job::{self, Job, NewJob, Status, Store, ops};
use crate::{Error, Result};

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Queue a task; prints its id. The watchdog (or `orch job run`) runs it.
    ///
    /// Example: orch job add -p fast --repo https://github.com/o/r --base main "Fix issue 12"
    /// Example: echo "Fix the flaky test" | orch job add --after 3 -
    Add(AddArgs),
    /// Add a task and run it here in the foreground (no watchdog needed); prints the result.
    /// Exit 0 iff it succeeded.
    ///
    /// Example: orch job run --repo . --no-pr "Add a --version flag"
    Run {
        #[command(flatten)]
        add: AddArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every job: id, status, reason, PR, task.
    ///
    /// Example: orch job list --json | jq '.[] | select(.status == "failed")'
    List {
        #[arg(long)]
        json: bool,
    },
    /// One job in full (job.json).
    ///
    /// Example: orch job show 4
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// The agent's output; -f follows it until the job ends.
    ///
    /// Example: orch job log 4 -f
    Log {
        id: String,
        #[arg(short, long)]
        follow: bool,
        /// The agent's stderr instead of its stdout.
        #[arg(long)]
        stderr: bool,
    },
    /// Wait until the jobs are finished; exit 0 iff all succeeded (1 on timeout or failure).
    ///
    /// Example: orch job wait 4 5 --timeout 30m
    Wait {
        #[arg(required = true)]
        ids: Vec<String>,
        /// Give up after this long (90s, 30m, 2h).
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        #[arg(long)]
        json: bool,
    },
    /// Cancel jobs: the agent's whole process group is stopped, then the job is `cancelled`.
    ///
    /// Example: orch job cancel 4
    Cancel {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Queue a finished job again (a new attempt).
    ///
    /// Example: orch job retry 4
    Retry { id: String },
    /// Redo the push and pull-request step of a succeeded job (after push_failed or pr_failed).
    ///
    /// Example: orch job pr 4
    Pr {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove finished jobs (and kept worktrees) older than D (default [jobs].keep_finished).
    ///
    /// Example: orch job clean --older-than 0s
    Clean {
        #[arg(long, value_parser = parse_duration)]
        older_than: Option<Duration>,
    },
    /// Run a claimed job (what a job's tmux session runs).
    #[command(hide = true)]
    Exec { id: String },
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The profile ([profile.NAME]; default [jobs].default_profile).
    #[arg(short, long)]
    pub profile: Option<String>,
    /// A git URL (cloned once into the cache) or a local path (default: the project dir).
    #[arg(long)]
    pub repo: Option<String>,
    /// The branch to start from (default: the remote's default branch, or the current one).
    #[arg(long)]
    pub base: Option<String>,
    /// Start only after these jobs succeeded (fail with dependency_failed if one does not).
    #[arg(long, num_args = 1..)]
    pub after: Vec<String>,
    /// This job's time limit (90s, 30m, 2h).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Push the branch but open no pull request.
    #[arg(long)]
    pub no_pr: bool,
    /// The task text, or - to read it from stdin.
    pub task: String,
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    crate::config::parse_duration(s).map(Duration::from_secs_f64)
}

impl AddArgs {
    fn into_new(self) -> Result<NewJob> {
        let task = if self.task == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::Usage(format!("cannot read the task from stdin: {e}")))?;
            s
        } else {
            self.task
        };
        Ok(NewJob {
            task,
            profile: self.profile,
            repo: self.repo,
            base: self.base,
            after: self.after,
            timeout: self.timeout.map(|d| d.as_secs_f64()),
            no_pr: self.no_pr,
        })
    }
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn line(j: &Job) -> String {
    let reason = j
        .reason
        .map(|r| format!("/{}", r.as_str()))
        .unwrap_or_default();
    let pr = match (&j.pr.url, j.pr.state) {
        (Some(u), _) => u.clone(),
        (None, s) => serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    };
    let task: String = j
        .task
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(50)
        .collect();
    format!(
        "{:>4}  {:<28} {:<10} {:<24} {}",
        j.id,
        format!("{}{reason}", j.status.as_str()),
        j.profile,
        pr,
        task
    )
}

fn exit_for(jobs: &[Job]) -> ExitCode {
    if jobs.iter().all(|j| j.status == Status::Succeeded) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_result(j: &Job, json: bool) {
    if json {
        print_json(j);
        return;
    }
    println!(
        "job {}: {}{}",
        j.id,
        j.status.as_str(),
        j.reason
            .map(|r| format!(" ({})", r.as_str()))
            .unwrap_or_default()
    );
    if let Some(b) = &j.branch {
        println!("  branch: {b} ({} commit(s))", j.commits.len());
    }
    let pr = serde_json::to_value(j.pr.state).unwrap_or_default();
    println!(
        "  pr: {}{}{}",
        pr.as_str().unwrap_or(""),
        j.pr.url
            .as_deref()
            .map(|u| format!(" {u}"))
            .unwrap_or_default(),
        j.pr.error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default()
    );
    if let Some(s) = &j.summary {
        println!("  summary: {}", s.lines().next().unwrap_or(""));
    }
    if let Some(e) = &j.error {
        println!("  error: {}", e.lines().last().unwrap_or(""));
    }
}

pub fn run(cfg: &Config, cmd: JobCmd) -> Result<ExitCode> {
    let store = Store::new(&cfg.log_dir);
    match cmd {
        JobCmd::Add(a) => {
            let job = ops::add(cfg, a.into_new()?)?;
            println!("{}", job.id);
            if !ops::watchdog_running(cfg) {
                eprintln!(
                    "note: no watchdog is running; `orch up` (or `orch job run`) runs queued jobs"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCmd::Run { add, json } => {
            let job = ops::add(cfg, add.into_new()?)?;
            eprintln!("job {} queued", job.id);
            let done = ops::run_foreground(cfg, &job.id)?;
            print_result(&done, json);
            Ok(exit_for(&[done]))
        }
        JobCmd::List { json } => {
            let jobs = store.list()?;
            if json {
                print_json(&jobs);
            } else if jobs.is_empty() {
                println!("no jobs");
            } else {
                println!(
                    "{:>4}  {:<28} {:<10} {:<24} TASK",
                    "ID", "STATUS", "PROFILE", "PR"
                );
                for j in &jobs {
                    println!("{}", line(j));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCmd::Show { id, json } => {
            let j = store.load(&id)?;
            if json {
                print_json(&j);
            } else {
                print!("{}", toml_like(&j));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCmd::Log { id, follow, stderr } => {
            store.load(&id)?;
            let name = if stderr {
                job::store::STDERR_FILE
            } else {
                job::store::OUTPUT_FILE
            };
            log(&store, &id, name, follow)
        }
        JobCmd::Wait { ids, timeout, json } => {
            let (jobs, done) = ops::wait(cfg, &ids, timeout)?;
            if json {
                print_json(&jobs);
            } else {
                for j in &jobs {
                    print_result(j, false);
                }
            }
            if !done {
                eprintln!("orch: timed out waiting for the jobs");
            }
            Ok(exit_for(&jobs))
        }
        JobCmd::Cancel { ids } => {
            let mut ok = true;
            for id in ids {
                match ops::cancel(cfg, &id) {
                    Ok(j) => println!("job {id}: {}", j.status.as_str()),
                    Err(e) => {
                        eprintln!("orch: {e}");
                        ok = false;
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        JobCmd::Retry { id } => {
            let j = ops::retry(cfg, &id)?;
            println!("job {id}: queued (attempt {})", j.attempt + 1);
            Ok(ExitCode::SUCCESS)
        }
        JobCmd::Pr { id, json } => {
            let j = ops::redo_pr(cfg, &id)?;
            print_result(&j, json);
            Ok(
                if matches!(j.pr.state, job::PrState::Opened | job::PrState::Pushed) {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                },
            )
        }
        JobCmd::Clean { older_than } => {
            let removed = ops::clean(cfg, older_than.unwrap_or(cfg.jobs.keep_finished))?;
            println!(
                "removed {} finished job(s){}",
                removed.len(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!(": {}", removed.join(" "))
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        JobCmd::Exec { id } => {
            job::runner::install_stop_handlers();
            let Some(lock) = store.try_run_lock(&id)? else {
                return Err(Error::Runtime(format!("job {id} is already being run")));
            };
            let j = job::runner::execute(cfg, &id, lock)?;
            print_result(&j, false);
            Ok(exit_for(&[j]))
        }
    }
}

fn toml_like(j: &Job) -> String {
    let v = serde_json::to_value(j).unwrap_or_default();
    let mut out = String::new();
    if let Some(map) = v.as_object() {
        for (k, v) in map {
            if v.is_null() || v.as_array().is_some_and(|a| a.is_empty()) {
                continue;
            }
            let shown = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("{k}: {shown}\n"));
        }
    }
    out
}

/// Print a job's output file; with `follow`, keep printing until the job is finished. Reads
/// in 64 KiB chunks: a huge log is never held in memory.
fn log(store: &Store, id: &str, name: &str, follow: bool) -> Result<ExitCode> {
    let path = store.file(id, name);
    let mut pos = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        if let Ok(mut f) = std::fs::File::open(&path) {
            f.seek(SeekFrom::Start(pos))
                .map_err(|e| Error::io(&path, "reading a job's log", e))?;
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| Error::io(&path, "reading a job's log", e))?;
                if n == 0 {
                    break;
                }
                pos += n as u64;
                if out.write_all(&buf[..n]).is_err() {
                    return Ok(ExitCode::SUCCESS); // stdout closed (| head)
                }
            }
            let _ = out.flush();
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        let j = store.load(id)?;
        if j.status.is_terminal() {
            // One last read after the end, then stop.
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if len <= pos {
                return Ok(ExitCode::SUCCESS);
            }
            continue;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `orch profiles [--check] [--json]`: each profile, its backend and headless form; --check
/// also looks that the backend's command exists.
pub fn profiles(cfg: &Config, check: bool, json: bool) -> Result<ExitCode> {
    let mut rows = Vec::new();
    let mut bad = 0;
    for p in cfg.profiles.values() {
        let b = &cfg.backends[&p.backend];
        let form = job::headless::Form::of(b);
        let bin = shell_words::split(&b.bin)
            .ok()
            .and_then(|v| v.into_iter().next())
            .unwrap_or_default();
        let found = !check || bin_exists(&bin);
        if !found {
            bad += 1;
        }
        rows.push(json!({
            "name": p.name, "backend": p.backend, "form": form.as_str(), "bin": bin,
            "model": p.model, "max_turns": p.max_turns, "permission_mode": p.permission_mode,
            "auto_commit": p.auto_commit, "auto_pr": p.auto_pr, "pr_command": p.pr_command,
            "default": p.name == cfg.jobs.default_profile,
            "found": check.then_some(found),
        }));
    }
    if json {
        print_json(&rows);
    } else if rows.is_empty() {
        println!("no profiles (the default backend is not available)");
    } else {
        for r in &rows {
            println!(
                "{}{:<12} backend {:<12} form {:<8} bin {}{}",
                if r["default"] == true { "* " } else { "  " },
                r["name"].as_str().unwrap_or(""),
                r["backend"].as_str().unwrap_or(""),
                r["form"].as_str().unwrap_or(""),
                r["bin"].as_str().unwrap_or(""),
                if r["found"] == false {
                    "  (NOT FOUND)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bin_exists(bin: &str) -> bool {
    if bin.contains('/') {
        return std::path::Path::new(bin).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}
