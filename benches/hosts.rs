//! `cargo bench --bench hosts`: `orch status` and one watchdog tick for 50 agents (idle, or
//! printing every 0.5 s) on this machine vs 50 agents on an ssh host (a private sshd on 127.0.0.1, a dedicated user), with
//! the tmux and ssh processes each spawns (counted by logging wrappers first on PATH).
//! Skips (exit 0, message) without /usr/sbin/sshd, ssh, tmux, or root to create the user.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AGENTS: usize = 50;
const RUNS: usize = 11;
const TICKS: usize = 5;
const USER: &str = "orchtest";

fn main() {
    if let Some(why) = unavailable() {
        println!("hosts bench skipped: {why}");
        return;
    }
    let bench = Bench::new();
    let rows = [
        ("local, idle", bench.measure(false, false)),
        ("on a host, idle", bench.measure(true, false)),
        ("local, busy", bench.measure(false, true)),
        ("on a host, busy", bench.measure(true, true)),
    ];
    println!(
        "{AGENTS} agents          status (median)  tmux/status  ssh/status  tick (median)  tmux/tick  ssh/tick"
    );
    for (name, r) in &rows {
        println!(
            "{name:<19} {:>10.1} ms {:>12} {:>11} {:>11.1} ms {:>10.1} {:>9.1}",
            r.status_ms, r.status_tmux, r.status_ssh, r.tick_ms, r.tick_tmux, r.tick_ssh
        );
    }
}

fn unavailable() -> Option<String> {
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some("no /usr/sbin/sshd".into());
    }
    for tool in ["ssh", "ssh-keygen", "tmux"] {
        if which(tool).is_none() {
            return Some(format!("no {tool} on PATH"));
        }
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 && home_of(USER).is_none() {
        return Some(format!("not root and no user {USER}"));
    }
    None
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn home_of(user: &str) -> Option<PathBuf> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.trim().split(':').nth(5).map(PathBuf::from)
}

struct Bench {
    dir: tempfile::TempDir,
    home: PathBuf,
    port: u16,
    key: PathBuf,
    log: PathBuf,
    wrapped_path: String,
}

