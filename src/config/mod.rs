//! Loading agents.toml: read, parse (with spans), build the typed model, and report every
//! problem as `file:line:col: message`. The schema itself is in DESIGN.md and `schema.rs`.
mod containers;
mod hosts;
mod jobs;
mod model;
mod paths;
mod pools;
mod presets;
mod problem;
mod raw;
mod schema;
mod slurm;
mod validate;

use std::path::{Path, PathBuf};

pub use containers::ContainerHost;
pub use hosts::{Host, LOCAL};
pub use jobs::{DEFAULT_PROFILE, JobsCfg, Profile};
pub use model::*;
pub use paths::{PathProblems, check_paths};
pub use pools::{
    DEFAULT_PROBE_LADDER, DEFAULT_RELEASE_STAGGER, Pool, PoolMembers, Pools, account_key,
};
pub use problem::Problem;
pub use raw::parse_duration;
pub use slurm::Slurm;
pub use validate::{DEFAULT_NOTIFY_EVENTS, DEFAULT_NOTIFY_TIMEOUT};

use crate::{Error, Result};

/// How strict a load is about keys the schema does not know.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Unknown keys are errors (`validate`) rather than warnings (`up`, `watchdog`).
    pub strict: bool,
    /// Apply `AGENT_MODEL_<name>` / `AGENT_BACKEND_<name>` (one invocation only).
    pub env_overrides: bool,
}

impl LoadOptions {
    pub const STRICT: LoadOptions = LoadOptions {
        strict: true,
        env_overrides: true,
    };
    pub const LENIENT: LoadOptions = LoadOptions {
        strict: false,
        env_overrides: true,
    };
    /// The watchdog: lenient, and the file is authoritative (no env overrides).
    pub const WATCHDOG: LoadOptions = LoadOptions {
        strict: false,
        env_overrides: false,
    };
}

/// A loaded config and the warnings found on the way (already rendered with file:line:col).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

/// Load and validate the config at `path`. Nothing is written to disk.
pub fn load(path: &Path, opts: LoadOptions) -> Result<Loaded> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read config {}: {e}", path.display())))?;
    load_str(&text, path, opts)
}

/// Load a config from text; `path` names the file in messages and anchors relative paths.
pub fn load_str(text: &str, path: &Path, opts: LoadOptions) -> Result<Loaded> {
    load_str_with_env(text, path, opts, &|k| std::env::var(k).ok())
}

/// `load_str` with the environment given as a lookup function (tests use a fixed one).
pub fn load_str_with_env(
    text: &str,
    path: &Path,
    opts: LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded> {
    let shown = path.display().to_string();
    let at = |span: Option<std::ops::Range<usize>>, message: &str| match span {
        Some(s) => {
            let (line, col) = schema::line_col(text, s.start);
            format!("{shown}:{line}:{col}: {message}")
        }
        None => format!("{shown}: {message}"),
    };
    let doc = toml::de::DeTable::parse(text).map_err(|e| {
        Error::Config(at(
            e.span(),
            &format!("invalid TOML: {}", e.message().trim()),
        ))
    })?;
    let mut raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
        let key = e
            .span()
            .and_then(|s| schema::path_at(doc.get_ref(), s.start));
        let message = match key {
            Some(key) => format!("{key}: {}", e.message().trim()),
            None => e.message().trim().to_string(),
        };
        Error::Config(at(e.span(), &message))
    })?;
    raw.with_presets(text)
        .map_err(|e| Error::Config(format!("{shown}: {e}")))?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| PathBuf::from(path));
    let built = validate::build(
        raw,
        doc.get_ref(),
        &absolute,
        opts.env_overrides.then_some(env),
    );

    let mut errors: Vec<String> = built
        .errors
        .iter()
        .map(|p| at(p.span.clone(), &p.message))
        .collect();
    let mut warnings: Vec<String> = built
        .warnings
        .iter()
        .map(|p| at(p.span.clone(), &p.message))
        .collect();
    for k in schema::unknown_keys(doc.get_ref()) {
        let hint = k
            .suggestion
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        let line = at(Some(k.span), &format!("unknown key `{}`{hint}", k.path));
        if opts.strict {
            errors.push(line)
        } else {
            warnings.push(line)
        }
    }
    match built.config {
        Some(config) if errors.is_empty() => Ok(Loaded { config, warnings }),
        _ => {
            errors.sort_by_key(|l| location_key(l));
            Err(Error::Config(errors.join("\n")))
        }
    }
}

/// Sort problems by their line, then column, so they read top to bottom.
fn location_key(line: &str) -> (usize, usize) {
    let mut parts = line.splitn(4, ':').skip(1);
    let n = |p: Option<&str>| p.and_then(|s| s.parse().ok()).unwrap_or(0);
    (n(parts.next()), n(parts.next()))
}
