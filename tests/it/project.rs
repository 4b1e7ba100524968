//! A whole throwaway project for loop tests: a bare remote, the watchdog's clone (`watch/`),
//! one clone per loop agent, prompts and plans, a config on a private tmux server.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::gitfix::{GitFixture, git};
use crate::support::{TmuxServer, orch_bin, orch_cmd, stdout_ok, wait_for};

/// The simulated agent as a backend (fast steps); `{extra}` is appended to its flags.
pub fn sim_backend(name: &str, flags: &str) -> String {
    let bin = shell_words::quote(&orch_bin().display().to_string()).into_owned();
    format!(
        r#"
[backend.{name}]
bin = "{bin} sim"
flags = "--step-ms 40 {flags}"
prompt_delivery = "arg"
process_name = "orch"
active_re = "esc to interrupt"
limit_re = "limit reached|usage limit"
fatal_re = "session state corrupt"
"#,
        bin = bin.replace('\\', "\\\\").replace('"', "\\\"")
    )
}

/// A backend whose process records every line typed into it in `<log_dir>/<agent>.typed`.
pub const RECORDER_BACKEND: &str = r#"
[backend.rec]
bin = "sh -c 'while IFS= read -r l; do printf \"%s\\n\" \"$l\" >> \"$ORCH_LOG_DIR/$ORCH_AGENT.typed\"; done'"
prompt_delivery = "exec"
process_name = "sh"
"#;

/// Builder + adversary loop agents on `backend`, each in its own clone.
pub fn loop_agents(backend: &str) -> String {
    format!(
        r#"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "{backend}"
dir = "builder"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "{backend}"
dir = "adversary"
"#
    )
}

/// A `[loop]` with `n` phases p1..pn (plans in plans/, status files pN-STATUS.md) and the handoff.
pub fn loop_section(n: usize, extra: &str) -> String {
    let phases: Vec<String> = (1..=n)
        .map(|i| format!(r#"{{ id = "p{i}", plan = "plans/p{i}.md", status = "p{i}-STATUS.md" }}"#))
        .collect();
    format!(
        r#"
[loop]
kickoff_template = "prompts/kickoff.md"
roles_dir = "prompts"
phases = [{}]
{extra}
[loop.handoff]
repo = "watch"
state_subdir = "machine-docs"
inboxes = ["ADVERSARY-INBOX.md", "BUILDER-INBOX.md"]
"#,
        phases.join(", ")
    )
}

pub struct Project {
    pub git: GitFixture,
    pub root: PathBuf,
    pub server: TmuxServer,
    pub config: PathBuf,
}

impl Project {
    /// A project whose config is `[defaults]` + `[watchdog]` (1 s ticks) + `body`.
    pub fn new(body: &str) -> Project {
        let git = GitFixture::new();
        let root = std::fs::canonicalize(git.dir.path()).unwrap();
        let watch = git.clone("watch");
        let plans: Vec<(String, String)> = (1..=3)
            .map(|i| (format!("plans/p{i}.md"), format!("# Plan p{i}\n- gate 1\n")))
            .collect();
        let files: Vec<(&str, &str)> = plans
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        git.commit_and_push(&watch, "plans", &files);
        for name in ["builder", "adversary"] {
            git.clone(name);
        }
        let prompts = root.join("prompts");
        std::fs::create_dir_all(&prompts).unwrap();
        std::fs::write(
            prompts.join("kickoff.md"),
            "Kickoff {role} phase {phase_id} plan {plan} status {status}\n",
        )
        .unwrap();
        std::fs::write(prompts.join("builder.md"), "You are the builder.\n").unwrap();
        std::fs::write(prompts.join("adversary.md"), "You are the adversary.\n").unwrap();
        let server = TmuxServer::new();
        let config = root.join("agents.toml");
        let text = format!(
            "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\ntmux_socket = \"{}\"\n\n[watchdog]\nsignal_interval = 1\nheavy_interval = 1\nstall_grace = 5\nlimit_probe_fallback = 5\nlimit_reset_slack = 1\n{body}",
            server.socket
        );
        std::fs::write(&config, text).unwrap();
        Project {
            git,
            root,
            server,
            config,
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join(".orch")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `orch --config <config> ARGS` on this project's tmux server.
    pub fn orch_cmd(&self, args: &[&str]) -> Command {
        orch_cmd(&self.config, &self.server.socket, &self.root, args)
    }

    pub fn orch(&self, args: &[&str]) -> Output {
        self.orch_cmd(args).output().unwrap()
    }

    /// Run orch and assert it succeeded; returns stdout.
    pub fn orch_ok(&self, args: &[&str]) -> String {
        stdout_ok(self.orch_cmd(args), args)
    }

    /// Every event logged so far.
    pub fn events(&self) -> Vec<Value> {
        orch::events::read_since(&self.log_dir().join("events.jsonl"), 0)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Events named `name`.
    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }

    /// Wait until at least `n` events named `name` were logged.
    pub fn wait_events(&self, name: &str, n: usize, timeout: Duration) -> bool {
        wait_for(timeout, || self.events_named(name).len() >= n)
    }

    /// What the recorder agent `agent` was typed so far.
    pub fn typed(&self, agent: &str) -> String {
        std::fs::read_to_string(self.log_dir().join(format!("{agent}.typed"))).unwrap_or_default()
    }

    /// A fresh clone for pushing as a test.
    pub fn clone_repo(&self, name: &str) -> PathBuf {
        self.git.clone(name)
    }

    /// Subjects on the remote's main, oldest first.
    pub fn remote_subjects(&self) -> Vec<String> {
        git(
            &self.git.remote,
            &["log", "--reverse", "--format=%s", "main"],
        )
        .lines()
        .map(String::from)
        .collect()
    }

    pub fn dir(&self) -> &Path {
        &self.root
    }
}
