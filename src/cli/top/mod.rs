//! `orch top`: the operator's console. State in one struct, keys/ticks/finished work into one
//! `update`, a pure `render`; this file is the loop around them that talks to tmux and files.
mod ansi;
mod render;
mod state;
mod term;
#[cfg(test)]
mod tests;

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEventKind};
use serde_json::Value;

use crate::config::{Config, LoadOptions};
use crate::events::{human, tail::Tail};
use crate::tmux::{ClientMove, Tmux};
use crate::{Error, Result, fleet, phase, status};

use render::render;
use state::{Effect, Msg, State, update};

#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// Seconds between refreshes of the fleet.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub interval: f64,
}

/// The longest the loop waits for a key before looking at signals and finished work.
const POLL: Duration = Duration::from_millis(200);

/// The event line of the feed: wall-clock time, then the demo's columns.
pub fn feed_line(e: &Value) -> String {
    let time = e
        .get("ts")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| "--:--:--".into());
    human::line(e, &time, &human::no_subjects)
}

/// What the preview last captured: whose pane, its output time then, and when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captured {
    pub activity: Option<i64>,
    pub at: i64,
}

/// Capture again only when the selection changed or tmux shows output since the last
/// capture (`window_activity` has one-second steps: output in the capture's own second may
/// have come after it, so that second counts as new once more).
pub fn needs_capture(last: Option<Captured>, activity: Option<i64>) -> bool {
    match (last, activity) {
        (None, _) => true,
        (Some(c), Some(a)) => c.activity.is_none_or(|old| a > old) || a >= c.at,
        (Some(c), None) => c.activity.is_some(),
    }
}

pub fn run(cfg: &Config, args: &TopArgs) -> Result<ExitCode> {
    if !(args.interval > 0.0 && args.interval.is_finite()) {
        return Err(Error::Usage(format!(
            "--interval {} must be a positive number of seconds",
            args.interval
        )));
    }
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err(Error::Usage(
            "orch top needs a terminal on stdin and stdout; in scripts use `orch status` or `orch events -f`"
                .into(),
        ));
    }
    let interval = Duration::from_secs_f64(args.interval.max(0.1));
    let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let project = cfg.project_dir.file_name().map_or_else(
        || cfg.project_dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut s = State::new(project, colour, cfg.watchdog.signal_interval.as_secs());
    let mut console = Console {
        cfg: cfg.clone(),
        tmux: fleet::tmux_for(cfg),
        tail: Tail::new(&cfg.events_file()),
        captured: None,
    };
    let (tx, rx) = mpsc::channel::<Msg>();
    let _guard = term::Guard;
    let mut terminal =
        term::enter().map_err(|e| Error::Runtime(format!("cannot set up the terminal: {e}")))?;
    let mut next_refresh = Instant::now();
    // Draw only when something changed: a refresh, a key, finished work, a resize.
    let mut dirty = true;
    loop {
        if term::signalled() {
            break;
        }
        if Instant::now() >= next_refresh {
            console.refresh(&mut s);
            next_refresh = Instant::now() + interval;
            dirty = true;
        } else {
            dirty |= console.preview(&mut s);
        }
        if dirty {
            terminal
                .draw(|f| render(&s, f))
                .map_err(|e| Error::Runtime(format!("cannot draw the console: {e}")))?;
            dirty = false;
        }
        let wait = POLL.min(next_refresh.saturating_duration_since(Instant::now()));
        let ready = match term::wait_input(wait) {
            term::Input::HungUp => break,
            // A resize wakes the wait too (SIGWINCH); crossterm then has the event queued.
            term::Input::Ready | term::Input::Timeout => {
                event::poll(Duration::ZERO).unwrap_or(false)
            }
        };
        if ready {
            dirty = true;
            let effect = match event::read() {
                Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => update(&mut s, Msg::Key(k)),
                _ => None, // a resize redraws on the next pass
            };
            match effect {
                None => {}
                Some(Effect::Quit) => break,
                Some(Effect::Attach(name)) => {
                    s.message = Some(console.attach(&name));
                    let _ = terminal.clear();
                    next_refresh = Instant::now();
                }
                Some(Effect::Logs(name)) => {
                    s.message = console.page_log(&name);
                    let _ = terminal.clear();
                }
                Some(work) => console.spawn(work, tx.clone()),
            }
        }
        while let Ok(msg) = rx.try_recv() {
            update(&mut s, msg);
            next_refresh = Instant::now();
        }
    }
    drop(terminal);
    Ok(ExitCode::SUCCESS)
}

