//! The fleet snapshot: one `list-panes -a` call describing every session's first pane,
//! and the pure parser of its tab-separated `-F` output.
use std::collections::{BTreeMap, BTreeSet};

use super::TmuxError;

/// The `-F` format of the fleet query. Free-text fields come last so that a tab inside a
/// session name (which tmux prints escaped anyway) cannot shift the fixed fields.
pub(crate) const FLEET_FORMAT: &str = "#{pane_id}\t#{pane_pid}\t#{pane_dead}\t#{pane_dead_status}\t#{window_activity}\t#{window_index}\t#{pane_index}\t#{pane_current_command}\t#{session_name}";

const FIELDS: usize = 9;

/// What tmux reports about one session's first pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneInfo {
    pub session: String,
    /// tmux's pane id, e.g. `%3`.
    pub pane_id: String,
    /// The pid of the pane's process (`None` if tmux reports none).
    pub pid: Option<u32>,
    /// The pane's foreground command name, e.g. `claude`, `node`, `bash`.
    pub command: String,
    /// The pane's process has exited (only seen with `remain-on-exit`).
    pub dead: bool,
    /// The exit status of a dead pane; tmux 3.3 may leave it empty even for a dead pane.
    pub dead_status: Option<i32>,
    /// The last output in the pane's window, in Unix seconds (`window_activity`: tmux 3.3's
    /// `session_activity` moves only on client input, never on output).
    pub activity: Option<i64>,
    pub window_index: u32,
    pub pane_index: u32,
}

/// Every session on the server, each with its first pane, from a single tmux call (one per
/// place when sessions live on other hosts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fleet {
    sessions: BTreeMap<String, PaneInfo>,
    /// Sessions whose host did not answer: neither running nor gone, just unknown.
    unreachable: BTreeSet<String>,
    /// What each host said (or why it said nothing), in config order.
    hosts: Vec<HostReport>,
}

/// One host's answer to the fleet query.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostReport {
    pub name: String,
    pub reachable: bool,
    /// The round trip of the query, in milliseconds.
    pub latency_ms: Option<u64>,
    /// `tmux -V` on the host, e.g. `tmux 3.3a`.
    pub tmux_version: Option<String>,
    pub error: Option<String>,
    /// The SLURM job holding a `transport = "slurm"` host (absent for others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// That job's state as last seen (`PENDING`, `RUNNING`, `ENDED`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_state: Option<String>,
    /// A container host's container: `{kind, id, state}` (absent for ssh hosts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<crate::transport::PlaceDetails>,
}

impl HostReport {
    /// This report with the id and state of what holds the host, if anything does.
    pub fn held_by(mut self, holder: Option<(String, String)>) -> Self {
        if let Some((id, state)) = holder {
            self.job_id = Some(id);
            self.job_state = Some(state);
        }
        self
    }

    /// A host that did not answer.
    pub fn down(name: impl Into<String>, error: &str) -> Self {
        HostReport {
            name: name.into(),
            reachable: false,
            latency_ms: None,
            tmux_version: None,
            error: Some(error.to_string()),
            job_id: None,
            job_state: None,
            place: None,
        }
    }
}

impl Fleet {
    /// The first pane of the session called exactly `session`.
    pub fn get(&self, session: &str) -> Option<&PaneInfo> {
        self.sessions.get(session)
    }

    pub fn contains(&self, session: &str) -> bool {
        self.sessions.contains_key(session)
    }

    /// Session names, sorted.
    pub fn sessions(&self) -> impl Iterator<Item = &str> {
        self.sessions.keys().map(String::as_str)
    }

