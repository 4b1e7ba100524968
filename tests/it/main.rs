//! Integration tests: one test binary, real tmux servers (private sockets) and real git repos.
//! Each module covers one area; `support` holds the shared fixtures.
mod config;
mod console;
mod e2e;
mod first_run;
mod fleet;
mod gitfix;
mod handoff;
mod heal;
mod hosts;
mod jobs;
mod loop_smoke;
mod metrics;
mod notify;
mod observe;
mod policies;
mod presets;
mod project;
mod real_cli;
mod report;
mod screen_gate;
mod sim;
mod sshd;
mod standalone;
mod support;
mod tmux;
mod watchdog;
