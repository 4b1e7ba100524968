//! A job project: a forge (bare repo), a project dir whose agents.toml has profiles on the
//! headless sim, a PR stub recording its argv (and a failing one), a private tmux server.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::gitfix::GitFixture;
use crate::support::{TmuxServer, orch_bin, orch_cmd, wait_for};

pub struct JobProject {
    pub git: GitFixture,
    pub tmux: TmuxServer,
    pub config: PathBuf,
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl JobProject {
    /// A project with `[jobs] max_parallel` and `extra_jobs` lines added to `[jobs]`.
    pub fn new(max_parallel: usize, extra_jobs: &str) -> JobProject {
        let git = GitFixture::new();
        let tmux = TmuxServer::new();
        let dir = git.dir.path().join("project");
        std::fs::create_dir_all(&dir).unwrap();
        let stub = git.dir.path().join("pr-stub.sh");
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho 'Creating pull request'\necho https://forge.example/pr/1\n",
                git.dir.path().join("stub.args").display()
            ),
        )
        .unwrap();
        let bad = git.dir.path().join("pr-fail.sh");
        std::fs::write(&bad, "#!/bin/sh\necho 'gh: HTTP 502' >&2\nexit 3\n").unwrap();
        for f in [&stub, &bad] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let sim = format!("{} sim-headless claude", orch_bin().display());
        let pidfile = git.dir.path().join("sim.pids");
        let prefix = format!("j{}-", std::process::id() % 100000);
        let cfg = format!(
            r#"[defaults]
session_prefix = "{prefix}"
log_dir = ".orch"

[jobs]
max_parallel = {max_parallel}
default_profile = "sim"
grace_period = 1
{extra_jobs}

[backend.simc]
preset = "claude-code"
bin = "{sim}"

[backend.simcodex]
preset = "codex"
bin = "{orch} sim-headless codex"

[backend.simgemini]
preset = "gemini-cli"
bin = "{orch} sim-headless gemini"

[backend.simopencode]
preset = "opencode"
bin = "{orch} sim-headless opencode"

[backend.simplain]
bin = "{orch} sim-headless plain"

[profile.claude]
backend = "simc"

[profile.codex]
backend = "simcodex"

[profile.gemini]
backend = "simgemini"

[profile.opencode]
backend = "simopencode"

[profile.plain]
backend = "simplain"

[profile.sim]
backend = "simc"
pr_command = ["{stub}", "{{branch}}", "{{base}}", "{{title}}", "{{body_file}}"]

[profile.badpr]
backend = "simc"
pr_command = ["{bad}"]

[profile.err]
backend = "simc"
env = {{ ORCH_SIM_FAULT = "error" }}

[profile.dirty]
backend = "simc"
pr_command = ["{stub}", "{{branch}}"]
env = {{ ORCH_SIM_FAULT = "dirty" }}

[profile.nochange]
backend = "simc"
pr_command = ["{stub}"]
env = {{ ORCH_SIM_FAULT = "no-commit" }}

[profile.hang]
backend = "simc"
env = {{ ORCH_SIM_FAULT = "hang", ORCH_SIM_PIDFILE = "{pidfile}" }}

[profile.slow]
backend = "simc"
pr_command = ["{stub}"]
env = {{ ORCH_SIM_FAULT = "sleep=1200" }}

[profile.slow3]
backend = "simc"
pr_command = ["{stub}"]
env = {{ ORCH_SIM_FAULT = "sleep=4000" }}
"#,
            stub = stub.display(),
            bad = bad.display(),
            pidfile = pidfile.display(),
            orch = orch_bin().display(),
        );
        let config = dir.join("agents.toml");
        std::fs::write(&config, cfg).unwrap();
        JobProject { git, tmux, config }
    }

    pub fn dir(&self) -> &Path {
        self.git.dir.path()
    }

    pub fn project(&self) -> PathBuf {
        self.dir().join("project")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.project().join(".orch")
    }

    pub fn prefix(&self) -> String {
        format!("j{}-", std::process::id() % 100000)
    }

    /// The forge's URL (a file:// URL, so it goes through the clone cache).
    pub fn url(&self) -> String {
        format!("file://{}", self.git.remote.display())
    }

    pub fn orch_cmd(&self, args: &[&str]) -> Command {
        let mut c = orch_cmd(&self.config, &self.tmux.socket, &self.project(), args);
        c.env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "orch test")
            .env("GIT_AUTHOR_EMAIL", "orch-test@example.invalid")
            .env("GIT_COMMITTER_NAME", "orch test")
            .env("GIT_COMMITTER_EMAIL", "orch-test@example.invalid")
            .env("GIT_ALLOW_PROTOCOL", "file")
            .env_remove("ORCH_SIM_FAULT");
        c
    }

    pub fn orch(&self, args: &[&str]) -> Output {
        self.orch_cmd(args).output().unwrap()
    }

    pub fn job(&self, id: &str) -> Value {
        let path = self.log_dir().join("jobs").join(id).join("job.json");
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
            .unwrap_or(Value::Null)
    }

    /// The pids the hanging sim recorded (itself, its grandchild).
    pub fn sim_pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir().join("sim.pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// `orch up watchdog`, and wait until it holds its lock.
    pub fn start_watchdog(&self) {
        let out = self.orch(&["up", "watchdog"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(wait_for(Duration::from_secs(20), || self
            .watchdog_pid()
            .is_some()));
    }

    pub fn watchdog_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.log_dir().join("state/watchdog.lock"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILL the watchdog and wait until its session is gone.
    pub fn kill_watchdog(&self) {
        let pid = self.watchdog_pid().expect("a running watchdog");
        // SAFETY: the watchdog this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let session = format!("{}watchdog", self.prefix());
        assert!(wait_for(Duration::from_secs(10), || {
            !self.tmux.tmux.has_session(&session).unwrap_or(true)
        }));
    }
}
