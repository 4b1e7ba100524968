//! handoff: git reads of the handoff repo (fetch with a hard timeout, tip, new commits, blobs at
//! origin/main, md5) and the pure decision of which claim/review/inbox pings a new look calls for.
mod decide;

pub use decide::{
    CLAIM_PING, HandoffMemory, PingDecision, PingReason, REVIEW_PING, compile_subject_pattern,
    decide, inbox_ping,
};

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use git2::{ErrorCode, Oid, Repository, Sort};

/// The remote-tracking ref the watchdog watches.
pub const ORIGIN_MAIN: &str = "origin/main";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git failed: {0}")]
    Failed(String),
    #[error("could not run `git fetch` in {repo}: {source}")]
    Spawn {
        repo: PathBuf,
        source: std::io::Error,
    },
    #[error("`git fetch` in {repo} failed ({status}): {stderr}")]
    Fetch {
        repo: PathBuf,
        status: ExitStatus,
        /// The first non-empty line git wrote to stderr.
        stderr: String,
    },
    #[error("`git fetch` in {repo} did not finish within {timeout:?} and was killed")]
    FetchTimeout { repo: PathBuf, timeout: Duration },
    #[error("could not open git repository {repo}: {source}")]
    Open { repo: PathBuf, source: git2::Error },
    #[error("could not read {what} in git repository {repo}: {source}")]
    Read {
        repo: PathBuf,
        what: String,
        source: git2::Error,
    },
}

/// One commit: its full sha and its subject (first paragraph of the message, like `%s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
}

/// `git -C <repo> fetch -q origin`, killed (with everything it started) after `timeout`.
///
/// Runs the git CLI (argv, no shell) with `GIT_TERMINAL_PROMPT=0`, stdin closed, in its own
/// process group so a hung transport (ssh, upload-pack) dies with it. Blocking: from async code
/// call [`fetch_async`] (or wrap this in `tokio::task::spawn_blocking`).
pub fn fetch(repo: &Path, timeout: Duration) -> Result<(), GitError> {
    let spawn_err = |source| GitError::Spawn {
        repo: repo.to_path_buf(),
        source,
    };
    // stderr goes to an anonymous file, not a pipe: nothing can block on a full pipe, and a
    // grandchild that keeps the descriptor open cannot make us wait.
    let mut stderr_file = tempfile::tempfile().map_err(spawn_err)?;
    let stderr_for_child = stderr_file.try_clone().map_err(spawn_err)?;
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["fetch", "-q", "origin"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr_for_child))
        .process_group(0)
        .spawn()
        .map_err(spawn_err)?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {
                let now = Instant::now();
                if now >= deadline {
                    kill_process_group(child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(GitError::FetchTimeout {
                        repo: repo.to_path_buf(),
                        timeout,
                    });
                }
                std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
            }
            Err(source) => {
                kill_process_group(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(spawn_err(source));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    Err(GitError::Fetch {
        repo: repo.to_path_buf(),
        status,
        stderr: first_line(&mut stderr_file),
    })
}

/// [`fetch`] on tokio's blocking pool.
pub async fn fetch_async(repo: PathBuf, timeout: Duration) -> Result<(), GitError> {
    let shown = repo.clone();
    tokio::task::spawn_blocking(move || fetch(&repo, timeout))
        .await
        .map_err(|e| {
            GitError::Failed(format!("git fetch task for {} died: {e}", shown.display()))
        })?
}

/// SIGKILL the whole process group led by `pid` (the fetch child was made a group leader).
fn kill_process_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) has no memory-safety preconditions; -pid names the child's own group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The first non-empty line of what git wrote to `file`, or a note that it wrote nothing.
fn first_line(file: &mut File) -> String {
    let mut text = String::new();
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(0)).is_ok() && file.read_to_end(&mut bytes).is_ok() {
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map_or_else(
            || "git printed no error message".to_string(),
            str::to_string,
        )
}

/// Open the repository containing `repo` (searching upward, like `git -C <repo>`), one per
/// call: `Repository` is not `Sync`.
fn open(repo: &Path) -> Result<Repository, GitError> {
    Repository::discover(repo).map_err(|source| GitError::Open {
        repo: repo.to_path_buf(),
        source,
    })
}

fn read_err(repo: &Path, what: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let (repo, what) = (repo.to_path_buf(), what.into());
    move |source| GitError::Read { repo, what, source }
}

/// The commit `spec` names, or None when git does not know it (missing ref, unknown sha).
fn resolve_commit(repo: &Path, git: &Repository, spec: &str) -> Result<Option<Oid>, GitError> {
    match git.revparse_single(spec) {
        Ok(obj) => match obj.peel_to_commit() {
            Ok(commit) => Ok(Some(commit.id())),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(read_err(repo, format!("commit {spec}"))(e)),
        },
        Err(e) if is_missing(&e) => Ok(None),
        Err(e) => Err(read_err(repo, format!("revision {spec}"))(e)),
    }
}

fn is_missing(e: &git2::Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::NotFound | ErrorCode::InvalidSpec | ErrorCode::Peel | ErrorCode::Ambiguous
    )
}

