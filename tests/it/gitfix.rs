//! Shared git fixtures: a bare "remote" with `main` and an initial commit in a temp dir, clones
//! of it, and commit/delete-and-push helpers, all via the git CLI with a fixed identity.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A bare remote (`<dir>/remote.git`, default branch `main`, one initial commit) plus clones.
/// Everything lives in `dir` and is removed on drop; set `KEEP_TEMP_DIR=1` to keep it.
pub struct GitFixture {
    pub dir: TempDir,
    /// The bare repository every clone pushes to.
    pub remote: PathBuf,
}

/// A `git` command with a fixed identity, no user/system config, and no terminal prompts.
pub fn git_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "protocol.file.allow=always",
        ])
        .env("GIT_AUTHOR_NAME", "orch test")
        .env("GIT_AUTHOR_EMAIL", "orch-test@example.invalid")
        .env("GIT_COMMITTER_NAME", "orch test")
        .env("GIT_COMMITTER_EMAIL", "orch-test@example.invalid")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    cmd
}

/// Run git in `dir`; panic with git's stderr if it fails; return trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl GitFixture {
    pub fn new() -> GitFixture {
        let keep = std::env::var_os("KEEP_TEMP_DIR").is_some();
        let dir = tempfile::Builder::new()
            .prefix("orch-git-")
            .disable_cleanup(keep)
            .tempdir()
            .expect("temp dir");
        let remote = dir.path().join("remote.git");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        let fx = GitFixture { dir, remote };
        let seed = fx.clone("seed");
        fx.commit_and_push(
            &seed,
            "initial commit",
            &[("README.md", "handoff fixture\n")],
        );
        fx
    }

    /// A fresh clone of the remote at `<dir>/<name>`.
    pub fn clone(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let remote = self.remote.to_str().expect("utf-8 temp path");
        git(self.dir.path(), &["clone", "-q", remote, name]);
        path
    }

    /// Write `files` (path relative to the clone, content) in `clone`, commit them with
    /// `subject` (empty commits allowed), rebase onto the remote's main and push. Returns the sha.
    pub fn commit_and_push(&self, clone: &Path, subject: &str, files: &[(&str, &str)]) -> String {
        for (rel, content) in files {
            let path = clone.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("creating fixture dirs");
            }
            std::fs::write(&path, content).expect("writing fixture file");
        }
        git(clone, &["add", "-A"]);
        git(clone, &["commit", "-q", "--allow-empty", "-m", subject]);
        self.push(clone)
    }

    /// `git rm` `path` in `clone`, commit with `subject`, push. Returns the sha.
    pub fn delete_and_push(&self, clone: &Path, path: &str, subject: &str) -> String {
        git(clone, &["rm", "-q", path]);
        git(clone, &["commit", "-q", "-m", subject]);
        self.push(clone)
    }

    fn push(&self, clone: &Path) -> String {
        let has_remote_main = git_cmd(clone)
            .args(["ls-remote", "--exit-code", "origin", "main"])
            .output()
            .expect("running git ls-remote")
            .status
            .success();
        if has_remote_main {
            git(clone, &["pull", "-q", "--rebase", "origin", "main"]);
        }
        git(clone, &["push", "-q", "origin", "HEAD:main"]);
        git(clone, &["rev-parse", "HEAD"])
    }

    /// The sha of the remote's main.
    pub fn remote_tip(&self) -> String {
        git(&self.remote, &["rev-parse", "main"])
    }
}
