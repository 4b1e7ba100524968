//! The sim's git: argv-only `git` calls in its own clone, each with a timeout,
//! committing as `orch-sim <sim@orch.invalid>` and pushing to origin/main with retries.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long one git call may take before it is killed.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Push attempts (each after a `pull --rebase`) before giving up.
const PUSH_ATTEMPTS: u32 = 5;
const IDENTITY_NAME: &str = "orch-sim";
const IDENTITY_EMAIL: &str = "sim@orch.invalid";

/// A git call that did not succeed, with what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum SimGitError {
    #[error("could not run `git {args}` in {dir:?}: {source}")]
    Spawn {
        args: String,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("`git {args}` in {dir:?} timed out after {secs}s")]
    Timeout {
        args: String,
        dir: PathBuf,
        secs: u64,
    },
    #[error("`git {args}` in {dir:?} failed: {stderr}")]
    Failed {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
}

/// The sim's clone of the project (its cwd).
pub struct Checkout {
    dir: PathBuf,
}

impl Checkout {
    pub fn new(dir: PathBuf) -> Self {
        Checkout { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Run `git <args>` here and return its stdout.
    pub fn git(&self, args: &[&str]) -> Result<String, SimGitError> {
        let shown = args.join(" ");
        let child = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", IDENTITY_NAME)
            .env("GIT_AUTHOR_EMAIL", IDENTITY_EMAIL)
            .env("GIT_COMMITTER_NAME", IDENTITY_NAME)
            .env("GIT_COMMITTER_EMAIL", IDENTITY_EMAIL)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SimGitError::Spawn {
                args: shown.clone(),
                dir: self.dir.clone(),
                source,
            })?;
        let (ok, stdout, stderr) = wait_with_timeout(child, GIT_TIMEOUT).map_err(|e| match e {
            WaitError::Timeout => SimGitError::Timeout {
                args: shown.clone(),
                dir: self.dir.clone(),
                secs: GIT_TIMEOUT.as_secs(),
            },
            WaitError::Io(source) => SimGitError::Spawn {
                args: shown.clone(),
                dir: self.dir.clone(),
                source,
            },
        })?;
        if ok {
            Ok(stdout)
        } else {
            Err(SimGitError::Failed {
                args: shown,
                dir: self.dir.clone(),
                stderr: stderr.trim().to_string(),
            })
        }
    }

    /// `git pull --rebase -q origin main`.
    pub fn pull(&self) -> Result<(), SimGitError> {
        self.git(&["pull", "--rebase", "-q", "origin", "main"])
            .map(drop)
    }

    /// Stage `paths` and commit them with `subject`; returns the short hash.
    pub fn commit(&self, paths: &[&str], subject: &str) -> Result<String, SimGitError> {
        let mut add = vec!["add", "--"];
        add.extend_from_slice(paths);
        self.git(&add)?;
        self.git(&["commit", "-q", "-m", subject])?;
        Ok(self
            .git(&["rev-parse", "--short", "HEAD"])?
            .trim()
            .to_string())
    }

    /// Pull --rebase then push HEAD to origin/main, retrying a few times on rejection.
    pub fn push(&self) -> Result<u32, SimGitError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .pull()
                .and_then(|()| self.git(&["push", "-q", "origin", "HEAD:main"]).map(drop));
            match result {
                Ok(()) => return Ok(attempt),
                Err(e) if attempt >= PUSH_ATTEMPTS => return Err(e),
                Err(_) => {
                    // A failed rebase leaves the clone mid-rebase; undo it before retrying.
                    let _ = self.git(&["rebase", "--abort"]);
                    thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
                }
            }
        }
    }

    /// Subjects of origin/main's history, newest first (empty when there is none yet).
    pub fn remote_subjects(&self) -> Result<Vec<String>, SimGitError> {
        let out = self.git(&["log", "--format=%s", "origin/main"])?;
        Ok(out.lines().map(str::to_string).collect())
    }
}

enum WaitError {
    Timeout,
    Io(std::io::Error),
}

/// Wait for `child`, reading its output; kill it once `limit` has passed.
fn wait_with_timeout(
    mut child: Child,
    limit: Duration,
) -> Result<(bool, String, String), WaitError> {
    let out = child.stdout.take().map(spawn_reader);
    let err = child.stderr.take().map(spawn_reader);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(WaitError::Timeout);
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(WaitError::Io(e)),
        }
    };
    let collect =
        |h: Option<thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok((status.success(), collect(out), collect(err)))
}

fn spawn_reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}
