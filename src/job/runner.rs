//! Running one claimed job in this process: its worktree, the agent headless in its own process
//! group (output streamed to disk), timeout and cancel (the whole group, reaped), the PR step.
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::headless::{self, Form};
use super::model::{Event, Job, Outcome, Reason, Status};
use super::store::{self, RunLock, Store};
use super::{pr, repo};
use crate::config::Config;
use crate::events;
use crate::{Error, Result};

/// Set by SIGINT/SIGTERM/SIGHUP in a runner: stop the agent as a cancel would.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Make SIGINT, SIGTERM and SIGHUP cancel the job this process runs (instead of killing the
/// runner and orphaning the agent), and become the reaper of the agent's orphans.
pub fn install_stop_handlers() {
    // SAFETY: the handler only stores to an atomic; prctl takes plain integers.
    unsafe {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::signal(sig, on_stop as *const () as libc::sighandler_t);
        }
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

fn apply(store: &Store, id: &str, ev: Event) -> Result<Option<Job>> {
    Ok(store.apply(id, ev)?.ok())
}

pub fn event(cfg: &Config, name: &str, fields: serde_json::Value) {
    crate::fleet::log_event(cfg, name, fields);
}

/// Run claimed job `id` to its end in this process, holding its run lock `lock`.
pub fn execute(cfg: &Config, id: &str, lock: RunLock) -> Result<Job> {
    let store = Store::new(&cfg.log_dir);
    let job = store.load(id)?;
    if job.status != Status::Running {
        return Ok(job);
    }
    let result = run_claimed(cfg, &store, &job);
    let job = match result {
        Ok(j) => j,
        Err(e) => {
            let o = Outcome {
                reason: Some(Reason::Setup),
                error: Some(e),
                ..Outcome::default()
            };
            apply(&store, id, Event::Finish(o))?;
            store.load(id)?
        }
    };
    write_result(&store, &job);
    event(
        cfg,
        events::JOB_FINISHED,
        json!({"id": job.id, "status": job.status.as_str(),
               "reason": job.reason.map(|r| r.as_str()), "pr": job.pr.state,
               "url": job.pr.url}),
    );
    let _ = std::fs::remove_file(store.file(id, store::CANCEL_FILE));
    drop(lock);
    Ok(job)
}

/// The normalised result, the same shape for every CLI.
fn write_result(store: &Store, job: &Job) {
    let v = json!({
        "schema_version": 1, "id": job.id, "status": job.status.as_str(),
        "reason": job.reason.map(|r| r.as_str()), "exit_code": job.exit_code,
        "session_id": job.session_id, "cost_usd": job.cost_usd, "turns": job.turns,
        "summary": job.summary, "error": job.error, "branch": job.branch,
        "base": job.base, "base_commit": job.base_commit, "commits": job.commits, "pr": job.pr,
    });
    let path = store.file(&job.id, store::RESULT_FILE);
    let _ = crate::state::save_json(&path, &v);
}

fn run_claimed(cfg: &Config, store: &Store, job: &Job) -> std::result::Result<Job, String> {
    let id = job.id.as_str();
    let profile = cfg
        .profiles
        .get(&job.profile)
        .ok_or_else(|| format!("profile {:?} is not in the config", job.profile))?;
    let backend = cfg
        .backends
        .get(&profile.backend)
        .ok_or_else(|| format!("backend {:?} is not in the config", profile.backend))?;
    let s = |stage: &str| apply(store, id, Event::Stage(stage.into())).map_err(|e| e.to_string());
    s("repo")?;
    let wt = store.dir(id).join("worktree");
    if wt.exists() {
        return Err(format!(
            "{} is left from an earlier attempt: run `orch job clean` first",
            wt.display()
        ));
    }
    let prepared = repo::prepare(
        &cfg.jobs.repo_cache,
        &cfg.project_dir,
        job.repo.as_deref(),
        job.base.as_deref(),
        &repo::branch_name(id, &job.task, job.attempt),
        &wt,
    )?;
    let show = |p: &Path| p.display().to_string();
    apply(
        store,
        id,
        Event::Prepared {
            branch: prepared.branch.clone(),
            base: prepared.base.clone(),
            base_commit: prepared.base_commit.clone(),
            worktree: prepared.git_dir.as_ref().map(|_| show(&prepared.workdir)),
            git_dir: prepared.git_dir.as_deref().map(show),
        },
    )
    .map_err(|e| e.to_string())?;
    s("agent")?;
    let timeout = job
        .timeout_secs
        .map(Duration::from_secs_f64)
        .or(profile.timeout)
        .unwrap_or(cfg.jobs.timeout);
    let mut prompt = job.task.clone();
    if let Some(extra) = &profile.append_prompt {
        prompt.push_str("\n\n");
        prompt.push_str(extra);
    }
    let inv = headless::invocation(backend, profile, &prompt);
    let prompt_path = store.file(id, store::PROMPT_FILE);
    crate::state::write_atomic(&prompt_path, prompt.as_bytes()).map_err(|e| e.to_string())?;
    let form = Form::of(backend);
    let out_path = store.file(id, store::OUTPUT_FILE);
    let err_path = store.file(id, store::STDERR_FILE);
    let spawned = spawn(
        &inv,
        &prompt_path,
        &out_path,
        &err_path,
        &prepared.workdir,
        profile,
        id,
    );
    let (pid, mut child) = match spawned {
        Ok(c) => (c.id(), c),
        Err(e) => return Err(format!("cannot start {:?}: {e}", inv.argv.first())),
    };
    apply(store, id, Event::Spawned { pid }).map_err(|e| e.to_string())?;
    let ended = wait_group(&mut child, pid, timeout, cfg.jobs.grace_period, &|| {
        STOP.load(Ordering::SeqCst) || store.file(id, store::CANCEL_FILE).exists()
    });
    let last = match ended {
        Ended::Cancelled => apply(store, id, Event::Cancelled),
        Ended::TimedOut => apply(store, id, Event::TimedOut),
        Ended::Exited(code) => {
            let mut o = headless::parse(form, &out_path, &err_path, code);
            if o.success && prepared.branch.is_some() {
                s("commit")?;
                let current = store.load(id).map_err(|e| e.to_string())?;
                let (commits, pr) = pr::finish(cfg, profile, &current, &prepared, store);
                apply(store, id, Event::Commits(commits)).map_err(|e| e.to_string())?;
                apply(store, id, Event::Pr(pr)).map_err(|e| e.to_string())?;
                o.reason = Some(Reason::Ok);
            }
            apply(store, id, Event::Finish(o))
        }
    }
    .map_err(|e| e.to_string())?;
    let job = match last {
        Some(j) => j,
        None => store.load(id).map_err(|e| e.to_string())?,
    };
    if job.status == Status::Succeeded
        && let Some(g) = &prepared.git_dir
        && let Err(e) = repo::remove_worktree(g, &prepared.workdir)
    {
        tracing::warn!("job {id}: {e}");
    }
    Ok(job)
}

fn spawn(
    inv: &headless::Invocation,
    prompt: &Path,
    out: &Path,
    err: &Path,
    cwd: &Path,
    profile: &crate::config::Profile,
    id: &str,
) -> std::io::Result<std::process::Child> {
    let Some((bin, args)) = inv.argv.split_first() else {
        return Err(std::io::Error::other("the backend has no bin"));
    };
    let stdin = if inv.prompt_on_stdin {
        Stdio::from(File::open(prompt)?)
    } else {
        Stdio::null()
    };
    Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .envs(&profile.env)
        .env("ORCH_JOB_ID", id)
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .stdin(stdin)
        .stdout(File::create(out)?)
        .stderr(File::create(err)?)
        .process_group(0)
        .spawn()
}

/// How the agent's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Its exit code (`None`: killed by a signal); the rest of its group was stopped too.
    Exited(Option<i32>),
    TimedOut,
    Cancelled,
}

