//! Running one tmux client process: argv building (with tmux's `;` escaping), a clean env,
//! stdin feeding, output capture and a hard timeout so a hung server never hangs orch; on a
//! host the same argv goes through its ssh transport.
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::TmuxError;
use crate::transport::Place;
use crate::transport::process::{self, ProcessError};

/// One tmux command line (possibly a `;`-separated sequence of commands), as argv elements.
///
/// tmux splits its argv into commands at every argument that ends in `;`, even inside a
/// single command, so every argument added with [`Cmdline::arg`] that ends in `;` gets the
/// backslash tmux expects (`x;` becomes `x\;`, which tmux turns back into `x;`).
#[derive(Debug, Clone)]
pub(crate) struct Cmdline {
    /// The verb of the first command, for error messages.
    pub(crate) verb: &'static str,
    /// The exact target the command acts on (or a short description), for error messages.
    pub(crate) target: String,
    pub(crate) args: Vec<String>,
}

impl Cmdline {
    pub(crate) fn new(verb: &'static str, target: impl Into<String>) -> Self {
        Cmdline {
            verb,
            target: target.into(),
            args: vec![verb.to_string()],
        }
    }

    /// Adds one argument, escaped so tmux never reads it as a command separator.
    pub(crate) fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.args.push(escape_arg(arg.as_ref()));
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Ends the current command and starts the next one of the same tmux invocation.
    pub(crate) fn then(mut self, verb: &'static str) -> Self {
        self.args.push(";".to_string());
        self.args.push(verb.to_string());
        self
    }
}

/// Protects an argument that ends in `;` from being taken as tmux's command separator.
pub(crate) fn escape_arg(arg: &str) -> String {
    match arg.strip_suffix(';') {
        Some(head) => format!("{head}\\;"),
        None => arg.to_string(),
    }
}

/// What a finished tmux client process left behind.
#[derive(Debug)]
pub(crate) struct Ran {
    /// The exit code (`None`: killed by a signal).
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ran {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// How to reach tmux: which binary, which server, how long to wait, and where (this machine,
/// or a host over ssh).
#[derive(Debug, Clone)]
pub(crate) struct Runner<'a> {
    pub(crate) binary: &'a Path,
    pub(crate) socket: Option<&'a str>,
    pub(crate) timeout: Duration,
    pub(crate) place: Option<&'a dyn Place>,
}

impl Runner<'_> {
    /// Runs the command line to completion (or the timeout) and returns its output whatever
    /// the exit status; a missing binary is `NotInstalled`, a host not answering `Unreachable`.
    pub(crate) fn run(&self, cmd: &Cmdline, stdin: Option<&[u8]>) -> Result<Ran, TmuxError> {
        if let Some(place) = self.place {
            return self.run_on(place, cmd, stdin);
        }
        let mut process = std::process::Command::new(self.binary);
        if let Some(socket) = self.socket {
            process.arg("-L").arg(socket);
        }
        process
            .args(cmd.args.iter().map(OsString::from))
            .env_remove("TMUX")
            .env_remove("TMUX_PANE");
        match process::run(&mut process, stdin, self.timeout) {
            Ok(done) => Ok(Ran {
                code: done.status.code(),
                stdout: done.stdout,
                stderr: done.stderr,
            }),
            Err(ProcessError::NotFound) => Err(TmuxError::NotInstalled),
            Err(ProcessError::Spawn(source)) => Err(spawn_error(cmd, source)),
            Err(ProcessError::TimedOut(after)) => Err(TmuxError::Timeout {
                verb: cmd.verb,
                target: cmd.target.clone(),
                after,
            }),
        }
    }

    /// The same tmux argv on a host: one ssh call on its shared connection.
    fn run_on(
        &self,
        place: &dyn Place,
        cmd: &Cmdline,
        stdin: Option<&[u8]>,
    ) -> Result<Ran, TmuxError> {
        let argv = self.remote_argv(cmd);
        let out = match place.run(&argv, stdin, self.timeout) {
            // A stopped container holds no tmux server: answer as tmux would without one.
            Err(crate::transport::PlaceError::Gone { detail, .. }) => {
                return Ok(Ran {
                    code: Some(1),
                    stdout: String::new(),
                    stderr: format!("no server running ({detail})"),
                });
            }
            other => other?,
        };
        if out.code == Some(127) && out.stderr.contains("tmux") {
            return Err(TmuxError::NotInstalled);
        }
        Ok(Ran {
            code: out.code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// `tmux [-L socket] ARGS` as one argv (for a host, or a script).
    pub(crate) fn remote_argv(&self, cmd: &Cmdline) -> Vec<String> {
        // `-u`: without a UTF-8 locale (a plain ssh session) tmux would print tabs as `_`.
        let mut argv = vec![self.binary.display().to_string(), "-u".to_string()];
        if let Some(socket) = self.socket {
            argv.extend(["-L".to_string(), socket.to_string()]);
        }
        argv.extend(cmd.args.iter().cloned());
        argv
    }
}

fn spawn_error(cmd: &Cmdline, source: std::io::Error) -> TmuxError {
    TmuxError::Spawn {
        verb: cmd.verb,
        target: cmd.target.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_semicolon_is_escaped_for_tmux() {
        assert_eq!(escape_arg("hello;"), "hello\\;");
        assert_eq!(escape_arg(";"), "\\;");
        assert_eq!(escape_arg("a\\;"), "a\\\\;");
        assert_eq!(escape_arg("a;b"), "a;b");
        assert_eq!(escape_arg(""), "");
    }

    #[test]
    fn then_inserts_a_bare_separator() {
        let cmd = Cmdline::new("new-session", "=x")
            .arg("-d")
            .arg("x;")
            .then("pipe-pane");
        assert_eq!(cmd.args, ["new-session", "-d", "x\\;", ";", "pipe-pane"]);
    }
}
