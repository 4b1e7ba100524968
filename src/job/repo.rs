//! A job's repository: a URL is cloned once into a bare cache `<repo_cache>/<hash>.git` (under a
//! file lock) and fetched per job; each job gets its own worktree on `orch/job-<id>-<slug>`.
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

/// How long one git call may take (a dead remote must not hang a job forever).
const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Run `git args` in `dir` with a deadline; stdout on success, one sentence otherwise.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let shown = args.join(" ");
    let out_file = tempfile::tempfile().map_err(|e| format!("git {shown}: {e}"))?;
    let err_file = tempfile::tempfile().map_err(|e| format!("git {shown}: {e}"))?;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(err_file.try_clone().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot run git {shown} in {}: {e}", dir.display()))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if start.elapsed() > GIT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "git {shown} in {} timed out after {}s",
                    dir.display(),
                    GIT_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("git {shown}: {e}")),
        }
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let _ = f.rewind();
        let mut s = String::new();
        let _ = f.read_to_string(&mut s);
        s
    };
    if status.success() {
        Ok(read(out_file))
    } else {
        let err = read(err_file);
        Err(format!(
            "git {shown} in {} failed: {}",
            dir.display(),
            err.trim().lines().last().unwrap_or("no message")
        ))
    }
}

/// Whether `repo` names a remote (a URL or scp-like `host:path`) rather than a local path.
pub fn is_url(repo: &str) -> bool {
    repo.contains("://") || (repo.contains(':') && !repo.starts_with('/') && repo.contains('@'))
}

/// The cache folder of a URL: `<cache>/<md5 of the URL>.git`.
pub fn cache_dir(cache: &Path, url: &str) -> PathBuf {
    let hash = format!("{:x}", Md5::digest(url.as_bytes()));
    cache.join(format!("{}.git", &hash[..16]))
}

/// A branch-name slug of the task: lowercase words joined by `-`, at most 40 characters.
pub fn slug(task: &str) -> String {
    let mut s = String::new();
    for c in task.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
        if s.len() >= 40 {
            break;
        }
    }
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "task".into() } else { s }
}

/// Where a job runs and what it started from.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The folder the agent runs in.
    pub workdir: PathBuf,
    /// The repository the worktree belongs to (the cache or the local repo), if any.
    pub git_dir: Option<PathBuf>,
    pub branch: Option<String>,
    pub base: Option<String>,
    pub base_commit: Option<String>,
    /// Whether pushing makes sense (a remote `origin` exists).
    pub has_remote: bool,
}

/// The branch of job `id`'s attempt (0-based): `orch/job-<id>-<slug>`, with `-r2`, `-r3`...
/// for retries (an earlier attempt's branch may be pushed: it is never reset or forced).
pub fn branch_name(id: &str, task: &str, attempt: u32) -> String {
    let retry = if attempt == 0 {
        String::new()
    } else {
        format!("-r{}", attempt + 1)
    };
    format!("orch/job-{id}-{}{retry}", slug(task))
}

/// Prepare job `id`'s working tree at `worktree` on `branch` from `repo` (a URL, a path, or
/// `None`: the project dir) and `base`.
pub fn prepare(
    cache: &Path,
    project_dir: &Path,
    repo: Option<&str>,
    base: Option<&str>,
    branch: &str,
    worktree: &Path,
) -> Result<Prepared, String> {
    let branch = branch.to_string();
    match repo {
        Some(url) if is_url(url) => prepare_url(cache, url, base, &branch, worktree),
        other => {
            let path = other.map_or_else(
                || project_dir.to_path_buf(),
                |p| crate::config::resolve(project_dir, p),
            );
            prepare_path(&path, base, &branch, worktree)
        }
    }
}

