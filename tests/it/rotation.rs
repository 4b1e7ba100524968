//! Context rotation on sims: the builder rotated at its context threshold still completes the
//! loop with every handoff pinged once and a fresh (never resumed) session on its note; a dirty
//! tree or a missing note fails the rotation and keeps the old session; a compacting agent is
//! not stopped until its compaction ends.
use std::time::Duration;

use serde_json::Value;

use crate::e2e::{ON_COMPLETE, wait_complete};
use crate::project::{Project, loop_section, sim_backend};
use crate::support::wait_for;

/// The sim backend, able to take a resume flag.
fn backend() -> String {
    format!(
        "{}supports_resume = true\nresume_flag = \"--resume '{{id}}'\"\n",
        sim_backend("sim", "")
    )
}

/// Builder (with `rotation` and `env`), adversary (one finding per phase, reviewing `delay_ms`
/// after a claim ping), the finisher.
fn agents(rotation: &str, env: &str, delay_ms: u32) -> String {
    format!(
        r#"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "sim"
dir = "builder"
watch = "heal+stall"
resume = true
rotation = {rotation}
env = {env}

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "sim"
dir = "adversary"
watch = "heal+stall"
env = {{ ORCH_SIM_FIND = "1", ORCH_SIM_REVIEW_DELAY_MS = "{delay_ms}" }}

[[agent]]
name = "finisher"
kind = "task"
backend = "sim"
enabled = false
dir = "watch"
prompt = "The sequence is complete: write the release note and exit."
"#
    )
}

/// A loop of `phases` phases; the adversary reviews 5 s after a claim ping (so that the
/// builder is surely idle, and asked, before the review that ends the phase).
fn project(phases: usize, rotation: &str, env: &str) -> Project {
    let delay = 5000;
    let body = format!(
        "{}{}{}{ON_COMPLETE}",
        backend(),
        agents(rotation, env, delay),
        loop_section(phases, "")
    );
    Project::new(&body)
}

fn of(p: &Project, event: &str, agent: &str) -> Vec<Value> {
    p.events_named(event)
        .into_iter()
        .filter(|e| e["agent"] == agent)
        .collect()
}

fn pane(p: &Project, session: &str) -> String {
    p.server.tmux.capture_history(session).unwrap_or_default()
}

fn pane_pid(p: &Project, session: &str) -> Option<u32> {
    p.server.tmux.fleet().ok()?.get(session)?.pid
}

#[test]
fn the_builder_rotated_at_its_context_threshold_completes_the_loop_with_no_handoff_pinged_twice() {
    let p = project(
        2,
        r#"{ at_context_pct = 60, handoff_timeout = "40s" }"#,
        r#"{ ORCH_SIM_CONTEXT_START = "10", ORCH_SIM_CONTEXT_STEP = "25", ORCH_SIM_HOOKS = "1" }"#,
    );
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(120), || !of(&p, "rotated", "builder")
            .is_empty()),
        "no rotation: {:#?}",
        p.events()
    );
    // Right after the rotation: the note is in the new kickoff, the old session had a resume
    // id, and the new process was not given it.
    let kickoff = std::fs::read_to_string(p.log_dir().join("state/kickoff-t-builder.txt")).unwrap();
    assert!(
        kickoff.contains("read machine-docs/HANDOFF-builder.md first"),
        "{kickoff}"
    );
    assert!(p.log_dir().join("state/builder.id").exists());
    assert!(
        wait_for(Duration::from_secs(20), || pane(&p, "t-builder").contains(
            "Read the handoff note machine-docs/HANDOFF-builder.md"
        )),
        "{}",
        pane(&p, "t-builder")
    );
    assert!(
        !pane(&p, "t-builder").contains("resumed"),
        "{}",
        pane(&p, "t-builder")
    );
    // status --json shows the new session's fill and where it comes from.
    assert!(
        wait_for(Duration::from_secs(20), || {
            let v: Value = serde_json::from_str(&p.orch_ok(&["status", "--json"])).unwrap();
            v["agents"].as_array().unwrap().iter().any(|a| {
                a["name"] == "builder"
                    && a["context_source"] == "statusline"
                    && a["context_pct"].as_f64().is_some_and(|x| x < 60.0)
            })
        }),
        "{}",
        p.orch_ok(&["status", "--json"])
    );
    wait_complete(&p, Duration::from_secs(180));
    let requested = of(&p, "rotation_requested", "builder");
    let rotated = of(&p, "rotated", "builder");
    assert!(!rotated.is_empty());
    assert_eq!(
        requested.len(),
        rotated.len(),
        "{requested:#?} {rotated:#?}"
    );
    assert!(
        p.events_named("rotation_failed").is_empty(),
        "{:#?}",
        p.events()
    );
    assert_eq!(requested[0]["reason"], "context");
    assert!(requested[0]["context_pct"].as_f64().unwrap() >= 60.0);
    assert_ne!(rotated[0]["old_session"], rotated[0]["new_session"]);
    // The note on the remote ends with the marker of the request.
    let note = crate::gitfix::git(
        &p.git.remote,
        &["show", "main:machine-docs/HANDOFF-builder.md"],
    );
    assert!(
        note.contains(&format!(
            "[orch:handoff {}]",
            requested.last().unwrap()["id"].as_str().unwrap()
        )),
        "{note}"
    );
    // Every claim and review was pinged exactly once, none had to be redelivered.
    let pings = p.events_named("ping");
    let handoffs: Vec<&Value> = pings
        .iter()
        .filter(|e| matches!(e["reason"].as_str(), Some("claim" | "review")))
        .collect();
    // No claim or review commit is pinged twice. A review pushed while the builder was being
    // rotated waits for the new session; when that session's kickoff (which re-reads git)
    // already finished the phase, the phase advance drops it: at most one such per rotation.
    let remote = crate::gitfix::git(&p.git.remote, &["log", "--format=%H %s", "main"]);
    let handoff_commits: Vec<&str> = remote
        .lines()
        .filter(|l| l.contains(" claim: ") || l.contains(" review: "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(handoff_commits.len(), 8, "{remote}");
    let mut unpinged = 0;
    for sha in &handoff_commits {
        let n = handoffs
            .iter()
            .filter(|e| {
                e["commits"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|x| x == sha))
            })
            .count();
        assert!(n <= 1, "{sha} pinged {n} times: {handoffs:#?}\n{remote}");
        unpinged += usize::from(n == 0);
    }
    assert!(
        unpinged <= rotated.len(),
        "{unpinged} handoffs never pinged: {handoffs:#?}\n{remote}"
    );
    // What the rotated builder was sent all reached it.
    assert!(
        handoffs
            .iter()
            .filter(|e| e["agent"] == "builder")
            .all(|e| e["delivered"] == true),
        "{handoffs:#?}"
    );
    assert!(
        !pings.iter().any(|e| e["reason"] == "redeliver"),
        "{pings:#?}"
    );
    let samples = of(&p, "context_sample", "builder");
    assert!(
        samples.iter().any(|s| s["source"] == "statusline"),
        "{samples:#?}"
    );
    p.orch_ok(&["down"]);
}

