//! Hosts in the tick: a host that stops answering is logged once (`host_unreachable`) and its
//! agents are left alone; `host_back` when it answers again, after which healing resumes.
use std::collections::HashMap;
use std::time::Instant;

use serde_json::json;

use super::Watchdog;
use crate::events;
use crate::tmux::{Fleet, HostReport};

/// What changed since the last tick: hosts newly down (with their error) and hosts back. Pure.
pub fn host_changes<'a>(
    down: &HashMap<String, Instant>,
    reports: &'a [HostReport],
) -> (Vec<&'a HostReport>, Vec<&'a HostReport>) {
    let went_down = reports
        .iter()
        .filter(|r| !r.reachable && !down.contains_key(&r.name))
        .collect();
    let came_back = reports
        .iter()
        .filter(|r| r.reachable && down.contains_key(&r.name))
        .collect();
    (went_down, came_back)
}

impl Watchdog {
    /// Logs hosts going down and coming back, from this tick's snapshot.
    pub(super) fn hosts_tick(&mut self, fleet: &Fleet) {
        let (went_down, came_back) = host_changes(&self.hosts_down, fleet.hosts());
        for r in went_down {
            let agents: Vec<&str> = self
                .cfg
                .agents
                .iter()
                .filter(|a| a.host.as_deref() == Some(r.name.as_str()))
                .map(|a| a.name.as_str())
                .collect();
            let error = r.error.clone().unwrap_or_default();
            tracing::warn!(host = %r.name, "host unreachable, leaving its agents alone: {error}");
            self.event(
                events::HOST_UNREACHABLE,
                json!({ "host": r.name, "error": error, "agents": agents }),
            );
            self.hosts_down.insert(r.name.clone(), Instant::now());
        }
        for r in came_back {
            let since = self.hosts_down.remove(&r.name);
            let secs = since.map_or(0, |t| t.elapsed().as_secs());
            tracing::info!(host = %r.name, "host answers again");
            self.event(
                events::HOST_BACK,
                json!({ "host": r.name, "down_secs": secs, "latency_ms": r.latency_ms }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(name: &str) -> HostReport {
        HostReport {
            name: name.into(),
            reachable: true,
            latency_ms: Some(3),
            tmux_version: Some("tmux 3.3a".into()),
            error: None,
            job_id: None,
            job_state: None,
            place: None,
        }
    }

    #[test]
    fn a_host_going_down_is_reported_once_and_its_return_once() {
        let mut down = HashMap::new();
        let reports = [up("a"), HostReport::down("b", "ssh: connect refused")];
        let (d, b) = host_changes(&down, &reports);
        assert_eq!(d.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(b.is_empty());
        down.insert("b".to_string(), Instant::now());
        let (d, b) = host_changes(&down, &reports);
        assert!(d.is_empty(), "already reported");
        assert!(b.is_empty());
        let both_up = [up("a"), up("b")];
        let (d, b) = host_changes(&down, &both_up);
        assert!(d.is_empty());
        assert_eq!(b.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["b"]);
    }
}