fn prepare_url(
    cache: &Path,
    url: &str,
    base: Option<&str>,
    branch: &str,
    worktree: &Path,
) -> Result<Prepared, String> {
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot create the repo cache {}: {e}", cache.display()))?;
    let dir = cache_dir(cache, url);
    let lock_path = dir.with_extension("lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    let d = dir.display().to_string();
    if !dir.join("HEAD").exists() {
        git(cache, &["init", "-q", "--bare", &d])?;
        git(&dir, &["remote", "add", "origin", url])?;
        git(
            &dir,
            &[
                "config",
                "remote.origin.fetch",
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )?;
    }
    git(&dir, &["fetch", "-q", "--prune", "origin"])?;
    let base = match base {
        Some(b) => b.to_string(),
        None => default_branch(&dir)?,
    };
    let start = format!("refs/remotes/origin/{base}");
    let commit = git(
        &dir,
        &["rev-parse", "--verify", &format!("{start}^{{commit}}")],
    )
    .map_err(|_| format!("the base {base:?} is not a branch of {url}"))?
    .trim()
    .to_string();
    // From the commit just fetched (under the lock), not the ref: another job's fetch may move it.
    let wt = worktree.display().to_string();
    git(&dir, &["worktree", "add", "-q", "-b", branch, &wt, &commit])?;
    drop(lock);
    Ok(Prepared {
        workdir: worktree.to_path_buf(),
        git_dir: Some(dir),
        branch: Some(branch.to_string()),
        base: Some(base),
        base_commit: Some(commit),
        has_remote: true,
    })
}

/// The remote's default branch (its HEAD), from the fetched refs.
fn default_branch(dir: &Path) -> Result<String, String> {
    if let Ok(out) = git(dir, &["ls-remote", "--symref", "origin", "HEAD"])
        && let Some(rest) = out.lines().find_map(|l| l.strip_prefix("ref: refs/heads/"))
        && let Some(name) = rest.split_whitespace().next()
    {
        return Ok(name.to_string());
    }
    for b in ["main", "master"] {
        if git(
            dir,
            &["rev-parse", "--verify", &format!("refs/remotes/origin/{b}")],
        )
        .is_ok()
        {
            return Ok(b.into());
        }
    }
    Err("cannot tell the remote's default branch: give --base".into())
}

fn prepare_path(
    path: &Path,
    base: Option<&str>,
    branch: &str,
    worktree: &Path,
) -> Result<Prepared, String> {
    if !path.is_dir() {
        return Err(format!("the repo {} is not a folder", path.display()));
    }
    if git(path, &["rev-parse", "--git-dir"]).is_err() {
        // Not a git repository: the agent runs in the folder itself, with no branch and no PR.
        return Ok(Prepared {
            workdir: path.to_path_buf(),
            git_dir: None,
            branch: None,
            base: None,
            base_commit: None,
            has_remote: false,
        });
    }
    let base = match base {
        Some(b) => b.to_string(),
        None => git(path, &["rev-parse", "--abbrev-ref", "HEAD"])?
            .trim()
            .to_string(),
    };
    let commit = git(
        path,
        &["rev-parse", "--verify", &format!("{base}^{{commit}}")],
    )
    .map_err(|_| format!("the base {base:?} is not a commit of {}", path.display()))?
    .trim()
    .to_string();
    let wt = worktree.display().to_string();
    git(path, &["worktree", "add", "-q", "-b", branch, &wt, &commit])?;
    let has_remote = git(path, &["remote", "get-url", "origin"]).is_ok();
    // The PR's base is the remote branch of the same name.
    let base = base.strip_prefix("origin/").unwrap_or(&base).to_string();
    Ok(Prepared {
        workdir: worktree.to_path_buf(),
        git_dir: Some(path.to_path_buf()),
        branch: Some(branch.to_string()),
        base: Some(base),
        base_commit: Some(commit),
        has_remote,
    })
}

/// Commit everything the agent left in the worktree (as orch); `true` if it made a commit.
pub fn commit_all(workdir: &Path, message: &str) -> Result<bool, String> {
    if git(workdir, &["status", "--porcelain"])?.trim().is_empty() {
        return Ok(false);
    }
    git(workdir, &["add", "-A"])?;
    let mut cmd = vec!["-c", "user.name=orch", "-c", "user.email=orch@localhost"];
    // Keep the user's identity when git has one.
    if git(workdir, &["config", "user.email"]).is_ok() {
        cmd.clear();
    }
    cmd.extend(["commit", "-q", "-m", message]);
    git(workdir, &cmd)?;
    Ok(true)
}

/// The commits on the job's branch since its base, oldest first.
pub fn commits_since(workdir: &Path, base_commit: &str) -> Result<Vec<String>, String> {
    Ok(git(
        workdir,
        &["rev-list", "--reverse", &format!("{base_commit}..HEAD")],
    )?
    .lines()
    .map(String::from)
    .collect())
}

/// Push the branch to origin (never forced).
pub fn push(workdir: &Path, branch: &str) -> Result<(), String> {
    git(
        workdir,
        &[
            "push",
            "-q",
            "origin",
            &format!("refs/heads/{branch}:refs/heads/{branch}"),
        ],
    )
    .map(|_| ())
}

/// Remove a job's worktree (and prune its record); the branch stays.
pub fn remove_worktree(git_dir: &Path, worktree: &Path) -> Result<(), String> {
    let wt = worktree.display().to_string();
    let r = git(git_dir, &["worktree", "remove", "--force", &wt]).map(|_| ());
    let _ = git(git_dir, &["worktree", "prune"]);
    if r.is_err() && worktree.exists() {
        std::fs::remove_dir_all(worktree)
            .map_err(|e| format!("cannot remove {}: {e}", worktree.display()))?;
        let _ = git(git_dir, &["worktree", "prune"]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_lowercase_words() {
        assert_eq!(
            slug("Fix issue #123 in the parser!"),
            "fix-issue-123-in-the-parser"
        );
        assert_eq!(slug("!!!"), "task");
        assert!(slug(&"word ".repeat(40)).len() <= 41);
    }

    #[test]
    fn a_retry_gets_its_own_branch() {
        assert_eq!(branch_name("4", "Fix it", 0), "orch/job-4-fix-it");
        assert_eq!(branch_name("4", "Fix it", 1), "orch/job-4-fix-it-r2");
    }

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert!(is_url("https://github.com/a/b"));
        assert!(is_url("git@github.com:a/b.git"));
        assert!(is_url("file:///tmp/x.git"));
        assert!(!is_url("/tmp/repo"));
        assert!(!is_url("repo"));
    }

    #[test]
    fn one_url_has_one_cache_folder() {
        let c = Path::new("/c");
        assert_eq!(cache_dir(c, "https://x/y"), cache_dir(c, "https://x/y"));
        assert_ne!(cache_dir(c, "https://x/y"), cache_dir(c, "https://x/z"));
    }
}