struct Row {
    status_ms: f64,
    status_tmux: usize,
    status_ssh: usize,
    tick_ms: f64,
    tick_tmux: f64,
    tick_ssh: f64,
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

impl Bench {
    fn new() -> Bench {
        if home_of(USER).is_none() {
            let _ = Command::new("useradd")
                .args(["-m", "-s", "/bin/bash", USER])
                .status();
        }
        let _ = Command::new("usermod")
            .args(["-p", "*", "-s", "/bin/bash", USER])
            .status();
        let _ = std::fs::create_dir_all("/run/sshd");
        let home = home_of(USER).expect("the bench user");
        let dir = tempfile::Builder::new()
            .prefix("orch-hb")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = dir.path().join("id");
        keygen(&dir.path().join("host_key"));
        keygen(&key);
        let auth = dir.path().join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &auth).unwrap();
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
                 PasswordAuthentication no\nAllowUsers {USER}\nMaxSessions 20\n"
            ),
        )
        .unwrap();
        let st = Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(dir.path().join("sshd_config"))
            .status()
            .unwrap();
        assert!(st.success(), "sshd did not start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Wrappers that log every tmux and ssh process spawned, first on PATH.
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("spawned.log");
        for tool in ["tmux", "ssh"] {
            let real = which(tool).unwrap();
            let w = bin.join(tool);
            std::fs::write(
                &w,
                format!(
                    "#!/bin/sh\necho {tool} >> '{}'\nexec '{}' \"$@\"\n",
                    log.display(),
                    real.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let wrapped_path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Bench {
            dir,
            home,
            port,
            key,
            log,
            wrapped_path,
        }
    }

    fn counts(&self) -> (usize, usize) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let _ = std::fs::remove_file(&self.log);
        let n = |t: &str| text.lines().filter(|l| *l == t).count();
        (n("tmux"), n("ssh"))
    }

    fn measure(&self, remote: bool, busy: bool) -> Row {
        let tag = format!(
            "{}-{}",
            if remote { "remote" } else { "local" },
            if busy { "busy" } else { "idle" }
        );
        let project = self.dir.path().join(&tag);
        std::fs::create_dir_all(&project).unwrap();
        let socket = format!("orch-hb-{}-{tag}", std::process::id());
        let base = self.home.join(format!("orch-hb-{}", std::process::id()));
        let host = format!(
            "[host.lab]\nssh = \"{USER}@127.0.0.1\"\nssh_options = [\"-p\", \"{}\", \"-i\", \"{}\", \"-o\", \"StrictHostKeyChecking=no\", \"-o\", \"UserKnownHostsFile=/dev/null\", \"-o\", \"LogLevel=ERROR\"]\ntmux_socket = \"{socket}\"\n",
            self.port,
            self.key.display()
        );
        // The local fleet declares no host at all.
        let mut text = format!(
            "[defaults]\nsession_prefix = \"hb-\"\nlog_dir = \".orch\"\ntmux_socket = \"{socket}\"\n\
             [watchdog]\nsignal_interval = 1\nheavy_interval = 1\n{}\
             [backend.idle]\nbin = \"sleep 100000\"\nprompt_delivery = \"exec\"\nprocess_name = \"sleep\"\n\
             [backend.busy]\nbin = \"sh -c 'while :; do date +%N; sleep 0.5; done'\"\nprompt_delivery = \"exec\"\nprocess_name = \"sh\"\n",
            if remote { host.as_str() } else { "" }
        );
        let mut names = Vec::new();
        for i in 0..AGENTS {
            let name = format!("a{i:02}");
            text +=
                &format!("[[agent]]\nname = \"{name}\"\nbackend = \"idle\"\nwatch = \"heal\"\n");
            if remote {
                text += &format!("host = \"lab\"\ndir = \"{}/{name}\"\n", base.display());
            }
            names.push(name);
        }
        let config = project.join("agents.toml");
        std::fs::write(&config, text).unwrap();
        let orch = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_orch"))
                .arg("--config")
                .arg(&config)
                .args(args)
                .env("PATH", &self.wrapped_path)
                .env_remove("TMUX")
                .env_remove("ORCH_TMUX_SOCKET")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
        };
        let mut up = vec!["up"];
        up.extend(names.iter().map(String::as_str));
        assert!(orch(&up).success(), "orch up failed for the {tag} fleet");
        let _ = orch(&["status", "--json"]); // the master connection is up from here on
        self.counts();
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            assert!(orch(&["status", "--json"]).success());
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (tmux, ssh) = self.counts();
        // SAFETY: the bench is single-threaded here; the tick runs its tmux/ssh through PATH.
        let old_path = std::env::var_os("PATH");
        unsafe { std::env::set_var("PATH", &self.wrapped_path) };
        let mut wd = orch::watchdog::Watchdog::open(&config).expect("watchdog");
        wd.tick(); // the first (heavy) tick
        self.counts();
        let mut ticks = Vec::new();
        for _ in 0..TICKS {
            let t = Instant::now();
            wd.tick();
            ticks.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (tick_tmux, tick_ssh) = self.counts();
        if let Some(p) = old_path {
            unsafe { std::env::set_var("PATH", p) };
        }
        assert!(orch(&["down"]).success());
        let _ = Command::new("runuser")
            .args(["-u", USER, "--", "tmux", "-L", &socket, "kill-server"])
            .output();
        let _ = Command::new("tmux")
            .args(["-L", &socket, "kill-server"])
            .output();
        let _ = std::fs::remove_dir_all(&base);
        Row {
            status_ms: median(&mut times),
            status_tmux: tmux / RUNS,
            status_ssh: ssh / RUNS,
            tick_ms: median(&mut ticks),
            tick_tmux: tick_tmux as f64 / TICKS as f64,
            tick_ssh: tick_ssh as f64 / TICKS as f64,
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Drop for Bench {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.path().join("sshd.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: the sshd this bench started, by its pid file.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}
