//! The phase part of the heavy tick: a DONE status file stops the loops and starts them on
//! the next phase; after the last phase, SEQUENCE-COMPLETE and the on-complete task, once.
use serde_json::json;

use super::Watchdog;
use crate::phase::{self, Step};
use crate::{events, fleet, state};

impl Watchdog {
    /// Returns true when the phase moved or the sequence completed on this tick.
    pub(super) fn phase_tick(&mut self) -> bool {
        let Some(l) = self.cfg.loop_.clone() else {
            return false;
        };
        if l.phases.is_empty() || !l.auto_advance {
            return false;
        }
        let index = phase::current_index(&self.cfg);
        let current = &l.phases[index];
        let done = phase::is_done(&self.cfg, current);
        let marker = self.cfg.sequence_complete_file();
        match phase::next_step(index, l.phases.len(), done, marker.exists()) {
            Step::Stay | Step::AlreadyComplete => false,
            Step::Advance { from, to } => {
                let next = &l.phases[to];
                tracing::info!(from = %current.id, to = %next.id, "phase done: advancing");
                // Not parked: a watchdog killed before start_loops below leaves loops that the
                // next watchdog's healing starts on the new phase.
                self.stop_loops_for_restart();
                phase::mark_watchdog_advance(&self.cfg, &next.id);
                if let Err(e) = phase::set_index(&self.cfg, to) {
                    tracing::error!("cannot advance the phase: {e}");
                    return false;
                }
                let _ = std::fs::remove_file(&marker);
                let repo = phase::handoff_repo(&self.cfg);
                if let Err(e) = super::handoff_tick::baseline(&self.cfg, &repo, true) {
                    tracing::warn!("cannot record the handoff baseline: {e}");
                }
                self.event(
                    events::PHASE_ADVANCED,
                    json!({
                        "from": current.id, "to": next.id, "from_index": from, "to_index": to,
                        "by": "watchdog",
                    }),
                );
                self.start_loops();
                true
            }
            Step::Complete => {
                tracing::info!(phase = %current.id, "last phase done: sequence complete");
                self.stop_loops();
                let text = format!(
                    "phase sequence complete {}. Loops stopped; build finished.\n",
                    chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
                );
                if let Err(e) = state::write_atomic(&marker, text.as_bytes()) {
                    tracing::error!("cannot write {}: {e}", marker.display());
                    return false;
                }
                let task = l.on_complete.as_ref().map(|o| o.run.clone());
                self.event(
                    events::SEQUENCE_COMPLETE,
                    json!({ "phase": current.id, "on_complete": task }),
                );
                if let Some(oc) = &l.on_complete {
                    let _ = std::fs::remove_file(self.cfg.log_dir.join(&oc.trigger_file));
                    self.launch_on_complete(&oc.run);
                }
                true
            }
        }
    }

    /// Every tick: a phase moved by a human (`orch phase next/set`) while the loops run on
    /// another one. The loops are stopped and started on the current phase, and the move is
    /// logged as `phase_advanced` with `by: "human"`. No tmux call unless a loop agent's run
    /// record names another phase. True when it moved the loops.
    pub(super) fn human_phase_tick(&mut self) -> bool {
        let Some(current) = phase::current(&self.cfg).cloned() else {
            return false;
        };
        let moved_from = self.cfg.loop_agents().find_map(|a| {
            let rec = fleet::records::record(&self.cfg, &a.name);
            let on = rec.phase.filter(|p| *p != current.id)?;
            (!rec.stopped && !rec.gave_up && !rec.timed_out).then_some(on)
        });
        let Some(from) = moved_from else {
            return false;
        };
        let running = self
            .cfg
            .loop_agents()
            .any(|a| self.tmux.has_session(&a.session).unwrap_or(false));
        if !running {
            return false;
        }
        let phases = self.cfg.phases();
        let from_index = phases.iter().position(|p| p.id == from);
        let to_index = phase::current_index(&self.cfg);
        if phase::advanced_by_watchdog(&self.cfg, &current.id) {
            // The rest of an advance a killed watchdog began (its event is logged already).
            tracing::info!(from = %from, to = %current.id, "finishing the phase advance");
            self.stop_loops_for_restart();
            self.start_loops();
            return true;
        }
        tracing::info!(from = %from, to = %current.id, "phase moved by hand: moving the loops");
        self.stop_loops();
        let repo = phase::handoff_repo(&self.cfg);
        if let Err(e) = super::handoff_tick::baseline(&self.cfg, &repo, true) {
            tracing::warn!("cannot record the handoff baseline: {e}");
        }
        self.event(
            events::PHASE_ADVANCED,
            json!({
                "from": from, "to": current.id, "from_index": from_index, "to_index": to_index,
                "by": "human",
            }),
        );
        self.start_loops();
        true
    }

    fn launch_on_complete(&self, name: &str) {
        let Some(agent) = self.cfg.agent(name) else {
            return;
        };
        let _ = fleet::stop_session_gracefully(
            &self.cfg,
            &self.tmux,
            &agent.session,
            agent.grace_period,
        );
        match fleet::start_agent(&self.cfg, &self.tmux, agent, None) {
            Ok(_) => tracing::info!(agent = name, "on_complete task launched"),
            Err(e) => tracing::error!("cannot launch the on_complete task {name}: {e}"),
        }
    }

    pub(super) fn stop_loops(&self) {
        for a in self.cfg.loop_agents() {
            if let Ok(true) = fleet::stop_agent(&self.cfg, &self.tmux, a) {
                self.event(
                    events::AGENT_STOPPED,
                    json!({ "agent": a.name, "session": a.session, "by": "watchdog" }),
                );
            }
        }
    }

    /// Stop the loops without marking them stopped on purpose (they start again at once).
    fn stop_loops_for_restart(&self) {
        for a in self.cfg.loop_agents() {
            let stopped =
                fleet::stop_session_gracefully(&self.cfg, &self.tmux, &a.session, a.grace_period);
            if let Ok(true) = stopped {
                self.event(
                    events::AGENT_STOPPED,
                    json!({ "agent": a.name, "session": a.session, "by": "watchdog" }),
                );
            }
        }
    }

    pub(super) fn start_loops(&self) {
        let current = phase::current(&self.cfg);
        for a in self.cfg.loop_agents() {
            if let Err(e) = fleet::start_agent(&self.cfg, &self.tmux, a, current) {
                tracing::error!("cannot start loop agent {}: {e}", a.name);
            }
        }
    }
}
