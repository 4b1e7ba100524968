//! (stub) events
//! filled in by its issue.
