//! After a successful run: commit what the agent left (auto_commit), push the branch (never
//! forced), then the PR command (`pr_command`, or `gh pr create` when gh exists; reused if open).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::model::{Job, Pr, PrState};
use super::repo::{self, Prepared};
use super::store::Store;
use crate::config::{Config, Profile};

const PR_TIMEOUT: Duration = Duration::from_secs(120);

/// The PR title: the task's first line, at most 72 characters.
pub fn title(task: &str) -> String {
    let line = task
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("orch job");
    let mut t: String = line.trim().chars().take(72).collect();
    if line.trim().chars().count() > 72 {
        t.pop();
        t.push('…');
    }
    t
}

/// Fill `{branch} {base} {title} {body_file}` in each argument (one argv item each: no shell).
pub fn render(
    argv: &[String],
    branch: &str,
    base: &str,
    title: &str,
    body_file: &str,
) -> Vec<String> {
    argv.iter()
        .map(|a| {
            a.replace("{branch}", branch)
                .replace("{base}", base)
                .replace("{title}", title)
                .replace("{body_file}", body_file)
        })
        .collect()
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// The default PR command when `gh` is installed.
fn default_pr_command() -> Option<Vec<String>> {
    on_path("gh").then(|| {
        [
            "gh",
            "pr",
            "create",
            "--head",
            "{branch}",
            "--base",
            "{base}",
            "--title",
            "{title}",
            "--body-file",
            "{body_file}",
        ]
        .map(String::from)
        .to_vec()
    })
}

/// Run a PR command with a deadline; its stdout, or one sentence.
fn run(argv: &[String], cwd: &Path, log: &Path) -> Result<String, String> {
    let (bin, args) = argv.split_first().ok_or("pr_command is empty")?;
    let out = tempfile::tempfile().map_err(|e| e.to_string())?;
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {bin}: {e}"))?;
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if start.elapsed() > PR_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{bin} timed out after {}s", PR_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut text = String::new();
    {
        use std::io::{Read, Seek};
        let mut f = out;
        let _ = f.rewind();
        let _ = f.read_to_string(&mut text);
    }
    if status.success() {
        Ok(text)
    } else {
        let tail = super::headless::tail_text(log, 300);
        Err(format!(
            "{bin} exited with {}: {}",
            status.code().map_or("a signal".into(), |c| c.to_string()),
            tail.trim().lines().last().unwrap_or("")
        ))
    }
}

fn url_in(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .flat_map(|l| l.split_whitespace())
        .find(|w| w.starts_with("https://") || w.starts_with("http://"))
        .map(String::from)
}

/// Commit (per `auto_commit`), count the branch's commits, push, open the PR. Never fails: the
/// outcome is in the returned `Pr` (and the commits found).
pub fn finish(
    cfg: &Config,
    profile: &Profile,
    job: &Job,
    prepared: &Prepared,
    store: &Store,
) -> (Vec<String>, Pr) {
    let (Some(branch), Some(base_commit)) = (&prepared.branch, &prepared.base_commit) else {
        return (Vec::new(), Pr::default());
    };
    if profile.auto_commit
        && let Err(e) = repo::commit_all(&prepared.workdir, &title(&job.task))
    {
        return (
            Vec::new(),
            Pr {
                state: PrState::PushFailed,
                url: None,
                error: Some(format!("auto-commit failed: {e}")),
            },
        );
    }
    let commits = repo::commits_since(&prepared.workdir, base_commit).unwrap_or_default();
    if commits.is_empty() {
        return (
            commits,
            Pr {
                state: PrState::NoChanges,
                ..Pr::default()
            },
        );
    }
    if !prepared.has_remote {
        return (
            commits,
            Pr {
                state: PrState::None,
                url: None,
                error: Some("the repository has no remote origin: the branch stays local".into()),
            },
        );
    }
    let base = prepared.base.clone().unwrap_or_else(|| "main".into());
    let pr = push_and_open(cfg, profile, job, &prepared.workdir, branch, &base, store);
    (commits, pr)
}

/// Push `branch` from `dir` and open (or find) its PR.
pub fn push_and_open(
    _cfg: &Config,
    profile: &Profile,
    job: &Job,
    dir: &Path,
    branch: &str,
    base: &str,
    store: &Store,
) -> Pr {
    // The stage shows on a running job (a redo on a finished job leaves it alone).
    let stage = |s: &str| {
        let _ = store.apply(&job.id, super::model::Event::Stage(s.into()));
    };
    stage("push");
    if let Err(e) = repo::push(dir, branch) {
        return Pr {
            state: PrState::PushFailed,
            url: None,
            error: Some(e),
        };
    }
    let pushed = Pr {
        state: PrState::Pushed,
        ..Pr::default()
    };
    if job.no_pr || !profile.auto_pr {
        return pushed;
    }
    // Already opened (a redo): reuse it.
    if job.pr.state == PrState::Opened && job.pr.url.is_some() {
        return job.pr.clone();
    }
    let custom = profile.pr_command.clone();
    let Some(argv) = custom.clone().or_else(default_pr_command) else {
        return pushed;
    };
    stage("pr");
    let log = store.file(&job.id, "pr.log");
    if custom.is_none() {
        // gh: an open PR for the branch is reused.
        let view = ["gh", "pr", "view", branch, "--json", "url", "-q", ".url"].map(String::from);
        if let Ok(out) = run(&view, dir, &log)
            && let Some(url) = url_in(&out)
        {
            return Pr {
                state: PrState::Opened,
                url: Some(url),
                error: None,
            };
        }
    }
    let body_file: PathBuf = store.file(&job.id, "pr-body.md");
    let body = format!(
        "{}\n\n{}\n\n---\norch job {} (attempt {})\n",
        job.task.trim(),
        job.summary.as_deref().unwrap_or(""),
        job.id,
        job.attempt + 1
    );
    if let Err(e) = crate::state::write_atomic(&body_file, body.as_bytes()) {
        return Pr {
            state: PrState::PrFailed,
            url: None,
            error: Some(format!("cannot write {}: {e}", body_file.display())),
        };
    }
    let argv = render(
        &argv,
        branch,
        base,
        &title(&job.task),
        &body_file.display().to_string(),
    );
    match run(&argv, dir, &log) {
        Ok(out) => Pr {
            state: PrState::Opened,
            url: url_in(&out),
            error: None,
        },
        Err(e) => Pr {
            state: PrState::PrFailed,
            url: None,
            error: Some(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_fill_whole_argv_items_without_a_shell() {
        let argv = ["pr", "--head={branch}", "{title}", "{body_file}", "{base}"].map(String::from);
        assert_eq!(
            render(&argv, "orch/job-1-x", "main", "Fix; rm -rf /", "/j/body.md"),
            vec![
                "pr",
                "--head=orch/job-1-x",
                "Fix; rm -rf /",
                "/j/body.md",
                "main"
            ]
        );
    }

    #[test]
    fn titles_are_the_first_line_shortened() {
        assert_eq!(title("\nFix the bug\nmore"), "Fix the bug");
        assert_eq!(title(&"x".repeat(100)).chars().count(), 72);
    }

    #[test]
    fn the_pr_url_is_the_last_url_printed() {
        assert_eq!(
            url_in("Creating pull request\nhttps://example.org/o/r/pull/7\n").as_deref(),
            Some("https://example.org/o/r/pull/7")
        );
        assert_eq!(url_in("nothing"), None);
    }
}
