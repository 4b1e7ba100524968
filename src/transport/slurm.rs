//! SLURM allocations as places: `sbatch` of a batch script whose child is the host's tmux
//! server (it lives exactly as long as the job), `srun --jobid=J --overlap` for every call.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::wrap::WrapPlace;
use super::{Output, Place, PlaceError};

/// Seconds before the walltime at which SLURM signals the batch script (`--signal=B:USR1@N`).
pub const WARN_SECS: u32 = 300;
/// The file the batch script touches (in its working dir) when the walltime warning comes.
const WARNED_MARK: &str = "orch-walltime";

/// How to get and use one host's allocation.
#[derive(Debug, Clone)]
pub struct SlurmSpec {
    /// The host's name in the config.
    pub name: String,
    /// sbatch options from the config.
    pub options: Vec<String>,
    /// The job's name (`<session_prefix><host>`).
    pub job_name: String,
    /// The tmux server the batch script runs (`tmux -L`).
    pub socket: String,
    /// Where orch keeps the job id and its last known state (this machine, temp+rename).
    pub job_file: PathBuf,
    /// The batch script's working dir where sbatch runs (with `via`: relative to the home
    /// there): its output and walltime mark go there.
    pub work_dir: String,
    /// The ssh host where sbatch, squeue, srun and scancel run (`None`: this machine).
    pub via: Option<Arc<dyn Place>>,
}

/// What orch keeps of a host's job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    /// SLURM's state as last seen (`PENDING`, `RUNNING`, ..., `ENDED` when squeue no longer
    /// knows it).
    pub state: String,
    pub submitted_at: String,
    /// The walltime warning of this job was acted on.
    #[serde(default)]
    pub warned: bool,
}

/// A job's state, as orch acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Queued or being set up (`starting`).
    Pending(String),
    Running,
    /// Over (walltime, preemption, scancel, or unknown to squeue): the sessions are gone.
    Ended(String),
}

impl JobState {
    /// SLURM's name for it (`ENDED` for a job squeue no longer lists).
    pub fn label(&self) -> &str {
        match self {
            JobState::Pending(s) | JobState::Ended(s) => s,
            JobState::Running => "RUNNING",
        }
    }

    fn of(state: &str) -> JobState {
        match state {
            "RUNNING" => JobState::Running,
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "RESIZING" | "SUSPENDED" => {
                JobState::Pending(state.to_string())
            }
            other => JobState::Ended(other.to_string()),
        }
    }
}

/// True for the state names of a job that is not running yet.
pub fn is_pending(state: &str) -> bool {
    matches!(JobState::of(state), JobState::Pending(_))
}

impl SlurmSpec {
    /// The recorded job, if any (a corrupt file is no job).
    pub fn load(&self) -> Option<JobRecord> {
        crate::state::load_json(&self.job_file).ok().flatten()
    }

    pub fn save(&self, record: &JobRecord) -> Result<(), crate::state::StateError> {
        if let Some(dir) = self.job_file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        crate::state::save_json(&self.job_file, record)
    }

    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.job_file);
    }

    /// Where sbatch, squeue and scancel run: here, or on `via`.
    fn control(&self) -> WrapPlace {
        WrapPlace::new(&self.name, || Ok(Vec::new())).via(self.via.clone())
    }

    /// The batch script (sbatch reads it from stdin): the tmux server as its child, waited
    /// for; the walltime warning signal leaves a mark in the working dir.
    pub fn batch_script(&self) -> String {
        let socket = shell_words::quote(&self.socket);
        format!(
            "#!/bin/sh\n\
             # orch: the tmux server of host {name} lives exactly as long as this job.\n\
             trap 'touch \"{WARNED_MARK}-$SLURM_JOB_ID\"' USR1\n\
             tmux -u -L {socket} -D &\n\
             p=$!\n\
             while kill -0 \"$p\" 2>/dev/null; do wait \"$p\"; done\n",
            name = self.name.replace('\n', " "),
        )
    }

    /// Submits the allocation; the job id, or one sentence saying why not.
    pub fn submit(&self, timeout: Duration) -> Result<String, String> {
        let mut argv: Vec<String> = [
            "sh",
            "-c",
            r#"mkdir -p -- "$1" && cd -- "$1" && shift && exec sbatch "$@""#,
            "orch-sbatch",
        ]
        .map(String::from)
        .into();
        argv.push(self.work_dir.clone());
        argv.extend([
            "--parsable".to_string(),
            format!("--job-name={}", self.job_name),
            "--output=orch-slurm-%j.out".to_string(),
            format!("--signal=B:USR1@{WARN_SECS}"),
        ]);
        argv.extend(self.options.iter().cloned());
        let script = self.batch_script();
        let out = self
            .control()
            .probe(&argv, Some(script.as_bytes()), timeout)
            .map_err(|e| format!("cannot submit the allocation of host {}: {e}", self.name))?;
        let id = out
            .stdout
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .and_then(|l| l.split(';').next())
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()));
        match (out.success(), id) {
            (true, Some(id)) => Ok(id.to_string()),
            _ => Err(format!(
                "sbatch refused the allocation of host {}: {}",
                self.name,
                last_line(&out, "no job id")
            )),
        }
    }

    /// The job's state (and whether its walltime warning came), in one call.
    pub fn query(&self, job: &str, timeout: Duration) -> Result<(JobState, bool), PlaceError> {
        let argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            format!(
                r#"cd -- "$1" 2>/dev/null; squeue -h -j "$2" -o %T; s=$?; [ -e "{WARNED_MARK}-$2" ] && echo {WARNED_MARK}; exit $s"#
            ),
            "orch-squeue".into(),
            self.work_dir.clone(),
            job.to_string(),
        ];
        let out = self.control().probe(&argv, None, timeout)?;
        let warned = out.stdout.lines().any(|l| l.trim() == WARNED_MARK);
        if out.success() {
            let state = out
                .stdout
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && *l != WARNED_MARK);
            return Ok((
                state.map_or(JobState::Ended("ENDED".into()), JobState::of),
                warned,
            ));
        }
        if out.stderr.contains("Invalid job id") {
            return Ok((JobState::Ended("ENDED".into()), warned));
        }
        Err(PlaceError::Unreachable {
            host: self.name.clone(),
            detail: format!("squeue failed: {}", last_line(&out, "no message")),
        })
    }

    /// Cancels the job (a job already over is not an error).
    pub fn cancel(&self, job: &str, timeout: Duration) -> Result<(), String> {
        let argv: Vec<String> = vec!["scancel".into(), job.to_string()];
        let out = self
            .control()
            .probe(&argv, None, timeout)
            .map_err(|e| format!("cannot cancel job {job} of host {}: {e}", self.name))?;
        if out.success() || out.stderr.contains("Invalid job id") {
            return Ok(());
        }
        Err(format!(
            "scancel {job} (host {}) failed: {}",
            self.name,
            last_line(&out, "no message")
        ))
    }

    /// The place the host's tmux calls run through: `srun --jobid=J --overlap` on the
    /// recorded job (read at each call, so a new allocation is picked up at once).
    pub fn place(&self) -> WrapPlace {
        let me = self.clone();
        let holder = self.clone();
        WrapPlace::new(&self.name, move || {
            let Some(job) = me.load() else {
                return Err("it has no allocation (run `orch up`)".to_string());
            };
            if is_pending(&job.state) {
                return Err(format!("its allocation {} is {}", job.job_id, job.state));
            }
            Ok(srun_prefix(&job.job_id))
        })
        .via(self.via.clone())
        .failure(srun_failure)
        .holder(move || holder.load().map(|j| (j.job_id, j.state)))
    }
}

