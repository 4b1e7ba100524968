//! `orch sim-headless SHAPE [CLI ARGS...]`: the simulated agent run headless, printing the exact
//! output shapes of Claude, Codex, Gemini and opencode (or plain text), with faults on demand.
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use crate::{Error, Result};

/// Options of the headless sim. Faults also come from ORCH_SIM_FAULT (comma-separated):
/// error, max-turns, hang, no-commit, dirty, limit, crash, reconnect, big=MB, sleep=MS.
/// With `hang`, ORCH_SIM_PIDFILE names a file that gets the sim's pid and its grandchild's.
///
/// Example: echo "fix it" | orch sim-headless claude -p --output-format stream-json --verbose
#[derive(Debug, clap::Args)]
pub struct HeadlessArgs {
    /// claude | codex | gemini | opencode | plain
    pub shape: String,
    /// The CLI's own arguments (the prompt is the value of -p for gemini, the last one for
    /// opencode; stdin otherwise).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Default)]
struct Faults {
    error: bool,
    max_turns: bool,
    hang: bool,
    no_commit: bool,
    dirty: bool,
    limit: bool,
    crash: bool,
    reconnect: bool,
    big_mb: u64,
    sleep_ms: u64,
}

fn faults() -> Result<Faults> {
    let mut f = Faults::default();
    let spec = std::env::var("ORCH_SIM_FAULT").unwrap_or_default();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        let num = || {
            v.parse::<u64>()
                .map_err(|_| Error::Usage(format!("sim fault {item:?} needs a number")))
        };
        match k {
            "error" => f.error = true,
            "max-turns" => f.max_turns = true,
            "hang" => f.hang = true,
            "no-commit" => f.no_commit = true,
            "dirty" => f.dirty = true,
            "limit" => f.limit = true,
            "crash" => f.crash = true,
            "reconnect" => f.reconnect = true,
            "big" => f.big_mb = num()?,
            "sleep" => f.sleep_ms = num()?,
            _ => {} // faults of the interactive sim are ignored here
        }
    }
    Ok(f)
}

fn prompt(shape: &str, args: &[String]) -> String {
    let from_args = match shape {
        "gemini" => args
            .iter()
            .position(|a| a == "-p" || a == "--prompt")
            .and_then(|i| args.get(i + 1))
            .cloned(),
        "opencode" => args.last().cloned(),
        _ => None,
    };
    from_args.unwrap_or_else(|| {
        let mut s = String::new();
        let _ = std::io::stdin().read_to_string(&mut s);
        s
    })
}

