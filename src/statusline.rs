//! `orch statusline`: Claude Code's statusline command, recording the context window and rate
//! limits per agent (`context.rs`) and printing the user's own statusline unchanged; its wiring.
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// The most stdin the statusline reads, and how long it waits for it.
const MAX_INPUT: u64 = 1 << 20;
const INPUT_WAIT: Duration = Duration::from_secs(2);
/// How long the wrapped statusline may run.
const WRAPPED_TIMEOUT: Duration = Duration::from_secs(10);

/// `orch statusline [--wrap CMD]`: record, then print the wrapped command's output unchanged
/// (or a short `ctx N%` line without one). Never fails the CLI: errors go to stderr.
pub fn run(wrap: Option<&str>) -> ExitCode {
    let input = read_stdin();
    let json: Value = serde_json::from_slice(&input).unwrap_or(Value::Null);
    if let (Some(agent), Some(log_dir)) = (
        std::env::var("ORCH_AGENT").ok().filter(|a| safe_name(a)),
        std::env::var_os("ORCH_LOG_DIR"),
    ) && json.is_object()
        && let Err(e) = crate::context::record_statusline(
            Path::new(&log_dir),
            &agent,
            &json,
            chrono::Utc::now(),
        )
    {
        eprintln!("orch statusline: cannot record the context of {agent}: {e}");
    }
    match wrap.filter(|w| !w.trim().is_empty()) {
        Some(cmd) => run_wrapped(cmd, &input),
        None => {
            let pct = json.get("context_window").and_then(crate::context::pct_of);
            if let Some(p) = pct {
                println!("ctx {p:.0}%");
            }
            ExitCode::SUCCESS
        }
    }
}

fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c))
}

/// Run the user's statusline `cmd` (a shell line, as Claude Code runs it) with the same stdin;
/// its stdout goes out byte for byte, its exit status is ours.
fn run_wrapped(cmd: &str, input: &[u8]) -> ExitCode {
    let child = Command::new("sh")
        .args(["-c", cmd])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orch statusline: cannot run the wrapped statusline: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let bytes = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    let reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        })
    });
    let deadline = Instant::now() + WRAPPED_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    let out = reader.and_then(|h| h.join().ok()).unwrap_or_default();
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
    match status.and_then(|s| s.code()) {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(1),
    }
}

/// Read stdin (at most 1 MiB, at most 2 s; nothing from a terminal).
fn read_stdin() -> Vec<u8> {
    if std::io::IsTerminal::is_terminal(&io::stdin()) {
        return Vec::new();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = io::stdin().take(MAX_INPUT).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx.recv_timeout(INPUT_WAIT).unwrap_or_default()
}

/// The statusline command orch writes: `<orch> statusline [--wrap <cmd>]`.
pub fn statusline_command(orch: &Path, wrapped: Option<&str>) -> String {
    let exe = shell_words::quote(&orch.display().to_string()).into_owned();
    match wrapped {
        Some(w) => format!("{exe} statusline --wrap {}", shell_words::quote(w)),
        None => format!("{exe} statusline"),
    }
}

/// The command `command` wraps when it is one orch wrote (`Some(None)`: orch's, wrapping
/// nothing); `None` when it is not orch's. Pure.
pub fn orch_wrapped(command: &str) -> Option<Option<String>> {
    let words = shell_words::split(command).ok()?;
    let is_orch = words.first().is_some_and(|exe| {
        Path::new(exe)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("orch"))
    }) && words.get(1).is_some_and(|v| v == "statusline");
    if !is_orch {
        return None;
    }
    match words.get(2..) {
        Some([flag, cmd]) if flag == "--wrap" => Some(Some(cmd.clone())),
        _ => Some(None),
    }
}

/// The `statusLine.command` of a settings object, if it has one.
pub fn statusline_of(settings: &Value) -> Option<String> {
    settings
        .pointer("/statusLine/command")
        .and_then(Value::as_str)
        .filter(|c| !c.trim().is_empty())
        .map(String::from)
}

/// Wire orch's statusline into the settings object `root`: the one it has (orch's own keeps
/// what it wrapped; another is wrapped), else `user` (the statusline of the project's or the
/// user's settings, which this file would otherwise hide) is wrapped. Other keys stay. Pure.
pub fn wire(root: &mut Map<String, Value>, orch: &Path, user: Option<String>) {
    let existing = root
        .get("statusLine")
        .and_then(|s| s.get("command").and_then(Value::as_str).map(String::from));
    let wrapped = match existing {
        Some(cmd) => match orch_wrapped(&cmd) {
            Some(inner) => inner,
            None => Some(cmd),
        },
        None => user.filter(|u| orch_wrapped(u).is_none()),
    };
    let mut entry = match root.remove("statusLine") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    entry.insert("type".into(), json!("command"));
    entry.insert(
        "command".into(),
        json!(statusline_command(orch, wrapped.as_deref())),
    );
    entry.entry("padding").or_insert(json!(0));
    root.insert("statusLine".into(), Value::Object(entry));
}

/// The statusline the agent would show without orch's local settings: the project's
/// `.claude/settings.json`, else the user's (`$CLAUDE_CONFIG_DIR` or `~/.claude`).
pub fn user_statusline(agent_dir: &Path) -> Option<String> {
    let read = |p: &Path| -> Option<String> {
        let v: Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        statusline_of(&v)
    };
    let user_dir = std::env::var_os("CLAUDE_CONFIG_DIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".claude")));
    read(&agent_dir.join(".claude").join("settings.json"))
        .or_else(|| user_dir.and_then(|d| read(&d.join("settings.json"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orch() -> &'static Path {
        Path::new("/usr/bin/orch")
    }

    #[test]
    fn a_user_statusline_is_wrapped_and_other_keys_kept() {
        let mut root = Map::new();
        root.insert(
            "statusLine".into(),
            json!({"type": "command", "command": "~/bin/line.sh --x 'a b'", "padding": 2}),
        );
        wire(&mut root, orch(), None);
        let cmd = root["statusLine"]["command"].as_str().unwrap();
        assert_eq!(
            orch_wrapped(cmd),
            Some(Some("~/bin/line.sh --x 'a b'".to_string()))
        );
        assert_eq!(root["statusLine"]["padding"], 2);
    }

    #[test]
    fn rewiring_keeps_what_was_wrapped_and_never_wraps_orch_in_orch() {
        let mut root = Map::new();
        wire(&mut root, orch(), Some("line.sh".into()));
        wire(&mut root, Path::new("/new/orch"), Some("other.sh".into()));
        let cmd = root["statusLine"]["command"].as_str().unwrap();
        assert!(cmd.starts_with("/new/orch statusline"), "{cmd}");
        assert_eq!(orch_wrapped(cmd), Some(Some("line.sh".into())));
    }

    #[test]
    fn without_any_statusline_orch_wraps_nothing() {
        let mut root = Map::new();
        wire(&mut root, orch(), None);
        let cmd = root["statusLine"]["command"].as_str().unwrap();
        assert_eq!(orch_wrapped(cmd), Some(None));
        assert_eq!(orch_wrapped("jq -r .model"), None);
    }
}
