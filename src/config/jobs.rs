//! `[jobs]` and `[profile.NAME]`: one-shot agent tasks (orch job): the raw keys, the typed
//! model, and the checks, with a warning for every key a profile's backend cannot honour.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::model::Backend;
use super::problem::Checker;
use super::raw::Seconds;
use super::schema::{Seg, UnknownKey};

pub(super) const JOBS_KEYS: &[&str] = &[
    "max_parallel",
    "timeout",
    "default_profile",
    "repo_cache",
    "keep_finished",
    "grace_period",
    "listen",
    "token_file",
];
pub(super) const PROFILE_KEYS: &[&str] = &[
    "backend",
    "model",
    "max_turns",
    "permission_mode",
    "append_prompt",
    "env",
    "auto_commit",
    "auto_pr",
    "pr_command",
    "timeout",
];

#[derive(Debug, Default, Deserialize)]
pub struct RawJobs {
    pub max_parallel: Option<usize>,
    pub timeout: Option<Seconds>,
    pub default_profile: Option<String>,
    pub repo_cache: Option<String>,
    pub keep_finished: Option<Seconds>,
    pub grace_period: Option<Seconds>,
    pub listen: Option<String>,
    pub token_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawProfile {
    pub backend: Option<String>,
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    pub permission_mode: Option<String>,
    pub append_prompt: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub auto_commit: Option<bool>,
    pub auto_pr: Option<bool>,
    pub pr_command: Option<Vec<String>>,
    pub timeout: Option<Seconds>,
}

/// `[jobs]`, typed.
#[derive(Debug, Clone)]
pub struct JobsCfg {
    /// How many jobs run at once (default 3).
    pub max_parallel: usize,
    /// A job's run-time limit unless the job or its profile sets one (default 2 h).
    pub timeout: Duration,
    /// The profile `orch job add` uses without `-p`.
    pub default_profile: String,
    /// Where URL repos are cloned once (bare), default `<log_dir>/repos`.
    pub repo_cache: PathBuf,
    /// `orch job clean` without `--older-than` removes finished jobs older than this (default 7 d).
    pub keep_finished: Duration,
    /// Between SIGTERM and SIGKILL of a job's process group (default 10 s).
    pub grace_period: Duration,
    /// An optional TCP listener (`127.0.0.1:8765`) serving the API with a token.
    pub listen: Option<String>,
    /// The token file (mode 0600) for the TCP listener.
    pub token_file: Option<PathBuf>,
}

/// `[profile.NAME]`, typed: how a job's agent runs.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// A backend of the config (or a built-in preset).
    pub backend: String,
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    pub permission_mode: Option<String>,
    pub append_prompt: Option<String>,
    /// Extra environment for the agent (values never logged).
    pub env: BTreeMap<String, String>,
    /// Commit what the agent left uncommitted after a successful run (default true).
    pub auto_commit: bool,
    /// Open a pull request after pushing (default true).
    pub auto_pr: bool,
    /// The PR command's argv with `{branch} {base} {title} {body_file}`; `None`: `gh pr create`.
    pub pr_command: Option<Vec<String>>,
    pub timeout: Option<Duration>,
}

/// The implicit profile used when the config names none.
pub const DEFAULT_PROFILE: &str = "default";

/// The backends profiles name (so validation builds them even when no agent uses them). The
/// implicit profile's backend counts only when the config has `[jobs]` or `[defaults].backend`:
/// a config without either builds no preset it does not use (a load stays fast).
pub(super) fn referenced_backends(
    profiles: &BTreeMap<String, RawProfile>,
    default_backend: Option<&str>,
    has_jobs_table: bool,
) -> Vec<String> {
    let mut out: Vec<String> = profiles
        .values()
        .filter_map(|p| p.backend.clone())
        .collect();
    if profiles.is_empty() && (has_jobs_table || default_backend.is_some()) {
        out.push(default_backend.unwrap_or("claude-code").to_string());
    }
    out
}

