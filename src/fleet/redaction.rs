//! Which secrets each session's logs must not show (its `env` and `secrets_dir` values), and
//! the `orch redact` pipe filter its session log goes through (secrets handed over in a file).
use std::io::Write;
use std::path::PathBuf;

use crate::config::{Agent, Config};
use crate::redact::{MIN_SECRET_LEN, Redactor};

/// An agent's secrets: its `env` table and its `secrets_dir` files, as `(NAME, value)`.
pub fn agent_secrets(agent: &Agent) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = agent
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(dir) = &agent.secrets_dir {
        match crate::secrets::read_dir(dir) {
            Ok(s) => out.extend(s),
            Err(e) => tracing::warn!(agent = %agent.name, "cannot read the secrets to redact: {e}"),
        }
    }
    out.retain(|(_, v)| v.len() >= MIN_SECRET_LEN);
    out.sort();
    out.dedup();
    out
}

/// The secrets of whatever runs in `session` (an agent or a service; none for others).
pub fn session_secrets(cfg: &Config, session: &str) -> Vec<(String, String)> {
    if let Some(a) = cfg.agents.iter().find(|a| a.session == session) {
        return agent_secrets(&crate::workspace::effective_agent(cfg, a));
    }
    cfg.services
        .iter()
        .find(|s| s.session == session)
        .map(|s| {
            s.env
                .iter()
                .filter(|(_, v)| v.len() >= MIN_SECRET_LEN)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Every secret of the config (all agents and services): what the event log redacts.
pub fn config_secrets(cfg: &Config) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = cfg.agents.iter().flat_map(agent_secrets).collect();
    for s in &cfg.services {
        out.extend(session_secrets(cfg, &s.session));
    }
    out.sort();
    out.dedup();
    out
}

/// The redactor for text from `session`.
pub fn session_redactor(cfg: &Config, session: &str) -> Redactor {
    Redactor::new(&session_secrets(cfg, session))
}

/// The `orch` binary: this program when it is orch, else (a test or bench linking the
/// library) the `orch` next to its build folder.
pub fn orch_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    if exe.file_stem().is_some_and(|n| n == "orch") {
        return Some(exe);
    }
    let dir = exe.parent()?;
    [dir.join("orch"), dir.parent()?.join("orch")]
        .into_iter()
        .find(|p| p.is_file())
}

/// The argv of the session log's filter: `orch redact`, with the secret values (if any) in a
/// fresh 0600 file outside the log folder that the filter deletes once read. Never in argv.
/// None (the log is then written as is, with a warning) when orch or the file cannot be had.
pub fn log_filter(secrets: &[(String, String)]) -> Option<Vec<String>> {
    let Some(exe) = orch_binary() else {
        tracing::warn!("cannot find the orch binary: session logs are not redacted");
        return None;
    };
    let mut argv = vec![exe.display().to_string(), "redact".to_string()];
    if secrets.is_empty() {
        return Some(argv);
    }
    match write_secrets_file(secrets) {
        Ok(path) => {
            argv.push("--secrets-file".into());
            argv.push(path.display().to_string());
            Some(argv)
        }
        Err(e) => {
            tracing::warn!("cannot hand the secrets to the log filter ({e}): token shapes only");
            Some(argv)
        }
    }
}

/// A new file only this user can read (tempfile creates it 0600), kept for the filter.
fn write_secrets_file(secrets: &[(String, String)]) -> std::io::Result<PathBuf> {
    let mut file = tempfile::Builder::new()
        .prefix("orch-redact-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile()?;
    let text = serde_json::to_vec(secrets).map_err(std::io::Error::other)?;
    file.write_all(&text)?;
    let (_, path) = file.keep().map_err(|e| e.error)?;
    Ok(path)
}
