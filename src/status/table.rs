//! The human `orch status` table: the phase line, then one row per agent, service and the
//! watchdog, at most 80 columns; colour (ANSI) only when the caller says so.
use chrono::DateTime;

use super::{AgentReport, Report};

const RESET: &str = "\x1b[0m";

/// The table as of `now` (Unix seconds), with ANSI colour when `colour`.
pub fn render_table_styled(r: &Report, now: i64, colour: bool) -> String {
    let mut out = String::new();
    if let Some(p) = &r.phase {
        let state = match (p.sequence_complete, p.done) {
            (true, _) => "sequence complete",
            (false, true) => "DONE",
            (false, false) => "in progress",
        };
        let plan = if p.plan.is_empty() { "-" } else { &p.plan };
        let line = format!(
            "phase {}  [{}/{}]  plan={plan}  ({state})",
            p.id,
            p.index + 1,
            p.count
        );
        out += &fit(&line, 80);
        out.push('\n');
    }
    // With hosts, a HOST column comes first (the last column is cut to stay in 80 columns).
    let hosts = !r.hosts.is_empty();
    let host = |h: &str, row: String| {
        if !hosts {
            return row;
        }
        let line = format!("{:<7}{}", fit(h, 6), row.trim_end());
        // Colour escapes take no columns; only the last (uncoloured) cell is cut.
        let escapes: usize = line
            .split('\x1b')
            .skip(1)
            .map(|p| p.find('m').map_or(0, |i| i + 2))
            .sum();
        let over = (line.chars().count() - escapes).saturating_sub(80);
        let keep = line.chars().count() - over;
        let mut line: String = line.chars().take(keep).collect();
        line.truncate(line.trim_end().len());
        line.push('\n');
        line
    };
    out += &host(
        "HOST",
        row(
            [
                "NAME",
                "KIND",
                "BACKEND",
                "MODEL",
                "STATE",
                "FOR",
                "RST",
                "RUNS/TOOL",
            ],
            None,
        ),
    );
    for a in &r.agents {
        let model = if a.model.is_empty() {
            "default"
        } else {
            &a.model
        };
        let state = agent_state_text(a);
        let dur = a
            .since
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| human_duration(now - t.timestamp()))
            .unwrap_or_else(|| "-".into());
        let restarts = a.restarts.to_string();
        // What the pane runs (tmux's view) and the last tool a hook reported, if any.
        let tool = match (a.command.as_str(), a.last_tool.as_deref()) {
            ("", None) => "-".to_string(),
            ("", Some(t)) => t.to_string(),
            (c, None) => c.to_string(),
            (c, Some(t)) => format!("{c} {t}"),
        };
        let style = colour.then(|| state_colour(a.state));
        out += &host(
            &a.host,
            row(
                [
                    &a.name, a.kind, &a.backend, model, &state, &dur, &restarts, &tool,
                ],
                style,
            ),
        );
    }
    for s in &r.services {
        let state = if s.running { "running" } else { "stopped" };
        let style = colour.then(|| state_colour(if s.running { "working" } else { "stopped" }));
        out += &host(
            &s.host,
            row([&s.name, "service", "-", "-", state, "-", "-", "-"], style),
        );
    }
    let state = if r.watchdog.running {
        "running"
    } else {
        "stopped"
    };
    let style = colour.then(|| {
        state_colour(if r.watchdog.running {
            "working"
        } else {
            "dead"
        })
    });
    out += &host(
        crate::config::LOCAL,
        row(
            ["watchdog", "watchdog", "-", "-", state, "-", "-", "-"],
            style,
        ),
    );
    out += &super::pools::render(&r.pools);
    out
}

/// The STATE cell: the state, a disabled mark, a hold's end time.
fn agent_state_text(a: &AgentReport) -> String {
    let mut s = a.state.to_string();
    if let Some(until) = a
        .until
        .as_deref()
        .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
    {
        s += &until
            .with_timezone(&chrono::Local)
            .format(" %H:%M")
            .to_string();
    }
    if !a.enabled {
        s += " (off)";
    }
    if let Some(why) = &a.needs_attention {
        // login_required -> "attn: login", auth_error -> "attn: auth" (the column is narrow).
        s = format!("attn: {}", why.split('_').next().unwrap_or(why));
    }
    s
}

/// The ANSI colour of a state.
fn state_colour(state: &str) -> &'static str {
    match state {
        "working" => "\x1b[32m",
        "idle" => "\x1b[36m",
        "waiting_input" | "held" | "unreachable" => "\x1b[33m",
        "stalled" | "dead" | "gave_up" => "\x1b[31m",
        _ => "\x1b[2m",
    }
}

/// NAME KIND BACKEND MODEL STATE FOR RST RUNS/TOOL: 78 columns with the separators; BACKEND
/// holds every preset name (`claude-code`).
const WIDTHS: [usize; 8] = [12, 8, 11, 9, 14, 6, 3, 8];

