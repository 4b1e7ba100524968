//! A private single-node SLURM for the slurm tests: its own munge key and socket, slurmctld and
//! slurmd on free ports with state in a temp dir, every daemon stopped by its pid at the end.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{TempDir, wait_for};

pub struct Cluster {
    pub dir: TempDir,
    pub conf: PathBuf,
    pub node: String,
}

/// Why no SLURM can run here, if it cannot (the test prints it and returns).
pub fn unavailable() -> Option<String> {
    for bin in [
        "/usr/sbin/slurmctld",
        "/usr/sbin/slurmd",
        "/usr/sbin/munged",
    ] {
        if !Path::new(bin).exists() {
            return Some(format!(
                "no {bin} (install slurmctld slurmd slurm-client munge; .ci/run does)"
            ));
        }
    }
    if Command::new("sbatch").arg("--version").output().is_err() {
        return Some("no sbatch (install slurm-client)".into());
    }
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Some("not root (the private slurmd runs jobs as root)".into());
    }
    None
}

/// The project of `$slurm` on a fresh private SLURM, or the calling test skipped (with one
/// message) when SLURM is not installed or its daemons cannot start here.
#[macro_export]
macro_rules! slurm_project {
    ($slurm:expr) => {{
        let project = match $crate::slurm::cluster::unavailable() {
            Some(why) => Err(why),
            None => $crate::slurm::SlurmProject::new($slurm),
        };
        match project {
            Ok(p) => p,
            Err(why) => {
                eprintln!("SKIPPED: slurm tests need a private single-node SLURM: {why}");
                return;
            }
        }
    }};
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Starts munged, slurmctld and slurmd; why not, when one of them cannot start here.
    pub fn start() -> Result<Cluster, String> {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let node = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
            .to_string();
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        {
            use std::os::unix::fs::PermissionsExt;
            // munged refuses a socket dir others cannot enter, and clients must reach it.
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(d.join("munge"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            let mut key = vec![0u8; 1024];
            {
                use std::io::Read;
                std::fs::File::open("/dev/urandom")
                    .unwrap()
                    .read_exact(&mut key)
                    .unwrap();
            }
            std::fs::write(d.join("munge/key"), key).unwrap();
            std::fs::set_permissions(d.join("munge/key"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        let m = d.join("munge");
        let conf = d.join("slurm.conf");
        let cluster = Cluster { dir, conf, node };
        let node = cluster.node.clone();
        let d = cluster.dir.path();
        let st = Command::new("/usr/sbin/munged")
            .arg(format!("--key-file={}", m.join("key").display()))
            .arg(format!("--socket={}", m.join("sock").display()))
            .arg(format!("--pid-file={}", m.join("pid").display()))
            .arg(format!("--log-file={}", m.join("log").display()))
            .arg(format!("--seed-file={}", m.join("seed").display()))
            .arg("--force")
            .status()
            .unwrap();
        if !st.success() {
            return Err("munged did not start".into());
        }
        // Distinct job ids per test: the cgroup paths of concurrent clusters never meet.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.subsec_nanos());
        let first_job = 10_000 + ((nanos ^ std::process::id()) % 500_000) * 100;
        let text = format!(
            "ClusterName=orchtest\n\
             SlurmctldHost={node}(127.0.0.1)\n\
             SlurmctldPort={ctld}\n\
             SlurmdPort={slurmd}\n\
             SlurmUser=root\nSlurmdUser=root\n\
             AuthType=auth/munge\nCredType=cred/munge\n\
             AuthInfo=socket={sock}\n\
             StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
             ProctrackType=proctrack/cgroup\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
             MailProg=/bin/true\nKillWait=2\nReturnToService=2\nFirstJobId={first_job}\n\
             NodeName={node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n\
             PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4\n",
            ctld = free_port(),
            slurmd = free_port(),
            sock = m.join("sock").display(),
            d = d.display(),
        );
        std::fs::write(&cluster.conf, text).unwrap();
        std::fs::write(
            d.join("cgroup.conf"),
            "CgroupPlugin=autodetect\nConstrainCores=no\nConstrainRAMSpace=no\n",
        )
        .unwrap();
        let st = cluster
            .cmd("/usr/sbin/slurmctld")
            .arg("-i")
            .status()
            .unwrap();
        if !st.success() {
            return Err(format!("slurmctld did not start: {}", cluster.logs()));
        }
        let st = cluster
            .cmd("/usr/sbin/slurmd")
            .args(["-N", &cluster.node])
            .status()
            .unwrap();
        if !st.success() {
            return Err(format!("slurmd did not start: {}", cluster.logs()));
        }
        let idle = wait_for(Duration::from_secs(30), || {
            let out = cluster.run("sinfo", &["-h", "-o", "%t"]);
            String::from_utf8_lossy(&out.stdout).contains("idle")
        });
        if !idle {
            return Err(format!("the node never became idle: {}", cluster.logs()));
        }
        Ok(cluster)
    }

    /// A command with this cluster's `SLURM_CONF`.
    pub fn cmd(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", &self.conf);
        cmd
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.cmd(program).args(args).output().unwrap()
    }

    /// `squeue -h -j J -o %T` (empty once the job is over).
    pub fn job_state(&self, job: &str) -> String {
        let out = self.run("squeue", &["-h", "-j", job, "-o", "%T"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn logs(&self) -> String {
        let read = |p: &str| std::fs::read_to_string(self.dir.path().join(p)).unwrap_or_default();
        format!(
            "--- slurmctld\n{}\n--- slurmd\n{}",
            tail(&read("log/slurmctld.log")),
            tail(&read("log/slurmd.log"))
        )
    }

    fn pid(&self, file: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Our jobs first (their processes go with them), then our daemons, by pid.
        let out = self.run("squeue", &["-h", "-o", "%i"]);
        for job in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.run("scancel", &[job]);
        }
        let _ = wait_for(Duration::from_secs(10), || {
            let out = self.run("squeue", &["-h", "-o", "%i"]);
            out.stdout.is_empty()
        });
        for file in ["slurmd.pid", "slurmctld.pid", "munge/pid"] {
            let Some(pid) = self.pid(file) else { continue };
            // SAFETY: signalling a daemon this test started (its pid file is in our temp dir).
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let gone = wait_for(Duration::from_secs(5), || {
                !Path::new(&format!("/proc/{pid}")).exists()
                    || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s.contains(") Z"))
            });
            if !gone {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}
