//! The processes a tmux pane started, found in /proc: its descendants, everything in its
//! session, and what carries its environment marker (daemons that detached); and ending them.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One process as /proc/<pid>/stat tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub sid: i32,
    /// Start time in clock ticks since boot: with the pid, it names one process (pids are reused).
    pub start: u64,
    pub zombie: bool,
}

/// A process to end: its pid and start time.
pub type ProcId = (i32, u64);

/// Parse the text of /proc/<pid>/stat (`None` when garbled).
pub fn parse_stat(text: &str) -> Option<Proc> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After the command: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime.
    Some(Proc {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        sid: rest.get(3)?.parse().ok()?,
        start: rest.get(19)?.parse().ok()?,
        zombie: *rest.first()? == "Z",
    })
}

/// Every process now (an empty list where /proc cannot be read).
pub fn list() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read)
        .collect()
}

fn read(pid: i32) -> Option<Proc> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// True when the process's environment holds every `NAME=value` of `marker` (false when it
/// cannot be read: another user's process).
pub fn environ_has(pid: i32, marker: &[(&str, &str)]) -> bool {
    let Ok(bytes) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let vars: BTreeSet<&[u8]> = bytes.split(|b| *b == 0).collect();
    marker
        .iter()
        .all(|(k, v)| vars.contains(format!("{k}={v}").as_bytes()))
}

/// The pids that must never be signalled: init, this process and its ancestors.
fn protected(procs: &[Proc]) -> BTreeSet<i32> {
    let by_pid: BTreeMap<i32, &Proc> = procs.iter().map(|p| (p.pid, p)).collect();
    let mut out = BTreeSet::from([0, 1]);
    let mut pid = std::process::id() as i32;
    while out.insert(pid) {
        match by_pid.get(&pid) {
            Some(p) => pid = p.ppid,
            None => break,
        }
    }
    out
}

/// Pure: the members of a pane's process tree among `procs`. `root` is the pane's process
/// (tmux makes it a session leader, so its pid is also the session id its children keep after
/// it exits); `marked` says whether a process carries the agent's environment marker.
pub fn members(procs: &[Proc], root: Option<i32>, marked: impl Fn(i32) -> bool) -> Vec<ProcId> {
    let keep = protected(procs);
    let mut children: BTreeMap<i32, Vec<&Proc>> = BTreeMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut found: BTreeMap<i32, u64> = BTreeMap::new();
    let mut stack: Vec<&Proc> = Vec::new();
    if let Some(root) = root {
        stack.extend(procs.iter().filter(|p| p.pid == root || p.sid == root));
    }
    stack.extend(
        procs
            .iter()
            .filter(|p| !keep.contains(&p.pid) && marked(p.pid)),
    );
    while let Some(p) = stack.pop() {
        if keep.contains(&p.pid) || found.insert(p.pid, p.start).is_some() {
            continue;
        }
        stack.extend(children.get(&p.pid).into_iter().flatten());
    }
    found.into_iter().collect()
}

/// The processes of the pane whose process is `root`, now (see [`members`]); `marker` is the
/// agent's environment marker (empty: none).
pub fn snapshot(root: Option<i32>, marker: &[(&str, &str)]) -> Vec<ProcId> {
    members(&list(), root, |pid| {
        !marker.is_empty() && environ_has(pid, marker)
    })
}

/// Which of `ids` still run (same pid and start time, not a zombie).
pub fn alive(ids: &[ProcId]) -> Vec<ProcId> {
    ids.iter()
        .copied()
        .filter(|(pid, start)| read(*pid).is_some_and(|p| p.start == *start && !p.zombie))
        .collect()
}

fn signal(ids: &[ProcId], sig: i32) {
    for (pid, _) in alive(ids) {
        // SAFETY: kill has no memory preconditions; the pid was checked to be the same
        // process (start time) just before.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// End `ids`: SIGTERM, up to `wait` for them to go, then SIGKILL. Returns those still there
/// after the SIGKILL (normally none).
pub fn end(ids: &[ProcId], wait: Duration) -> Vec<ProcId> {
    if alive(ids).is_empty() {
        return Vec::new();
    }
    signal(ids, libc::SIGTERM);
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if alive(ids).is_empty() {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(ids, libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !alive(ids).is_empty() {
        std::thread::sleep(Duration::from_millis(20));
    }
    alive(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: i32, ppid: i32, sid: i32) -> Proc {
        Proc {
            pid,
            ppid,
            sid,
            start: pid as u64 * 10,
            zombie: false,
        }
    }

    #[test]
    fn stat_lines_with_spaces_and_parens_in_the_command_parse() {
        let line =
            "4242 (node (codex) x) S 1 4242 4200 0 -1 4194304 1 2 3 4 5 6 7 8 20 0 3 0 987654 1 2";
        let got = parse_stat(line).unwrap();
        assert_eq!(
            (got.pid, got.ppid, got.sid, got.start),
            (4242, 1, 4200, 987654)
        );
        assert!(!got.zombie);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn members_are_descendants_the_session_and_marked_daemons() {
        let procs = [
            p(100, 50, 100), // the pane's process
            p(101, 100, 100),
            p(102, 101, 102), // a child that called setsid: still a descendant
            p(103, 1, 100),   // reparented to init, kept the session
            p(104, 1, 104),   // a daemon (double fork + setsid), marked by its environment
            p(105, 104, 104), // the daemon's child
            p(200, 1, 200),   // someone else's
        ];
        let got: Vec<i32> = members(&procs, Some(100), |pid| pid == 104)
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        assert_eq!(got, [100, 101, 102, 103, 104, 105]);
        // The pane's process already gone: its session and the marker still find the rest.
        let later: Vec<i32> = members(&procs[1..], Some(100), |pid| pid == 104)
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        assert_eq!(later, [101, 102, 103, 104, 105]);
    }

    #[test]
    fn this_process_and_init_are_never_members() {
        let me = std::process::id() as i32;
        let procs = [p(1, 0, 1), p(me, 1, 100), p(100, 1, 100)];
        let got: Vec<i32> = members(&procs, Some(100), |_| true)
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        assert_eq!(got, [100]);
    }
}
