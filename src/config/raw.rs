//! The serde mirror of agents.toml: every key optional, exactly as the user wrote it.
//! `validate.rs` turns this into the typed model; `schema.rs` knows which keys exist.
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub watchdog: RawWatchdog,
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub backend: BTreeMap<String, RawBackend>,
    #[serde(default)]
    pub agent: Vec<RawAgent>,
    #[serde(default)]
    pub service: Vec<RawService>,
    #[serde(rename = "loop")]
    pub loop_: Option<RawLoop>,
    /// `[[notify]]`: notification sinks.
    #[serde(default)]
    pub notify: Vec<RawNotify>,
    /// `[jobs]` (orch job).
    pub jobs: Option<super::jobs::RawJobs>,
    /// `[profile.NAME]` (orch job).
    #[serde(default)]
    pub profile: BTreeMap<String, super::jobs::RawProfile>,
    /// `[host.NAME]`: machines reached over ssh.
    #[serde(default)]
    pub host: BTreeMap<String, RawHost>,
    /// `[pool.NAME]`: agents sharing one account (see `pools.rs`).
    #[serde(default)]
    pub pool: BTreeMap<String, super::pools::RawPool>,
    /// Backends added from the built-in presets that no `[backend.X]` table names (filled by
    /// `with_presets`; validation keeps only those an agent uses).
    #[serde(skip)]
    pub preset_only: std::collections::BTreeSet<String>,
}

impl RawConfig {
    /// Start every backend from its preset (`preset = "..."` or its own name) with the user's
    /// keys on top, and add the presets no table names. `text` is the config the raw came from.
    pub fn with_presets(&mut self, text: &str) -> Result<(), String> {
        use crate::presets;
        let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let user = match doc.get("backend") {
            Some(toml::Value::Table(t)) => t.clone(),
            _ => toml::Table::new(),
        };
        for (name, body) in &user {
            let toml::Value::Table(body) = body else {
                continue;
            };
            let preset = match self.backend.get(name).and_then(|b| b.preset.clone()) {
                Some(p) => p,
                None if presets::is_preset(name) => name.clone(),
                None => continue,
            };
            let merged = presets::merge_preset(&preset, Some(body)).ok_or_else(|| {
                format!(
                    "backend {name}: preset {preset:?} is not a built-in preset (known: {})",
                    presets::preset_names().join(", ")
                )
            })?;
            let built: RawBackend = toml::Value::Table(merged)
                .try_into()
                .map_err(|e| format!("backend {name} (preset {preset}): {e}"))?;
            self.backend.insert(name.clone(), built);
        }
        for name in presets::preset_names() {
            if self.backend.contains_key(name) {
                continue;
            }
            let table = presets::preset_table(name).unwrap_or_default();
            let built: RawBackend = toml::Value::Table(table)
                .try_into()
                .map_err(|e| format!("built-in preset {name}: {e}"))?;
            self.backend.insert(name.to_string(), built);
            self.preset_only.insert(name.to_string());
        }
        Ok(())
    }
}

/// `[defaults]`: the project keys plus a default for every `[[agent]]` key.
#[derive(Debug, Default, Deserialize)]
pub struct RawDefaults {
    pub session_prefix: Option<String>,
    pub log_dir: Option<String>,
    pub project_dir: Option<String>,
    pub tmux_socket: Option<String>,
    #[serde(flatten)]
    pub agent: RawAgentKeys,
}

