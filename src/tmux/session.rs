//! The description of a new tmux session (name, cwd, env, command, size, log) and the
//! checks that keep its name exactly targetable.
use std::path::PathBuf;

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
    /// Variables given to the session's process with `new-session -e` (never typed).
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
