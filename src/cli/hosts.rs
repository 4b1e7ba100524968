//! `orch hosts [--json]`: check every `[host.NAME]` (ssh reachable, tmux and its version,
//! orch_bin and its version, round trip) and say what to fix, one sentence per problem.
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{Config, Host};
use crate::transport::SshPlace;
use crate::{Result, fleet};

mod container;

/// How long each check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// Prints `tmux -V`, then orch_bin's version, on separate tagged lines.
pub(super) const CHECK_SCRIPT: &str = r#"printf 'tmux:%s\n' "$(tmux -V 2>/dev/null)"; printf 'orch:%s\n' "$("$1" --version 2>/dev/null | head -n 1)""#;

#[derive(Debug, Serialize)]
pub struct HostCheck {
    pub name: String,
    pub ssh: String,
    pub reachable: bool,
    /// One round trip on the open connection, in milliseconds.
    pub latency_ms: Option<u64>,
    pub tmux_version: Option<String>,
    pub orch_bin: String,
    pub orch_version: Option<String>,
    /// What to fix, one sentence each (empty: the host is ready).
    pub problems: Vec<String>,
    /// A SLURM host's job and its state (absent for ssh hosts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_state: Option<String>,
    /// A container host: its engine, image and container (absent for ssh hosts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<container::ContainerCheck>,
}

pub fn run(cfg: &Config, json: bool) -> Result<ExitCode> {
    let checks: Vec<HostCheck> = std::thread::scope(|scope| {
        let jobs: Vec<_> = cfg
            .hosts
            .values()
            .map(|h| scope.spawn(move || check(cfg, h)))
            .collect();
        jobs.into_iter()
            .zip(cfg.hosts.values())
            .map(|(j, h)| {
                j.join()
                    .unwrap_or_else(|_| failed(h, "the check panicked".into()))
            })
            .collect()
    });
    let ok = checks.iter().all(|c| c.problems.is_empty());
    if json {
        let text = serde_json::to_string(&serde_json::json!({ "hosts": checks }))
            .map_err(|e| crate::Error::Runtime(format!("cannot encode the hosts: {e}")))?;
        println!("{text}");
    } else if checks.is_empty() {
        println!(
            "no [host.NAME] in {}: every agent runs on this machine",
            cfg.path.display()
        );
    } else {
        for c in &checks {
            let rt = c.latency_ms.map_or("-".into(), |ms| format!("{ms} ms"));
            let tmux = c.tmux_version.as_deref().unwrap_or("no tmux");
            let orch = c.orch_version.as_deref().unwrap_or("no orch");
            let verdict = if c.problems.is_empty() {
                "ok"
            } else {
                "PROBLEM"
            };
            let at = match &c.container {
                Some(ct) => format!("{} {}", ct.engine, ct.image),
                None => c.ssh.clone(),
            };
            println!(
                "{:<12} {verdict:<8} {at:<28} rt {rt:<8} {tmux:<10} {orch}",
                c.name
            );
            for p in &c.problems {
                println!("  - {p}");
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) fn failed(h: &Host, problem: String) -> HostCheck {
    HostCheck {
        name: h.name.clone(),
        ssh: h.ssh.clone(),
        reachable: false,
        latency_ms: None,
        tmux_version: None,
        orch_bin: h.orch_bin.clone(),
        orch_version: None,
        problems: vec![problem],
        job_id: None,
        job_state: None,
        container: None,
    }
}

/// One host: the check script, then one bare round trip on the now open connection.
fn check(cfg: &Config, h: &Host) -> HostCheck {
    if let Some(spec) = fleet::slurm::spec(cfg, h) {
        return super::hosts_slurm::check(h, &spec);
    }
    if h.container.is_some() {
        return container::check(cfg, h);
    }
    let place = SshPlace::shared(fleet::hosts::ssh_spec(cfg, h));
    let argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        CHECK_SCRIPT.into(),
        "orch-check".into(),
        h.orch_bin.clone(),
    ];
    let out = match place.probe(&argv, None, CHECK_TIMEOUT) {
        Ok(out) => out,
        Err(e) => {
            return failed(
                h,
                format!(
                    "{e}; check that `ssh {} {}` logs in without a password prompt (BatchMode) and that the host is up",
                    h.ssh_options.join(" "),
                    h.ssh
                ),
            );
        }
    };
    let start = Instant::now();
    let latency = place
        .probe(&["true".to_string()], None, CHECK_TIMEOUT)
        .ok()
        .map(|_| u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
    let field = |tag: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(tag))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    let mut c = failed(h, String::new());
    c.problems.clear();
    c.reachable = true;
    c.latency_ms = latency;
    c.tmux_version = field("tmux:");
    c.orch_version = field("orch:");
    tool_problems(h, &mut c);
    c
}

/// What is missing from a host that answered (tmux, orch_bin).
pub(super) fn tool_problems(h: &Host, c: &mut HostCheck) {
    if c.tmux_version.is_none() {
        c.problems.push(format!(
            "tmux is not installed on host {} (or not on the PATH of a non-interactive ssh session): install tmux 3.2 or newer there",
            h.name
        ));
    }
    if c.orch_version.is_none() {
        c.problems.push(format!(
            "orch_bin {:?} does not run on host {}: install orch there or set orch_bin in [host.{}] to its full path (needed only for `bin = \"orch ...\"` backends and hooks)",
            h.orch_bin, h.name, h.name
        ));
    }
}
