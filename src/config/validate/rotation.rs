//! The `rotation` key of an agent (context rotation with a handoff note), merged key by key
//! from `[defaults]` and checked: a percentage in 1..=100, at least one trigger, a relative file.
use std::path::{Component, Path};
use std::time::Duration;

use super::super::model::{DEFAULT_HANDOFF_FILE, Rotation};
use super::super::raw::{RawAgentKeys, RawRotation};
use super::super::schema::Seg;
use super::Checker;

/// The default `handoff_timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

pub(super) fn build_rotation(
    c: &mut Checker<'_>,
    i: usize,
    who: &str,
    k: &RawAgentKeys,
    d: &RawAgentKeys,
) -> Option<Rotation> {
    let (own, def) = (k.rotation.as_ref(), d.rotation.as_ref());
    if own.is_none() && def.is_none() {
        return None;
    }
    let at = [Seg::Key("agent"), Seg::Index(i), Seg::Key("rotation")];
    let every_iterations = pick(own, def, |r| r.every_iterations);
    let at_context_pct = pick(own, def, |r| r.at_context_pct);
    let handoff_file: String = own
        .and_then(|r| r.handoff_file.clone())
        .or_else(|| def.and_then(|r| r.handoff_file.clone()))
        .unwrap_or_else(|| DEFAULT_HANDOFF_FILE.to_string());
    let handoff_timeout = pick(own, def, |r| r.handoff_timeout).map_or(DEFAULT_TIMEOUT, |s| s.0);
    if every_iterations == Some(0) {
        c.error(
            &at,
            format!("{who}: rotation.every_iterations must be 1 or more"),
        );
    }
    if let Some(p) = at_context_pct.filter(|p| !(*p > 0.0 && *p <= 100.0)) {
        c.error(
            &at,
            format!("{who}: rotation.at_context_pct must be a percentage in 1..100, not {p}"),
        );
    }
    if every_iterations.is_none() && at_context_pct.is_none() {
        c.warn(
            &at,
            format!(
                "{who}: rotation has neither every_iterations nor at_context_pct; it rotates only after a compaction"
            ),
        );
    }
    if !relative_inside(&handoff_file) {
        c.error(
            &at,
            format!(
                "{who}: rotation.handoff_file {handoff_file:?} must be a relative path inside the agent's dir"
            ),
        );
    }
    if handoff_timeout.is_zero() {
        c.error(
            &at,
            format!("{who}: rotation.handoff_timeout must be longer than 0"),
        );
    }
    Some(Rotation {
        every_iterations,
        at_context_pct,
        handoff_file,
        handoff_timeout,
    })
}

/// The agent's own value of a rotation key, else the default's.
fn pick<T>(
    own: Option<&RawRotation>,
    def: Option<&RawRotation>,
    f: impl Fn(&RawRotation) -> Option<T>,
) -> Option<T> {
    own.and_then(&f).or_else(|| def.and_then(&f))
}

/// A non-empty relative path without `..`. Pure.
fn relative_inside(path: &str) -> bool {
    let p = Path::new(path);
    !path.trim().is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::relative_inside;

    #[test]
    fn a_handoff_file_stays_inside_the_agent_dir() {
        assert!(relative_inside("machine-docs/HANDOFF-{agent}.md"));
        assert!(!relative_inside("/etc/passwd"));
        assert!(!relative_inside("../x.md"));
        assert!(!relative_inside(""));
    }
}