/// A one-phase loop whose builder is asked for its note after its first review and answers
/// with `fault`; returns the project once `rotation_failed` was logged.
fn failed_rotation(fault: &str, timeout: &str) -> (Project, Value, Option<u32>) {
    let rotation = format!(r#"{{ every_iterations = 1, handoff_timeout = "{timeout}" }}"#);
    let env = format!(r#"{{ ORCH_SIM_FAULT = "{fault}" }}"#);
    let p = project(1, &rotation, &env);
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(90), || !of(
            &p,
            "rotation_requested",
            "builder"
        )
        .is_empty()),
        "no rotation request: {:#?}",
        p.events()
    );
    let pid = pane_pid(&p, "t-builder");
    assert!(
        wait_for(Duration::from_secs(60), || !of(
            &p,
            "rotation_failed",
            "builder"
        )
        .is_empty()),
        "no rotation_failed: {:#?}",
        p.events()
    );
    let failed = of(&p, "rotation_failed", "builder").remove(0);
    (p, failed, pid)
}

fn assert_old_session_kept(p: &Project, pid: Option<u32>) {
    assert!(pid.is_some());
    assert_eq!(
        pane_pid(p, "t-builder"),
        pid,
        "the old session keeps running"
    );
    assert!(of(p, "rotated", "builder").is_empty());
    let attention = of(p, "needs_attention", "builder");
    assert!(
        attention.iter().any(|e| e["state"] == "rotation_failed"),
        "{attention:#?}"
    );
    // The loop goes on in the same session: the held review is typed after the failure.
    wait_complete(p, Duration::from_secs(90));
    assert_eq!(
        of(p, "agent_started", "builder").len(),
        1,
        "{:#?}",
        p.events()
    );
    p.orch_ok(&["down"]);
}

#[test]
fn a_dirty_tree_after_the_note_fails_the_rotation_and_keeps_the_old_session() {
    let (p, failed, pid) = failed_rotation("dirty-handoff", "60s");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("uncommitted-builder.txt"), "{reason}");
    assert_old_session_kept(&p, pid);
}

#[test]
fn a_missing_note_fails_the_rotation_at_the_timeout_and_keeps_the_old_session() {
    let (p, failed, pid) = failed_rotation("no-handoff", "5s");
    let reason = failed["reason"].as_str().unwrap();
    assert!(reason.contains("no handoff note"), "{reason}");
    assert_old_session_kept(&p, pid);
}

fn hook_ms(p: &Project, event: &str, source: Option<&str>) -> Vec<i64> {
    orch::hooks::read_records(&p.log_dir(), "builder")
        .into_iter()
        .filter(|r| r.event == event && r.source.as_deref() == source)
        .filter_map(|r| chrono::DateTime::parse_from_rfc3339(&r.ts).ok())
        .map(|t| t.timestamp_millis())
        .collect()
}

