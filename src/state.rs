//! (stub) state
//! filled in by its issue.
