//! (stub) config
