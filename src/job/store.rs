//! The job store `<log_dir>/jobs/<id>/`: `job.json` written atomically, the prompt, the agent's
//! output, `result.json`; every read-modify-write of a job happens under the store's file lock.
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

use super::model::{self, Event, Job};
use crate::{Error, Result};

pub const JOB_FILE: &str = "job.json";
pub const PROMPT_FILE: &str = "prompt.md";
pub const OUTPUT_FILE: &str = "output.log";
pub const STDERR_FILE: &str = "stderr.log";
pub const RESULT_FILE: &str = "result.json";
/// Present while a cancel is asked for a running job.
pub const CANCEL_FILE: &str = "cancel";
/// Locked by the process running the job for as long as it runs.
pub const RUN_LOCK_FILE: &str = "run.lock";

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The store-wide lock; released when dropped.
pub struct StoreLock(#[allow(dead_code)] File);

/// A job's run lock, held by its runner; released when dropped (or when the runner dies).
pub struct RunLock(#[allow(dead_code)] File);

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Store {
    /// The store of a log dir: `<log_dir>/jobs`.
    pub fn new(log_dir: &Path) -> Store {
        Store {
            root: log_dir.join("jobs"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn file(&self, id: &str, name: &str) -> PathBuf {
        self.dir(id).join(name)
    }

    /// Take the store lock, waiting for it.
    pub fn lock(&self) -> Result<StoreLock> {
        fs::create_dir_all(&self.root)
            .map_err(|e| Error::io(&self.root, "creating the job store", e))?;
        let path = self.root.join(".lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "opening the job store lock", e))?;
        f.lock()
            .map_err(|e| Error::io(&path, "locking the job store", e))?;
        Ok(StoreLock(f))
    }

    /// Take job `id`'s run lock without waiting; `None` when someone else runs it.
    pub fn try_run_lock(&self, id: &str) -> Result<Option<RunLock>> {
        let path = self.file(id, RUN_LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "opening a job's run lock", e))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(RunLock(f))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::io(&path, "locking a job's run lock", e)),
        }
    }

    /// Whether a live process holds job `id`'s run lock.
    pub fn is_being_run(&self, id: &str) -> bool {
        matches!(self.try_run_lock(id), Ok(None))
    }

    /// Add a new job (its id is the next number); writes its prompt and `job.json`.
    pub fn create(&self, mut job: Job) -> Result<Job> {
        let _lock = self.lock()?;
        // Ids are never reused, even after `clean` removed the newest jobs.
        let counter = self.root.join(".last_id");
        let last = std::fs::read_to_string(&counter)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let next = self
            .ids()?
            .iter()
            .filter_map(|i| i.parse::<u64>().ok())
            .max()
            .unwrap_or(0)
            .max(last)
            + 1;
        crate::state::write_atomic(&counter, format!("{next}\n").as_bytes())
            .map_err(|e| Error::io(&counter, "recording the last job id", e))?;
        job.id = next.to_string();
        job.schema_version = model::SCHEMA_VERSION;
        if job.times.created.is_empty() {
            job.times.created = now();
        }
        let dir = self.dir(&job.id);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "creating a job's folder", e))?;
        let prompt = self.file(&job.id, PROMPT_FILE);
        crate::state::write_atomic(&prompt, job.task.as_bytes())
            .map_err(|e| Error::io(&prompt, "writing a job's prompt", e))?;
        self.save(&job)?;
        Ok(job)
    }

    /// Every job id in the store, in number order.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(Error::io(&self.root, "listing the job store", e)),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && e.path().join(JOB_FILE).is_file() {
                ids.push(name);
            }
        }
        ids.sort_by_key(|i| model::id_key(i));
        Ok(ids)
    }

    /// One job; a usage error naming it when there is none.
    pub fn load(&self, id: &str) -> Result<Job> {
        if id.is_empty() || id.contains(['/', '.']) {
            return Err(Error::Usage(format!("{id:?} is not a job id")));
        }
        let path = self.file(id, JOB_FILE);
        match crate::state::load_json::<Job>(&path) {
            Ok(Some(j)) => Ok(j),
            Ok(None) => Err(Error::Usage(format!("no job {id} (see orch job list)"))),
            Err(e) => Err(Error::Runtime(e.to_string())),
        }
    }

    /// Every job, in id order (a corrupt job file is reported and skipped).
    pub fn list(&self) -> Result<Vec<Job>> {
        let mut out = Vec::new();
        for id in self.ids()? {
            match self.load(&id) {
                Ok(j) => out.push(j),
                Err(e) => tracing::warn!("skipping job {id}: {e}"),
            }
        }
        Ok(out)
    }

    /// Write `job.json` atomically (call under the lock, or for a job only you own).
    pub fn save(&self, job: &Job) -> Result<()> {
        let path = self.file(&job.id, JOB_FILE);
        crate::state::save_json(&path, job).map_err(|e| Error::Runtime(e.to_string()))
    }

    /// Apply `event` to job `id` under the lock: the new job, or why the transition was refused.
    pub fn apply(
        &self,
        id: &str,
        event: Event,
    ) -> Result<std::result::Result<Job, model::Refused>> {
        let _lock = self.lock()?;
        let job = self.load(id)?;
        match model::apply(&job, event, &now()) {
            Ok(next) => {
                self.save(&next)?;
                Ok(Ok(next))
            }
            Err(refused) => Ok(Err(refused)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::model::Status;

    #[test]
    fn ids_are_sequential_and_the_prompt_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        let a = s
            .create(Job {
                task: "one".into(),
                ..Job::default()
            })
            .unwrap();
        let b = s.create(Job::default()).unwrap();
        assert_eq!((a.id.as_str(), b.id.as_str()), ("1", "2"));
        assert_eq!(fs::read_to_string(s.file("1", PROMPT_FILE)).unwrap(), "one");
        let loaded = s.load("1").unwrap();
        assert_eq!(loaded.schema_version, model::SCHEMA_VERSION);
        assert!(s.load("../x").is_err());
        // A removed job's id is not given again.
        fs::remove_dir_all(s.dir("2")).unwrap();
        assert_eq!(s.create(Job::default()).unwrap().id, "3");
        assert!(matches!(s.load("9"), Err(Error::Usage(_))));
    }

    #[test]
    fn a_refused_transition_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        let j = s.create(Job::default()).unwrap();
        s.apply(&j.id, Event::Cancelled).unwrap().unwrap();
        assert!(s.apply(&j.id, Event::TimedOut).unwrap().is_err());
        assert_eq!(s.load(&j.id).unwrap().status, Status::Cancelled);
    }

    #[test]
    fn the_run_lock_is_exclusive_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        let j = s.create(Job::default()).unwrap();
        let held = s.try_run_lock(&j.id).unwrap();
        assert!(held.is_some());
        assert!(s.is_being_run(&j.id));
        drop(held);
        assert!(!s.is_being_run(&j.id));
    }
}
