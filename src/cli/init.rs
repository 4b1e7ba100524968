//! `orch init [DIR]`: scaffold a starter agents.toml (working for its preset on first try),
//! prompts/ and a .gitignore entry for the log dir; never overwrites, and prints the steps left.
use std::path::{Path, PathBuf};

use crate::state::write_atomic;
use crate::{Error, Result};

const KICKOFF: &str = include_str!("../../prompts/kickoff.md");
const BUILDER: &str = include_str!("../../prompts/builder.md");
const ADVERSARY: &str = include_str!("../../prompts/adversary.md");

/// The preset `orch init` writes for both loop agents.
pub const INIT_PRESET: &str = "claude-code";

/// The starter config; `{name}` is the project folder's name, `{accept}` the auto_accept list.
const STARTER: &str = r#"# orch config for {name}. Reference: the orch README ("Config reference").
[defaults]
session_prefix = "{name}-"
log_dir = ".orch"             # logs and state; orch init added it to .gitignore
backend = "{preset}"       # a built-in preset: see `[backend.NAME]` in the README to override keys
watch = "heal"
tmux_socket = "orch-{name}"   # a private tmux server for this project (tmux -L)
{root}# No model: each CLI uses its own default. Set `model` per agent (or per phase) to choose.

[watchdog]
signal_interval = 30
heavy_interval = 300

# Each loop agent works in its own clone of this repository (they pull and push origin/main).
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
dir = "../{name}-builder"
watch = "heal+stall"
auto_accept = {accept}   # first-run dialogs its flags bring up

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
dir = "../{name}-adversary"
watch = "heal+stall"
auto_accept = {accept}

[loop]
kickoff_template = "prompts/kickoff.md"
roles_dir = "prompts"
phases = [
  { id = "p1", plan = "docs/p1-plan.md", status = "p1-STATUS.md" },
]

[loop.handoff]
repo = "."                    # the watchdog fetches this clone's origin/main
state_subdir = "machine-docs"
inboxes = ["ADVERSARY-INBOX.md", "BUILDER-INBOX.md"]
"#;

/// Written into `[defaults]` when `orch init` runs as root.
const ROOT_ENV: &str = "env = { IS_SANDBOX = \"1\" }   # run as root: Claude Code refuses --dangerously-skip-permissions without it\n";

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The first-run dialogs `preset`'s own flags bring up (Claude Code's folder trust and, with
/// `--dangerously-skip-permissions`, its bypass-permissions warning): every dialog the preset
/// knows except `api-key`, which chooses whether to use a key found in the environment.
pub fn first_run_dialogs(preset: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let dialogs = crate::presets::preset_table(preset)
        .and_then(|t| t.get("dialogs").and_then(|d| d.as_array()).cloned())
        .unwrap_or_default();
    for d in dialogs {
        if let Some(k) = d.get("key").and_then(|k| k.as_str())
            && k != "api-key"
            && !keys.iter().any(|x| x == k)
        {
            keys.push(k.to_string());
        }
    }
    keys
}

/// What `orch init` did: the files written and the folder's name used in the config.
pub struct Scaffolded {
    pub files: Vec<PathBuf>,
    pub name: String,
    /// The .gitignore that now lists the log dir (`None`: it already did).
    pub gitignore: Option<PathBuf>,
}

/// Scaffold `dir` (created if missing).
pub fn scaffold(dir: &Path) -> Result<Scaffolded> {
    let name = std::path::absolute(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| sanitize(&n))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "proj".into());
    let accept = toml::Value::Array(
        first_run_dialogs(INIT_PRESET)
            .into_iter()
            .map(toml::Value::String)
            .collect(),
    )
    .to_string();
    let config = STARTER
        .replace("{name}", &name)
        .replace("{preset}", INIT_PRESET)
        .replace("{accept}", &accept)
        .replace("{root}", if running_as_root() { ROOT_ENV } else { "" });
    let files = [
        (dir.join("agents.toml"), config),
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
    let gitignore = ignore_log_dir(dir, ".orch")?;
    Ok(Scaffolded {
        files: files.into_iter().map(|(p, _)| p).collect(),
        name,
        gitignore,
    })
}

