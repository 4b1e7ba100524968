//! orch: run and supervise fleets of AI coding agents in tmux from one TOML config.
//! The library holds every behaviour; `main.rs` only parses and dispatches.
pub mod api;
pub mod backend;
pub mod cli;
pub mod config;
pub mod context;
pub mod demo;
pub mod detect;
pub mod error;
pub mod events;
pub mod fleet;
pub mod handoff;
pub mod hooks;
pub mod job;
pub mod mcp;
pub mod metrics;
pub mod notify;
pub mod phase;
pub mod presets;
pub mod proctree;
pub mod redact;
pub mod report;
pub mod secrets;
pub mod sim;
pub mod state;
pub mod status;
pub mod statusline;
pub mod tmux;
pub mod transport;
pub mod watchdog;
pub mod workspace;

pub use cli::run;
pub use error::{Error, Result};
