//! The real agent CLIs (claude, codex, gemini, opencode) driven through orch's presets: `up`,
//! first screens classified, trust auto-accepted, a ping submitted. Opt-in with ORCH_REAL_CLI=1,
//! and skipped (with a note) when a CLI is not on PATH. Install: see the README.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orch::config::{self, LoadOptions};
use orch::detect::{ScreenState, classify};
use orch::tmux::DeliverOptions;

use crate::support::{TempDir, TmuxServer, orch_bin, wait_for};

/// One real CLI under test: its preset, binary and what its first run needs.
struct Cli {
    preset: &'static str,
    bin: &'static str,
    /// Extra `env` entries for the agent (besides HOME).
    env: &'static [(&'static str, &'static str)],
    /// Does a fresh start show a trust dialog?
    trust: bool,
    /// The agent's `auto_accept`.
    accept: &'static str,
}

const CLAUDE: Cli = Cli {
    preset: "claude-code",
    bin: "claude",
    env: &[
        ("IS_SANDBOX", "1"),
        (
            "ANTHROPIC_API_KEY",
            "sk-ant-fake-0000000000000000000000000000",
        ),
    ],
    trust: true,
    accept: r#"["trust", "api-key"]"#,
};
const CODEX: Cli = Cli {
    preset: "codex",
    bin: "codex",
    env: &[],
    trust: true,
    accept: r#"["trust"]"#,
};
const GEMINI: Cli = Cli {
    preset: "gemini-cli",
    bin: "gemini",
    env: &[("GEMINI_API_KEY", "fake-key")],
    trust: true,
    accept: r#"["trust"]"#,
};
const OPENCODE: Cli = Cli {
    preset: "opencode",
    bin: "opencode",
    env: &[],
    trust: false,
    accept: "[]",
};

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// A throwaway world for one CLI: fresh HOME, a git repo as cwd, a private tmux server.
struct World {
    tmp: TempDir,
    server: TmuxServer,
    config: PathBuf,
}

