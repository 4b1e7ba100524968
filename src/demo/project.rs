//! The demo's throwaway project: a bare remote, the watchdog's and the agents' clones, plans,
//! this repository's prompts and the shipped example config, set up with the git CLI.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::state::write_atomic;
use crate::{Error, Result};

/// The example config, as shipped; the demo runs it with three values rewritten.
pub const EXAMPLE: &str = include_str!("../../agents.example.toml");
const KICKOFF: &str = include_str!("../../prompts/kickoff.md");
const BUILDER: &str = include_str!("../../prompts/builder.md");
const ADVERSARY: &str = include_str!("../../prompts/adversary.md");

const PLANS: [(&str, &str); 2] = [
    (
        "plans/p1.md",
        "# Plan p1: the parser\n\n- gate 1: every example in the plan parses\n- gate 2: bad input gives a clear error\n",
    ),
    (
        "plans/p2.md",
        "# Plan p2: the printer\n\n- gate 1: printing what p1 parsed gives the input back\n",
    ),
];

/// The clones next to `remote.git`: the watchdog's, then one per loop agent.
pub const CLONES: [&str; 3] = ["watch", "builder", "adversary"];

/// How long one git or orch child may take before it is killed.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// What a bounded child printed, and whether it succeeded.
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` (stdin closed, output to anonymous files so nothing blocks on a pipe a daemon
/// inherited), killing it after `timeout`. `what` names it in errors.
pub fn run_bounded(mut cmd: Command, timeout: Duration, what: &str) -> Result<Ran> {
    let fail = |e: std::io::Error| Error::Runtime(format!("could not run {what}: {e}"));
    let mut out = tempfile::tempfile().map_err(fail)?;
    let mut err = tempfile::tempfile().map_err(fail)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().map_err(fail)?))
        .stderr(Stdio::from(err.try_clone().map_err(fail)?));
    let mut child = cmd.spawn().map_err(fail)?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(fail)? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Runtime(format!(
                    "{what} did not finish within {} s and was killed",
                    timeout.as_secs()
                )));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let read = |f: &mut File| {
        let mut bytes = Vec::new();
        let _ = f
            .seek(SeekFrom::Start(0))
            .and_then(|_| f.read_to_end(&mut bytes));
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Ran {
        ok: status.success(),
        stdout: read(&mut out),
        stderr: read(&mut err),
    })
}

/// `git -C <dir> <args>` with an explicit identity (works without a user git config);
/// returns stdout, or an error carrying git's stderr.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=orch demo",
            "-c",
            "user.email=demo@orch.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    let what = format!("`git {}` in {}", args.join(" "), dir.display());
    let ran = run_bounded(cmd, CHILD_TIMEOUT, &what)?;
    if ran.ok {
        Ok(ran.stdout)
    } else {
        Err(Error::Runtime(format!(
            "{what} failed: {}",
            ran.stderr.trim()
        )))
    }
}

/// The example config as the demo runs it: on the private tmux server `socket`, with the
/// sim launched by this very binary (`exe`, an absolute path) rather than whatever `orch` is
/// first on the PATH of the tmux server.
pub fn demo_config(example: &str, socket: &str, exe: &Path) -> Result<String> {
    let exe_name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "orch".into());
    let bin = format!("{} sim", shell_words::quote(&exe.display().to_string()));
    let swaps = [
        (
            r#"tmux_socket = "orch-demo""#,
            format!("tmux_socket = {}", toml_string(socket)),
        ),
        (
            r#"bin = "orch sim""#,
            format!("bin = {}", toml_string(&bin)),
        ),
        (
            r#"process_name = "orch""#,
            format!("process_name = {}", toml_string(&exe_name)),
        ),
    ];
    let mut text = example.to_string();
    for (from, to) in swaps {
        if !text.contains(from) {
            return Err(Error::Runtime(format!(
                "the embedded agents.example.toml has no `{from}` line for the demo to rewrite"
            )));
        }
        text = text.replacen(from, &to, 1);
    }
    Ok(text)
}

/// A TOML basic string holding `s`, escaped.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Build the whole project in `root` (existing and empty); returns the config's path.
pub fn create(root: &Path, socket: &str, exe: &Path) -> Result<PathBuf> {
    git(root, &["init", "-q", "--bare", "-b", "main", "remote.git"])?;
    git(root, &["clone", "-q", "remote.git", "watch"])?;
    let watch = root.join("watch");
    write(
        &watch.join("README.md"),
        "# orch demo project\n\nBuilt by `orch demo`: the simulated builder and adversary push here.\n",
    )?;
    for (rel, text) in PLANS {
        write(&watch.join(rel), text)?;
        write(&root.join(rel), text)?;
    }
    git(&watch, &["add", "-A"])?;
    git(&watch, &["commit", "-q", "-m", "plans: p1 and p2"])?;
    git(&watch, &["push", "-q", "origin", "HEAD:main"])?;
    for name in &CLONES[1..] {
        git(root, &["clone", "-q", "remote.git", name])?;
    }
    for (name, text) in [
        ("kickoff.md", KICKOFF),
        ("builder.md", BUILDER),
        ("adversary.md", ADVERSARY),
    ] {
        write(&root.join("prompts").join(name), text)?;
    }
    let config = root.join("agents.toml");
    write(&config, &demo_config(EXAMPLE, socket, exe)?)?;
    Ok(config)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(parent, "creating a demo project folder", e))?;
    }
    write_atomic(path, text.as_bytes()).map_err(|e| Error::io(path, "writing a demo file", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_runs_this_binary_on_a_private_server() {
        let exe = Path::new("/opt/my tools/orch");
        let text = demo_config(EXAMPLE, "orch-demo-42", exe).unwrap();
        let value: toml::Table = text.parse().unwrap();
        assert_eq!(
            value["defaults"]["tmux_socket"].as_str(),
            Some("orch-demo-42")
        );
        let bin = value["backend"]["sim"]["bin"].as_str().unwrap();
        assert_eq!(
            shell_words::split(bin).unwrap(),
            ["/opt/my tools/orch", "sim"]
        );
        assert_eq!(
            value["backend"]["sim"]["process_name"].as_str(),
            Some("orch")
        );
        assert!(!text.contains(r#""orch sim""#));
    }

    #[test]
    fn create_builds_a_project_that_validates_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let config = create(&root, "orch-demo-1", Path::new("/usr/bin/orch")).unwrap();
        let loaded = crate::config::load(&config, crate::config::LoadOptions::STRICT);
        assert!(loaded.is_ok(), "{:?}", loaded.err());
        let loaded = loaded.unwrap();
        assert!(loaded.warnings.is_empty());
        // What it names on disk is there too (`orch validate`'s second half).
        let text = std::fs::read_to_string(&config).unwrap();
        let on_disk = crate::config::check_paths(&loaded.config, &text, 0);
        assert!(on_disk.errors.is_empty(), "{:?}", on_disk.errors);
        for clone in CLONES {
            assert!(root.join(clone).join("plans/p2.md").exists(), "{clone}");
        }
        assert!(root.join("plans/p1.md").exists());
        let log = git(&root.join("remote.git"), &["log", "--format=%s", "main"]).unwrap();
        assert_eq!(log.trim(), "plans: p1 and p2");
    }
}
