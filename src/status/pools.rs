//! The account pools in `status`: each pool with its members, hold and queued pings (JSON
//! `pools`), the `held` state of every member of a held pool, and the table's pool lines.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::fleet::pool_hold::{self, PoolHold};

/// One pool in `status --json` (`pools` array).
#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    pub name: String,
    /// A derived pool's account key (a hash of the account or API key, never the secret);
    /// null for a `[pool.NAME]`.
    pub key: Option<String>,
    pub members: Vec<String>,
    /// True while any member is held.
    pub held: bool,
    /// `free`, `held` (waiting for the probe) or `releasing` (probe succeeded).
    pub phase: &'static str,
    /// RFC 3339: when the next probe is due (held only).
    pub until: Option<String>,
    /// RFC 3339: when the hold began.
    pub since: Option<String>,
    /// `screen`, `hook` or `probe`: what showed the limit.
    pub source: Option<String>,
    /// The member that showed the limit.
    pub limited_agent: Option<String>,
    pub probes: u32,
    /// Members still held.
    pub held_members: Vec<String>,
    /// Pings queued for all members.
    pub queued_pings: usize,
}

fn rfc(secs: f64) -> Option<String> {
    super::rfc3339(secs.floor() as i64)
}

/// By agent: its pool's name and the hold that holds it now.
pub type Pooled = BTreeMap<String, (String, Option<PoolHold>)>;

/// Every pool of `cfg` and, by agent, its pool and the hold that holds it now.
pub fn gather(cfg: &Config) -> (Vec<PoolReport>, Pooled) {
    let mut reports = Vec::new();
    let mut by_agent = BTreeMap::new();
    for (name, pm) in cfg.pool_members() {
        let hold = pool_hold::load(cfg, &name);
        let held_members: Vec<String> = pm
            .members
            .iter()
            .filter(|m| hold.as_ref().is_some_and(|h| h.holds(m)))
            .cloned()
            .collect();
        for m in &pm.members {
            let holding = hold.clone().filter(|h| h.holds(m));
            by_agent.insert(m.clone(), (name.clone(), holding));
        }
        reports.push(PoolReport {
            key: pm.key.clone(),
            members: pm.members.clone(),
            held: !held_members.is_empty(),
            phase: hold.as_ref().map_or("free", PoolHold::phase),
            until: hold
                .as_ref()
                .filter(|h| h.next_release.is_none())
                .and_then(|h| rfc(h.until)),
            since: hold.as_ref().and_then(|h| rfc(h.since)),
            source: hold.as_ref().map(|h| h.source.clone()),
            limited_agent: hold.as_ref().map(|h| h.agent.clone()),
            probes: hold.as_ref().map_or(0, |h| h.probes),
            held_members,
            queued_pings: pm
                .members
                .iter()
                .map(|m| crate::fleet::pings::pending_count(cfg, m))
                .sum(),
            name,
        });
    }
    (reports, by_agent)
}

/// The table's pool lines: `pool NAME  STATE  members: a, b  queued: N`.
pub fn render(pools: &[PoolReport]) -> String {
    let mut out = String::new();
    for p in pools {
        let mut state = p.phase.to_string();
        if let Some(until) = p
            .until
            .as_deref()
            .and_then(|u| chrono::DateTime::parse_from_rfc3339(u).ok())
        {
            state += &until
                .with_timezone(&chrono::Local)
                .format(" until %H:%M:%S")
                .to_string();
        }
        out += &format!(
            "pool {}  {state}  members: {}  queued: {}\n",
            p.name,
            p.members.join(", "),
            p.queued_pings
        );
    }
    out
}
