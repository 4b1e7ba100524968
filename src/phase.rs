//! The phase machine: which phase is current (the phase-idx file), whether its STATUS file says
//! DONE, and the pure decision of what a heavy tick does about it.
use std::path::PathBuf;

use crate::config::{Config, Phase};
use crate::{Error, Result, handoff, state};

/// The current phase index, clamped to the configured phases (missing or garbage file = 0).
pub fn current_index(cfg: &Config) -> usize {
    let n = cfg.phases().len();
    state::read_index(&cfg.phase_index_file()).min(n.saturating_sub(1))
}

/// The current phase, if the config has phases.
pub fn current(cfg: &Config) -> Option<&Phase> {
    cfg.phases().get(current_index(cfg))
}

/// Move the phase index (bounds-checked). Returns the phase now current.
pub fn set_index(cfg: &Config, index: usize) -> Result<&Phase> {
    let phases = cfg.phases();
    let Some(phase) = phases.get(index) else {
        return Err(Error::Usage(match phases.len() {
            0 => "the config has no [loop].phases".to_string(),
            n => format!(
                "phase {index} does not exist: the config has {n} phases, numbered 0 to {}",
                n - 1
            ),
        }));
    };
    let file = cfg.phase_index_file();
    std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| Error::io(&cfg.state_dir, "creating the state folder", e))?;
    state::write_index(&file, index).map_err(|e| Error::io(&file, "writing the phase index", e))?;
    Ok(phase)
}

/// The file naming the phase the watchdog itself last advanced to (`state/phase-advanced-by-watchdog`):
/// loops found on an older phase after that are the rest of its own advance (it was killed
/// midway), not a human's move. A human move (`orch phase next/set`) removes it.
pub fn watchdog_advance_file(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("phase-advanced-by-watchdog")
}

/// Records that the watchdog advanced to `phase_id` (see [`watchdog_advance_file`]).
pub fn mark_watchdog_advance(cfg: &Config, phase_id: &str) {
    if let Err(e) = crate::state::write_atomic(&watchdog_advance_file(cfg), phase_id.as_bytes()) {
        tracing::warn!("cannot record the phase advance: {e}");
    }
}

/// True when the watchdog's own last advance was to `phase_id`.
pub fn advanced_by_watchdog(cfg: &Config, phase_id: &str) -> bool {
    std::fs::read_to_string(watchdog_advance_file(cfg)).is_ok_and(|s| s.trim() == phase_id)
}

/// The repo whose origin/main is watched and whose working tree holds the STATUS files.
pub fn handoff_repo(cfg: &Config) -> PathBuf {
    cfg.loop_
        .as_ref()
        .and_then(|l| l.handoff.as_ref())
        .map_or_else(|| cfg.project_dir.clone(), |h| h.repo.clone())
}

fn state_subdir(cfg: &Config) -> &str {
    cfg.loop_
        .as_ref()
        .and_then(|l| l.handoff.as_ref())
        .map_or("machine-docs", |h| h.state_subdir.as_str())
}

/// The texts of a phase's STATUS file: in the working tree (`<repo>/<state_subdir>/<status>`,
/// else `<repo>/<status>`), then the same paths at origin/main (agents push from their own
/// clones, and the watchdog only fetches: its working tree may be stale).
pub fn status_texts(cfg: &Config, phase: &Phase) -> Vec<String> {
    let repo = handoff_repo(cfg);
    let sub = state_subdir(cfg);
    let mut texts = Vec::new();
    if let Some(text) = [repo.join(sub).join(&phase.status), repo.join(&phase.status)]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
    {
        texts.push(text);
    }
    if let Ok(Some(bytes)) = handoff::show_pushed(&repo, sub, &phase.status) {
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    texts
}

/// True when the phase's STATUS file (working tree or origin/main) has the done marker
/// followed by a real body.
pub fn is_done(cfg: &Config, phase: &Phase) -> bool {
    let marker = cfg
        .loop_
        .as_ref()
        .map_or("## DONE", |l| l.done_marker.as_str());
    status_texts(cfg, phase)
        .iter()
        .any(|t| crate::detect::done_in(t, marker))
}

/// What a heavy tick does about the phase sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The current phase is not done (or auto-advance is off).
    Stay,
    /// Stop the loops, move to phase `to`, start them again.
    Advance { from: usize, to: usize },
    /// The last phase is done: stop the loops, mark the sequence complete, run on_complete.
    Complete,
    /// Already marked complete: nothing to do.
    AlreadyComplete,
}

/// The pure transition rule.
pub fn next_step(index: usize, count: usize, done: bool, marked_complete: bool) -> Step {
    match (done, index + 1 < count) {
        (false, _) => Step::Stay,
        (true, true) => Step::Advance {
            from: index,
            to: index + 1,
        },
        (true, false) if marked_complete => Step::AlreadyComplete,
        (true, false) => Step::Complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_rule() {
        assert_eq!(next_step(0, 2, false, false), Step::Stay);
        assert_eq!(
            next_step(0, 2, true, false),
            Step::Advance { from: 0, to: 1 }
        );
        assert_eq!(next_step(1, 2, true, false), Step::Complete);
        assert_eq!(next_step(1, 2, true, true), Step::AlreadyComplete);
        // A phase appended after completion: the done last phase now advances.
        assert_eq!(
            next_step(1, 3, true, true),
            Step::Advance { from: 1, to: 2 }
        );
    }
}
