//! `orch status [--json]`: one table (or one JSON object) of the whole fleet and the phase,
//! from a single tmux call; colour only on a terminal and never with NO_COLOR set.
use std::io::IsTerminal;
use std::process::ExitCode;

use crate::config::Config;
use crate::{Result, fleet, status};

pub fn run(cfg: &Config, json: bool) -> Result<ExitCode> {
    let snapshot = fleet::snapshot(cfg)?;
    let report = status::gather(cfg, &snapshot);
    // What needs a person comes first: a top-level `attention` array, lines above the table.
    let attention = status::attention::list(cfg, &report);
    if json {
        let encode =
            |e: serde_json::Error| crate::Error::Runtime(format!("cannot encode the status: {e}"));
        let mut value = serde_json::to_value(&report).map_err(encode)?;
        value["attention"] = serde_json::to_value(&attention).map_err(encode)?;
        let text = serde_json::to_string(&value).map_err(encode)?;
        println!("{text}");
    } else {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let colour = !no_color && std::io::stdout().is_terminal();
        let now = chrono::Utc::now().timestamp();
        print!("{}", status::attention::render(&attention));
        print!("{}", status::render_table_styled(&report, now, colour));
    }
    Ok(ExitCode::SUCCESS)
}
