//! `orch init [DIR]`: scaffold a starter agents.toml and prompts/ that pass `orch validate`.
//! It never overwrites: if any file it would write exists, it writes nothing.
use std::path::Path;

use crate::state::write_atomic;
use crate::{Error, Result};

const KICKOFF: &str = include_str!("../../prompts/kickoff.md");
const BUILDER: &str = include_str!("../../prompts/builder.md");
const ADVERSARY: &str = include_str!("../../prompts/adversary.md");

/// The starter config; `{name}` is the project folder's name.
const STARTER: &str = r#"# orch config for {name}. Reference: the orch README ("Config reference").
[defaults]
session_prefix = "{name}-"
log_dir = ".orch"
backend = "claude-code"       # a built-in preset: see `[backend.NAME]` in the README to override keys
model = "sonnet"
watch = "heal"

[watchdog]
signal_interval = 30
heavy_interval = 300

[[agent]]
name = "builder"
kind = "loop"
role = "builder"
watch = "heal+stall"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
watch = "heal+stall"

[loop]
kickoff_template = "prompts/kickoff.md"
roles_dir = "prompts"
phases = [
  { id = "p1", plan = "docs/p1-plan.md", status = "p1-STATUS.md" },
]

[loop.handoff]
repo = "."
state_subdir = "machine-docs"
inboxes = ["ADVERSARY-INBOX.md", "BUILDER-INBOX.md"]
"#;

/// Scaffold `dir` (created if missing). Returns the files written.
pub fn scaffold(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let name = std::path::absolute(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| sanitize(&n))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "proj".into());
    let files = [
        (dir.join("agents.toml"), STARTER.replace("{name}", &name)),
        (dir.join("prompts/kickoff.md"), KICKOFF.to_string()),
        (dir.join("prompts/builder.md"), BUILDER.to_string()),
        (dir.join("prompts/adversary.md"), ADVERSARY.to_string()),
    ];
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Usage(format!(
            "refusing to overwrite {} (orch init only writes into a project without them)",
            existing.join(", ")
        )));
    }
    let prompts = dir.join("prompts");
    std::fs::create_dir_all(&prompts)
        .map_err(|e| Error::io(&prompts, "creating the prompts folder", e))?;
    for (path, text) in &files {
        write_atomic(path, text.as_bytes())
            .map_err(|e| Error::io(path, "writing a scaffold file", e))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// A session prefix tmux can hold: letters, digits, `-` and `_` only.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}
