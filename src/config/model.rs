//! The typed config every other module reads: paths resolved, defaults merged, regexes
//! compiled, durations parsed. Built only by `validate.rs`, so a `Config` is always valid.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, absolute.
    pub path: PathBuf,
    pub project_dir: PathBuf,
    pub log_dir: PathBuf,
    /// `<log_dir>/state`.
    pub state_dir: PathBuf,
    pub session_prefix: String,
    /// Private tmux server (`tmux -L`); `ORCH_TMUX_SOCKET` overrides it.
    pub tmux_socket: Option<String>,
    pub watchdog: WatchdogCfg,
    /// `[api]`: the status API's optional extras.
    pub api: ApiCfg,
    pub backends: BTreeMap<String, Backend>,
    pub agents: Vec<Agent>,
    pub services: Vec<Service>,
    pub loop_: Option<LoopCfg>,
    /// `[[notify]]`: the notification sinks, in file order.
    pub notify: Vec<NotifySink>,
    /// `[host.NAME]` tables: machines agents and services may run on.
    pub hosts: BTreeMap<String, super::Host>,
    /// `[defaults].grace_period`: how long services and the watchdog get after C-c.
    pub grace_period: Duration,
    /// `[jobs]`: one-shot agent tasks.
    pub jobs: super::JobsCfg,
    /// `[profile.NAME]`: how a job's agent runs (an implicit `default` when none is configured).
    pub profiles: BTreeMap<String, super::Profile>,
    /// `[pool.NAME]` tables and the agents `pool = "NAME"` places in them.
    pub pools: super::Pools,
}

#[derive(Debug, Clone, Default)]
pub struct ApiCfg {
    /// `[api].metrics_listen`: a TCP address serving Prometheus metrics only (read-only).
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct WatchdogCfg {
    pub signal_interval: Duration,
    pub heavy_interval: Duration,
    pub stall_grace: Duration,
    pub limit_probe_fallback: Duration,
    pub limit_reset_slack: Duration,
    /// `waiting_input` longer than this needs attention (default 5 min).
    pub attention_after: Duration,
    /// A phase with no handoff commit for this long needs attention (default 6 h).
    pub phase_quiet_after: Duration,
    /// An unresolved attention episode is notified again at most this often (default 1 h).
    pub repeat_after: Duration,
    /// Notifications within this window go out as one message (default 30 s).
    pub batch_window: Duration,
    /// A ping neither acknowledged nor arrived is typed again at most this often (default 2).
    pub max_resends: u32,
}

/// Where a `[[notify]]` sink delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyTarget {
    /// POST to this http:// or https:// URL.
    Webhook(String),
    /// Run this argv (no shell); `{event}`, `{summary}`, `{agent}` are filled per argument.
    Command(Vec<String>),
}

/// The body a webhook sink posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    Json,
    Slack,
    Discord,
    Ntfy,
}

impl NotifyFormat {
    pub const NAMES: &[&str] = &["json", "slack", "discord", "ntfy"];

    pub fn parse(s: &str) -> Option<NotifyFormat> {
        Some(match s {
            "json" => NotifyFormat::Json,
            "slack" => NotifyFormat::Slack,
            "discord" => NotifyFormat::Discord,
            "ntfy" => NotifyFormat::Ntfy,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            NotifyFormat::Json => "json",
            NotifyFormat::Slack => "slack",
            NotifyFormat::Discord => "discord",
            NotifyFormat::Ntfy => "ntfy",
        }
    }
}

/// One `[[notify]]` sink.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySink {
    pub target: NotifyTarget,
    pub format: NotifyFormat,
    /// The event names it receives.
    pub events: Vec<String>,
    /// Only events about these agents (events without an agent always pass); None: all.
    pub agents: Option<Vec<String>>,
    /// One delivery attempt's deadline (default 10 s).
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The kickoff is one argument on the command line.
    Arg,
    /// Launch the attach command, then type "read <kickoff file> and follow it".
    Ping,
    /// `bin` is a command template with `{kickoff} {session} {model}`.
    Exec,
}

