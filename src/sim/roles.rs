//! What each simulated role does in its clone: the builder builds, claims, fixes and marks DONE;
//! the adversary reviews claims; a task records that it ran. Every decision is re-derived from git.
use std::path::{Path, PathBuf};

use super::Identity;
use super::git::{Checkout, SimGitError};
use super::screen::Screen;

/// A step that went wrong; the sim prints it and carries on (only a broken screen is fatal).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Git(#[from] SimGitError),
    #[error("could not {doing} {path:?}: {source}")]
    File {
        path: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Screen(#[from] crate::Error),
}

type StepResult = Result<(), StepError>;

fn read_opt(path: &Path) -> Result<Option<String>, StepError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StepError::File {
            path: path.to_path_buf(),
            doing: "read",
            source,
        }),
    }
}

fn write(path: &Path, text: &str) -> StepResult {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StepError::File {
            path: parent.to_path_buf(),
            doing: "create the folder",
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| StepError::File {
        path: path.to_path_buf(),
        doing: "write",
        source,
    })
}

/// True when `subject` is a `<verb>: <phase>` commit (`claim: p1`, `claim: p1 (fix)`), not `p10`.
pub fn subject_is(subject: &str, verb: &str, phase: &str) -> bool {
    let head = format!("{verb}: {phase}");
    subject == head || subject.starts_with(&format!("{head} "))
}

fn count(subjects: &[String], verb: &str, phase: &str) -> usize {
    subjects
        .iter()
        .filter(|s| subject_is(s, verb, phase))
        .count()
}

/// The last `verdict:` line of a review file, lower-cased (`ok`, `finding`).
pub fn latest_verdict(review: &str) -> Option<String> {
    review
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("verdict:"))
        .map(|v| v.trim().to_lowercase())
}

/// True when the STATUS text already has a `## DONE` line.
pub fn status_is_done(status: &str) -> bool {
    status
        .lines()
        .any(|l| l.trim_start().starts_with("## DONE"))
}

fn work_path(id: &Identity) -> String {
    format!("work/{}.md", id.phase)
}

fn review_path(id: &Identity) -> String {
    format!("REVIEW-{}.md", id.phase)
}

/// Pull and return (claims, reviews) counted on origin/main for this phase.
fn sync_counts(
    scr: &mut Screen,
    clone: &Checkout,
    id: &Identity,
) -> Result<(usize, usize), StepError> {
    scr.say("● Pulling origin/main")?;
    clone.pull()?;
    let subjects = clone.remote_subjects()?;
    Ok((
        count(&subjects, "claim", &id.phase),
        count(&subjects, "review", &id.phase),
    ))
}

fn push(scr: &mut Screen, clone: &Checkout, subject: &str) -> StepResult {
    let attempts = clone.push()?;
    let note = if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    };
    scr.say(&format!("● Pushed `{subject}` to origin/main{note}"))?;
    Ok(())
}

/// The builder: build and claim the phase, fix a finding, or mark the phase DONE once approved.
pub fn builder_sync(scr: &mut Screen, clone: &Checkout, id: &Identity) -> StepResult {
    let (claims, reviews) = sync_counts(scr, clone, id)?;
    if claims == 0 {
        return build_and_claim(scr, clone, id);
    }
    let review_file = review_path(id);
    scr.say(&format!("● Reading {review_file}"))?;
    let review = read_opt(&clone.dir().join(&review_file))?.unwrap_or_default();
    match latest_verdict(&review).as_deref() {
        None => scr.say(&format!(
            "No verdict on {} yet; waiting for the adversary.",
            id.phase
        ))?,
        Some("ok") => mark_done(scr, clone, id)?,
        Some("finding") if claims > reviews => scr.say(&format!(
            "The finding on {} is already answered by a new claim; waiting for its review.",
            id.phase
        ))?,
        Some("finding") => fix_and_claim(scr, clone, id, &review)?,
        Some(other) => scr.say(&format!(
            "Unknown verdict `{other}` in {review_file}; waiting."
        ))?,
    }
    Ok(())
}

fn build_and_claim(scr: &mut Screen, clone: &Checkout, id: &Identity) -> StepResult {
    let work = work_path(id);
    let text = format!(
        "# Phase {phase}: work notes\n\n\
         Plan: {plan}\n\
         Built by {agent} (orch-sim) at {now}.\n\n\
         - read the plan and listed its gates\n\
         - implemented every gate of phase {phase}\n\
         - ran the checks; all pass\n",
        phase = id.phase,
        plan = id.plan.as_deref().unwrap_or("(no plan given)"),
        agent = id.agent,
        now = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    write(&clone.dir().join(&work), &text)?;
    scr.say(&format!("● Wrote {work} ({} lines)", text.lines().count()))?;
    let hash = clone.commit(&[&work], &format!("build: {} work notes", id.phase))?;
    scr.say(&format!(
        "● Committed {hash} build: {} work notes",
        id.phase
    ))?;
    scr.pause();
    let claimed = format!(
        "{text}\n## Claim\nPhase {} is complete and ready for review.\n",
        id.phase
    );
    write(&clone.dir().join(&work), &claimed)?;
    let subject = format!("claim: {}", id.phase);
    let hash = clone.commit(&[&work], &subject)?;
    scr.say(&format!("● Committed {hash} {subject}"))?;
    push(scr, clone, &subject)
}

fn fix_and_claim(scr: &mut Screen, clone: &Checkout, id: &Identity, review: &str) -> StepResult {
    let finding = review
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("- "))
        .map(|l| l.trim_start().trim_start_matches("- ").to_string())
        .unwrap_or_else(|| "the adversary's finding".to_string());
    scr.say(&format!("● Finding to fix: {finding}"))?;
    let work = work_path(id);
    let path = clone.dir().join(&work);
    let mut text = read_opt(&path)?.unwrap_or_default();
    text.push_str(&format!(
        "\n## Fix\nAddressed: {finding}\n- added the missing checks and re-ran them; all pass\n"
    ));
    write(&path, &text)?;
    let fix = format!("fix: {} address the review finding", id.phase);
    let hash = clone.commit(&[&work], &fix)?;
    scr.say(&format!("● Committed {hash} {fix}"))?;
    scr.pause();
    text.push_str(&format!("\nPhase {} re-claimed after the fix.\n", id.phase));
    write(&path, &text)?;
    let subject = format!("claim: {} (fix)", id.phase);
    let hash = clone.commit(&[&work], &subject)?;
    scr.say(&format!("● Committed {hash} {subject}"))?;
    push(scr, clone, &subject)
}

