//! The watchdog loop end to end: `orch watchdog` against a real bare remote, real clones
//! pushing to it and recorder agents on a private tmux server (pings, phases, lock, signals).
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gitfix::git;
use crate::project::{Project, RECORDER_BACKEND, loop_agents, loop_section};
use crate::support::wait_for;

mod lifecycle;
mod phases;

/// The reference tool's ping texts, verbatim (what the agents' prompts are written against).
const CLAIM_PING: &str = "watchdog ping: the other loop pushed a gate CLAIM commit. \
                          Pull and verify the claimed gate now.";
const REVIEW_PING: &str = "watchdog ping: the other loop pushed a verdict/finding commit. \
                           Pull the review file and act.";

fn inbox_ping(sub: &str, file: &str) -> String {
    format!(
        "watchdog ping: the other loop pushed {sub}/{file} — pull, read it, act, then delete \
         the file (commit + push) to mark it consumed."
    )
}

/// How long any single expected effect may take (1 s ticks; generous for a loaded machine).
const WAIT: Duration = Duration::from_secs(30);

/// A task agent (started only as on-complete) that appends a line to `<log_dir>/<agent>.ran`.
const MARK_TASK: &str = r#"
[backend.mark]
bin = "sh -c 'echo ran >> \"$ORCH_LOG_DIR/$ORCH_AGENT.ran\"; exec sleep 300'"
prompt_delivery = "exec"
process_name = "sleep"

[[agent]]
name = "finisher"
kind = "task"
backend = "mark"
enabled = false
dir = "."
prompt = "finish"
"#;

/// A project with recorder loop agents, `phases` phases and `extra` lines in `[loop]`.
fn project(phases: usize, extra: &str, more: &str) -> Project {
    Project::new(&format!(
        "{RECORDER_BACKEND}{}{more}{}",
        loop_agents("rec"),
        loop_section(phases, extra)
    ))
}

/// `orch watchdog` as a child process of the test; killed (by its pid) when dropped.
struct Watchdog {
    child: Child,
}

