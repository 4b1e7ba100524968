//! (stub) handoff: git reads of the handoff repo (fetch, new commits, blobs at origin/main).
//! filled in by issue 4.

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git failed: {0}")]
    Failed(String),
}