fn mark_done(scr: &mut Screen, clone: &Checkout, id: &Identity) -> StepResult {
    let path = clone.dir().join(&id.status);
    if read_opt(&path)?.is_some_and(|s| status_is_done(&s)) {
        scr.say(&format!("{} already says DONE; nothing to do.", id.status))?;
        return Ok(());
    }
    let text = format!(
        "# Phase {phase} status\n\n## DONE\nPhase {phase} built and approved by the adversary.\n",
        phase = id.phase
    );
    write(&path, &text)?;
    scr.say(&format!("● Wrote {} (## DONE)", id.status))?;
    let subject = format!("status: {} done", id.phase);
    let hash = clone.commit(&[&id.status], &subject)?;
    scr.say(&format!("● Committed {hash} {subject}"))?;
    push(scr, clone, &subject)
}

/// The adversary: review the newest unreviewed claim (a finding first when `find` is set).
pub fn adversary_sync(scr: &mut Screen, clone: &Checkout, id: &Identity, find: bool) -> StepResult {
    let (claims, reviews) = sync_counts(scr, clone, id)?;
    if claims == 0 {
        return Ok(scr.say(&format!("No claim on {} yet; waiting.", id.phase))?);
    }
    if claims <= reviews {
        return Ok(scr.say(&format!(
            "Every claim on {} is already reviewed; waiting.",
            id.phase
        ))?);
    }
    let work = work_path(id);
    scr.say(&format!("● Reviewing {work}"))?;
    let work_text = read_opt(&clone.dir().join(&work))?;
    scr.pause();
    let review_file = review_path(id);
    let path = clone.dir().join(&review_file);
    let mut review =
        read_opt(&path)?.unwrap_or_else(|| format!("# Review of phase {}\n", id.phase));
    let found_before = review.lines().any(|l| l.trim() == "verdict: finding");
    let (verdict, note) = match &work_text {
        None => ("finding", format!("{work} is missing from origin/main")),
        Some(_) if find && !found_before => (
            "finding",
            format!("{work} does not say how the gates were checked"),
        ),
        Some(text) => (
            "ok",
            format!("{work} ({} lines) covers the plan", text.lines().count()),
        ),
    };
    review.push_str(&format!(
        "\n## Review {n} (claim {claims})\nverdict: {verdict}\n- {note}\n",
        n = reviews + 1
    ));
    write(&path, &review)?;
    scr.say(&format!("● Wrote {review_file}: verdict {verdict}"))?;
    let subject = format!("review: {} {verdict}", id.phase);
    let hash = clone.commit(&[&review_file], &subject)?;
    scr.say(&format!("● Committed {hash} {subject}"))?;
    push(scr, clone, &subject)
}

/// A task: append `orch-sim task <agent> done <RFC3339>` to `<log_dir>/task-<agent>.done`.
pub fn task_done(scr: &mut Screen, id: &Identity) -> StepResult {
    let line = format!(
        "orch-sim task {} done {}",
        id.agent,
        chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let dir = id.log_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let path = dir.join(format!("task-{}.done", id.agent));
    let mut text = read_opt(&path)?.unwrap_or_default();
    text.push_str(&line);
    text.push('\n');
    write(&path, &text)?;
    scr.say(&line)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_their_phase_only() {
        assert!(subject_is("claim: p1", "claim", "p1"));
        assert!(subject_is("claim: p1 (fix)", "claim", "p1"));
        assert!(!subject_is("claim: p10", "claim", "p1"));
        assert!(!subject_is("review: p1 ok", "claim", "p1"));
    }

    #[test]
    fn latest_verdict_is_the_last_one() {
        let text = "# R\n## Review 1\nverdict: finding\n- x\n## Review 2\nverdict: OK\n- y\n";
        assert_eq!(latest_verdict(text).as_deref(), Some("ok"));
        assert_eq!(latest_verdict("# nothing yet\n"), None);
    }

    #[test]
    fn done_needs_the_marker_line() {
        assert!(status_is_done("# s\n\n## DONE\nbody\n"));
        assert!(!status_is_done("# s\nnot done\n"));
    }
}
