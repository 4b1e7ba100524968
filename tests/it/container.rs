//! Agents in a container on this machine (a private podman, an image of this machine's own
//! binaries): the two-phase loop with the adversary inside, a stopped container healed, status
//! and `orch hosts` showing it, `down` removing it, and secrets never in any process's argv.
use std::time::Duration;

use serde_json::Value;

use crate::hosts::fixture::{ArgvWatch, files_containing};
use crate::need_podman;
use crate::podman::{IMAGE, Podman};
use crate::project::{Project, loop_section, sim_backend};
use crate::support::wait_for;

/// The container host (`{remote}` is replaced by the bare remote's path, mounted as is).
fn box_host(mounts: &str) -> String {
    format!(
        r#"
[host.box]
transport = "container"
engine = "podman"
image = "{IMAGE}"
options = ["--network", "none"]
mounts = {mounts}
"#
    )
}

/// Fills `{remote}` in the project's config with the bare remote's path.
fn fill_remote(p: &Project) {
    let text = std::fs::read_to_string(&p.config).unwrap();
    let remote = p.git.remote.display().to_string();
    std::fs::write(&p.config, text.replace("{remote}", &remote)).unwrap();
}

/// `orch ARGS` on the project, with the private podman's configuration.
fn orch(p: &Project, podman: &Podman, args: &[&str]) -> std::process::Output {
    let mut cmd = p.orch_cmd(args);
    cmd.envs(podman.env());
    cmd.output().unwrap()
}

