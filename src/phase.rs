//! (stub) phase
//! filled in by its issue.
