//! workspace: what an agent's working folder gets before it starts — its own git worktree
//! (`worktree = true`) and the workspace `files` copied in with `${VAR}` interpolation.
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Agent, Config};

/// How long one git worktree command may take.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("I/O error at {path:?} while {doing} for agent {agent}: {source}")]
    Io {
        agent: String,
        path: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
    #[error("`git {args}` in {dir:?} failed: {detail}")]
    Git {
        dir: PathBuf,
        args: String,
        detail: String,
    },
}

/// `<log_dir>/worktrees/<agent>`.
pub fn worktree_path(cfg: &Config, agent: &str) -> PathBuf {
    cfg.log_dir.join("worktrees").join(agent)
}

/// `orch/<agent>`.
pub fn worktree_branch(agent: &str) -> String {
    format!("orch/{agent}")
}

/// The agent as it will run: with `worktree = true` its dir is its worktree.
pub fn effective_agent(cfg: &Config, agent: &Agent) -> Agent {
    let mut a = agent.clone();
    if a.worktree {
        a.dir = worktree_path(cfg, &a.name);
    }
    a
}

/// Run git in `dir`, killed after `GIT_TIMEOUT`; stdout on success.
fn git(dir: &Path, args: &[&str]) -> Result<String, WorkspaceError> {
    let fail = |detail: String| WorkspaceError::Git {
        dir: dir.to_path_buf(),
        args: args.join(" "),
        detail,
    };
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run git: {e}")))?;
    let deadline = Instant::now() + GIT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("no answer within {GIT_TIMEOUT:?}; killed")));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// The top of the git repo holding the project folder.
fn project_repo(cfg: &Config) -> Result<PathBuf, WorkspaceError> {
    git(&cfg.project_dir, &["rev-parse", "--show-toplevel"]).map(PathBuf::from)
}

/// Create the agent's worktree on branch `orch/<agent>` (from HEAD) if it is not there yet;
/// an existing worktree is reused as it is. Returns its path.
pub fn ensure_worktree(cfg: &Config, agent: &str) -> Result<PathBuf, WorkspaceError> {
    let path = worktree_path(cfg, agent);
    if path.join(".git").exists() {
        return Ok(path);
    }
    let repo = project_repo(cfg)?;
    let io = |doing, source| WorkspaceError::Io {
        agent: agent.to_string(),
        path: path.clone(),
        doing,
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("creating the worktrees folder", e))?;
    }
    // A worktree folder deleted by hand leaves a stale registration behind.
    git(&repo, &["worktree", "prune"])?;
    let branch = worktree_branch(agent);
    let exists = git(
        &repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .is_ok();
    let p = path.display().to_string();
    if exists {
        git(&repo, &["worktree", "add", &p, &branch])?;
    } else {
        git(&repo, &["worktree", "add", "-b", &branch, &p])?;
    }
    Ok(path)
}

/// Remove the agent's worktree (`--force`: uncommitted changes go) and prune; the branch stays.
/// `Ok(false)` when there was none.
pub fn remove_worktree(cfg: &Config, agent: &str) -> Result<bool, WorkspaceError> {
    let path = worktree_path(cfg, agent);
    if !path.exists() {
        return Ok(false);
    }
    let repo = project_repo(cfg)?;
    let p = path.display().to_string();
    let removed = git(&repo, &["worktree", "remove", "--force", &p]);
    if removed.is_err() && path.exists() {
        // Not a registered worktree (or git refused): take the folder away ourselves.
        std::fs::remove_dir_all(&path).map_err(|source| WorkspaceError::Io {
            agent: agent.to_string(),
            path: path.clone(),
            doing: "removing the worktree folder",
            source,
        })?;
    }
    git(&repo, &["worktree", "prune"])?;
    Ok(true)
}

/// The agents of every `orch/<agent>` branch of the project repo (none outside a git repo).
pub fn orch_branches(cfg: &Config) -> Vec<String> {
    let Ok(repo) = project_repo(cfg) else {
        return Vec::new();
    };
    git(
        &repo,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/orch/",
        ],
    )
    .map(|out| {
        out.lines()
            .filter_map(|l| l.trim().strip_prefix("orch/").map(String::from))
            .collect()
    })
    .unwrap_or_default()
}

