//! Transports: "run this argv on that place, with stdin, within this deadline". The answer is
//! the command's own result (any exit status is data) or a place error (unreachable, timed out).
pub mod container;
pub mod engine;
pub mod process;
pub mod slurm;
pub mod ssh;
pub mod wrap;

use std::time::Duration;

pub use container::{ContainerPlace, ContainerSpec};
pub use ssh::{SshPlace, SshSpec};
pub use wrap::WrapPlace;

/// Somewhere commands run: a host over ssh, or a wrapper (`srun --jobid=J --overlap --`,
/// `podman exec -i NAME`) run here or through another place.
pub trait Place: Send + Sync + std::fmt::Debug {
    /// The host's name in the config (for messages).
    fn name(&self) -> &str;

    /// Runs `argv` there; fails at once while the place is marked down.
    fn run(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError>;

    /// Runs `argv` there even while it is marked down (the tick's one look at a place); an
    /// answer clears the mark, a place error sets it.
    fn probe(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError>;

    /// The error that marked the place down, if it has not answered since.
    fn down(&self) -> Option<PlaceError>;

    /// A command running `argv` there, for a caller that streams its output (`logs -f`) and
    /// so sets no deadline.
    fn command(&self, argv: &[String]) -> std::process::Command;

    /// Ends what this process keeps open to the place (for `down`: an ssh master).
    fn close(&self);

    /// The id and state of what holds the place, when something does (a SLURM job).
    fn holder(&self) -> Option<(String, String)> {
        None
    }

    /// What the place is now, for status (a container's id and state); `None`: a plain host.
    fn details(&self) -> Option<PlaceDetails> {
        None
    }
}

/// A place that is a thing of its own (a container): its kind, id and state, as last seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlaceDetails {
    /// `container`.
    pub kind: &'static str,
    pub id: Option<String>,
    /// `running`, `exited`, ... (`None`: it does not exist).
    pub state: Option<String>,
}

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
    #[error("cannot run the transport of host {host}: {detail}")]
    Spawn { host: String, detail: String },
    /// The place answered, but what holds its sessions is not there (a stopped container):
    /// its sessions are gone (to be started again), not unreachable.
    #[error("host {host}: {detail}")]
    Gone { host: String, detail: String },
}

impl PlaceError {
    /// The host the error is about.
    pub fn host(&self) -> &str {
        match self {
            PlaceError::Unreachable { host, .. }
            | PlaceError::TimedOut { host, .. }
            | PlaceError::Spawn { host, .. }
            | PlaceError::Gone { host, .. } => host,
        }
    }
}
