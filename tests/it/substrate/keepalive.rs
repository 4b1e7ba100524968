//! The service's keep-alive (`orch service run`, what the systemd unit runs): a watchdog
//! SIGKILLed at random moments of a twelve-phase soak is brought back each time, and every
//! handoff is still pinged exactly once; `orch down` is respected; the unit prints.
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gitfix::git;
use crate::project::{Project, loop_section, sim_backend};
use crate::support::wait_for;

/// Phases of the soak.
const PHASES: usize = 12;
/// Watchdog kills during it.
const KILLS: usize = 5;

fn soak_project() -> Project {
    let body = format!(
        "{}{}{}",
        sim_backend("sim", ""),
        r#"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "sim"
dir = "builder"
watch = "heal"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "sim"
dir = "adversary"
watch = "heal"
env = { ORCH_SIM_FIND = "1" }
"#,
        loop_section(PHASES, ""),
    );
    Project::new(&body)
}

/// The watchdog's pid, from its lock file, once a watchdog newer than `after` holds it.
fn watchdog_pid(p: &Project, starts: usize) -> Option<i32> {
    if p.events_named("watchdog_started").len() < starts {
        return None;
    }
    let text = std::fs::read_to_string(p.log_dir().join("state/watchdog.lock")).ok()?;
    text.trim().parse().ok()
}

struct KeepAlive(Child);

impl Drop for KeepAlive {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every `verb:` commit of the remote named by exactly one ping with `reason` to `target`.
fn assert_pinged_once(p: &Project, verb: &str, reason: &str, target: &str) {
    let log = git(
        &p.git.remote,
        &["log", "--reverse", "--format=%H %s", "main"],
    );
    let shas: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, s)| s.starts_with(verb))
        .map(|(h, _)| h)
        .collect();
    let pings: Vec<Value> = p
        .events_named("ping")
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect();
    for sha in &shas {
        let naming: Vec<&Value> = pings
            .iter()
            .filter(|e| {
                e["commits"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x == sha))
            })
            .collect();
        assert_eq!(
            naming.len(),
            1,
            "{verb} {sha} pinged {} times: {pings:#?}",
            naming.len()
        );
        assert_eq!(naming[0]["agent"], target);
    }
    assert_eq!(pings.len(), shas.len(), "{reason} pings: {pings:#?}");
}

#[test]
fn a_watchdog_sigkilled_at_random_moments_is_restarted_and_pings_every_handoff_once() {
    let p = soak_project();
    let child = p
        .orch_cmd(&["service", "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _keep = KeepAlive(child);
    // Kill at pseudo-random moments (from the clock's nanoseconds), KILLS times.
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while kills < KILLS
        && Instant::now() < deadline
        && p.events_named("sequence_complete").is_empty()
    {
        let starts = kills + 1;
        let Some(pid) = (wait_for(Duration::from_secs(20), || {
            watchdog_pid(&p, starts).is_some()
        }))
        .then(|| watchdog_pid(&p, starts))
        .flatten() else {
            panic!("watchdog #{starts} never came up: {:#?}", p.events());
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        std::thread::sleep(Duration::from_millis(1500 + u64::from(nanos % 2500)));
        // SAFETY: kill(2) on the pid of the watchdog this test's project started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        kills += 1;
    }
    assert!(
        kills >= 4,
        "the sequence completed before the watchdog could be killed four times"
    );
    assert!(
        p.wait_events("sequence_complete", 1, Duration::from_secs(300)),
        "no sequence_complete after {kills} kills; remote: {:#?}\nevents: {:#?}",
        p.remote_subjects(),
        p.events()
    );
    assert!(
        p.events_named("watchdog_started").len() > kills,
        "{:#?}",
        p.events()
    );
    assert_pinged_once(&p, "claim:", "claim", "adversary");
    assert_pinged_once(&p, "review:", "review", "builder");
    let advanced = p.events_named("phase_advanced");
    assert_eq!(advanced.len(), PHASES - 1, "{advanced:#?}");
    assert_eq!(p.events_named("sequence_complete").len(), 1);

    // `orch down` stops the watchdog on purpose: the keep-alive leaves it down.
    let starts = p.events_named("watchdog_started").len();
    p.orch_ok(&["down"]);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        p.events_named("watchdog_started").len(),
        starts,
        "restarted after down"
    );
}

#[test]
fn service_install_print_shows_a_unit_running_the_keep_alive() {
    let p = soak_project();
    let out = p.orch_ok(&["service", "install", "--user", "--print"]);
    assert!(out.contains("service run\n"), "{out}");
    assert!(out.contains("Restart=always"), "{out}");
    assert!(out.contains("KillMode=process"), "{out}");
    assert!(out.contains("orch-t.service"), "{out}");
}
