//! A job as stored in `job.json` (fields add-only) and its life as pure functions: the
//! transitions (queued → running → succeeded | failed | cancelled) and the scheduling decision.
use serde::{Deserialize, Serialize};

/// The `job.json` schema; fields are added, never renamed.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
}

/// Why a job ended as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The agent exited 0 and its output reported success.
    Ok,
    /// The agent exited non-zero without a more precise reason.
    Exit,
    /// The agent reported an error (an error object, `is_error: true`, a failed turn).
    AgentError,
    MaxTurns,
    /// A usage limit ended the run.
    Limit,
    Timeout,
    DependencyFailed,
    /// Its runner vanished (session gone, process dead) while it ran.
    Interrupted,
    /// Asked to stop (orch job cancel, the API, MCP).
    Cancelled,
    /// The repository could not be prepared, or the agent could not be started.
    Setup,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Exit => "exit",
            Reason::AgentError => "agent_error",
            Reason::MaxTurns => "max_turns",
            Reason::Limit => "limit",
            Reason::Timeout => "timeout",
            Reason::DependencyFailed => "dependency_failed",
            Reason::Interrupted => "interrupted",
            Reason::Cancelled => "cancelled",
            Reason::Setup => "setup",
        }
    }
}

/// The pull-request outcome, separate from the job's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PrState {
    #[default]
    None,
    NoChanges,
    Pushed,
    Opened,
    PushFailed,
    PrFailed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Pr {
    pub state: PrState,
    pub url: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Times {
    pub created: String,
    pub started: Option<String>,
    pub finished: Option<String>,
}

/// One job, exactly as `job.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Job {
    pub schema_version: u32,
    pub id: String,
    pub task: String,
    pub profile: String,
    /// A URL or a path, as given; `None`: the project dir.
    pub repo: Option<String>,
    /// The base asked for (`None`: the remote's default branch / the current branch).
    pub base: Option<String>,
    /// The commit the job's branch really started from.
    pub base_commit: Option<String>,
    pub branch: Option<String>,
    pub worktree: Option<String>,
    /// The repository holding the branch (the bare cache, or the local repo).
    pub git_dir: Option<String>,
    /// Jobs that must succeed first.
    pub after: Vec<String>,
    /// This job's own time limit in seconds.
    pub timeout_secs: Option<f64>,
    pub no_pr: bool,
    pub status: Status,
    pub reason: Option<Reason>,
    /// What a running job is doing: repo, agent, commit, push, pr.
    pub stage: Option<String>,
    pub attempt: u32,
    pub times: Times,
    pub exit_code: Option<i32>,
    pub session_id: Option<String>,
    pub cost_usd: Option<f64>,
    pub turns: Option<u64>,
    pub commits: Vec<String>,
    pub pr: Pr,
    /// The agent's final message (shortened), or the error that ended the job.
    pub summary: Option<String>,
    pub error: Option<String>,
    /// The agent's process (group leader) while it runs.
    pub pid: Option<u32>,
    /// The tmux session running the job, when the watchdog started it.
    pub session: Option<String>,
}

/// What the agent run came to (from the headless parser and the exit status).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub success: bool,
    pub reason: Option<Reason>,
    pub exit_code: Option<i32>,
    pub session_id: Option<String>,
    pub cost_usd: Option<f64>,
    pub turns: Option<u64>,
    pub summary: Option<String>,
    pub error: Option<String>,
}

/// Something that happens to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A scheduler claimed it.
    Start { session: Option<String> },
    /// The runner moved on to another stage.
    Stage(String),
    /// The agent's process started.
    Spawned { pid: u32 },
    /// The working tree is ready.
    Prepared {
        branch: Option<String>,
        base: Option<String>,
        base_commit: Option<String>,
        worktree: Option<String>,
        git_dir: Option<String>,
    },
    /// The branch's commits since the base.
    Commits(Vec<String>),
    /// The run (and its PR step) ended with this outcome.
    Finish(Outcome),
    /// The PR step came to this (a running job, or a succeeded one redoing it).
    Pr(Pr),
    /// Cancel asked for a job that is not running (queued), or whose group was reaped.
    Cancelled,
    /// Timed out; its group was reaped.
    TimedOut,
    /// Its runner is gone.
    Interrupted,
    /// A job it waits for failed or was cancelled.
    DependencyFailed { dep: String },
    /// Run it again.
    Retry,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The one transition function: the job after `event` at time `now`, or why not. A terminal
