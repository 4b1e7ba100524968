//! Shared test fixtures for tmux and processes: a private tmux server per test (killed on
//! drop), a deadline poll helper, the path of the built `orch` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use tempfile::TempDir;

use orch::tmux::Tmux;

/// A private tmux server (`tmux -L <socket>`) that only this test uses; Drop kills it.
pub struct TmuxServer {
    pub socket: String,
    pub tmux: Tmux,
}

impl TmuxServer {
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let socket = format!(
            "orch-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmux = Tmux::new(Some(socket.clone()));
        TmuxServer { socket, tmux }
    }
}

impl Default for TmuxServer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        // The agents' server and the watchdog's own server next to it (`<socket>-watchdog`).
        for socket in [self.socket.clone(), format!("{}-watchdog", self.socket)] {
            let _ = std::process::Command::new("tmux")
                .args(["-L", &socket, "kill-server"])
                .env_remove("TMUX")
                .env_remove("TMUX_PANE")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            // tmux 3.3 can leave the socket file behind: remove it so runs leave nothing.
            let dir = std::env::var_os("TMUX_TMPDIR")
                .map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            // SAFETY: getuid has no preconditions and cannot fail.
            let uid = unsafe { libc::getuid() };
            let _ = std::fs::remove_file(dir.join(format!("tmux-{uid}")).join(&socket));
        }
    }
}

/// Polls `cond` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `orch` binary cargo built for this test run.
pub fn orch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orch"))
}

/// `orch --config <config> ARGS`, run in `dir` on the private tmux server `socket`, without the
/// caller's tmux (`TMUX`, `TMUX_PANE`) or log filter (`ORCH_LOG`).
pub fn orch_cmd(config: &Path, socket: &str, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(orch_bin());
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .env("ORCH_TMUX_SOCKET", socket)
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .env_remove("ORCH_LOG");
    cmd
}

/// Run `cmd` (orch with `args`), assert it succeeded, and return its stdout.
pub fn stdout_ok(mut cmd: Command, args: &[&str]) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
