//! Running one tmux client process: argv building (with tmux's `;` escaping), a clean env,
//! stdin feeding, output capture and a hard timeout so a hung server never hangs orch.
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::TmuxError;

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
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// How to reach tmux: which binary, which server, how long to wait.
#[derive(Debug, Clone)]
pub(crate) struct Runner<'a> {
    pub(crate) binary: &'a Path,
    pub(crate) socket: Option<&'a str>,
    pub(crate) timeout: Duration,
}

impl Runner<'_> {
    /// Runs the command line to completion (or the timeout) and returns its output whatever
    /// the exit status; a missing binary is `NotInstalled`.
    pub(crate) fn run(&self, cmd: &Cmdline, stdin: Option<&[u8]>) -> Result<Ran, TmuxError> {
        let mut process = std::process::Command::new(self.binary);
        if let Some(socket) = self.socket {
            process.arg("-L").arg(socket);
        }
        process
            .args(cmd.args.iter().map(OsString::from))
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = process.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                TmuxError::NotInstalled
            } else {
                spawn_error(cmd, source)
            }
        })?;
        match self.collect(cmd, &mut child, stdin) {
            Ok(ran) => Ok(ran),
            Err(err) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(err)
            }
        }
    }

    fn collect(
        &self,
        cmd: &Cmdline,
        child: &mut Child,
        stdin: Option<&[u8]>,
    ) -> Result<Ran, TmuxError> {
        let deadline = Instant::now() + self.timeout;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let data = data.to_vec();
            // A separate thread: a server that stops reading must not block us past the deadline.
            thread::Builder::new()
                .name("tmux-stdin".into())
                .spawn(move || {
                    let _ = pipe.write_all(&data);
                })
                .map_err(|source| spawn_error(cmd, source))?;
        }
        let stdout = read_in_background(child.stdout.take(), cmd)?;
        let stderr = read_in_background(child.stderr.take(), cmd)?;
        // tmux closes its stdout when it exits: waiting for that EOF first returns as soon as
        // the call is done, where polling the exit alone adds up to one poll pause per call.
        let stdout = receive(stdout, deadline);
        let status = wait_until(child, deadline, self.timeout, cmd)?;
        let grace = deadline.max(Instant::now() + Duration::from_millis(500));
        Ok(Ran {
            status,
            stdout,
            stderr: receive(stderr, grace),
        })
    }
}

fn spawn_error(cmd: &Cmdline, source: std::io::Error) -> TmuxError {
    TmuxError::Spawn {
        verb: cmd.verb,
        target: cmd.target.clone(),
        source,
    }
}

type Pending = mpsc::Receiver<Vec<u8>>;

fn read_in_background<R: Read + Send + 'static>(
    pipe: Option<R>,
    cmd: &Cmdline,
) -> Result<Option<Pending>, TmuxError> {
    let Some(mut pipe) = pipe else {
        return Ok(None);
    };
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("tmux-output".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        })
        .map_err(|source| spawn_error(cmd, source))?;
    Ok(Some(rx))
}

fn receive(pending: Option<Pending>, deadline: Instant) -> String {
    let Some(rx) = pending else {
        return String::new();
    };
    let wait = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(wait) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// Polls the child (1 ms doubling to 20 ms) until it exits or the deadline passes.
fn wait_until(
    child: &mut Child,
    deadline: Instant,
    after: Duration,
    cmd: &Cmdline,
) -> Result<ExitStatus, TmuxError> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(source) => return Err(spawn_error(cmd, source)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TmuxError::Timeout {
                verb: cmd.verb,
                target: cmd.target.clone(),
                after,
            });
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
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
