//! The top-level error type and the one table that maps errors to exit codes.
//! Every variant says what was being done, and to what.
use std::path::PathBuf;
use std::process::ExitCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A config that does not load or validate; the text lists every problem.
    #[error("{0}")]
    Config(String),
    /// Wrong use of the command line (unknown agent name, bad phase number, ...).
    #[error("{0}")]
    Usage(String),
    #[error("I/O error at {path:?} while {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tmux(#[from] crate::tmux::TmuxError),
    #[error(transparent)]
    Git(#[from] crate::handoff::GitError),
    /// Anything else that failed at run time.
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, doing: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            doing,
            source,
        }
    }

    /// The exit-code table: 0 ok, 1 runtime failure, 2 usage or config error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Usage(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}
