//! `orch up` on `transport = "slurm"` hosts: an allocation for each host that an agent or
//! service being started lives on, waited for a bounded time before its sessions start.
use std::collections::HashMap;

use crate::config::Config;
use crate::fleet::slurm;
use crate::{Error, Result};

/// Makes sure every SLURM host in use has a live allocation; the hosts whose job is still
/// queued (host → job id), or the first host whose allocation failed.
pub fn allocate(cfg: &Config, names: &[String]) -> Result<HashMap<String, String>> {
    let wanted = |n: &str, enabled: bool| {
        if names.is_empty() {
            enabled
        } else {
            names.iter().any(|x| x == n)
        }
    };
    let mut used: Vec<&str> = cfg
        .agents
        .iter()
        .filter(|a| wanted(&a.name, a.enabled))
        .filter_map(|a| a.host.as_deref())
        .collect();
    used.extend(
        cfg.services
            .iter()
            .filter(|s| wanted(&s.name, s.enabled))
            .filter_map(|s| s.host.as_deref()),
    );
    let mut queued = HashMap::new();
    for host in cfg
        .hosts
        .values()
        .filter(|h| used.contains(&h.name.as_str()))
    {
        let Some(spec) = slurm::spec(cfg, host) else {
            continue;
        };
        match slurm::ensure_allocation(cfg, &spec) {
            Ok(running) => {
                let job = spec.load().map(|r| r.job_id).unwrap_or_default();
                if running {
                    println!("host {}: allocation {job} is running", host.name);
                } else {
                    println!("host {}: allocation {job} is queued", host.name);
                    queued.insert(host.name.clone(), job);
                }
            }
            Err(e) => return Err(Error::Runtime(e)),
        }
    }
    Ok(queued)
}