#[test]
fn an_agent_compacting_after_its_note_is_not_stopped_until_the_compaction_ends() {
    let p = project(
        1,
        r#"{ every_iterations = 1, handoff_timeout = "60s" }"#,
        r#"{ ORCH_SIM_FAULT = "compact-in-handoff", ORCH_SIM_COMPACT_MS = "5000" }"#,
    );
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(120), || !of(&p, "rotated", "builder")
            .is_empty()),
        "no rotation: {:#?}\npane: {}\nhooks: {:#?}\nwatchdog: {}",
        p.events(),
        pane(&p, "t-builder"),
        orch::hooks::read_records(&p.log_dir(), "builder"),
        std::fs::read_to_string(p.log_dir().join("t-watchdog.log")).unwrap_or_default()
    );
    let rotated = of(&p, "rotated", "builder").remove(0);
    let rotated_ms = chrono::DateTime::parse_from_rfc3339(rotated["ts"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let pre = hook_ms(&p, "PreCompact", None);
    let done = hook_ms(&p, "SessionStart", Some("compact"));
    assert_eq!((pre.len(), done.len()), (1, 1), "{pre:?} {done:?}");
    assert!(done[0] - pre[0] >= 4000);
    assert!(
        rotated_ms >= done[0],
        "stopped at {rotated_ms}, compaction ended at {}",
        done[0]
    );
    // The compaction happened during the handoff: no continuation ping for it.
    assert!(
        !p.events_named("ping")
            .iter()
            .any(|e| e["reason"] == "continuation")
    );
    wait_complete(&p, Duration::from_secs(90));
    p.orch_ok(&["down"]);
}

#[test]
fn a_compaction_orch_did_not_ask_for_gets_one_continuation_ping_and_a_rotation_at_the_next_idle() {
    let p = project(
        1,
        r#"{ at_context_pct = 95, handoff_timeout = "60s" }"#,
        r#"{ ORCH_SIM_FAULT = "compact", ORCH_SIM_COMPACT_MS = "1500" }"#,
    );
    p.orch_ok(&["up"]);
    assert!(
        wait_for(Duration::from_secs(90), || !of(&p, "rotated", "builder")
            .is_empty()),
        "no rotation: {:#?}",
        p.events()
    );
    let requested = of(&p, "rotation_requested", "builder");
    assert_eq!(requested[0]["reason"], "compaction", "{requested:#?}");
    wait_complete(&p, Duration::from_secs(90));
    let continuations: Vec<Value> = of(&p, "ping", "builder")
        .into_iter()
        .filter(|e| e["reason"] == "continuation")
        .collect();
    assert_eq!(continuations.len(), 1, "{continuations:#?}");
    assert_eq!(of(&p, "rotated", "builder").len(), 1);
    p.orch_ok(&["down"]);
}

#[test]
fn the_statusline_wraps_the_projects_own_and_records_the_context_window() {
    let body = format!(
        "{}\n[[agent]]\nname = \"worker\"\nbackend = \"sim\"\ndir = \"builder\"\nprompt = \"hi\"\nhooks = true\n",
        sim_backend("sim", "")
    );
    let p = Project::new(&body);
    let claude = p.path("builder/.claude");
    std::fs::create_dir_all(&claude).unwrap();
    std::fs::write(
        claude.join("settings.json"),
        r#"{"statusLine": {"type": "command", "command": "printf 'mine %s' \"$(cat | wc -c)\""}}"#,
    )
    .unwrap();
    p.orch_ok(&["up", "worker"]);
    let settings: Value =
        serde_json::from_slice(&std::fs::read(claude.join("settings.local.json")).unwrap())
            .unwrap();
    let command = settings["statusLine"]["command"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(command.contains(" statusline --wrap "), "{command}");
    assert!(settings["hooks"]["PreCompact"].is_array(), "{settings:#}");
    // Run it as Claude Code does: a shell line, the session JSON on stdin.
    let input = r#"{"session_id":"s1","context_window":{"used_percentage":42.5},"rate_limits":{"five_hour":{"used_percentage":7}}}"#;
    let mut child = std::process::Command::new("sh")
        .args(["-c", &command])
        .env("ORCH_AGENT", "worker")
        .env("ORCH_LOG_DIR", p.log_dir())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("mine {}", input.len()),
        "the wrapped statusline's output, unchanged, with the same stdin"
    );
    let rec: Value = serde_json::from_slice(
        &std::fs::read(p.log_dir().join("state/context/worker.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["context_pct"], 42.5);
    assert_eq!(rec["rate_limits"]["five_hour"]["used_percentage"], 7);
    let status: Value = serde_json::from_str(&p.orch_ok(&["status", "--json"])).unwrap();
    let worker = &status["agents"][0];
    assert_eq!(worker["context_pct"], 42.5, "{status:#}");
    assert_eq!(worker["context_source"], "statusline");
    p.orch_ok(&["down"]);
}