/// Delete branch `orch/<agent>` (`-D`: its commits may be unmerged; the agent is gone).
pub fn delete_branch(cfg: &Config, agent: &str) -> Result<(), WorkspaceError> {
    let repo = project_repo(cfg)?;
    git(&repo, &["branch", "-D", &worktree_branch(agent)]).map(drop)
}

/// Fill `${VAR}` from `env` and `${agent.name}` / `${agent.session}` / `${agent.dir}`; a
/// `${...}` naming nothing known is left as written (files may hold shell snippets).
pub fn interpolate(text: &str, env: &[(String, String)], agent: &Agent) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let value = match name {
            "agent.name" => Some(agent.name.clone()),
            "agent.session" => Some(agent.session.clone()),
            "agent.dir" => Some(agent.dir.display().to_string()),
            _ => env
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        };
        match value {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Copy every workspace file into the agent's dir, interpolated; `.env` gets mode 0600,
/// others 0644. Each write is atomic (temp file in the same folder, then rename).
pub fn write_files(agent: &Agent, env: &[(String, String)]) -> Result<(), WorkspaceError> {
    for (dest, source) in &agent.files {
        let io = |path: &Path, doing, source| WorkspaceError::Io {
            agent: agent.name.clone(),
            path: path.to_path_buf(),
            doing,
            source,
        };
        let text = std::fs::read_to_string(source)
            .map_err(|e| io(source, "reading a workspace file", e))?;
        let target = agent.dir.join(dest);
        let dir = target.parent().unwrap_or(&agent.dir);
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "creating a workspace folder", e))?;
        let private = Path::new(dest).file_name().is_some_and(|n| n == ".env");
        let mode = if private { 0o600 } else { 0o644 };
        // tempfile creates its file 0600, so a secret is never readable, even for a moment.
        let mut tmp = tempfile::Builder::new()
            .prefix(".orch-file.")
            .tempfile_in(dir)
            .map_err(|e| io(dir, "creating a temp file", e))?;
        tmp.write_all(interpolate(&text, env, agent).as_bytes())
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| io(&target, "writing a workspace file", e))?;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))
            .map_err(|e| io(&target, "setting a workspace file's mode", e))?;
        tmp.persist(&target)
            .map_err(|e| io(&target, "renaming a workspace file into place", e.error))?;
    }
    Ok(())
}

/// What the workspace files contribute to the launch fingerprint: names and source contents.
pub fn files_digest_input(agent: &Agent) -> String {
    agent
        .files
        .iter()
        .map(|(dest, src)| {
            let body = std::fs::read(src).unwrap_or_default();
            format!("{dest}\0{}\0", crate::handoff::md5_hex(&body))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        let text = r#"
[defaults]
session_prefix = "t-"
log_dir = ".orch"
[backend.b]
bin = "true"
[[agent]]
name = "w1"
backend = "b"
"#;
        let cfg = crate::config::load_str(
            text,
            Path::new("/tmp/agents.toml"),
            crate::config::LoadOptions::STRICT,
        )
        .unwrap()
        .config;
        cfg.agents[0].clone()
    }

    #[test]
    fn interpolation_fills_env_and_agent_name_and_keeps_unknowns() {
        let env = vec![("TOKEN".to_string(), "abc".to_string())];
        let out = interpolate(
            "k=${TOKEN} n=${agent.name} x=${NOPE} $HOME ${",
            &env,
            &agent(),
        );
        assert_eq!(out, "k=abc n=w1 x=${NOPE} $HOME ${");
    }

    #[test]
    fn dot_env_is_written_private_and_others_readable() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src.txt");
        std::fs::write(&src, "KEY=${TOKEN}\n").unwrap();
        let mut a = agent();
        a.dir = d.path().join("work");
        a.files.insert(".env".into(), src.clone());
        a.files.insert("docs/NOTE.md".into(), src);
        let env = vec![("TOKEN".to_string(), "abc".to_string())];
        write_files(&a, &env).unwrap();
        let env_file = a.dir.join(".env");
        assert_eq!(std::fs::read_to_string(&env_file).unwrap(), "KEY=abc\n");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&env_file), 0o600);
        assert_eq!(mode(&a.dir.join("docs/NOTE.md")), 0o644);
    }
}
