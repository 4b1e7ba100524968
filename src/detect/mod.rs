//! (stub) detect
//! filled in by its issue.
