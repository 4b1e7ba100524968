//! Commits per phase, read from the handoff repo with git2: every commit on its main line
//! (origin/main, else main, else HEAD) is counted in the phase that ran when it was made.
use std::path::Path;

use git2::{Repository, Sort};

use super::model::PhaseFigures;

/// Count the repo's commits into `phases` by commit time (a phase still open ends at `end_ms`);
/// returns how many fell into some phase.
pub fn count_commits(repo: &Path, phases: &mut [PhaseFigures], end_ms: i64) -> Result<u64, String> {
    let git = Repository::open(repo).map_err(|e| {
        format!(
            "cannot open the handoff repo {}: {}",
            repo.display(),
            e.message()
        )
    })?;
    let tip = ["refs/remotes/origin/main", "refs/heads/main", "HEAD"]
        .iter()
        .find_map(|r| git.revparse_single(r).ok()?.peel_to_commit().ok())
        .ok_or_else(|| format!("the handoff repo {} has no commits", repo.display()))?;
    let fail = |e: git2::Error| {
        format!(
            "cannot walk the history of {}: {}",
            repo.display(),
            e.message()
        )
    };
    let mut walk = git.revwalk().map_err(fail)?;
    walk.set_sorting(Sort::TIME).map_err(fail)?;
    walk.push(tip.id()).map_err(fail)?;
    let mut times = Vec::new();
    for oid in walk {
        let commit = git.find_commit(oid.map_err(fail)?).map_err(fail)?;
        times.push(commit.time().seconds() * 1000);
    }
    let mut total = 0;
    for p in phases.iter_mut() {
        // Commit times have whole seconds: a phase owns the second it started in.
        let floor = |ms: i64| ms - ms.rem_euclid(1000);
        let start = floor(p.start_ms);
        let end = p.end_ms.map_or(end_ms + 1, floor);
        let n = times.iter().filter(|t| **t >= start && **t < end).count() as u64;
        p.commits = Some(n);
        total += n;
    }
    Ok(total)
}
