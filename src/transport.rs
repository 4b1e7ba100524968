//! Transports: "run this argv on that place, with stdin, within this deadline". The answer is
//! the command's own result (any exit status is data) or a place error (unreachable, timed out).
pub mod process;
pub mod ssh;

use std::time::Duration;

pub use ssh::{SshPlace, SshSpec};

/// What a command that ran to its end left behind.
#[derive(Debug)]
pub struct Output {
    /// The command's exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// The place could not run the command (as opposed to the command failing there).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PlaceError {
    #[error("host {host} is unreachable: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("host {host} gave no answer within {after:?} (the call was killed)")]
    TimedOut { host: String, after: Duration },
    #[error("cannot run ssh for host {host}: {detail}")]
    Spawn { host: String, detail: String },
}

impl PlaceError {
    /// The host the error is about.
    pub fn host(&self) -> &str {
        match self {
            PlaceError::Unreachable { host, .. }
            | PlaceError::TimedOut { host, .. }
            | PlaceError::Spawn { host, .. } => host,
        }
    }
}