/// Add `/<log_dir>/` to `<dir>/.gitignore` (created if missing) unless a line already ignores
/// it; the path when it was written.
pub fn ignore_log_dir(dir: &Path, log_dir: &str) -> Result<Option<PathBuf>> {
    let path = dir.join(".gitignore");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&path, "reading .gitignore", e)),
    };
    let bare = log_dir.trim_matches('/');
    let listed = text
        .lines()
        .map(|l| l.trim().trim_matches('/'))
        .any(|l| l == bare);
    if listed {
        return Ok(None);
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out += &format!("# orch's logs and state\n/{bare}/\n");
    write_atomic(&path, out.as_bytes()).map_err(|e| Error::io(&path, "writing .gitignore", e))?;
    Ok(Some(path))
}

/// The steps left after `orch init` in `dir`, as printed under "next:".
pub fn next_steps(dir: &Path, name: &str) -> String {
    let config = dir.join("agents.toml");
    format!(
        "next:\n  \
         1. write the plan of phase p1: {plan} (add phases to [loop].phases in {config})\n  \
         2. give each loop agent its own clone of this repository (it needs an origin with a main branch):\n     \
            git clone <your remote> ../{name}-builder && git clone <your remote> ../{name}-adversary\n  \
         3. run each agent CLI once by hand in its clone and finish its first-run login (orch answers\n     \
            only the dialogs listed in auto_accept; as root, Claude Code needs IS_SANDBOX=1 in `env`)\n  \
         4. orch validate && orch up      (then: orch status, orch logs builder -f)",
        plan = dir.join("docs/p1-plan.md").display(),
        config = config.display(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_dir_is_added_to_gitignore_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".gitignore");
        std::fs::write(&path, "target").unwrap();
        assert_eq!(
            ignore_log_dir(dir.path(), ".orch").unwrap(),
            Some(path.clone())
        );
        assert_eq!(ignore_log_dir(dir.path(), ".orch").unwrap(), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("target\n"), "{text}");
        assert_eq!(text.matches("/.orch/").count(), 1, "{text}");
        // A line that already ignores it, in any spelling, is enough.
        std::fs::write(&path, ".orch\n").unwrap();
        assert_eq!(ignore_log_dir(dir.path(), ".orch").unwrap(), None);
    }

    #[test]
    fn claude_code_agents_accept_the_dialogs_its_flags_bring_up() {
        assert_eq!(
            first_run_dialogs("claude-code"),
            ["trust", "bypass-permissions"]
        );
        assert_eq!(first_run_dialogs("codex"), ["trust"]);
        assert!(first_run_dialogs("opencode").is_empty());
    }

    #[test]
    fn the_starter_config_loads_with_no_model_for_any_backend() {
        let dir = tempfile::tempdir().unwrap();
        let done = scaffold(dir.path()).unwrap();
        let text = std::fs::read_to_string(&done.files[0]).unwrap();
        // The adversary on codex, as a user would switch it: still no model forced on it.
        let text = text.replacen(
            "name = \"adversary\"\n",
            "name = \"adversary\"\nbackend = \"codex\"\nauto_accept = [\"trust\"]\n",
            1,
        );
        let text = text.replacen(
            "watch = \"heal+stall\"\nauto_accept = [\"trust\", \"bypass-permissions\"]\n\n[loop]",
            "watch = \"heal+stall\"\n\n[loop]",
            1,
        );
        let cfg =
            crate::config::load_str(&text, &done.files[0], crate::config::LoadOptions::STRICT)
                .unwrap()
                .config;
        for a in &cfg.agents {
            assert_eq!(a.model, "", "{}", a.name);
        }
        assert_eq!(cfg.agent("adversary").unwrap().backend, "codex");
        assert!(cfg.tmux_socket.is_some());
    }
}
