//! (stub) tmux: the one place that builds tmux commands.
//! filled in by issue 3.

#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("tmux is not installed or not on PATH")]
    NotInstalled,
}