    pub fn panes(&self) -> impl Iterator<Item = &PaneInfo> {
        self.sessions.values()
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// True when `session` lives on a host that did not answer: whether it runs is unknown,
    /// so it must be neither restarted nor reported gone.
    pub fn unreachable(&self, session: &str) -> bool {
        self.unreachable.contains(session)
    }

    /// Each host's answer to this snapshot, in config order (empty without hosts).
    pub fn hosts(&self) -> &[HostReport] {
        &self.hosts
    }

    /// Adds (or replaces) one session's pane: to merge snapshots of two servers.
    pub fn insert(&mut self, pane: PaneInfo) {
        self.sessions.insert(pane.session.clone(), pane);
    }

    pub(crate) fn remove(&mut self, session: &str) {
        self.sessions.remove(session);
    }

    pub(crate) fn mark_unreachable(&mut self, session: &str) {
        self.unreachable.insert(session.to_string());
    }

    pub(crate) fn push_host(&mut self, report: HostReport) {
        self.hosts.push(report);
    }
}

/// Parses the output of `list-panes -a -F FLEET_FORMAT`, keeping the first pane (lowest
/// window index, then pane index) of every session.
pub fn parse_fleet(output: &str) -> Result<Fleet, TmuxError> {
    let mut fleet = Fleet::default();
    for line in output.lines().filter(|l| !l.is_empty()) {
        let pane = parse_line(line)?;
        let first = match fleet.sessions.get(&pane.session) {
            Some(seen) => {
                (pane.window_index, pane.pane_index) < (seen.window_index, seen.pane_index)
            }
            None => true,
        };
        if first {
            fleet.sessions.insert(pane.session.clone(), pane);
        }
    }
    Ok(fleet)
}

fn parse_line(line: &str) -> Result<PaneInfo, TmuxError> {
    let bad = |why: &str| TmuxError::Parse {
        verb: "list-panes",
        detail: format!("{why} in line {line:?}"),
    };
    let fields: Vec<&str> = line.splitn(FIELDS, '\t').collect();
    let [
        pane_id,
        pid,
        dead,
        status,
        activity,
        window,
        pane,
        command,
        session,
    ] = fields[..]
    else {
        return Err(bad(&format!(
            "expected {FIELDS} tab-separated fields, found {}",
            fields.len()
        )));
    };
    if session.is_empty() {
        return Err(bad("empty session name"));
    }
    let index = |text: &str, what: &str| {
        text.parse::<u32>()
            .map_err(|_| bad(&format!("{what} {text:?} is not a number")))
    };
    Ok(PaneInfo {
        session: session.to_string(),
        pane_id: pane_id.to_string(),
        pid: pid.parse().ok(),
        command: command.to_string(),
        dead: dead == "1",
        dead_status: status.parse().ok(),
        activity: activity.parse().ok(),
        window_index: index(window, "window index")?,
        pane_index: index(pane, "pane index")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_line_with_spaces_in_session_name_parses() {
        let out = "%3\t4242\t0\t\t1700000000\t0\t0\tclaude\tmy proj builder\n";
        let fleet = parse_fleet(out).unwrap();
        let pane = fleet.get("my proj builder").unwrap();
        assert_eq!(pane.pane_id, "%3");
        assert_eq!(pane.pid, Some(4242));
        assert_eq!(pane.command, "claude");
        assert!(!pane.dead);
        assert_eq!(pane.dead_status, None);
        assert_eq!(pane.activity, Some(1_700_000_000));
    }

    #[test]
    fn dead_pane_reports_status() {
        let out = "%1\t10\t1\t3\t1700000001\t0\t0\tsh\tx\n";
        let pane = parse_fleet(out).unwrap().get("x").cloned().unwrap();
        assert!(pane.dead);
        assert_eq!(pane.dead_status, Some(3));
    }

    #[test]
    fn first_pane_of_each_session_wins() {
        let out = "%5\t1\t0\t\t1\t1\t0\tvim\ta\n\
                   %2\t2\t0\t\t1\t0\t1\tless\ta\n\
                   %1\t3\t0\t\t1\t0\t0\tbash\ta\n\
                   %7\t4\t0\t\t1\t0\t0\tnode\tb\n";
        let fleet = parse_fleet(out).unwrap();
        assert_eq!(fleet.len(), 2);
        assert_eq!(fleet.get("a").unwrap().pane_id, "%1");
        assert_eq!(fleet.get("b").unwrap().command, "node");
        assert_eq!(fleet.sessions().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn empty_output_is_an_empty_fleet() {
        assert!(parse_fleet("").unwrap().is_empty());
        assert!(parse_fleet("\n").unwrap().is_empty());
    }

    #[test]
    fn malformed_line_is_an_error_naming_it() {
        let err = parse_fleet("%1\t2\t0\n").unwrap_err().to_string();
        assert!(err.contains("list-panes"), "{err}");
        assert!(err.contains("%1"), "{err}");
        let err = parse_fleet("%1\t2\t0\t\t1\tX\t0\tsh\ts\n").unwrap_err();
        assert!(err.to_string().contains("window index"), "{err}");
    }

    #[test]
    fn prefix_named_sessions_stay_distinct() {
        let out = "%1\t1\t0\t\t1\t0\t0\tsh\tx-builder\n%2\t2\t0\t\t1\t0\t0\tsh\tx-builder2\n";
        let fleet = parse_fleet(out).unwrap();
        assert_eq!(fleet.get("x-builder").unwrap().pane_id, "%1");
        assert_eq!(fleet.get("x-builder2").unwrap().pane_id, "%2");
        assert!(fleet.get("x-build").is_none());
    }
}
