//! `[pool.NAME]` and `pool = "NAME"`: which agents share one account (a usage limit on one holds
//! them all), the pool knobs, and the account key derived from a backend's login files.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::Value;

use super::problem::Checker;
use super::raw::{RawConfig, Seconds};
use super::schema::Seg;
use super::{Agent, Backend, Config};

/// `release_stagger` when a pool does not set it.
pub const DEFAULT_RELEASE_STAGGER: Duration = Duration::from_secs(30);
/// `probe_ladder` when a pool does not set it: the waits before probing again when no reset
/// time is known (the last step repeats).
pub const DEFAULT_PROBE_LADDER: [Duration; 3] = [
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
];

/// `[pool.NAME]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawPool {
    pub release_stagger: Option<Seconds>,
    pub reset_slack: Option<Seconds>,
    pub probe_ladder: Option<Vec<Seconds>>,
}

/// One pool's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    /// After a successful probe, the wait before releasing each further member.
    pub release_stagger: Duration,
    /// Added to a reset time read from a banner; `None`: `[watchdog].limit_reset_slack`.
    pub reset_slack: Option<Duration>,
    /// Waits before the next probe when no reset time is known (the last one repeats).
    pub probe_ladder: Vec<Duration>,
}

impl Pool {
    /// A pool with the default knobs (a derived pool, or `[pool.NAME]` with no keys).
    pub fn with_defaults(name: &str) -> Pool {
        Pool {
            name: name.to_string(),
            release_stagger: DEFAULT_RELEASE_STAGGER,
            reset_slack: None,
            probe_ladder: DEFAULT_PROBE_LADDER.to_vec(),
        }
    }
}

/// The declared pools and who is placed in one by `pool = "NAME"` (on the agent, or its
/// backend).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pools {
    pub declared: BTreeMap<String, Pool>,
    /// Agent name -> pool name, for agents placed explicitly.
    pub assigned: BTreeMap<String, String>,
}

/// A pool as the watchdog sees it: its knobs, its members (config order) and, for a pool
/// derived from an account, the key (a hash, never the account or a secret).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolMembers {
    pub pool: Pool,
    pub members: Vec<String>,
    pub key: Option<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

/// Build the `[pool.NAME]` tables and the explicit placements; every problem names its key.
pub(super) fn build_pools(c: &mut Checker<'_>, raw: &RawConfig, agents: &[Agent]) -> Pools {
    let mut pools = Pools::default();
    for (name, p) in &raw.pool {
        let at = |key| [Seg::Key("pool"), Seg::Key(name.as_str()), Seg::Key(key)];
        if !valid_name(name) {
            c.error(
                &[Seg::Key("pool"), Seg::Key(name.as_str())],
                format!(
                    "[pool.{name}]: a pool name may use only letters, digits, '-', '_' and '.'"
                ),
            );
            continue;
        }
        let mut pool = Pool::with_defaults(name);
        if let Some(s) = p.release_stagger {
            pool.release_stagger = s.0;
        }
        pool.reset_slack = p.reset_slack.map(|s| s.0);
        if let Some(ladder) = &p.probe_ladder {
            if ladder.is_empty() {
                c.error(
                    &at("probe_ladder"),
                    format!(
                        "[pool.{name}].probe_ladder is empty; give at least one wait, e.g. [\"15m\", \"30m\", \"60m\"]"
                    ),
                );
            } else if ladder.iter().any(|s| s.0.is_zero()) {
                c.error(
                    &at("probe_ladder"),
                    format!("[pool.{name}].probe_ladder: a wait of 0 would probe without pause"),
                );
            } else {
                pool.probe_ladder = ladder.iter().map(|s| s.0).collect();
            }
        }
        pools.declared.insert(name.clone(), pool);
    }
    let known = || {
        let names: Vec<&str> = pools.declared.keys().map(String::as_str).collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let mut by_backend: BTreeMap<&str, String> = BTreeMap::new();
    for (name, b) in &raw.backend {
        let Some(pool) = &b.pool else { continue };
        if !pools.declared.contains_key(pool) {
            let msg = format!(
                "backend {name}: pool {pool:?} is not declared; add a [pool.{pool}] table (declared: {})",
                known()
            );
            c.error(
                &[Seg::Key("backend"), Seg::Key(name), Seg::Key("pool")],
                msg,
            );
            continue;
        }
        by_backend.insert(name, pool.clone());
    }
    for (i, a) in raw.agent.iter().enumerate() {
        let Some(name) = a.name.as_deref() else {
            continue;
        };
        let Some(agent) = agents.iter().find(|x| x.name == name) else {
            continue;
        };
        match &a.pool {
            Some(pool) if !pools.declared.contains_key(pool) => {
                let msg = format!(
                    "agent {name}: pool {pool:?} is not declared; add a [pool.{pool}] table (declared: {})",
                    known()
                );
                c.error(&[Seg::Key("agent"), Seg::Index(i), Seg::Key("pool")], msg);
            }
            Some(pool) => {
                pools.assigned.insert(name.to_string(), pool.clone());
            }
            None => {
                if let Some(pool) = by_backend.get(agent.backend.as_str()) {
                    pools.assigned.insert(name.to_string(), pool.clone());
                }
            }
        }
    }
    pools
}

/// Where an agent's environment comes from: its `env`, its `secrets_dir` files, then orch's.
fn agent_env(agent: &Agent, key: &str) -> Option<String> {
    if let Some(v) = agent.env.get(key) {
        return Some(v.clone());
    }
    if let Some(dir) = &agent.secrets_dir
        && let Ok(v) = std::fs::read_to_string(dir.join(key))
    {
        return Some(v.trim().to_string());
    }
    std::env::var(key).ok()
}

fn read_json(path: &Path) -> Option<Value> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Account files read so far, by path, with the modification time they were read at: the
/// watchdog asks every tick, and `~/.claude.json` can be megabytes.
type AccountCache = BTreeMap<PathBuf, (Option<std::time::SystemTime>, Option<String>)>;
static ACCOUNTS: std::sync::LazyLock<std::sync::Mutex<AccountCache>> =
    std::sync::LazyLock::new(Default::default);

/// `pick` applied to the JSON file at `path`, re-read only when the file changed.
fn account_in(path: &Path, pick: fn(&Value) -> Option<String>) -> Option<String> {
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut cache = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, account)) = cache.get(path)
        && *at == mtime
        && mtime.is_some()
    {
        return account.clone();
    }
    let account = read_json(path).as_ref().and_then(pick);
    cache.insert(path.to_path_buf(), (mtime, account.clone()));
    account
}

