//! (stub) sim: the simulated coding agent (`orch sim`), used by the demo and the tests.
//! filled in by issue 6.

/// Options of the simulated agent.
#[derive(Debug, clap::Args)]
pub struct SimArgs {}

pub fn run(_args: SimArgs) -> crate::Result<std::process::ExitCode> {
    Ok(std::process::ExitCode::SUCCESS)
}
