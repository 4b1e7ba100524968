//! A private sshd on 127.0.0.1 for the hosts tests: its own host key, config and pid file in a
//! temp dir, key authentication for a dedicated unprivileged user, stopped and started at will.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::support::{TempDir, wait_for};

/// The unprivileged user the "remote" side runs as.
pub const USER: &str = "orchtest";

pub struct Sshd {
    pub dir: TempDir,
    pub port: u16,
    /// The private key the client authenticates with.
    pub key: PathBuf,
    /// The test user's home (where remote agent dirs go).
    pub home: PathBuf,
}

/// Why the hosts tests cannot run here, if they cannot (printed, and the test returns).
pub fn unavailable() -> Option<String> {
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some("no /usr/sbin/sshd (install openssh-server; .ci/run does)".into());
    }
    if Command::new("ssh").arg("-V").output().is_err() {
        return Some("no ssh client".into());
    }
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    if !root && home_of(USER).is_none() {
        return Some(format!("not root and no pre-made user {USER}"));
    }
    None
}

/// Skip the calling test (with a message) when no sshd can be run here.
#[macro_export]
macro_rules! need_sshd {
    () => {
        if let Some(why) = $crate::sshd::unavailable() {
            eprintln!("SKIPPED: hosts tests need a private sshd: {why}");
            return;
        }
    };
}

fn home_of(user: &str) -> Option<PathBuf> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim().split(':').nth(5).map(PathBuf::from)
}

/// Create the test user once (as root): a home, a shell, not locked for sshd without PAM.
fn ensure_user() -> PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        if home_of(USER).is_none() {
            let st = Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", USER])
                .status()
                .unwrap();
            assert!(
                st.success() || home_of(USER).is_some(),
                "useradd {USER} failed"
            );
        }
        if unsafe { libc::getuid() } == 0 {
            // Unlocked for sshd without PAM; bash, the shell most users have.
            let _ = Command::new("usermod")
                .args(["-p", "*", "-s", "/bin/bash", USER])
                .status();
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        home_of(USER).unwrap()
    })
    .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

impl Sshd {
    pub fn start() -> Sshd {
        let home = ensure_user();
        let dir = tempfile::Builder::new()
            .prefix("orch-sshd")
            .tempdir()
            .unwrap();
        // The user's sshd child reads authorized_keys as that user: the folder must be open.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let host_key = dir.path().join("host_key");
        let key = dir.path().join("id");
        keygen(&host_key);
        keygen(&key);
        let auth = dir.path().join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &auth).unwrap();
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {pid}\n\
             AuthorizedKeysFile {auth}\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nAllowUsers {USER}\n\
             MaxSessions 20\nLogLevel ERROR\nAcceptEnv SLURM_CONF\n",
            hk = host_key.display(),
            pid = dir.path().join("sshd.pid").display(),
            auth = auth.display(),
        );
        std::fs::write(dir.path().join("sshd_config"), config).unwrap();
        let sshd = Sshd {
            dir,
            port,
            key,
            home,
        };
        sshd.resume();
        sshd
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("sshd.pid")
    }

    /// The listener's pid, from its pid file.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Starts (again) the sshd on the same port, and waits until it accepts connections.
    pub fn resume(&self) {
        let _ = std::fs::remove_file(self.pid_file());
        let st = Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(self.dir.path().join("sshd_config"))
            .arg("-E")
            .arg(self.dir.path().join("sshd.log"))
            .status()
            .unwrap();
        assert!(st.success(), "sshd did not start: {}", self.log());
        let up = wait_for(Duration::from_secs(10), || {
            self.pid().is_some() && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(up, "sshd never listened: {}", self.log());
    }

    /// Stops the sshd: the listener (by its pid file) and every connection it accepted, as a
    /// host going away would.
    pub fn stop(&self) {
        let Some(pid) = self.pid() else {
            return;
        };
        let tree = descendants(pid);
        // SAFETY: signalling processes this test's sshd started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        for p in tree {
            if is_sshd(p) {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_file(self.pid_file());
        wait_for(Duration::from_secs(5), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The `[host.NAME]` table reaching this sshd as the test user.
    pub fn host_table(&self, name: &str, socket: &str, orch_bin: &Path) -> String {
        format!(
            "[host.{name}]\nssh = \"{USER}@127.0.0.1\"\nssh_options = [\"-p\", \"{port}\", \"-i\", \"{key}\", \"-o\", \"StrictHostKeyChecking=no\", \"-o\", \"UserKnownHostsFile=/dev/null\"]\ntmux_socket = \"{socket}\"\norch_bin = \"{bin}\"\n",
            port = self.port,
            key = self.key.display(),
            bin = orch_bin.display(),
        )
    }

    /// Runs a shell line as the test user over ssh (no master), returning stdout.
    pub fn ssh(&self, line: &str) -> std::process::Output {
        Command::new("ssh")
            .args(["-p", &self.port.to_string(), "-i"])
            .arg(&self.key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                &format!("{USER}@127.0.0.1"),
                line,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Like [`Sshd::ssh`], asserting success; returns stdout.
    pub fn ssh_ok(&self, line: &str) -> String {
        let out = self.ssh(line);
        assert!(
            out.status.success(),
            "ssh {line:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every process whose parent chain leads to `root` (read from /proc).
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Some(ppid) = ppid_of(pid) {
            parents.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

fn ppid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn is_sshd(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).starts_with("sshd"))
        .unwrap_or(false)
}

/// A copy of the orch binary the test user can run (target/ may not be reachable for it),
/// named `orch` so tmux reports `orch` as the pane's command: one fixed path per user,
/// refreshed when the build changed.
pub fn orch_copy() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("orch-test-bin-{uid}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.join("orch");
    let src = crate::support::orch_bin();
    let stamp = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().ok()))
    };
    let fresh = stamp(&bin)
        .zip(stamp(&src))
        .is_some_and(|(b, s)| b.0 == s.0 && b.1 >= s.1);
    if !fresh {
        let tmp = dir.join(format!("orch.{}", std::process::id()));
        std::fs::copy(&src, &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &bin).unwrap();
    }
    bin
}