fn claude_account(v: &Value) -> Option<String> {
    let a = v.get("oauthAccount")?;
    a.get("accountUuid")
        .or_else(|| a.get("emailAddress"))
        .and_then(Value::as_str)
        .map(String::from)
}

fn codex_account(v: &Value) -> Option<String> {
    v.pointer("/tokens/account_id")
        .or_else(|| v.get("OPENAI_API_KEY"))
        .and_then(Value::as_str)
        .map(String::from)
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The identity of the account `agent` runs under, as a text that is hashed at once (it may
/// hold an API key; it is never logged). `None`: orch cannot tell, the agent is in no derived
/// pool. Claude: `CLAUDE_CONFIG_DIR` (or `~`) `.claude.json` `oauthAccount`; Codex:
/// `CODEX_HOME/auth.json`; any backend: its API key variables.
fn account_identity(agent: &Agent, backend: &Backend) -> Option<String> {
    let env = |k: &str| agent_env(agent, k).filter(|v| !v.trim().is_empty());
    let family = backend
        .preset
        .clone()
        .unwrap_or_else(|| backend.name.clone());
    let mut parts: Vec<String> = Vec::new();
    match family.as_str() {
        "claude-code" | "claude" => {
            let dir = env("CLAUDE_CONFIG_DIR").map(PathBuf::from);
            let file = match &dir {
                Some(d) => Some(d.join(".claude.json")),
                None => home().map(|h| h.join(".claude.json")),
            };
            let account = file.as_deref().and_then(|f| account_in(f, claude_account));
            match account {
                Some(a) => parts.push(format!("account={a}")),
                None => parts.push(format!(
                    "home={}",
                    dir.or_else(|| home().map(|h| h.join(".claude")))?.display()
                )),
            }
        }
        "codex" => {
            let dir = env("CODEX_HOME")
                .map(PathBuf::from)
                .or_else(|| home().map(|h| h.join(".codex")))?;
            let account = account_in(&dir.join("auth.json"), codex_account);
            match account {
                Some(a) => parts.push(format!("account={a}")),
                None => parts.push(format!("home={}", dir.display())),
            }
        }
        _ => {}
    }
    for k in [
        "ANTHROPIC_API_KEY",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
    ] {
        if let Some(v) = env(k) {
            parts.push(format!("{k}={v}"));
        }
    }
    (!parts.is_empty()).then(|| format!("{family}\n{}", parts.join("\n")))
}

/// The account key of `identity`: md5, first 12 hex digits (enough to tell accounts apart,
/// nothing to recover a key from). Pure.
pub fn account_key(identity: &str) -> String {
    let digest = Md5::digest(identity.as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

impl Config {
    /// Every pool with its members: the explicit ones (`pool = "NAME"`, even with one member),
    /// then, for agents placed in none, one per backend and account key shared by two or more
    /// local agents (named `<backend>-<key>`). Reads the backends' account files.
    pub fn pool_members(&self) -> BTreeMap<String, PoolMembers> {
        let mut out: BTreeMap<String, PoolMembers> = BTreeMap::new();
        let mut derived: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for agent in &self.agents {
            if let Some(pool) = self.pools.assigned.get(&agent.name) {
                let settings = self
                    .pools
                    .declared
                    .get(pool)
                    .cloned()
                    .unwrap_or_else(|| Pool::with_defaults(pool));
                out.entry(pool.clone())
                    .or_insert_with(|| PoolMembers {
                        pool: settings,
                        members: Vec::new(),
                        key: None,
                    })
                    .members
                    .push(agent.name.clone());
                continue;
            }
            if agent.host.is_some() {
                continue;
            }
            let backend = self.backend_of(agent);
            if let Some(identity) = account_identity(agent, backend) {
                let name = format!("{}-{}", agent.backend, account_key(&identity));
                derived.entry(name).or_default().push(agent.name.clone());
            }
        }
        for (name, members) in derived {
            if members.len() < 2 || out.contains_key(&name) {
                continue;
            }
            let key = name.rsplit('-').next().map(String::from);
            out.insert(
                name.clone(),
                PoolMembers {
                    pool: Pool::with_defaults(&name),
                    members,
                    key,
                },
            );
        }
        out
    }

    /// The pool `agent` is in (as [`Config::pool_members`]).
    pub fn pool_of(&self, agent: &str) -> Option<PoolMembers> {
        self.pool_members()
            .into_values()
            .find(|p| p.members.iter().any(|m| m == agent))
    }
}

#[cfg(test)]
#[path = "pools_tests.rs"]
mod tests;