/// The console's handles on the world: config, tmux, the event log.
struct Console {
    cfg: Config,
    tmux: Tmux,
    tail: Tail,
    captured: Option<(String, Captured)>,
}

impl Console {
    /// One fleet snapshot (one tmux call, as `orch status`), new events, and the preview when
    /// tmux shows new output in the selected pane.
    fn refresh(&mut self, s: &mut State) {
        let lines: Vec<String> = self.tail.read_new().iter().map(feed_line).collect();
        if !lines.is_empty() {
            update(s, Msg::Events(lines));
        }
        match self.tmux.fleet() {
            Ok(snapshot) => {
                let now = chrono::Utc::now().timestamp();
                let report = status::gather_at(&self.cfg, &snapshot, now);
                update(s, Msg::Snapshot { report, now });
                let activity = s
                    .selected_row()
                    .and_then(|r| session_of(&self.cfg, &r.name))
                    .and_then(|sess| snapshot.get(&sess).and_then(|p| p.activity));
                self.preview_at(s, activity, true);
            }
            Err(e) => {
                update(
                    s,
                    Msg::SnapshotFailed(format!("cannot read the tmux server: {e}")),
                );
            }
        }
    }

    /// Capture the selected pane when the selection moved since the last capture; whether
    /// it did.
    fn preview(&mut self, s: &mut State) -> bool {
        let name = s.selected_row().map(|r| r.name.clone());
        let moved = name.is_some() && name.as_ref() != self.captured.as_ref().map(|c| &c.0);
        if moved {
            self.preview_at(s, None, false);
        }
        moved
    }

    fn preview_at(&mut self, s: &mut State, activity: Option<i64>, from_snapshot: bool) {
        let Some(name) = s.selected_row().map(|r| r.name.clone()) else {
            return;
        };
        let last = self
            .captured
            .as_ref()
            .filter(|(who, _)| *who == name)
            .map(|c| c.1);
        if from_snapshot && !needs_capture(last, activity) {
            return;
        }
        let Some(session) = session_of(&self.cfg, &name) else {
            return;
        };
        let text = self
            .tmux
            .capture_styled(&session)
            .unwrap_or_else(|_| "(not running)".to_string());
        let at = chrono::Utc::now().timestamp();
        self.captured = Some((name.clone(), Captured { activity, at }));
        update(s, Msg::Preview { name, text });
    }

    /// Hand the terminal to the session; the sentence to show on return.
    fn attach(&self, name: &str) -> String {
        let session = match super::attach::live_session(&self.cfg, &self.tmux, name) {
            Ok(s) => s,
            Err(e) => return e.to_string(),
        };
        let env = std::env::var("TMUX").ok();
        let how = match self.tmux.client_move(&session, env.as_deref()) {
            Ok(h) => h,
            Err(e) => return format!("cannot attach to {name}: {e}"),
        };
        let mut process = self.tmux.client_process(&session, how);
        if how == ClientMove::Switch {
            return match process.status() {
                Ok(st) if st.success() => format!("switched this tmux client to {name}"),
                Ok(st) => format!("tmux switch-client to {name} failed ({st})"),
                Err(e) => format!("cannot run tmux: {e}"),
            };
        }
        // The console's reader is idle while tmux runs (no poll), and the terminal is cooked.
        term::restore();
        let result = process.status();
        let _ = term::resume();
        match result {
            Ok(st) if st.success() => format!("back from {name}"),
            Ok(st) => format!("tmux attach to {name} failed ({st})"),
            Err(e) => format!("cannot run tmux: {e}"),
        }
    }

