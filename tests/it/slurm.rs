//! Agents in allocations of a private single-node SLURM per test: start, pings, status, queued
//! = starting, a cancelled job healed by a new allocation, the walltime warning and its end.
pub mod cluster;
mod via;

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::slurm_project;
use crate::support::{TempDir, TmuxServer, orch_bin, orch_cmd, wait_for};
use cluster::Cluster;

/// A project whose agent `far` runs (orch sim) on the SLURM host `gpu`.
pub struct SlurmProject {
    cluster: Cluster,
    local: TmuxServer,
    root: TempDir,
    config: PathBuf,
    socket: String,
    watchdog: Option<Child>,
}

impl SlurmProject {
    /// `slurm` is the host's sbatch options table, `kind` the agent's kind lines.
    pub fn new(slurm: &str) -> Result<SlurmProject, String> {
        let cluster = Cluster::start()?;
        let local = TmuxServer::new();
        let root = tempfile::tempdir().unwrap();
        let socket = local.socket.replace("orch-test-", "orch-sl-");
        let config = root.path().join("agents.toml");
        let text = format!(
            r#"[defaults]
session_prefix = "t-"
log_dir = ".orch"
tmux_socket = "{local}"

[watchdog]
signal_interval = 1
heavy_interval = 1

[backend.simr]
bin = "orch sim"
flags = "--step-ms 40"
prompt_delivery = "arg"
process_name = "orch"
active_re = "esc to interrupt"

[host.gpu]
transport = "slurm"
tmux_socket = "{socket}"
orch_bin = "{orch}"
slurm = {slurm}

[[agent]]
name = "far"
backend = "simr"
host = "gpu"
dir = "{dir}"
watch = "heal"
"#,
            local = local.socket,
            orch = orch_bin().display(),
            dir = root.path().join("far").display(),
        );
        std::fs::write(&config, text).unwrap();
        Ok(SlurmProject {
            cluster,
            local,
            root,
            config,
            socket,
            watchdog: None,
        })
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = orch_cmd(&self.config, &self.local.socket, self.root.path(), args);
        cmd.env("SLURM_CONF", &self.cluster.conf)
            .env("ORCH_SSH_TIMEOUT", "5")
            .env("ORCH_SLURM_WAIT", "30");
        cmd
    }

