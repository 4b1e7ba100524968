//! What `orch validate` checks on disk once the file itself is valid: the folders and files the
//! config names (agent dirs, loop agents' clones, the handoff repo, the phases' plans and STATUS).
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::Config;
use super::schema::{self, Seg};

/// Problems found on disk, each rendered as `file:line:col: message` (or `file: message`).
#[derive(Debug, Default)]
pub struct PathProblems {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

struct Placer<'a> {
    text: &'a str,
    doc: Option<DeTable<'a>>,
    shown: String,
}

impl Placer<'_> {
    fn at(&self, path: &[Seg<'_>], message: String) -> String {
        let span = self.doc.as_ref().and_then(|d| schema::locate(d, path));
        match span {
            Some(s) => {
                let (line, col) = schema::line_col(self.text, s.start);
                format!("{}:{line}:{col}: {message}", self.shown)
            }
            None => format!("{}: {message}", self.shown),
        }
    }
}

/// Check what `cfg` (loaded from `text`) names on disk; `current` is the current phase index.
/// Agent dirs must exist (orch does not create them), loop agents' dirs must be inside a git
/// clone, the handoff repo must be a git repository, the current phase's plan must exist; a
/// missing STATUS file of the current phase and later phases' missing plans are warnings.
pub fn check_paths(cfg: &Config, text: &str, current: usize) -> PathProblems {
    let p = Placer {
        text,
        doc: DeTable::parse(text).ok().map(|d| d.into_inner()),
        shown: cfg.path.display().to_string(),
    };
    let mut out = PathProblems::default();
    let mut clones: Vec<(String, PathBuf)> = Vec::new();
    for (i, a) in cfg.agents.iter().enumerate() {
        if a.worktree || a.host.is_some() {
            continue; // orch makes the worktree itself; a host's dirs are on that host
        }
        let at = [Seg::Key("agent"), Seg::Index(i), Seg::Key("dir")];
        if !a.dir.is_dir() {
            let hint = if a.kind == super::Kind::Loop {
                format!(
                    " (give each loop agent its own clone: `git clone <your remote> {}`)",
                    tidy(&a.dir).display()
                )
            } else {
                " (create it, or fix `dir`; orch does not create it)".to_string()
            };
            let line = p.at(
                &at,
                format!(
                    "agent {}: dir {} does not exist{hint}",
                    a.name,
                    tidy(&a.dir).display()
                ),
            );
            if a.enabled || a.kind == super::Kind::Loop {
                out.errors.push(line);
            } else {
                out.warnings.push(line);
            }
            continue;
        }
        if a.kind != super::Kind::Loop {
            continue;
        }
        match work_tree_of(&a.dir) {
            Some(root) => {
                if let Some((other, _)) = clones.iter().find(|(_, r)| *r == root) {
                    out.warnings.push(p.at(
                        &at,
                        format!(
                            "agent {}: works in the same clone as {other} ({}); each loop agent needs its own clone",
                            a.name,
                            tidy(&root).display()
                        ),
                    ));
                }
                clones.push((a.name.clone(), root));
            }
            None => out.errors.push(p.at(
                &at,
                format!(
                    "agent {}: dir {} is not inside a git clone (loop agents pull and push through git: clone the project there)",
                    a.name,
                    tidy(&a.dir).display()
                ),
            )),
        }
    }
    let Some(l) = &cfg.loop_ else { return out };
    let repo = l
        .handoff
        .as_ref()
        .map_or_else(|| cfg.project_dir.clone(), |h| h.repo.clone());
    let repo_at = [Seg::Key("loop"), Seg::Key("handoff"), Seg::Key("repo")];
    let repo_ok = l.handoff.is_none() || work_tree_of(&repo).is_some();
    if !repo_ok {
        out.errors.push(p.at(
            &repo_at,
            format!(
                "[loop.handoff].repo {} is not a git clone (the watchdog fetches its origin/main)",
                tidy(&repo).display()
            ),
        ));
    }
    let sub = l
        .handoff
        .as_ref()
        .map_or("machine-docs", |h| h.state_subdir.as_str());
    // Where a plan may be: the project, the handoff repo, each loop agent's clone.
    let mut roots = vec![cfg.project_dir.clone(), repo.clone()];
    roots.extend(cfg.loop_agents().map(|a| a.dir.clone()));
    for (i, ph) in l.phases.iter().enumerate() {
        if ph.plan.is_empty() || i < current {
            continue;
        }
        let at = [
            Seg::Key("loop"),
            Seg::Key("phases"),
            Seg::Index(i),
            Seg::Key("plan"),
        ];
        if !roots.iter().any(|r| r.join(&ph.plan).is_file()) {
            let message = format!(
                "phase {}: plan {} does not exist (looked in {})",
                ph.id,
                ph.plan,
                shown_roots(&roots)
            );
            if i == current {
                out.errors.push(p.at(&at, message));
            } else {
                out.warnings.push(p.at(&at, message));
            }
        }
        if i == current && repo_ok {
            let places = [repo.join(sub).join(&ph.status), repo.join(&ph.status)];
            if !places.iter().any(|f| f.is_file()) {
                let at = [
                    Seg::Key("loop"),
                    Seg::Key("phases"),
                    Seg::Index(i),
                    Seg::Key("status"),
                ];
                out.warnings.push(p.at(
                    &at,
                    format!(
                        "phase {}: STATUS file {} is not there yet (looked for {} and {}); the phase advances when the builder pushes it with the done marker",
                        ph.id,
                        ph.status,
                        tidy(&places[0]).display(),
                        tidy(&places[1]).display()
                    ),
                ));
            }
        }
    }
    by_place(&mut out.errors, &p.shown);
    by_place(&mut out.warnings, &p.shown);
    out
}

