//! Leaks of a project (`orch gc`, `orch down --clean`): sessions with its prefix that no agent
//! or service owns, worktrees and `orch/<agent>` branches of removed agents, old kickoff and
//! scrollback files. Finding is one pass; removing is another, so `--dry-run` only lists.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::tmux::Tmux;
use crate::{Error, Result, workspace};

/// One thing to reap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leak {
    /// A session on one of the project's servers (`watchdog_server`: on the watchdog's own).
    Session { name: String, watchdog_server: bool },
    /// The worktree folder of an agent no longer in the config.
    Worktree { agent: String, path: PathBuf },
    /// Branch `orch/<agent>` of an agent no longer in the config.
    Branch { agent: String },
    /// A kickoff or scrollback file older than the limit.
    File { path: PathBuf },
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leak::Session {
                name,
                watchdog_server,
            } => {
                let server = if *watchdog_server {
                    " (watchdog server)"
                } else {
                    ""
                };
                write!(f, "orphaned session {name}{server}")
            }
            Leak::Worktree { agent, path } => {
                write!(f, "worktree of removed agent {agent} ({})", path.display())
            }
            Leak::Branch { agent } => write!(f, "branch orch/{agent} of removed agent {agent}"),
            Leak::File { path } => write!(f, "old file {}", path.display()),
        }
    }
}

/// Pure: the sessions among `sessions` that carry `prefix` but belong to nobody in `owned`.
pub fn orphan_sessions<'a>(
    prefix: &str,
    owned: &BTreeSet<String>,
    sessions: impl Iterator<Item = &'a str>,
) -> Vec<String> {
    sessions
        .filter(|s| !prefix.is_empty() && s.starts_with(prefix) && !owned.contains(*s))
        .map(String::from)
        .collect()
}

/// Pure: the names in `found` (worktree folders, branch agents) that are no agent of `agents`.
pub fn removed_agents(agents: &BTreeSet<String>, found: &[String]) -> Vec<String> {
    found
        .iter()
        .filter(|a| !agents.contains(*a))
        .cloned()
        .collect()
}

/// Pure: a file last modified at `modified` is old at `now` when older than `limit`.
pub fn is_old(modified: SystemTime, now: SystemTime, limit: Duration) -> bool {
    now.duration_since(modified).is_ok_and(|age| age > limit)
}

/// Every session a config entry owns (agents of any state, services, the watchdog).
fn owned_sessions(cfg: &Config) -> BTreeSet<String> {
    cfg.agents
        .iter()
        .map(|a| a.session.clone())
        .chain(cfg.services.iter().map(|s| s.session.clone()))
        .chain([cfg.watchdog_session()])
        .collect()
}

fn old_files(dir: &Path, keep: impl Fn(&str) -> bool, limit: Duration) -> Vec<Leak> {
    let now = SystemTime::now();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Leak> = entries
        .flatten()
        .filter(|e| keep(&e.file_name().to_string_lossy()))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| is_old(m, now, limit))
        })
        .map(|e| Leak::File { path: e.path() })
        .collect();
    out.sort_by_key(|a| a.to_string());
    out
}

/// Everything this project leaked, in a stable order.
pub fn find(cfg: &Config, older_than: Duration) -> Result<Vec<Leak>> {
    let owned = owned_sessions(cfg);
    let mut leaks = Vec::new();
    for (tmux, watchdog_server) in [
        (super::tmux_for(cfg), false),
        (super::watchdog_tmux(cfg), true),
    ] {
        let fleet = tmux.fleet()?;
        for name in orphan_sessions(&cfg.session_prefix, &owned, fleet.sessions()) {
            leaks.push(Leak::Session {
                name,
                watchdog_server,
            });
        }
    }
    let agents: BTreeSet<String> = cfg.agents.iter().map(|a| a.name.clone()).collect();
    let worktrees_dir = cfg.log_dir.join("worktrees");
    let mut folders: Vec<String> = std::fs::read_dir(&worktrees_dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    folders.sort();
    for agent in removed_agents(&agents, &folders) {
        let path = workspace::worktree_path(cfg, &agent);
        leaks.push(Leak::Worktree { agent, path });
    }
    let mut branches = workspace::orch_branches(cfg);
    branches.sort();
    for agent in removed_agents(&agents, &branches) {
        leaks.push(Leak::Branch { agent });
    }
    leaks.extend(old_files(
        &cfg.state_dir,
        |n| n.starts_with("kickoff-") && n.ends_with(".txt"),
        older_than,
    ));
    leaks.extend(old_files(
        &cfg.log_dir,
        |n| n.ends_with(".scrollback.log"),
        older_than,
    ));
    Ok(leaks)
}

/// Remove one leak (a session is killed at once: nobody owns it).
pub fn reap(cfg: &Config, leak: &Leak) -> Result<()> {
    match leak {
        Leak::Session {
            name,
            watchdog_server,
        } => {
            let tmux: Tmux = if *watchdog_server {
                super::watchdog_tmux(cfg)
            } else {
                super::tmux_for(cfg)
            };
            tmux.kill_session(name)?;
        }
        Leak::Worktree { agent, .. } => {
            workspace::remove_worktree(cfg, agent)
                .map_err(|e| Error::Runtime(format!("cannot remove the worktree: {e}")))?;
        }
        Leak::Branch { agent } => {
            workspace::delete_branch(cfg, agent)
                .map_err(|e| Error::Runtime(format!("cannot delete the branch: {e}")))?;
        }
        Leak::File { path } => {
            std::fs::remove_file(path).map_err(|e| Error::io(path, "removing an old file", e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_unowned_sessions_with_the_prefix_are_orphans() {
        let owned = set(&["p-builder", "p-web", "p-watchdog"]);
        let sessions = ["p-builder", "p-old", "p-web", "other", "p-watchdog", "pp-x"];
        assert_eq!(
            orphan_sessions("p-", &owned, sessions.into_iter()),
            vec!["p-old".to_string()]
        );
        assert!(orphan_sessions("", &owned, sessions.into_iter()).is_empty());
    }

    #[test]
    fn worktrees_and_branches_of_removed_agents_only() {
        let agents = set(&["builder"]);
        let found = vec!["builder".to_string(), "gone".to_string()];
        assert_eq!(removed_agents(&agents, &found), vec!["gone".to_string()]);
    }

    #[test]
    fn a_file_is_old_only_past_the_limit() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        assert!(is_old(now - 2 * day, now, day));
        assert!(!is_old(now - day / 2, now, day));
        assert!(
            !is_old(now + day, now, day),
            "a clock skewed into the future"
        );
    }
}
