//! The description of a new tmux session (name, cwd, env, command, size, log) and the
//! checks that keep its name exactly targetable.
use std::io::Write;
use std::path::{Path, PathBuf};

use super::TmuxError;

/// What a new session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A shell command line; tmux runs it with `sh -c`.
    Shell(String),
    /// A program and its arguments, exec'd directly by tmux (no shell, no quoting).
    Argv(Vec<String>),
}

/// Everything `new_session` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub name: String,
    /// The working directory; created if missing.
    pub cwd: PathBuf,
    /// Variables given to the session's process (never typed, never in any argv: they go
    /// through a private file the pane's first process sources and deletes).
    pub env: Vec<(String, String)>,
    pub command: Command,
    /// Pane size; `None` means 200x50.
    pub width: Option<u16>,
    pub height: Option<u16>,
    /// Append the pane's output to this file (`pipe-pane -o`); its directory is created.
    pub log: Option<PathBuf>,
    /// The argv of a filter the log goes through (`orch redact`): it reads the pane's output
    /// on stdin, its stdout is appended to `log`. None: the output is appended as is.
    pub log_filter: Option<Vec<String>>,
    /// Keep the pane (dead) after its process exits, so its status can be read.
    pub remain_on_exit: bool,
}

impl NewSession {
    pub fn new(name: impl Into<String>, cwd: impl Into<PathBuf>, command: Command) -> Self {
        NewSession {
            name: name.into(),
            cwd: cwd.into(),
            env: Vec::new(),
            command,
            width: None,
            height: None,
            log: None,
            log_filter: None,
            remain_on_exit: false,
        }
    }
}

/// What the pane runs first: the env file read (and removed), then the command.
pub(super) const ENV_SCRIPT: &str = r#". "$1" || exit 126; rm -f -- "$1"; shift; exec "$@""#;

/// Runs a shell command line with the user's shell, as tmux does (bash, unlike dash, execs a
/// line's last command, so the pane shows the program and not `sh`).
pub(super) const SHELL_SCRIPT: &str = r#"exec "${SHELL:-/bin/sh}" -c "$1""#;

/// The env as a file `sh` sources: one `export NAME='value'` a line.
pub(super) fn env_text(spec: &NewSession) -> Result<String, TmuxError> {
    let mut text = String::new();
    for (key, value) in &spec.env {
        validate_env_key(&spec.name, key)?;
        text.push_str(&format!("export {key}={}\n", shell_words::quote(value)));
    }
    Ok(text)
}

/// The pane's argv: [`ENV_SCRIPT`] with `env_file`, then the session's command (a shell line
/// through the user's shell, as tmux runs it).
pub(super) fn env_wrapped(spec: &NewSession, env_file: &Path) -> Result<Vec<String>, TmuxError> {
    let mut wrapped: Vec<String> = ["sh", "-c", ENV_SCRIPT, "orch-env"]
        .map(String::from)
        .into();
    wrapped.push(env_file.display().to_string());
    match &spec.command {
        Command::Argv(a) if a.is_empty() => {
            return Err(TmuxError::EmptyCommand {
                session: spec.name.clone(),
            });
        }
        Command::Argv(a) => wrapped.extend(a.iter().cloned()),
        Command::Shell(line) => wrapped.extend([
            "sh".into(),
            "-c".into(),
            SHELL_SCRIPT.into(),
            "orch-shell".into(),
            line.clone(),
        ]),
    }
    Ok(wrapped)
}

/// Writes `text` to a new private (0600) file in `dir`, named after `session`, and returns
/// its path. `dir` is memory-backed where the machine has one (see [`env_dir`]).
pub(super) fn write_env_file(dir: &Path, session: &str, text: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = dir.join(format!(
        ".orch-env-{session}-{}-{nanos}",
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(text.as_bytes())?;
    Ok(path)
}

/// Where a local session's env file waits for the pane to read it: `/dev/shm` (memory, never
/// disk) when it is there and writable, else `fallback`.
pub(super) fn env_dir(fallback: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    if writable {
        shm.to_path_buf()
    } else {
        fallback.to_path_buf()
    }
}

/// Names tmux would alter (`:` and `.` become `_`) or escape cannot be targeted exactly.
pub(crate) fn validate_name(name: &str) -> Result<(), TmuxError> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.contains([':', '.']) {
        "tmux does not allow ':' or '.' in session names"
    } else if name.chars().any(char::is_control) {
        "it contains a control character"
    } else {
        return Ok(());
    };
    Err(TmuxError::InvalidName {
        name: name.to_string(),
        why,
    })
}

pub(crate) fn validate_env_key(session: &str, key: &str) -> Result<(), TmuxError> {
    let why = if key.is_empty() {
        "the name is empty"
    } else if key.contains('=') {
        "the name contains '='"
    } else {
        return Ok(());
    };
    Err(TmuxError::InvalidEnv {
        session: session.to_string(),
        key: key.to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_tmux_would_rewrite_are_rejected() {
        assert!(validate_name("proj builder").is_ok());
        for bad in ["", "a:b", "a.b", "a\tb"] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains("invalid tmux session name"), "{err}");
        }
    }

    #[test]
    fn env_keys_must_be_names() {
        assert!(validate_env_key("s", "FOO").is_ok());
        assert!(validate_env_key("s", "").is_err());
        assert!(validate_env_key("s", "A=B").is_err());
    }
}
