//! Agents on other hosts: the tmux handle that routes each session to its host, and the
//! files an agent needs made on its host (kickoff, workspace files) over the ssh channel.
use crate::backend::LaunchPlan;
use crate::config::{Agent, Config, Host};
use crate::tmux::{HostPlace, Tmux};
use crate::transport::{SshPlace, SshSpec};
use crate::{Error, Result, workspace};

/// The handle on this config's servers: the local one, and each `[host.NAME]`'s (its
/// `tmux_socket`, else the local socket name) for the agents and services placed there.
pub fn routed(cfg: &Config, local: Tmux) -> Tmux {
    if cfg.hosts.is_empty() {
        return local;
    }
    let hosts = cfg
        .hosts
        .values()
        .map(|h| {
            let on_host = |host: &Option<String>| host.as_deref() == Some(h.name.as_str());
            let mut sessions: Vec<String> = cfg
                .agents
                .iter()
                .filter(|a| on_host(&a.host))
                .map(|a| a.session.clone())
                .collect();
            sessions.extend(
                cfg.services
                    .iter()
                    .filter(|s| on_host(&s.host))
                    .map(|s| s.session.clone()),
            );
            let place: std::sync::Arc<dyn crate::transport::Place> =
                match (super::slurm::spec(cfg, h), super::containers::place(cfg, h)) {
                    (Some(slurm), _) => std::sync::Arc::new(slurm.place()),
                    (None, Some(container)) => container,
                    (None, None) => SshPlace::shared(ssh_spec(cfg, h)),
                };
            let socket = match super::slurm::spec(cfg, h) {
                Some(slurm) => Some(slurm.socket),
                None => h
                    .tmux_socket
                    .clone()
                    .or_else(|| local.socket().map(String::from)),
            };
            HostPlace {
                place,
                socket,
                sessions,
            }
        })
        .collect();
    local.with_hosts(hosts)
}

/// How to reach `host` (its control socket under `<log_dir>/ssh`).
pub fn ssh_spec(cfg: &Config, host: &Host) -> SshSpec {
    SshSpec {
        name: host.name.clone(),
        dest: host.ssh.clone(),
        options: host.ssh_options.clone(),
        control_dir: cfg.log_dir.join("ssh"),
    }
}

/// Makes what a remote agent needs on its host before its session starts: its workspace
/// files (interpolated here, sent over stdin) and its kickoff file.
pub fn prepare_on_host(tmux: &Tmux, agent: &Agent, plan: &LaunchPlan) -> Result<()> {
    let failed = |what: &str, e: crate::tmux::TmuxError| {
        Error::Runtime(format!(
            "agent {}: cannot write {what} on its host: {e}",
            agent.name
        ))
    };
    for (dest, source) in &agent.files {
        let text = std::fs::read_to_string(source)
            .map_err(|e| Error::io(source, "reading a workspace file", e))?;
        let body = workspace::interpolate(&text, &plan.env, agent);
        tmux.put_file(&agent.session, &agent.dir.join(dest), body.as_bytes())
            .map_err(|e| failed(dest, e))?;
    }
    tmux.put_file(&agent.session, &plan.kickoff_file, plan.kickoff.as_bytes())
        .map_err(|e| failed("the kickoff file", e))
}
