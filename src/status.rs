//! (stub) status
//! filled in by its issue.
