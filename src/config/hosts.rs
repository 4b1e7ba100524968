//! `[host.NAME]`: other machines reached over ssh (the typed host, and the checks that an
//! agent or service names a declared host and a path that makes sense on it).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::problem::Checker;
use super::raw::RawHost;
use super::schema::Seg;

/// The name that means "this machine" (as does no `host` at all).
pub const LOCAL: &str = "local";

/// A machine reached over ssh, with its own tmux server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    /// What one would type after `ssh` (`alice@lab.example.org`, or a `~/.ssh/config` alias).
    pub ssh: String,
    /// Extra ssh arguments, before the destination.
    pub ssh_options: Vec<String>,
    /// The tmux server on that host (`tmux -L`); `None`: the config's `tmux_socket`.
    pub tmux_socket: Option<String>,
    /// orch on that host (for `bin = "orch sim"` and hooks).
    pub orch_bin: String,
    /// `transport = "slurm"`: the host is an allocation (`ssh` is then empty).
    pub slurm: Option<super::Slurm>,
    /// The ssh host where a SLURM host's commands run (`None`: this machine).
    pub via: Option<String>,
    /// `transport = "container"`: a container on this machine instead of ssh (`ssh` is empty).
    pub container: Option<super::containers::ContainerHost>,
}

impl super::Config {
    /// Where orch keeps the files of the agent or service `name` on its host (`<dir>/.orch`);
    /// `None` when it runs on this machine.
    pub fn host_dir_of(&self, name: &str) -> Option<PathBuf> {
        let (host, dir) = match self.agent(name) {
            Some(a) => (a.host.as_ref(), &a.dir),
            None => {
                let s = self.service(name)?;
                (s.host.as_ref(), &s.dir)
            }
        };
        host.map(|_| dir.join(".orch"))
    }

    /// The session log of the agent or service `name`, where it runs (on its host, a path
    /// there).
    pub fn log_of(&self, name: &str) -> PathBuf {
        let session = match self.service(name) {
            Some(s) if self.agent(name).is_none() => s.session.clone(),
            _ => self.session_of(name),
        };
        match self.host_dir_of(name) {
            Some(dir) => dir.join(format!("{session}.log")),
            None => self.session_log(&session),
        }
    }

    /// The kickoff file of `agent`, where it runs.
    pub fn kickoff_file_of(&self, agent: &super::Agent) -> PathBuf {
        match self.host_dir_of(&agent.name) {
            Some(dir) => dir.join(format!("kickoff-{}.txt", agent.session)),
            None => self.kickoff_file(&agent.session),
        }
    }
}

/// The typed `[host.NAME]` tables; a table without `ssh` (or named "local") is an error.
pub(super) fn build_hosts(
    c: &mut Checker<'_>,
    raw: &BTreeMap<String, RawHost>,
) -> BTreeMap<String, Host> {
    let mut hosts = BTreeMap::new();
    for (name, h) in raw {
        let at = |key| [Seg::Key("host"), Seg::Key(name.as_str()), Seg::Key(key)];
        if name == LOCAL {
            c.error(
                &[Seg::Key("host"), Seg::Key(name.as_str())],
                "[host.local] cannot be declared: \"local\" means this machine".into(),
            );
            continue;
        }
        let slurm = match h.transport.as_deref() {
            None | Some("ssh") => None,
            Some("slurm") => Some(super::slurm::build_slurm(c, name, h)),
            Some("container") => None,
            Some(other) => {
                c.error(
                    &at("transport"),
                    format!("host {name}: transport {other:?} is not one of ssh, slurm, container"),
                );
                continue;
            }
        };
        let container = super::containers::build(c, name, h);
        if h.transport.as_deref() == Some("container") {
            if container.is_none() {
                continue; // what is wrong was said by containers::build
            }
            if h.slurm.is_some() || h.via.is_some() {
                let key = if h.slurm.is_some() { "slurm" } else { "via" };
                c.error(
                    &at(key),
                    format!(
                        "host {name}: {key} applies to transport = \"slurm\" only (remove {key})"
                    ),
                );
            }
            hosts.insert(
                name.clone(),
                Host {
                    name: name.clone(),
                    ssh: String::new(),
                    ssh_options: Vec::new(),
                    tmux_socket: h.tmux_socket.clone().filter(|s| !s.is_empty()),
                    orch_bin: h
                        .orch_bin
                        .clone()
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "orch".into()),
                    slurm: None,
                    via: None,
                    container,
                },
            );
            continue;
        }
        if slurm.is_none() && (h.slurm.is_some() || h.via.is_some()) {
            let key = if h.slurm.is_some() { "slurm" } else { "via" };
            c.error(
                &at(key),
                format!("host {name}: {key} applies to transport = \"slurm\" only (add it, or remove {key})"),
            );
        }
        let ssh = h.ssh.clone().unwrap_or_default();
        if slurm.is_none() && ssh.trim().is_empty() {
            c.error(
                &[Seg::Key("host"), Seg::Key(name.as_str())],
                format!("host {name} has no ssh (e.g. ssh = \"alice@{name}.example.org\")"),
            );
            continue;
        }
        if ssh.starts_with('-') {
            c.error(
                &at("ssh"),
                format!(
                    "host {name}: ssh {ssh:?} must be a destination; put options in ssh_options"
                ),
            );
        }
        hosts.insert(
            name.clone(),
            Host {
                name: name.clone(),
                ssh,
                ssh_options: h.ssh_options.clone().unwrap_or_default(),
                tmux_socket: h.tmux_socket.clone().filter(|s| !s.is_empty()),
                orch_bin: h
                    .orch_bin
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "orch".into()),
                via: h.via.clone().filter(|v| !v.is_empty()),
                slurm,
                container: None,
            },
        );
    }
    super::slurm::check_via(c, &hosts);
    hosts
}

