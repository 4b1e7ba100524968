//! Notifications: `[[notify]]` sinks (webhook or command) told when a person must act or the
//! loop is done. A reader of the event log on its own threads, never a step of the tick.
//!
//! The dispatcher thread tails `events.jsonl`, keeps the events each sink wants (the repeat
//! rule in `gate`), collects them for `batch_window`, and hands each batch to that sink's
//! worker thread, which delivers it with a deadline and bounded retries and logs
//! `notify_failed` when it cannot. A hung sink delays only its own worker.
mod deliver;
pub mod episodes;
pub mod gate;
pub mod message;
pub mod tail;

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{Config, NotifySink};
use crate::events::{self, EventLog};
pub use deliver::deliver;
use gate::{Batch, NotifyState};
pub use message::{Message, describe, summary};

/// `<state_dir>/notify.json`: the dispatcher's place in the event log and its sent episodes.
pub const STATE_FILE: &str = "notify.json";
/// How often the dispatcher looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// How long a stopping watchdog waits for the last messages to go out.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// Messages a sink's worker may have queued; past that, new ones fail at once.
const QUEUE: usize = 64;

/// The project's name in messages: the project folder's name.
pub fn project_name(cfg: &Config) -> String {
    cfg.project_dir
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| cfg.session_prefix.trim_end_matches(['-', '_']).to_string())
}

fn state_file(cfg: &Config) -> PathBuf {
    cfg.state_dir.join(STATE_FILE)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

enum Command {
    Config(Box<Config>),
    Stop,
}

/// The running notifier: stops (sending what it holds) when dropped.
pub struct Notifier {
    tx: Sender<Command>,
    done: Receiver<()>,
}

impl Notifier {
    /// Start the dispatcher for `cfg` (it idles while no sink is configured).
    pub fn spawn(cfg: &Config) -> Notifier {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let mut d = Dispatcher::new(cfg.clone());
        std::thread::Builder::new()
            .name("orch-notify".into())
            .spawn(move || {
                d.run(rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| tracing::error!("cannot start the notifier thread: {e}"))
            .ok();
        Notifier { tx, done }
    }

    /// Use the config the watchdog just loaded (sinks and windows may have changed).
    pub fn update(&self, cfg: &Config) {
        let _ = self.tx.send(Command::Config(Box::new(cfg.clone())));
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Stop);
        let _ = self.done.recv_timeout(SHUTDOWN_WAIT);
    }
}

/// One sink's delivery thread.
struct Worker {
    tx: SyncSender<Message>,
    done: Receiver<()>,
    describe: String,
}

impl Worker {
    fn spawn(index: usize, sink: NotifySink, log: EventLog) -> Worker {
        let (tx, rx) = mpsc::sync_channel::<Message>(QUEUE);
        let (done_tx, done) = mpsc::channel();
        let desc = describe(&sink.target);
        let name = desc.clone();
        let _ = std::thread::Builder::new()
            .name(format!("orch-notify-{index}"))
            .spawn(move || {
                for m in rx {
                    match deliver(&sink, &m) {
                        Ok(()) => {
                            tracing::info!("notify: {} via {name}: {}", m.event(), m.summary())
                        }
                        Err(reason) => failed(&log, index, &name, &m, &reason),
                    }
                }
                let _ = done_tx.send(());
            });
        Worker {
            tx,
            done,
            describe: desc,
        }
    }

    fn send(&self, index: usize, m: Message, log: &EventLog) {
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(m)) | Err(TrySendError::Disconnected(m)) => failed(
                log,
                index,
                &self.describe,
                &m,
                "its queue is full (the sink is not answering)",
            ),
        }
    }
}

/// Log `notify_failed`: the sink by scheme and host (or program), the reason, the events.
fn failed(log: &EventLog, index: usize, sink: &str, m: &Message, reason: &str) {
    tracing::warn!("notify: {sink} failed: {reason}");
    let names: Vec<&str> = m.events.iter().map(message::event_name).collect();
    let fields = json!({ "sink": sink, "index": index, "reason": reason, "events": names });
    if let Err(e) = log.append(events::NOTIFY_FAILED, fields) {
        tracing::warn!("cannot append to {}: {e}", log.path().display());
    }
}

struct Dispatcher {
    cfg: Config,
    log: Option<EventLog>,
    state: NotifyState,
    sinks: Vec<NotifySink>,
    batches: Vec<Batch>,
    workers: Vec<Worker>,
}

