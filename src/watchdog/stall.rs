//! The care part of the light tick: every watched, running agent gets the limit check; a
//! `heal+stall` agent idle past `stall_idle` (or its WAITING-UNTIL + `stall_grace`) is rebooted.
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use chrono::Local;

use super::Watchdog;
use super::heal::{CAPTURE_ROWS, HealReason, pane_active, watched};
use crate::config::{Agent, Watch};
use crate::detect::{self, StallVerdict};
use crate::tmux::Fleet;

/// What the care pass saw, for the rest of the tick.
#[derive(Debug, Default)]
pub(super) struct Care {
    /// Agents held by a usage limit (their own or their pool's) or restarted this tick:
    /// healing leaves them alone.
    pub skip: BTreeSet<String>,
    /// Agents held by a usage limit (wakes are not typed into them).
    pub held: BTreeSet<String>,
    /// This tick's pane captures, by agent name.
    pub panes: HashMap<String, String>,
}

impl Watchdog {
    /// Limit and stall checks for every watched agent running in `fleet`.
    pub(super) fn care_tick(&mut self, fleet: &Fleet) -> Care {
        let mut care = Care::default();
        let pools = self.cfg.pool_members();
        let attention = crate::fleet::screen::load_attention(&self.cfg);
        // Panes on hosts: one call per host for all their screens this tick.
        let running: Vec<_> = watched(&self.cfg)
            .iter()
            .filter_map(|a| fleet.get(&a.session).filter(|i| !i.dead))
            .collect();
        let prefetched = super::pane_cache::prefetch_remote(
            &self.pane_cache,
            &self.tmux,
            &running,
            CAPTURE_ROWS,
        );
        for agent in watched(&self.cfg) {
            let Some(info) = fleet.get(&agent.session).filter(|i| !i.dead) else {
                self.idle_since.remove(&agent.session);
                self.pane_cache.remove(&agent.session);
                continue;
            };
            // Waiting for a human to log in: a restart would not help (no restart loop).
            if attention.contains_key(&agent.name) {
                self.idle_since.remove(&agent.session);
                care.skip.insert(agent.name.clone());
                continue;
            }
            let captured = super::pane_cache::capture_with(
                &mut self.pane_cache,
                &prefetched,
                &self.tmux,
                info,
                CAPTURE_ROWS,
            );
            let pane = match captured {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("cannot read the pane of {}: {e}", agent.name);
                    continue;
                }
            };
            // A member of an account pool is held with its pool (pool.rs), others alone.
            let held = match self.pool_check(&pools, &agent, &pane) {
                Some(held) => held,
                None => self.limit_check(&agent, &pane),
            };
            if held {
                self.idle_since.remove(&agent.session);
                care.skip.insert(agent.name.clone());
                care.held.insert(agent.name.clone());
                continue;
            }
            if agent.watch == Watch::HealStall && self.stall_check(&agent, &pane) {
                care.skip.insert(agent.name.clone());
                continue;
            }
            care.panes.insert(agent.name.clone(), pane);
        }
        self.pool_tick(fleet, &pools, &mut care);
        care
    }

    /// The stall rule for one running, not-held agent; true when it was rebooted.
    fn stall_check(&mut self, agent: &Agent, pane: &str) -> bool {
        // Never stopped between a PreCompact hook and its SessionStart (source compact).
        let records = crate::hooks::read_records(&self.cfg.log_dir, &agent.name);
        let compacting =
            crate::fleet::rotation::compacting(&records, chrono::Utc::now().timestamp());
        if compacting || pane_active(&self.cfg, agent, pane, true) {
            self.idle_since.remove(&agent.session);
            return false;
        }
        let now = Instant::now();
        let since = *self.idle_since.entry(agent.session.clone()).or_insert(now);
        let b = self.cfg.backend_of(agent);
        let verdict = detect::stall_verdict(
            now.saturating_duration_since(since),
            b.stall_idle,
            detect::parse_waiting_until(pane, b.footer_ui),
            Local::now().fixed_offset(),
            self.cfg.watchdog.stall_grace,
        );
        match verdict {
            StallVerdict::Fine | StallVerdict::Waiting { .. } => false,
            StallVerdict::Stalled { reason } => {
                self.restart_agent(agent, HealReason::Stall, &reason)
            }
        }
    }
}
