//! Agents on another host over a real sshd on 127.0.0.1 (a dedicated unprivileged user with its
//! own tmux server): start, status, pings, logs, healing, a host going away and coming back, a
//! stopped master connection, and secrets that never show in any process's argv or log.
pub(crate) mod fixture;
mod looping;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::need_sshd;
use crate::sshd::USER;
use crate::support::{orch_cmd, wait_for};
use fixture::{ArgvWatch, FAR, HostProject, files_containing};

#[test]
fn a_remote_agent_starts_shows_in_status_takes_pings_and_keeps_its_secret_out_of_argv() {
    need_sshd!();
    let p = HostProject::new(FAR);
    let watch = ArgvWatch::start(&p.secret);
    p.orch_ok(&["up", "far"]);
    assert!(p.remote_has("t-far"), "no session t-far on the host");
    assert!(
        wait_for(Duration::from_secs(10), || p.remote_file("far/.orch/token")
            == p.secret),
        "the secret never reached the agent on the host"
    );

    assert_eq!(
        p.remote_file("far/NOTES.md"),
        "I am far\n",
        "files are made on the host"
    );
    let status = p.status();
    let far = &status["agents"][0];
    assert_eq!(far["host"], "lab", "{status:#}");
    assert_eq!(far["running"], true, "{status:#}");
    assert_eq!(far["command"], "sh", "{status:#}");
    let host = &status["hosts"][0];
    assert_eq!(host["name"], "lab", "{status:#}");
    assert_eq!(host["reachable"], true, "{status:#}");
    assert!(
        host["tmux_version"].as_str().unwrap().starts_with("tmux"),
        "{status:#}"
    );
    assert!(host["latency_ms"].is_u64(), "{status:#}");
    assert!(host["error"].is_null(), "{status:#}");
    let table = p.orch_ok(&["status"]);
    assert!(table.starts_with("HOST"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lab") && l.contains("far")),
        "{table}"
    );

    // Pings (typed, and a long one pasted through ssh's stdin) land in the remote pane.
    let wd = orch::watchdog::Watchdog::open(&p.config).unwrap();
    assert!(wd.ping_agent("far", "hello from the watchdog"));
    let long = format!("it's a \"long\" $HOME `text`; {}", "x".repeat(300));
    assert!(wd.ping_agent("far", &long));
    assert!(wait_for(Duration::from_secs(10), || {
        let typed = p.remote_file("far/.orch/far.typed");
        typed.contains("hello from the watchdog") && typed.contains(&long)
    }));

    // The watchdog's batched capture: every screen on the host in one call.
    let cfg = orch::config::load(&p.config, orch::config::LoadOptions::LENIENT)
        .unwrap()
        .config;
    let screens = orch::fleet::tmux_for(&cfg).capture_many(&["t-far", "t-nosuch"], 40);
    assert!(screens["t-far"].contains("ready"), "{screens:?}");
    assert!(!screens.contains_key("t-nosuch"), "{screens:?}");

    // The session log is on the host, read over ssh.
    let logs = p.orch_ok(&["logs", "far", "-n", "5"]);
    assert!(logs.contains("ready"), "{logs}");
    let mut follow = p
        .cmd(&["logs", "far", "-f", "-n", "5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
        while !first.contains("ready") && out.read_line(&mut first).unwrap_or(0) > 0 {}
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    assert!(first.contains("ready"), "logs -f printed {first:?}");

    let seen = watch.finish();
    assert!(
        seen.is_empty(),
        "the secret was in a process's argv: {seen:#?}"
    );
    let leaked = files_containing(&p.log_dir(), &p.secret);
    assert!(
        leaked.is_empty(),
        "the secret is in local files: {leaked:?}"
    );
    let remote_logs = files_containing(&p.base.join("far/.orch"), &p.secret);
    assert_eq!(
        remote_logs,
        [p.base.join("far/.orch/token")],
        "the secret is in a file on the host other than the agent's own"
    );

    let master = p.master_pid().expect("a master connection");
    p.orch_ok(&["down"]);
    assert!(!p.remote_has("t-far"), "down left t-far on the host");
    assert!(
        wait_for(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{master}"
        ))
        .exists()
            || std::fs::read_to_string(format!("/proc/{master}/stat"))
                .is_ok_and(|s| s.contains(") Z"))),
        "down left the master connection running"
    );
}

#[test]
fn an_unknown_host_is_a_config_error_naming_agent_and_host() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agents.toml");
    std::fs::write(
        &config,
        "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[backend.b]\nbin = \"true\"\n\
         [[agent]]\nname = \"adversary\"\nbackend = \"b\"\nhost = \"lab\"\ndir = \"/x\"\n",
    )
    .unwrap();
    let out = orch_cmd(&config, "unused", dir.path(), &["validate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agents.toml:9:8: agent adversary: unknown host \"lab\""),
        "{err}"
    );
}

