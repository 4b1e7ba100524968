//! The light tick's capture cache: a pane with no output since its last capture shows the same
//! screen, so its text is reused instead of spawning another `tmux capture-pane` every tick.
use std::collections::HashMap;

use crate::tmux::{PaneInfo, Tmux, TmuxError};

/// A cached capture is retaken at least this often (seconds), whatever tmux says.
pub const MAX_AGE_SECS: i64 = 600;

/// Pure: the age (seconds) after which `pane_id`'s capture is retaken: between half of
/// [`MAX_AGE_SECS`] and all of it, fixed per pane, so that the panes captured together at
/// start are not all retaken in the same tick (100 idle panes cost 100 calls at once).
pub fn max_age(pane_id: &str) -> i64 {
    let spread = MAX_AGE_SECS / 2;
    let h = pane_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    MAX_AGE_SECS - (h % spread as u64) as i64
}

/// One pane's last capture.
#[derive(Debug, Clone)]
pub struct CachedPane {
    pub pane_id: String,
    /// The window's last output (tmux `window_activity`) seen before the capture.
    pub activity: i64,
    /// When the capture was taken (Unix seconds).
    pub captured_at: i64,
    pub text: String,
}

/// True when `cached` still shows what the pane `now_pane` shows: the same pane, no output
/// since, and the capture taken in a later second than that output (tmux counts activity in
/// whole seconds, so output in the capture's own second could be missing from it). Pure.
pub fn still_fresh(cached: &CachedPane, now_pane: &PaneInfo, now: i64) -> bool {
    now_pane.pane_id == cached.pane_id
        && now_pane.activity == Some(cached.activity)
        && cached.activity < cached.captured_at
        && now - cached.captured_at < max_age(&cached.pane_id)
}

/// The pane text of `pane` (`rows` bottom rows): from `cache` when still fresh, else captured
/// (and cached when tmux reports the window's activity).
pub fn capture_cached(
    cache: &mut HashMap<String, CachedPane>,
    tmux: &Tmux,
    pane: &PaneInfo,
    rows: usize,
) -> Result<String, TmuxError> {
    let now = chrono::Utc::now().timestamp();
    if let Some(c) = cache
        .get(&pane.session)
        .filter(|c| still_fresh(c, pane, now))
    {
        return Ok(c.text.clone());
    }
    let text = tmux.capture(&pane.session, rows)?;
    match pane.activity {
        Some(activity) => {
            cache.insert(
                pane.session.clone(),
                CachedPane {
                    pane_id: pane.pane_id.clone(),
                    activity,
                    captured_at: now,
                    text: text.clone(),
                },
            );
        }
        None => {
            cache.remove(&pane.session);
        }
    }
    Ok(text)
}

/// This tick's screens of the panes on hosts that `cache` cannot serve, fetched in one call
/// per host (instead of one per pane); empty when fewer than two would be fetched there.
pub fn prefetch_remote(
    cache: &HashMap<String, CachedPane>,
    tmux: &Tmux,
    panes: &[&PaneInfo],
    rows: usize,
) -> HashMap<String, String> {
    let now = chrono::Utc::now().timestamp();
    let stale: Vec<&str> = panes
        .iter()
        .filter(|p| tmux.host_of(&p.session).is_some())
        .filter(|p| {
            !cache
                .get(&p.session)
                .is_some_and(|c| still_fresh(c, p, now))
        })
        .map(|p| p.session.as_str())
        .collect();
    if stale.len() < 2 {
        return HashMap::new();
    }
    tmux.capture_many(&stale, rows)
}

/// [`capture_cached`], taking this tick's prefetched screen when there is one (and caching it).
pub fn capture_with(
    cache: &mut HashMap<String, CachedPane>,
    prefetched: &HashMap<String, String>,
    tmux: &Tmux,
    pane: &PaneInfo,
    rows: usize,
) -> Result<String, TmuxError> {
    let Some(text) = prefetched.get(&pane.session) else {
        return capture_cached(cache, tmux, pane, rows);
    };
    if let Some(activity) = pane.activity {
        cache.insert(
            pane.session.clone(),
            CachedPane {
                pane_id: pane.pane_id.clone(),
                activity,
                captured_at: chrono::Utc::now().timestamp(),
                text: text.clone(),
            },
        );
    }
    Ok(text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pane(id: &str, activity: Option<i64>) -> PaneInfo {
        PaneInfo {
            session: "s".into(),
            pane_id: id.into(),
            pid: Some(1),
            command: "claude".into(),
            dead: false,
            dead_status: None,
            activity,
            window_index: 0,
            pane_index: 0,
        }
    }

    fn cached(activity: i64, captured_at: i64) -> CachedPane {
        CachedPane {
            pane_id: "%1".into(),
            activity,
            captured_at,
            text: "screen".into(),
        }
    }

    #[test]
    fn a_quiet_pane_reuses_its_capture() {
        assert!(still_fresh(&cached(100, 105), &pane("%1", Some(100)), 110));
    }

    #[test]
    fn output_since_the_capture_means_a_new_capture() {
        assert!(!still_fresh(&cached(100, 105), &pane("%1", Some(106)), 110));
    }

    #[test]
    fn a_capture_in_the_same_second_as_the_output_is_not_trusted() {
        assert!(!still_fresh(&cached(105, 105), &pane("%1", Some(105)), 110));
    }

    #[test]
    fn a_new_pane_or_an_old_capture_means_a_new_capture() {
        assert!(!still_fresh(&cached(100, 105), &pane("%2", Some(100)), 110));
        assert!(!still_fresh(&cached(100, 105), &pane("%1", None), 110));
        assert!(!still_fresh(
            &cached(100, 105),
            &pane("%1", Some(100)),
            105 + MAX_AGE_SECS
        ));
    }

    #[test]
    fn panes_are_retaken_at_spread_out_ages() {
        let ages: std::collections::BTreeSet<i64> =
            (0..100).map(|i| max_age(&format!("%{i}"))).collect();
        assert!(
            ages.iter()
                .all(|a| (MAX_AGE_SECS / 2..=MAX_AGE_SECS).contains(a))
        );
        assert!(ages.len() > 50, "100 panes share only {} ages", ages.len());
    }
}
