//! `cargo bench --bench latency`: push-to-ping latency of the watchdog at `signal_interval = 1`
//! on a local bare remote; the time from `git push` to the ping typed into the reviewer's pane.
//!
//! A real project in a temp dir (bare remote, the watchdog's clone, a pushing clone), a recorder
//! agent on a private tmux server (`tmux -L`), `orch up`; killed at the end. Skips without tmux.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 10;
const WAIT: Duration = Duration::from_secs(20);

fn git(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@orch.invalid",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .is_ok_and(|o| o.status.success())
}

const CONFIG: &str = r#"[defaults]
session_prefix = "lat-"
log_dir = ".orch"
tmux_socket = "SOCKET"

[watchdog]
signal_interval = 1
heavy_interval = 30

[backend.rec]
bin = "sh -c 'while IFS= read -r l; do printf \"%s\\n\" \"$l\" >> \"$ORCH_LOG_DIR/typed\"; done'"
prompt_delivery = "exec"

[[agent]]
name = "builder"
kind = "loop"
role = "r"
backend = "rec"

[[agent]]
name = "adversary"
kind = "loop"
role = "r"
backend = "rec"

[loop]
roles_dir = "."
phases = [{ id = "p1", plan = "plan.md", status = "STATUS.md" }]
[loop.handoff]
repo = "watch"
"#;

fn main() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("latency bench skipped: tmux is not on PATH");
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return println!("latency bench skipped: no temp dir: {e}"),
    };
    let root = dir.path();
    let socket = format!("orch-bench-latency-{}", std::process::id());
    let remote = root.join("remote.git");
    let pusher = root.join("pusher");
    let ok = git(root, &["init", "-q", "--bare", "remote.git"])
        && git(root, &["clone", "-q", "remote.git", "pusher"])
        && git(&pusher, &["commit", "-q", "--allow-empty", "-m", "init"])
        && git(&pusher, &["push", "-q", "origin", "HEAD:main"])
        && git(root, &["clone", "-q", "remote.git", "watch"])
        && std::fs::write(root.join("r.md"), "recorder\n").is_ok()
        && std::fs::write(root.join("agents.toml"), CONFIG.replace("SOCKET", &socket)).is_ok();
    if !ok || !remote.exists() {
        return println!(
            "latency bench skipped: cannot set up the git fixture in {}",
            root.display()
        );
    }
    let orch = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_orch"))
            .arg("--config")
            .arg(root.join("agents.toml"))
            .args(args)
            .env_remove("ORCH_TMUX_SOCKET")
            .env_remove("TMUX")
            .output()
    };
    if !orch(&["up"]).is_ok_and(|o| o.status.success()) {
        return println!("latency bench skipped: `orch up` failed");
    }
    let typed = root.join(".orch/typed");
    let claims = |path: &Path| {
        std::fs::read_to_string(path)
            .map_or(0, |t| t.lines().filter(|l| l.contains("CLAIM")).count())
    };
    // Let the watchdog take its first look before measuring.
    std::thread::sleep(Duration::from_millis(2500));
    let mut ms = Vec::new();
    for i in 1..=RUNS {
        std::thread::sleep(Duration::from_millis((i as u64 * 370) % 1000));
        git(
            &pusher,
            &[
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                &format!("claim: gate {i}"),
            ],
        );
        let t0 = Instant::now();
        git(&pusher, &["push", "-q", "origin", "HEAD:main"]);
        while claims(&typed) < i && t0.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        if claims(&typed) < i {
            println!("latency bench: ping {i} did not arrive within {WAIT:?}");
            break;
        }
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = orch(&["down"]);
    // The agents' server and the watchdog's own one next to it.
    for server in [socket.clone(), format!("{socket}-watchdog")] {
        let _ = Command::new("tmux")
            .args(["-L", &server, "kill-server"])
            .output();
    }
    if ms.is_empty() {
        return;
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "push-to-ping latency (signal_interval = 1, local bare remote, {} pushes)",
        ms.len()
    );
    println!(
        "    mean {mean:.0} ms   p50 {:.0} ms   min {:.0} ms   max {:.0} ms",
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1]
    );
}
