//! Agents on another host over a real sshd on 127.0.0.1 (a dedicated unprivileged user with its
//! own tmux server): start, status, pings, logs, healing, a host going away and coming back, a
//! stopped master connection, and secrets that never show in any process's argv or log.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::need_sshd;
use crate::sshd::{Sshd, USER, orch_copy};
use crate::support::{TempDir, TmuxServer, orch_cmd, wait_for};

/// How long one call to the host may take in these tests.
const SSH_TIMEOUT: &str = "3";

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
struct ArgvWatch {
    stop: Arc<AtomicBool>,
    seen: std::thread::JoinHandle<Vec<String>>,
}

impl ArgvWatch {
    fn start(needle: &str) -> ArgvWatch {
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

    fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.seen.join().unwrap()
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
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

const FAR: &str = r#"
[[agent]]
name = "far"
backend = "rec"
host = "lab"
dir = "{base}/far"
watch = "heal"
secrets_dir = "{secrets}"
files = { "NOTES.md" = "{notes}" }
"#;

#[test]
fn a_remote_agent_starts_shows_in_status_takes_pings_and_keeps_its_secret_out_of_argv() {
    need_sshd!();
    let p = HostProject::new(FAR);
    let watch = ArgvWatch::start(&p.secret);
    p.orch_ok(&["up", "far"]);
    assert!(p.remote_has("t-far"), "no session t-far on the host");
    assert!(
        wait_for(Duration::from_secs(10), || p.remote_file("far/.orch/token")
            == p.secret),
        "the secret never reached the agent on the host"
    );

    assert_eq!(
        p.remote_file("far/NOTES.md"),
        "I am far\n",
        "files are made on the host"
    );
    let status = p.status();
    let far = &status["agents"][0];
    assert_eq!(far["host"], "lab", "{status:#}");
    assert_eq!(far["running"], true, "{status:#}");
    assert_eq!(far["command"], "sh", "{status:#}");
    let host = &status["hosts"][0];
    assert_eq!(host["name"], "lab", "{status:#}");
    assert_eq!(host["reachable"], true, "{status:#}");
    assert!(
        host["tmux_version"].as_str().unwrap().starts_with("tmux"),
        "{status:#}"
    );
    assert!(host["latency_ms"].is_u64(), "{status:#}");
    assert!(host["error"].is_null(), "{status:#}");
    let table = p.orch_ok(&["status"]);
    assert!(table.starts_with("HOST"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lab") && l.contains("far")),
        "{table}"
    );

    // Pings (typed, and a long one pasted through ssh's stdin) land in the remote pane.
    let wd = orch::watchdog::Watchdog::open(&p.config).unwrap();
    assert!(wd.ping_agent("far", "hello from the watchdog"));
    let long = format!("it's a \"long\" $HOME `text`; {}", "x".repeat(300));
    assert!(wd.ping_agent("far", &long));
    assert!(wait_for(Duration::from_secs(10), || {
        let typed = p.remote_file("far/.orch/far.typed");
        typed.contains("hello from the watchdog") && typed.contains(&long)
    }));

    // The session log is on the host, read over ssh.
    let logs = p.orch_ok(&["logs", "far", "-n", "5"]);
    assert!(logs.contains("ready"), "{logs}");
    let mut follow = p
        .cmd(&["logs", "far", "-f", "-n", "5"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
        while !first.contains("ready") && out.read_line(&mut first).unwrap_or(0) > 0 {}
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    assert!(first.contains("ready"), "logs -f printed {first:?}");

    let seen = watch.finish();
    assert!(
        seen.is_empty(),
        "the secret was in a process's argv: {seen:#?}"
    );
    let leaked = files_containing(&p.log_dir(), &p.secret);
    assert!(
        leaked.is_empty(),
        "the secret is in local files: {leaked:?}"
    );
    let remote_logs = files_containing(&p.base.join("far/.orch"), &p.secret);
    assert_eq!(
        remote_logs,
        [p.base.join("far/.orch/token")],
        "the secret is in a file on the host other than the agent's own"
    );

    let master = p.master_pid().expect("a master connection");
    p.orch_ok(&["down"]);
    assert!(!p.remote_has("t-far"), "down left t-far on the host");
    assert!(
        wait_for(Duration::from_secs(5), || !Path::new(&format!(
            "/proc/{master}"
        ))
        .exists()
            || std::fs::read_to_string(format!("/proc/{master}/stat"))
                .is_ok_and(|s| s.contains(") Z"))),
        "down left the master connection running"
    );
}

#[test]
fn an_unknown_host_is_a_config_error_naming_agent_and_host() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agents.toml");
    std::fs::write(
        &config,
        "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[backend.b]\nbin = \"true\"\n\
         [[agent]]\nname = \"adversary\"\nbackend = \"b\"\nhost = \"lab\"\ndir = \"/x\"\n",
    )
    .unwrap();
    let out = orch_cmd(&config, "unused", dir.path(), &["validate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agents.toml:9:8: agent adversary: unknown host \"lab\""),
        "{err}"
    );
}

#[test]
fn a_silent_host_makes_its_agents_unreachable_not_restarted_and_healing_resumes_when_it_is_back() {
    need_sshd!();
    let p = HostProject::new(FAR);
    p.orch_ok(&["up"]);
    let gone = |n: usize| {
        wait_for(Duration::from_secs(30), || {
            p.events_for("healed", "far") >= n
        })
    };

    // A session killed on the host is healed.
    assert!(
        p.remote_tmux(&["kill-session", "-t", "=t-far"])
            .status
            .success()
    );
    assert!(
        gone(1),
        "the killed session was not healed: {:#?}",
        p.events()
    );
    assert!(wait_for(Duration::from_secs(10), || p.remote_has("t-far")));

    // The host goes away: unreachable, logged once, nothing restarted, status stays quick.
    let starts = p.events_for("agent_started", "far");
    p.sshd.stop();
    assert!(
        wait_for(Duration::from_secs(20), || p
            .events_for("host_unreachable", "")
            == 1),
        "no host_unreachable: {:#?}",
        p.events()
    );
    let t = Instant::now();
    let far = p.agent_status("far");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "status took {:?}",
        t.elapsed()
    );
    assert_eq!(far["state"], "unreachable", "{far:#}");
    let status = p.status();
    assert_eq!(status["hosts"][0]["reachable"], false, "{status:#}");
    assert!(status["hosts"][0]["error"].is_string(), "{status:#}");
    // Its session goes for real while the host is away; nothing may happen until it is back.
    assert!(
        p.remote_tmux(&["kill-session", "-t", "=t-far"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(p.events_for("host_unreachable", ""), 1, "{:#?}", p.events());
    assert_eq!(
        p.events_for("healed", "far"),
        1,
        "restarted on a silent host"
    );
    assert_eq!(p.events_for("agent_started", "far"), starts);

    // Back: host_back once, and what is really gone is healed.
    p.sshd.resume();
    assert!(
        wait_for(Duration::from_secs(30), || p.events_for("host_back", "")
            == 1),
        "no host_back: {:#?}",
        p.events()
    );
    assert!(
        gone(2),
        "the session lost while away was not healed: {:#?}",
        p.events()
    );
    assert!(wait_for(Duration::from_secs(10), || p.remote_has("t-far")));
    assert_eq!(
        p.agent_status("far")["state"]
            .as_str()
            .map(|s| s != "unreachable"),
        Some(true)
    );
}

#[test]
fn a_stopped_master_or_a_silent_server_hangs_no_verb_and_no_tick() {
    need_sshd!();
    let p = HostProject::new(FAR);
    p.orch_ok(&["up"]);
    assert!(p.remote_has("t-far"));
    let master = p.master_pid().expect("a master connection");
    // SAFETY: stopping the ssh master orch started for this test.
    unsafe { libc::kill(master, libc::SIGSTOP) };

    // A verb: a stopped master is seen and replaced (or the call times out): never a hang.
    let t = Instant::now();
    let _ = p.agent_status("far");
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "status hung: {:?}",
        t.elapsed()
    );
    let far = p.agent_status("far");
    assert_eq!(far["running"], true, "{far:#}");
    assert_ne!(
        p.master_pid(),
        Some(master),
        "the stopped master is still in use"
    );
    // The watchdog's ticks go on: a session killed on the host is healed.
    assert!(
        p.remote_tmux(&["kill-session", "-t", "=t-far"])
            .status
            .success()
    );
    assert!(
        wait_for(Duration::from_secs(30), || p.events_for("healed", "far")
            == 1),
        "the watchdog never got past the stopped master: {:#?}",
        p.events()
    );

    // The server stops answering (every sshd process stopped, connections open): each call
    // times out, the host is unreachable, and the verb still returns in bounded time.
    let sshd = p.sshd.pid().unwrap();
    let mut stopped = vec![sshd];
    stopped.extend(crate::sshd::descendants(sshd));
    for pid in &stopped {
        // SAFETY: stopping processes of this test's sshd.
        unsafe { libc::kill(*pid, libc::SIGSTOP) };
    }
    let t = Instant::now();
    let far = p.agent_status("far");
    let took = t.elapsed();
    // The watchdog's tick times out too, and says so once.
    let unreachable = wait_for(Duration::from_secs(20), || {
        p.events_for("host_unreachable", "") == 1
    });
    for pid in &stopped {
        unsafe { libc::kill(*pid, libc::SIGCONT) };
    }
    assert!(took < Duration::from_secs(12), "status hung: {took:?}");
    assert_eq!(far["state"], "unreachable", "{far:#}");
    assert!(
        unreachable,
        "the watchdog's tick never timed out: {:#?}",
        p.events()
    );
    assert!(
        wait_for(Duration::from_secs(30), || p.events_for("host_back", "")
            == 1
            && p.agent_status("far")["running"] == true),
        "no recovery: {:#?}",
        p.events()
    );
    assert_eq!(p.events_for("healed", "far"), 1, "{:#?}", p.events());
}

/// Runs `args` as the test user (with its own HOME), asserting success.
fn as_test_user(home: &Path, args: &[&std::ffi::OsStr]) {
    let out = Command::new("runuser")
        .args(["-u", USER, "--", "env"])
        .arg(format!("HOME={}", home.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} as {USER}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens the git fixture to the test user (the bare remote world-writable, git trusting it)
/// and clones it into `dir` on the "host" as that user.
fn clone_as_test_user(fx: &crate::gitfix::GitFixture, home: &Path, dir: &Path) {
    use std::ffi::OsStr;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    crate::gitfix::git(&fx.remote, &["config", "core.sharedRepository", "0666"]);
    let st = Command::new("chmod")
        .arg("-R")
        .arg("a+rwX")
        .arg(&fx.remote)
        .status()
        .unwrap();
    assert!(st.success());
    let git = |args: &[&str]| {
        let mut all: Vec<&OsStr> = vec![OsStr::new("git")];
        all.extend(args.iter().map(OsStr::new));
        as_test_user(home, &all);
    };
    git(&["config", "--global", "user.name", "orch test"]);
    git(&["config", "--global", "user.email", "test@orch.invalid"]);
    git(&["config", "--global", "--replace-all", "safe.directory", "*"]);
    as_test_user(
        home,
        &[
            OsStr::new("git"),
            OsStr::new("clone"),
            OsStr::new("-q"),
            fx.remote.as_os_str(),
            dir.as_os_str(),
        ],
    );
}

#[test]
fn a_local_builder_and_an_adversary_on_the_host_complete_the_two_phase_loop() {
    need_sshd!();
    let sshd = Sshd::start();
    let unique = format!("{}-{}", std::process::id(), chrono_like_nanos());
    let base = sshd.home.join(format!("orch-loop-{unique}"));
    let remote_socket = format!("orch-rl-{unique}");
    let adversary_dir = base.join("adversary");
    let body = format!(
        r#"
{host}
{sim}
[backend.simr]
bin = "orch sim"
flags = "--step-ms 40"
prompt_delivery = "arg"
process_name = "orch"
active_re = "esc to interrupt"

[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "sim"
dir = "builder"
watch = "heal+stall"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "simr"
host = "lab"
dir = "{dir}"
watch = "heal+stall"
env = {{ ORCH_SIM_FIND = "1" }}
{looping}"#,
        host = sshd.host_table("lab", &remote_socket, &orch_copy()),
        sim = crate::project::sim_backend("sim", ""),
        dir = adversary_dir.display(),
        looping = crate::project::loop_section(2, ""),
    );
    let p = crate::project::Project::new(&body);
    clone_as_test_user(&p.git, &sshd.home, &adversary_dir);
    let cleanup = Cleanup {
        socket: remote_socket.clone(),
        base: base.clone(),
    };
    let mut up = p.orch_cmd(&["up"]);
    up.env("ORCH_SSH_TIMEOUT", SSH_TIMEOUT);
    crate::support::stdout_ok(up, &["up"]);
    let complete = p.wait_events("sequence_complete", 1, Duration::from_secs(120));
    let pings: Vec<Value> = p.events_named("ping");
    assert!(
        complete,
        "no sequence_complete; remote: {:#?}\nevents: {:#?}\nadversary log: {}",
        p.remote_subjects(),
        p.events(),
        std::fs::read_to_string(adversary_dir.join(".orch/t-adversary.log")).unwrap_or_default()
    );
    let subjects: Vec<String> = p
        .remote_subjects()
        .into_iter()
        .filter(|s| {
            ["claim:", "review:", "status:"]
                .iter()
                .any(|v| s.starts_with(v))
        })
        .collect();
    assert!(
        subjects.contains(&"review: p1 finding".to_string()),
        "{subjects:#?}"
    );
    assert!(
        subjects.contains(&"review: p2 ok".to_string()),
        "{subjects:#?}"
    );
    assert!(
        pings
            .iter()
            .any(|e| e["agent"] == "adversary" && e["delivered"] == true),
        "{pings:#?}"
    );
    assert!(p.events_named("healed").is_empty(), "{:#?}", p.events());
    crate::support::stdout_ok(p.orch_cmd(&["down"]), &["down"]);
    drop(cleanup);
}

/// Removes the host side of a test (its tmux server and folder) without needing ssh.
struct Cleanup {
    socket: String,
    base: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", USER, "--", "tmux", "-L", &self.socket, "kill-server"])
            .output();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn chrono_like_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

#[test]
fn orch_hosts_reports_a_ready_host_and_says_what_to_fix_on_a_broken_one() {
    need_sshd!();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = HostProject::new(&format!(
        "[host.dead]\nssh = \"{USER}@127.0.0.1\"\nssh_options = [\"-p\", \"{closed}\", \"-o\", \"StrictHostKeyChecking=no\"]\n\
         [host.notmux]\nssh = \"{USER}@127.0.0.1\"\nssh_options = [\"-p\", \"PORT\", \"-i\", \"KEY\", \"-o\", \"StrictHostKeyChecking=no\", \"-o\", \"UserKnownHostsFile=/dev/null\"]\norch_bin = \"/nonexistent/orch\"\n"
    ));
    // The second host is the same sshd with a missing orch_bin.
    let text = std::fs::read_to_string(&p.config)
        .unwrap()
        .replace("PORT", &p.sshd.port.to_string())
        .replace("KEY", &p.sshd.key.display().to_string());
    std::fs::write(&p.config, text).unwrap();
    let out = p.orch(&["hosts", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = |n: &str| {
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == n)
            .cloned()
            .unwrap()
    };
    let lab = host("lab");
    assert_eq!(lab["reachable"], true, "{v:#}");
    assert!(
        lab["tmux_version"].as_str().unwrap().starts_with("tmux"),
        "{v:#}"
    );
    assert!(
        lab["orch_version"].as_str().unwrap().starts_with("orch "),
        "{v:#}"
    );
    assert!(lab["latency_ms"].is_u64(), "{v:#}");
    assert_eq!(lab["problems"], serde_json::json!([]), "{v:#}");
    let dead = host("dead");
    assert_eq!(dead["reachable"], false, "{v:#}");
    let problem = dead["problems"][0].as_str().unwrap();
    assert!(problem.contains("host dead is unreachable"), "{problem}");
    let notmux = host("notmux");
    assert_eq!(notmux["reachable"], true, "{v:#}");
    let problem = notmux["problems"][0].as_str().unwrap();
    assert!(
        problem.contains("orch_bin \"/nonexistent/orch\" does not run on host notmux"),
        "{problem}"
    );
    let table = String::from_utf8_lossy(&p.orch(&["hosts"]).stdout).into_owned();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lab") && l.contains(" ok ")),
        "{table}"
    );
    assert!(table.contains("PROBLEM"), "{table}");
}
