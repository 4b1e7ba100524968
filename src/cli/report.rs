//! `orch report [--since 24h|ISO] [--json] [--html FILE]`: the loop's figures from the event
//! log and the handoff repo, as text, one JSON object, and/or a self-contained HTML timeline.
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::{Error, Result, report};

pub fn run(cfg: &Config, since: Option<&str>, json: bool, html: Option<&Path>) -> Result<ExitCode> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let since_ms = since
        .map(|s| report::parse_since(s, now_ms))
        .transpose()
        .map_err(Error::Usage)?;
    let events = cfg.events_file();
    let (rep, log) = report::build(cfg, report::Options { since_ms, now_ms })
        .map_err(|e| Error::io(&events, "reading the event log", e))?;
    if let Some(path) = html {
        crate::state::write_atomic(path, report::render_html(&rep, &log).as_bytes())
            .map_err(|e| Error::io(path, "writing the HTML report", e))?;
    }
    if json {
        let text = serde_json::to_string_pretty(&rep)
            .map_err(|e| Error::Runtime(format!("cannot encode the report: {e}")))?;
        out(&format!("{text}\n"));
    } else {
        let mut text = report::render_text(&rep);
        if let Some(path) = html {
            text.push_str(&format!("\nHTML timeline: {}\n", path.display()));
        }
        out(&text);
    }
    Ok(ExitCode::SUCCESS)
}

/// Print to stdout; a closed pipe (`orch report | head`) is not an error.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