/// `srun --jobid=J --overlap` on one task of the allocation (a plain srun would wait for the
/// batch script's resources).
pub fn srun_prefix(job: &str) -> Vec<String> {
    vec![
        "srun".into(),
        format!("--jobid={job}"),
        "--overlap".into(),
        "--nodes=1".into(),
        "--ntasks=1".into(),
        "--quiet".into(),
        "--".into(),
    ]
}

/// srun saying the allocation is over or not yet there, or tmux finding no server: the place
/// is not there (not the command failing).
fn srun_failure(out: &Output) -> Option<String> {
    if out.success() {
        return None;
    }
    let line = out.stderr.lines().find(|l| {
        l.contains("srun: error: Unable to confirm allocation")
            || (l.contains("srun: error: Slurm job") && l.contains("has expired"))
            || l.contains("Invalid job id")
    });
    if let Some(line) = line {
        return Some(line.trim().to_string());
    }
    if out.stderr.contains("no server running on") || out.stderr.contains("error connecting to") {
        return Some("the tmux server of its allocation is not running".into());
    }
    None
}

fn last_line(out: &Output, default: &str) -> String {
    out.stderr
        .lines()
        .chain(out.stdout.lines())
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(default)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stderr: &str) -> Output {
        Output {
            code: Some(code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn srun_errors_about_the_allocation_are_place_errors_and_others_are_answers() {
        let pending = "srun: error: Unable to confirm allocation for job 5: Job is pending execution\nsrun: Check SLURM_JOB_ID";
        assert!(srun_failure(&out(1, pending)).unwrap().contains("pending"));
        let expired = "srun: error: Slurm job 7 has expired\n";
        assert!(srun_failure(&out(1, expired)).is_some());
        let no_server = "error connecting to /tmp/tmux-0/s (No such file or directory)";
        assert!(srun_failure(&out(1, no_server)).is_some());
        assert!(srun_failure(&out(1, "can't find session: =x")).is_none());
        assert!(srun_failure(&out(0, expired)).is_none());
    }

    #[test]
    fn job_states_map_to_pending_running_and_ended() {
        assert_eq!(JobState::of("PENDING"), JobState::Pending("PENDING".into()));
        assert_eq!(JobState::of("RUNNING"), JobState::Running);
        assert_eq!(JobState::of("TIMEOUT"), JobState::Ended("TIMEOUT".into()));
        assert_eq!(
            JobState::of("COMPLETING"),
            JobState::Ended("COMPLETING".into())
        );
        assert!(is_pending("CONFIGURING") && !is_pending("RUNNING"));
    }

    #[test]
    fn the_batch_script_quotes_the_socket_and_waits_for_tmux() {
        let spec = SlurmSpec {
            name: "gpu".into(),
            options: vec![],
            job_name: "t-gpu".into(),
            socket: "a b'c".into(),
            job_file: PathBuf::from("/nonexistent/job.json"),
            work_dir: ".".into(),
            via: None,
        };
        let script = spec.batch_script();
        assert!(script.contains("tmux -u -L 'a b'\\''c' -D &"), "{script}");
        assert!(script.contains("wait \"$p\""));
        let err = spec
            .place()
            .run(&["true".into()], None, Duration::from_secs(1))
            .unwrap_err();
        assert!(err.to_string().contains("no allocation"), "{err}");
    }
}
