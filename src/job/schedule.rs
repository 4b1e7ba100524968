//! The one place that starts jobs: claim queued jobs by the pure plan (max_parallel, --after),
//! launch each in its own tmux session `<prefix>job-<id>`, and adopt or fail running ones.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::model::{self, Decision, Event, Status};
use super::runner::event;
use super::store::Store;
use crate::config::{self, Config, LoadOptions};
use crate::events;
use crate::tmux::{Command, NewSession, Tmux};
use crate::{Error, Result};

/// The tmux session of job `id`.
pub fn session_name(cfg: &Config, id: &str) -> String {
    format!("{}job-{id}", cfg.session_prefix)
}

/// One scheduling pass: fail running jobs whose runner is gone, fail jobs whose dependency
/// failed, claim what may start and launch it in tmux. Returns the ids it started.
pub fn tick(cfg: &Config, config_path: &Path, tmux: &Tmux) -> Result<Vec<String>> {
    let store = Store::new(&cfg.log_dir);
    if !store.root().exists() {
        return Ok(Vec::new());
    }
    let mut started = Vec::new();
    {
        let _lock = store.lock()?;
        let now = super::store::now();
        let mut jobs = store.list()?;
        for job in jobs.iter_mut().filter(|j| j.status == Status::Running) {
            if store.is_being_run(&job.id) {
                continue;
            }
            let alive = job
                .session
                .as_deref()
                .is_some_and(|s| tmux.has_session(s).unwrap_or(true));
            if alive {
                continue; // its runner is starting
            }
            if let Some(pid) = job.pid {
                // The runner died: do not leave its agent behind.
                super::runner::stop_group(pid, Duration::from_secs(1));
            }
            if let Ok(next) = model::apply(job, Event::Interrupted, &now) {
                store.save(&next)?;
                event(
                    cfg,
                    events::JOB_FINISHED,
                    json!({"id": next.id, "status": "failed", "reason": "interrupted"}),
                );
                *job = next;
            }
        }
        for d in model::plan(&jobs, cfg.jobs.max_parallel) {
            match d {
                Decision::DependencyFailed { id, dep } => {
                    let job = store.load(&id)?;
                    if let Ok(next) = model::apply(&job, Event::DependencyFailed { dep }, &now) {
                        store.save(&next)?;
                        event(
                            cfg,
                            events::JOB_FINISHED,
                            json!({"id": id, "status": "failed", "reason": "dependency_failed"}),
                        );
                    }
                }
                Decision::Start(id) => {
                    let job = store.load(&id)?;
                    let session = session_name(cfg, &id);
                    if let Ok(next) = model::apply(
                        &job,
                        Event::Start {
                            session: Some(session),
                        },
                        &now,
                    ) {
                        store.save(&next)?;
                        started.push(id);
                    }
                }
            }
        }
    }
    for id in &started {
        let session = session_name(cfg, id);
        match launch(cfg, config_path, tmux, id, &session) {
            Ok(()) => event(
                cfg,
                events::JOB_STARTED,
                json!({"id": id, "session": session}),
            ),
            Err(e) => {
                let o = model::Outcome {
                    reason: Some(model::Reason::Setup),
                    error: Some(format!("cannot start its tmux session: {e}")),
                    ..model::Outcome::default()
                };
                let _ = store.apply(id, Event::Finish(o));
                event(
                    cfg,
                    events::JOB_FINISHED,
                    json!({"id": id, "status": "failed", "reason": "setup"}),
                );
            }
        }
    }
    Ok(started)
}

/// Start `orch --config CFG job exec ID` in session `session`.
fn launch(cfg: &Config, config_path: &Path, tmux: &Tmux, id: &str, session: &str) -> Result<()> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::Runtime(format!("cannot find the orch binary to run job {id}: {e}")))?;
    let log = Store::new(&cfg.log_dir).file(id, "runner.log");
    let argv = [
        "sh",
        "-c",
        r#"exec "$0" --config "$1" job exec "$2" >>"$3" 2>&1"#,
        &exe.display().to_string(),
        &config_path.display().to_string(),
        id,
        &log.display().to_string(),
    ]
    .map(String::from)
    .to_vec();
    let mut spec = NewSession::new(session, &cfg.project_dir, Command::Argv(argv));
    if let Some(socket) = tmux.socket() {
        spec.env
            .push((crate::tmux::SOCKET_ENV.into(), socket.to_string()));
    }
    tmux.new_session(&spec)?;
    Ok(())
}

/// Claim job `id` for a foreground run if the plan lets it start now (under the store lock).
/// `Ok(true)`: it is now running and the caller runs it.
pub fn claim_for_foreground(cfg: &Config, id: &str) -> Result<bool> {
    let store = Store::new(&cfg.log_dir);
    let _lock = store.lock()?;
    let jobs = store.list()?;
    let now = super::store::now();
    for d in model::plan(&jobs, cfg.jobs.max_parallel) {
        match d {
            Decision::Start(s) if s == id => {
                let job = store.load(id)?;
                if let Ok(next) = model::apply(&job, Event::Start { session: None }, &now) {
                    store.save(&next)?;
                    event(cfg, events::JOB_STARTED, json!({"id": id, "session": null}));
                    return Ok(true);
                }
            }
            Decision::DependencyFailed { id: d_id, dep } if d_id == id => {
                let job = store.load(id)?;
                if let Ok(next) = model::apply(&job, Event::DependencyFailed { dep }, &now) {
                    store.save(&next)?;
                    event(
                        cfg,
                        events::JOB_FINISHED,
                        json!({"id": id, "status": "failed", "reason": "dependency_failed"}),
                    );
                }
            }
            _ => {}
        }
    }
    Ok(false)
}

/// The watchdog's job scheduler: a thread running `tick` every 500 ms with the config as it is
/// on disk (re-read when the file changes; a broken one keeps the last good). Stops on drop.
pub struct Background {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn start(config_path: &Path, cfg: &Config) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let path: PathBuf = config_path.to_path_buf();
        let mut cfg = cfg.clone();
        let handle = std::thread::Builder::new()
            .name("orch-jobs".into())
            .spawn(move || {
                let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
                let mut seen: Option<SystemTime> = mtime(&path);
                let mut tmux = crate::fleet::tmux_for(&cfg);
                while !flag.load(Ordering::SeqCst) {
                    let now = mtime(&path);
                    if now != seen {
                        seen = now;
                        if let Ok(l) = config::load(&path, LoadOptions::WATCHDOG) {
                            cfg = l.config;
                            tmux = crate::fleet::tmux_for(&cfg);
                        }
                    }
                    if let Err(e) = tick(&cfg, &path, &tmux) {
                        tracing::warn!("job scheduling failed (retrying): {e}");
                    }
                    for _ in 0..5 {
                        if flag.load(Ordering::SeqCst) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
            .ok();
        Background { stop, handle }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
