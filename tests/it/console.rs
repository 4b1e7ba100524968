//! The operator's verbs and console end to end on a private tmux server: `send` (confirmed,
//! logged, and its three refusals), `restart`, `events`, `completions` in a real bash, `man`,
//! and `orch top` driven through a tmux pane at 80x24 and 200x50 (select, send, help, attach,
//! quit with the terminal restored).
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use orch::tmux::{Command as TmuxCommand, NewSession};

use crate::support::{TempDir, TmuxServer, orch_bin, orch_cmd, stdout_ok, wait_for};

/// An agent that shows a prompt and appends every line it reads to `<log_dir>/<agent>.typed`.
const READER: &str = r#"#!/bin/sh
printf '\033[32mready>\033[0m '
while IFS= read -r l; do
  printf '%s\n' "$l" >> "$ORCH_LOG_DIR/$ORCH_AGENT.typed"
  printf '\033[32mready>\033[0m '
done
"#;

struct Project {
    _tmp: TempDir,
    root: PathBuf,
    server: TmuxServer,
    config: PathBuf,
}

impl Project {
    /// Agents `alpha` and `beta` (readers) and a service `web`, prefix `c-`.
    fn new() -> Project {
        let tmp = TempDir::new().unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::write(root.join("reader.sh"), READER).unwrap();
        let server = TmuxServer::new();
        let config = root.join("agents.toml");
        std::fs::write(
            &config,
            format!(
                r#"[defaults]
session_prefix = "c-"
log_dir = ".orch"
tmux_socket = "{}"
backend = "rd"

[backend.rd]
bin = "sh reader.sh"
prompt_delivery = "arg"
process_name = "sh"

[[agent]]
name = "alpha"
prompt = "go"

[[agent]]
name = "beta"
prompt = "go"

[[service]]
name = "web"
command = "sleep 600"
"#,
                server.socket
            ),
        )
        .unwrap();
        Project {
            _tmp: tmp,
            root,
            server,
            config,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        orch_cmd(&self.config, &self.server.socket, &self.root, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(self.cmd(args), args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn typed(&self, agent: &str) -> String {
        std::fs::read_to_string(self.root.join(format!(".orch/{agent}.typed"))).unwrap_or_default()
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.root.join(".orch/events.jsonl")).unwrap_or_default()
    }

    /// Wait until the agent's pane shows its prompt.
    fn wait_ready(&self, agent: &str) {
        let session = format!("c-{agent}");
        let ok = wait_for(Duration::from_secs(10), || {
            self.server
                .tmux
                .capture(&session, 5)
                .is_ok_and(|s| s.contains("ready>"))
        });
        assert!(ok, "{agent} never showed its prompt");
    }
}

fn failure(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "unexpectedly succeeded");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn send_delivers_confirmed_and_logs_a_human_ping() {
    let p = Project::new();
    p.ok(&["up", "alpha"]);
    p.wait_ready("alpha");
    let out = p.ok(&["send", "alpha", "please run the tests"]);
    assert!(out.contains("delivered to alpha"), "{out}");
    // Typed with its ping id (the agent's name prefix and a counter), like every ping.
    assert_eq!(
        p.typed("alpha"),
        "please run the tests [orch:ping a-0001]\n"
    );
    // `-` reads the message from stdin.
    let mut child = p
        .cmd(&["send", "alpha", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(
        p.typed("alpha"),
        "please run the tests [orch:ping a-0001]\nfrom stdin [orch:ping a-0002]\n"
    );
    let pings: Vec<serde_json::Value> = p
        .events()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"] == "ping")
        .collect();
    assert_eq!(pings.len(), 2);
    assert_eq!(pings[0]["agent"], "alpha");
    assert_eq!(pings[0]["reason"], "human");
    assert_eq!(pings[0]["delivered"], true);
    assert_eq!(pings[0]["id"], "a-0001");
    let acked: Vec<serde_json::Value> = p
        .events()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"] == "ping_acked")
        .collect();
    assert_eq!(acked.len(), 2, "{acked:#?}");
    assert_eq!(acked[1]["id"], "a-0002");
    assert_eq!(acked[1]["source"], "screen");
}

#[test]
fn send_to_a_missing_or_stopped_agent_or_with_empty_text_says_so_in_one_sentence() {
    let p = Project::new();
    let (code, err) = failure(&p.run(&["send", "nobody", "hi"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown agent \"nobody\"") && err.contains("alpha, beta"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, err) = failure(&p.run(&["send", "beta", "hi"]));
    assert_eq!(code, 1);
    assert!(err.contains("agent beta is not running"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, err) = failure(&p.run(&["send", "alpha", "  "]));
    assert_eq!(code, 2);
    assert!(err.contains("the message to alpha is empty"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!p.events().contains("\"ping\""), "nothing was sent");
}

#[test]
fn send_to_an_agent_held_by_a_usage_limit_is_refused() {
    let p = Project::new();
    p.ok(&["up", "alpha"]);
    p.wait_ready("alpha");
    let until = chrono::Utc::now().timestamp() + 3600;
    std::fs::write(
        p.root.join(".orch/state/limited-c-alpha.json"),
        format!("{{\"until\": {until}, \"nudges\": 0}}"),
    )
    .unwrap();
    let (code, err) = failure(&p.run(&["send", "alpha", "hi"]));
    assert_eq!(code, 1);
    assert!(err.contains("held by a usage-limit hold"), "{err}");
    assert_eq!(p.typed("alpha"), "");
}

#[test]
fn restart_replaces_the_process_and_logs_stop_then_start() {
    let p = Project::new();
    p.ok(&["up", "alpha", "web"]);
    p.wait_ready("alpha");
    let pid = |s: &str| p.server.tmux.fleet().unwrap().get(s).and_then(|x| x.pid);
    let (a0, w0) = (pid("c-alpha"), pid("c-web"));
    let out = p.ok(&["restart", "alpha", "web"]);
    assert!(
        out.contains("restarted alpha (c-alpha)") && out.contains("restarted web"),
        "{out}"
    );
    let (a1, w1) = (pid("c-alpha"), pid("c-web"));
    assert!(a1.is_some() && a1 != a0, "{a0:?} -> {a1:?}");
    assert!(w1.is_some() && w1 != w0, "{w0:?} -> {w1:?}");
    let events = p.events();
    let stop = events.find("\"agent_stopped\"").expect(&events);
    assert!(events[stop..].contains("\"by\":\"restart\""), "{events}");
    assert!(events[stop..].contains("\"agent_started\""), "{events}");
    let (code, err) = failure(&p.run(&["restart", "ghost"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn events_prints_the_demo_lines_filters_and_keeps_json_lines_unchanged() {
    let p = Project::new();
    let (code, err) = failure(&p.run(&["events"]));
    assert_eq!(code, 1);
    assert!(err.contains("no events yet"), "{err}");
    let log = concat!(
        "{\"ts\":\"2020-01-01T10:00:00Z\",\"event\":\"agent_started\",\"agent\":\"alpha\",\"model\":\"m\"}\n",
        "{\"ts\":\"2020-01-01T10:00:05Z\",\"event\":\"ping\",\"agent\":\"beta\",\"reason\":\"claim\"}\n",
        "{\"ts\":\"2020-01-01T10:00:09Z\",\"event\":\"healed\",\"agent\":\"alpha\",\"reason\":\"stall\"}\n",
    );
    std::fs::create_dir_all(p.root.join(".orch")).unwrap();
    std::fs::write(p.root.join(".orch/events.jsonl"), log).unwrap();
    let human = p.ok(&["events"]);
    let lines: Vec<&str> = human.lines().collect();
    assert_eq!(lines.len(), 3, "{human}");
    assert!(
        lines[1].ends_with("ping               beta       (claim)"),
        "{human}"
    );
    assert!(
        lines[0].ends_with("agent_started      alpha      (model m)"),
        "{human}"
    );
    let only = p.ok(&["events", "--agent", "alpha", "--since", "1"]);
    assert!(
        only.trim()
            .ends_with("healed             alpha      (stall)"),
        "{only}"
    );
    assert_eq!(only.lines().count(), 1);
    let json = p.ok(&["events", "--json", "--event", "ping"]);
    assert_eq!(json, log.lines().nth(1).unwrap().to_string() + "\n");
    assert_eq!(
        p.ok(&["events", "--since", "10m"]),
        "",
        "all older than 10 minutes"
    );
    let (code, err) = failure(&p.run(&["events", "--since", "soonish"]));
    assert_eq!(code, 2, "{err}");
}

#[test]
fn events_follow_prints_what_is_appended() {
    let p = Project::new();
    std::fs::create_dir_all(p.root.join(".orch")).unwrap();
    let path = p.root.join(".orch/events.jsonl");
    std::fs::write(&path, "").unwrap();
    let out_file = p.root.join("follow.out");
    let mut child = p
        .cmd(&["events", "-f", "--event", "ping"])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .spawn()
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    use std::io::Write;
    f.write_all(b"{\"ts\":\"2020-01-01T10:00:00Z\",\"event\":\"healed\",\"agent\":\"a\"}\n")
        .unwrap();
    f.write_all(b"{\"ts\":\"2020-01-01T10:00:01Z\",\"event\":\"ping\",\"agent\":\"zed\",\"reason\":\"review\"}\n")
        .unwrap();
    let seen = wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&out_file).is_ok_and(|t| t.contains("zed"))
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(seen, "{text}");
    assert!(!text.contains("healed"), "{text}");
}

#[test]
fn bash_completion_from_orch_completions_completes_a_verb() {
    let tmp = TempDir::new().unwrap();
    let script = tmp.path().join("orch.bash");
    let out = Command::new(orch_bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&script, &out.stdout).unwrap();
    let probe = r#"source "$1"
COMP_WORDS=(orch rest); COMP_CWORD=1; COMP_LINE="orch rest"; COMP_POINT=${#COMP_LINE}
_orch orch rest orch
printf '%s\n' "${COMPREPLY[@]}""#;
    let ran = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", probe, "probe"])
        .arg(&script)
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&ran.stdout);
    assert_eq!(
        got.trim(),
        "restart",
        "stderr: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(orch_bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let man = Command::new(orch_bin()).arg("man").output().unwrap();
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH orch 1") && man.contains("send"), "{man}");
}

/// `orch top` in its own pane (session `console`) of `server`, `w`x`h`; after it quits, the
/// pane's `stty -a` goes to `stty.txt`.
fn start_console(p: &Project, server: &TmuxServer, w: u16, h: u16) -> PathBuf {
    let stty = p.root.join(format!("stty-{w}x{h}.txt"));
    let argv = [
        "sh",
        "-c",
        r#""$0" --config "$1" top; stty -a > "$2"; exec sleep 600"#,
        &orch_bin().display().to_string(),
        &p.config.display().to_string(),
        &stty.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut spec = NewSession::new("console", &p.root, TmuxCommand::Argv(argv));
    spec.width = Some(w);
    spec.height = Some(h);
    spec.env = vec![("ORCH_TMUX_SOCKET".into(), p.server.socket.clone())];
    server.tmux.new_session(&spec).unwrap();
    stty
}

fn screen_of(server: &TmuxServer) -> String {
    server
        .tmux
        .capture("console", usize::MAX)
        .unwrap_or_default()
}

fn wait_screen(server: &TmuxServer, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let ok = wait_for(Duration::from_secs(10), || cond(&screen_of(server)));
    let s = screen_of(server);
    assert!(ok, "the console never showed {what}:\n{s}");
    s
}

fn keys(server: &TmuxServer, k: &[&str]) {
    server.tmux.send_keys("console", k).unwrap();
}

fn console_round(w: u16, h: u16) {
    let p = Project::new();
    p.ok(&["up", "alpha", "beta"]);
    p.wait_ready("beta");
    let stty = start_console(&p, &p.server, w, h);
    let s = wait_screen(&p.server, "the fleet", |s| {
        s.contains("▶alpha") && s.contains("beta")
    });
    for line in s.lines() {
        assert!(line.chars().count() <= w as usize, "{line}");
    }
    assert!(
        s.contains("watchdog down") && s.contains("alpha: screen"),
        "{s}"
    );
    keys(&p.server, &["j"]);
    wait_screen(&p.server, "beta selected", |s| {
        s.contains("▶beta") && s.contains("beta: screen")
    });
    keys(&p.server, &["s"]);
    wait_screen(&p.server, "the input line", |s| {
        s.contains("message to beta:")
    });
    p.server
        .tmux
        .send_literal("console", "hello from top")
        .unwrap();
    keys(&p.server, &["Enter"]);
    assert!(
        wait_for(Duration::from_secs(10), || p.typed("beta")
            == "hello from top [orch:ping b-0001]\n"),
        "beta never received the message; console:\n{}",
        screen_of(&p.server)
    );
    wait_screen(&p.server, "the delivery", |s| {
        s.contains("delivered to beta")
    });
    wait_screen(&p.server, "the ping in the feed", |s| s.contains("(human)"));
    keys(&p.server, &["?"]);
    wait_screen(&p.server, "the help", |s| {
        s.contains(" keys ") && s.contains("any key closes")
    });
    keys(&p.server, &["x"]);
    wait_screen(&p.server, "the help closed", |s| {
        !s.contains("any key closes")
    });
    keys(&p.server, &["q"]);
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(&stty)
            .is_ok_and(|t| !t.is_empty())),
        "the console did not quit:\n{}",
        screen_of(&p.server)
    );
    let modes = std::fs::read_to_string(&stty).unwrap();
    let words: Vec<&str> = modes.split_whitespace().collect();
    assert!(
        words.contains(&"icanon") && words.contains(&"echo"),
        "terminal left raw: {modes}"
    );
}

#[test]
fn top_at_80x24_selects_sends_shows_help_and_quits_leaving_the_terminal_cooked() {
    console_round(80, 24);
}

#[test]
fn top_at_200x50_selects_sends_shows_help_and_quits_leaving_the_terminal_cooked() {
    console_round(200, 50);
}

#[test]
fn top_attaches_with_enter_and_comes_back_on_detach() {
    let p = Project::new();
    p.ok(&["up", "alpha"]);
    p.wait_ready("alpha");
    // The console runs on a server of its own: Enter attaches (nested) to the fleet's server.
    let outer = TmuxServer::new();
    let stty = start_console(&p, &outer, 100, 30);
    wait_screen(&outer, "the fleet", |s| s.contains("▶alpha"));
    keys(&outer, &["Enter"]);
    wait_screen(&outer, "alpha's own pane", |s| s.starts_with("ready>"));
    keys(&outer, &["C-b", "d"]);
    wait_screen(&outer, "the console again", |s| {
        s.contains("back from alpha") && s.contains("▶alpha")
    });
    keys(&outer, &["q"]);
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(&stty).is_ok_and(|t| t.contains("icanon"))
    }));
}

#[test]
fn top_without_a_terminal_says_so_and_writes_no_escapes() {
    let p = Project::new();
    let out = p
        .cmd(&["top"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (code, err) = failure(&out);
    assert_eq!(code, 2);
    assert!(err.contains("orch top needs a terminal"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn top_leaves_the_terminal_cooked_when_terminated() {
    let p = Project::new();
    let stty = start_console(&p, &p.server, 80, 24);
    wait_screen(&p.server, "the console", |s| s.contains("attention 0"));
    let pid = p.server.tmux.display("console", "#{pane_pid}").unwrap();
    // The pane runs sh, whose child is orch top: signal that child only.
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let top: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child process.
    unsafe {
        libc::kill(top, libc::SIGTERM);
    }
    assert!(wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&stty).is_ok_and(|t| t.contains("icanon"))
    }));
    let modes = std::fs::read_to_string(&stty).unwrap();
    assert!(
        !modes
            .split_whitespace()
            .any(|w| w == "-icanon" || w == "-echo"),
        "{modes}"
    );
}

#[test]
fn top_exits_when_its_terminal_goes_away() {
    let p = Project::new();
    let outer = TmuxServer::new();
    start_console(&p, &outer, 80, 24);
    wait_screen(&outer, "the console", |s| s.contains("attention 0"));
    let pid = outer.tmux.display("console", "#{pane_pid}").unwrap();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let top: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    // The server goes, and the pane's terminal with it.
    drop(outer);
    let gone = wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{top}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    if !gone {
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child process
        // (a console spinning on a closed terminal must not outlive the test).
        unsafe {
            libc::kill(top, libc::SIGKILL);
        }
    }
    assert!(gone, "orch top kept running on a closed terminal");
}
