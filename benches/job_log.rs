//! `cargo bench --bench job_log`: a job whose agent prints 100 MB is streamed to disk, parsed
//! and read back without holding it in memory: the peak RSS of the runner (`orch job run`), of
//! `orch job log` reading it all, and the time each takes.
//!
//! A plain-text profile on the headless sim (`big=100`) in a temp project that is not a git
//! repository (the job runs in place: no clone, no branch). No tmux, no network.
use std::process::{Command, Stdio};
use std::time::Instant;

const MB: u64 = 100;

/// Run `cmd` and return (exit ok, wall seconds, peak RSS in MiB) from wait4's rusage (which
/// reaps the child: std's `wait` cannot give its rusage).
#[allow(clippy::zombie_processes)]
fn measure(mut cmd: Command) -> (bool, f64, f64) {
    let start = Instant::now();
    let child = cmd.spawn().expect("starting orch");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waiting for the child we just spawned.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (
        ok,
        start.elapsed().as_secs_f64(),
        usage.ru_maxrss as f64 / 1024.0,
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let orch = env!("CARGO_BIN_EXE_orch");
    let config = dir.path().join("agents.toml");
    std::fs::write(
        &config,
        format!(
            r#"[defaults]
session_prefix = "joblog-"
log_dir = ".orch"

[backend.plain]
bin = "{orch} sim-headless plain"

[profile.big]
backend = "plain"
env = {{ ORCH_SIM_FAULT = "big={MB}" }}
"#
        ),
    )
    .expect("writing the config");
    let orch_cmd = |args: &[&str]| {
        let mut c = Command::new(orch);
        c.arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    let (ok, secs, rss) = measure(orch_cmd(&["job", "run", "-p", "big", "Print a lot"]));
    assert!(ok, "the job failed");
    let log = dir.path().join(".orch/jobs/1/output.log");
    let size = std::fs::metadata(&log).expect("the job's log").len();
    assert!(
        size >= MB << 20,
        "the log holds all {MB} MB (got {size} bytes)"
    );
    println!(
        "job run, agent printing {MB} MB: {secs:.2} s, peak RSS of runner and agent {rss:.1} MiB (log {:.1} MB on disk)",
        size as f64 / 1e6
    );
    let (ok, secs, rss) = measure(orch_cmd(&["job", "log", "1"]));
    assert!(ok, "job log failed");
    println!(
        "job log of {:.1} MB to /dev/null: {secs:.2} s, peak RSS {rss:.1} MiB ({:.0} MB/s)",
        size as f64 / 1e6,
        size as f64 / 1e6 / secs
    );
}
