//! `cargo bench --bench top`: the CPU `orch top` uses watching an idle 100-agent fleet at a 1 s
//! refresh (goal: below 1 % of one core), measured from /proc over 20 s after a warm-up.
//!
//! A config of 100 agents whose sessions run `sleep` on a private tmux server (`tmux -L`), the
//! console in an 80x24 pane of that server; everything killed at the end. Skips without tmux.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const AGENTS: usize = 100;
const MEASURE: Duration = Duration::from_secs(20);

fn tmux(socket: &str, args: &[&str]) -> bool {
    Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// utime + stime + cutime + cstime of `pid`, in clock ticks (its tmux calls included).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14..17 of stat; `rest` starts at field 3.
    Some((11..15).filter_map(|i| f.get(i)?.parse::<u64>().ok()).sum())
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// The pid of the first child of the pane's shell (orch top).
fn top_pid(socket: &str) -> Option<u32> {
    let out = Command::new("tmux")
        .args([
            "-L",
            socket,
            "display-message",
            "-p",
            "-t",
            "=console:",
            "#{pane_pid}",
        ])
        .output()
        .ok()?;
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn run(dir: &Path, socket: &str) -> Result<(), String> {
    let mut config = format!(
        "[defaults]\nsession_prefix = \"b-\"\nlog_dir = \".orch\"\ntmux_socket = \"{socket}\"\n\
         backend = \"idle\"\n\n[backend.idle]\nbin = \"sleep 3600\"\nprompt_delivery = \"arg\"\n\
         process_name = \"sleep\"\n"
    );
    for i in 0..AGENTS {
        config += &format!("\n[[agent]]\nname = \"a{i:03}\"\nprompt = \"x\"\n");
    }
    let cfg = dir.join("agents.toml");
    std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
    for i in 0..AGENTS {
        let name = format!("b-a{i:03}");
        if !tmux(
            socket,
            &[
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "200",
                "-y",
                "50",
                "sleep 3600",
            ],
        ) {
            return Err(format!("cannot start session {name}"));
        }
    }
    let orch = env!("CARGO_BIN_EXE_orch");
    let line = format!(
        "exec {} --config {} top --interval 1",
        shell_words::quote(orch),
        shell_words::quote(&cfg.display().to_string())
    );
    if !tmux(
        socket,
        &[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            "80",
            "-y",
            "24",
            "sh",
            "-c",
            &line,
        ],
    ) {
        return Err("cannot start the console".into());
    }
    std::thread::sleep(Duration::from_secs(3));
    let pid = top_pid(socket)
        .or_else(|| {
            // `exec` makes the pane's process orch itself.
            let out = Command::new("tmux")
                .args([
                    "-L",
                    socket,
                    "display-message",
                    "-p",
                    "-t",
                    "=console:",
                    "#{pane_pid}",
                ])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        })
        .ok_or("cannot find the console's process")?;
    let t0 = cpu_ticks(pid).ok_or("cannot read /proc")?;
    let start = Instant::now();
    std::thread::sleep(MEASURE);
    let t1 = cpu_ticks(pid).ok_or("the console exited")?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = (t1 - t0) as f64 / clock_ticks_per_sec();
    let screen = Command::new("tmux")
        .args(["-L", socket, "capture-pane", "-p", "-t", "=console:"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !screen.contains("a000") {
        return Err(format!("the console does not show the fleet:\n{screen}"));
    }
    println!(
        "orch top, {AGENTS} idle agents, 1 s refresh: {:.2} % of one core ({cpu:.2} s CPU in {secs:.1} s, tmux calls included; goal < 1 %)",
        100.0 * cpu / secs
    );
    Ok(())
}

fn main() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("skipped: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = format!("orch-bench-top-{}", std::process::id());
    let result = run(dir.path(), &socket);
    tmux(&socket, &["kill-server"]);
    let tmpdir =
        std::env::var_os("TMUX_TMPDIR").map_or_else(|| "/tmp".into(), std::path::PathBuf::from);
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let _ = std::fs::remove_file(tmpdir.join(format!("tmux-{uid}")).join(&socket));
    if let Err(e) = result {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}
