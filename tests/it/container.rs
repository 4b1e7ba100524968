//! Agents in a container (podman, private storage): tmp.
use crate::need_podman;
use crate::podman::{IMAGE, Podman};

#[test]
fn podman_support_runs_tmux_in_the_test_image() {
    need_podman!();
    let p = Podman::start();
    let t = std::time::Instant::now();
    p.ok(&[
        "run",
        "-d",
        "--init",
        "--name",
        "smoke",
        "--network",
        "none",
        IMAGE,
        "sleep",
        "infinity",
    ]);
    eprintln!("run {:?}", t.elapsed());
    let out = p.ok(&["exec", "-e", "LANG=C.UTF-8", "smoke", "sh", "-c", "tmux -L x new-session -d -s a 'orch --version; sleep 5'; sleep 0.5; tmux -L x capture-pane -p -t =a: | head -3; git --version; id"]);
    eprintln!("{out}");
    assert_eq!(p.state("smoke").as_deref(), Some("running"));
}
