//! Observability: the watchdog's HTTP API on its Unix socket, `orch hook` records reaching
//! `status --json`, the Claude settings merge and a SessionStart id resuming the next launch.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{TempDir, TmuxServer, orch_bin, orch_cmd, stdout_ok, wait_for};

/// A small project: `[defaults]` on a private tmux server, a `sleep` backend, `body` appended.
struct Fx {
    _dir: TempDir,
    root: PathBuf,
    server: TmuxServer,
    config: PathBuf,
}

const SLEEP_BACKEND: &str = r#"
[backend.sleeper]
bin = "sleep 1000"
prompt_delivery = "exec"
process_name = "sleep"
"#;

impl Fx {
    fn new(body: &str) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let server = TmuxServer::new();
        let config = root.join("agents.toml");
        let text = format!(
            "[defaults]\nsession_prefix = \"o-\"\nlog_dir = \".orch\"\ntmux_socket = \"{}\"\n\n[watchdog]\nsignal_interval = 1\nheavy_interval = 1\n{body}",
            server.socket
        );
        std::fs::write(&config, text).unwrap();
        Fx {
            _dir: dir,
            root,
            server,
            config,
        }
    }

    fn log_dir(&self) -> PathBuf {
        self.root.join(".orch")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        orch_cmd(&self.config, &self.server.socket, &self.root, args)
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout_ok(self.cmd(args), args)
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    fn agent_status(&self, name: &str) -> Value {
        let s = self.status();
        s["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap()
    }

    /// `orch hook EVENT` as the agent `agent` would run it, with `stdin`.
    fn hook(&self, agent: &str, event: &str, stdin: &str) -> Output {
        let mut child = Command::new(orch_bin())
            .args(["hook", event])
            .env("ORCH_AGENT", agent)
            .env("ORCH_LOG_DIR", self.log_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A foreground `orch watchdog`, SIGTERM-ed (then killed) on drop.
struct Watchdog(Child);

impl Watchdog {
    fn stop(&mut self) {
        let pid = self.0.id() as libc::pid_t;
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let done = wait_for(Duration::from_secs(10), || {
            matches!(self.0.try_wait(), Ok(Some(_)))
        });
        if !done {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// One HTTP/1.1 request over the Unix socket: (status code, JSON body).
fn http(sock: &Path, method: &str, path: &str) -> (u16, Value) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: orch\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let code = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn api_serves_each_read_route_and_refuses_writes() {
    let fx = Fx::new(&format!(
        "{SLEEP_BACKEND}\n[[agent]]\nname = \"builder\"\nbackend = \"sleeper\"\nprompt = \"hi\"\nwatch = \"none\"\n"
    ));
    fx.ok(&["up", "builder"]);
    let sock = fx.log_dir().join("orch.sock");
    std::fs::create_dir_all(fx.log_dir()).unwrap();
    std::fs::write(&sock, "stale").unwrap();
    let mut wd = Watchdog(fx.cmd(&["watchdog"]).stderr(Stdio::null()).spawn().unwrap());
    assert!(
        wait_for(Duration::from_secs(15), || UnixStream::connect(&sock)
            .is_ok()),
        "the API socket never answered"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let (code, health) = http(&sock, "GET", "/v1/health");
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["state"], "running");
    assert!(health["uptime_secs"].is_u64(), "{health}");
    assert!(health.get("phase").is_some(), "{health}");

    let (code, agents) = http(&sock, "GET", "/v1/agents");
    assert_eq!(code, 200);
    let list = agents["agents"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "builder");
    assert_eq!(list[0]["running"], true);
    assert!(list[0]["pid"].is_u64(), "{agents}");

    let (code, one) = http(&sock, "GET", "/v1/agents/builder");
    assert_eq!(code, 200);
    assert_eq!(one["session"], "o-builder");
    let (code, missing) = http(&sock, "GET", "/v1/agents/nobody");
    assert_eq!(code, 404);
    assert!(missing["error"].as_str().unwrap().contains("nobody"));
    assert_eq!(http(&sock, "GET", "/v1/nothing").0, 404);

    assert!(wait_for(Duration::from_secs(10), || {
        let (_, ev) = http(&sock, "GET", "/v1/events?since=0");
        ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "watchdog_started")
    }));
    let (code, ev) = http(&sock, "GET", "/v1/events?since=0");
    assert_eq!(code, 200);
    let events = ev["events"].as_array().unwrap();
    assert_eq!(events[0]["event"], "agent_started");
    assert_eq!(events[0]["line"], 0);
    let next = ev["next"].as_u64().unwrap();
    assert_eq!(next as usize, events.len());
    let (_, later) = http(&sock, "GET", &format!("/v1/events?since={next}"));
    assert!(later["events"].as_array().unwrap().is_empty(), "{later}");
    let (_, tail) = http(&sock, "GET", "/v1/events?since=1");
    assert_eq!(tail["events"][0]["line"], 1);
    assert_eq!(http(&sock, "GET", "/v1/events?since=x").0, 400);

    for method in ["POST", "PUT", "DELETE"] {
        let (code, body) = http(&sock, method, "/v1/agents/builder");
        assert_eq!(code, 405, "{method}: {body}");
    }
    // Nothing a refused write sent changed the fleet.
    assert_eq!(fx.agent_status("builder")["running"], true);

    wd.stop();
    assert!(!sock.exists(), "the socket outlived the watchdog");
}

#[test]
fn hook_records_from_stdin_reach_status_json() {
    let fx = Fx::new(&format!(
        "{SLEEP_BACKEND}\n[[agent]]\nname = \"builder\"\nbackend = \"sleeper\"\nprompt = \"hi\"\n"
    ));
    fx.ok(&["up", "builder"]);
    // Hooks are recorded as whole seconds; keep them after the start's second.
    std::thread::sleep(Duration::from_millis(1100));
    for (event, input) in [
        ("SessionStart", r#"{"session_id":"s-1","source":"startup"}"#),
        ("PreToolUse", r#"{"session_id":"s-1","tool_name":"Read"}"#),
        (
            "PreToolUse",
            r#"{"session_id":"s-1","tool_name":"Bash","tool_input":{"command":"ls"}}"#,
        ),
        ("PreToolUse", r#"{"session_id":"s-1","tool_name":"Bash"}"#),
    ] {
        let out = fx.hook("builder", event, input);
        assert!(out.status.success(), "{}", text(&out));
    }
    let a = fx.agent_status("builder");
    assert_eq!(a["state"], "working", "{a}");
    assert_eq!(a["last_tool"], "Bash");
    assert_eq!(a["tool_counts"]["Bash"], 2);
    assert_eq!(a["tool_counts"]["Read"], 1);
    assert!(a["last_tool_at"].is_string(), "{a}");
    assert!(a["last_activity_at"].is_string(), "{a}");
    assert_eq!(a["restarts"], 0);
    // The old fields are all still there.
    for key in [
        "kind", "backend", "model", "session", "watch", "enabled", "running", "command",
    ] {
        assert!(a.get(key).is_some(), "{key} missing: {a}");
    }

    fx.hook(
        "builder",
        "Notification",
        r#"{"message":"Claude needs your permission"}"#,
    );
    assert_eq!(fx.agent_status("builder")["state"], "waiting_input");
    fx.hook("builder", "Stop", "{}");
    assert_eq!(fx.agent_status("builder")["state"], "idle");

    // Garbage input and a missing ORCH_AGENT still exit 0.
    assert!(fx.hook("builder", "Stop", "not json {").status.success());
    let bare = Command::new(orch_bin())
        .args(["hook", "Stop"])
        .env_remove("ORCH_AGENT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(bare.status.success());
    let records = std::fs::read_to_string(fx.log_dir().join("hooks/builder.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 7, "{records}");
    assert!(!records.contains("\"ls\""), "tool input leaked: {records}");

    let table = fx.ok(&["status"]);
    assert!(table.contains("idle"), "{table}");
    assert!(!table.contains('\x1b'), "colour off a terminal: {table}");
    assert!(table.lines().all(|l| l.chars().count() <= 80), "{table}");
}

#[test]
fn hooks_true_merges_the_wiring_and_keeps_the_users_settings() {
    let fx = Fx::new(&format!(
        "{SLEEP_BACKEND}\n[[agent]]\nname = \"builder\"\nbackend = \"sleeper\"\nprompt = \"hi\"\ndir = \"work\"\nhooks = true\n"
    ));
    let claude = fx.root.join("work/.claude");
    std::fs::create_dir_all(&claude).unwrap();
    let user = r#"{
  "permissions": {"allow": ["Bash(npm test)"]},
  "env": {"FOO": "1"},
  "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "guard.sh"}]}]}
}"#;
    std::fs::write(claude.join("settings.local.json"), user).unwrap();
    // The project's own statusline (read before the user's, which stays unread).
    std::fs::write(
        claude.join("settings.json"),
        r#"{"statusLine": {"type": "command", "command": "echo mine"}}"#,
    )
    .unwrap();
    fx.ok(&["up", "builder"]);
    let read = || -> Value {
        serde_json::from_slice(&std::fs::read(claude.join("settings.local.json")).unwrap()).unwrap()
    };
    let s = read();
    assert_eq!(s["permissions"]["allow"][0], "Bash(npm test)");
    assert_eq!(s["env"]["FOO"], "1");
    let pre = s["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre[0]["hooks"][0]["command"], "guard.sh");
    let orch = shell_words::quote(&orch_bin().display().to_string()).into_owned();
    for event in orch::hooks::HOOK_EVENTS {
        let cmds: Vec<&str> = s["hooks"][event]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| e["hooks"].as_array().unwrap())
            .filter_map(|h| h["command"].as_str())
            .collect();
        assert!(
            cmds.contains(&format!("{orch} hook {event}").as_str()),
            "{event}: {cmds:?}"
        );
    }
    // A second start does not pile up duplicates.
    fx.ok(&["down", "builder"]);
    fx.ok(&["up", "builder"]);
    assert_eq!(read(), s);
}

#[test]
fn session_start_id_resumes_the_next_launch() {
    let dir_probe = tempfile::tempdir().unwrap();
    let script = dir_probe.path().join("fake-claude.sh");
    let orch = shell_words::quote(&orch_bin().display().to_string()).into_owned();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> \"$ORCH_LOG_DIR/$ORCH_AGENT.argv\"\n\
             echo -- >> \"$ORCH_LOG_DIR/$ORCH_AGENT.argv\"\n\
             printf '{{\"session_id\":\"sess-42\",\"source\":\"startup\"}}' | {orch} hook SessionStart\n\
             exec sleep 1000\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fx = Fx::new(&format!(
        r#"
[backend.fake]
bin = "{}"
prompt_delivery = "arg"
supports_resume = true
resume_flag = "--resume '{{id}}'"
process_name = "fake-claude.sh"

[[agent]]
name = "builder"
backend = "fake"
prompt = "do the work"
resume = true
"#,
        script.display()
    ));
    let argv_file = fx.log_dir().join("builder.argv");
    let id_file = fx.log_dir().join("state/builder.id");
    fx.ok(&["up", "builder"]);
    assert!(
        wait_for(Duration::from_secs(10), || id_file.exists()),
        "SessionStart never stored the id"
    );
    assert_eq!(std::fs::read_to_string(&id_file).unwrap().trim(), "sess-42");
    let first = std::fs::read_to_string(&argv_file).unwrap();
    assert!(!first.contains("--resume"), "{first}");
    fx.ok(&["down", "builder"]);
    fx.ok(&["up", "builder"]);
    assert!(
        wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&argv_file)
                .unwrap_or_default()
                .matches("--\n")
                .count()
                >= 2
        }),
        "the second launch never ran"
    );
    let all = std::fs::read_to_string(&argv_file).unwrap();
    let second: Vec<&str> = all.split("--\n").nth(1).unwrap().lines().collect();
    let at = second
        .iter()
        .position(|a| *a == "--resume")
        .expect("no --resume");
    assert_eq!(second[at + 1], "sess-42", "{second:?}");
    assert_eq!(second.last(), Some(&"do the work"));
}
