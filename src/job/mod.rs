//! Jobs: one-shot agent tasks on a repository, run headless in their own worktree and ending
//! in a pushed branch and a pull request (`orch job ...`, the API's job routes, `orch mcp`).
pub mod headless;
pub mod model;
pub mod ops;
pub mod pr;
pub mod repo;
pub mod runner;
pub mod schedule;
pub mod store;

pub use model::{Job, PrState, Reason, Status};
pub use ops::NewJob;
pub use store::Store;
