//! The harness: how an agent CLI is launched (kickoff text, environment, command line for
//! each prompt delivery). Pure planning here; `tmux` carries the plan out.
mod kickoff;
mod launch;

pub use kickoff::{kickoff_text, render_slots};
pub use launch::{
    LaunchCommand, LaunchPlan, PingBoot, model_for, ping_boot_line, plan_launch, plan_service,
};
