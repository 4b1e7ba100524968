//! Context rotation state and rules: `<state_dir>/rotation/<agent>.json` (the handoff asked for,
//! failures, compactions seen), the request and its marker, and the pure decisions around them.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Agent, Config, Rotation};
use crate::hooks::HookRecord;

/// A `PreCompact` older than this without its `SessionStart` no longer counts as compacting
/// (the CLI died mid-compaction: the session is not protected forever).
pub const COMPACT_MAX: Duration = Duration::from_secs(15 * 60);
/// Checks of a finished note over a dirty or unpushed tree before the handoff is failed early.
pub const DIRTY_CHECKS: u32 = 3;

/// The handoff orch asked for and is waiting on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The request ping's id (its `[orch:ping <id>]` and the note's marker).
    pub id: String,
    /// When it was typed (Unix ms); the note must be newer.
    pub requested_at: i64,
    /// `context`, `iterations` or `compaction`.
    pub reason: String,
    /// The pane pid it was typed into (another pid: the session was restarted meanwhile).
    pub pid: Option<u32>,
    /// The CLI session it was typed into (its id when known, else `pane:<pid>`).
    pub old_session: String,
    /// Consecutive checks that found the note done but the tree dirty or unpushed.
    #[serde(default)]
    pub dirty_checks: u32,
}

/// What orch remembers about one agent's rotations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RotationState {
    pub pending: Option<Pending>,
    /// After a failed handoff, no new request before this time (Unix ms).
    pub retry_after: Option<i64>,
    /// The newest `SessionStart` (source `compact`) already dealt with (Unix ms).
    pub compaction_seen: Option<i64>,
    /// A compaction orch did not ask for happened: rotate at the next idle moment.
    pub after_compaction: bool,
    pub rotations: u32,
    /// Since when (Unix ms) the new session of a rotation is starting: pings wait until it is
    /// idle once (or `handoff_timeout` passed), so none is typed into its kickoff.
    pub settling_since: Option<i64>,
}

fn state_file(cfg: &Config, agent: &str) -> PathBuf {
    cfg.state_dir.join("rotation").join(format!("{agent}.json"))
}

/// The agent's rotation state (default when none; a corrupt file is reported and read afresh).
pub fn load(cfg: &Config, agent: &str) -> RotationState {
    match crate::state::load_json(&state_file(cfg, agent)) {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("{e}; agent {agent}'s rotation state starts afresh");
            RotationState::default()
        }
    }
}

/// Save atomically (temp + rename): a watchdog restarted mid-rotation reads it back.
pub fn save(cfg: &Config, agent: &str, st: &RotationState) {
    let path = state_file(cfg, agent);
    let saved = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(|e| e.to_string())
        .and_then(|()| crate::state::save_json(&path, st).map_err(|e| e.to_string()));
    if let Err(e) = saved {
        tracing::error!("cannot save {}: {e}", path.display());
    }
}

/// True while a handoff is asked for, or its new session is still starting: the outbox holds
/// other pings meanwhile.
pub fn in_handoff(cfg: &Config, agent: &str) -> bool {
    state_file(cfg, agent).exists() && {
        let st = load(cfg, agent);
        st.pending.is_some() || st.settling_since.is_some()
    }
}

/// Whether `agent`'s account pool is held by a limit (no rotation then: it would be a turn).
pub fn pool_held(cfg: &Config, agent: &Agent) -> bool {
    super::pool_hold::holding(cfg, &agent.name).is_some()
}

/// Whether the ping `id` was acknowledged: a hook record carries its id (the one place to
/// wire the outbox's `ping_acked` in). Pure.
pub fn ping_acked(records: &[HookRecord], id: &str) -> bool {
    records.iter().any(|r| r.ping_id.as_deref() == Some(id))
}

/// The handoff file of `agent`, relative to its dir (`{agent}` filled in). Pure.
pub fn handoff_file(rot: &Rotation, agent: &str) -> String {
    rot.handoff_file.replace("{agent}", agent)
}

/// The marker line a note must end with. Pure.
pub fn marker(id: &str) -> String {
    format!("[orch:handoff {id}]")
}

/// The request typed into the agent. Pure.
pub fn request_text(file: &str, id: &str) -> String {
    format!(
        "orch: your context is being rotated. Commit and push all your work; then write the handoff note `{file}` for your successor (what is done, what is next, open findings), ending with the line {marker}; commit and push it too, then stop. [orch:ping {id}]",
        marker = marker(id)
    )
}

/// The line added to the new session's kickoff. Pure.
pub fn kickoff_note(file: &str) -> String {
    format!("read {file} first: it is the handoff note of your previous session.")
}

/// The one continuation ping after a compaction orch did not ask for. Pure.
pub fn continuation_text(id: &str) -> String {
    format!(
        "orch: your conversation was compacted. Continue your current task where you left off. [orch:ping {id}]"
    )
}

/// True when the note's last non-empty line holds the marker of `id`. Pure.
pub fn note_has_marker(text: &str, id: &str) -> bool {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.contains(&marker(id)))
}

/// Why a rotation is due now, if it is: `compaction` (one orch did not ask for), `context`
/// (the fill reached `at_context_pct`) or `iterations`. Pure.
pub fn due(
    rot: &Rotation,
    context_pct: Option<f64>,
    iterations: u32,
    after_compaction: bool,
) -> Option<&'static str> {
    if after_compaction {
        return Some("compaction");
    }
    if let (Some(at), Some(pct)) = (rot.at_context_pct, context_pct)
        && pct >= at
    {
        return Some("context");
    }
    rot.every_iterations
        .filter(|n| iterations >= *n)
        .map(|_| "iterations")
}