#[derive(Debug, Clone)]
pub struct Backend {
    pub name: String,
    pub bin: String,
    pub flags: String,
    pub prompt_delivery: Delivery,
    /// The first of `process_names` (what a healthy pane runs).
    pub process_name: Option<String>,
    /// Every command name tmux may report for a healthy pane (`node` and `codex`, say).
    pub process_names: Vec<String>,
    /// The built-in preset this backend starts from, if any.
    pub preset: Option<String>,
    /// Classifier rules: the backend's own `screen_rules`, then its preset's (empty: no classifier).
    pub screen_rules: Vec<crate::detect::ScreenRule>,
    /// How first-run dialogs are answered for agents that opt in (`auto_accept`).
    pub dialogs: Vec<crate::presets::DialogAnswer>,
    pub submit_key: String,
    pub model_flag: String,
    pub supports_resume: bool,
    pub resume_flag: String,
    pub remote_control: bool,
    pub remote_control_flag: String,
    pub active_re: Option<Regex>,
    pub limit_re: Option<Regex>,
    pub fatal_re: Option<Regex>,
    pub footer_ui: bool,
    pub log_grace: Duration,
    pub stall_idle: Duration,
    pub preamble: String,
    pub attach: String,
    pub server: String,
    pub connect_delay: Duration,
    /// How long a start-up screen must keep its state before it counts as settled.
    pub startup_settle: Duration,
    /// Typed text is queued while the CLI is busy: pings may go in on a `busy` screen.
    pub busy_input: bool,
    pub model_env: bool,
    /// tmux key names that make the CLI quit at once, sent one at a time (200 ms apart) when
    /// it is stopped, before its grace period; default `["C-c"]`.
    pub stop_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Loop,
    Persistent,
    Task,
    Orchestrator,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Loop => "loop",
            Kind::Persistent => "persistent",
            Kind::Task => "task",
            Kind::Orchestrator => "orchestrator",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    None,
    Heal,
    HealStall,
}

impl Watch {
    pub fn as_str(self) -> &'static str {
        match self {
            Watch::None => "none",
            Watch::Heal => "heal",
            Watch::HealStall => "heal+stall",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Agent {
    pub name: String,
    pub kind: Kind,
    pub role: Option<String>,
    /// A backend name: a `[backend.NAME]` table.
    pub backend: String,
    /// The configured model ("" = the backend's default); phases may override it per role.
    pub model: String,
    pub session: String,
    pub dir: PathBuf,
    pub watch: Watch,
    pub enabled: bool,
    pub resume: bool,
    /// Wire Claude Code hooks (`orch hook <event>`) into the agent dir's `.claude/settings.local.json`.
    pub hooks: bool,
    pub prompt: Option<String>,
    pub prompt_file: Option<PathBuf>,
    pub wake: Option<Wake>,
    /// Extra environment for the agent's session (values are secrets: never logged).
    pub env: BTreeMap<String, String>,
    /// Dialog keys (`trust`, `bypass-permissions`, ...) answered without asking.
    pub auto_accept: Vec<String>,
    /// Each regular, non-hidden file here is an env var (`env` wins); checked private at load.
    pub secrets_dir: Option<PathBuf>,
    /// Workspace files: destination relative to the agent's dir -> source file.
    pub files: BTreeMap<String, PathBuf>,
    /// Run in `<log_dir>/worktrees/<name>` (a git worktree on branch `orch/<name>`).
    pub worktree: bool,
    /// How long the agent gets after C-c before its session is killed.
    pub grace_period: Duration,
    /// Stop the agent once it has run this long.
    pub timeout: Option<Duration>,
    /// `None` when `restart` is not set: today's behaviour (healing by `watch`).
    pub restart: Option<RestartPolicy>,
    /// How often the watchdog may heal it (`max_restarts`, `restart_backoff*`, `restart_reset_after`).
    pub heal: HealBounds,
    /// The `[host.NAME]` it runs on; `None`: this machine.
    pub host: Option<String>,
    /// Context rotation with a handoff note (`rotation = {...}`); `None`: never rotated.
    pub rotation: Option<Rotation>,
}

/// When and how an agent is rotated: asked for a handoff note, then started afresh on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    /// Rotate after this many claim/review pings handled in one session.
    pub every_iterations: Option<u32>,
    /// Rotate once the context window is this full (percent).
    pub at_context_pct: Option<f64>,
    /// The note's path relative to the agent's dir, `{agent}` filled in.
    pub handoff_file: String,
    /// How long the agent has to write the note and push.
    pub handoff_timeout: Duration,
}

/// The default `handoff_file`.
pub const DEFAULT_HANDOFF_FILE: &str = "machine-docs/HANDOFF-{agent}.md";

/// The bounds of healing one agent: at most `max` heals within `window` (0 = unlimited), each
/// after the previous one by `backoff` doubling up to `backoff_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealBounds {
    pub max: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub window: Duration,
}

