//! The ssh transport: one master connection per host that orch starts and owns (its pid under
//! log_dir), calls multiplexed over it with a wall-clock timeout each, ≤ 8 at once per host.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::process::{self, ProcessError};
use super::{Output, PlaceError};

/// At most this many calls to one host at once (sshd's MaxSessions default is 10; past it,
/// calls silently fall back to slow full connections).
pub const MAX_CALLS: usize = 8;
/// `ConnectTimeout` of every ssh process.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A control socket path longer than this goes under the temp dir instead (sockets are
/// limited to ~104 bytes, and ssh binds a temporary name 17 bytes longer first).
const MAX_CONTROL_PATH: usize = 80;

/// How to reach one host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshSpec {
    /// The host's name in the config (for messages).
    pub name: String,
    /// What one would type after `ssh`.
    pub dest: String,
    /// Extra ssh arguments.
    pub options: Vec<String>,
    /// Where the control socket and the master's pid file go (`<log_dir>/ssh`).
    pub control_dir: PathBuf,
}

/// A host reached over ssh. Shared process-wide per spec (see [`SshPlace::shared`]).
#[derive(Debug)]
pub struct SshPlace {
    spec: SshSpec,
    control: PathBuf,
    slots: Slots,
    master: Mutex<Option<Child>>,
    /// Set by a place error, cleared by an answer: while set, calls fail at once (a probe
    /// still tries), so one tick never waits twice on a host that is down.
    down: Mutex<Option<PlaceError>>,
}

impl SshPlace {
    /// The one handle of this process on `spec` (masters and the call limit are per host).
    pub fn shared(spec: SshSpec) -> Arc<SshPlace> {
        static ALL: OnceLock<Mutex<HashMap<SshSpec, Arc<SshPlace>>>> = OnceLock::new();
        let all = ALL.get_or_init(|| Mutex::new(HashMap::new()));
        let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(spec.clone())
            .or_insert_with(|| {
                Arc::new(SshPlace {
                    control: control_path(&spec),
                    spec,
                    slots: Slots::new(MAX_CALLS),
                    master: Mutex::new(None),
                    down: Mutex::new(None),
                })
            })
            .clone()
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn control_path(&self) -> &Path {
        &self.control
    }

    /// The error that marked the host down, if it has not answered since.
    pub fn down(&self) -> Option<PlaceError> {
        lock(&self.down).clone()
    }

    /// Runs `argv` on the host; fails at once while the host is marked down.
    pub fn run(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        if let Some(err) = self.down() {
            return Err(err);
        }
        self.probe(argv, stdin, timeout)
    }

    /// Runs `argv` on the host even while it is marked down (the tick's one look at a host).
    pub fn probe(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        let result = self.call(argv, stdin, timeout);
        match &result {
            Ok(_) => *lock(&self.down) = None,
            Err(e) => *lock(&self.down) = Some(e.clone()),
        }
        result
    }

    fn call(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || PlaceError::TimedOut {
            host: self.spec.name.clone(),
            after: timeout,
        };
        let _slot = self.slots.take(deadline).ok_or_else(timed_out)?;
        self.ensure_master(deadline);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            self.kill_master();
            return Err(timed_out());
        }
        let mut cmd = self.ssh_command(false);
        cmd.arg(remote_command(argv));
        match process::run(&mut cmd, stdin, left) {
            Ok(done) if done.status.code() == Some(255) => Err(PlaceError::Unreachable {
                host: self.spec.name.clone(),
                detail: last_line(&done.stderr),
            }),
            Ok(done) => Ok(Output {
                code: done.status.code(),
                stdout: done.stdout,
                stderr: done.stderr,
            }),
            Err(ProcessError::TimedOut(_)) => {
                // A hung master (stopped, or its peer gone silent) hangs every call through it:
                // kill it, the next call starts a fresh one.
                self.kill_master();
                Err(timed_out())
            }
            Err(e) => Err(PlaceError::Spawn {
                host: self.spec.name.clone(),
                detail: format!("ssh: {e}"),
            }),
        }
    }