/// One row of fixed-width cells (the last one cut so the row stays within 80 columns); the
/// STATE cell is coloured when `style` is given.
fn row(cells: [&str; 8], style: Option<&str>) -> String {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(WIDTHS).enumerate() {
        let text = fit(cell, width);
        let pad = width.saturating_sub(text.chars().count());
        match style.filter(|_| i == 4) {
            Some(c) => line += &format!("{c}{text}{RESET}{}", " ".repeat(pad)),
            None if i == cells.len() - 1 => line += &text,
            None => line += &format!("{text}{}", " ".repeat(pad)),
        }
        if i < cells.len() - 1 {
            line.push(' ');
        }
    }
    line.truncate(line.trim_end().len());
    line.push('\n');
    line
}

/// `text` cut to `width` characters, with `~` marking the cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('~');
    s
}

/// A short duration: `45s`, `12m`, `3h05`, `2d04`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}", s / 86400, (s % 86400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{AgentReport, ServiceReport, WatchdogReport};

    fn agent(name: &str, state: &'static str) -> AgentReport {
        AgentReport {
            name: name.into(),
            kind: "orchestrator",
            backend: "claude-code".into(),
            model: "claude-opus-4-very-long".into(),
            session: format!("p-{name}"),
            watch: "heal+stall",
            enabled: true,
            running: true,
            command: "claude".into(),
            pid: Some(1),
            needs_attention: None,
            attention: None,
            exit_reason: None,
            pending_pings: 0,
            state,
            until: None,
            since: Some("2026-01-01T00:00:00Z".into()),
            last_activity_at: None,
            parked: None,
            restarts: 3,
            last_exit: None,
            last_heal_reason: Some("stall".into()),
            last_tool: Some("mcp__server__very_long_tool_name".into()),
            last_tool_at: None,
            tool_counts: Default::default(),
            host: "local".into(),
            pool: None,
            context_pct: None,
            context_source: None,
        }
    }

    fn report() -> Report {
        let mut held = agent("a-very-long-agent-name", "held");
        held.until = Some("2026-01-01T01:00:00Z".into());
        held.enabled = false;
        Report {
            schema_version: 1,
            phase: None,
            agents: vec![agent("builder", "waiting_input"), held],
            services: vec![ServiceReport {
                name: "web".into(),
                session: "p-web".into(),
                running: false,
                command: String::new(),
                host: "local".into(),
            }],
            watchdog: WatchdogReport {
                running: true,
                session: "p-watchdog".into(),
            },
            hosts: Vec::new(),
            pools: Vec::new(),
        }
    }

    const NOW: i64 = 1_767_225_600 + 3 * 3600 + 5 * 60;

    #[test]
    fn with_hosts_a_host_column_leads_and_rows_still_fit_80_columns() {
        let mut r = report();
        r.agents[1].host = "lab-server-one".into();
        r.agents[1].state = "unreachable";
        r.hosts
            .push(crate::tmux::HostReport::down("lab-server-one", "down"));
        let text = render_table_styled(&r, NOW, false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("HOST   NAME"), "{text}");
        assert!(lines[1].starts_with("local  builder"), "{text}");
        assert!(lines[2].starts_with("lab-s~ a-very"), "{text}");
        assert!(lines[2].contains("unreachable"), "{text}");
        for line in lines {
            assert!(line.chars().count() <= 80, "{} > 80: {line}", line.len());
        }
        let coloured = render_table_styled(&r, NOW, true);
        let strip = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
        assert_eq!(
            strip.replace_all(&coloured, ""),
            text,
            "colour changes no column"
        );
        let plain = render_table_styled(&report(), NOW, false);
        assert!(
            plain.starts_with("NAME"),
            "no HOST column without hosts: {plain}"
        );
    }

    #[test]
    fn every_line_fits_80_columns_and_plain_has_no_escapes() {
        let text = render_table_styled(&report(), NOW, false);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{} > 80: {line}", line.len());
        }
        assert!(!text.contains('\x1b'));
        assert!(text.contains("waiting_input"), "{text}");
        assert!(text.contains("3h05"), "{text}");
        assert!(text.contains("(off)") || text.contains("held"), "{text}");
        assert!(text.contains(" claude-code "), "{text}");
        assert!(!text.contains("claude-~"), "{text}");
        assert_eq!(text.lines().count(), 1 + 2 + 1 + 1);
    }

    #[test]
    fn colour_only_wraps_the_state_cell_and_keeps_alignment() {
        let plain = render_table_styled(&report(), NOW, false);
        let coloured = render_table_styled(&report(), NOW, true);
        assert!(
            coloured.contains("\x1b[33mwaiting_input\x1b[0m"),
            "{coloured}"
        );
        let strip = regex::Regex::new("\x1b\\[[0-9;]*m").unwrap();
        assert_eq!(strip.replace_all(&coloured, ""), plain);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(61), "1m");
        assert_eq!(human_duration(3 * 3600 + 5 * 60), "3h05");
        assert_eq!(human_duration(2 * 86400 + 4 * 3600), "2d04");
    }
}
