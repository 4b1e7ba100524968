//! The `orch` binary: parse the command line, run it, turn the outcome into an exit code.
//! Everything else lives in the library so tests can call it directly.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = orch::cli::Cli::parse();
    match orch::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("orch: {err}");
            err.exit_code()
        }
    }
}
