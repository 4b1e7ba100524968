//! `transport = "slurm"` on a `[host.NAME]`: the sbatch options of the host's allocation, and
//! `via`, the ssh host where sbatch, squeue, srun and scancel run (default: this machine).
use std::collections::BTreeMap;

use super::hosts::Host;
use super::problem::Checker;
use super::raw::RawHost;
use super::schema::Seg;

/// sbatch options orch passes itself, which a `slurm` table cannot set.
const RESERVED: &[&str] = &["parsable", "wrap", "hold"];

/// The allocation of a SLURM host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slurm {
    /// sbatch options from the `slurm` table, `--key=value` (`--key` for `true`), by key.
    pub options: Vec<String>,
}

/// The `slurm` table of host `name` as sbatch options; a bad key or value is an error naming
/// the host and the key.
pub(super) fn build_slurm(c: &mut Checker<'_>, name: &str, h: &RawHost) -> Slurm {
    let mut options = Vec::new();
    for (key, value) in h.slurm.iter().flatten() {
        let at = [
            Seg::Key("host"),
            Seg::Key(name),
            Seg::Key("slurm"),
            Seg::Key(key.as_str()),
        ];
        let flag = key.replace('_', "-");
        let word = !flag.is_empty()
            && flag.starts_with(|ch: char| ch.is_ascii_lowercase())
            && flag
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !word {
            c.error(
                &at,
                format!("host {name}: slurm option {key:?} is not an sbatch option name (e.g. partition, time, gres)"),
            );
            continue;
        }
        if RESERVED.contains(&flag.as_str()) {
            c.error(
                &at,
                format!("host {name}: slurm option {key:?} is set by orch and cannot be given"),
            );
            continue;
        }
        match value {
            toml::Value::String(s) if !s.contains(['\n', '\r', '\0']) => {
                options.push(format!("--{flag}={s}"));
            }
            toml::Value::Integer(n) => options.push(format!("--{flag}={n}")),
            toml::Value::Boolean(true) => options.push(format!("--{flag}")),
            toml::Value::Boolean(false) => {}
            _ => c.error(
                &at,
                format!(
                    "host {name}: slurm option {key:?} must be a one-line string, a number or true"
                ),
            ),
        }
    }
    Slurm { options }
}

/// Every `via` names a declared host reached over ssh.
pub(super) fn check_via(c: &mut Checker<'_>, hosts: &BTreeMap<String, Host>) {
    for h in hosts.values() {
        let Some(via) = &h.via else { continue };
        let at = [Seg::Key("host"), Seg::Key(h.name.as_str()), Seg::Key("via")];
        match hosts.get(via) {
            Some(v) if v.slurm.is_none() && !v.ssh.is_empty() => {}
            Some(_) => c.error(
                &at,
                format!("host {}: via {via:?} must be a host reached over ssh", h.name),
            ),
            None => c.error(
                &at,
                format!(
                    "host {}: via {via:?} is not a declared host (add a [host.{via}] table with ssh)",
                    h.name
                ),
            ),
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
    fn a_slurm_host_loads_its_sbatch_options_and_via() {
        let cfg = load(
            "[host.login1]\nssh = \"alice@login1\"\n\
             [host.gpu]\ntransport = \"slurm\"\nvia = \"login1\"\n\
             slurm = { partition = \"gpu\", time = \"24:00:00\", gres = \"gpu:1\", cpus_per_task = 4, exclusive = true }\n\
             [[agent]]\nname = \"a\"\nbackend = \"b\"\nhost = \"gpu\"\ndir = \"/srv/a\"\n",
        )
        .unwrap();
        let gpu = &cfg.hosts["gpu"];
        let slurm = gpu.slurm.as_ref().unwrap();
        assert_eq!(
            slurm.options,
            [
                "--cpus-per-task=4",
                "--exclusive",
                "--gres=gpu:1",
                "--partition=gpu",
                "--time=24:00:00"
            ]
        );
        assert_eq!(gpu.via.as_deref(), Some("login1"));
        assert!(cfg.hosts["login1"].slurm.is_none());
    }

    #[test]
    fn bad_slurm_hosts_are_errors_naming_host_and_key() {
        let err = load("[host.gpu]\ntransport = \"slurm\"\nvia = \"nope\"\n").unwrap_err();
        assert!(
            err.contains("host gpu: via \"nope\" is not a declared host"),
            "{err}"
        );
        let err =
            load("[host.gpu]\ntransport = \"slurm\"\nslurm = { \"--x\" = \"1\" }\n").unwrap_err();
        assert!(err.contains("is not an sbatch option name"), "{err}");
        let err =
            load("[host.gpu]\ntransport = \"slurm\"\nslurm = { wrap = \"x\" }\n").unwrap_err();
        assert!(err.contains("is set by orch"), "{err}");
        let err =
            load("[host.gpu]\ntransport = \"slurm\"\nslurm = { time = \"1\\n2\" }\n").unwrap_err();
        assert!(err.contains("one-line string"), "{err}");
        let err = load("[host.gpu]\ntransport = \"warp\"\n").unwrap_err();
        assert!(err.contains("host gpu: transport \"warp\""), "{err}");
        let err =
            load("[host.a]\ntransport = \"slurm\"\n[host.b]\ntransport = \"slurm\"\nvia = \"a\"\n")
                .unwrap_err();
        assert!(err.contains("must be a host reached over ssh"), "{err}");
        let err = load("[host.a]\nssh = \"a\"\nvia = \"a\"\n").unwrap_err();
        assert!(
            err.contains("host a: via applies to transport = \"slurm\" only"),
            "{err}"
        );
        let err = load("[host.a]\nssh = \"a\"\nslurm = { time = \"1\" }\n").unwrap_err();
        assert!(err.contains("host a: slurm applies to"), "{err}");
    }
}
