//! The binary stands alone: copied out of the build tree, it scaffolds, validates and runs the
//! demo from an empty folder, with everything it needs (prompts, presets, demo files) built in.
use std::path::Path;
use std::process::{Command, Output};

use crate::support::{TempDir, orch_bin};

fn run(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("TMUX")
        .env_remove("TMUX_PANE")
        .env_remove("ORCH_LOG")
        .env_remove("ORCH_TMUX_SOCKET")
        .output()
        .unwrap()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_copied_binary_runs_init_validate_and_demo_from_an_empty_folder() {
    let tmp = TempDir::new().unwrap();
    let bin_dir = tmp.path().join("bin");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let bin = bin_dir.join("orch");
    std::fs::copy(orch_bin(), &bin).unwrap();

    let out = run(&bin, &work, &["init"]);
    assert_ok(&out, "orch init");
    for file in ["agents.toml", "prompts/kickoff.md", "prompts/builder.md", "prompts/adversary.md"] {
        let text = std::fs::read_to_string(work.join(file)).unwrap_or_default();
        assert!(!text.trim().is_empty(), "orch init wrote no {file}");
    }
    assert_ok(&run(&bin, &work, &["validate"]), "orch validate");

    let demo_dir = tmp.path().join("demo");
    let out = run(
        &bin,
        tmp.path(),
        &["demo", "--dir", demo_dir.to_str().unwrap(), "--timeout", "150"],
    );
    assert_ok(&out, "orch demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("sequence_complete"),
        "the demo did not complete:\n{stdout}"
    );
}
