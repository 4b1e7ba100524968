//! The rotation pass: context samples, the handoff request at an idle moment, its check and the
//! fresh session on the note; a compaction orch did not ask for gets one continuation ping.
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::Watchdog;
use super::heal::pane_active;
use super::stall::Care;
use crate::config::{Agent, Kind};
use crate::fleet::records::now_ms;
use crate::fleet::rotation::{self as rot, Check, Pending, RotationState, Step};
use crate::hooks::{self, HookActivity, HookRecord};
use crate::tmux::Fleet;
use crate::{context, events, fleet, phase};

/// A `context_sample` is logged when the fill moved by this many points since the last one.
pub const SAMPLE_STEP: f64 = 5.0;

/// What the pass carries from tick to tick (rebuilt from the event log after a restart).
#[derive(Debug, Default)]
pub struct Memory {
    /// How far the event log was read for handled pings.
    offset: u64,
    /// When each agent was typed a claim/review ping (Unix ms), by agent.
    handled: HashMap<String, Vec<i64>>,
    /// The last sampled fill, by agent.
    sampled: HashMap<String, f64>,
    /// How many looks in a row found each agent idle.
    idle_looks: HashMap<String, u32>,
}

/// Looks in a row an agent must be idle before it is asked or stopped (a ping typed earlier
/// in the same tick may not show on its screen yet).
pub const IDLE_LOOKS: u32 = 2;

/// Handled pings of an agent's current session: claim, review and redelivered ones typed
/// into it since it started. Pure.
pub fn iterations(times: &[i64], started_ms: Option<i64>) -> u32 {
    let since = started_ms.unwrap_or(0);
    times.iter().filter(|t| **t >= since).count() as u32
}

/// Whether a fill is worth a `context_sample` event after `last`. Pure.
pub fn worth_sampling(last: Option<f64>, pct: f64) -> bool {
    last.is_none_or(|l| (pct - l).abs() >= SAMPLE_STEP)
}