pub(super) fn build_jobs(
    c: &mut Checker<'_>,
    raw: Option<&RawJobs>,
    profiles: &BTreeMap<String, Profile>,
    project_dir: &Path,
    log_dir: &Path,
) -> JobsCfg {
    let empty = RawJobs::default();
    let j = raw.unwrap_or(&empty);
    let at = |key| [Seg::Key("jobs"), Seg::Key(key)];
    let max_parallel = j.max_parallel.unwrap_or(3);
    if max_parallel == 0 {
        c.error(
            &at("max_parallel"),
            "[jobs].max_parallel must be at least 1".into(),
        );
    }
    let default_profile = match &j.default_profile {
        Some(p) => {
            if !profiles.contains_key(p) {
                c.error(
                    &at("default_profile"),
                    format!(
                        "[jobs].default_profile {p:?} is not a [profile.NAME] (known: {})",
                        names(profiles)
                    ),
                );
            }
            p.clone()
        }
        None if profiles.len() == 1 => profiles.keys().next().cloned().unwrap_or_default(),
        None if profiles.contains_key(DEFAULT_PROFILE) || profiles.is_empty() => {
            DEFAULT_PROFILE.to_string()
        }
        None => {
            c.warn(
                &[Seg::Key("jobs")],
                format!(
                    "[jobs].default_profile is not set and there are several profiles ({}): `orch job add` will need -p",
                    names(profiles)
                ),
            );
            String::new()
        }
    };
    if let Some(listen) = &j.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            c.error(
                &at("listen"),
                format!("[jobs].listen {listen:?} is not an address such as \"127.0.0.1:8765\""),
            );
        } else if j.token_file.is_none() {
            c.error(
                &at("listen"),
                "[jobs].listen needs [jobs].token_file (a file of mode 0600 holding the API token)"
                    .into(),
            );
        }
    }
    JobsCfg {
        max_parallel: max_parallel.max(1),
        timeout: j.timeout.map_or(Duration::from_secs(7200), |s| s.0),
        default_profile,
        repo_cache: j
            .repo_cache
            .as_deref()
            .map_or_else(|| log_dir.join("repos"), |p| super::resolve(project_dir, p)),
        keep_finished: j
            .keep_finished
            .map_or(Duration::from_secs(7 * 86400), |s| s.0),
        grace_period: j.grace_period.map_or(Duration::from_secs(10), |s| s.0),
        listen: j.listen.clone(),
        token_file: j
            .token_file
            .as_deref()
            .map(|p| super::resolve(project_dir, p)),
    }
}

fn names(profiles: &BTreeMap<String, Profile>) -> String {
    let v: Vec<&str> = profiles.keys().map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Build every profile; with none configured, the implicit `default` profile on
/// `[defaults].backend` (or claude-code).
pub(super) fn build_profiles(
    c: &mut Checker<'_>,
    raw: &BTreeMap<String, RawProfile>,
    default_backend: Option<&str>,
    backends: &BTreeMap<String, Backend>,
) -> BTreeMap<String, Profile> {
    let mut out = BTreeMap::new();
    if raw.is_empty() {
        let backend = default_backend.unwrap_or("claude-code").to_string();
        if backends.contains_key(&backend) {
            out.insert(
                DEFAULT_PROFILE.to_string(),
                profile_with_defaults(DEFAULT_PROFILE, backend),
            );
        }
        return out;
    }
    for (name, p) in raw {
        let at = |key| [Seg::Key("profile"), Seg::Key(name), Seg::Key(key)];
        let who = format!("profile {name}");
        let backend = match p
            .backend
            .clone()
            .or_else(|| default_backend.map(String::from))
        {
            Some(b) => b,
            None => {
                c.error(
                    &[Seg::Key("profile"), Seg::Key(name)],
                    format!("{who}: backend is required (a [backend.NAME] or a preset such as claude-code)"),
                );
                continue;
            }
        };
        let Some(b) = backends.get(&backend) else {
            c.error(
                &at("backend"),
                format!(
                    "{who}: backend {backend:?} is neither a [backend.NAME] nor a built-in preset"
                ),
            );
            continue;
        };
        let form = b.preset.as_deref().unwrap_or("");
        let mut cannot = |key: &'static str, set: bool| {
            if set {
                c.warn(
                    &[Seg::Key("profile"), Seg::Key(name), Seg::Key(key)],
                    format!(
                        "{who}: backend {backend} ({}) cannot honour {key}; it is ignored",
                        if form.is_empty() {
                            "a plain command"
                        } else {
                            form
                        }
                    ),
                );
            }
        };
        cannot("max_turns", p.max_turns.is_some() && form != "claude-code");
        cannot(
            "permission_mode",
            p.permission_mode.is_some() && !matches!(form, "claude-code" | "codex" | "gemini-cli"),
        );
        cannot("model", p.model.is_some() && form.is_empty());
        if let Some(cmd) = &p.pr_command
            && cmd.first().is_none_or(|s| s.trim().is_empty())
        {
            c.error(
                &at("pr_command"),
                format!("{who}: pr_command must be an argv list whose first item is the program"),
            );
        }
        let mut prof = profile_with_defaults(name, backend);
        prof.model = p.model.clone().filter(|m| !m.is_empty());
        prof.max_turns = p.max_turns;
        prof.permission_mode = p.permission_mode.clone();
        prof.append_prompt = p.append_prompt.clone();
        prof.env = p.env.clone().unwrap_or_default();
        prof.auto_commit = p.auto_commit.unwrap_or(true);
        prof.auto_pr = p.auto_pr.unwrap_or(true);
        prof.pr_command = p.pr_command.clone();
        prof.timeout = p.timeout.map(|s| s.0);
        out.insert(name.clone(), prof);
    }
    out
}

fn profile_with_defaults(name: &str, backend: String) -> Profile {
    Profile {
        name: name.to_string(),
        backend,
        model: None,
        max_turns: None,
        permission_mode: None,
        append_prompt: None,
        env: BTreeMap::new(),
        auto_commit: true,
        auto_pr: true,
        pr_command: None,
        timeout: None,
    }
}

/// schema.rs's check of one table's keys against the known ones.
pub(super) type CheckTable = dyn Fn(&DeTable<'_>, &str, &[&'static str], &mut Vec<UnknownKey>);

