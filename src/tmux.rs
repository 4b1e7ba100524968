//! tmux: the one place that builds and runs tmux commands (sessions, capture, keys, paste,
//! the fleet snapshot). Synchronous, each call with a timeout; async callers use spawn_blocking.
mod client;
mod deliver;
mod exec;
mod fleet;
mod places;
mod screen;
mod session;
mod stop;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use client::{ClientMove, inside_server};
pub use deliver::{DeliverOptions, DeliveryOutcome};
pub use fleet::{Fleet, HostReport, PaneInfo, parse_fleet};
pub use places::{HostPlace, REMOTE_TIMEOUT_ENV};
pub use session::{Command, NewSession};

use exec::{Cmdline, Ran, Runner};
use session::{validate_env_key, validate_name};

/// The environment variable that overrides the config's `tmux_socket`.
pub const SOCKET_ENV: &str = "ORCH_TMUX_SOCKET";
/// How long any single tmux call may take before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_WIDTH: u16 = 200;
pub const DEFAULT_HEIGHT: u16 = 50;

#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("tmux is not installed (no `tmux` program found on PATH); install tmux 3.2 or newer")]
    NotInstalled,
    /// The session (or the whole server) is not there.
    #[error("tmux {verb}: no session named {session:?}")]
    NoSession { verb: &'static str, session: String },
    #[error("tmux {verb} on {target} failed: {stderr}")]
    Failed {
        verb: &'static str,
        target: String,
        stderr: String,
    },
    #[error(
        "tmux {verb} on {target} gave no answer within {after:?} and was killed (is the tmux server hung?)"
    )]
    Timeout {
        verb: &'static str,
        target: String,
        after: Duration,
    },
    #[error("could not run tmux {verb} on {target}: {source}")]
    Spawn {
        verb: &'static str,
        target: String,
        source: std::io::Error,
    },
    #[error("unexpected output from tmux {verb}: {detail}")]
    Parse { verb: &'static str, detail: String },
    #[error("invalid tmux session name {name:?}: {why}")]
    InvalidName { name: String, why: &'static str },
    #[error("invalid environment variable {key:?} for tmux session {session:?}: {why}")]
    InvalidEnv {
        session: String,
        key: String,
        why: &'static str,
    },
    #[error("tmux session {session:?} was given an empty argv to run")]
    EmptyCommand { session: String },
    /// The session's host did not answer (ssh failed, or the call timed out): nothing is
    /// known about the session, which is not the same as its being gone.
    #[error("{0}")]
    Unreachable(#[from] crate::transport::PlaceError),
    #[error("could not create {path:?} for tmux session {session:?} ({doing}): {source}")]
    Io {
        session: String,
        path: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
}

/// A handle on one tmux server: the default one, or a private one (`tmux -L <socket>`).
#[derive(Debug, Clone)]
pub struct Tmux {
    socket: Option<String>,
    binary: PathBuf,
    timeout: Duration,
    /// Where this handle's server runs: `None` for this machine, else a host over ssh.
    place: Option<Arc<dyn crate::transport::Place>>,
    /// The handles of the hosts and which sessions live there (empty for a plain handle).
    routes: Arc<places::Routes>,
}

/// `=name`: the session called exactly `name` (bare names are prefix-matched by tmux).
pub fn session_target(name: &str) -> String {
    format!("={name}")
}

/// `=name:`: the current pane of the session called exactly `name`.
pub fn pane_target(name: &str) -> String {
    format!("={name}:")
}

impl Tmux {
    /// A handle on the server named `socket` (`-L`), or the default server when `None`.
    pub fn new(socket: Option<String>) -> Self {
        Tmux {
            socket: socket.filter(|s| !s.is_empty()),
            binary: PathBuf::from("tmux"),
            timeout: DEFAULT_TIMEOUT,
            place: None,
            routes: Arc::default(),
        }
    }

    /// The server orch should use: `$ORCH_TMUX_SOCKET` if set, else the config's socket.
    pub fn resolve(config_socket: Option<&str>) -> Self {
        Tmux::new(choose_socket(std::env::var(SOCKET_ENV).ok(), config_socket))
    }

    /// Uses this tmux program instead of `tmux` from PATH.
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    /// Sets how long one tmux call may take before it is killed (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn socket(&self) -> Option<&str> {
        self.socket.as_deref()
    }

    fn runner(&self) -> Runner<'_> {
        Runner {
            binary: &self.binary,
            socket: self.socket.as_deref(),
            timeout: self.timeout,
            place: self.place.as_deref(),
        }
    }

    /// Runs `cmd` on the server of `session` (its host's, for a session routed to a host); a
    /// non-zero exit becomes `NoSession` (session or server absent) or `Failed`.
    fn run(&self, cmd: Cmdline, session: &str, stdin: Option<&[u8]>) -> Result<Ran, TmuxError> {
        let ran = self.at(session).runner().run(&cmd, stdin)?;
        if ran.success() {
            return Ok(ran);
        }
        let stderr = ran.stderr.trim();
        if server_absent(stderr) || stderr.contains("can't find session") {
            return Err(TmuxError::NoSession {
                verb: cmd.verb,
                session: session.to_string(),
            });
        }
        Err(TmuxError::Failed {
            verb: cmd.verb,
            target: cmd.target,
            stderr: if stderr.is_empty() {
                format!("exit {:?}", ran.code)
            } else {
                stderr.to_string()
            },
        })
    }

    /// Runs `verb -t =name`: `Ok(false)` when there is no such session (or no server).
    fn on_session(&self, verb: &'static str, name: &str) -> Result<bool, TmuxError> {
        let cmd = Cmdline::new(verb, session_target(name))
            .arg("-t")
            .arg(session_target(name));
        match self.run(cmd, name, None) {
            Ok(_) => Ok(true),
            Err(TmuxError::NoSession { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Whether a session called exactly `name` exists (false when no server runs).
    pub fn has_session(&self, name: &str) -> Result<bool, TmuxError> {
        self.on_session("has-session", name)
    }

    /// Starts a detached session (and its log pipe and options) in one tmux invocation.
    pub fn new_session(&self, spec: &NewSession) -> Result<(), TmuxError> {
        validate_name(&spec.name)?;
        if let Some(host) = self.remote(&spec.name) {
            return host.new_remote_session(spec);
        }
        let io = |path: &Path, doing, source| TmuxError::Io {
            session: spec.name.clone(),
            path: path.to_path_buf(),
            doing,
            source,
        };
        std::fs::create_dir_all(&spec.cwd)
            .map_err(|e| io(&spec.cwd, "creating the working directory", e))?;
        let pane = pane_target(&spec.name);
        let mut cmd = Cmdline::new("new-session", session_target(&spec.name))
            .args(["-d", "-s", &spec.name])
            .arg("-c")
            .arg(spec.cwd.to_string_lossy())
            .arg("-x")
            .arg(spec.width.unwrap_or(DEFAULT_WIDTH).to_string())
            .arg("-y")
            .arg(spec.height.unwrap_or(DEFAULT_HEIGHT).to_string());
        for (key, value) in &spec.env {
            validate_env_key(&spec.name, key)?;
            cmd = cmd.arg("-e").arg(format!("{key}={value}"));
        }
        cmd = match &spec.command {
            Command::Shell(line) => cmd.arg(line),
            // tmux hands a single argument to `sh -c`: quote it so it stays one word.
            Command::Argv(argv) if argv.is_empty() => {
                return Err(TmuxError::EmptyCommand {
                    session: spec.name.clone(),
                });
            }
            Command::Argv(argv) if argv.len() == 1 => cmd.arg(shell_words::quote(&argv[0])),
            Command::Argv(argv) => cmd.arg("--").args(argv),
        };
        if spec.remain_on_exit {
            cmd = cmd
                .then("set-option")
                .args(["-t", &pane, "remain-on-exit", "on"]);
        }
        if let Some(log) = &spec.log {
            if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| io(dir, "creating the log directory", e))?;
            }
            let sink = format!("cat >> {}", shell_words::quote(&log.to_string_lossy()));
            cmd = cmd.then("pipe-pane").args(["-o", "-t", &pane, &sink]);
        }
        self.run(cmd, &spec.name, None).map(drop)
    }

    /// Kills the session called exactly `name`; `Ok(false)` if it was not there.
    pub fn kill_session(&self, name: &str) -> Result<bool, TmuxError> {
        self.on_session("kill-session", name)
    }

    /// Kills the whole server; `Ok(false)` if none was running.
    pub fn kill_server(&self) -> Result<bool, TmuxError> {
        match self.run(Cmdline::new("kill-server", "the server"), "", None) {
            Ok(_) => Ok(true),
            Err(TmuxError::NoSession { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The visible screen of the session's pane, trailing blank lines trimmed, last `last_lines`.
    pub fn capture(&self, name: &str, last_lines: usize) -> Result<String, TmuxError> {
        let cmd = Cmdline::new("capture-pane", pane_target(name))
            .args(["-p", "-t"])
            .arg(pane_target(name));
        let ran = self.run(cmd, name, None)?;
        Ok(last_lines_of(&ran.stdout, last_lines))
    }

    /// Types `text` literally (`send-keys -l`): no key names, no submit.
    pub fn send_literal(&self, name: &str, text: &str) -> Result<(), TmuxError> {
        let cmd = Cmdline::new("send-keys", pane_target(name))
            .arg("-t")
            .arg(pane_target(name))
            .args(["-l", "--", text]);
        self.run(cmd, name, None).map(drop)
    }

    /// Sends key names (`Enter`, `C-c`, `Escape`, ...), in order, in one call.
    pub fn send_keys(&self, name: &str, keys: &[&str]) -> Result<(), TmuxError> {
        let cmd = Cmdline::new("send-keys", pane_target(name))
            .arg("-t")
            .arg(pane_target(name))
            .arg("--")
            .args(keys);
        self.run(cmd, name, None).map(drop)
    }

    /// Pastes `text` through a private buffer (bracketed if the app asked for it); no submit.
    pub fn paste(&self, name: &str, text: &str) -> Result<(), TmuxError> {
        let buffer = unique_name("orch-paste");
        let cmd = Cmdline::new("load-buffer", pane_target(name))
            .args(["-b", &buffer, "-"])
            .then("paste-buffer")
            .args(["-p", "-d", "-b", &buffer, "-t"])
            .arg(pane_target(name));
        let result = self.run(cmd, name, Some(text.as_bytes())).map(drop);
        if result.is_err() {
            // The paste failed after the load: do not leave the text behind in the server.
            let cleanup = Cmdline::new("delete-buffer", &buffer).args(["-b", &buffer]);
            let _ = self.at(name).runner().run(&cleanup, None);
        }
        result
    }

    /// Expands a tmux format (e.g. `#{pane_current_command}`) for the session's pane.
    pub fn display(&self, name: &str, format: &str) -> Result<String, TmuxError> {
        let cmd = Cmdline::new("display-message", pane_target(name))
            .arg("-p")
            .arg("-t")
            .arg(pane_target(name))
            .args(["--", format]);
        let ran = self.run(cmd, name, None)?;
        Ok(ran.stdout.trim_end_matches('\n').to_string())
    }

    /// Every session's first pane, in one `list-panes -a` call per place (this machine, each
    /// host in parallel); empty when no server runs. Sessions of a host that did not answer
    /// are marked unreachable (see [`Fleet::unreachable`]), and each host gets a report.
    pub fn fleet(&self) -> Result<Fleet, TmuxError> {
        if self.routes.is_empty() {
            return self.fleet_here();
        }
        self.fleet_everywhere()
    }

    /// The fleet of this handle's own server only.
    fn fleet_here(&self) -> Result<Fleet, TmuxError> {
        let cmd =
            Cmdline::new("list-panes", "all sessions").args(["-a", "-F", fleet::FLEET_FORMAT]);
        match self.run(cmd, "", None) {
            Ok(ran) => parse_fleet(&ran.stdout),
            Err(TmuxError::NoSession { .. }) => Ok(Fleet::default()),
            // A server whose last session just closed (it is exiting) has no target at all.
            Err(TmuxError::Failed { stderr, .. }) if stderr.contains("no current target") => {
                Ok(Fleet::default())
            }
            Err(err) => Err(err),
        }
    }
}

/// The env value wins over the config's when it is set and not empty.
fn choose_socket(env: Option<String>, config: Option<&str>) -> Option<String> {
    env.filter(|s| !s.is_empty())
        .or_else(|| config.map(str::to_string))
}

/// tmux's words for "there is no server on this socket" (or it went away during the call).
/// Other connection errors (e.g. permission denied) stay errors.
fn server_absent(stderr: &str) -> bool {
    let refused = stderr.contains("error connecting to")
        && (stderr.contains("No such file or directory") || stderr.contains("Connection refused"));
    refused
        || [
            "no server running",
            "server exited unexpectedly",
            "lost server",
        ]
        .iter()
        .any(|words| stderr.contains(words))
}

/// A name no other call (in this or another process) will use at the same time.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Trailing blank lines removed, then the last `n` lines joined with `\n`.
fn last_lines_of(screen: &str, n: usize) -> String {
    let lines: Vec<&str> = screen.lines().collect();
    let used = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    lines[used.saturating_sub(n)..used].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_trims_trailing_blank_lines_then_keeps_the_last_n() {
        let screen = "a\nb\n\nc\n\n  \n\n";
        assert_eq!(last_lines_of(screen, 2), "\nc");
        assert_eq!(last_lines_of(screen, 10), "a\nb\n\nc");
        assert_eq!(last_lines_of(screen, 0), "");
        assert_eq!(last_lines_of("\n\n", 5), "");
    }

    #[test]
    fn targets_are_exact() {
        assert_eq!(session_target("x-builder"), "=x-builder");
        assert_eq!(pane_target("x-builder"), "=x-builder:");
    }

    #[test]
    fn only_a_missing_server_counts_as_absent() {
        assert!(server_absent("no server running on /tmp/tmux-0/x"));
        assert!(server_absent(
            "error connecting to /tmp/tmux-0/x (Connection refused)"
        ));
        assert!(server_absent("server exited unexpectedly"));
        assert!(!server_absent(
            "error connecting to /tmp/tmux-0/x (Permission denied)"
        ));
        assert!(!server_absent("can't find pane: %9"));
    }

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("b"), unique_name("b"));
    }

    #[test]
    fn env_socket_overrides_config_socket() {
        assert_eq!(choose_socket(Some("e".into()), Some("c")), Some("e".into()));
        assert_eq!(
            choose_socket(Some(String::new()), Some("c")),
            Some("c".into())
        );
        assert_eq!(choose_socket(None, Some("c")), Some("c".into()));
        assert_eq!(choose_socket(None, None), None);
    }

    #[test]
    fn empty_socket_means_default_server() {
        assert_eq!(Tmux::new(Some(String::new())).socket(), None);
        assert_eq!(Tmux::new(Some("s".into())).socket(), Some("s"));
    }
}
