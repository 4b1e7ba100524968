//! The hosts tests' project: a local tmux server and config with agents on the sshd's host
//! `lab`, helpers to look at the host without ssh, and watchers for leaked secrets.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::sshd::{Sshd, USER, orch_copy};
use crate::support::{TempDir, TmuxServer, orch_cmd};

/// How long one call to the host may take in these tests.
pub const SSH_TIMEOUT: &str = "3";

/// Records every typed line in `<log_dir on the host>/<agent>.typed` and writes its secret to
/// `token` there (so the test can see the secret arrived, without it ever being printed).
const RECORDER: &str = r#"
[backend.rec]
bin = '''sh -c 'printf "%s" "$API_TOKEN" > "$ORCH_LOG_DIR/token"; echo ready; while IFS= read -r l; do printf "%s\n" "$l" >> "$ORCH_LOG_DIR/$ORCH_AGENT.typed"; done' '''
prompt_delivery = "exec"
process_name = "sh"
"#;

/// A local project (its own tmux server) with agents on the sshd's host `lab`.
pub struct HostProject {
    pub sshd: Sshd,
    pub local: TmuxServer,
    pub root: TempDir,
    pub config: PathBuf,
    /// The remote tmux server's socket name.
    pub remote_socket: String,
    /// A folder in the test user's home for this test's agent dirs.
    pub base: PathBuf,
    pub secret: String,
}

impl HostProject {
    /// `body` is appended after the defaults, the `lab` host and the recorder backend.
    pub fn new(body: &str) -> HostProject {
        let sshd = Sshd::start();
        let local = TmuxServer::new();
        let root = tempfile::tempdir().unwrap();
        let unique = local.socket.replace("orch-test-", "");
        let remote_socket = format!("orch-rt-{unique}");
        let base = sshd.home.join(format!("orch-it-{unique}"));
        let secrets = root.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let secret = format!("sekrit-{unique}-xyzzy");
        std::fs::write(secrets.join("API_TOKEN"), &secret).unwrap();
        let notes = root.path().join("notes.md");
        std::fs::write(&notes, "I am ${agent.name}\n").unwrap();
        let config = root.path().join("agents.toml");
        let text = format!(
            "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\ntmux_socket = \"{}\"\n\n\
             [watchdog]\nsignal_interval = 1\nheavy_interval = 1\n\n{}{RECORDER}\n{}",
            local.socket,
            sshd.host_table("lab", &remote_socket, &orch_copy()),
            body.replace("{base}", &base.display().to_string())
                .replace("{secrets}", &secrets.display().to_string())
                .replace("{notes}", &notes.display().to_string()),
        );
        std::fs::write(&config, text).unwrap();
        HostProject {
            sshd,
            local,
            root,
            config,
            remote_socket,
            base,
            secret,
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = orch_cmd(&self.config, &self.local.socket, self.root.path(), args);
        cmd.env("ORCH_SSH_TIMEOUT", SSH_TIMEOUT);
        cmd
    }

    pub fn orch(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub fn orch_ok(&self, args: &[&str]) -> String {
        let out = self.orch(args);
        assert!(
            out.status.success(),
            "orch {args:?} failed: {}{}\nsshd: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.sshd.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.orch_ok(&["status", "--json"])).unwrap()
    }

    pub fn agent_status(&self, name: &str) -> Value {
        let s = self.status();
        s["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .cloned()
            .unwrap()
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.path().join(".orch")
    }

    pub fn events(&self) -> Vec<Value> {
        orch::events::read_since(&self.log_dir().join("events.jsonl"), 0)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    pub fn events_for(&self, name: &str, agent: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event"] == name && (agent.is_empty() || e["agent"] == agent))
            .count()
    }

    /// A tmux command on the host's server, run as the test user without ssh (works while
    /// the sshd is stopped).
    pub fn remote_tmux(&self, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", USER, "--", "tmux", "-L", &self.remote_socket])
            .args(args)
            .output()
            .unwrap()
    }

    pub fn remote_has(&self, session: &str) -> bool {
        self.remote_tmux(&["has-session", "-t", &format!("={session}")])
            .status
            .success()
    }

    /// A file on the host, read as root (no ssh needed).
    pub fn remote_file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.base.join(rel)).unwrap_or_default()
    }

    /// The master connection's pid, from its pid file under log_dir.
    pub fn master_pid(&self) -> Option<i32> {
        let dir = self.log_dir().join("ssh");
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            if e.path().extension().is_some_and(|x| x == "pid") {
                let pid: i32 = std::fs::read_to_string(e.path())
                    .ok()?
                    .trim()
                    .parse()
                    .ok()?;
                if Path::new(&format!("/proc/{pid}")).exists() {
                    return Some(pid);
                }
            }
        }
        None
    }
}

impl Drop for HostProject {
    fn drop(&mut self) {
        let _ = self.cmd(&["down"]).output();
        let _ = self.remote_tmux(&["kill-server"]);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Watches every process's argv (/proc/*/cmdline) for `needle` until dropped.
pub struct ArgvWatch {
    stop: Arc<AtomicBool>,
    seen: std::thread::JoinHandle<Vec<String>>,
}

impl ArgvWatch {
    pub fn start(needle: &str) -> ArgvWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let needle = needle.to_string();
        let seen = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
                        let c = String::from_utf8_lossy(&c).replace('\0', " ");
                        if c.contains(&needle) {
                            seen.push(c);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        });
        ArgvWatch { stop, seen }
    }

    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.seen.join().unwrap()
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_containing(&p, needle));
        } else if std::fs::read(&p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle)) {
            out.push(p);
        }
    }
    out
}

pub const FAR: &str = r#"
[[agent]]
name = "far"
backend = "rec"
host = "lab"
dir = "{base}/far"
watch = "heal"
secrets_dir = "{secrets}"
files = { "NOTES.md" = "{notes}" }
"#;
