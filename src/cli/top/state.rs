//! The console's state in one struct and the one `update` that turns a message (a key, a
//! fresh fleet snapshot, a preview, finished work) into new state and at most one effect.
use std::collections::VecDeque;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::status::Report;

/// How many event lines the feed keeps.
pub const FEED_KEEP: usize = 200;

/// One row of the fleet table (an agent or a service).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub host: String,
    pub kind: String,
    pub state: String,
    /// Unix seconds the state began, when known.
    pub since: Option<i64>,
    pub restarts: u64,
    /// The last tool a hook reported, else what the pane runs.
    pub activity: String,
    /// Unix seconds of the last output or hook record.
    pub last_activity: Option<i64>,
    pub agent: bool,
    pub attention: bool,
}

/// What the keyboard is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Normal,
    Help,
    /// Typing a message to this agent.
    Send {
        to: String,
        text: String,
    },
    /// Typing the table filter.
    Filter {
        text: String,
    },
    /// A destructive effect waiting for y/n.
    Confirm {
        prompt: String,
        effect: Effect,
    },
}

/// Work the console's outer loop performs (tmux, files, the terminal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Attach(String),
    Send { to: String, text: String },
    Restart(String),
    Stop(String),
    Start(String),
    PhaseNext,
    Logs(String),
    Quit,
}

/// Everything the console shows; `render` reads only this.
#[derive(Debug)]
pub struct State {
    pub project: String,
    pub report: Option<Report>,
    /// Unix seconds of the last snapshot (durations are shown relative to it).
    pub now: i64,
    /// The watchdog's light tick interval, in seconds.
    pub tick_secs: u64,
    /// Rows of the last snapshot, before the filter.
    pub rows: Vec<Row>,
    /// The selected row's name (kept across refreshes and filters).
    pub selected: Option<String>,
    pub filter: String,
    pub feed: VecDeque<String>,
    /// The preview: whose screen, and its text with its SGR escapes.
    pub preview: Option<(String, String)>,
    pub mode: Mode,
    /// The last outcome or problem, shown in the footer.
    pub message: Option<String>,
    pub colour: bool,
    /// Work in flight (send, restart, ...): shown in the footer.
    pub busy: Option<String>,
    pub error: Option<String>,
}

/// What the console reacts to.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Snapshot {
        report: Report,
        now: i64,
    },
    SnapshotFailed(String),
    Preview {
        name: String,
        text: String,
    },
    Events(Vec<String>),
    /// Work finished: the sentence to show.
    Done(String),
}

impl State {
    pub fn new(project: impl Into<String>, colour: bool, tick_secs: u64) -> State {
        State {
            project: project.into(),
            report: None,
            now: 0,
            tick_secs,
            rows: Vec::new(),
            selected: None,
            filter: String::new(),
            feed: VecDeque::new(),
            preview: None,
            mode: Mode::Normal,
            message: None,
            colour,
            busy: None,
            error: None,
        }
    }

    /// The rows the filter lets through (name, kind or state containing it).
    pub fn visible(&self) -> Vec<&Row> {
        let f = self.filter.to_lowercase();
        self.rows
            .iter()
            .filter(|r| {
                f.is_empty()
                    || r.name.to_lowercase().contains(&f)
                    || r.kind.contains(&f)
                    || r.state.contains(&f)
            })
            .collect()
    }

    /// The index of the selected row among the visible ones (the first when none).
    pub fn selected_index(&self) -> Option<usize> {
        let rows = self.visible();
        if rows.is_empty() {
            return None;
        }
        let found = self
            .selected
            .as_ref()
            .and_then(|s| rows.iter().position(|r| &r.name == s));
        Some(found.unwrap_or(0))
    }

    pub fn selected_row(&self) -> Option<&Row> {
        self.selected_index().map(|i| self.visible()[i])
    }

    /// Agents needing a person: an open attention episode, waiting for input, stalled, dead
    /// or given up.
    pub fn attention(&self) -> usize {
        self.rows.iter().filter(|r| r.attention).count()
    }

    fn move_selection(&mut self, delta: isize) {
        let rows = self.visible();
        let Some(i) = self.selected_index() else {
            return;
        };
        let j = (i as isize + delta).clamp(0, rows.len() as isize - 1) as usize;
        self.selected = Some(rows[j].name.clone());
    }
}

/// The table rows of a report: agents, then services.
pub fn rows_of(report: &Report) -> Vec<Row> {
    let secs = |t: &Option<String>| {
        t.as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp())
    };
    let mut rows: Vec<Row> = report
        .agents
        .iter()
        .map(|a| Row {
            name: a.name.clone(),
            host: a.host.clone(),
            kind: a.kind.to_string(),
            state: match &a.needs_attention {
                Some(why) => format!("attn: {}", why.split('_').next().unwrap_or(why)),
                None => a.state.to_string(),
            },
            since: secs(&a.since),
            restarts: a.restarts,
            activity: match (a.last_tool.as_deref(), a.command.as_str()) {
                (Some(t), _) => t.to_string(),
                (None, "") => "-".to_string(),
                (None, c) => c.to_string(),
            },
            last_activity: secs(&a.last_activity_at),
            agent: true,
            attention: a.needs_attention.is_some()
                || matches!(a.state, "waiting_input" | "stalled" | "dead" | "gave_up"),
        })
        .collect();
    rows.extend(report.services.iter().map(|s| Row {
        name: s.name.clone(),
        host: s.host.clone(),
        kind: "service".into(),
        state: if s.running { "running" } else { "stopped" }.into(),
        since: None,
        restarts: 0,
        activity: if s.command.is_empty() {
            "-".into()
        } else {
            s.command.clone()
        },
        last_activity: None,
        agent: false,
        attention: false,
    }));
    rows
}