    fn orch(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn orch_ok(&self, args: &[&str]) -> String {
        let out = self.orch(args);
        assert!(
            out.status.success(),
            "orch {args:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.cluster.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.orch_ok(&["status", "--json"])).unwrap()
    }

    /// The recorded job id of host gpu.
    fn job(&self) -> String {
        let text = std::fs::read_to_string(self.root.path().join(".orch/state/slurm-gpu.json"))
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or_default();
        v["job_id"].as_str().unwrap_or_default().to_string()
    }

    /// `orch watchdog` in the foreground, as a child of the test (with our SLURM_CONF).
    fn start_watchdog(&mut self) {
        let log = std::fs::File::create(self.root.path().join("watchdog.out")).unwrap();
        let child = self
            .cmd(&["watchdog"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.watchdog = Some(child);
    }

    fn events(&self, name: &str) -> Vec<Value> {
        let text = std::fs::read_to_string(self.root.path().join(".orch/events.jsonl"))
            .unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == name)
            .collect()
    }

    /// Is `session` on the allocation's tmux server (asked on the node directly)?
    fn node_has(&self, session: &str) -> bool {
        Command::new("tmux")
            .args([
                "-L",
                &self.socket,
                "has-session",
                "-t",
                &format!("={session}"),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn far_state(&self) -> Value {
        self.status()["agents"][0]["state"].clone()
    }
}

impl Drop for SlurmProject {
    fn drop(&mut self) {
        if let Some(mut wd) = self.watchdog.take() {
            let _ = wd.kill();
            let _ = wd.wait();
        }
        let _ = self.orch(&["down"]);
    }
}

#[test]
fn agents_start_in_an_allocation_take_pings_show_in_status_and_down_cancels_it() {
    let p = slurm_project!(r#"{ time = "10", cpus_per_task = 1 }"#);
    let up = p.orch_ok(&["up", "far"]);
    let job = p.job();
    assert!(!job.is_empty(), "no job recorded: {up}");
    assert!(up.contains(&format!("allocation {job} is running")), "{up}");
    assert_eq!(p.cluster.job_state(&job), "RUNNING");
    assert!(
        p.node_has("t-far"),
        "t-far is not on the allocation's tmux server"
    );
    // The tmux server is the batch script's child: it lives in the job.
    let server_pid = Command::new("tmux")
        .args(["-L", &p.socket, "display-message", "-p", "#{pid}"])
        .output()
        .unwrap();
    let server_pid = String::from_utf8_lossy(&server_pid.stdout)
        .trim()
        .to_string();
    assert!(!server_pid.is_empty());

    let status = p.status();
    let far = &status["agents"][0];
    assert_eq!(far["host"], "gpu", "{status:#}");
    assert_eq!(far["running"], true, "{status:#}");
    let host = &status["hosts"][0];
    assert_eq!(host["name"], "gpu", "{status:#}");
    assert_eq!(host["reachable"], true, "{status:#}");
    assert_eq!(host["job_id"], job.as_str(), "{status:#}");
    assert_eq!(host["job_state"], "RUNNING", "{status:#}");
    assert!(
        host["tmux_version"].as_str().unwrap().starts_with("tmux"),
        "{status:#}"
    );
    let table = p.orch_ok(&["status"]);
    assert!(table.starts_with("HOST"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("gpu") && l.contains("far")),
        "{table}"
    );

    // A ping is typed into the pane through srun, and confirmed.
    assert!(
        wait_for(Duration::from_secs(20), || p
            .orch(&["send", "far", "hello from the test"])
            .status
            .success()),
        "orch send far never confirmed delivery"
    );

    // orch hosts: the job, its state and the srun round trip.
    let hosts: Value = serde_json::from_str(&p.orch_ok(&["hosts", "--json"])).unwrap();
    let gpu = &hosts["hosts"][0];
    assert_eq!(gpu["job_id"], job.as_str(), "{hosts:#}");
    assert_eq!(gpu["job_state"], "RUNNING", "{hosts:#}");
    assert!(gpu["latency_ms"].is_u64(), "{hosts:#}");
    assert_eq!(gpu["problems"].as_array().unwrap().len(), 0, "{hosts:#}");
    // The srun call latency, measured (printed for the record).
    let mut samples: Vec<u128> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let out = p
                .cluster
                .cmd("srun")
                .args([
                    &format!("--jobid={job}"),
                    "--overlap",
                    "--quiet",
                    "--",
                    "tmux",
                    "-L",
                    &p.socket,
                    "list-sessions",
                ])
                .output()
                .unwrap();
            assert!(out.status.success());
            t.elapsed().as_millis()
        })
        .collect();
    samples.sort();
    eprintln!(
        "srun --overlap tmux call: median {} ms, max {} ms",
        samples[5], samples[9]
    );

    p.orch_ok(&["down"]);
    assert!(
        wait_for(Duration::from_secs(15), || p
            .cluster
            .job_state(&job)
            .is_empty()),
        "down did not end job {job}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || !std::path::Path::new(&format!(
            "/proc/{server_pid}"
        ))
        .exists()),
        "the allocation's tmux server outlived its job"
    );
    assert!(p.job().is_empty(), "down left the job recorded");
}

#[test]
fn a_queued_allocation_shows_its_agents_as_starting() {
    let p = slurm_project!(r#"{ time = "10", begin = "now+1hour" }"#);
    let out = p
        .cmd(&["up", "far"])
        .env("ORCH_SLURM_WAIT", "2")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = p.job();
    assert!(
        text.contains(&format!("allocation {job} is queued")),
        "{text}"
    );
    assert!(text.contains("far waits for allocation"), "{text}");
    assert_eq!(p.cluster.job_state(&job), "PENDING");
    let status = p.status();
    assert_eq!(status["agents"][0]["state"], "starting", "{status:#}");
    assert_eq!(status["hosts"][0]["job_state"], "PENDING", "{status:#}");
    assert_eq!(status["hosts"][0]["reachable"], false, "{status:#}");
    let hosts = p.orch(&["hosts"]);
    let hosts_text = String::from_utf8_lossy(&hosts.stdout);
    assert!(hosts_text.contains("is PENDING (queued)"), "{hosts_text}");
}

#[test]
fn a_cancelled_job_is_replaced_by_a_new_allocation_and_its_agents_restarted() {
    let mut p = slurm_project!(r#"{ time = "10" }"#);
    p.orch_ok(&["up", "far"]);
    let first = p.job();
    assert!(p.node_has("t-far"));
    p.start_watchdog();
    let st = p.cluster.cmd("scancel").arg(&first).status().unwrap();
    assert!(st.success());
    let healed = wait_for(Duration::from_secs(60), || {
        let job = p.job();
        !job.is_empty() && job != first && p.node_has("t-far")
    });
    let wd_log = std::fs::read_to_string(p.root.path().join("watchdog.out")).unwrap_or_default();
    assert!(
        healed,
        "no new allocation with t-far in it; watchdog:\n{wd_log}\n{}",
        p.cluster.logs()
    );
    let second = p.job();
    let ended = p.events("slurm_job_ended");
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["job_id"], first.as_str());
    assert_eq!(ended[0]["agents"][0], "far");
    let allocated = p.events("slurm_allocated");
    assert!(
        allocated.iter().any(|e| e["job_id"] == second.as_str()
            && e["previous"] == first.as_str()
            && e["by"] == "watchdog"),
        "{allocated:?}"
    );
    assert!(
        wait_for(Duration::from_secs(20), || p.far_state() != "unreachable"
            && p.status()["agents"][0]["running"] == true),
        "far is not running again: {:#}",
        p.status()
    );
    assert!(!p.events("healed").is_empty(), "the restart was not a heal");
}

#[test]
fn the_walltime_warning_is_logged_and_the_end_of_the_walltime_is_healed() {
    // One minute of walltime: the USR1 warning (300 s before the end) comes at once.
    let mut p = slurm_project!(r#"{ time = "1" }"#);
    p.orch_ok(&["up", "far"]);
    let first = p.job();
    p.start_watchdog();
    let warned = wait_for(Duration::from_secs(60), || {
        !p.events("slurm_walltime_warning").is_empty()
    });
    assert!(warned, "no walltime warning: {}", p.cluster.logs());
    let warning = &p.events("slurm_walltime_warning")[0];
    assert_eq!(warning["job_id"], first.as_str());
    let replaced = wait_for(Duration::from_secs(150), || {
        let job = p.job();
        !job.is_empty() && job != first && p.node_has("t-far")
    });
    assert!(
        replaced,
        "the walltime's end was not healed: {}",
        p.cluster.logs()
    );
    let ended = p.events("slurm_job_ended");
    assert_eq!(ended[0]["job_id"], first.as_str(), "{ended:?}");
}