/// True between a `PreCompact` and the next `SessionStart` with source `compact` (records
/// oldest first), unless that `PreCompact` is older than [`COMPACT_MAX`]. Pure.
pub fn compacting(records: &[HookRecord], now_s: i64) -> bool {
    let mut open: Option<i64> = None;
    for r in records {
        match (r.event.as_str(), r.source.as_deref()) {
            ("PreCompact", _) => open = r.epoch().or(Some(now_s)),
            ("SessionStart", Some("compact")) => open = None,
            _ => {}
        }
    }
    open.is_some_and(|t| now_s - t < COMPACT_MAX.as_secs() as i64)
}

/// The newest finished compaction (`SessionStart`, source `compact`) at or after `since_ms`,
/// in Unix ms. Pure.
pub fn last_compaction(records: &[HookRecord], since_ms: i64) -> Option<i64> {
    records
        .iter()
        .filter(|r| r.event == "SessionStart" && r.source.as_deref() == Some("compact"))
        .filter_map(|r| {
            chrono::DateTime::parse_from_rfc3339(&r.ts)
                .ok()
                .map(|t| t.timestamp_millis())
        })
        .filter(|t| *t >= since_ms)
        .max()
}

/// The CLI session id the hooks or the statusline last reported, if any.
pub fn cli_session(records: &[HookRecord]) -> Option<String> {
    records.iter().rev().find_map(|r| r.session_id.clone())
}

/// What a working tree looks like for a handoff.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree {
    /// Changed or untracked paths (orch's own `.claude/` files and workspace files aside).
    pub dirty: Vec<String>,
    /// Commits on HEAD that no remote branch has.
    pub unpushed: u32,
}

impl Tree {
    pub fn clean_and_pushed(&self) -> bool {
        self.dirty.is_empty() && self.unpushed == 0
    }

    /// One sentence on what is wrong. Pure.
    pub fn problem(&self) -> String {
        let mut parts = Vec::new();
        if !self.dirty.is_empty() {
            let shown: Vec<&str> = self.dirty.iter().take(5).map(String::as_str).collect();
            parts.push(format!(
                "{} uncommitted path(s) ({})",
                self.dirty.len(),
                shown.join(", ")
            ));
        }
        if self.unpushed > 0 {
            parts.push(format!("{} unpushed commit(s)", self.unpushed));
        }
        parts.join(" and ")
    }
}

/// The paths of `git status --porcelain` output, without `ignored` prefixes. Pure.
pub fn dirty_paths(porcelain: &str, ignored: &[String]) -> Vec<String> {
    porcelain
        .lines()
        .filter(|l| l.len() > 3)
        .map(|l| l[3..].trim().trim_matches('"').to_string())
        .filter(|p| !p.starts_with(".claude/") && !ignored.iter().any(|i| p == i))
        .collect()
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git in {}: {e}", dir.display()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "git {} timed out in {}",
                    args.join(" "),
                    dir.display()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Look at the agent's working tree: uncommitted paths and unpushed commits (no fetch: the
/// remote-tracking refs a push updates are enough).
pub fn tree_of(dir: &Path, ignored: &[String]) -> Result<Tree, String> {
    let porcelain = git(dir, &["status", "--porcelain"])?;
    let count = git(dir, &["rev-list", "--count", "HEAD", "--not", "--remotes"])?;
    Ok(Tree {
        dirty: dirty_paths(&porcelain, ignored),
        unpushed: count.trim().parse().unwrap_or(0),
    })
}

/// Everything the pending-handoff decision reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The agent runs the process the request was typed into.
    pub same_process: bool,
    pub compacting: bool,
    /// The agent's screen is not working.
    pub idle: bool,
    /// The note exists, is newer than the request and ends with its marker.
    pub note_ok: bool,
    /// The tree, when looked at (only once the note is done).
    pub tree: Option<Tree>,
    pub elapsed: Duration,
    pub timeout: Duration,
    /// Dirty checks so far (see [`DIRTY_CHECKS`]).
    pub dirty_checks: u32,
}

/// What to do with a pending handoff.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Wait,
    /// The note is there and the tree is clean and pushed: rotate now.
    Rotate,
    /// The note is done but the tree is not clean: one more dirty check.
    Dirty,
    /// Give up, say why; the old session keeps running.
    Fail(String),
    /// Something else restarted the agent meanwhile (a phase advance, healing): its new
    /// session is fresh already, nothing is left to hand off.
    Abandon,
}

/// The pending-handoff decision. A compacting agent is never stopped; the timeout fails the
/// handoff (never stops the agent). Pure.
pub fn decide(c: &Check) -> Step {
    if !c.same_process {
        return Step::Abandon;
    }
    let timed_out = c.elapsed >= c.timeout;
    let tree_ok = c.tree.as_ref().is_some_and(Tree::clean_and_pushed);
    if c.note_ok && tree_ok && c.idle && !c.compacting {
        return Step::Rotate;
    }
    let tree_problem = c
        .tree
        .as_ref()
        .filter(|t| !t.clean_and_pushed())
        .map(Tree::problem);
    if let Some(problem) = &tree_problem
        && c.note_ok
        && c.idle
        && !c.compacting
    {
        if c.dirty_checks + 1 >= DIRTY_CHECKS {
            return Step::Fail(format!(
                "the handoff note is written but the tree has {problem}"
            ));
        }
        return Step::Dirty;
    }
    if !timed_out {
        return Step::Wait;
    }
    let secs = c.timeout.as_secs();
    Step::Fail(match (c.note_ok, tree_problem) {
        (false, _) => format!("no handoff note with its marker line within {secs}s"),
        (true, Some(p)) => format!("the tree has {p} after {secs}s"),
        (true, None) if c.compacting => format!("still compacting after {secs}s"),
        (true, None) => format!("the agent was still working after {secs}s"),
    })
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
