//! The fleet tests' project: a folder with awkward characters in its path, a private tmux
//! server, a config whose default backend runs a script recording what the process received.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use orch::tmux::Fleet;

use crate::support::{TempDir, TmuxServer, orch_cmd, stdout_ok, wait_for};

/// A kickoff that breaks anything that pastes it into a shell string or trims it.
pub const KICKOFF: &str = "-leading dash line, read as a flag by a careless CLI
line with \"double\" and 'single' quotes
dollars $HOME ${PATH} $(echo injected) and `echo backticks`
backslashes \\ \\\\ \\n \\t and braces {kickoff} {session} {model} {role}
  indented line; semicolon & ampersand | pipe > redirect

last line after a blank one, trailing spaces   
";

/// An agent process: records its argv (NUL-separated), last argument, environment and cwd
/// under `$ORCH_LOG_DIR/$ORCH_AGENT.*`, prints 20 numbered lines, then idles as `sleep`.
const DUMP_SCRIPT: &str = r#"#!/bin/sh
out="$ORCH_LOG_DIR/$ORCH_AGENT"
last=
for a in "$@"; do last=$a; done
printf '%s' "$last" > "$out.lastarg"
printf '%s\0' "$@" > "$out.argv"
env -0 > "$out.env"
pwd -P > "$out.cwd"
i=1
while [ "$i" -le 20 ]; do echo "output line $i"; i=$((i + 1)); done
: > "$out.done"
exec sleep 600
"#;

/// A TOML string literal holding `s` exactly.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub fn quote(p: &Path) -> String {
    shell_words::quote(&p.display().to_string()).into_owned()
}

/// A project in a folder whose path has a space, a quote and a `$`, on its own tmux server;
/// `[defaults]` uses prefix `x-` and the `dump` backend (an `arg` delivery running DUMP_SCRIPT).
pub struct Fx {
    _tmp: TempDir,
    pub root: PathBuf,
    pub server: TmuxServer,
    pub config: PathBuf,
}

impl Fx {
    pub fn new(body: &str) -> Fx {
        let tmp = TempDir::new().unwrap();
        let root = std::fs::canonicalize(tmp.path())
            .unwrap()
            .join("my proj's $dir");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("prompts")).unwrap();
        let script = root.join("bin/dump.sh");
        std::fs::write(&script, DUMP_SCRIPT).unwrap();
        let server = TmuxServer::new();
        let config = root.join("agents.toml");
        let text = format!(
            r#"[defaults]
session_prefix = "x-"
log_dir = ".orch"
tmux_socket = "{socket}"
backend = "dump"

[backend.dump]
bin = {bin}
prompt_delivery = "arg"
process_name = "sleep"
model_flag = "--model '{{model}}'"
{body}"#,
            socket = server.socket,
            bin = toml_str(&format!("sh {}", quote(&script))),
        );
        // The project has the folders its config names (orch does not create agent dirs).
        if let Ok(doc) = text.parse::<toml::Table>() {
            for list in ["agent", "service"] {
                let items = doc.get(list).and_then(|v| v.as_array()).cloned();
                for item in items.unwrap_or_default() {
                    if let Some(dir) = item.get("dir").and_then(|d| d.as_str()) {
                        std::fs::create_dir_all(root.join(dir)).unwrap();
                    }
                }
            }
        }
        std::fs::write(&config, text).unwrap();
        Fx {
            _tmp: tmp,
            root,
            server,
            config,
        }
    }

    pub fn log_dir(&self) -> PathBuf {
        self.root.join(".orch")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.log_dir().join("state")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn orch_cmd(&self, args: &[&str]) -> Command {
        orch_cmd(&self.config, &self.server.socket, &self.root, args)
    }

    pub fn orch(&self, args: &[&str]) -> Output {
        self.orch_cmd(args).output().unwrap()
    }

    pub fn orch_ok(&self, args: &[&str]) -> String {
        stdout_ok(self.orch_cmd(args), args)
    }

    /// Run orch expecting failure: (exit code, stderr).
    pub fn orch_err(&self, args: &[&str]) -> (i32, String) {
        let out = self.orch(args);
        assert!(
            !out.status.success(),
            "orch {args:?} unexpectedly succeeded"
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The agents' server with the watchdog's own server (`<socket>-watchdog`) merged in.
    pub fn fleet(&self) -> Fleet {
        let mut fleet = self.server.tmux.fleet().unwrap();
        for pane in self.watchdog_tmux().fleet().unwrap().panes() {
            fleet.insert(pane.clone());
        }
        fleet
    }

    /// The watchdog's own tmux server.
    pub fn watchdog_tmux(&self) -> orch::tmux::Tmux {
        orch::tmux::Tmux::new(Some(format!("{}-watchdog", self.server.socket)))
    }

    pub fn sessions(&self) -> Vec<String> {
        self.fleet().sessions().map(String::from).collect()
    }

    /// What the dump process of `agent` recorded in `<log_dir>/<agent>.<ext>`, once it is done.
    pub fn record(&self, agent: &str, ext: &str) -> String {
        let done = self.log_dir().join(format!("{agent}.done"));
        assert!(
            wait_for(Duration::from_secs(10), || done.exists()),
            "agent {agent} never ran its dump script; sessions {:?}",
            self.sessions()
        );
        std::fs::read_to_string(self.log_dir().join(format!("{agent}.{ext}"))).unwrap()
    }

    /// The argv the dump process of `agent` was given.
    pub fn argv(&self, agent: &str) -> Vec<String> {
        let raw = self.record(agent, "argv");
        raw.split_terminator('\0').map(String::from).collect()
    }

    /// The environment the dump process of `agent` was given.
    pub fn env(&self, agent: &str) -> Vec<(String, String)> {
        self.record(agent, "env")
            .split_terminator('\0')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn kickoff_file(&self, session: &str) -> PathBuf {
        self.state_dir().join(format!("kickoff-{session}.txt"))
    }

    /// Wait until the pane of `session` runs `command`.
    pub fn wait_command(&self, session: &str, command: &str) {
        let ok = wait_for(Duration::from_secs(10), || {
            self.fleet()
                .get(session)
                .is_some_and(|p| p.command == command)
        });
        assert!(
            ok,
            "{session} never ran {command}: {:?}",
            self.fleet().get(session)
        );
    }

    pub fn pane_path(&self, session: &str) -> PathBuf {
        let tmux = if session.ends_with("watchdog") {
            self.watchdog_tmux()
        } else {
            self.server.tmux.clone()
        };
        PathBuf::from(tmux.display(session, "#{pane_current_path}").unwrap())
    }
}
