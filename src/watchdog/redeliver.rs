//! Pending handoff redelivery: which claim/review ping each loop agent still owes an answer to
//! (`<state_dir>/owed.json`), and typing it again, once, when that agent's process is new.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Watchdog;
use crate::config::Config;
use crate::fleet::pings::{self, PendingPing};
use crate::tmux::Fleet;

/// One outstanding handoff ping: the ping as queued, and the pane pid it was (or will be)
/// typed into; a different pid later means the agent was started again and lost it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwedPing {
    pub ping: PendingPing,
    #[serde(default)]
    pub pid: Option<u32>,
}

/// What each loop agent owes an answer to, by agent name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Owed {
    pub agents: BTreeMap<String, OwedPing>,
}

impl Owed {
    /// A handoff ping was queued for `target`: it now owes an answer to it, and `answered` (the
    /// agent whose commit this ping announces) owes nothing any more. Pure.
    pub fn handed(&mut self, target: &str, answered: &str, ping: PendingPing) {
        self.agents.remove(answered);
        self.agents
            .insert(target.to_string(), OwedPing { ping, pid: None });
    }

    /// Look at `agent`'s pane pid now (None: not running): the ping to type again when the
    /// agent owes one and its process changed since (`queued` = ids still waiting in its
    /// outbox: those need no redelivery). The first pid seen is only recorded; an agent not
    /// running when its ping fell due (pid 0 recorded) gets it again from its next process.
    pub fn observe(
        &mut self,
        agent: &str,
        pid: Option<u32>,
        queued: &[String],
    ) -> Option<PendingPing> {
        let owed = self.agents.get_mut(agent)?;
        let Some(pid) = pid else {
            owed.pid.get_or_insert(0);
            return None;
        };
        let before = owed.pid.replace(pid);
        if before.is_none_or(|b| b == pid) || queued.contains(&owed.ping.id) {
            return None;
        }
        let original = &owed.ping;
        let mut fields = match &original.fields {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        fields.insert("redelivers".into(), json!(original.id));
        fields.insert("handoff".into(), json!(original.reason));
        Some(PendingPing::new(
            format!("redeliver-{}-{pid}", original.id),
            "redeliver",
            original.text.clone(),
            Value::Object(fields),
        ))
    }
}

fn owed_file(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("owed.json")
}

pub(super) fn load(cfg: &Config) -> Owed {
    match crate::state::load_json(&owed_file(cfg)) {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("{e}; no handoff is known to be owed");
            Owed::default()
        }
    }
}

pub(super) fn save(cfg: &Config, owed: &Owed) {
    let saved = std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| crate::state::save_json(&owed_file(cfg), owed).map_err(|e| e.to_string()));
    if let Err(e) = saved {
        tracing::error!("cannot save {}: {e}", owed_file(cfg).display());
    }
}

/// A new phase or loop start: nothing is owed.
pub(super) fn clear(cfg: &Config) {
    if owed_file(cfg).exists() {
        save(cfg, &Owed::default());
    }
}

impl Watchdog {
    /// Queue the owed handoff ping again for every loop agent whose pane process is new since
    /// the ping was due (healed, restarted, stall reboot, `orch restart`, server lost). It is
    /// typed by the outbox pass once the new process takes input, i.e. after its kickoff.
    pub(super) fn redeliver_tick(&mut self, fleet: &Fleet) {
        let mut owed = load(&self.cfg);
        if owed.agents.is_empty() {
            return;
        }
        let before = owed.clone();
        let agents: Vec<(String, String)> = self
            .cfg
            .loop_agents()
            .map(|a| (a.name.clone(), a.session.clone()))
            .collect();
        for (name, session) in agents {
            let pid = fleet.get(&session).filter(|p| !p.dead).and_then(|p| p.pid);
            let queued: Vec<String> = pings::load(&self.cfg, &name)
                .pings
                .into_iter()
                .map(|p| p.id)
                .collect();
            if let Some(ping) = owed.observe(&name, pid, &queued) {
                tracing::info!(agent = %name, id = %ping.id, "redelivering the owed handoff ping");
                self.queue_ping(&name, ping);
            }
        }
        if owed != before {
            save(&self.cfg, &owed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(id: &str) -> PendingPing {
        PendingPing::new(
            id.into(),
            "claim",
            "pull".into(),
            json!({ "commits": ["c1"] }),
        )
    }

    #[test]
    fn a_claim_is_owed_by_its_target_and_answered_by_the_review() {
        let mut o = Owed::default();
        o.handed("adversary", "builder", ping("claim-c1"));
        assert!(o.agents.contains_key("adversary"));
        o.handed("builder", "adversary", ping("review-r1"));
        assert!(!o.agents.contains_key("adversary"));
        assert_eq!(o.agents["builder"].ping.id, "review-r1");
    }

    #[test]
    fn a_new_process_gets_the_owed_ping_once() {
        let mut o = Owed::default();
        o.handed("adversary", "builder", ping("claim-c1"));
        assert_eq!(
            o.observe("adversary", Some(10), &[]),
            None,
            "first pid is recorded"
        );
        assert_eq!(o.observe("adversary", Some(10), &[]), None);
        let again = o.observe("adversary", Some(11), &[]).expect("redelivered");
        assert_eq!(again.reason, "redeliver");
        assert_eq!(again.id, "redeliver-claim-c1-11");
        assert_eq!(again.fields["redelivers"], "claim-c1");
        assert_eq!(again.fields["commits"], json!(["c1"]));
        assert_eq!(o.observe("adversary", Some(11), &[]), None, "only once");
        assert_eq!(
            o.observe("builder", Some(12), &[]),
            None,
            "builder owes nothing"
        );
    }

    #[test]
    fn an_agent_down_when_its_ping_fell_due_gets_it_from_its_next_process() {
        let mut o = Owed::default();
        o.handed("adversary", "builder", ping("claim-c1"));
        assert_eq!(o.observe("adversary", None, &[]), None);
        assert!(o.observe("adversary", Some(7), &[]).is_some());
        // Down for a while and back in the same process: nothing.
        assert_eq!(o.observe("adversary", None, &[]), None);
        assert_eq!(o.observe("adversary", Some(7), &[]), None);
    }

    #[test]
    fn a_ping_still_queued_is_not_redelivered() {
        let mut o = Owed::default();
        o.handed("adversary", "builder", ping("claim-c1"));
        o.observe("adversary", Some(10), &[]);
        assert_eq!(o.observe("adversary", Some(11), &["claim-c1".into()]), None);
    }

    #[test]
    fn owed_round_trips_through_json() {
        let mut o = Owed::default();
        o.handed("adversary", "builder", ping("claim-c1"));
        o.observe("adversary", Some(10), &[]);
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<Owed>(&text).unwrap(), o);
    }
}
