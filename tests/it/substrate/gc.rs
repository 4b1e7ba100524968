//! `orch gc` removes exactly the project's leaks (orphaned sessions on both of its servers,
//! worktrees and branches of removed agents, old kickoff/scrollback files); --dry-run nothing.
use std::process::Command;

use orch::tmux::{Command as TmuxCommand, NewSession, Tmux};

use crate::gitfix::git;
use crate::project::Project;

fn sleeper(tmux: &Tmux, name: &str, dir: &std::path::Path) {
    let mut spec = NewSession::new(
        name,
        dir,
        TmuxCommand::Argv(vec!["sleep".into(), "600".into()]),
    );
    spec.log = None;
    tmux.new_session(&spec).unwrap();
}

fn touch_old(path: &std::path::Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "x").unwrap();
    let ok = Command::new("touch")
        .args(["-d", "30 days ago"])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn sessions(tmux: &Tmux) -> Vec<String> {
    tmux.fleet().unwrap().sessions().map(String::from).collect()
}

#[test]
fn gc_removes_exactly_the_orphans_and_dry_run_removes_nothing() {
    let body = r#"
[backend.sleeper]
bin = "sleep 600"
prompt_delivery = "exec"
process_name = "sleep"

[[agent]]
name = "a"
backend = "sleeper"
prompt = "x"
"#;
    let p = Project::new(body);
    let root = p.dir().to_path_buf();
    // The project folder is a git repo with branches orch/a (kept) and orch/gone (reaped) and
    // the worktree of the removed agent `gone`.
    git(&root, &["init", "-q", "-b", "main"]);
    git(
        &root,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@x.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "init",
        ],
    );
    git(&root, &["branch", "orch/a"]);
    let gone_tree = p.log_dir().join("worktrees/gone");
    git(
        &root,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "orch/gone",
            gone_tree.to_str().unwrap(),
        ],
    );
    p.orch_ok(&["up"]);
    let agents = p.server.tmux.clone();
    let watchdog = Tmux::new(Some(format!("{}-watchdog", p.server.socket)));
    sleeper(&agents, "t-old", &root);
    sleeper(&agents, "zz-foreign", &root);
    sleeper(&watchdog, "t-stale", &root);
    let state = p.log_dir().join("state");
    touch_old(&state.join("kickoff-t-old.txt"));
    touch_old(&p.log_dir().join("t-old.scrollback.log"));
    std::fs::write(p.log_dir().join("fresh.scrollback.log"), "x").unwrap();

    let before = (sessions(&agents), sessions(&watchdog));
    let listed = p.orch_ok(&["gc", "--dry-run"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 6, "{listed}");
    for what in [
        "orphaned session t-old",
        "orphaned session t-stale (watchdog server)",
        "worktree of removed agent gone",
        "branch orch/gone",
        "kickoff-t-old.txt",
        "t-old.scrollback.log",
    ] {
        assert!(listed.contains(what), "{what} not listed: {listed}");
    }
    assert!(
        lines.iter().all(|l| l.starts_with("would remove ")),
        "{listed}"
    );
    assert_eq!(
        (sessions(&agents), sessions(&watchdog)),
        before,
        "--dry-run removed something"
    );
    assert!(gone_tree.exists() && state.join("kickoff-t-old.txt").exists());

    let out = p.orch_ok(&["gc"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("removed ")).count(),
        6,
        "{out}"
    );
    assert_eq!(sessions(&agents), ["t-a", "zz-foreign"]);
    assert_eq!(sessions(&watchdog), ["t-watchdog"]);
    assert!(!gone_tree.exists());
    let branches = git(&root, &["branch", "--format=%(refname:short)"]);
    assert_eq!(
        branches.lines().collect::<Vec<_>>(),
        ["main", "orch/a"],
        "{branches}"
    );
    assert!(!state.join("kickoff-t-old.txt").exists());
    assert!(
        state.join("kickoff-t-a.txt").exists(),
        "a fresh kickoff file went"
    );
    assert!(!p.log_dir().join("t-old.scrollback.log").exists());
    assert!(p.log_dir().join("fresh.scrollback.log").exists());
    assert_eq!(p.orch_ok(&["gc", "--dry-run"]).trim(), "nothing to remove");
    p.orch_ok(&["down"]);
}
