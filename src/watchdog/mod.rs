//! (stub) watchdog
//! filled in by its issue.
