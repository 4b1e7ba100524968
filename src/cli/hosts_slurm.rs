//! `orch hosts` on a `transport = "slurm"` host: the SLURM tools (here or on `via`), the job
//! and its state, and through a running job tmux, orch and the srun round trip.
use std::time::{Duration, Instant};

use super::hosts::{CHECK_SCRIPT, HostCheck, failed, tool_problems};
use crate::config::Host;
use crate::transport::Place;
use crate::transport::slurm::{JobState, SlurmSpec};

const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// Prints the SLURM tools that are missing, one a line.
const TOOLS_SCRIPT: &str =
    r#"for t in sbatch squeue srun scancel; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done"#;

pub fn check(h: &Host, spec: &SlurmSpec) -> HostCheck {
    let mut c = failed(h, String::new());
    c.problems.clear();
    c.ssh = match &h.via {
        Some(via) => format!("slurm via {via}"),
        None => "slurm".into(),
    };
    let control =
        crate::transport::WrapPlace::new(&h.name, || Ok(Vec::new())).via(spec.via.clone());
    let argv: Vec<String> = ["sh", "-c", TOOLS_SCRIPT, "orch-check"]
        .map(String::from)
        .into();
    let where_ = h
        .via
        .as_deref()
        .map_or("this machine".to_string(), |v| format!("host {v}"));
    match control.probe(&argv, None, CHECK_TIMEOUT) {
        Ok(out) => {
            let missing: Vec<&str> = out.stdout.split_whitespace().collect();
            if !missing.is_empty() {
                c.problems.push(format!(
                    "{} not found on {where_}: install the SLURM client tools (slurm-client) there, or set via to a login node",
                    missing.join(", ")
                ));
                return c;
            }
        }
        Err(e) => {
            c.problems.push(format!("{e}; check host {where_} first"));
            return c;
        }
    }
    let Some(mut record) = spec.load() else {
        c.reachable = true;
        c.problems.push(format!(
            "host {} has no allocation: `orch up` requests one (sbatch {})",
            h.name,
            spec.options.join(" ")
        ));
        return c;
    };
    c.job_id = Some(record.job_id.clone());
    let state = match spec.query(&record.job_id, CHECK_TIMEOUT) {
        Ok((state, _)) => state,
        Err(e) => {
            c.problems.push(e.to_string());
            return c;
        }
    };
    crate::fleet::slurm::note_state(spec, &mut record, &state);
    c.job_state = Some(state.label().to_string());
    c.reachable = true;
    match state {
        JobState::Pending(s) => {
            c.problems.push(format!(
                "allocation {} of host {} is {s} (queued): its agents start once it runs",
                record.job_id, h.name
            ));
            return c;
        }
        JobState::Ended(_) => {
            c.problems.push(format!(
                "allocation {} of host {} has ended: the watchdog requests a new one (or run `orch up`)",
                record.job_id, h.name
            ));
            return c;
        }
        JobState::Running => {}
    }
    let place = spec.place();
    let argv: Vec<String> = ["sh", "-c", CHECK_SCRIPT, "orch-check", &h.orch_bin]
        .map(String::from)
        .into();
    let out = match place.probe(&argv, None, CHECK_TIMEOUT) {
        Ok(out) => out,
        Err(e) => {
            c.reachable = false;
            c.problems.push(e.to_string());
            return c;
        }
    };
    let start = Instant::now();
    c.latency_ms = place
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
    c.tmux_version = field("tmux:");
    c.orch_version = field("orch:");
    tool_problems(h, &mut c);
    c
}