/// The host an agent or service names: `None` for this machine; an unknown host is an error
/// naming `who` and the host.
pub(super) fn host_of(
    c: &mut Checker<'_>,
    path: &[Seg<'_>],
    who: &str,
    host: Option<&str>,
    hosts: &BTreeMap<String, Host>,
) -> Option<String> {
    let name = host.filter(|h| !h.is_empty() && *h != LOCAL)?;
    if !hosts.contains_key(name) {
        let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
        let known = if known.is_empty() {
            "none declared".to_string()
        } else {
            known.join(", ")
        };
        c.error(
            path,
            format!("{who}: unknown host {name:?} (add a [host.{name}] table; known: {known})"),
        );
    }
    Some(name.to_string())
}

/// The working directory on a host: an absolute path as written (it is not a local path, so it
/// is not resolved against the project); anything else is an error naming `who`.
pub(super) fn remote_dir(
    c: &mut Checker<'_>,
    path: &[Seg<'_>],
    who: &str,
    host: &str,
    dir: Option<&str>,
) -> PathBuf {
    match dir {
        Some(d) if Path::new(d).is_absolute() => PathBuf::from(d),
        Some(d) => {
            c.error(
                path,
                format!(
                    "{who} runs on host {host}: dir {d:?} must be an absolute path on that host"
                ),
            );
            PathBuf::from("/")
        }
        None => {
            c.error(
                path,
                format!("{who} runs on host {host} and needs a dir: an absolute path on that host"),
            );
            PathBuf::from("/")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{LoadOptions, load_str};

    const HEAD: &str =
        "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[backend.b]\nbin = \"true\"\n";

    fn load(body: &str) -> Result<crate::config::Config, String> {
        let text = format!("{HEAD}{body}");
        load_str(&text, Path::new("/p/agents.toml"), LoadOptions::STRICT)
            .map(|l| l.config)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn host_tables_and_agent_hosts_load() {
        let cfg = load(
            "[host.lab]\nssh = \"alice@lab\"\nssh_options = [\"-p\", \"2222\"]\ntmux_socket = \"s\"\n\
             [[agent]]\nname = \"a\"\nbackend = \"b\"\nhost = \"lab\"\ndir = \"/srv/a\"\n\
             [[agent]]\nname = \"l\"\nbackend = \"b\"\nhost = \"local\"\n\
             [[service]]\nname = \"web\"\ncommand = \"true\"\nhost = \"lab\"\ndir = \"/srv\"\n",
        )
        .unwrap();
        let lab = &cfg.hosts["lab"];
        assert_eq!(lab.ssh, "alice@lab");
        assert_eq!(lab.ssh_options, ["-p", "2222"]);
        assert_eq!(lab.tmux_socket.as_deref(), Some("s"));
        assert_eq!(lab.orch_bin, "orch");
        assert_eq!(cfg.agents[0].host.as_deref(), Some("lab"));
        assert_eq!(cfg.agents[0].dir, Path::new("/srv/a"));
        assert_eq!(cfg.agents[1].host, None, "\"local\" is this machine");
        assert_eq!(cfg.services[0].host.as_deref(), Some("lab"));
        assert_eq!(cfg.host_of("a").map(|h| h.name.as_str()), Some("lab"));
        assert!(cfg.host_of("l").is_none());
    }

    #[test]
    fn an_unknown_host_is_an_error_naming_agent_host_and_place() {
        let err =
            load("[[agent]]\nname = \"adv\"\nbackend = \"b\"\nhost = \"lab\"\ndir = \"/x\"\n")
                .unwrap_err();
        assert!(
            err.contains("agents.toml:9:8: agent adv: unknown host \"lab\""),
            "{err}"
        );
        let err =
            load("[[service]]\nname = \"w\"\ncommand = \"x\"\nhost = \"gpu\"\ndir = \"/x\"\n")
                .unwrap_err();
        assert!(err.contains("service w: unknown host \"gpu\""), "{err}");
    }

    #[test]
    fn a_remote_agent_needs_an_absolute_dir_and_a_host_needs_ssh() {
        let err = load("[host.lab]\nssh = \"lab\"\n[[agent]]\nname = \"a\"\nbackend = \"b\"\nhost = \"lab\"\ndir = \"rel\"\n")
            .unwrap_err();
        assert!(
            err.contains("must be an absolute path on that host"),
            "{err}"
        );
        let err = load("[host.lab]\nssh_options = []\n").unwrap_err();
        assert!(err.contains("host lab has no ssh"), "{err}");
        let err = load("[host.lab]\nssh = \"x\"\nsh = 1\n").unwrap_err();
        assert!(err.contains("host.lab.sh"), "{err}");
    }
}