impl Dispatcher {
    fn new(cfg: Config) -> Dispatcher {
        let events = cfg.events_file();
        // A first start (or one without sinks) reads from the end: the history is not news.
        let state = crate::state::load_json::<NotifyState>(&state_file(&cfg))
            .ok()
            .flatten()
            .filter(|_| !cfg.notify.is_empty())
            .unwrap_or_else(|| NotifyState {
                offset: tail::end_of(&events),
                ..NotifyState::default()
            });
        let mut d = Dispatcher {
            log: EventLog::open(&cfg.log_dir).ok(),
            cfg,
            state,
            sinks: Vec::new(),
            batches: Vec::new(),
            workers: Vec::new(),
        };
        d.set_sinks();
        d
    }

    /// (Re)start the workers when the sink list changed; what the old ones hold goes out first.
    fn set_sinks(&mut self) {
        if self.sinks == self.cfg.notify && self.workers.len() == self.sinks.len() {
            return;
        }
        self.flush(true);
        let Some(log) = self.log.clone() else { return };
        self.sinks = self.cfg.notify.clone();
        self.workers = (self.sinks.iter().cloned().enumerate())
            .map(|(i, s)| Worker::spawn(i, s, log.clone()))
            .collect();
        self.batches = self.sinks.iter().map(|_| Batch::default()).collect();
    }

    fn run(&mut self, rx: Receiver<Command>) {
        loop {
            match rx.recv_timeout(POLL) {
                Ok(Command::Config(cfg)) => {
                    self.cfg = *cfg;
                    self.set_sinks();
                }
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.poll();
            self.flush(false);
        }
        self.poll();
        self.flush(true);
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        for w in std::mem::take(&mut self.workers) {
            let Worker { tx, done, .. } = w;
            drop(tx);
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
    }

    /// Read new events and add the ones each sink wants to its batch.
    fn poll(&mut self) {
        if self.sinks.is_empty() {
            // Nothing to send: keep up with the log without reading it.
            self.state.offset = tail::end_of(&self.cfg.events_file());
            return;
        }
        let (new, offset) = tail::read_from(&self.cfg.events_file(), self.state.offset);
        if offset == self.state.offset {
            return;
        }
        self.state.offset = offset;
        let (now, at) = (now_secs(), Instant::now());
        let repeat_after = self.cfg.watchdog.repeat_after;
        for e in &new {
            for (i, sink) in self.sinks.iter().enumerate() {
                if gate::wants(sink, e)
                    && self
                        .state
                        .admit(&gate::episode_key(i, e), now, repeat_after)
                {
                    self.batches[i].push(e.clone(), at);
                }
            }
        }
        self.state.prune(now, repeat_after);
        let _ = std::fs::create_dir_all(&self.cfg.state_dir);
        if let Err(e) = crate::state::save_json(&state_file(&self.cfg), &self.state) {
            tracing::warn!("cannot save the notifier's state: {e}");
        }
    }

    /// Hand each due batch (every batch when `all`) to its sink's worker.
    fn flush(&mut self, all: bool) {
        let (now, window) = (Instant::now(), self.cfg.watchdog.batch_window);
        let project = project_name(&self.cfg);
        for (i, b) in self.batches.iter_mut().enumerate() {
            let due = if all {
                b.take_all()
            } else {
                b.take_due(now, window)
            };
            if let (Some(events), Some(w), Some(log)) = (due, self.workers.get(i), &self.log) {
                w.send(
                    i,
                    Message {
                        project: project.clone(),
                        events,
                        dir: self.cfg.project_dir.clone(),
                    },
                    log,
                );
            }
        }
    }
}

/// The result of `orch notify test` for one sink.
#[derive(Debug)]
pub struct TestResult {
    pub index: usize,
    pub sink: String,
    pub format: &'static str,
    pub outcome: Result<(), String>,
}

/// Send a test message through each sink (or only sink `only`), now, on this thread.
pub fn send_test(cfg: &Config, only: Option<usize>) -> Vec<TestResult> {
    let m = Message {
        project: project_name(cfg),
        events: vec![json!({
            "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "event": message::TEST_EVENT,
        })],
        dir: cfg.project_dir.clone(),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (cfg.notify.iter().enumerate())
            .filter(|(i, _)| only.is_none_or(|o| o == *i))
            .map(|(index, sink)| {
                let m = &m;
                s.spawn(move || TestResult {
                    index,
                    sink: describe(&sink.target),
                    format: sink.format.as_str(),
                    outcome: deliver(sink, m),
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}