/// Apply one message; the effect (if any) is for the outer loop to perform.
pub fn update(s: &mut State, msg: Msg) -> Option<Effect> {
    match msg {
        Msg::Snapshot { report, now } => {
            s.rows = rows_of(&report);
            s.report = Some(report);
            s.now = now;
            s.error = None;
            if s.selected.is_none() {
                s.selected = s.visible().first().map(|r| r.name.clone());
            }
            None
        }
        Msg::SnapshotFailed(e) => {
            s.error = Some(e);
            None
        }
        Msg::Preview { name, text } => {
            s.preview = Some((name, text));
            None
        }
        Msg::Events(lines) => {
            s.feed.extend(lines);
            while s.feed.len() > FEED_KEEP {
                s.feed.pop_front();
            }
            None
        }
        Msg::Done(text) => {
            s.busy = None;
            s.message = Some(text);
            None
        }
        Msg::Key(key) => on_key(s, key),
    }
}

fn on_key(s: &mut State, key: KeyEvent) -> Option<Effect> {
    let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
    if ctrl_c {
        return Some(Effect::Quit);
    }
    match std::mem::replace(&mut s.mode, Mode::Normal) {
        Mode::Help => None, // any key closes the help
        Mode::Confirm { effect, prompt } => match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') => {
                s.busy = Some(prompt.trim_end_matches('?').to_string());
                Some(effect)
            }
            _ => {
                s.message = Some("cancelled".into());
                None
            }
        },
        Mode::Send { to, mut text } => match key.code {
            KeyCode::Esc => {
                s.message = Some("message not sent".into());
                None
            }
            KeyCode::Enter if text.trim().is_empty() => {
                s.message = Some("empty message not sent".into());
                None
            }
            KeyCode::Enter => {
                s.busy = Some(format!("sending to {to}"));
                Some(Effect::Send { to, text })
            }
            code => {
                edit(&mut text, code);
                s.mode = Mode::Send { to, text };
                None
            }
        },
        Mode::Filter { mut text } => {
            match key.code {
                KeyCode::Enter => {}
                KeyCode::Esc => s.filter.clear(),
                code => {
                    edit(&mut text, code);
                    s.filter = text.clone();
                    s.mode = Mode::Filter { text };
                }
            }
            None
        }
        Mode::Normal => normal_key(s, key.code),
    }
}

fn edit(text: &mut String, code: KeyCode) {
    match code {
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) => text.push(c),
        _ => {}
    }
}

fn normal_key(s: &mut State, code: KeyCode) -> Option<Effect> {
    let sel = s.selected_row().cloned();
    let confirm = |s: &mut State, prompt: String, effect: Effect| {
        s.mode = Mode::Confirm { prompt, effect };
        None
    };
    match code {
        KeyCode::Char('q') => Some(Effect::Quit),
        KeyCode::Char('j') | KeyCode::Down => {
            s.move_selection(1);
            None
        }
        KeyCode::Char('k') | KeyCode::Up => {
            s.move_selection(-1);
            None
        }
        KeyCode::Home | KeyCode::Char('g') => {
            s.move_selection(isize::MIN / 2);
            None
        }
        KeyCode::End | KeyCode::Char('G') => {
            s.move_selection(isize::MAX / 2);
            None
        }
        KeyCode::Char('?') => {
            s.mode = Mode::Help;
            None
        }
        KeyCode::Char('/') => {
            s.mode = Mode::Filter {
                text: s.filter.clone(),
            };
            None
        }
        KeyCode::Esc => {
            s.filter.clear();
            s.message = None;
            None
        }
        KeyCode::Char('n') => confirm(s, "move to the next phase?".into(), Effect::PhaseNext),
        _ => {
            let row = sel?;
            match code {
                KeyCode::Enter => Some(Effect::Attach(row.name)),
                KeyCode::Char('l') => Some(Effect::Logs(row.name)),
                KeyCode::Char('s') if row.agent => {
                    s.mode = Mode::Send {
                        to: row.name,
                        text: String::new(),
                    };
                    None
                }
                KeyCode::Char('s') => {
                    s.message = Some(format!("{} is a service: messages go to agents", row.name));
                    None
                }
                KeyCode::Char('r') => confirm(
                    s,
                    format!("restart {}?", row.name),
                    Effect::Restart(row.name),
                ),
                KeyCode::Char('d') => {
                    confirm(s, format!("stop {}?", row.name), Effect::Stop(row.name))
                }
                KeyCode::Char('u') => {
                    s.busy = Some(format!("starting {}", row.name));
                    Some(Effect::Start(row.name))
                }
                _ => None,
            }
        }
    }
}