/// The sha `refname` (e.g. `origin/main`) points at, or None if the ref does not exist.
pub fn tip(repo: &Path, refname: &str) -> Result<Option<String>, GitError> {
    let git = open(repo)?;
    Ok(resolve_commit(repo, &git, refname)?.map(|oid| oid.to_string()))
}

/// Commits reachable from `to` but not from `from`, oldest first.
///
/// - `from == None`: every commit reachable from `to` (callers take a baseline instead).
/// - `from` unknown to the repo (garbage, or history rewritten and pruned): only the commit `to`
///   itself, so a claim at the new tip still pings but old history is never replayed.
/// - `from` known but not an ancestor (force push): the commits of `to` that `from` lacks.
///
/// `to` must exist; a missing `to` is an error.
pub fn commits_between(repo: &Path, from: Option<&str>, to: &str) -> Result<Vec<Commit>, GitError> {
    let git = open(repo)?;
    let Some(to_oid) = resolve_commit(repo, &git, to)? else {
        return Err(GitError::Failed(format!(
            "revision {to} does not exist in git repository {}",
            repo.display()
        )));
    };
    let from_oid = match from {
        None => None,
        Some(spec) => match resolve_commit(repo, &git, spec)? {
            Some(oid) => Some(oid),
            None => {
                let commit = git
                    .find_commit(to_oid)
                    .map_err(read_err(repo, format!("commit {to}")))?;
                return Ok(vec![to_commit(&commit)]);
            }
        },
    };
    let walk_err = || read_err(repo, format!("history {}..{to}", from.unwrap_or("")));
    let mut walk = git.revwalk().map_err(walk_err())?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(walk_err())?;
    walk.push(to_oid).map_err(walk_err())?;
    if let Some(oid) = from_oid {
        walk.hide(oid).map_err(walk_err())?;
    }
    let mut out = Vec::new();
    for oid in walk {
        let oid = oid.map_err(walk_err())?;
        let commit = git.find_commit(oid).map_err(walk_err())?;
        out.push(to_commit(&commit));
    }
    Ok(out)
}

fn to_commit(commit: &git2::Commit<'_>) -> Commit {
    Commit {
        sha: commit.id().to_string(),
        subject: commit
            .summary_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default(),
    }
}

/// The content of `<refname>:<path>` (e.g. `origin/main:machine-docs/INBOX.md`); None when the
/// ref, the path or a file at that path does not exist.
pub fn blob_at(repo: &Path, refname: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
    let git = open(repo)?;
    let Some(oid) = resolve_commit(repo, &git, refname)? else {
        return Ok(None);
    };
    let what = || format!("{refname}:{path}");
    let tree = git
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(read_err(repo, what()))?;
    let entry = match tree.get_path(Path::new(path.trim_start_matches('/'))) {
        Ok(entry) => entry,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(read_err(repo, what())(e)),
    };
    let object = entry.to_object(&git).map_err(read_err(repo, what()))?;
    Ok(object.as_blob().map(|blob| blob.content().to_vec()))
}

/// A pushed state file: `origin/main:<state_subdir>/<file>`, else `origin/main:<file>`.
pub fn show_pushed(
    repo: &Path,
    state_subdir: &str,
    file: &str,
) -> Result<Option<Vec<u8>>, GitError> {
    let subdir = state_subdir.trim_matches('/');
    if !subdir.is_empty()
        && let Some(bytes) = blob_at(repo, ORIGIN_MAIN, &format!("{subdir}/{file}"))?
    {
        return Ok(Some(bytes));
    }
    blob_at(repo, ORIGIN_MAIN, file)
}

/// Lowercase hex md5 of `bytes` (how inbox contents are remembered).
pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    format!("{:x}", Md5::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_hex_matches_known_digests() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn open_of_a_plain_directory_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = tip(dir.path(), ORIGIN_MAIN).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
