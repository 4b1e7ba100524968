//! `cargo bench --bench containers`: what one call to a container host costs (podman, runc,
//! a private storage and an image of this machine's binaries, as in the tests): making the
//! container, `exec` of `true`, of a tmux list-panes, an `inspect`, and removing it.
//! Skips (exit 0, message) without podman, runc or root.
use std::time::{Duration, Instant};

use orch::transport::{ContainerPlace, ContainerSpec, Place};

/// The test-support pieces `podman.rs` needs.
mod support {
    pub use tempfile::TempDir;

    pub fn orch_bin() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_orch"))
    }
}

#[path = "../tests/it/podman.rs"]
mod podman;

const RUNS: usize = 21;
const TIMEOUT: Duration = Duration::from_secs(20);

fn main() {
    let engine = match podman::Podman::try_start() {
        Ok(engine) => engine,
        Err(why) => {
            println!("containers bench skipped: {why}");
            return;
        }
    };
    for (key, value) in engine.env() {
        // SAFETY: set before any thread of ours starts; every podman we spawn reads them.
        unsafe { std::env::set_var(key, value) };
    }
    let state_dir = engine.dir.path().join("state");
    let spec = ContainerSpec {
        name: "bench".into(),
        engine: "podman".into(),
        image: podman::IMAGE.into(),
        options: vec!["--network".into(), "none".into()],
        volumes: vec![],
        container: format!("orch-bench-{}", std::process::id()),
        state_dir,
    };
    let place = ContainerPlace::shared(spec);
    let start = Instant::now();
    let made = place.ensure_running(TIMEOUT).expect("making the container");
    assert!(made);
    let create_ms = ms(start.elapsed());
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    place
        .run(
            &words(&[
                "tmux",
                "-L",
                "bench",
                "new-session",
                "-d",
                "-s",
                "a",
                "sleep 600",
            ]),
            None,
            TIMEOUT,
        )
        .expect("a tmux session inside");
    let time = |argv: &[String]| {
        let mut all: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let out = place.run(argv, None, TIMEOUT).expect("exec");
                assert!(out.success(), "{argv:?}: {}", out.stderr);
                ms(t.elapsed())
            })
            .collect();
        all.sort_by(f64::total_cmp);
        (all[RUNS / 2], all[RUNS * 9 / 10])
    };
    let exec_true = time(&words(&["true"]));
    let list = time(&words(&[
        "tmux",
        "-u",
        "-L",
        "bench",
        "list-panes",
        "-a",
        "-F",
        "#{session_name} #{pane_pid} #{pane_current_command}",
    ]));
    let mut inspects: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            place.inspect(TIMEOUT).expect("inspect");
            ms(t.elapsed())
        })
        .collect();
    inspects.sort_by(f64::total_cmp);
    let start = Instant::now();
    place.remove().expect("removing the container");
    let remove_ms = ms(start.elapsed());
    println!("podman container call           median      p90   (runs: {RUNS})");
    println!(
        "exec true                    {:>8.1} ms {:>6.1} ms",
        exec_true.0, exec_true.1
    );
    println!(
        "exec tmux list-panes         {:>8.1} ms {:>6.1} ms",
        list.0, list.1
    );
    println!(
        "inspect                      {:>8.1} ms {:>6.1} ms",
        inspects[RUNS / 2],
        inspects[RUNS * 9 / 10]
    );
    println!("run -d (make, once)          {create_ms:>8.1} ms");
    println!("stop + rm (once)             {remove_ms:>8.1} ms");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
