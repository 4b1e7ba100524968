//! Supervision policies on a private tmux server: restart with backoff and max_restarts,
//! graceful stop, timeout, live reconcile, secrets, worktrees and workspace files.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gitfix::git;
use crate::project::Project;
use crate::support::wait_for;

/// An exec backend running `script` with `sh -c` (the agent's model is `$0`).
fn sh_backend(name: &str, script: &str) -> String {
    format!(
        "\n[backend.{name}]\nbin = '''sh -c \"{script}\" {{model}} '''\nprompt_delivery = \"exec\"\n"
    )
}

fn agent(name: &str, backend: &str, extra: &str) -> String {
    format!("\n[[agent]]\nname = \"{name}\"\nbackend = \"{backend}\"\nmodel = \"m1\"\n{extra}\n")
}

fn ts(e: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(e["ts"].as_str().unwrap()).unwrap()
}

fn for_agent(events: Vec<Value>, name: &str) -> Vec<Value> {
    events.into_iter().filter(|e| e["agent"] == name).collect()
}

fn status_agent(p: &Project, name: &str) -> Value {
    let out = p.orch_ok(&["status", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap()
}

#[test]
fn crash_under_on_failure_restarts_with_growing_delays_then_gives_up() {
    let body = format!(
        "{}{}",
        sh_backend("crash", "sleep 0.2; exit 1"),
        agent(
            "c",
            "crash",
            "restart = \"on-failure\"\nmax_restarts = 3\nrestart_backoff = \"1s\"\nrestart_backoff_max = 10",
        )
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(
        p.wait_events("gave_up", 1, Duration::from_secs(60)),
        "{:#?}",
        p.events()
    );
    let starts = for_agent(p.events_named("agent_started"), "c");
    assert_eq!(starts.len(), 4, "first start + 3 restarts: {starts:#?}");
    assert_eq!(p.events_named("restarted").len(), 3);
    for (i, pair) in starts.windows(2).enumerate() {
        let gap = (ts(&pair[1]) - ts(&pair[0])).to_std().unwrap();
        let backoff = Duration::from_secs(1 << i);
        assert!(
            gap >= backoff,
            "restart {} after {gap:?} < {backoff:?}",
            i + 1
        );
    }
    let exits = p.events_named("agent_exited");
    assert!(exits.iter().all(|e| e["status"] == 1), "{exits:#?}");
    let st = status_agent(&p, "c");
    assert_eq!(st["parked"], "gave_up", "{st}");
    assert_eq!(st["running"], false);
    // Left stopped: no further start over a few ticks.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(for_agent(p.events_named("agent_started"), "c").len(), 4);
    p.orch_ok(&["down"]);
}

#[test]
fn clean_exit_under_on_failure_is_not_restarted_but_always_restarts_both() {
    let body = format!(
        "{}{}{}{}{}",
        sh_backend("ok", "sleep 0.2; exit 0"),
        sh_backend("bad", "sleep 0.2; exit 3"),
        agent(
            "clean",
            "ok",
            "restart = \"on-failure\"\nrestart_backoff = 1"
        ),
        agent("a0", "ok", "restart = \"always\"\nrestart_backoff = 1"),
        agent("a3", "bad", "restart = \"always\"\nrestart_backoff = 1"),
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    let restarted = |name: &str| for_agent(p.events_named("restarted"), name).len();
    assert!(
        wait_for(Duration::from_secs(30), || restarted("a0") >= 1
            && restarted("a3") >= 1),
        "{:#?}",
        p.events()
    );
    let exits = for_agent(p.events_named("agent_exited"), "clean");
    assert_eq!(exits.len(), 1, "{exits:#?}");
    assert_eq!(exits[0]["status"], 0);
    assert_eq!(restarted("clean"), 0);
    assert_eq!(for_agent(p.events_named("agent_started"), "clean").len(), 1);
    let a3 = for_agent(p.events_named("agent_exited"), "a3");
    assert!(a3.iter().all(|e| e["status"] == 3), "{a3:#?}");
    let st = status_agent(&p, "clean");
    assert_eq!(st["last_exit"], 0, "{st}");
    p.orch_ok(&["down"]);
}

#[test]
fn down_kills_a_process_ignoring_ctrl_c_after_its_grace_period_and_keeps_scrollback() {
    let body = format!(
        "{}{}{}{}",
        sh_backend(
            "stubborn",
            "trap '' INT; echo hello-scrollback; while :; do sleep 0.1; done"
        ),
        sh_backend("polite", "echo polite-here; exec sleep 1000"),
        agent("stubborn", "stubborn", "grace_period = 1"),
        agent("polite", "polite", ""),
    );
    let p = Project::new(&body);
    p.orch_ok(&["up", "stubborn", "polite"]);
    let tmux = &p.server.tmux;
    assert!(wait_for(Duration::from_secs(10), || {
        tmux.capture("t-stubborn", 50)
            .is_ok_and(|s| s.contains("hello-scrollback"))
    }));
    let started = Instant::now();
    p.orch_ok(&["down", "stubborn", "polite"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "killed before the grace period: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the polite agent (grace 30 s) should stop on C-c at once: {took:?}"
    );
    assert!(!tmux.has_session("t-stubborn").unwrap());
    assert!(!tmux.has_session("t-polite").unwrap());
    let scroll = std::fs::read_to_string(p.log_dir().join("t-stubborn.scrollback.log")).unwrap();
    assert!(scroll.contains("hello-scrollback"), "{scroll}");
    let polite = std::fs::read_to_string(p.log_dir().join("t-polite.scrollback.log")).unwrap();
    assert!(polite.contains("polite-here"), "{polite}");
}

#[test]
fn an_agent_running_past_its_timeout_is_stopped_and_not_restarted() {
    let body = format!(
        "{}{}",
        sh_backend("long", "exec sleep 1000"),
        agent(
            "slow",
            "long",
            "timeout = \"2s\"\nrestart = \"always\"\nrestart_backoff = 1"
        ),
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(p.wait_events("timed_out", 1, Duration::from_secs(20)));
    let tmux = &p.server.tmux;
    assert!(wait_for(Duration::from_secs(5), || !tmux
        .has_session("t-slow")
        .unwrap()));
    let started = p.events_named("agent_started");
    let stopped_at = ts(&p.events_named("timed_out")[0]);
    assert!((stopped_at - ts(&started[0])).to_std().unwrap() >= Duration::from_secs(2));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(for_agent(p.events_named("agent_started"), "slow").len(), 1);
    assert_eq!(status_agent(&p, "slow")["parked"], "timed_out");
    p.orch_ok(&["down"]);
}

#[test]
fn editing_one_agents_model_restarts_only_that_agent_and_membership_follows_the_config() {
    let body = format!(
        "{}{}{}",
        sh_backend("idle", "exec sleep 1000"),
        agent("a1", "idle", ""),
        agent("a2", "idle", ""),
    );
    let p = Project::new(&body);
    p.orch_ok(&["up"]);
    assert!(p.wait_events("watchdog_started", 1, Duration::from_secs(10)));
    let tmux = &p.server.tmux;
    let pid = |s: &str| tmux.fleet().unwrap().get(s).and_then(|p| p.pid);
    let a2_pid = pid("t-a2");
    assert!(a2_pid.is_some());
    let text = std::fs::read_to_string(&p.config).unwrap();
    let edited = text.replacen("model = \"m1\"", "model = \"m2\"", 1);
    assert_ne!(text, edited);
    std::fs::write(&p.config, &edited).unwrap();
    assert!(
        p.wait_events("reconciled", 1, Duration::from_secs(20)),
        "{:#?}",
        p.events()
    );
    let rec = p.events_named("reconciled");
    assert_eq!(rec[0]["agent"], "a1", "{rec:#?}");
    assert_eq!(for_agent(p.events_named("agent_started"), "a1").len(), 2);
    let a1_start = for_agent(p.events_named("agent_started"), "a1");
    assert_eq!(a1_start[1]["model"], "m2");
    // A few more ticks: nothing else moves.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(for_agent(p.events_named("agent_started"), "a2").len(), 1);
    assert_eq!(p.events_named("reconciled").len(), 1);
    assert_eq!(pid("t-a2"), a2_pid);

    // Add a3, remove a2.
    let without_a2 = edited.replacen(
        "\n[[agent]]\nname = \"a2\"\nbackend = \"idle\"\nmodel = \"m1\"\n",
        "\n",
        1,
    );
    assert_ne!(without_a2, edited);
    std::fs::write(
        &p.config,
        format!("{without_a2}{}", agent("a3", "idle", "")),
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(20), || {
        let f = tmux.fleet().unwrap();
        f.contains("t-a3") && !f.contains("t-a2")
    }));
    let stopped = for_agent(p.events_named("agent_stopped"), "a2");
    assert_eq!(stopped[0]["by"], "reconcile");
    p.orch_ok(&["down", "a1", "a3", "watchdog"]);
}

/// Every file under `dir`, recursively.
fn all_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if e.file_type().unwrap().is_dir() {
            all_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn a_secret_reaches_the_agents_environment_and_nothing_under_log_dir() {
    const SECRET: &str = "tok-SECRET-4711";
    let p = Project::new("");
    let secrets = p.path("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("API_TOKEN"), format!("{SECRET}\n")).unwrap();
    std::fs::write(secrets.join("SHADOWED"), "from-secret\n").unwrap();
    std::fs::write(secrets.join(".hidden"), "x").unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    let seen = p.path("seen");
    let body = format!(
        "{}{}",
        sh_backend(
            "spy",
            "printenv API_TOKEN > ../seen.tmp; printenv SHADOWED >> ../seen.tmp; mv ../seen.tmp ../seen; exec sleep 1000"
        ),
        agent(
            "spy",
            "spy",
            "dir = \"work\"\nsecrets_dir = \"secrets\"\nenv = { SHADOWED = \"from-env\" }\nrestart = \"always\""
        ),
    );
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(&p.config, format!("{text}{body}")).unwrap();
    std::fs::create_dir_all(p.path("work")).unwrap();
    p.orch_ok(&["up"]);
    assert!(wait_for(Duration::from_secs(10), || seen.exists()));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        format!("{SECRET}\nfrom-env\n")
    );
    assert!(p.wait_events("watchdog_started", 1, Duration::from_secs(10)));
    let status = p.orch_ok(&["status", "--json"]);
    assert!(!status.contains(SECRET));
    p.orch_ok(&["down"]);
    let mut files = Vec::new();
    all_files(&p.log_dir(), &mut files);
    assert!(files.len() > 3, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(SECRET), "the secret is in {}", f.display());
    }

    // A secrets dir others can read is refused, naming it (exit 2).
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = p.orch(&["up"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&secrets.display().to_string()), "{err}");
    assert!(err.contains("readable by group or others"), "{err}");
}

#[test]
fn two_worktree_agents_commit_on_their_own_branches_and_down_clean_removes_the_worktrees() {
    let script = "echo $ORCH_AGENT > mine.txt && git add mine.txt && git -c user.name=t -c user.email=t@t.invalid -c commit.gpgsign=false commit -qm \\\"work by $ORCH_AGENT\\\"; exec sleep 1000";
    let body = format!(
        "{}{}{}",
        sh_backend("committer", script),
        agent(
            "w1",
            "committer",
            "worktree = true\nfiles = { \".env\" = \"prompts/env.tmpl\", \"NOTES.md\" = \"prompts/notes.md\" }\nenv = { TOKEN = \"tk\" }",
        ),
        agent("w2", "committer", "worktree = true"),
    );
    let p = Project::new(&body);
    let root = p.dir().to_path_buf();
    std::fs::write(
        p.path("prompts/env.tmpl"),
        "AGENT=${agent.name}\nTOKEN=${TOKEN}\n",
    )
    .unwrap();
    std::fs::write(p.path("prompts/notes.md"), "notes for ${agent.name}\n").unwrap();
    std::fs::write(
        p.path(".gitignore"),
        "/.orch/\n/remote.git/\n/watch/\n/builder/\n/adversary/\n",
    )
    .unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-qm", "project"]);
    p.orch_ok(&["up", "w1", "w2"]);
    let subject = |branch: &str| {
        crate::gitfix::git_cmd(&root)
            .args(["log", "-1", "--format=%s", branch])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    assert!(
        wait_for(Duration::from_secs(15), || subject("orch/w1")
            == "work by w1"
            && subject("orch/w2") == "work by w2"),
        "w1: {:?} w2: {:?}",
        subject("orch/w1"),
        subject("orch/w2")
    );
    assert_eq!(subject("main"), "project");
    let wt1 = p.log_dir().join("worktrees/w1");
    assert_eq!(
        std::fs::read_to_string(wt1.join("mine.txt")).unwrap(),
        "w1\n"
    );
    let env_file = wt1.join(".env");
    assert_eq!(
        std::fs::read_to_string(&env_file).unwrap(),
        "AGENT=w1\nTOKEN=tk\n"
    );
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(wt1.join("NOTES.md")).unwrap(),
        "notes for w1\n"
    );
    // A second start reuses the worktree and its branch.
    p.orch_ok(&["down", "w1"]);
    p.orch_ok(&["up", "w1"]);
    assert!(wait_for(Duration::from_secs(10), || p
        .server
        .tmux
        .has_session("t-w1")
        .unwrap()));
    assert!(wt1.join("mine.txt").exists());

    p.orch_ok(&["down", "--clean"]);
    assert!(!wt1.exists());
    assert!(!p.log_dir().join("worktrees/w2").exists());
    let list = git(&root, &["worktree", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(!git(&root, &["branch", "--list", "orch/w1"]).is_empty());
}