/// `path` with `.` and `..` resolved by hand (for messages: `/a/b/../c` reads as `/a/c`).
fn tidy(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Sort rendered problems by line, then column.
fn by_place(lines: &mut [String], shown: &str) {
    let key = |l: &String| {
        let rest = l.strip_prefix(shown).unwrap_or("");
        let mut parts = rest.trim_start_matches(':').splitn(3, ':');
        let n = |p: Option<&str>| p.and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
        (n(parts.next()), n(parts.next()))
    };
    lines.sort_by_key(key);
}

/// The top of the git work tree holding `dir`, if any (a bare repository has none).
fn work_tree_of(dir: &Path) -> Option<PathBuf> {
    let repo = git2::Repository::discover(dir).ok()?;
    let root = repo.workdir()?;
    Some(std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()))
}

fn shown_roots(roots: &[PathBuf]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for r in roots {
        let s = tidy(r).display().to_string();
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LoadOptions, load_str};

    fn config(dir: &Path, extra: &str) -> (Config, String) {
        let text = format!(
            "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[backend.sh]\nbin = \"sh\"\n{extra}"
        );
        std::fs::create_dir_all(dir.join("prompts")).unwrap();
        std::fs::write(dir.join("prompts/builder.md"), "role").unwrap();
        let cfg = load_str(&text, &dir.join("agents.toml"), LoadOptions::STRICT)
            .unwrap()
            .config;
        (cfg, text)
    }

    fn git_init(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        git2::Repository::init(dir).unwrap();
    }

    const LOOP: &str = r#"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "sh"
dir = "b"

[[agent]]
name = "helper"
backend = "sh"
dir = "h"

[loop]
phases = [
  { id = "p1", plan = "plans/p1.md", status = "p1-STATUS.md" },
  { id = "p2", plan = "plans/p2.md", status = "p2-STATUS.md" },
]
[loop.handoff]
repo = "."
"#;

    #[test]
    fn missing_dirs_plans_and_clones_are_named_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let (cfg, text) = config(&root, LOOP);
        let found = check_paths(&cfg, &text, 0);
        let all = found.errors.join("\n");
        assert!(all.contains("agent builder: dir"), "{all}");
        assert!(all.contains("git clone"), "{all}");
        assert!(all.contains("agent helper: dir"), "{all}");
        assert!(all.contains("is not a git clone"), "{all}");
        assert!(
            all.contains("phase p1: plan plans/p1.md does not exist"),
            "{all}"
        );
        assert!(all.contains("agents.toml:"), "placed at a line: {all}");
        let warned = found.warnings.join("\n");
        assert!(warned.contains("phase p2: plan plans/p2.md"), "{warned}");
        // The builder's line: `dir = "b"` is on the line of the first agent's dir.
        let line = text.lines().position(|l| l == "dir = \"b\"").unwrap() + 1;
        assert!(
            found
                .errors
                .iter()
                .any(|e| e.contains(&format!("agents.toml:{line}:")) && e.contains("builder")),
            "{all}"
        );
    }

    #[test]
    fn a_project_laid_out_as_the_config_says_passes() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        git_init(&root);
        git_init(&root.join("b"));
        std::fs::create_dir_all(root.join("h")).unwrap();
        std::fs::create_dir_all(root.join("plans")).unwrap();
        std::fs::write(root.join("plans/p1.md"), "plan").unwrap();
        let (cfg, text) = config(&root, LOOP);
        let found = check_paths(&cfg, &text, 0);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        // Later phase plan and the STATUS file are only warnings.
        assert_eq!(found.warnings.len(), 2, "{:?}", found.warnings);
        // At phase 1 (p2), p1's plan no longer matters, p2's does.
        let found = check_paths(&cfg, &text, 1);
        assert!(
            found.errors.iter().any(|e| e.contains("plans/p2.md")),
            "{:?}",
            found.errors
        );
    }

    #[test]
    fn a_loop_agent_outside_a_git_clone_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::create_dir_all(root.join("h")).unwrap();
        let (cfg, text) = config(&root, LOOP);
        let found = check_paths(&cfg, &text, 0);
        assert!(
            found
                .errors
                .iter()
                .any(|e| e.contains("agent builder: dir") && e.contains("not inside a git clone")),
            "{:?}",
            found.errors
        );
        assert!(
            !found.errors.iter().any(|e| e.contains("agent helper")),
            "{:?}",
            found.errors
        );
    }
}