    /// An ssh command running `argv` on the host, for a caller that streams its output
    /// (`logs -f`) and so sets no deadline; the master is started first if needed.
    pub fn command(&self, argv: &[String]) -> Command {
        self.ensure_master(Instant::now() + CONNECT_TIMEOUT);
        let mut cmd = self.ssh_command(false);
        cmd.arg(remote_command(argv));
        cmd
    }

    /// `ssh` with the options every call (or the master, with `master`) uses.
    fn ssh_command(&self, master: bool) -> Command {
        let mut cmd = Command::new("ssh");
        let control = format!("ControlPath={}", self.control.display());
        cmd.args(["-o", "BatchMode=yes", "-o", &control]);
        if master {
            cmd.args([
                "-M",
                "-N",
                "-o",
                "ControlMaster=yes",
                "-o",
                "ControlPersist=no",
            ]);
        } else {
            cmd.args(["-T", "-o", "ControlMaster=no"]);
        }
        cmd.args(&self.spec.options);
        let connect = format!("ConnectTimeout={}", CONNECT_TIMEOUT.as_secs());
        cmd.args([
            "-o",
            &connect,
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=2",
            "-o",
            "LogLevel=ERROR",
        ]);
        cmd.arg(&self.spec.dest);
        cmd
    }

    /// Makes sure a live (not stopped) master of ours serves the control socket, starting one
    /// when there is none; waits for its socket until `deadline` at most. Best effort: without
    /// a master, calls make their own connections.
    fn ensure_master(&self, deadline: Instant) {
        let mut master = lock(&self.master);
        if let Some(child) = master.as_mut() {
            let running = matches!(child.try_wait(), Ok(None));
            if running && !stopped(child.id()) && self.control.exists() {
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            *master = None;
        }
        let Some(_lock) = FileLock::take(&self.control.with_extension("lock"), deadline) else {
            return;
        };
        if let Some(pid) = self.recorded_master() {
            if !stopped(pid) && self.control.exists() {
                return;
            }
            kill_pid(pid);
        }
        let _ = std::fs::remove_file(&self.control);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.control.with_extension("log"));
        let mut cmd = self.ssh_command(true);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        cmd.stderr(log.map_or_else(|_| Stdio::null(), Stdio::from));
        // Its own session: a Ctrl-C meant for orch must not take the shared connection down.
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let Ok(mut child) = cmd.spawn() else {
            return;
        };
        let _ = crate::state::write_atomic(
            &self.control.with_extension("pid"),
            format!("{}\n", child.id()).as_bytes(),
        );
        let until = deadline.min(Instant::now() + CONNECT_TIMEOUT);
        while Instant::now() < until && !self.control.exists() {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        *master = Some(child);
    }

    /// The pid of the master recorded under log_dir, if that process still is our master.
    fn recorded_master(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.control.with_extension("pid")).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let ours = String::from_utf8_lossy(&cmdline).contains(&self.control.display().to_string());
        ours.then_some(pid)
    }

    /// Kills the master (ours, or the one recorded under log_dir) and removes its socket.
    pub fn kill_master(&self) {
        if let Some(mut child) = lock(&self.master).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(pid) = self.recorded_master() {
            kill_pid(pid);
        }
        let _ = std::fs::remove_file(&self.control);
        let _ = std::fs::remove_file(self.control.with_extension("pid"));
    }

    /// The pid of the live master serving this host, if any (for tests and `orch hosts`).
    pub fn master_pid(&self) -> Option<u32> {
        if let Some(child) = lock(&self.master).as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            return Some(child.id());
        }
        self.recorded_master()
    }
}

impl super::Place for SshPlace {
    fn name(&self) -> &str {
        SshPlace::name(self)
    }

    fn run(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        SshPlace::run(self, argv, stdin, timeout)
    }