/// Wait for the agent (leader of process group `pgid`) to exit, or for the deadline or a
/// cancel; then stop whatever is left of the group (SIGTERM, `grace`, SIGKILL) and reap it.
pub fn wait_group(
    child: &mut std::process::Child,
    pgid: u32,
    timeout: Duration,
    grace: Duration,
    cancelled: &dyn Fn() -> bool,
) -> Ended {
    let start = Instant::now();
    let ended = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ended::Exited(status.code()),
            Ok(None) => {}
            Err(_) => break Ended::Exited(None),
        }
        if cancelled() {
            break Ended::Cancelled;
        }
        if start.elapsed() >= timeout {
            break Ended::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let grace = if matches!(ended, Ended::Exited(_)) {
        Duration::from_millis(200)
    } else {
        grace
    };
    stop_group(pgid, grace);
    let _ = child.wait();
    reap_group(pgid);
    ended
}

/// Whether any process of group `pgid` is still there.
pub fn group_alive(pgid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks.
    unsafe { libc::kill(-(pgid as i32), 0) == 0 }
}

/// SIGTERM the group, wait up to `grace` for it to go, then SIGKILL it.
pub fn stop_group(pgid: u32, grace: Duration) {
    let pg = -(pgid as i32);
    // SAFETY: signals to a process group we created.
    unsafe { libc::kill(pg, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap_group(pgid);
        if !group_alive(pgid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pg, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_alive(pgid) && Instant::now() < deadline {
        reap_group(pgid);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reap the group's exited members that are our children (the runner is their subreaper).
fn reap_group(pgid: u32) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own process group's children, non-blocking.
        let r = unsafe { libc::waitpid(-(pgid as i32), &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
}

/// The job folder's worktree path.
pub fn worktree_of(store: &Store, id: &str) -> PathBuf {
    store.dir(id).join("worktree")
}

/// Whether `e` is a usage error (for callers that print differently).
pub fn is_usage(e: &Error) -> bool {
    matches!(e, Error::Usage(_))
}
