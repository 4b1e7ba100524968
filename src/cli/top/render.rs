//! The console's one pure drawing function: header, fleet table, preview of the selected
//! agent's screen, event feed, footer (keys, input line, outcome), and the help overlay.
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row as TableRow, Table, TableState,
};

use super::ansi;
use super::state::{Mode, State};
use crate::status::human_duration;

/// The keys, as the help overlay and the README list them.
pub const HELP: &[(&str, &str)] = &[
    ("j / k, ↓ / ↑", "move the selection (g / G: first / last)"),
    ("Enter", "attach to its session (back here on detach)"),
    ("s", "send the agent a message (confirmed delivery)"),
    ("r", "restart the agent or service (asks y/n)"),
    ("d", "stop it (asks y/n)"),
    ("u", "start it"),
    ("n", "move to the next phase (asks y/n)"),
    ("l", "page its session log (less)"),
    ("/", "filter by name, kind or state (Esc clears)"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit"),
];

const HINTS: &str = "j/k move  ⏎ attach  s send  r restart  d stop  u start  n phase  l log  / filter  ? help  q quit";

fn fg(s: &State, c: Color) -> Style {
    if s.colour {
        Style::default().fg(c)
    } else {
        Style::default()
    }
}

/// The colour of a state, as `orch status` colours it.
fn state_colour(state: &str) -> Color {
    match state {
        "working" | "running" => Color::Green,
        "idle" => Color::Cyan,
        "waiting_input" | "held" => Color::Yellow,
        s if s.starts_with("attn") => Color::Yellow,
        "stalled" | "dead" | "gave_up" => Color::Red,
        _ => Color::DarkGray,
    }
}

/// Draw the whole console for `s`.
pub fn render(s: &State, f: &mut Frame) {
    let area = f.area();
    let table_height = (s.visible().len() as u16 + 3).clamp(4, (area.height * 45 / 100).max(4));
    let outer = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Length(table_height),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .split(area);
    header(s, f, outer[0]);
    table(s, f, outer[1]);
    let lower = if area.width >= 140 {
        Layout::default()
            .direction(Direction::Horizontal)
            .constraints([Constraint::Percentage(60), Constraint::Percentage(40)])
            .split(outer[2])
    } else {
        Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Percentage(60), Constraint::Percentage(40)])
            .split(outer[2])
    };
    preview(s, f, lower[0]);
    feed(s, f, lower[1]);
    footer(s, f, outer[3]);
    if s.mode == Mode::Help {
        help(s, f, area);
    }
}

