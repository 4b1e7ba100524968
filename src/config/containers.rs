//! `[host.NAME]` with `transport = "container"`: the engine, image, run options and mounts of
//! one long-lived container, and where each agent's dir (on this machine) appears inside it.
use std::path::{Path, PathBuf};

use super::problem::Checker;
use super::raw::RawHost;
use super::schema::Seg;

/// The engines orch drives (same CLI for what orch uses: run, exec, inspect, stop, rm).
pub const ENGINES: &[&str] = &["podman", "docker"];
/// The mounts of a container host that names none: each agent's dir at the same path inside.
pub const DEFAULT_MOUNT: &str = "{dir}:{dir}";

/// A container host: agents run in one container made from `image` on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerHost {
    /// `podman` or `docker`.
    pub engine: String,
    pub image: String,
    /// Extra `run` options, as written.
    pub options: Vec<String>,
    /// `SRC:DST[:OPTS]` as written; `{dir}` stands for each agent's (or service's) dir.
    pub mounts: Vec<String>,
    /// Each dir placed in the container: (on this machine, inside), in config order.
    pub dirs: Vec<(PathBuf, PathBuf)>,
}

impl ContainerHost {
    /// The `-v` values: entries with `{dir}` once per dir, the others once as written.
    pub fn volumes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.mounts {
            if m.contains("{dir}") {
                for (local, _) in &self.dirs {
                    let v = m.replace("{dir}", &local.display().to_string());
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
            } else if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    /// Where `local` (an agent's dir here) appears inside the container: the target of the
    /// first mount whose source is `{dir}`.
    fn inside(&self, local: &Path) -> Option<PathBuf> {
        self.mounts.iter().find_map(|m| {
            let (src, rest) = m.split_once(':')?;
            let dst = rest.split(':').next()?;
            (src == "{dir}")
                .then(|| PathBuf::from(dst.replace("{dir}", &local.display().to_string())))
        })
    }
}

/// The container part of `[host.NAME]` (`None` unless `transport = "container"`); problems
/// name host and key.
pub(super) fn build(c: &mut Checker<'_>, name: &str, h: &RawHost) -> Option<ContainerHost> {
    let at = |key| [Seg::Key("host"), Seg::Key(name), Seg::Key(key)];
    // Other transports (and a misspelt one) are checked where hosts are built.
    if h.transport.as_deref() != Some("container") {
        for (key, set) in [
            ("engine", h.engine.is_some()),
            ("image", h.image.is_some()),
            ("options", h.options.is_some()),
            ("mounts", h.mounts.is_some()),
        ] {
            if set {
                c.error(
                    &at(key),
                    format!("host {name}: {key} applies to transport = \"container\" only"),
                );
            }
        }
        return None;
    }
    for (key, set) in [
        ("ssh", h.ssh.is_some()),
        ("ssh_options", h.ssh_options.is_some()),
    ] {
        if set {
            c.error(
                &at(key),
                format!(
                    "host {name}: a container host takes no {key} (its engine runs on this machine)"
                ),
            );
        }
    }
    let engine = h.engine.clone().unwrap_or_else(|| "podman".into());
    if !ENGINES.contains(&engine.as_str()) {
        c.error(
            &at("engine"),
            format!("host {name}: engine {engine:?} must be podman or docker"),
        );
    }
    let image = h.image.clone().unwrap_or_default();
    if image.trim().is_empty() {
        c.error(
            &[Seg::Key("host"), Seg::Key(name)],
            format!(
                "host {name}: transport = \"container\" needs an image (e.g. image = \"localhost/agent:latest\")"
            ),
        );
    }
    let mounts = h
        .mounts
        .clone()
        .unwrap_or_else(|| vec![DEFAULT_MOUNT.to_string()]);
    for (i, m) in mounts.iter().enumerate() {
        if let Some(why) = mount_problem(m) {
            c.error(
                &[
                    Seg::Key("host"),
                    Seg::Key(name),
                    Seg::Key("mounts"),
                    Seg::Index(i),
                ],
                format!("host {name}: mount {m:?} {why}"),
            );
        }
    }
    if !mounts.iter().any(|m| m.starts_with("{dir}:")) {
        c.error(
            &at("mounts"),
            format!(
                "host {name}: mounts must place the agents' dirs in the container (add \"{{dir}}:/workspace\" or \"{DEFAULT_MOUNT}\")"
            ),
        );
    }
    Some(ContainerHost {
        engine,
        image,
        options: h.options.clone().unwrap_or_default(),
        mounts,
        dirs: Vec::new(),
    })
}

/// Why a mount is not `SRC:DST[:OPTS]` with an absolute DST, if it is not.
fn mount_problem(m: &str) -> Option<&'static str> {
    let mut parts = m.split(':');
    let src = parts.next().unwrap_or("");
    let Some(dst) = parts.next() else {
        return Some("must be SOURCE:TARGET[:OPTIONS] (e.g. \"{dir}:/workspace\")");
    };
    if src.is_empty() {
        return Some("has no source");
    }
    if parts.count() > 1 {
        return Some("has more than SOURCE:TARGET:OPTIONS");
    }
    if !dst.starts_with('/') && !dst.starts_with("{dir}") {
        return Some("needs an absolute target path inside the container");
    }
    None
}

/// Places the dir of `who` (resolved on this machine) in the container of `host`; returns the
/// path inside, where its session runs. Two dirs at one place inside is an error.
pub(super) fn place_dir(
    c: &mut Checker<'_>,
    path: &[Seg<'_>],
    who: &str,
    host_name: &str,
    host: &mut ContainerHost,
    local: &Path,
) -> PathBuf {
    // `/p/./a` reads as `/p/a` (a path the engine and the messages show as written).
    let local: PathBuf = local.components().collect();
    let local = local.as_path();
    let Some(inside) = host.inside(local) else {
        return local.to_path_buf();
    };
    if let Some((other, _)) = host
        .dirs
        .iter()
        .find(|(l, i)| i == &inside && l.as_path() != local)
    {
        c.error(
            path,
            format!(
                "{who}: its dir {} and {} would both be {} in the container of host {host_name}; \
                 give them one dir, or use a target with {{dir}} in mounts (e.g. \"{DEFAULT_MOUNT}\")",
                local.display(),
                other.display(),
                inside.display()
            ),
        );
    }
    if !host.dirs.iter().any(|(l, _)| l.as_path() == local) {
        host.dirs.push((local.to_path_buf(), inside.clone()));
    }
    inside
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
    fn a_container_host_mounts_each_agent_dir_and_runs_it_inside() {
        let cfg = load(
            "[host.box]\ntransport = \"container\"\nengine = \"podman\"\nimage = \"localhost/agent:latest\"\n\
             options = [\"--network\", \"none\"]\nmounts = [\"{dir}:/workspace\", \"cache:/root/.cache\"]\n\
             [[agent]]\nname = \"adv\"\nbackend = \"b\"\nhost = \"box\"\ndir = \"adv\"\n",
        )
        .unwrap();
        let ct = cfg.hosts["box"].container.as_ref().unwrap();
        assert_eq!(ct.engine, "podman");
        assert_eq!(ct.image, "localhost/agent:latest");
        assert_eq!(ct.options, ["--network", "none"]);
        assert_eq!(ct.volumes(), ["/p/adv:/workspace", "cache:/root/.cache"]);
        assert_eq!(
            cfg.agents[0].dir,
            Path::new("/workspace"),
            "runs in the mount"
        );
        assert_eq!(cfg.hosts["box"].ssh, "");
    }

    #[test]
    fn without_mounts_each_dir_keeps_its_path_inside() {
        let cfg = load(
            "[host.box]\ntransport = \"container\"\nimage = \"i\"\n\
             [[agent]]\nname = \"a\"\nbackend = \"b\"\nhost = \"box\"\ndir = \"/srv/a\"\n\
             [[agent]]\nname = \"c\"\nbackend = \"b\"\nhost = \"box\"\ndir = \"/srv/c\"\n",
        )
        .unwrap();
        let ct = cfg.hosts["box"].container.as_ref().unwrap();
        assert_eq!(ct.engine, "podman", "the default engine");
        assert_eq!(ct.volumes(), ["/srv/a:/srv/a", "/srv/c:/srv/c"]);
        assert_eq!(cfg.agents[1].dir, Path::new("/srv/c"));
    }

    #[test]
    fn container_config_errors_name_the_host_and_the_key() {
        let err = load("[host.box]\ntransport = \"container\"\n").unwrap_err();
        assert!(
            err.contains("host box: transport = \"container\" needs an image"),
            "{err}"
        );
        let err = load("[host.box]\ntransport = \"kube\"\nimage = \"i\"\n").unwrap_err();
        assert!(
            err.contains("agents.toml:7:13: host box: transport \"kube\" is not one of"),
            "{err}"
        );
        let err = load("[host.box]\ntransport = \"container\"\nimage = \"i\"\nengine = \"lxc\"\n")
            .unwrap_err();
        assert!(
            err.contains("host box: engine \"lxc\" must be podman or docker"),
            "{err}"
        );
        let err = load(
            "[host.box]\ntransport = \"container\"\nimage = \"i\"\nmounts = [\"/data\", \"{dir}:rel\"]\n",
        )
        .unwrap_err();
        assert!(
            err.contains("mount \"/data\" must be SOURCE:TARGET"),
            "{err}"
        );
        assert!(
            err.contains("mount \"{dir}:rel\" needs an absolute target"),
            "{err}"
        );
        let err = load("[host.box]\ntransport = \"container\"\nimage = \"i\"\nssh = \"x\"\n")
            .unwrap_err();
        assert!(
            err.contains("host box: a container host takes no ssh"),
            "{err}"
        );
        let err = load("[host.lab]\nssh = \"lab\"\nimage = \"i\"\n").unwrap_err();
        assert!(
            err.contains("host lab: image applies to transport = \"container\" only"),
            "{err}"
        );
        let err = load(
            "[host.box]\ntransport = \"container\"\nimage = \"i\"\nmounts = [\"{dir}:/w\"]\n\
             [[agent]]\nname = \"a\"\nbackend = \"b\"\nhost = \"box\"\ndir = \"/x\"\n\
             [[agent]]\nname = \"c\"\nbackend = \"b\"\nhost = \"box\"\ndir = \"/y\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains(
                "agent c: its dir /y and /x would both be /w in the container of host box"
            ),
            "{err}"
        );
    }
}
