//! Integration tests: one test binary, real tmux servers (private sockets) and real git repos.
//! Each module covers one area; `support` holds the shared fixtures.
mod config;
mod e2e;
mod fleet;
mod gitfix;
mod handoff;
mod heal;
mod loop_smoke;
mod observe;
mod policies;
mod presets;
mod project;
mod real_cli;
mod sim;
mod standalone;
mod substrate;
mod support;
mod tmux;
mod watchdog;