#[test]
fn a_silent_host_makes_its_agents_unreachable_not_restarted_and_healing_resumes_when_it_is_back() {
    need_sshd!();
    let p = HostProject::new(FAR);
    p.orch_ok(&["up"]);
    let gone = |n: usize| {
        wait_for(Duration::from_secs(30), || {
            p.events_for("healed", "far") >= n
        })
    };

    // A session killed on the host is healed.
    assert!(
        p.remote_tmux(&["kill-session", "-t", "=t-far"])
            .status
            .success()
    );
    assert!(
        gone(1),
        "the killed session was not healed: {:#?}",
        p.events()
    );
    assert!(wait_for(Duration::from_secs(10), || p.remote_has("t-far")));

    // The host goes away: unreachable, logged once, nothing restarted, status stays quick.
    let starts = p.events_for("agent_started", "far");
    p.sshd.stop();
    assert!(
        wait_for(Duration::from_secs(20), || p
            .events_for("host_unreachable", "")
            == 1),
        "no host_unreachable: {:#?}",
        p.events()
    );
    let t = Instant::now();
    let far = p.agent_status("far");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "status took {:?}",
        t.elapsed()
    );
    assert_eq!(far["state"], "unreachable", "{far:#}");
    let status = p.status();
    assert_eq!(status["hosts"][0]["reachable"], false, "{status:#}");
    assert!(status["hosts"][0]["error"].is_string(), "{status:#}");
    // Its session goes for real while the host is away; nothing may happen until it is back.
    assert!(
        p.remote_tmux(&["kill-session", "-t", "=t-far"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(p.events_for("host_unreachable", ""), 1, "{:#?}", p.events());
    assert_eq!(
        p.events_for("healed", "far"),
        1,
        "restarted on a silent host"
    );
    assert_eq!(p.events_for("agent_started", "far"), starts);

    // Back: host_back once, and what is really gone is healed.
    p.sshd.resume();
    assert!(
        wait_for(Duration::from_secs(30), || p.events_for("host_back", "")
            == 1),
        "no host_back: {:#?}",
        p.events()
    );
    assert!(
        gone(2),
        "the session lost while away was not healed: {:#?}",
        p.events()
    );
    assert!(wait_for(Duration::from_secs(10), || p.remote_has("t-far")));
    assert_eq!(
        p.agent_status("far")["state"]
            .as_str()
            .map(|s| s != "unreachable"),
        Some(true)
    );
}

#[test]
fn a_stopped_master_or_a_silent_server_hangs_no_verb_and_no_tick() {
    need_sshd!();
    let p = HostProject::new(FAR);
    p.orch_ok(&["up"]);
    assert!(p.remote_has("t-far"));
    let master = p.master_pid().expect("a master connection");
    // SAFETY: stopping the ssh master orch started for this test.
    unsafe { libc::kill(master, libc::SIGSTOP) };

    // A verb: a stopped master is seen and replaced (or the call times out): never a hang.
    let t = Instant::now();
    let _ = p.agent_status("far");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "status hung: {:?}",
        t.elapsed()
    );
    let far = p.agent_status("far");
    assert_eq!(far["running"], true, "{far:#}");
    assert_ne!(
        p.master_pid(),
        Some(master),
        "the stopped master is still in use"
    );
    // The watchdog's ticks go on: a session killed on the host is healed.
    assert!(
        p.remote_tmux(&["kill-session", "-t", "=t-far"])
            .status
            .success()
    );
    assert!(
        wait_for(Duration::from_secs(30), || p.events_for("healed", "far")
            == 1),
        "the watchdog never got past the stopped master: {:#?}",
        p.events()
    );

    // The server stops answering (every sshd process stopped, connections open): each call
    // times out, the host is unreachable, and the verb still returns in bounded time.
    let sshd = p.sshd.pid().unwrap();
    let mut stopped = vec![sshd];
    stopped.extend(crate::sshd::descendants(sshd));
    for pid in &stopped {
        // SAFETY: stopping processes of this test's sshd.
        unsafe { libc::kill(*pid, libc::SIGSTOP) };
    }
    let t = Instant::now();
    let far = p.agent_status("far");
    let took = t.elapsed();
    // The watchdog's tick times out too, and says so once.
    let unreachable = wait_for(Duration::from_secs(20), || {
        p.events_for("host_unreachable", "") == 1
    });
    for pid in &stopped {
        unsafe { libc::kill(*pid, libc::SIGCONT) };
    }
    assert!(took < Duration::from_secs(12), "status hung: {took:?}");
    assert_eq!(far["state"], "unreachable", "{far:#}");
    assert!(
        unreachable,
        "the watchdog's tick never timed out: {:#?}",
        p.events()
    );
    assert!(
        wait_for(Duration::from_secs(30), || p.events_for("host_back", "")
            == 1
            && p.agent_status("far")["running"] == true),
        "no recovery: {:#?}",
        p.events()
    );
    assert_eq!(p.events_for("healed", "far"), 1, "{:#?}", p.events());
}

#[test]
fn orch_hosts_reports_a_ready_host_and_says_what_to_fix_on_a_broken_one() {
    need_sshd!();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = HostProject::new(&format!(
        "[host.dead]\nssh = \"{USER}@127.0.0.1\"\nssh_options = [\"-p\", \"{closed}\", \"-o\", \"StrictHostKeyChecking=no\"]\n\
         [host.notmux]\nssh = \"{USER}@127.0.0.1\"\nssh_options = [\"-p\", \"PORT\", \"-i\", \"KEY\", \"-o\", \"StrictHostKeyChecking=no\", \"-o\", \"UserKnownHostsFile=/dev/null\"]\norch_bin = \"/nonexistent/orch\"\n"
    ));
    // The second host is the same sshd with a missing orch_bin.
    let text = std::fs::read_to_string(&p.config)
        .unwrap()
        .replace("PORT", &p.sshd.port.to_string())
        .replace("KEY", &p.sshd.key.display().to_string());
    std::fs::write(&p.config, text).unwrap();
    let out = p.orch(&["hosts", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = |n: &str| {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == n)
            .cloned()
            .unwrap()
    };
    let lab = host("lab");
    assert_eq!(lab["reachable"], true, "{v:#}");
    assert!(
        lab["tmux_version"].as_str().unwrap().starts_with("tmux"),
        "{v:#}"
    );
    assert!(
        lab["orch_version"].as_str().unwrap().starts_with("orch "),
        "{v:#}"
    );
    assert!(lab["latency_ms"].is_u64(), "{v:#}");
    assert_eq!(lab["problems"], serde_json::json!([]), "{v:#}");
    let dead = host("dead");
    assert_eq!(dead["reachable"], false, "{v:#}");
    let problem = dead["problems"][0].as_str().unwrap();
    assert!(problem.contains("host dead is unreachable"), "{problem}");
    let notmux = host("notmux");
    assert_eq!(notmux["reachable"], true, "{v:#}");
    let problem = notmux["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("orch_bin \"/nonexistent/orch\" does not run on host notmux"),
        "{problem}"
    );
    let table = String::from_utf8_lossy(&p.orch(&["hosts"]).stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lab") && l.contains(" ok ")),
        "{table}"
    );
    assert!(table.contains("PROBLEM"), "{table}");
}
