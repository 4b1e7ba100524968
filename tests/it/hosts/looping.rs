//! The two-phase loop across machines: a local builder and an adversary on the sshd's host
//! (orch sim through `orch_bin`), its clone made as the test user.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::fixture::SSH_TIMEOUT;
use crate::need_sshd;
use crate::sshd::{Sshd, USER, orch_copy};

/// Runs `args` as the test user (with its own HOME), asserting success.
fn as_test_user(home: &Path, args: &[&std::ffi::OsStr]) {
    let out = Command::new("runuser")
        .args(["-u", USER, "--", "env"])
        .arg(format!("HOME={}", home.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} as {USER}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Opens the git fixture to the test user (the bare remote world-writable, git trusting it)
/// and clones it into `dir` on the "host" as that user.
fn clone_as_test_user(fx: &crate::gitfix::GitFixture, home: &Path, dir: &Path) {
    use std::ffi::OsStr;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fx.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    crate::gitfix::git(&fx.remote, &["config", "core.sharedRepository", "0666"]);
    let st = Command::new("chmod")
        .arg("-R")
        .arg("a+rwX")
        .arg(&fx.remote)
        .status()
        .unwrap();
    assert!(st.success());
    let git = |args: &[&str]| {
        let mut all: Vec<&OsStr> = vec![OsStr::new("git")];
        all.extend(args.iter().map(OsStr::new));
        as_test_user(home, &all);
    };
    git(&["config", "--global", "user.name", "orch test"]);
    git(&["config", "--global", "user.email", "test@orch.invalid"]);
    git(&["config", "--global", "--replace-all", "safe.directory", "*"]);
    as_test_user(
        home,
        &[
            OsStr::new("git"),
            OsStr::new("clone"),
            OsStr::new("-q"),
            fx.remote.as_os_str(),
            dir.as_os_str(),
        ],
    );
}

#[test]
fn a_local_builder_and_an_adversary_on_the_host_complete_the_two_phase_loop() {
    need_sshd!();
    let sshd = Sshd::start();
    let unique = format!("{}-{}", std::process::id(), chrono_like_nanos());
    let base = sshd.home.join(format!("orch-loop-{unique}"));
    let remote_socket = format!("orch-rl-{unique}");
    let adversary_dir = base.join("adversary");
    let body = format!(
        r#"
{host}
{sim}
[backend.simr]
bin = "orch sim"
flags = "--step-ms 40"
prompt_delivery = "arg"
process_name = "orch"
active_re = "esc to interrupt"

[[agent]]
name = "builder"
kind = "loop"
role = "builder"
backend = "sim"
dir = "builder"
watch = "heal+stall"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "simr"
host = "lab"
dir = "{dir}"
watch = "heal+stall"
env = {{ ORCH_SIM_FIND = "1" }}
{looping}"#,
        host = sshd.host_table("lab", &remote_socket, &orch_copy()),
        sim = crate::project::sim_backend("sim", ""),
        dir = adversary_dir.display(),
        looping = crate::project::loop_section(2, ""),
    );
    let p = crate::project::Project::new(&body);
    clone_as_test_user(&p.git, &sshd.home, &adversary_dir);
    let cleanup = Cleanup {
        socket: remote_socket.clone(),
        base: base.clone(),
    };
    let mut up = p.orch_cmd(&["up"]);
    up.env("ORCH_SSH_TIMEOUT", SSH_TIMEOUT);
    crate::support::stdout_ok(up, &["up"]);
    let complete = p.wait_events("sequence_complete", 1, Duration::from_secs(120));
    let pings: Vec<Value> = p.events_named("ping");
    assert!(
        complete,
        "no sequence_complete; remote: {:#?}\nevents: {:#?}\nadversary log: {}",
        p.remote_subjects(),
        p.events(),
        std::fs::read_to_string(adversary_dir.join(".orch/t-adversary.log")).unwrap_or_default()
    );
    let subjects: Vec<String> = p
        .remote_subjects()
        .into_iter()
        .filter(|s| {
            ["claim:", "review:", "status:"]
                .iter()
                .any(|v| s.starts_with(v))
        })
        .collect();
    assert!(
        subjects.contains(&"review: p1 finding".to_string()),
        "{subjects:#?}"
    );
    assert!(
        subjects.contains(&"review: p2 ok".to_string()),
        "{subjects:#?}"
    );
    assert!(
        pings
            .iter()
            .any(|e| e["agent"] == "adversary" && e["delivered"] == true),
        "{pings:#?}"
    );
    assert!(p.events_named("healed").is_empty(), "{:#?}", p.events());
    crate::support::stdout_ok(p.orch_cmd(&["down"]), &["down"]);
    drop(cleanup);
}

/// Removes the host side of a test (its tmux server and folder) without needing ssh.
struct Cleanup {
    socket: String,
    base: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", USER, "--", "tmux", "-L", &self.socket, "kill-server"])
            .output();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

fn chrono_like_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