/// Unknown keys under `[jobs]` and each `[profile.NAME]`.
pub(super) fn unknown_keys(
    key: &str,
    value: &DeValue<'_>,
    check: &CheckTable,
    out: &mut Vec<UnknownKey>,
) {
    match (key, value) {
        ("jobs", DeValue::Table(t)) => check(t, "jobs", JOBS_KEYS, out),
        ("profile", DeValue::Table(t)) => {
            for (name, p) in t {
                if let DeValue::Table(pt) = p.get_ref() {
                    check(
                        pt,
                        &format!("profile.{}", name.get_ref()),
                        PROFILE_KEYS,
                        out,
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{LoadOptions, load_str};

    const HEAD: &str = "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n";

    fn load(extra: &str, opts: LoadOptions) -> Result<crate::config::Loaded, String> {
        load_str(
            &format!("{HEAD}{extra}"),
            std::path::Path::new("/tmp/p/agents.toml"),
            opts,
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn without_jobs_tables_there_are_defaults_and_an_implicit_profile() {
        // No [jobs], no [defaults].backend, no agent: no preset is built, so no profile.
        let c = load("", LoadOptions::STRICT).unwrap().config;
        assert!(c.profiles.is_empty() && c.backends.is_empty());
        let c = load("[jobs]\n", LoadOptions::STRICT).unwrap().config;
        assert_eq!(c.jobs.max_parallel, 3);
        assert_eq!(c.jobs.default_profile, "default");
        assert_eq!(c.profiles["default"].backend, "claude-code");
        assert!(c.backends.contains_key("claude-code"));
        assert!(c.jobs.repo_cache.ends_with(".orch/repos"));
    }

    #[test]
    fn keys_a_backend_cannot_honour_are_warnings_not_dropped_silently() {
        let l = load(
            "[backend.mine]\nbin = \"my-agent\"\n[profile.a]\nbackend = \"codex\"\nmax_turns = 5\n[profile.b]\nbackend = \"mine\"\nmodel = \"x\"\npermission_mode = \"y\"\n[jobs]\ndefault_profile = \"a\"\n",
            LoadOptions::STRICT,
        )
        .unwrap();
        let w = l.warnings.join("\n");
        assert!(
            w.contains("profile a: backend codex (codex) cannot honour max_turns"),
            "{w}"
        );
        assert!(
            w.contains("profile b: backend mine (a plain command) cannot honour model"),
            "{w}"
        );
        assert!(w.contains("cannot honour permission_mode"), "{w}");
        // Placed at the key's line.
        assert!(w.contains("agents.toml:8:13: profile a"), "{w}");
    }

    #[test]
    fn bad_jobs_settings_are_errors_naming_the_key() {
        let e = load("[jobs]\nlisten = \"0.0.0.0:9\"\n", LoadOptions::STRICT).unwrap_err();
        assert!(e.contains("[jobs].listen needs [jobs].token_file"), "{e}");
        let e = load("[profile.a]\nbackend = \"nope\"\n", LoadOptions::STRICT).unwrap_err();
        assert!(e.contains("profile a: backend \"nope\" is neither"), "{e}");
        let e = load("[jobs]\nmax_parallel = 0\n", LoadOptions::STRICT).unwrap_err();
        assert!(e.contains("max_parallel must be at least 1"), "{e}");
        let e = load("[jobs]\ndefault_profile = \"zz\"\n", LoadOptions::STRICT).unwrap_err();
        assert!(e.contains("is not a [profile.NAME]"), "{e}");
    }

    #[test]
    fn unknown_keys_in_jobs_and_profiles_suggest_the_right_one() {
        let e = load(
            "[jobs]\nmax_paralel = 2\n[profile.a]\nbackend = \"codex\"\nauto_commmit = false\n",
            LoadOptions::STRICT,
        )
        .unwrap_err();
        assert!(
            e.contains("unknown key `jobs.max_paralel` (did you mean `max_parallel`?)"),
            "{e}"
        );
        assert!(
            e.contains("unknown key `profile.a.auto_commmit` (did you mean `auto_commit`?)"),
            "{e}"
        );
    }

    #[test]
    fn a_profile_takes_its_keys() {
        let c = load(
            "[profile.fast]\nbackend = \"claude-code\"\nmodel = \"haiku\"\nmax_turns = 9\nauto_pr = false\ntimeout = \"10m\"\npr_command = [\"hub\", \"{branch}\"]\nenv = { A = \"1\" }\n",
            LoadOptions::STRICT,
        )
        .unwrap()
        .config;
        let p = &c.profiles["fast"];
        assert_eq!(c.jobs.default_profile, "fast");
        assert_eq!(
            (p.model.as_deref(), p.max_turns, p.auto_pr),
            (Some("haiku"), Some(9), false)
        );
        assert_eq!(p.timeout, Some(std::time::Duration::from_secs(600)));
        assert_eq!(p.pr_command.as_deref().map(|v| v.len()), Some(2));
        assert_eq!(p.env["A"], "1");
    }
}
