//! The supervision keys of an agent (secrets_dir, files, worktree, grace_period, timeout,
//! restart and its backoff), merged from `[defaults]` and checked, each problem with a span.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::super::model::{HealBounds, Restart, RestartPolicy, resolve};
use super::super::raw::{RawAgentKeys, Seconds};
use super::super::schema::Seg;
use super::{Checker, dur, secs};

/// The supervision keys of one agent (issue 8), built together.
pub(super) struct PolicyKeys {
    pub(super) secrets_dir: Option<PathBuf>,
    pub(super) files: BTreeMap<String, PathBuf>,
    pub(super) worktree: bool,
    pub(super) grace_period: Duration,
    pub(super) timeout: Option<Duration>,
    pub(super) restart: Option<RestartPolicy>,
    pub(super) heal: HealBounds,
}

pub(super) fn build_policy(
    c: &mut Checker<'_>,
    i: usize,
    who: &str,
    k: &RawAgentKeys,
    d: &RawAgentKeys,
    project_dir: &Path,
    checked_secrets: &mut BTreeSet<PathBuf>,
) -> PolicyKeys {
    let at = |key| [Seg::Key("agent"), Seg::Index(i), Seg::Key(key)];
    let secrets_dir = k
        .secrets_dir
        .as_deref()
        .or(d.secrets_dir.as_deref())
        .filter(|s| !s.is_empty())
        .map(|s| resolve(project_dir, s));
    if let Some(dir) = secrets_dir.as_ref()
        && checked_secrets.insert(dir.clone())
        && let Err(why) = crate::secrets::check_dir(dir)
    {
        c.error(&at("secrets_dir"), format!("{who}: {why}"));
    }
    let mut files = BTreeMap::new();
    let raw_files = d.files.iter().chain(k.files.iter()).flatten();
    for (dest, src) in raw_files {
        let p = Path::new(dest);
        let escapes = p.is_absolute()
            || dest.is_empty()
            || p.components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if escapes {
            c.error(
                &at("files"),
                format!("{who}: files destination {dest:?} must be a relative path inside the agent's dir (no '..')"),
            );
            continue;
        }
        let source = resolve(project_dir, src);
        if !source.is_file() {
            c.error(
                &at("files"),
                format!(
                    "{who}: files source {} (for {dest}) does not exist",
                    source.display()
                ),
            );
        }
        files.insert(dest.clone(), source);
    }
    let restart = match k.restart.as_deref().or(d.restart.as_deref()) {
        None => None,
        Some(text) => {
            let mode = match text {
                "no" => Restart::No,
                "on-failure" => Restart::OnFailure,
                "always" => Restart::Always,
                other => {
                    c.error(
                        &at("restart"),
                        format!("{who}: restart {other:?} is not one of no, on-failure, always"),
                    );
                    Restart::No
                }
            };
            let pick = |a: &Option<Seconds>, b: &Option<Seconds>, n| dur(&a.or(*b), secs(n));
            let backoff = pick(&k.restart_backoff, &d.restart_backoff, 10);
            let backoff_max = pick(&k.restart_backoff_max, &d.restart_backoff_max, 300);
            if backoff_max < backoff {
                c.error(
                    &at("restart_backoff_max"),
                    format!("{who}: restart_backoff_max ({backoff_max:?}) is less than restart_backoff ({backoff:?})"),
                );
            }
            Some(RestartPolicy {
                mode,
                max_restarts: k.max_restarts.or(d.max_restarts).unwrap_or(5),
                backoff,
                backoff_max,
                reset_after: pick(&k.restart_reset_after, &d.restart_reset_after, 600),
            })
        }
    };
    // Healing (gone, stall, fatal, mismatch, refusal) is bounded by the same keys, with or
    // without a `restart` policy.
    let pick = |a: &Option<Seconds>, b: &Option<Seconds>, n| dur(&a.or(*b), secs(n));
    let heal = HealBounds {
        max: k.max_restarts.or(d.max_restarts).unwrap_or(5),
        backoff: pick(&k.restart_backoff, &d.restart_backoff, 10),
        backoff_max: pick(&k.restart_backoff_max, &d.restart_backoff_max, 300),
        window: pick(&k.restart_reset_after, &d.restart_reset_after, 600),
    };
    PolicyKeys {
        heal,
        secrets_dir,
        files,
        worktree: k.worktree.or(d.worktree).unwrap_or(false),
        grace_period: dur(&k.grace_period.or(d.grace_period), secs(30)),
        timeout: k
            .timeout
            .or(d.timeout)
            .map(|s| s.0)
            .filter(|t| !t.is_zero()),
        restart,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{LoadOptions, Restart, load_str};

    fn load(extra: &str) -> crate::Result<crate::config::Config> {
        let text = format!(
            "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\ngrace_period = \"5s\"\n[backend.b]\nbin = \"true\"\n[[agent]]\nname = \"a\"\nbackend = \"b\"\n{extra}\n"
        );
        load_str(&text, Path::new("/tmp/agents.toml"), LoadOptions::STRICT).map(|l| l.config)
    }

    #[test]
    fn policy_keys_take_durations_as_text_or_seconds_and_defaults() {
        let cfg = load(
            "timeout = \"2h\"\nrestart = \"on-failure\"\nrestart_backoff = 3\nmax_restarts = 0",
        )
        .unwrap();
        let a = &cfg.agents[0];
        assert_eq!(a.timeout, Some(std::time::Duration::from_secs(7200)));
        assert_eq!(a.grace_period, std::time::Duration::from_secs(5));
        let r = a.restart.as_ref().unwrap();
        assert_eq!(r.mode, Restart::OnFailure);
        assert_eq!(r.max_restarts, 0);
        assert_eq!(r.backoff, std::time::Duration::from_secs(3));
        let plain = load("").unwrap();
        assert!(
            plain.agents[0].restart.is_none(),
            "unset keeps today's healing"
        );
        assert!(plain.agents[0].timeout.is_none());
    }

    #[test]
    fn bad_policy_values_are_errors_naming_the_agent() {
        let err = load("restart = \"sometimes\"").unwrap_err().to_string();
        assert!(err.contains("agent a: restart \"sometimes\""), "{err}");
        let err = load("files = { \"../x\" = \"y\" }")
            .unwrap_err()
            .to_string();
        assert!(err.contains("files destination \"../x\""), "{err}");
        let err = load("restart = \"always\"\nrestart_backoff = 60\nrestart_backoff_max = 10")
            .unwrap_err()
            .to_string();
        assert!(err.contains("restart_backoff_max"), "{err}");
    }
}