impl World {
    fn new(cli: &Cli) -> World {
        let tmp = tempfile::Builder::new()
            .prefix("orch-real-")
            .tempdir_in(scratch())
            .unwrap();
        let home = tmp.path().join("home");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &[
                "-c",
                "user.email=t@t",
                "-c",
                "user.name=t",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "init",
            ],
        ] {
            assert!(
                Command::new("git")
                    .args(args)
                    .current_dir(&repo)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        match cli.bin {
            "claude" => std::fs::write(
                home.join(".claude.json"),
                r#"{"hasCompletedOnboarding": true}"#,
            )
            .unwrap(),
            "gemini" => {
                std::fs::create_dir_all(home.join(".gemini")).unwrap();
                std::fs::write(
                    home.join(".gemini/settings.json"),
                    r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#,
                )
                .unwrap();
            }
            "codex" => {
                // An API-key login is stored offline; without it codex opens its sign-in menu.
                let mut child = Command::new("timeout")
                    .args(["30", "codex", "login", "--with-api-key"])
                    .env("HOME", &home)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(b"sk-fake-key\n")
                    .unwrap();
                assert!(
                    child.wait().unwrap().success(),
                    "codex login --with-api-key"
                );
            }
            _ => {}
        }
        let server = TmuxServer::new();
        let mut env = format!("HOME = {:?}", home.display().to_string());
        for (k, v) in cli.env {
            env += &format!(", {k} = {v:?}");
        }
        let accept = cli.accept;
        let text = format!(
            r#"[defaults]
session_prefix = "rc-"
log_dir = ".orch"
tmux_socket = "{socket}"

# The boot line of the ping delivery is the ping under test: typed into the input box
# once the first dialogs are answered.
[backend.{preset}]
prompt_delivery = "ping"
connect_delay = 60

[[agent]]
name = "a"
backend = "{preset}"
dir = "repo"
prompt = "say hi"
auto_accept = {accept}
env = {{ {env} }}
"#,
            socket = server.socket,
            preset = cli.preset,
        );
        let config = tmp.path().join("agents.toml");
        std::fs::write(&config, text).unwrap();
        World {
            tmp,
            server,
            config,
        }
    }

    fn orch(&self, args: &[&str]) -> std::process::Output {
        Command::new(orch_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("ORCH_TMUX_SOCKET", &self.server.socket)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .output()
            .unwrap()
    }

    fn cfg(&self) -> config::Config {
        config::load(&self.config, LoadOptions::STRICT)
            .unwrap()
            .config
    }

    fn state(&self) -> (ScreenState, String) {
        let cfg = self.cfg();
        let rules = &cfg.backend_of(cfg.agent("a").unwrap()).screen_rules;
        let screen = self
            .server
            .tmux
            .capture("rc-a", usize::MAX)
            .unwrap_or_default();
        (
            classify(&screen, rules, chrono::Local::now().fixed_offset()).state,
            screen,
        )
    }

    fn events(&self, name: &str) -> Vec<serde_json::Value> {
        orch::events::read_since(&self.tmp.path().join(".orch/events.jsonl"), 0)
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| v["event"] == name)
            .collect()
    }
}

impl Drop for World {
    /// Codex and gemini leave processes behind `kill-session`: end every process whose
    /// environment has this world's HOME (only processes this test started have it).
    fn drop(&mut self) {
        let _ = self.server.tmux.kill_server();
        let needle = format!("HOME={}", self.tmp.path().join("home").display());
        for signal in ["-TERM", "-KILL"] {
            for pid in pids_with_env(&needle) {
                let _ = Command::new("kill")
                    .args([signal, &pid.to_string()])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A scratch folder outside /tmp (codex refuses helper binaries under /tmp, and warns).
fn scratch() -> PathBuf {
    let dir =
        std::env::var_os("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pids_with_env(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect()
}

fn skip(cli: &Cli) -> bool {
    if std::env::var_os("ORCH_REAL_CLI").is_none() {
        eprintln!(
            "SKIPPED real_cli {}: set ORCH_REAL_CLI=1 to drive the real CLI (third-party \
             programs retrying a network they cannot reach: too slow and variable for CI)",
            cli.preset
        );
        return true;
    }
    if on_path(cli.bin) {
        return false;
    }
    eprintln!(
        "SKIPPED real_cli {}: `{}` is not on PATH (npm install -g the pinned version to run it)",
        cli.preset, cli.bin
    );
    true
}

/// How long to wait for the CLI to give up on the network (claude retries ~3 min, gemini
/// ~4-5 min, codex never): ORCH_REAL_CLI_ERROR_SECS, default 90.
fn error_budget() -> Duration {
    let secs = std::env::var("ORCH_REAL_CLI_ERROR_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    Duration::from_secs(secs)
}

fn up_accepts_trust_and_submits_the_ping(cli: &Cli) {
    if skip(cli) {
        return;
    }
    let w = World::new(cli);
    let started = Instant::now();
    let out = w.orch(&["up", "a"]);
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}: up took {:?}", cli.preset, started.elapsed());
    let accepted = w.events("auto_accepted");
    if cli.trust {
        assert!(
            accepted
                .iter()
                .any(|e| e["dialog"] == "trust" && e["state"] == "trust_prompt"),
            "{}: trust dialog not auto-accepted: {accepted:?}\n{}",
            cli.preset,
            w.state().1
        );
    } else {
        assert!(accepted.is_empty(), "{accepted:?}");
    }
    // The ping (the boot line) left the input box: the CLI works on it or has failed on it.
    let mut seen = Vec::new();
    let submitted = wait_for(Duration::from_secs(30), || {
        let (state, _) = w.state();
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        matches!(state, ScreenState::Busy | ScreenState::NetworkError)
    });
    let (_, screen) = w.state();
    assert!(
        submitted,
        "{}: states {seen:?}, screen:\n{screen}",
        cli.preset
    );
    assert!(
        screen.contains("read ") && screen.contains("and follow it"),
        "{screen}"
    );
    // opencode gives up after its fifth retry, about 1-2 min after the submit.
    let budget = if cli.bin == "opencode" {
        error_budget().max(Duration::from_secs(180))
    } else {
        error_budget()
    };
    let failed = wait_for(budget, || w.state().0 == ScreenState::NetworkError);
    eprintln!(
        "{}: states {seen:?}; network_error {} within {budget:?} (now: {})",
        cli.preset,
        if failed { "reached" } else { "NOT reached" },
        w.state().0
    );
    if cli.bin == "opencode" {
        assert!(failed, "opencode gives up after ~1 min:\n{}", w.state().1);
    } else if !failed {
        assert_eq!(w.state().0, ScreenState::Busy, "{}", w.state().1);
    }
}

#[test]
fn claude_code_comes_up_trusts_and_takes_a_ping() {
    up_accepts_trust_and_submits_the_ping(&CLAUDE);
}

#[test]
fn codex_comes_up_trusts_and_takes_a_ping() {
    up_accepts_trust_and_submits_the_ping(&CODEX);
}

#[test]
fn gemini_cli_comes_up_trusts_and_takes_a_ping() {
    up_accepts_trust_and_submits_the_ping(&GEMINI);
}

#[test]
fn opencode_comes_up_and_takes_a_ping() {
    up_accepts_trust_and_submits_the_ping(&OPENCODE);
}

/// `down` on a working CLI: its preset's quit keys end it well before the 30 s grace period,
/// and no process it started (codex's app-server daemons included) is left.
fn down_quits_at_once_and_leaves_no_process(cli: &Cli) {
    if skip(cli) {
        return;
    }
    let w = World::new(cli);
    let out = w.orch(&["up", "a"]);
    assert!(
        out.status.success(),
        "up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Stop it mid-turn (busy) where it can: the hardest screen to quit from.
    wait_for(Duration::from_secs(30), || {
        matches!(w.state().0, ScreenState::Busy | ScreenState::NetworkError)
    });
    let (state, _) = w.state();
    let needle = format!("HOME={}", w.tmp.path().join("home").display());
    assert!(
        !pids_with_env(&needle).is_empty(),
        "{}: nothing runs",
        cli.preset
    );
    let began = Instant::now();
    let out = w.orch(&["down", "a"]);
    let took = began.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}: down from {state} took {took:?}: {text}", cli.preset);
    assert!(out.status.success() && text.contains("stopped a"), "{text}");
    assert!(
        took < Duration::from_secs(10),
        "{}: down took {took:?}",
        cli.preset
    );
    let left = pids_with_env(&needle);
    assert!(
        left.is_empty(),
        "{}: processes left after down: {left:?}",
        cli.preset
    );
}

#[test]
fn claude_code_quits_at_once_on_down() {
    down_quits_at_once_and_leaves_no_process(&CLAUDE);
}

#[test]
fn codex_quits_at_once_on_down() {
    down_quits_at_once_and_leaves_no_process(&CODEX);
}

#[test]
fn gemini_cli_quits_at_once_on_down() {
    down_quits_at_once_and_leaves_no_process(&GEMINI);
}

#[test]
fn opencode_quits_at_once_on_down() {
    down_quits_at_once_and_leaves_no_process(&OPENCODE);
}

/// 50 confirmed deliveries into a real CLI (ORCH_BENCH_CLI = opencode | claude-code | gemini-cli,
/// default opencode), interrupting each turn: prints "N/50 confirmed".
#[test]
#[ignore = "benchmark: ~2-4 min with a real CLI"]
fn delivery_success_rate_over_50_sends() {
    let which = std::env::var("ORCH_BENCH_CLI").unwrap_or_else(|_| "opencode".into());
    let cli = [&CLAUDE, &GEMINI, &OPENCODE, &CODEX]
        .into_iter()
        .find(|c| c.preset == which)
        .unwrap_or(&OPENCODE);
    if skip(cli) {
        return;
    }
    let w = World::new(cli);
    assert!(w.orch(&["up", "a"]).status.success());
    let tmux = &w.server.tmux;
    // Interrupt the running turn: Escape until the input box is idle (opencode needs two,
    // claude puts the text back into the box and a second Escape pair clears it).
    let idle = || {
        wait_for(Duration::from_secs(30), || {
            if w.state().0 == ScreenState::IdleInput {
                return true;
            }
            let _ = tmux.send_keys("rc-a", &["Escape"]);
            std::thread::sleep(Duration::from_millis(400));
            false
        })
    };
    let mut confirmed = 0;
    let mut submits = 0;
    for i in 0..50 {
        assert!(idle(), "send {i}: not idle:\n{}", w.state().1);
        // The idle screen of claude can still hold the interrupted text: clear it.
        if cli.bin == "claude" {
            let _ = tmux.send_keys("rc-a", &["Escape", "Escape"]);
            std::thread::sleep(Duration::from_millis(300));
        }
        let text = format!("probe {i:02} of the orch delivery bench");
        let out = tmux
            .deliver("rc-a", &text, "Enter", &DeliverOptions::default())
            .unwrap();
        submits += out.submits;
        if out.confirmed {
            confirmed += 1;
        } else {
            eprintln!("send {i} unconfirmed:\n{}", w.state().1);
        }
    }
    println!(
        "{}: {confirmed}/50 confirmed ({submits} submit keys)",
        cli.preset
    );
    assert!(confirmed >= 45, "{confirmed}/50");
}

/// Claude as root without IS_SANDBOX: it refuses `--dangerously-skip-permissions` and exits.
const CLAUDE_AS_ROOT: Cli = Cli {
    preset: "claude-code",
    bin: "claude",
    env: &[],
    trust: true,
    accept: "[]",
};

#[test]
fn claude_refusing_to_run_as_root_is_read_before_its_pane_goes_and_left_to_a_person() {
    if skip(&CLAUDE_AS_ROOT) {
        return;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("SKIPPED real_cli claude as root: claude refuses only root, this is not root");
        return;
    }
    let w = World::new(&CLAUDE_AS_ROOT);
    let home = w.tmp.path().join("home").display().to_string();
    let text = format!(
        r#"[defaults]
session_prefix = "rc-"
log_dir = ".orch"
tmux_socket = "{socket}"

[watchdog]
signal_interval = 1
heavy_interval = 1

[[agent]]
name = "a"
backend = "claude-code"
dir = "repo"
prompt = "say hi"
watch = "heal"
restart_backoff = 1
restart_backoff_max = 1
max_restarts = 2
env = {{ HOME = {home:?} }}
"#,
        socket = w.server.socket,
    );
    std::fs::write(&w.config, text).unwrap();
    let out = w.orch(&["up"]);
    assert!(out.status.success(), "up: {out:?}");
    assert!(
        wait_for(Duration::from_secs(60), || !w
            .events("heal_limit")
            .is_empty()),
        "{:#?}",
        w.events("needs_attention")
    );
    let attn = &w.events("needs_attention")[0];
    assert_eq!(attn["state"], "exited", "{attn}");
    assert_eq!(attn["rule"], "claude refused to start", "{attn}");
    assert_eq!(attn["exit_status"], 1, "{attn}");
    assert!(attn["lines"].to_string().contains("root/sudo"), "{attn}");
    assert_eq!(w.events("healed").len(), 2, "{:#?}", w.events("healed"));
    let status = w.orch(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let a = &v["agents"][0];
    assert_eq!(a["state"], "dead", "{a}");
    assert_eq!(a["last_exit"], 1, "{a}");
    assert_eq!(a["exit_reason"], "claude refused to start", "{a}");
    let _ = w.orch(&["down"]);
}

#[test]
fn claude_on_its_bypass_warning_is_waiting_input_gets_no_keys_and_no_stall_restart() {
    if skip(&CLAUDE) {
        return;
    }
    let w = World::new(&CLAUDE);
    let home = w.tmp.path().join("home").display().to_string();
    std::fs::write(w.tmp.path().join("wake.md"), "watchdog wake: check in").unwrap();
    // Not opted into `bypass-permissions`: the warning is for a person to answer.
    let text = format!(
        r#"[defaults]
session_prefix = "rc-"
log_dir = ".orch"
tmux_socket = "{socket}"

[watchdog]
signal_interval = 1
heavy_interval = 1

[backend.claude-code]
stall_idle = 2

[[agent]]
name = "a"
backend = "claude-code"
dir = "repo"
prompt = "say hi"
watch = "heal+stall"
auto_accept = ["trust", "api-key"]
wake = {{ interval = 1, prompt_file = "wake.md" }}
env = {{ HOME = {home:?}, IS_SANDBOX = "1", ANTHROPIC_API_KEY = "sk-ant-fake-0000000000000000000000000000" }}
"#,
        socket = w.server.socket,
    );
    std::fs::write(&w.config, text).unwrap();
    let out = w.orch(&["up"]);
    assert!(out.status.success(), "up: {out:?}");
    assert!(
        wait_for(Duration::from_secs(60), || !w
            .events("needs_attention")
            .is_empty()),
        "{:?}",
        w.state()
    );
    std::thread::sleep(Duration::from_secs(8));
    let attn = &w.events("needs_attention")[0];
    assert_eq!(attn["state"], "permission_prompt", "{attn}");
    assert!(w.events("healed").is_empty(), "{:#?}", w.events("healed"));
    assert!(w.events("ping").is_empty(), "{:#?}", w.events("ping"));
    let (state, screen) = w.state();
    assert_eq!(state, ScreenState::PermissionPrompt, "{screen}");
    let status = w.orch(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let a = &v["agents"][0];
    assert_eq!(a["state"], "waiting_input", "{a}");
    assert_eq!(a["needs_attention"], "permission_prompt", "{a}");
    let _ = w.orch(&["down"]);
}
