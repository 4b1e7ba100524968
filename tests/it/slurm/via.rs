//! A SLURM host reached `via` an ssh host: sbatch, squeue, srun and scancel run over the
//! private sshd as its unprivileged user (SLURM_CONF sent with ssh's SetEnv).
use std::time::Duration;

use serde_json::Value;

use crate::need_sshd;
use crate::sshd::{Sshd, USER, orch_copy};
use crate::support::{TmuxServer, orch_cmd, wait_for};

use super::cluster::{Cluster, unavailable};

#[test]
fn a_slurm_host_via_an_ssh_login_node_runs_its_agents_and_down_cancels_the_job() {
    need_sshd!();
    let cluster = match unavailable().map_or_else(Cluster::start, Err) {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: slurm tests need a private single-node SLURM: {why}");
            return;
        }
    };
    let sshd = Sshd::start();
    let local = TmuxServer::new();
    let root = tempfile::tempdir().unwrap();
    let unique = local.socket.replace("orch-test-", "");
    let base = sshd.home.join(format!("orch-slv-{unique}"));
    let config = root.path().join("agents.toml");
    let text = format!(
        r#"[defaults]
session_prefix = "v-"
log_dir = ".orch"
tmux_socket = "{local}"

[backend.simr]
bin = "orch sim"
flags = "--step-ms 40"
prompt_delivery = "arg"
process_name = "orch"
active_re = "esc to interrupt"

[host.login]
ssh = "{USER}@127.0.0.1"
ssh_options = ["-p", "{port}", "-i", "{key}", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "SetEnv=SLURM_CONF={conf}"]

[host.gpu]
transport = "slurm"
via = "login"
tmux_socket = "orch-slv-{unique}"
orch_bin = "{orch}"
slurm = {{ time = "10" }}

[[agent]]
name = "far"
backend = "simr"
host = "gpu"
dir = "{dir}"
"#,
        local = local.socket,
        port = sshd.port,
        key = sshd.key.display(),
        conf = cluster.conf.display(),
        orch = orch_copy().display(),
        dir = base.join("far").display(),
    );
    std::fs::write(&config, text).unwrap();
    let orch = |args: &[&str]| {
        orch_cmd(&config, &local.socket, root.path(), args)
            .env("ORCH_SSH_TIMEOUT", "5")
            .env("ORCH_SLURM_WAIT", "30")
            .output()
            .unwrap()
    };
    let out = orch(&["up", "far"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log(),
        cluster.logs()
    );
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join(".orch/state/slurm-gpu.json")).unwrap(),
    )
    .unwrap();
    let job = record["job_id"].as_str().unwrap().to_string();
    assert!(
        text.contains(&format!("allocation {job} is running")),
        "{text}"
    );
    // The job is the ssh user's: sbatch ran on the login host.
    let owner = cluster.run("squeue", &["-h", "-j", &job, "-o", "%u"]);
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), USER);
    let status: Value = serde_json::from_slice(&orch(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["agents"][0]["running"], true, "{status:#}");
    let gpu = status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "gpu")
        .cloned()
        .unwrap();
    assert_eq!(gpu["job_id"], job.as_str(), "{status:#}");
    assert_eq!(gpu["reachable"], true, "{status:#}");
    assert!(
        wait_for(Duration::from_secs(20), || orch(&[
            "send",
            "far",
            "hello via"
        ])
        .status
        .success()),
        "orch send far never confirmed delivery"
    );
    let down = orch(&["down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        wait_for(Duration::from_secs(15), || cluster
            .job_state(&job)
            .is_empty()),
        "down did not cancel job {job}"
    );
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(sshd.home.join(".orch-slurm/v-gpu"));
}