fn header(s: &State, f: &mut Frame, area: Rect) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut spans = vec![Span::styled(" orch ", bold), Span::raw(s.project.clone())];
    let sep = || Span::raw("  │ ");
    if let Some(p) = s.report.as_ref().and_then(|r| r.phase.as_ref()) {
        spans.push(sep());
        spans.push(Span::raw(format!(
            "phase {} [{}/{}]",
            p.id,
            p.index + 1,
            p.count
        )));
        if p.sequence_complete {
            spans.push(Span::styled(
                " COMPLETE",
                fg(s, Color::Green).add_modifier(Modifier::BOLD),
            ));
        } else if p.done {
            spans.push(Span::styled(
                " DONE",
                fg(s, Color::Green).add_modifier(Modifier::BOLD),
            ));
        }
    }
    if let Some(r) = &s.report {
        spans.push(sep());
        if r.watchdog.running {
            spans.push(Span::styled("watchdog up", fg(s, Color::Green)));
            spans.push(Span::raw(format!(" (tick {}s)", s.tick_secs)));
        } else {
            spans.push(Span::styled("watchdog down", fg(s, Color::Red)));
        }
    }
    spans.push(sep());
    let n = s.attention();
    let style = if n > 0 {
        fg(s, Color::Yellow).add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    spans.push(Span::styled(format!("attention {n}"), style));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn table(s: &State, f: &mut Frame, area: Rect) {
    let rows = s.visible();
    let head = TableRow::new(["NAME", "HOST", "KIND", "STATE", "FOR", "RST", "ACTIVITY"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let body: Vec<TableRow> = rows
        .iter()
        .map(|r| {
            let dur = r
                .since
                .map_or("-".to_string(), |t| human_duration(s.now - t));
            let activity = match r.last_activity {
                Some(t) => format!("{} ({} ago)", r.activity, human_duration(s.now - t)),
                None => r.activity.clone(),
            };
            TableRow::new(vec![
                Cell::from(r.name.clone()),
                Cell::from(r.host.clone()),
                Cell::from(r.kind.clone()),
                Cell::from(Span::styled(r.state.clone(), fg(s, state_colour(&r.state)))),
                Cell::from(dur),
                Cell::from(r.restarts.to_string()),
                Cell::from(activity),
            ])
        })
        .collect();
    let title = if s.filter.is_empty() {
        " fleet ".to_string()
    } else {
        format!(" fleet (filter: {}) ", s.filter)
    };
    let widths = [
        Constraint::Length(14),
        Constraint::Length(6),
        Constraint::Length(10),
        Constraint::Length(13),
        Constraint::Length(5),
        Constraint::Length(3),
        Constraint::Min(8),
    ];
    let highlight = if s.colour {
        Style::default()
            .bg(Color::DarkGray)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default().add_modifier(Modifier::REVERSED)
    };
    let t = Table::new(body, widths)
        .header(head)
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(highlight)
        .highlight_symbol("▶");
    let mut ts = TableState::default().with_selected(s.selected_index());
    f.render_stateful_widget(t, area, &mut ts);
}

fn preview(s: &State, f: &mut Frame, area: Rect) {
    let sel = s.selected_row().map(|r| r.name.clone());
    let (title, lines) = match (&sel, &s.preview) {
        (Some(name), Some((who, text))) if who == name => {
            (format!(" {name}: screen "), ansi::to_lines(text, s.colour))
        }
        (Some(name), _) => (
            format!(" {name}: screen "),
            vec![Line::raw("(no screen yet)")],
        ),
        (None, _) => (
            " screen ".to_string(),
            vec![Line::raw("(nothing selected)")],
        ),
    };
    // The bottom of the screen is where agents write: show the last rows that fit.
    let used = lines
        .iter()
        .rposition(|l| l.spans.iter().any(|sp| !sp.content.trim().is_empty()))
        .map_or(0, |i| i + 1);
    let inner = area.height.saturating_sub(2) as usize;
    let shown: Vec<Line> = lines[used.saturating_sub(inner)..used].to_vec();
    let p = Paragraph::new(shown).block(Block::default().borders(Borders::ALL).title(title));
    f.render_widget(p, area);
}

fn feed(s: &State, f: &mut Frame, area: Rect) {
    let inner = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = s
        .feed
        .iter()
        .skip(s.feed.len().saturating_sub(inner))
        .map(|l| Line::raw(l.trim_start().to_string()))
        .collect();
    let p = Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" events "));
    f.render_widget(p, area);
}

fn footer(s: &State, f: &mut Frame, area: Rect) {
    let line = match &s.mode {
        Mode::Send { to, text } => Line::from(vec![
            Span::styled(
                format!("message to {to}: "),
                Style::default().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!("{text}█")),
            Span::styled("  (Enter sends, Esc cancels)", fg(s, Color::DarkGray)),
        ]),
        Mode::Filter { text } => Line::from(vec![
            Span::styled("filter: ", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!("{text}█")),
        ]),
        Mode::Confirm { prompt, .. } => Line::from(Span::styled(
            format!("{prompt} (y/n)"),
            fg(s, Color::Yellow).add_modifier(Modifier::BOLD),
        )),
        _ => match (&s.busy, &s.error, &s.message) {
            (Some(b), _, _) => Line::raw(format!("{b}…")),
            (None, Some(e), _) => Line::from(Span::styled(e.clone(), fg(s, Color::Red))),
            (None, None, Some(m)) => Line::raw(m.clone()),
            _ => Line::from(Span::styled(HINTS, fg(s, Color::DarkGray))),
        },
    };
    f.render_widget(Paragraph::new(line), area);
}

fn help(s: &State, f: &mut Frame, area: Rect) {
    let width = 66.min(area.width);
    let height = (HELP.len() as u16 + 4).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {k:<13}"),
                    fg(s, Color::Cyan).add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.push(Line::raw(" any key closes this help"));
    f.render_widget(Clear, rect);
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" keys ")),
        rect,
    );
}