fn orch_ok(p: &Project, podman: &Podman, args: &[&str]) -> String {
    let out = orch(p, podman, args);
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_two_phase_loop_completes_with_the_adversary_in_a_container() {
    let podman = need_podman!();
    let body = format!(
        r#"
{host}
{sim}
[backend.simc]
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
backend = "simc"
host = "box"
dir = "adversary"
watch = "heal+stall"
env = {{ ORCH_SIM_FIND = "1" }}
{looping}"#,
        host = box_host(r#"["{dir}:/workspace", "{remote}:{remote}"]"#),
        sim = sim_backend("sim", ""),
        looping = loop_section(2, ""),
    );
    let p = Project::new(&body);
    fill_remote(&p);
    orch_ok(&p, &podman, &["up"]);
    let complete = p.wait_events("sequence_complete", 1, Duration::from_secs(150));
    assert!(
        complete,
        "no sequence_complete; remote: {:#?}\nevents: {:#?}\nadversary log: {}",
        p.remote_subjects(),
        p.events(),
        std::fs::read_to_string(p.path("adversary/.orch/t-adversary.log")).unwrap_or_default()
    );
    let subjects = p.remote_subjects();
    assert!(
        subjects.contains(&"review: p1 finding".to_string()),
        "{subjects:#?}"
    );
    assert!(
        subjects.contains(&"review: p2 ok".to_string()),
        "{subjects:#?}"
    );
    let pings = p.events_named("ping");
    assert!(
        pings
            .iter()
            .any(|e| e["agent"] == "adversary" && e["delivered"] == true),
        "{pings:#?}"
    );
    assert!(p.events_named("healed").is_empty(), "{:#?}", p.events());
    // The adversary really ran inside: its process is the container's, not this machine's.
    assert_eq!(podman.state("t-box").as_deref(), Some("running"));
    orch_ok(&p, &podman, &["down"]);
    assert_eq!(podman.state("t-box"), None, "down left the container");
}

/// Records every typed line in `<log_dir>/<agent>.typed` and writes its secret to `token`.
const RECORDER: &str = r#"
[backend.rec]
bin = '''sh -c 'printf "%s" "$API_TOKEN" > "$ORCH_LOG_DIR/token"; echo ready; while IFS= read -r l; do printf "%s\n" "$l" >> "$ORCH_LOG_DIR/$ORCH_AGENT.typed"; done' '''
prompt_delivery = "exec"
process_name = "sh"
"#;

#[test]
fn a_stopped_container_is_healed_and_no_secret_reaches_an_argv() {
    let podman = need_podman!();
    let body = format!(
        r#"
{host}
{RECORDER}
[[agent]]
name = "far"
backend = "rec"
host = "box"
dir = "far"
watch = "heal"
secrets_dir = "{{secrets}}"
"#,
        host = box_host(r#"["{dir}:/workspace"]"#),
    );
    let p = Project::new(&body);
    let secrets = p.path("secrets");
    std::fs::create_dir(&secrets).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let secret = format!("sekrit-{}-container-xyzzy", std::process::id());
    std::fs::write(secrets.join("API_TOKEN"), &secret).unwrap();
    std::fs::create_dir(p.path("far")).unwrap();
    let text = std::fs::read_to_string(&p.config).unwrap();
    std::fs::write(
        &p.config,
        text.replace("{secrets}", &secrets.display().to_string()),
    )
    .unwrap();
    let watch = ArgvWatch::start(&secret);

    orch_ok(&p, &podman, &["up"]);
    let token = p.path("far/.orch/token");
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_to_string(&token)
            .is_ok_and(|t| t == secret)),
        "the secret never reached the agent in the container"
    );
    let first_id = podman.id("t-box").expect("a container t-box");
    let status: Value = serde_json::from_str(&orch_ok(&p, &podman, &["status", "--json"])).unwrap();
    let far = &status["agents"][0];
    assert_eq!(far["host"], "box", "{status:#}");
    assert_eq!(far["running"], true, "{status:#}");
    let host = &status["hosts"][0];
    assert_eq!(host["name"], "box", "{status:#}");
    assert_eq!(host["reachable"], true, "{status:#}");
    assert_eq!(host["place"]["kind"], "container", "{status:#}");
    assert_eq!(host["place"]["id"], first_id.as_str(), "{status:#}");
    assert_eq!(host["place"]["state"], "running", "{status:#}");
    assert!(
        host["tmux_version"].as_str().unwrap().starts_with("tmux"),
        "{status:#}"
    );
    let table = orch_ok(&p, &podman, &["status"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("box") && l.contains("far")),
        "{table}"
    );

    // Text typed through exec lands in the pane inside.
    orch_ok(&p, &podman, &["send", "far", "hello from the watchdog"]);
    assert!(wait_for(Duration::from_secs(10), || {
        std::fs::read_to_string(p.path("far/.orch/far.typed"))
            .is_ok_and(|t| t.contains("hello from the watchdog"))
    }));
    let hosts = orch_ok(&p, &podman, &["hosts", "--json"]);
    let hosts: Value = serde_json::from_str(&hosts).unwrap();
    let h = &hosts["hosts"][0];
    assert_eq!(h["problems"], serde_json::json!([]), "{hosts:#}");
    assert_eq!(h["container"]["image"], IMAGE, "{hosts:#}");
    assert_eq!(h["container"]["state"], "running", "{hosts:#}");

    // The session log is read in the container (it is also on this machine, in the mount).
    let logs = orch_ok(&p, &podman, &["logs", "far", "-n", "5"]);
    assert!(logs.contains("ready"), "{logs}");

    // Stopped behind orch's back: the watchdog makes a new container and restarts the agent.
    podman.ok(&["stop", "-t", "0", "t-box"]);
    std::fs::remove_file(&token).unwrap();
    assert!(
        wait_for(Duration::from_secs(40), || {
            podman.id("t-box").is_some_and(|id| id != first_id)
                && std::fs::read_to_string(&token).is_ok_and(|t| t == secret)
        }),
        "the stopped container was not healed; events: {:#?}",
        p.events()
    );
    assert!(
        wait_for(Duration::from_secs(10), || p
            .events_named("healed")
            .iter()
            .any(|e| e["agent"] == "far" && e["reason"] == "gone")),
        "{:#?}",
        p.events()
    );
    assert!(
        p.events_named("host_unreachable").is_empty(),
        "a stopped container is not an unreachable host: {:#?}",
        p.events()
    );

    orch_ok(&p, &podman, &["down"]);
    assert_eq!(podman.state("t-box"), None, "down left the container");
    let seen = watch.finish();
    assert!(
        seen.is_empty(),
        "the secret was in a process's argv: {seen:#?}"
    );
    let mut leaked = files_containing(&p.log_dir(), &secret);
    leaked.extend(
        files_containing(&p.path("far"), &secret)
            .into_iter()
            .filter(|f| f != &token),
    );
    assert!(leaked.is_empty(), "the secret is in files: {leaked:?}");
    let inspect = podman.run(&["inspect", "--format", "{{.Config.Env}}", "t-box"]);
    assert!(!String::from_utf8_lossy(&inspect.stdout).contains(&secret));
}

#[test]
fn a_missing_engine_or_image_is_said_by_orch_hosts_and_bad_keys_exit_2() {
    let p = Project::new(&format!(
        "{}\n[[agent]]\nname = \"a\"\nbackend = \"claude-code\"\nhost = \"box\"\ndir = \"builder\"\n",
        box_host(r#"["{dir}:/workspace"]"#).replace("\"podman\"", "\"docker\"")
    ));
    // No engine on this PATH: the problem is one clear sentence, exit 1.
    let out = p
        .orch_cmd(&["hosts"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(
        text.contains("the container engine docker of host box does not run here"),
        "{text}"
    );
    std::fs::write(
        &p.config,
        std::fs::read_to_string(&p.config)
            .unwrap()
            .replace("engine = \"docker\"", "engine = \"lxc\""),
    )
    .unwrap();
    let out = p.orch(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host box: engine \"lxc\" must be podman or docker"),
        "{err}"
    );
}

#[test]
fn a_hanging_engine_makes_the_host_unreachable_within_the_timeout_and_never_dead() {
    let p = Project::new(&format!(
        "{}{RECORDER}\n[[agent]]\nname = \"far\"\nbackend = \"rec\"\nhost = \"box\"\ndir = \"builder\"\n",
        box_host(r#"["{dir}:/workspace"]"#)
    ));
    // A podman that never answers (each call is killed at its deadline).
    let bin = p.path("fakebin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("podman"), "#!/bin/sh\nexec sleep 30\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("podman"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let start = std::time::Instant::now();
    let out = p
        .orch_cmd(&["status", "--json"])
        .env("PATH", &path)
        .env("ORCH_SSH_TIMEOUT", "1")
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(6), "status took {took:?}");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["hosts"][0]["reachable"], false, "{status:#}");
    assert!(
        status["hosts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{status:#}"
    );
    assert_eq!(status["agents"][0]["state"], "unreachable", "{status:#}");
}
