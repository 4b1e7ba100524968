//! The morning report (`orch report`): figures read from the event log (`events.jsonl`) and the
//! handoff repo's history, rendered as text, JSON, a self-contained HTML timeline and a digest.
mod commits;
mod digest;
mod figures;
mod html;
mod model;
mod parse;
mod text;

use std::path::Path;

use chrono::{SecondsFormat, TimeZone, Utc};

use crate::config::Config;

pub use commits::count_commits;
pub use digest::{DIGEST_FILE, REPORT_HTML, on_sequence_complete, send_digest};
pub use figures::compute;
pub use html::render_html;
pub use model::{
    AgentFigures, EventCounts, Health, Latency, Options, PhaseFigures, Report, Span, StateSeconds,
    Summary, Window, percentile,
};
pub use parse::{Event, Log, parse_log, parse_since, parse_ts, read_log};
pub use text::{digest, render_text};

/// The `orch report --json` schema version (fields are added, never renamed).
pub const SCHEMA_VERSION: u32 = 1;

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The report of a project: its event log over the window, and commits per phase from the
/// handoff repo when it has one (a repo that cannot be read leaves `commits` null).
pub fn build(cfg: &Config, opts: Options) -> std::io::Result<(Report, Log)> {
    let log = read_log(&cfg.events_file())?;
    let mut report = compute(&log, opts);
    if let Some(repo) = cfg
        .loop_
        .as_ref()
        .and_then(|l| l.handoff.as_ref())
        .map(|h| h.repo.clone())
    {
        add_commits(&mut report, &repo);
    }
    Ok((report, log))
}

/// Fill `commits` per phase and in total from the repo at `repo`; a repo that cannot be read
/// is reported on stderr's log and leaves them null.
pub fn add_commits(report: &mut Report, repo: &Path) {
    match count_commits(repo, &mut report.phases, report.window.to_ms) {
        Ok(total) => report.health.commits = Some(total),
        Err(e) => tracing::warn!("no commits per phase: {e}"),
    }
}

#[cfg(test)]
mod tests;