fn git(args: &[&str]) -> bool {
    Command::new("git")
        .args(args)
        .env("GIT_AUTHOR_NAME", "orch-sim")
        .env("GIT_AUTHOR_EMAIL", "sim@orch.invalid")
        .env("GIT_COMMITTER_NAME", "orch-sim")
        .env("GIT_COMMITTER_EMAIL", "sim@orch.invalid")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Do the "work": write a file named after the process and commit it (per the faults).
fn work(prompt: &str, f: &Faults) {
    if f.no_commit {
        return;
    }
    let name = format!("sim-{}.txt", std::process::id());
    let _ = std::fs::write(&name, format!("{}\n", prompt.trim()));
    if !f.dirty {
        git(&["add", &name]);
        git(&[
            "commit",
            "-q",
            "-m",
            &format!("sim: {}", first_line(prompt)),
        ]);
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(60).collect()
}

/// Run the headless sim; its exit code is the CLI's.
pub fn run(a: HeadlessArgs) -> Result<ExitCode> {
    let f = faults()?;
    let prompt = prompt(&a.shape, &a.args);
    let out = std::io::stdout();
    let mut out = out.lock();
    let sid = format!("sim-{}", std::process::id());
    let mut line = |v: serde_json::Value| {
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    };
    // Starting lines.
    match a.shape.as_str() {
        "claude" => line(
            serde_json::json!({"type":"system","subtype":"init","session_id":sid,
            "cwd": std::env::current_dir().unwrap_or_default(),"tools":["Bash","Edit"],"model":"sim"}),
        ),
        "codex" => {
            line(serde_json::json!({"type":"thread.started","thread_id":sid}));
            line(serde_json::json!({"type":"turn.started"}));
            if f.reconnect {
                line(
                    serde_json::json!({"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion)"}),
                );
            }
        }
        "opencode" => line(
            serde_json::json!({"type":"step_start","timestamp":0,"sessionID":sid,
            "part":{"type":"step-start"}}),
        ),
        _ => {}
    }
    if f.big_mb > 0 {
        let chunk = format!("{}\n", "x".repeat(1023));
        for _ in 0..f.big_mb * 1024 {
            if out_write(&chunk).is_err() {
                break;
            }
        }
    }
    if f.sleep_ms > 0 {
        std::thread::sleep(Duration::from_millis(f.sleep_ms));
    }
    if f.hang {
        // A grandchild in the same process group, then hang: a timeout must reap both.
        let grandchild = Command::new("sleep").arg("3600").spawn();
        if let (Ok(path), Ok(g)) = (std::env::var("ORCH_SIM_PIDFILE"), &grandchild) {
            let _ = std::fs::write(path, format!("{}\n{}\n", std::process::id(), g.id()));
        }
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    if f.crash {
        eprintln!("sim: segmentation fault (simulated crash)");
        return Ok(ExitCode::from(139u8));
    }
    if f.limit {
        return Ok(limit(&a.shape, &sid, &mut line));
    }
    if !(f.error || f.max_turns) {
        work(&prompt, &f);
    }
    let text = format!("Done: {}", first_line(&prompt));
    let code = match a.shape.as_str() {
        "claude" => {
            line(serde_json::json!({"type":"assistant","session_id":sid,
                "message":{"role":"assistant","content":[{"type":"text","text":text}]}}));
            let (subtype, is_error, result) = if f.max_turns {
                ("error_max_turns", true, "")
            } else if f.error {
                // A failed API call: subtype success, is_error true.
                (
                    "success",
                    true,
                    "API Error: 500 {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}",
                )
            } else {
                ("success", false, text.as_str())
            };
            line(
                serde_json::json!({"type":"result","subtype":subtype,"is_error":is_error,
                "duration_ms":1200,"num_turns":3,"result":result,"session_id":sid,
                "total_cost_usd":0.0123,"usage":{"input_tokens":10,"output_tokens":20}}),
            );
            u8::from(f.error || f.max_turns)
        }
        "codex" => {
            if f.error || f.max_turns {
                line(
                    serde_json::json!({"type":"turn.failed","error":{"message":"stream error: unexpected status 500"}}),
                );
                1
            } else {
                line(
                    serde_json::json!({"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":text}}),
                );
                line(
                    serde_json::json!({"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":20}}),
                );
                0
            }
        }
        "gemini" => {
            if f.error || f.max_turns {
                let (code, kind) = if f.max_turns {
                    (53, "FatalTurnLimitedError")
                } else {
                    (41, "FatalAuthenticationError")
                };
                eprintln!(
                    "{}",
                    serde_json::json!({"error":{"type":kind,"message":"simulated failure","code":code}})
                );
                code as u8
            } else {
                line(serde_json::json!({"session_id":sid,"response":text,
                    "stats":{"models":{"gemini-sim":{"api":{"totalRequests":2,"totalErrors":0}}},"tools":{},"files":{}}}));
                0
            }
        }
        "opencode" => {
            if f.error || f.max_turns {
                line(serde_json::json!({"type":"error","sessionID":sid,
                    "error":{"name":"APIError","data":{"message":"simulated failure"}}}));
                1
            } else {
                line(
                    serde_json::json!({"type":"text","sessionID":sid,"part":{"type":"text","text":text}}),
                );
                line(serde_json::json!({"type":"step_finish","sessionID":sid,
                    "part":{"type":"step-finish","reason":"stop","cost":0.002,"tokens":{"input":10,"output":20}}}));
                0
            }
        }
        _ => {
            let _ = out_write(&format!("{text}\n"));
            u8::from(f.error || f.max_turns)
        }
    };
    Ok(ExitCode::from(code))
}

fn out_write(s: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())
}

fn limit(shape: &str, sid: &str, line: &mut dyn FnMut(serde_json::Value)) -> ExitCode {
    let msg = "You've hit your usage limit. Your limit resets at 5pm";
    match shape {
        "claude" => line(
            serde_json::json!({"type":"result","subtype":"success","is_error":true,
            "result":"Claude AI usage limit reached|1767225600","session_id":sid,"num_turns":1}),
        ),
        "codex" => line(serde_json::json!({"type":"turn.failed","error":{"message":msg}})),
        "opencode" => line(
            serde_json::json!({"type":"error","error":{"name":"APIError","data":{"message":msg}}}),
        ),
        _ => eprintln!("{msg}"),
    }
    ExitCode::from(1)
}
