//! `transport = "slurm"` hosts: the allocation spec of each (from the config), getting one
//! for `up` (waiting a bounded time for it to run), and cancelling it for `down`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{Config, Host};
use crate::transport::slurm::{JobRecord, JobState, SlurmSpec};
use crate::transport::{Place, SshPlace};

/// How long one sbatch/squeue/scancel call may take (`ORCH_SSH_TIMEOUT` overrides, as for
/// every call to a host).
pub fn call_timeout() -> Duration {
    std::env::var(crate::tmux::REMOTE_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

/// How long `up` waits for a new allocation to run (`ORCH_SLURM_WAIT`, seconds; default 60)
/// before leaving its agents to the watchdog.
pub const WAIT_ENV: &str = "ORCH_SLURM_WAIT";

/// The allocation spec of `host`; `None` for a host that is not `transport = "slurm"`.
pub fn spec(cfg: &Config, host: &Host) -> Option<SlurmSpec> {
    let slurm = host.slurm.as_ref()?;
    let via: Option<Arc<dyn Place>> = host
        .via
        .as_ref()
        .and_then(|v| cfg.hosts.get(v))
        .map(|v| SshPlace::shared(super::hosts::ssh_spec(cfg, v)) as Arc<dyn Place>);
    let job_name = format!("{}{}", cfg.session_prefix, host.name);
    let work_dir = if via.is_some() {
        format!(".orch-slurm/{job_name}")
    } else {
        cfg.log_dir
            .join("slurm")
            .join(&host.name)
            .display()
            .to_string()
    };
    Some(SlurmSpec {
        name: host.name.clone(),
        options: slurm.options.clone(),
        socket: host
            .tmux_socket
            .clone()
            .unwrap_or_else(|| format!("orch-slurm-{job_name}")),
        job_name,
        job_file: cfg.state_dir.join(format!("slurm-{}.json", host.name)),
        work_dir,
        via,
    })
}

/// Every SLURM host's spec, in config order.
pub fn specs(cfg: &Config) -> Vec<SlurmSpec> {
    cfg.hosts.values().filter_map(|h| spec(cfg, h)).collect()
}

/// Submits a new allocation for `spec` and records it (replacing `previous`); logs
/// `slurm_allocated`. Under a lock on the job file: when another orch (`up`, the watchdog)
/// replaced `previous` meanwhile, its job is the answer and nothing is submitted.
pub fn allocate(
    cfg: &Config,
    spec: &SlurmSpec,
    previous: Option<&str>,
    by: &str,
) -> Result<String, String> {
    let lock_path = spec.job_file.with_extension("lock");
    if let Some(dir) = lock_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    let current = spec.load().map(|r| r.job_id);
    if let Some(current) = current.filter(|c| Some(c.as_str()) != previous) {
        return Ok(current);
    }
    let job = spec.submit(call_timeout())?;
    let record = JobRecord {
        job_id: job.clone(),
        state: "PENDING".into(),
        submitted_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        warned: false,
    };
    spec.save(&record).map_err(|e| e.to_string())?;
    super::log_event(
        cfg,
        crate::events::SLURM_ALLOCATED,
        json!({ "host": spec.name, "job_id": job, "previous": previous, "by": by }),
    );
    Ok(job)
}

/// Records `state` as the job's last known state (when it changed).
pub fn note_state(spec: &SlurmSpec, record: &mut JobRecord, state: &JobState) {
    if record.state != state.label() {
        record.state = state.label().to_string();
        if let Err(e) = spec.save(record) {
            tracing::warn!("cannot record the job state of host {}: {e}", spec.name);
        }
    }
}

/// For `up`: makes sure `spec` has a live allocation (a new one when it has none or its job
/// ended), then waits up to `ORCH_SLURM_WAIT` for its tmux server to answer. `Ok(false)`: the
/// job is still queued (the watchdog starts the agents once it runs).
pub fn ensure_allocation(cfg: &Config, spec: &SlurmSpec) -> Result<bool, String> {
    let timeout = call_timeout();
    let mut record = match spec.load() {
        Some(mut r) => match spec.query(&r.job_id, timeout) {
            Ok((JobState::Ended(state), _)) => {
                note_state(spec, &mut r, &JobState::Ended(state));
                None
            }
            Ok((state, _)) => {
                note_state(spec, &mut r, &state);
                Some(r)
            }
            Err(e) => return Err(format!("cannot ask SLURM about host {}: {e}", spec.name)),
        },
        None => None,
    };
    if record.is_none() {
        let previous = spec.load().map(|r| r.job_id);
        allocate(cfg, spec, previous.as_deref(), "up")?;
        record = spec.load();
    }
    let Some(mut record) = record else {
        return Err(format!("cannot record the job of host {}", spec.name));
    };
    let wait = std::env::var(WAIT_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64);
    let deadline = Instant::now() + wait;
    let place = spec.place();
    let probe: Vec<String> = vec![
        "tmux".into(),
        "-u".into(),
        "-L".into(),
        spec.socket.clone(),
        "list-sessions".into(),
    ];
    let mut pause = Duration::from_millis(100);
    loop {
        match spec.query(&record.job_id, timeout) {
            Ok((JobState::Ended(state), _)) => {
                note_state(spec, &mut record, &JobState::Ended(state.clone()));
                return Err(format!(
                    "the allocation {} of host {} ended at once ({state}); see {}/orch-slurm-{}.out",
                    record.job_id, spec.name, spec.work_dir, record.job_id
                ));
            }
            Ok((state, _)) => {
                note_state(spec, &mut record, &state);
                if state == JobState::Running && place.probe(&probe, None, timeout).is_ok() {
                    return Ok(true);
                }
            }
            Err(e) => tracing::debug!("squeue for host {}: {e}", spec.name),
        }
        if Instant::now() + pause > deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// For `down`: cancels every SLURM host's job and forgets it.
pub fn cancel_all(cfg: &Config) -> Vec<String> {
    let mut errors = Vec::new();
    for spec in specs(cfg) {
        let Some(record) = spec.load() else { continue };
        match spec.cancel(&record.job_id, call_timeout()) {
            Ok(()) => {
                println!(
                    "cancelled allocation {} of host {}",
                    record.job_id, spec.name
                );
                spec.forget();
            }
            Err(e) => errors.push(e),
        }
    }
    errors
}