/// job never changes except by `Retry` (and a succeeded one's `Pr`), so a late failure can never
/// overwrite `cancelled`.
pub fn apply(job: &Job, event: Event, now: &str) -> Result<Job, Refused> {
    let mut j = job.clone();
    let refuse = |what: &str| {
        Err(Refused(format!(
            "job {} is {}: cannot {what}",
            job.id,
            job.status.as_str()
        )))
    };
    match event {
        Event::Start { session } => {
            if job.status != Status::Queued {
                return refuse("start it");
            }
            j.status = Status::Running;
            j.stage = Some("starting".into());
            j.times.started = Some(now.into());
            j.session = session;
        }
        Event::Stage(stage) => {
            if job.status != Status::Running {
                return refuse("change its stage");
            }
            j.stage = Some(stage);
        }
        Event::Spawned { pid } => {
            if job.status != Status::Running {
                return refuse("record its process");
            }
            j.pid = Some(pid);
        }
        Event::Prepared {
            branch,
            base,
            base_commit,
            worktree,
            git_dir,
        } => {
            if job.status != Status::Running {
                return refuse("record its working tree");
            }
            j.branch = branch;
            j.base = base.or(j.base);
            j.base_commit = base_commit;
            j.worktree = worktree;
            j.git_dir = git_dir;
        }
        Event::Commits(c) => {
            if !matches!(job.status, Status::Running | Status::Succeeded) {
                return refuse("record its commits");
            }
            j.commits = c;
        }
        Event::Finish(o) => {
            if job.status != Status::Running {
                return refuse("finish it");
            }
            j.status = if o.success {
                Status::Succeeded
            } else {
                Status::Failed
            };
            j.reason = Some(
                o.reason
                    .unwrap_or(if o.success { Reason::Ok } else { Reason::Exit }),
            );
            j.exit_code = o.exit_code;
            j.session_id = o.session_id.or(j.session_id);
            j.cost_usd = o.cost_usd;
            j.turns = o.turns;
            j.summary = o.summary;
            j.error = o.error;
            end(&mut j, now);
        }
        Event::Pr(pr) => {
            if !matches!(job.status, Status::Running | Status::Succeeded) {
                return refuse("record a pull request");
            }
            j.pr = pr;
        }
        Event::Cancelled => {
            if job.status.is_terminal() {
                return refuse("cancel it");
            }
            j.status = Status::Cancelled;
            j.reason = Some(Reason::Cancelled);
            end(&mut j, now);
        }
        Event::TimedOut => {
            if job.status != Status::Running {
                return refuse("time it out");
            }
            j.status = Status::Failed;
            j.reason = Some(Reason::Timeout);
            end(&mut j, now);
        }
        Event::Interrupted => {
            if job.status != Status::Running {
                return refuse("mark it interrupted");
            }
            j.status = Status::Failed;
            j.reason = Some(Reason::Interrupted);
            j.error = Some("its runner vanished while it ran (session gone)".into());
            end(&mut j, now);
        }
        Event::DependencyFailed { dep } => {
            if job.status != Status::Queued {
                return refuse("fail it for a dependency");
            }
            j.status = Status::Failed;
            j.reason = Some(Reason::DependencyFailed);
            j.error = Some(format!("job {dep} did not succeed"));
            end(&mut j, now);
        }
        Event::Retry => {
            if !job.status.is_terminal() {
                return refuse("retry it");
            }
            let keep = Job {
                schema_version: j.schema_version,
                id: j.id.clone(),
                task: j.task.clone(),
                profile: j.profile.clone(),
                repo: j.repo.clone(),
                base: j.base.clone(),
                after: j.after.clone(),
                timeout_secs: j.timeout_secs,
                no_pr: j.no_pr,
                attempt: j.attempt + 1,
                times: Times {
                    created: j.times.created.clone(),
                    started: None,
                    finished: None,
                },
                ..Job::default()
            };
            j = keep;
        }
    }
    Ok(j)
}

fn end(j: &mut Job, now: &str) {
    j.stage = None;
    j.pid = None;
    j.times.finished = Some(now.into());
}

/// What the scheduler should do with one queued job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Start(String),
    DependencyFailed { id: String, dep: String },
}

/// Which queued jobs to start now (oldest first, never more than `max_parallel` running) and
/// which can never start because a job they wait for failed, was cancelled or does not exist.
pub fn plan(jobs: &[Job], max_parallel: usize) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut running = jobs.iter().filter(|j| j.status == Status::Running).count();
    let status_of = |id: &str| jobs.iter().find(|j| j.id == id).map(|j| j.status);
    let mut queued: Vec<&Job> = jobs.iter().filter(|j| j.status == Status::Queued).collect();
    queued.sort_by_key(|j| id_key(&j.id));
    for job in queued {
        let mut ready = true;
        let mut broken = None;
        for dep in &job.after {
            match status_of(dep) {
                Some(Status::Succeeded) => {}
                Some(Status::Failed | Status::Cancelled) | None => {
                    broken = Some(dep.clone());
                    break;
                }
                Some(_) => ready = false,
            }
        }
        if let Some(dep) = broken {
            out.push(Decision::DependencyFailed {
                id: job.id.clone(),
                dep,
            });
        } else if ready && running < max_parallel {
            running += 1;
            out.push(Decision::Start(job.id.clone()));
        }
    }
    out
}

/// Sort key for ids: numeric ids in number order.
pub fn id_key(id: &str) -> (u64, String) {
    (id.parse().unwrap_or(u64::MAX), id.to_string())
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