    fn probe(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        SshPlace::probe(self, argv, stdin, timeout)
    }

    fn down(&self) -> Option<PlaceError> {
        SshPlace::down(self)
    }

    fn command(&self, argv: &[String]) -> Command {
        SshPlace::command(self, argv)
    }

    fn close(&self) {
        self.kill_master();
    }
}

/// The ssh command string: every word single-quoted for the remote shell.
pub fn remote_command(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|w| shell_words::quote(w).into_owned())
        .collect();
    words.join(" ")
}

/// `<control_dir>/<hash>.sock`, or under the temp dir when that path would be too long.
fn control_path(spec: &SshSpec) -> PathBuf {
    let key = format!(
        "{}\0{:?}\0{}",
        spec.dest,
        spec.options,
        spec.control_dir.display()
    );
    let hash = md5_hex(key.as_bytes());
    let name = format!("{}.sock", &hash[..12]);
    let near = spec.control_dir.join(&name);
    let dir = if near.as_os_str().len() <= MAX_CONTROL_PATH {
        spec.control_dir.clone()
    } else {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        std::env::temp_dir().join(format!("orch-ssh-{uid}"))
    };
    let _ = std::fs::create_dir_all(&dir);
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    dir.join(name)
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn last_line(text: &str) -> String {
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("ssh failed");
    line.trim().to_string()
}

/// True when the process is stopped (SIGSTOP / SIGTSTP: state `T` in /proc/PID/stat).
fn stopped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|s| s == "T" || s == "t")
}

fn kill_pid(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    // SAFETY: kill has no memory preconditions; the pid was checked to be our ssh master.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A counting semaphore: at most `n` calls hold a slot.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(&'a Slots);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}

impl Slots {
    fn new(n: usize) -> Self {
        Slots {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    /// A slot, waiting until `deadline` at most.
    fn take(&self, deadline: Instant) -> Option<Slot<'_>> {
        let mut free = lock(&self.free);
        while *free == 0 {
            let left = deadline.checked_duration_since(Instant::now())?;
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *free -= 1;
        Some(Slot(self))
    }
}

/// An exclusive lock on a file between processes (who starts the master), freed on drop.
struct FileLock(std::fs::File);

impl FileLock {
    fn take(path: &Path, deadline: Instant) -> Option<FileLock> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ok()?;
        loop {
            if file.try_lock().is_ok() {
                return Some(FileLock(file));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_words_survive_the_remote_shell() {
        let argv: Vec<String> = [
            "tmux",
            "send-keys",
            "-l",
            "--",
            "it's $HOME; `x` \"y\"",
            "a\\;",
            ";",
        ]
        .map(String::from)
        .into();
        let line = remote_command(&argv);
        assert_eq!(shell_words::split(&line).unwrap(), argv);
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                &format!("printf '%s\\n' {}", remote_command(&argv[4..])),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "it's $HOME; `x` \"y\"\na\\;\n;\n"
        );
    }

    #[test]
    fn a_long_log_dir_puts_the_control_socket_under_the_temp_dir() {
        let spec = |dir: &str| SshSpec {
            name: "lab".into(),
            dest: "lab".into(),
            options: vec![],
            control_dir: PathBuf::from(dir),
        };
        let short = control_path(&spec("/tmp/orch-test-short/ssh"));
        assert!(short.starts_with("/tmp/orch-test-short/ssh"), "{short:?}");
        let long = control_path(&spec(&format!("/tmp/{}/ssh", "x".repeat(90))));
        assert!(long.as_os_str().len() <= MAX_CONTROL_PATH, "{long:?}");
        let _ = std::fs::remove_dir_all("/tmp/orch-test-short");
    }

    #[test]
    fn stopped_processes_are_told_from_running_ones() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!stopped(child.id()));
        // SAFETY: signalling the child this test started.
        unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !stopped(child.id()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(stopped(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
