//! What the CLI, the API and MCP do to jobs: add, run in the foreground, wait, cancel, retry,
//! redo the PR step, clean; each a short sequence of store transitions.
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use super::model::{Event, Job, Status};
use super::runner::{self, event};
use super::store::{self, Store};
use super::{pr, repo, schedule};
use crate::config::Config;
use crate::events;
use crate::{Error, Result};

/// What `orch job add` (and POST /v1/jobs, run_task) asks for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct NewJob {
    pub task: String,
    pub profile: Option<String>,
    pub repo: Option<String>,
    pub base: Option<String>,
    pub after: Vec<String>,
    /// Seconds.
    pub timeout: Option<f64>,
    pub no_pr: bool,
}

/// Check and queue a new job; emits `job_queued`.
pub fn add(cfg: &Config, req: NewJob) -> Result<Job> {
    if req.task.trim().is_empty() {
        return Err(Error::Usage("the task is empty".into()));
    }
    let profile = match req.profile {
        Some(p) => p,
        None if !cfg.jobs.default_profile.is_empty() => cfg.jobs.default_profile.clone(),
        None => {
            return Err(Error::Usage(
                "no profile given and [jobs].default_profile is not set: use -p NAME".into(),
            ));
        }
    };
    if !cfg.profiles.contains_key(&profile) {
        let known: Vec<&str> = cfg.profiles.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "no profile {profile:?} in {} (known: {}; add a [profile.NAME] or a [jobs] table)",
            cfg.path.display(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    }
    let store = Store::new(&cfg.log_dir);
    for dep in &req.after {
        store.load(dep)?;
    }
    if let Some(t) = req.timeout
        && !(t.is_finite() && t > 0.0)
    {
        return Err(Error::Usage(
            "the timeout must be more than 0 seconds".into(),
        ));
    }
    let job = store.create(Job {
        task: req.task,
        profile,
        repo: req.repo.filter(|r| !r.is_empty()),
        base: req.base.filter(|b| !b.is_empty()),
        after: req.after,
        timeout_secs: req.timeout,
        no_pr: req.no_pr,
        ..Job::default()
    })?;
    event(
        cfg,
        events::JOB_QUEUED,
        json!({"id": job.id, "profile": job.profile, "repo": job.repo, "after": job.after}),
    );
    Ok(job)
}

/// Whether a watchdog (which schedules jobs) is running for this config.
pub fn watchdog_running(cfg: &Config) -> bool {
    let path = cfg.state_dir.join(crate::state::LOCK_FILE);
    let Ok(f) = std::fs::OpenOptions::new().read(true).open(&path) else {
        return false;
    };
    matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Run job `id` here in the foreground once the plan lets it start (or wait for whoever runs
/// it); returns the finished job. SIGINT cancels it.
pub fn run_foreground(cfg: &Config, id: &str) -> Result<Job> {
    let store = Store::new(&cfg.log_dir);
    runner::install_stop_handlers();
    loop {
        let job = store.load(id)?;
        if job.status.is_terminal() {
            return Ok(job);
        }
        if job.status == Status::Queued
            && let Some(lock) = store.try_run_lock(id)?
        {
            if schedule::claim_for_foreground(cfg, id)? {
                return runner::execute(cfg, id, lock);
            }
            drop(lock);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until every job in `ids` is finished, or `timeout` passes; the jobs as they are then.
pub fn wait(cfg: &Config, ids: &[String], timeout: Option<Duration>) -> Result<(Vec<Job>, bool)> {
    let store = Store::new(&cfg.log_dir);
    let start = Instant::now();
    loop {
        let jobs = ids
            .iter()
            .map(|i| store.load(i))
            .collect::<Result<Vec<_>>>()?;
        let done = jobs.iter().all(|j| j.status.is_terminal());
        if done || timeout.is_some_and(|t| start.elapsed() >= t) {
            return Ok((jobs, done));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Cancel a job: a queued one at once; a running one by asking its runner, which stops the
/// agent's whole process group and writes `cancelled` after reaping it (waited for, up to the
/// grace period and a margin). A job nobody runs any more is cancelled directly.
pub fn cancel(cfg: &Config, id: &str) -> Result<Job> {
    let store = Store::new(&cfg.log_dir);
    let job = store.load(id)?;
    match job.status {
        s if s.is_terminal() => Ok(job),
        Status::Queued => match store.apply(id, Event::Cancelled)? {
            Ok(j) => {
                event(
                    cfg,
                    events::JOB_FINISHED,
                    json!({"id": id, "status": "cancelled", "reason": "cancelled"}),
                );
                Ok(j)
            }
            // Claimed meanwhile: cancel it as a running job.
            Err(_) => cancel(cfg, id),
        },
        _ => {
            let marker = store.file(id, store::CANCEL_FILE);
            crate::state::write_atomic(&marker, b"cancel\n")
                .map_err(|e| Error::io(&marker, "asking a job to cancel", e))?;
            let deadline = Instant::now() + cfg.jobs.grace_period + Duration::from_secs(10);
            while Instant::now() < deadline {
                let j = store.load(id)?;
                if j.status.is_terminal() {
                    return Ok(j);
                }
                if !store.is_being_run(id) {
                    // Nobody runs it: stop what is left and cancel it here.
                    if let Some(pid) = j.pid {
                        runner::stop_group(pid, cfg.jobs.grace_period);
                    }
                    if store.apply(id, Event::Cancelled)?.is_ok() {
                        event(
                            cfg,
                            events::JOB_FINISHED,
                            json!({"id": id, "status": "cancelled", "reason": "cancelled"}),
                        );
                    }
                    let _ = std::fs::remove_file(&marker);
                    return store.load(id);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(Error::Runtime(format!(
                "job {id} was asked to cancel but is still running; see orch job show {id}"
            )))
        }
    }
}

/// Queue a finished job again (a new attempt); its kept worktree is removed first.
pub fn retry(cfg: &Config, id: &str) -> Result<Job> {
    let store = Store::new(&cfg.log_dir);
    let job = store.load(id)?;
    if !job.status.is_terminal() {
        return Err(Error::Usage(format!(
            "job {id} is {}: only a finished job can be retried",
            job.status.as_str()
        )));
    }
    remove_worktree(&store, &job);
    let next = store
        .apply(id, Event::Retry)?
        .map_err(|r| Error::Usage(r.to_string()))?;
    event(
        cfg,
        events::JOB_RETRIED,
        json!({"id": id, "attempt": next.attempt}),
    );
    event(
        cfg,
        events::JOB_QUEUED,
        json!({"id": id, "profile": next.profile, "repo": next.repo, "after": next.after}),
    );
    Ok(next)
}

fn remove_worktree(store: &Store, job: &Job) {
    let wt = runner::worktree_of(store, &job.id);
    if wt.exists() {
        match &job.git_dir {
            Some(g) => {
                let _ = repo::remove_worktree(std::path::Path::new(g), &wt);
            }
            None => {
                let _ = std::fs::remove_dir_all(&wt);
            }
        }
    }
}

/// Redo the push and PR step of a succeeded job (say after `pr_failed`).
pub fn redo_pr(cfg: &Config, id: &str) -> Result<Job> {
    let store = Store::new(&cfg.log_dir);
    let job = store.load(id)?;
    if job.status != Status::Succeeded {
        return Err(Error::Usage(format!(
            "job {id} is {}: only a succeeded job has a PR step",
            job.status.as_str()
        )));
    }
    let (Some(branch), Some(git_dir)) = (&job.branch, &job.git_dir) else {
        return Err(Error::Usage(format!("job {id} has no branch to push")));
    };
    if job.commits.is_empty() {
        return Err(Error::Usage(format!(
            "job {id} made no commits: there is nothing to push"
        )));
    }
    let profile = cfg
        .profiles
        .get(&job.profile)
        .ok_or_else(|| Error::Config(format!("profile {:?} is not in the config", job.profile)))?;
    let base = job.base.clone().unwrap_or_else(|| "main".into());
    let result = pr::push_and_open(
        cfg,
        profile,
        &job,
        std::path::Path::new(git_dir),
        branch,
        &base,
        &store,
    );
    let next = store
        .apply(id, Event::Pr(result))?
        .map_err(|r| Error::Runtime(r.to_string()))?;
    event(
        cfg,
        events::JOB_PR,
        json!({"id": id, "state": next.pr.state, "url": next.pr.url}),
    );
    Ok(next)
}

/// Remove finished jobs older than `older_than` (their folders and kept worktrees).
pub fn clean(cfg: &Config, older_than: Duration) -> Result<Vec<String>> {
    let store = Store::new(&cfg.log_dir);
    let mut removed = Vec::new();
    for job in store.list()? {
        if !job.status.is_terminal() {
            continue;
        }
        let finished = job
            .times
            .finished
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)));
        let old = finished.is_none_or(|t| t.elapsed().unwrap_or_default() >= older_than);
        if !old {
            continue;
        }
        let _lock = store.lock()?;
        remove_worktree(&store, &job);
        let dir = store.dir(&job.id);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, "removing a finished job", e))?;
        removed.push(job.id);
    }
    Ok(removed)
}