impl Watchdog {
    /// Spawn with stderr captured in a pipe (for a watchdog expected to exit at once).
    fn spawn_piped(p: &Project) -> Watchdog {
        let child = p
            .orch_cmd(&["watchdog"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Watchdog { child }
    }

    fn spawn(p: &Project) -> Watchdog {
        std::fs::create_dir_all(p.log_dir()).unwrap();
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p.log_dir().join("test-watchdog.err"))
            .unwrap();
        let child = p
            .orch_cmd(&["watchdog"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        Watchdog { child }
    }

    /// Spawn and wait for its `watchdog_started` (the `n`th in this log).
    fn start(p: &Project, n: usize) -> Watchdog {
        let wd = Watchdog::spawn(p);
        assert!(
            p.wait_events("watchdog_started", n, WAIT),
            "watchdog did not start: {}",
            stderr_of(p)
        );
        wd
    }

    fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn stderr_of(p: &Project) -> String {
    std::fs::read_to_string(p.log_dir().join("test-watchdog.err")).unwrap_or_default()
}

/// Replace the config atomically (the watchdog must never read a half-written file).
fn write_config(p: &Project, text: &str) {
    let tmp = p.config.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &p.config).unwrap();
}

/// The origin/main tip the watchdog has handled (its on-disk handoff memory).
fn handled_tip(p: &Project) -> Option<String> {
    let text = std::fs::read_to_string(p.log_dir().join("state/handoff.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["tip"].as_str().map(String::from)
}

/// Push two neutral commits, waiting each time until the watchdog has handled it: afterwards
/// every tick that saw anything pushed before has finished (pings sent and logged).
fn sync(p: &Project, clone: &Path) {
    for i in 0..2 {
        let sha = p
            .git
            .commit_and_push(clone, &format!("chore: sync {i}"), &[]);
        assert!(
            wait_for(WAIT, || handled_tip(p).as_deref() == Some(sha.as_str())),
            "the watchdog never handled {sha}; events: {:#?}\n{}",
            p.events(),
            stderr_of(p)
        );
    }
}

/// `ping` events with this reason and agent.
fn pings(p: &Project, reason: &str, agent: &str) -> Vec<Value> {
    p.events_named("ping")
        .into_iter()
        .filter(|e| e["reason"] == reason && e["agent"] == agent)
        .collect()
}

/// How many times `text` was typed into recorder `agent`.
fn typed_count(p: &Project, agent: &str, text: &str) -> usize {
    p.typed(agent)
        .lines()
        .filter(|l| unmarked(l) == text)
        .count()
}

/// A typed line without its trailing `[orch:ping <id>]` mark (every ping carries one).
fn unmarked(line: &str) -> &str {
    match line.rfind(" [orch:ping ") {
        Some(i) if line.ends_with(']') => &line[..i],
        _ => line,
    }
}

/// Wait until `text` was typed `n` times into `agent`.
fn wait_typed(p: &Project, agent: &str, text: &str, n: usize) {
    assert!(
        wait_for(WAIT, || typed_count(p, agent, text) >= n),
        "{agent} was not typed {text:?} {n} times; typed: {:?}; events: {:#?}\n{}",
        p.typed(agent),
        p.events(),
        stderr_of(p)
    );
}

/// A project with its recorder loops up (baseline recorded by `up`) and a tester clone.
fn started(phases: usize, extra: &str, more: &str) -> (Project, PathBuf) {
    let p = project(phases, extra, more);
    p.orch_ok(&["up", "builder", "adversary"]);
    let tester = p.clone_repo("tester");
    (p, tester)
}

fn commit_sha_list(e: &Value) -> Vec<String> {
    e["commits"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn claim_commit_pings_adversary_once_and_review_commit_pings_builder_once() {
    let (p, tester) = started(1, "", "");
    let _wd = Watchdog::start(&p, 1);
    let claim = p.git.commit_and_push(&tester, "claim: gate 1", &[]);
    wait_typed(&p, "adversary", CLAIM_PING, 1);
    let review = p.git.commit_and_push(&tester, "review: gate 1 ok", &[]);
    wait_typed(&p, "builder", REVIEW_PING, 1);
    sync(&p, &tester);

    let claims = pings(&p, "claim", "adversary");
    assert_eq!(claims.len(), 1, "{claims:#?}");
    assert_eq!(commit_sha_list(&claims[0]), vec![claim]);
    let reviews = pings(&p, "review", "builder");
    assert_eq!(reviews.len(), 1, "{reviews:#?}");
    assert_eq!(commit_sha_list(&reviews[0]), vec![review]);
    assert_eq!(p.events_named("ping").len(), 2, "{:#?}", p.events());
    for e in p.events_named("ping") {
        assert_eq!(e["delivered"], true, "{e}");
    }
    assert_eq!(typed_count(&p, "adversary", CLAIM_PING), 1);
    assert_eq!(typed_count(&p, "builder", REVIEW_PING), 1);
    assert!(
        !p.typed("builder").contains(CLAIM_PING),
        "{}",
        p.typed("builder")
    );
    assert!(!p.typed("adversary").contains(REVIEW_PING));
}

#[test]
fn changed_inbox_pings_once_unchanged_never_and_re_added_pings_again() {
    let (p, tester) = started(1, "", "");
    let _wd = Watchdog::start(&p, 1);
    let inbox = "machine-docs/ADVERSARY-INBOX.md";
    let text = inbox_ping("machine-docs", "ADVERSARY-INBOX.md");
    p.git
        .commit_and_push(&tester, "note: finding", &[(inbox, "finding 1\n")]);
    wait_typed(&p, "adversary", &text, 1);
    // Unrelated commits leave the inbox unchanged: no new ping.
    p.git
        .commit_and_push(&tester, "note: other", &[("other.md", "x\n")]);
    sync(&p, &tester);
    assert_eq!(pings(&p, "inbox", "adversary").len(), 1);
    // Deleting resets; the same content pushed again pings again.
    p.git.delete_and_push(&tester, inbox, "note: consumed");
    sync(&p, &tester);
    assert_eq!(pings(&p, "inbox", "adversary").len(), 1);
    p.git
        .commit_and_push(&tester, "note: again", &[(inbox, "finding 1\n")]);
    wait_typed(&p, "adversary", &text, 2);
    sync(&p, &tester);
    let inbox_pings = pings(&p, "inbox", "adversary");
    assert_eq!(inbox_pings.len(), 2, "{inbox_pings:#?}");
    assert_eq!(inbox_pings[1]["file"], "ADVERSARY-INBOX.md");
    assert_eq!(typed_count(&p, "adversary", &text), 2);
    assert_eq!(p.events_named("ping").len(), 2, "{:#?}", p.events());
}

#[test]
fn second_inbox_pings_the_builder() {
    let (p, tester) = started(1, "", "");
    let _wd = Watchdog::start(&p, 1);
    let text = inbox_ping("machine-docs", "BUILDER-INBOX.md");
    p.git.commit_and_push(
        &tester,
        "note: for builder",
        &[("machine-docs/BUILDER-INBOX.md", "fix this\n")],
    );
    wait_typed(&p, "builder", &text, 1);
    sync(&p, &tester);
    assert_eq!(pings(&p, "inbox", "builder").len(), 1);
    assert_eq!(p.events_named("ping").len(), 1, "{:#?}", p.events());
}

#[test]
fn commit_matching_neither_pattern_pings_nobody() {
    let (p, tester) = started(1, "", "");
    let _wd = Watchdog::start(&p, 1);
    p.git
        .commit_and_push(&tester, "docs: typo (claim later)", &[("a.md", "a\n")]);
    sync(&p, &tester);
    assert!(p.events_named("ping").is_empty(), "{:#?}", p.events());
    assert!(!p.typed("adversary").contains("watchdog ping"));
    assert!(!p.typed("builder").contains("watchdog ping"));
}

#[test]
fn two_claims_in_one_fetch_ping_adversary_once_naming_both() {
    let (p, tester) = started(1, "", "");
    let _wd = Watchdog::start(&p, 1);
    git(
        &tester,
        &["commit", "-q", "--allow-empty", "-m", "claim: gate 1"],
    );
    let first = git(&tester, &["rev-parse", "HEAD"]);
    let second = p.git.commit_and_push(&tester, "claim: gate 2", &[]);
    wait_typed(&p, "adversary", CLAIM_PING, 1);
    sync(&p, &tester);
    let claims = pings(&p, "claim", "adversary");
    assert_eq!(claims.len(), 1, "{claims:#?}");
    assert_eq!(commit_sha_list(&claims[0]), vec![first, second]);
    assert_eq!(typed_count(&p, "adversary", CLAIM_PING), 1);
}

#[test]
fn claim_pushed_after_up_before_the_first_fetch_is_pinged() {
    let (p, tester) = started(1, "", "");
    // `up` recorded the baseline; the claim lands before any watchdog has fetched.
    let claim = p.git.commit_and_push(&tester, "claim: early", &[]);
    p.orch_ok(&["up", "watchdog"]);
    wait_typed(&p, "adversary", CLAIM_PING, 1);
    sync(&p, &tester);
    let claims = pings(&p, "claim", "adversary");
    assert_eq!(claims.len(), 1, "{claims:#?}");
    assert_eq!(commit_sha_list(&claims[0]), vec![claim]);
    // The fixture's own pushes before `up` (plans) are history: nothing else was pinged.
    assert_eq!(p.events_named("ping").len(), 1, "{:#?}", p.events());
}