impl Default for HealBounds {
    fn default() -> Self {
        HealBounds {
            max: 5,
            backoff: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            window: Duration::from_secs(600),
        }
    }
}

/// When the watchdog restarts an agent whose process exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    No,
    OnFailure,
    Always,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::No => "no",
            Restart::OnFailure => "on-failure",
            Restart::Always => "always",
        }
    }
}

/// `restart` with its limits: exponential backoff from `backoff`, doubling up to `backoff_max`.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicy {
    pub mode: Restart,
    /// 0 = unlimited.
    pub max_restarts: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// A run this long forgets earlier restarts.
    pub reset_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Wake {
    pub interval: Duration,
    pub prompt_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub command: String,
    pub session: String,
    pub dir: PathBuf,
    pub enabled: bool,
    pub env: BTreeMap<String, String>,
    /// The `[host.NAME]` it runs on; `None`: this machine.
    pub host: Option<String>,
}

#[derive(Debug, Clone)]
pub struct LoopCfg {
    pub state_file: String,
    pub done_marker: String,
    pub kickoff_template: Option<PathBuf>,
    pub roles_dir: PathBuf,
    pub auto_advance: bool,
    pub resume_phase: bool,
    pub phases: Vec<Phase>,
    pub handoff: Option<Handoff>,
    pub on_complete: Option<OnComplete>,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub id: String,
    pub plan: String,
    pub status: String,
    /// Per-role model overrides for this phase.
    pub models: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Handoff {
    pub repo: PathBuf,
    pub state_subdir: String,
    pub claim_pattern: Regex,
    pub review_pattern: Regex,
    pub claim_pings: String,
    pub review_pings: String,
    pub inboxes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct OnComplete {
    pub run: String,
    pub trigger_file: String,
}

impl Config {
    pub fn agent(&self, name: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The backend of an agent (validation guarantees it exists).
    pub fn backend_of(&self, agent: &Agent) -> &Backend {
        &self.backends[&agent.backend]
    }

    pub fn watchdog_session(&self) -> String {
        format!("{}watchdog", self.session_prefix)
    }

    pub fn session_log(&self, session: &str) -> PathBuf {
        self.log_dir.join(format!("{session}.log"))
    }

    pub fn kickoff_file(&self, session: &str) -> PathBuf {
        self.state_dir.join(format!("kickoff-{session}.txt"))
    }

    pub fn resume_id_file(&self, agent: &str) -> PathBuf {
        self.state_dir.join(format!("{agent}.id"))
    }

    pub fn sequence_complete_file(&self) -> PathBuf {
        self.log_dir.join("SEQUENCE-COMPLETE")
    }

    pub fn events_file(&self) -> PathBuf {
        self.log_dir.join("events.jsonl")
    }

    pub fn phases(&self) -> &[Phase] {
        self.loop_.as_ref().map_or(&[], |l| &l.phases)
    }

    /// `<state_dir>/<[loop].state_file>` (default `phase-idx`).
    pub fn phase_index_file(&self) -> PathBuf {
        let name = self.loop_.as_ref().map_or("phase-idx", |l| &l.state_file);
        self.state_dir.join(name)
    }

    /// Enabled loop agents, in config order.
    pub fn loop_agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents
            .iter()
            .filter(|a| a.kind == Kind::Loop && a.enabled)
    }

    /// Every name `up`/`down`/`logs` accept: agents, services and "watchdog".
    pub fn known_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.agents.iter().map(|a| a.name.as_str()).collect();
        names.extend(self.services.iter().map(|s| s.name.as_str()));
        names.push("watchdog");
        names
    }

    /// The host an agent or service called `name` runs on (`None`: this machine).
    pub fn host_of(&self, name: &str) -> Option<&super::Host> {
        let host = match self.agent(name) {
            Some(a) => a.host.as_deref(),
            None => self.service(name).and_then(|s| s.host.as_deref()),
        };
        host.and_then(|h| self.hosts.get(h))
    }

    /// The session of the agent `name`, or `session_prefix + name` for a name not configured.
    pub fn session_of(&self, name: &str) -> String {
        self.agent(name)
            .map(|a| a.session.clone())
            .unwrap_or_else(|| format!("{}{name}", self.session_prefix))
    }
}

/// Resolve a possibly relative, possibly `~`-prefixed path against `base`.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    let expanded = match p.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from(p), |h| PathBuf::from(h).join(rest)),
        None if p == "~" => {
            std::env::var_os("HOME").map_or_else(|| PathBuf::from(p), PathBuf::from)
        }
        None => PathBuf::from(p),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}
