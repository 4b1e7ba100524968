//! Jobs end to end: the headless sim as the agent, a bare repo in a temp dir as the forge's git,
//! a stub script as the PR command; foreground runs, the watchdog's scheduler, the API.
mod api;
mod fixture;

use std::time::Duration;

use serde_json::Value;

use crate::gitfix::git;
use crate::support::wait_for;
use fixture::JobProject;

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn a_job_run_pushes_its_branch_and_the_pr_stub_gets_the_argv() {
    let p = JobProject::new(3, "");
    let url = p.url();
    let out = p.orch(&["job", "run", "--repo", &url, "--json", "Fix the parser bug"]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["reason"], "ok");
    let branch = job["branch"].as_str().unwrap().to_string();
    assert_eq!(branch, "orch/job-1-fix-the-parser-bug");
    assert_eq!(job["pr"]["state"], "opened");
    assert_eq!(job["pr"]["url"], "https://forge.example/pr/1");
    assert_eq!(job["cost_usd"], 0.0123);
    // The branch is on the forge, with the job's commit on top of main.
    let tip = git(
        &p.git.remote,
        &["rev-parse", &format!("refs/heads/{branch}")],
    );
    assert_eq!(job["commits"][0].as_str(), Some(tip.as_str()));
    assert_eq!(
        git(&p.git.remote, &["rev-parse", &format!("{tip}~1")]),
        p.git.remote_tip()
    );
    // The stub got exactly {branch} {base} {title} {body_file}.
    let args = std::fs::read_to_string(p.dir().join("stub.args")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let body_file = p.log_dir().join("jobs/1/pr-body.md");
    assert_eq!(
        args,
        vec![
            branch.as_str(),
            "main",
            "Fix the parser bug",
            body_file.to_str().unwrap()
        ]
    );
    // Success removes the worktree; result.json is written; the events are logged.
    assert!(!p.log_dir().join("jobs/1/worktree").exists());
    let result: Value = serde_json::from_str(
        &std::fs::read_to_string(p.log_dir().join("jobs/1/result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(result["status"], "succeeded");
    let events = std::fs::read_to_string(p.log_dir().join("events.jsonl")).unwrap();
    for e in ["job_queued", "job_started", "job_finished"] {
        assert!(
            events.contains(&format!("\"event\":\"{e}\"")),
            "{e} missing: {events}"
        );
    }
}

#[test]
fn a_failing_pr_command_leaves_a_succeeded_job_with_pr_failed_and_pr_redoes_it() {
    let p = JobProject::new(3, "");
    let url = p.url();
    let out = p.orch(&["job", "run", "-p", "badpr", "--repo", &url, "Add a flag"]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    let job = p.job("1");
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["pr"]["state"], "pr_failed");
    assert!(
        job["pr"]["error"]
            .as_str()
            .unwrap()
            .contains("exited with 3")
    );
    // The failed job's branch was pushed; `orch job pr` redoes the step (still failing here).
    let out = p.orch(&["job", "pr", "1", "--json"]);
    assert!(!out.status.success());
    assert_eq!(p.job("1")["pr"]["state"], "pr_failed");
}

#[test]
fn an_agent_error_object_fails_the_job_and_keeps_its_worktree() {
    let p = JobProject::new(3, "");
    let out = p.orch(&["job", "run", "-p", "err", "--repo", &p.url(), "Do it"]);
    assert_eq!(out.status.code(), Some(1), "{}", fixture::text(&out));
    let job = p.job("1");
    assert_eq!(job["status"], "failed");
    assert_eq!(job["reason"], "agent_error");
    assert!(job["error"].as_str().unwrap().contains("API Error"));
    assert!(p.log_dir().join("jobs/1/worktree").is_dir());
    // clean removes it.
    let out = p.orch(&["job", "clean", "--older-than", "0s"]);
    assert!(out.status.success());
    assert!(!p.log_dir().join("jobs/1").exists());
}

#[test]
fn a_dirty_tree_is_auto_committed_and_no_changes_gives_no_changes() {
    let p = JobProject::new(3, "");
    let out = p.orch(&[
        "job",
        "run",
        "-p",
        "dirty",
        "--repo",
        &p.url(),
        "Leave it dirty",
    ]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    let job = p.job("1");
    assert_eq!(job["commits"].as_array().unwrap().len(), 1);
    assert_eq!(job["pr"]["state"], "opened");
    let out = p.orch(&[
        "job",
        "run",
        "-p",
        "nochange",
        "--repo",
        &p.url(),
        "Change nothing",
    ]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    assert_eq!(p.job("2")["pr"]["state"], "no_changes");
}

#[test]
fn a_job_after_a_failed_one_fails_with_dependency_failed() {
    let p = JobProject::new(3, "");
    let out = p.orch(&["job", "run", "-p", "err", "--repo", &p.url(), "First"]);
    assert!(!out.status.success());
    let out = p.orch(&["job", "run", "--after", "1", "--repo", &p.url(), "Second"]);
    assert_eq!(out.status.code(), Some(1), "{}", fixture::text(&out));
    let job = p.job("2");
    assert_eq!(job["status"], "failed");
    assert_eq!(job["reason"], "dependency_failed");
    assert!(job["times"]["started"].is_null(), "it never started");
}

#[test]
fn a_timeout_leaves_no_process_of_the_group() {
    let p = JobProject::new(3, "");
    let out = p.orch(&[
        "job",
        "run",
        "-p",
        "hang",
        "--timeout",
        "2s",
        "--repo",
        &p.url(),
        "Hang",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", fixture::text(&out));
    let job = p.job("1");
    assert_eq!(
        (job["status"].as_str(), job["reason"].as_str()),
        (Some("failed"), Some("timeout"))
    );
    let pids = p.sim_pids();
    assert_eq!(pids.len(), 2, "the sim and its grandchild");
    for pid in pids {
        assert!(
            !pid_alive(pid),
            "process {pid} of the job's group is still there"
        );
    }
}

#[test]
fn cancel_stops_the_group_and_ends_cancelled() {
    let p = JobProject::new(3, "");
    let mut run = p
        .orch_cmd(&[
            "job",
            "run",
            "-p",
            "hang",
            "--repo",
            &p.url(),
            "Hang until cancelled",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(20), || p.sim_pids().len() == 2));
    let out = p.orch(&["job", "cancel", "1"]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("job 1: cancelled"));
    assert_eq!(p.job("1")["status"], "cancelled");
    for pid in p.sim_pids() {
        assert!(!pid_alive(pid), "process {pid} outlived the cancel");
    }
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    // A late transition cannot overwrite cancelled.
    assert_eq!(p.job("1")["reason"], "cancelled");
}

#[test]
fn five_jobs_with_max_parallel_two_never_run_more_than_two_at_once() {
    let p = JobProject::new(2, "");
    p.start_watchdog();
    for i in 1..=5 {
        let out = p.orch(&[
            "job",
            "add",
            "-p",
            "slow",
            "--repo",
            &p.url(),
            &format!("Task {i}"),
        ]);
        assert!(out.status.success(), "{}", fixture::text(&out));
    }
    let ids: Vec<String> = (1..=5).map(|i| i.to_string()).collect();
    let mut args = vec!["job", "wait", "--timeout", "120s"];
    args.extend(ids.iter().map(String::as_str));
    let out = p.orch(&args);
    assert!(out.status.success(), "{}", fixture::text(&out));
    // Overlap of the [started, finished] intervals from the jobs' own records.
    let mut edges = Vec::new();
    for id in &ids {
        let j = p.job(id);
        let t = |k: &str| {
            chrono::DateTime::parse_from_rfc3339(j["times"][k].as_str().unwrap()).unwrap()
        };
        edges.push((t("started"), 1));
        edges.push((t("finished"), -1));
        // Each ran in its own tmux session.
        assert_eq!(j["session"], format!("{}job-{id}", p.prefix()));
    }
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert_eq!(most, 2, "at most two at once, and the limit was used");
}

#[test]
fn a_watchdog_killed_during_a_job_is_adopted_and_a_dead_runner_is_interrupted() {
    let p = JobProject::new(3, "");
    p.start_watchdog();
    let out = p.orch(&[
        "job",
        "add",
        "-p",
        "slow3",
        "--repo",
        &p.url(),
        "Survive a restart",
    ]);
    assert!(out.status.success());
    assert!(wait_for(Duration::from_secs(20), || p.job("1")["stage"] == "agent"));
    p.kill_watchdog();
    p.start_watchdog();
    let out = p.orch(&["job", "wait", "1", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    assert_eq!(p.job("1")["status"], "succeeded");

    // A runner that dies (SIGKILL) leaves its session gone: the job becomes failed/interrupted.
    let out = p.orch(&[
        "job",
        "add",
        "-p",
        "hang",
        "--repo",
        &p.url(),
        "Lose the runner",
    ]);
    assert!(out.status.success());
    assert!(wait_for(Duration::from_secs(20), || p.sim_pids().len() == 2));
    let session = format!("{}job-2", p.prefix());
    let runner: i32 = p
        .tmux
        .tmux
        .display(&session, "#{pane_pid}")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: a process this test's watchdog started.
    unsafe { libc::kill(runner, libc::SIGKILL) };
    assert!(wait_for(Duration::from_secs(20), || p.job("2")["status"] == "failed"));
    assert_eq!(p.job("2")["reason"], "interrupted");
    // Its orphaned agent group was stopped too.
    assert!(wait_for(Duration::from_secs(10), || p
        .sim_pids()
        .iter()
        .all(|&x| !pid_alive(x))));
}

#[test]
fn two_jobs_on_one_url_share_one_clone_and_start_from_the_base_of_their_time() {
    let p = JobProject::new(3, "");
    let first_base = p.git.remote_tip();
    let out = p.orch(&["job", "run", "--repo", &p.url(), "One"]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    let seed = p.git.dir.path().join("seed");
    let second_base = p
        .git
        .commit_and_push(&seed, "moved on", &[("NEW.md", "x\n")]);
    let out = p.orch(&["job", "run", "--repo", &p.url(), "--base", "main", "Two"]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    assert_eq!(
        p.job("1")["base_commit"].as_str(),
        Some(first_base.as_str())
    );
    assert_eq!(
        p.job("2")["base_commit"].as_str(),
        Some(second_base.as_str())
    );
    let clones: Vec<_> = std::fs::read_dir(p.log_dir().join("repos"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "git"))
        .collect();
    assert_eq!(clones.len(), 1, "one bare clone per URL");
}

#[test]
fn list_show_log_and_retry_work_on_finished_jobs() {
    let p = JobProject::new(3, "");
    let out = p.orch(&["job", "run", "-p", "err", "--repo", &p.url(), "Try once"]);
    assert!(!out.status.success());
    let out = p.orch(&["job", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    let out = p.orch(&["job", "log", "1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"type\":\"result\""));
    let out = p.orch(&["job", "retry", "1"]);
    assert!(out.status.success(), "{}", fixture::text(&out));
    let j = p.job("1");
    assert_eq!(
        (j["status"].as_str(), j["attempt"].as_u64()),
        (Some("queued"), Some(1))
    );
    assert!(
        !p.log_dir().join("jobs/1/worktree").exists(),
        "retry clears the kept worktree"
    );
    let out = p.orch(&["job", "show", "9"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_mcp_client_session_over_stdio_lists_tools_and_runs_a_job() {
    use std::io::{BufRead, BufReader, Write};
    let p = JobProject::new(3, "");
    let mut child = p
        .orch_cmd(&["mcp"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = move |v: Value| writeln!(stdin, "{v}").unwrap();
    let mut recv = |id: u64| -> Value {
        loop {
            let line = lines.next().expect("a reply").unwrap();
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    };
    send(
        serde_json::json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"it","version":"1"}}}),
    );
    let init = recv(1);
    assert_eq!(init["result"]["serverInfo"]["name"], "orch");
    send(serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    send(serde_json::json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}));
    let list = recv(2);
    let mut names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "cancel_job",
            "fleet_status",
            "get_job",
            "list_jobs",
            "list_profiles",
            "run_task"
        ]
    );
    send(
        serde_json::json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{
        "name":"run_task","arguments":{"task":"Run over MCP","repo":p.url(),"wait_secs":60}}}),
    );
    let call = recv(3);
    assert_eq!(call["result"]["isError"], false, "{call}");
    let job: Value =
        serde_json::from_str(call["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["pr"]["state"], "opened");
    // A job started this way ran in its own tmux session.
    assert_eq!(job["session"], format!("{}job-1", p.prefix()));
    send(
        serde_json::json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{
        "name":"get_job","arguments":{"id":"42"}}}),
    );
    let missing = recv(4);
    assert_eq!(missing["result"]["isError"], true);
    drop(send);
    assert!(child.wait().unwrap().success());
}

#[test]
fn each_cli_shape_of_the_headless_sim_is_judged_right_with_its_faults() {
    let p = JobProject::new(3, "");
    let folder = p.dir().join("not-a-repo");
    std::fs::create_dir_all(&folder).unwrap();
    let folder = folder.display().to_string();
    let cases = [
        ("claude", "", "succeeded", "ok"),
        ("codex", "", "succeeded", "ok"),
        ("gemini", "", "succeeded", "ok"),
        ("opencode", "", "succeeded", "ok"),
        ("plain", "", "succeeded", "ok"),
        ("claude", "max-turns", "failed", "max_turns"),
        ("gemini", "max-turns", "failed", "max_turns"),
        ("claude", "error", "failed", "agent_error"),
        ("gemini", "error", "failed", "agent_error"),
        ("opencode", "error", "failed", "agent_error"),
        ("codex", "reconnect", "succeeded", "ok"),
        ("codex", "limit", "failed", "limit"),
        ("claude", "limit", "failed", "limit"),
        ("plain", "crash", "failed", "exit"),
    ];
    for (i, (profile, fault, status, reason)) in cases.iter().enumerate() {
        let out = p
            .orch_cmd(&[
                "job", "run", "-p", profile, "--repo", &folder, "--json", "Do it",
            ])
            .env("ORCH_SIM_FAULT", fault)
            .output()
            .unwrap();
        let id = (i + 1).to_string();
        let job = p.job(&id);
        assert_eq!(
            (job["status"].as_str(), job["reason"].as_str()),
            (Some(*status), Some(*reason)),
            "{profile} with {fault:?}: {}",
            fixture::text(&out)
        );
        assert_eq!(out.status.success(), *status == "succeeded");
        if *status == "succeeded" && *profile != "plain" {
            assert!(
                job["session_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("sim-")),
                "{profile}: {job}"
            );
        }
        // A folder that is not a git repository runs in place: no branch, no PR.
        assert!(job["branch"].is_null());
    }
}