    /// Page the session log with `less -R +G` (or $PAGER); a sentence when it cannot.
    fn page_log(&self, name: &str) -> Option<String> {
        let session = session_of(&self.cfg, name)?;
        let path = self.cfg.session_log(&session);
        if !path.exists() {
            return Some(format!("{name} has no log yet ({})", path.display()));
        }
        let pager = std::env::var("PAGER").ok().filter(|p| !p.trim().is_empty());
        let mut cmd = match pager.as_deref().map(shell_words::split) {
            Some(Ok(argv)) if !argv.is_empty() => {
                let mut c = std::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
            _ => {
                let mut c = std::process::Command::new("less");
                c.args(["-R", "+G"]);
                c
            }
        };
        cmd.arg(&path);
        term::restore();
        let result = cmd.status();
        let _ = term::resume();
        match result {
            Ok(_) => None,
            Err(e) => Some(format!("cannot run the pager for {}: {e}", path.display())),
        }
    }

    /// Run a send, stop, start, restart or phase move in the background; its sentence comes
    /// back as `Msg::Done`. The config is read again, as the verbs do.
    fn spawn(&self, work: Effect, tx: mpsc::Sender<Msg>) {
        let cfg = crate::config::load(&self.cfg.path, LoadOptions::LENIENT)
            .map(|l| l.config)
            .unwrap_or_else(|_| self.cfg.clone());
        let tmux = self.tmux.clone();
        std::thread::spawn(move || {
            let text = perform(&cfg, &tmux, work);
            let _ = tx.send(Msg::Done(text));
        });
    }
}

/// The session of an agent or service (None for an unknown name).
fn session_of(cfg: &Config, name: &str) -> Option<String> {
    cfg.agent(name)
        .map(|a| a.session.clone())
        .or_else(|| cfg.service(name).map(|s| s.session.clone()))
}

/// Do one piece of work; the sentence the footer shows.
fn perform(cfg: &Config, tmux: &Tmux, work: Effect) -> String {
    use super::restart::{restart_one, start_one, stop_one};
    let outcome = match &work {
        Effect::Send { to, text } => super::send::send_message(cfg, tmux, to, text).map(|o| {
            format!(
                "delivered to {to} (confirmed after {} submit keys)",
                o.submits
            )
        }),
        Effect::Restart(n) => restart_one(cfg, tmux, n, "top").map(|_| format!("restarted {n}")),
        Effect::Stop(n) => stop_one(cfg, tmux, n, "top").map(|was| {
            if was {
                format!("stopped {n}")
            } else {
                format!("{n} was not running")
            }
        }),
        Effect::Start(n) => start_one(cfg, tmux, n).map(|_| format!("{n} is running")),
        Effect::PhaseNext => next_phase(cfg),
        Effect::Attach(_) | Effect::Logs(_) | Effect::Quit => Ok(String::new()),
    };
    outcome.unwrap_or_else(|e| e.to_string())
}

fn next_phase(cfg: &Config) -> Result<String> {
    let count = cfg.phases().len();
    if count == 0 {
        return Err(Error::Usage(format!(
            "{} has no [loop].phases",
            cfg.path.display()
        )));
    }
    let idx = phase::current_index(cfg);
    if idx + 1 >= count {
        return Err(Error::Usage(format!(
            "already at the last phase ({}/{count}): there is no next phase",
            idx + 1
        )));
    }
    let p = phase::set_index(cfg, idx + 1)?;
    Ok(format!(
        "phase index now {} ({}); the watchdog starts its loops",
        idx + 1,
        p.id
    ))
}
