//! `orch status [--json]`: one table (or one JSON object) of the whole fleet and the phase,
//! from a single tmux call.
use std::process::ExitCode;

use crate::config::Config;
use crate::{Result, fleet, status};

pub fn run(cfg: &Config, json: bool) -> Result<ExitCode> {
    let snapshot = fleet::tmux_for(cfg).fleet()?;
    let report = status::gather(cfg, &snapshot);
    if json {
        let text = serde_json::to_string(&report)
            .map_err(|e| crate::Error::Runtime(format!("cannot encode the status: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", status::render_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}