fn ms_of(e: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(e["ts"].as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl Watchdog {
    /// Read new events for the claim/review pings typed into each agent; returns the agents
    /// typed into since the last look (their screen may not show it yet).
    fn read_handled_pings(&mut self) -> BTreeSet<String> {
        let (new, offset) =
            crate::notify::tail::read_from(&self.cfg.events_file(), self.rotation.offset);
        self.rotation.offset = offset;
        let mut typed = BTreeSet::new();
        for e in new {
            if e["event"] == events::PING
                && let Some(agent) = e["agent"].as_str()
            {
                typed.insert(agent.to_string());
            }
            let handoff = e["event"] == events::PING
                && e["delivered"] == true
                && matches!(e["reason"].as_str(), Some("claim" | "review" | "redeliver"));
            if let (true, Some(agent), Some(t)) = (handoff, e["agent"].as_str(), ms_of(&e)) {
                self.rotation
                    .handled
                    .entry(agent.to_string())
                    .or_default()
                    .push(t);
            }
        }
        typed
    }

    /// The rotation pass over every enabled local agent with `rotation`; returns the agents it
    /// restarted (healing leaves them alone this tick).
    pub(super) fn rotation_tick(&mut self, fleet: &Fleet, care: &Care) -> BTreeSet<String> {
        let mut rotated = BTreeSet::new();
        let agents: Vec<Agent> = self
            .cfg
            .agents
            .iter()
            .filter(|a| a.enabled && a.rotation.is_some() && a.host.is_none())
            .cloned()
            .collect();
        if agents.is_empty() {
            return rotated;
        }
        let typed = self.read_handled_pings();
        for agent in &agents {
            let (Some(info), Some(rotation)) = (
                fleet.get(&agent.session).filter(|p| !p.dead),
                agent.rotation.clone(),
            ) else {
                continue;
            };
            let mut st = rot::load(&self.cfg, &agent.name);
            let before = st.clone();
            let records = hooks::read_records(&self.cfg.log_dir, &agent.name);
            let started = fleet::records::record(&self.cfg, &agent.name).started_at;
            // Pings of earlier sessions no longer count: forget them.
            if let (Some(times), Some(s)) = (self.rotation.handled.get_mut(&agent.name), started) {
                times.retain(|t| *t >= s);
            }
            let reading = self.sample_context(agent, &records, started);
            let now_s = chrono::Utc::now().timestamp();
            let compacting = rot::compacting(&records, now_s);
            self.note_compaction(agent, &mut st, &records, started.unwrap_or(0));
            // Pings queued during a handoff wait for the new session: they do not make it busy.
            let handing_off = st.pending.is_some() || st.settling_since.is_some();
            let idle_now = self.idle_for_rotation(agent, care, &records, handing_off)
                && !compacting
                && !typed.contains(&agent.name);
            let looks = self
                .rotation
                .idle_looks
                .entry(agent.name.clone())
                .or_default();
            *looks = if idle_now { *looks + 1 } else { 0 };
            let idle = *looks >= IDLE_LOOKS;
            // The new session took its kickoff (or took too long): held pings go in now.
            if let Some(since) = st.settling_since
                && (idle || now_ms() - since >= rotation.handoff_timeout.as_millis() as i64)
            {
                st.settling_since = None;
                continue_save(&self.cfg, &agent.name, &st, &before);
                continue;
            }
            if st.pending.is_some() {
                if self.check_pending(agent, &mut st, info.pid, idle, compacting) {
                    rotated.insert(agent.name.clone());
                }
            } else if idle
                && st.settling_since.is_none()
                && !rot::pool_held(&self.cfg, agent)
                && st.retry_after.is_none_or(|t| now_ms() >= t)
            {
                let times = self
                    .rotation
                    .handled
                    .get(&agent.name)
                    .map_or(&[][..], Vec::as_slice);
                let iters = iterations(times, started);
                if let Some(reason) = rot::due(&rotation, reading, iters, st.after_compaction)
                    .filter(|_| !self.loop_restarting_anyway(agent))
                {
                    self.request(agent, &mut st, reason, reading, iters, info.pid, &records);
                }
            }
            if st != before {
                rot::save(&self.cfg, &agent.name, &st);
            }
        }
        rotated
    }

    /// The agent's context fill this session, logging a `context_sample` when it moved.
    fn sample_context(
        &mut self,
        agent: &Agent,
        records: &[HookRecord],
        started: Option<i64>,
    ) -> Option<f64> {
        let transcript = records
            .iter()
            .rev()
            .find_map(|r| r.transcript_path.as_deref())
            .map(Path::new);
        let reading = context::current(&self.cfg.log_dir, &agent.name, started, transcript)?;
        let last = self.rotation.sampled.get(&agent.name).copied();
        if worth_sampling(last, reading.pct) {
            self.rotation
                .sampled
                .insert(agent.name.clone(), reading.pct);
            self.event(
                events::CONTEXT_SAMPLE,
                json!({ "agent": agent.name, "context_pct": (reading.pct * 10.0).round() / 10.0,
                        "source": reading.source }),
            );
        }
        Some(reading.pct)
    }

    /// A compaction seen for the first time: during a handoff it is only noted; otherwise the
    /// agent gets one continuation ping and is rotated at its next idle moment.
    fn note_compaction(
        &mut self,
        agent: &Agent,
        st: &mut RotationState,
        records: &[HookRecord],
        since_ms: i64,
    ) {
        let Some(t) = rot::last_compaction(records, since_ms) else {
            return;
        };
        if st.compaction_seen.is_some_and(|seen| seen >= t) {
            return;
        }
        st.compaction_seen = Some(t);
        if st.pending.is_some() {
            return;
        }
        let id = crate::fleet::ping_log::next_id(&self.cfg, &agent.name);
        let delivered = self.ping_agent(&agent.name, &rot::continuation_text(&id));
        self.event(
            events::PING,
            json!({ "agent": agent.name, "reason": "continuation", "id": id, "delivered": delivered }),
        );
        st.after_compaction = true;
    }

    /// A loop agent whose phase is done (or whose sequence is complete) starts afresh on the
    /// next phase anyway: no rotation for it.
    fn loop_restarting_anyway(&self, agent: &Agent) -> bool {
        agent.kind == Kind::Loop
            && (self.cfg.sequence_complete_file().exists()
                || phase::current(&self.cfg).is_some_and(|p| phase::is_done(&self.cfg, p)))
    }

    /// Idle enough to be asked for a handoff or stopped: watched, not held, not stalled (the
    /// care pass captured it), its screen not working, nothing queued for it (unless it is
    /// `handing_off`: then pings wait for the new session), its hooks not in a turn.
    fn idle_for_rotation(
        &self,
        agent: &Agent,
        care: &Care,
        records: &[HookRecord],
        handing_off: bool,
    ) -> bool {
        let Some(pane) = care.panes.get(&agent.name) else {
            return false;
        };
        if pane_active(&self.cfg, agent, pane, true) {
            return false;
        }
        let has_rules = !self.cfg.backend_of(agent).screen_rules.is_empty();
        if has_rules && !self.screen_takes_input(agent, false) {
            return false;
        }
        if !handing_off && crate::fleet::pings::pending_count(&self.cfg, &agent.name) > 0 {
            return false;
        }
        hooks::summarize(records)
            .activity
            .is_none_or(|(a, _)| a != HookActivity::Working)
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        agent: &Agent,
        st: &mut RotationState,
        reason: &str,
        pct: Option<f64>,
        iters: u32,
        pid: Option<u32>,
        records: &[HookRecord],
    ) {
        let Some(rotation) = &agent.rotation else {
            return;
        };
        let file = rot::handoff_file(rotation, &agent.name);
        let id = crate::fleet::ping_log::next_id(&self.cfg, &agent.name);
        let requested_at = now_ms();
        let delivered = self.ping_agent(&agent.name, &rot::request_text(&file, &id));
        self.event(
            events::PING,
            json!({ "agent": agent.name, "reason": "rotation", "id": id, "delivered": delivered }),
        );
        if !delivered {
            self.fail(agent, st, &id, "the handoff request could not be typed");
            return;
        }
        let old_session = rot::cli_session(records)
            .or_else(|| context::load(&self.cfg.log_dir, &agent.name).and_then(|r| r.session_id))
            .unwrap_or_else(|| format!("pane:{}", pid.unwrap_or(0)));
        tracing::info!(agent = %agent.name, reason, %id, "rotation requested");
        self.event(
            events::ROTATION_REQUESTED,
            json!({ "agent": agent.name, "id": id, "reason": reason, "context_pct": pct,
                    "iterations": iters, "handoff_file": file, "session": old_session }),
        );
        st.pending = Some(Pending {
            id,
            requested_at,
            reason: reason.to_string(),
            pid,
            old_session,
            dirty_checks: 0,
        });
    }

    /// Check the handoff asked for; rotate, wait or fail. True when the agent was restarted.
    fn check_pending(
        &mut self,
        agent: &Agent,
        st: &mut RotationState,
        pid: Option<u32>,
        idle: bool,
        compacting: bool,
    ) -> bool {
        let (Some(p), Some(rotation)) = (st.pending.clone(), agent.rotation.clone()) else {
            return false;
        };
        let file = rot::handoff_file(&rotation, &agent.name);
        let dir = crate::workspace::effective_agent(&self.cfg, agent).dir;
        let note_ok = note_done(&dir.join(&file), &p);
        let ignored: Vec<String> = agent.files.keys().cloned().collect();
        let tree = if note_ok {
            match rot::tree_of(&dir, &ignored) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(agent = %agent.name, "cannot look at the working tree: {e}");
                    None
                }
            }
        } else {
            None
        };
        let elapsed = Duration::from_millis(now_ms().saturating_sub(p.requested_at).max(0) as u64);
        let check = Check {
            same_process: pid == p.pid,
            compacting,
            idle,
            note_ok,
            tree,
            elapsed,
            timeout: rotation.handoff_timeout,
            dirty_checks: p.dirty_checks,
        };
        match rot::decide(&check) {
            Step::Wait => false,
            Step::Dirty => {
                if let Some(p) = st.pending.as_mut() {
                    p.dirty_checks += 1;
                }
                false
            }
            Step::Fail(reason) => {
                self.fail(agent, st, &p.id, &reason);
                false
            }
            Step::Abandon => {
                tracing::info!(agent = %agent.name, id = %p.id, "restarted during its handoff: the new session is fresh already");
                st.pending = None;
                false
            }
            Step::Rotate => self.rotate(agent, st, &p, &file),
        }
    }

    /// Stop the old session and start a fresh one on the note. True when it was restarted.
    fn rotate(&mut self, agent: &Agent, st: &mut RotationState, p: &Pending, file: &str) -> bool {
        tracing::info!(agent = %agent.name, id = %p.id, "handoff verified: rotating");
        if let Err(e) = fleet::stop_session_gracefully(
            &self.cfg,
            &self.tmux,
            &agent.session,
            agent.grace_period,
        ) {
            tracing::warn!("cannot stop {} for its rotation: {e}", agent.name);
        }
        context::forget(&self.cfg.log_dir, &agent.name);
        self.rotation.idle_looks.remove(&agent.name);
        self.idle_since.remove(&agent.session);
        self.pane_cache.remove(&agent.session);
        st.pending = None;
        st.after_compaction = false;
        st.retry_after = None;
        let phase = phase::current(&self.cfg).filter(|_| agent.kind == Kind::Loop);
        let started = fleet::start_agent_rotated(
            &self.cfg,
            &self.tmux,
            agent,
            phase,
            &rot::kickoff_note(file),
        );
        if let Err(e) = started {
            // The old session is gone already: healing starts it again (the note stays).
            let reason = format!("the new session did not start: {e}");
            self.fail(agent, st, &p.id, &reason);
            return true;
        }
        st.rotations += 1;
        st.settling_since = Some(now_ms());
        let new_pid = self
            .tmux
            .fleet()
            .ok()
            .and_then(|f| f.get(&agent.session).and_then(|i| i.pid));
        self.event(
            events::ROTATED,
            json!({ "agent": agent.name, "id": p.id, "reason": p.reason,
                    "old_session": p.old_session,
                    "new_session": format!("pane:{}", new_pid.unwrap_or(0)),
                    "handoff_file": file }),
        );
        true
    }

    /// The handoff failed: `rotation_failed`, a needs-attention notification, no new request
    /// for `handoff_timeout`; the old session keeps running.
    fn fail(&mut self, agent: &Agent, st: &mut RotationState, id: &str, reason: &str) {
        tracing::warn!(agent = %agent.name, id, "rotation failed: {reason}");
        let summary = format!(
            "{}'s context rotation failed ({reason}); its session keeps running",
            agent.name
        );
        self.event(
            events::ROTATION_FAILED,
            json!({ "agent": agent.name, "id": id, "reason": reason, "summary": summary }),
        );
        self.event(
            events::NEEDS_ATTENTION,
            json!({ "agent": agent.name, "state": "rotation_failed", "reason": reason,
                    "summary": summary }),
        );
        let wait = agent
            .rotation
            .as_ref()
            .map_or(Duration::from_secs(600), |r| r.handoff_timeout);
        st.pending = None;
        st.retry_after = Some(now_ms() + wait.as_millis() as i64);
    }
}

/// Save the state when it changed (for a pass that ends early).
fn continue_save(
    cfg: &crate::config::Config,
    agent: &str,
    st: &RotationState,
    before: &RotationState,
) {
    if st != before {
        rot::save(cfg, agent, st);
    }
}

/// The note at `path` exists, is no older than the request and ends with its marker.
fn note_done(path: &Path, p: &Pending) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let newer = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        // File times may be coarser than the clock: a second of slack.
        .is_some_and(|m| m.as_millis() as i64 + 1000 >= p.requested_at);
    newer && std::fs::read_to_string(path).is_ok_and(|text| rot::note_has_marker(&text, &p.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pings_of_the_current_session_count() {
        assert_eq!(iterations(&[10, 20, 30], Some(15)), 2);
        assert_eq!(iterations(&[10, 20, 30], None), 3);
        assert_eq!(iterations(&[], Some(0)), 0);
    }

    #[test]
    fn a_sample_is_logged_first_and_then_every_five_points() {
        assert!(worth_sampling(None, 12.0));
        assert!(!worth_sampling(Some(12.0), 16.9));
        assert!(worth_sampling(Some(12.0), 17.0));
        assert!(worth_sampling(Some(40.0), 5.0), "a new session drops");
    }
}
