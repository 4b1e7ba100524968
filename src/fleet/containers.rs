//! Container hosts in the fleet: the container each `[host.NAME]` with `transport = "container"`
//! runs in (named after the session prefix), made before a session starts there, removed by down.
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Host};
use crate::transport::{ContainerPlace, ContainerSpec, PlaceError};
use crate::{Error, Result};

/// The container's name: the session prefix and the host's name, in the characters engines
/// accept (`[A-Za-z0-9][A-Za-z0-9_.-]*`).
pub fn container_name(cfg: &Config, host: &Host) -> String {
    let raw = format!("{}{}", cfg.session_prefix, host.name);
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name.insert(0, 'o');
    }
    name
}

/// How to make and reach `host`'s container (`None`: not a container host).
pub fn container_spec(cfg: &Config, host: &Host) -> Option<ContainerSpec> {
    let ct = host.container.as_ref()?;
    Some(ContainerSpec {
        name: host.name.clone(),
        engine: ct.engine.clone(),
        image: ct.image.clone(),
        options: ct.options.clone(),
        volumes: ct.volumes(),
        container: container_name(cfg, host),
        state_dir: cfg.log_dir.join("containers"),
    })
}

/// The shared place of a container host.
pub fn place(cfg: &Config, host: &Host) -> Option<Arc<ContainerPlace>> {
    container_spec(cfg, host).map(ContainerPlace::shared)
}

/// Makes sure the container of `host` (if it is a container host) runs before a session starts
/// there: one that stopped or was removed is made anew (healing goes through here too).
pub fn ensure_running(cfg: &Config, host: Option<&str>) -> Result<()> {
    let Some(h) = host.and_then(|h| cfg.hosts.get(h)) else {
        return Ok(());
    };
    let Some(place) = place(cfg, h) else {
        return Ok(());
    };
    for (local, _) in h.container.iter().flat_map(|c| &c.dirs) {
        if !local.is_dir() {
            return Err(Error::Config(format!(
                "host {}: the dir {} to mount in its container does not exist (create it, or fix `dir`)",
                h.name,
                local.display()
            )));
        }
    }
    match place.ensure_running(call_timeout()) {
        Ok(true) => {
            tracing::info!(host = %h.name, "started container {}", place.spec().container);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(Error::Runtime(format!(
            "cannot start the container of host {}: {e}",
            h.name
        ))),
    }
}

/// How long one look at a container may take: `ORCH_SSH_TIMEOUT` (seconds), as for every
/// call to a host, else 10 s. Making one has its own, longer deadline.
fn call_timeout() -> Duration {
    std::env::var(crate::tmux::REMOTE_TIMEOUT_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .map_or(Duration::from_secs(10), Duration::from_secs_f64)
}

/// Stops and removes every container host's container (for a full `down`); the errors, one
/// sentence each (an engine that is not installed has nothing to remove).
pub fn remove_all(cfg: &Config) -> Vec<PlaceError> {
    let places: Vec<Arc<ContainerPlace>> =
        cfg.hosts.values().filter_map(|h| place(cfg, h)).collect();
    std::thread::scope(|scope| {
        let jobs: Vec<_> = places
            .iter()
            .map(|p| scope.spawn(move || p.remove()))
            .collect();
        jobs.into_iter()
            .filter_map(|j| j.join().ok())
            .filter_map(|r| r.err())
            // No engine here: no container of ours either.
            .filter(|e| !matches!(e, PlaceError::Spawn { .. }))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{LoadOptions, load_str};

    #[test]
    fn the_container_is_named_after_the_session_prefix_in_characters_engines_take() {
        let text = "[defaults]\nsession_prefix = \"my proj:\"\nlog_dir = \".orch\"\n\
                    [host.box]\ntransport = \"container\"\nimage = \"i\"\n";
        let cfg = load_str(text, Path::new("/p/agents.toml"), LoadOptions::STRICT)
            .unwrap()
            .config;
        assert_eq!(
            super::container_name(&cfg, &cfg.hosts["box"]),
            "my-proj-box"
        );
        let spec = super::container_spec(&cfg, &cfg.hosts["box"]).unwrap();
        assert_eq!(spec.state_dir, Path::new("/p/.orch/containers"));
        assert_eq!(spec.engine, "podman");
    }
}
