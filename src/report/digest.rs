//! The digest at the end of a sequence: the report written to `<log_dir>/report.html` and its
//! text summary handed to the notification sinks through [`send_digest`].
use std::path::PathBuf;

use crate::config::Config;

/// The HTML report the digest points at, inside the log dir.
pub const REPORT_HTML: &str = "report.html";
/// The last digest's text, inside the log dir.
pub const DIGEST_FILE: &str = "digest.txt";

/// Build the report over the whole log, write `<log_dir>/report.html`, and send the digest.
/// Returns the digest text. Called once by the watchdog when SEQUENCE-COMPLETE appears.
pub fn on_sequence_complete(cfg: &Config) -> Result<String, String> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let opts = super::Options {
        since_ms: None,
        now_ms,
    };
    let (report, log) = super::build(cfg, opts)
        .map_err(|e| format!("cannot read {}: {e}", cfg.events_file().display()))?;
    let html: PathBuf = cfg.log_dir.join(REPORT_HTML);
    let wrote = crate::state::write_atomic(&html, super::render_html(&report, &log).as_bytes());
    if let Err(e) = &wrote {
        tracing::warn!("cannot write {}: {e}", html.display());
    }
    let text = super::digest(&report, wrote.is_ok().then_some(html.as_path()));
    send_digest(cfg, &text);
    Ok(text)
}

/// THE HOOK for the notification sinks (`[[notify]]`): deliver the digest `text`. Today it
/// writes `<log_dir>/digest.txt` and logs the text; the sinks' code calls its senders here.
pub fn send_digest(cfg: &Config, text: &str) {
    let path = cfg.log_dir.join(DIGEST_FILE);
    if let Err(e) = crate::state::write_atomic(&path, format!("{text}\n").as_bytes()) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
    tracing::info!("digest:\n{text}");
}