/// The keys an agent takes from `[defaults]` unless it sets them itself.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawAgentKeys {
    pub backend: Option<String>,
    pub model: Option<String>,
    pub watch: Option<String>,
    pub dir: Option<String>,
    pub enabled: Option<bool>,
    pub resume: Option<bool>,
    pub hooks: Option<bool>,
    pub env: Option<BTreeMap<String, String>>,
    /// First-run dialogs the agent answers by itself (keys from its backend's `dialogs`).
    pub auto_accept: Option<Vec<String>>,
    /// A folder whose files become environment variables (values never logged).
    pub secrets_dir: Option<String>,
    /// Workspace files: destination (in the agent's dir) -> source (in the project).
    pub files: Option<BTreeMap<String, String>>,
    pub worktree: Option<bool>,
    pub grace_period: Option<Seconds>,
    pub timeout: Option<Seconds>,
    pub restart: Option<String>,
    pub max_restarts: Option<u32>,
    pub restart_backoff: Option<Seconds>,
    pub restart_backoff_max: Option<Seconds>,
    pub restart_reset_after: Option<Seconds>,
    /// Context rotation with a handoff note (issue 19).
    pub rotation: Option<RawRotation>,
}

/// `rotation = { every_iterations, at_context_pct, handoff_file, handoff_timeout }`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawRotation {
    pub every_iterations: Option<u32>,
    pub at_context_pct: Option<f64>,
    pub handoff_file: Option<String>,
    pub handoff_timeout: Option<Seconds>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAgent {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub role: Option<String>,
    pub session: Option<String>,
    pub prompt: Option<String>,
    pub prompt_file: Option<String>,
    pub wake: Option<RawWake>,
    /// The `[host.NAME]` it runs on ("local" or absent: this machine).
    pub host: Option<String>,
    /// The `[pool.NAME]` it shares an account with.
    pub pool: Option<String>,
    #[serde(flatten)]
    pub keys: RawAgentKeys,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawWake {
    pub interval: Option<Seconds>,
    pub prompt_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawService {
    pub name: Option<String>,
    pub command: Option<String>,
    pub dir: Option<String>,
    pub enabled: Option<bool>,
    pub env: Option<BTreeMap<String, String>>,
    pub host: Option<String>,
}

/// `[host.NAME]`: how to reach another machine.
#[derive(Debug, Default, Deserialize)]
pub struct RawHost {
    pub ssh: Option<String>,
    pub ssh_options: Option<Vec<String>>,
    pub tmux_socket: Option<String>,
    pub orch_bin: Option<String>,
    /// `ssh` (default), `slurm` or `container`.
    pub transport: Option<String>,
    /// sbatch options of a SLURM host's allocation.
    pub slurm: Option<toml::Table>,
    /// The ssh host where a SLURM host's sbatch/srun run.
    pub via: Option<String>,
    /// A container host's engine, image, extra run options and mounts.
    pub engine: Option<String>,
    pub image: Option<String>,
    pub options: Option<Vec<String>>,
    pub mounts: Option<Vec<String>>,
}

/// `[api]`: the watchdog's status API (the Unix socket is always on).
#[derive(Debug, Default, Deserialize)]
pub struct RawApi {
    /// An optional TCP address serving `/metrics` only, e.g. "127.0.0.1:9464".
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawWatchdog {
    pub signal_interval: Option<Seconds>,
    pub heavy_interval: Option<Seconds>,
    pub stall_grace: Option<Seconds>,
    pub limit_probe_fallback: Option<Seconds>,
    pub limit_reset_slack: Option<Seconds>,
    pub attention_after: Option<Seconds>,
    pub phase_quiet_after: Option<Seconds>,
    pub repeat_after: Option<Seconds>,
    pub batch_window: Option<Seconds>,
    pub max_resends: Option<i64>,
}

/// `[[notify]]`: a webhook URL or a command argv, a body format, and filters.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawNotify {
    pub webhook: Option<String>,
    pub command: Option<Vec<String>>,
    pub format: Option<String>,
    pub events: Option<Vec<String>>,
    pub agents: Option<Vec<String>>,
    pub timeout: Option<Seconds>,
}

#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawBackend {
    /// A built-in preset whose keys this backend starts from (default: its own name, if a preset).
    pub preset: Option<String>,
    /// The `[pool.NAME]` every agent of this backend is in (unless it names its own).
    pub pool: Option<String>,
    pub bin: Option<String>,
    pub flags: Option<String>,
    pub prompt_delivery: Option<String>,
    pub process_name: Option<OneOrMany>,
    pub submit_key: Option<String>,
    pub model_flag: Option<String>,
    pub supports_resume: Option<bool>,
    pub resume_flag: Option<String>,
    pub remote_control: Option<bool>,
    pub remote_control_flag: Option<String>,
    pub active_re: Option<String>,
    pub limit_re: Option<String>,
    pub fatal_re: Option<String>,
    pub footer_ui: Option<bool>,
    pub log_grace: Option<Seconds>,
    pub stall_idle: Option<Seconds>,
    pub preamble: Option<String>,
    pub attach: Option<String>,
    pub server: Option<String>,
    pub connect_delay: Option<Seconds>,
    /// How long a start-up screen must hold still before it counts (auto_accept / ping).
    pub startup_settle: Option<Seconds>,
    pub busy_input: Option<bool>,
    pub model_env: Option<bool>,
    /// tmux keys that make the CLI quit, sent one at a time before the grace period.
    pub stop_keys: Option<Vec<String>>,
    /// Classifier rules tried before the preset's own.
    pub screen_rules: Option<Vec<RawScreenRule>>,
    /// How each first-run dialog is answered (preset data; see backend/presets.toml).
    pub dialogs: Option<Vec<RawDialog>>,
}

/// `screen_rules = [{ state = "busy", pattern = "...", rows = 10 }]`
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawScreenRule {
    pub state: Option<String>,
    pub pattern: Option<String>,
    pub rows: Option<usize>,
    pub name: Option<String>,
}

/// `dialogs = [{ key = "trust", state = "trust_prompt", pattern = "...", keys = ["Enter"] }]`
#[derive(Debug, Default, Clone, Deserialize)]
pub struct RawDialog {
    pub key: Option<String>,
    pub state: Option<String>,
    pub pattern: Option<String>,
    pub keys: Option<Vec<String>>,
}

/// A string or a list of strings (`process_name = "node"` or `["node", "codex"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLoop {
    pub state_file: Option<String>,
    pub done_marker: Option<String>,
    pub kickoff_template: Option<String>,
    pub roles_dir: Option<String>,
    pub auto_advance: Option<bool>,
    pub resume_phase: Option<bool>,
    #[serde(default)]
    pub phases: Vec<RawPhase>,
    pub handoff: Option<RawHandoff>,
    pub on_complete: Option<RawOnComplete>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawPhase {
    pub id: Option<String>,
    pub plan: Option<String>,
    pub status: Option<String>,
    #[serde(default)]
    pub models: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawHandoff {
    pub repo: Option<String>,
    pub state_subdir: Option<String>,
    pub claim_pattern: Option<String>,
    pub review_pattern: Option<String>,
    pub claim_pings: Option<String>,
    pub review_pings: Option<String>,
    pub inboxes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawOnComplete {
    pub run: Option<String>,
    pub trigger_file: Option<String>,
}

/// A span of time as configured: plain seconds (`30`, `1.5`) or a duration text (`"90s"`, `"2h"`, `"1h30m"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub std::time::Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            Int(i64),
            Float(f64),
            Text(String),
        }
        let secs = match Any::deserialize(d)? {
            Any::Int(n) if n >= 0 => n as f64,
            Any::Float(f) if f >= 0.0 && f.is_finite() => f,
            Any::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom)?,
            _ => return Err(serde::de::Error::custom("a duration cannot be negative")),
        };
        Ok(Seconds(std::time::Duration::from_secs_f64(secs)))
    }
}

/// Parse `"90"`, `"90s"`, `"5m"`, `"2h"`, `"1d"`, `"1h30m"`, `"500ms"` into seconds.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration (use seconds or forms such as \"90s\", \"5m\", \"2h\", \"1h30m\")"
        )
    };
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = t.parse::<f64>() {
        return if n >= 0.0 { Ok(n) } else { Err(bad()) };
    }
    let (mut total, mut rest) = (0.0, t);
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}
