//! The supervisor loop (`orch watchdog`): a light tick every `signal_interval` (handoff pings,
//! limits, stalls, wakes) and a heavy tick every `heavy_interval` (phase advance, healing).
mod acks;
mod attention;
pub mod bounds;
mod handoff_tick;
pub mod heal;
pub mod hosts;
pub mod limit;
pub mod outbox;
mod pane_cache;
mod phase_tick;
pub mod policy;
pub mod pool;
mod redeliver;
pub mod rotation;
pub mod screen;
pub mod server;
pub mod slurm;
mod stall;
pub mod wake;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{self, Config, LoadOptions};
use crate::events::{self, EventLog};
use crate::state::{LockError, WatchdogLock};
use crate::tmux::Tmux;
use crate::{Error, Result, fleet};

pub use handoff_tick::record_baseline;

/// Everything the loop carries from one tick to the next.
pub struct Watchdog {
    config_path: PathBuf,
    pub cfg: Config,
    pub tmux: Tmux,
    pub events: EventLog,
    /// The last config error logged, so a broken config is reported once, not every tick.
    config_error: Option<String>,
    /// The last fetch error logged (cleared by a good fetch).
    fetch_error: Option<String>,
    last_heavy: Option<Instant>,
    /// Since when each session's pane has looked idle (stall detection), by session.
    idle_since: HashMap<String, Instant>,
    /// When each agent was last woken (or first seen), by agent name.
    last_wake: HashMap<String, Instant>,
    /// When each agent was last restarted for a fatal banner, by agent name.
    last_fatal: HashMap<String, Instant>,
    /// Agents whose repeated fatal banner was already reported.
    fatal_reported: BTreeSet<String>,
    /// Sessions the policy pass started or stopped (so the tick's tmux snapshot is retaken).
    policy_changes: std::cell::Cell<u32>,
    /// The last capture of each session's pane, reused while the pane shows no new output.
    pane_cache: HashMap<String, pane_cache::CachedPane>,
    /// The same for the whole screens the classifier reads (a different capture size).
    screen_cache: HashMap<String, pane_cache::CachedPane>,
    /// This tick's classified screen of each live agent with screen rules, by agent name.
    screens: HashMap<String, crate::detect::Classification>,
    /// Dead panes whose last screen was read already, by tmux pane id.
    read_dead: std::collections::HashSet<String>,
    /// Hosts that did not answer, and since when (`host_unreachable` logged once each).
    hosts_down: HashMap<String, Instant>,
    /// The live sessions of the agents' server at the last look (None: not running, or a loss
    /// already handled); see server.rs.
    server_live: Option<BTreeSet<String>>,
    /// New allocations of each SLURM host (bounded, with backoff), by host.
    slurm: HashMap<String, slurm::Realloc>,
    /// The rotation pass's memory (handled pings, context samples).
    rotation: rotation::Memory,
}

impl Watchdog {
    fn new(config_path: PathBuf, cfg: Config) -> Result<Self> {
        let mut events = EventLog::open(&cfg.log_dir)
            .map_err(|e| Error::io(&cfg.log_dir, "opening the event log", e))?;
        events.set_secrets(fleet::redaction::config_secrets(&cfg));
        Ok(Watchdog {
            config_path,
            tmux: fleet::tmux_for(&cfg),
            cfg,
            events,
            config_error: None,
            fetch_error: None,
            last_heavy: None,
            idle_since: HashMap::new(),
            last_wake: HashMap::new(),
            last_fatal: HashMap::new(),
            fatal_reported: BTreeSet::new(),
            policy_changes: std::cell::Cell::new(0),
            pane_cache: HashMap::new(),
            screen_cache: HashMap::new(),
            screens: HashMap::new(),
            read_dead: Default::default(),
            hosts_down: HashMap::new(),
            server_live: None,
            slurm: HashMap::new(),
            rotation: rotation::Memory::default(),
        })
    }

    /// A watchdog for the config at `config_path`, without the lock or the loop: for running
    /// single ticks (benchmarks, tests).
    pub fn open(config_path: &Path) -> Result<Self> {
        let loaded = config::load(config_path, LoadOptions::WATCHDOG)?;
        Self::new(config_path.to_path_buf(), loaded.config)
    }

    /// Append an event; failing to log never stops the loop.
    pub fn event(&self, name: &str, fields: serde_json::Value) {
        if let Err(e) = self.events.append(name, fields) {
            tracing::warn!("cannot append to {}: {e}", self.events.path().display());
        }
    }

    /// Re-read the config; a config that stops parsing is reported once and the last good one kept.
    fn reload(&mut self) {
        match config::load(&self.config_path, LoadOptions::WATCHDOG) {
            Ok(loaded) => {
                if self.config_error.take().is_some() {
                    tracing::info!("config {} loads again", self.config_path.display());
                }
                self.tmux = fleet::tmux_for(&loaded.config);
                self.events
                    .set_secrets(fleet::redaction::config_secrets(&loaded.config));
                self.cfg = loaded.config;
            }
            Err(e) => {
                let text = e.to_string();
                if self.config_error.as_deref() != Some(text.as_str()) {
                    tracing::error!("config error, keeping the last good config: {text}");
                    self.event(events::CONFIG_ERROR, json!({ "error": text }));
                    self.config_error = Some(text);
                }
            }
        }
    }

