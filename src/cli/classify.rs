//! `orch classify [--backend NAME] [--json] [FILE|-]`: the state a captured screen is in, by
//! the same rules the watchdog uses, so a user can check what their agent shows.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{self, LoadOptions};
use crate::detect::{self, Classification, ScreenRule};
use crate::{Error, Result};

/// The rule set for `backend`: a backend of the config at `config_path` (when that file
/// exists), else a built-in preset, alias or `generic`. A configured backend without rules
/// of its own uses the generic rules.
pub fn rules_for(config_path: &Path, backend: &str) -> Result<Vec<ScreenRule>> {
    if config_path.is_file() {
        let loaded = config::load(config_path, LoadOptions::LENIENT)?;
        if let Some(b) = loaded.config.backends.get(backend) {
            if !b.screen_rules.is_empty() {
                return Ok(b.screen_rules.clone());
            }
            return Ok(detect::builtin_rules("generic").unwrap_or_default());
        }
    }
    detect::builtin_rules(backend).ok_or_else(|| {
        Error::Usage(format!(
            "classify: unknown backend {backend:?} (built in: {}; or a [backend.NAME] of {})",
            detect::builtin_presets().join(", "),
            config_path.display()
        ))
    })
}

/// The screen text: FILE, or standard input for `-` / no file.
fn read_screen(file: Option<&PathBuf>) -> Result<String> {
    let bytes = match file.filter(|f| f.as_os_str() != "-") {
        Some(f) => {
            std::fs::read(f).map_err(|e| Error::io(f, "reading the screen to classify", e))?
        }
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Error::io("<stdin>", "reading the screen to classify", e))?;
            buf
        }
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The JSON form of a classification.
pub fn to_json(backend: &str, c: &Classification) -> serde_json::Value {
    serde_json::json!({
        "backend": backend,
        "state": c.state.as_str(),
        "rule": c.rule,
        "reset": c.reset.map(|r| r.to_rfc3339()),
    })
}

pub fn run(
    config_path: &Path,
    backend: &str,
    json: bool,
    file: Option<&PathBuf>,
) -> Result<ExitCode> {
    let rules = rules_for(config_path, backend)?;
    let screen = read_screen(file)?;
    let now = chrono::Local::now().fixed_offset();
    let c = detect::classify(&screen, &rules, now);
    if json {
        println!("{}", to_json(backend, &c));
    } else {
        println!("{}", c.state);
    }
    Ok(ExitCode::SUCCESS)
}