    fn fleet_snapshot(&self) -> Option<crate::tmux::Fleet> {
        match self.tmux.fleet() {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("cannot list the tmux sessions (retrying next tick): {e}");
                None
            }
        }
    }

    /// One tick: the light work always, the heavy work when it is due (and on the first tick).
    pub fn tick(&mut self) {
        let before = self.cfg.clone();
        self.reload();
        if self.cfg.loop_agents().next().is_some() {
            self.handoff_tick();
        }
        self.human_phase_tick();
        let heavy_due = self.last_heavy.is_none_or(|t| {
            t.elapsed() + Duration::from_millis(50) >= self.cfg.watchdog.heavy_interval
        });
        // One snapshot of the server for the whole tick (policies, care, wakes, healing),
        // retaken only when the policy pass started or stopped a session.
        self.slurm_tick();
        let snapshot = self.server_tick();
        if let Some(f) = &snapshot {
            self.hosts_tick(f);
        }
        let fleet = if self.policy_tick(&before, snapshot.as_ref()) {
            self.fleet_snapshot()
        } else {
            snapshot
        };
        if let Some(f) = &fleet {
            self.screen_tick(f);
            // A loop agent started again gets the handoff it still owes (queued, typed below).
            self.redeliver_tick(f);
            // Queued pings go in only once the screen just read takes input.
            self.outbox_tick(f);
        }
        let care = fleet.as_ref().map(|f| self.care_tick(f));
        if let (Some(f), Some(c)) = (&fleet, &care) {
            self.wake_tick(f, c);
        }
        if let Some(f) = &fleet {
            self.attention_tick(f);
        }
        // Context rotation at idle moments; a rotated agent is not healed this tick.
        let rotated = match (&fleet, &care) {
            (Some(f), Some(c)) => self.rotation_tick(f, c),
            _ => BTreeSet::new(),
        };
        if heavy_due {
            self.last_heavy = Some(Instant::now());
            let advanced = self.phase_tick();
            if let (false, Some(f), Some(c)) = (advanced, &fleet, &care) {
                let skip: BTreeSet<String> = c.skip.union(&rotated).cloned().collect();
                self.heal_tick(f, &skip, &c.panes);
            }
        }
    }
}

/// Run the watchdog in the foreground until SIGINT/SIGTERM.
pub fn run(config_path: &Path) -> Result<ExitCode> {
    let config_path =
        std::path::absolute(config_path).unwrap_or_else(|_| config_path.to_path_buf());
    let loaded = config::load(&config_path, LoadOptions::WATCHDOG)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let cfg = loaded.config;
    let lock_path = cfg.state_dir.join(crate::state::LOCK_FILE);
    let lock = WatchdogLock::acquire(&lock_path).map_err(|e| match e {
        LockError::Held { .. } => Error::Runtime(e.to_string()),
        other => Error::Runtime(other.to_string()),
    })?;
    let mut wd = Watchdog::new(config_path, cfg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot start the watchdog's runtime: {e}")))?;
    let reason = runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigint = signal(SignalKind::interrupt())
            .map_err(|e| Error::Runtime(format!("cannot watch SIGINT: {e}")))?;
        let mut sigterm = signal(SignalKind::terminate())
            .map_err(|e| Error::Runtime(format!("cannot watch SIGTERM: {e}")))?;
        // tmux kill-session hangs up the pane: a clean stop too.
        let mut sighup = signal(SignalKind::hangup())
            .map_err(|e| Error::Runtime(format!("cannot watch SIGHUP: {e}")))?;
        let phase = crate::phase::current(&wd.cfg).map(|p| p.id.clone());
        tracing::info!(pid = std::process::id(), ?phase, "watchdog up");
        wd.event(
            events::WATCHDOG_STARTED,
            json!({ "pid": std::process::id(), "phase": phase }),
        );
        // The read-only status API, a task beside the tick loop; dropped (socket removed) on exit.
        let api = crate::api::ApiHandle::spawn(&wd.cfg);
        // The digest is sent once, when SEQUENCE-COMPLETE appears while this watchdog runs.
        let mut complete = wd.cfg.sequence_complete_file().exists();
        // Notifications: a reader of the event log on its own threads; dropped (flushed) on exit.
        let notifier = crate::notify::Notifier::spawn(&wd.cfg);
        // Jobs (orch job): scheduled and adopted by their own thread; stopped when dropped.
        let _jobs = crate::job::schedule::Background::start(&wd.config_path, &wd.cfg);
        let reason = loop {
            let mut moved = wd;
            let tick_began = Instant::now();
            wd = tokio::task::spawn_blocking(move || {
                // A bug in one tick must not end the supervisor: report it and go on.
                let tick = std::panic::AssertUnwindSafe(|| moved.tick());
                if let Err(panic) = std::panic::catch_unwind(tick) {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!("a watchdog tick panicked (continuing): {what}");
                }
                moved
            })
            .await
            .map_err(|e| Error::Runtime(format!("a watchdog tick failed: {e}")))?;
            if let Some(api) = &api {
                api.observe_tick(tick_began.elapsed());
                api.update(&wd.cfg, wd.config_error.as_deref());
            }
            if !complete && wd.cfg.sequence_complete_file().exists() {
                complete = true;
                let cfg = wd.cfg.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = crate::report::on_sequence_complete(&cfg) {
                        tracing::warn!("no digest: {e}");
                    }
                });
            }
            notifier.update(&wd.cfg);
            tokio::select! {
                _ = tokio::time::sleep(wd.cfg.watchdog.signal_interval) => {}
                _ = sigint.recv() => break "SIGINT",
                _ = sigterm.recv() => break "SIGTERM",
                _ = sighup.recv() => break "SIGHUP",
            }
        };
        tracing::info!(reason, "watchdog stopping");
        wd.event(events::WATCHDOG_STOPPED, json!({ "reason": reason }));
        drop(notifier);
        Ok::<_, Error>(reason)
    })?;
    drop(lock);
    let _ = reason;
    Ok(ExitCode::SUCCESS)
}
