//! The report as one self-contained HTML file: an inline SVG timeline (phase bands, a lane per
//! agent coloured by state, event markers with hover titles) and the figures; no network.
use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{TimeZone, Utc};

use super::model::Report;
use super::parse::{Event, Log};

const W: f64 = 1000.0;
const LEFT: f64 = 150.0;
/// A lane: a row of ping ticks, the state bar, a row of other markers.
const LANE_H: f64 = 48.0;
const BAR_Y: f64 = 12.0;
const BAR_H: f64 = 18.0;
const TOP: f64 = 56.0;
/// Markers of one kind closer than this many pixels are drawn as one, with a count.
const MARKER_BIN: f64 = 5.0;
/// How many events one aggregated marker's title lists.
const TITLE_EVENTS: usize = 6;

const STATES: &[(&str, &str)] = &[
    ("running", "#5dade2"),
    ("working", "#1f78b4"),
    ("idle", "#aed6f1"),
    ("held", "#f5b041"),
    ("dead", "#e74c3c"),
    ("unreachable", "#a569bd"),
    ("stopped", "#e5e7e9"),
];

/// Which marker an event gets, if any.
fn marker_kind(name: &str) -> Option<&'static str> {
    Some(match name {
        "ping" | "ping_acked" | "ping_lost" => "ping",
        "healed" | "restarted" | "reconciled" => "restart",
        "limit_hit" | "limit_lifted" | "pool_held" | "pool_released" | "pool_probe" => "limit",
        "needs_attention" | "gave_up" | "timed_out" | "host_unreachable" => "attention",
        "agent_exited" | "tmux_server_lost" => "exit",
        "phase_advanced" | "sequence_complete" => "phase",
        "config_error" | "fetch_error" | "watchdog_started" | "watchdog_stopped" => "watchdog",
        _ => return None,
    })
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn clock(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(String::new, |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A time-axis label, as fine as the window needs.
fn tick_label(ms: i64, span_ms: i64) -> String {
    let fmt = match span_ms {
        s if s < 3_600_000 => "%H:%M:%S",
        s if s < 2 * 86_400_000 => "%H:%M",
        _ => "%m-%d %H:%M",
    };
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(String::new, |t| t.format(fmt).to_string())
}

/// One line describing an event for a hover title.
fn describe(e: &Event) -> String {
    let mut s = format!("{} {}", clock(e.ts), e.name);
    if let Some(obj) = e.fields.as_object() {
        for (k, v) in obj {
            if k == "ts" || k == "event" || k == "commits" {
                continue;
            }
            let v = match v {
                serde_json::Value::String(t) => t.chars().take(80).collect(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            let _ = write!(s, " {k}={v}");
        }
    }
    s
}

/// The whole HTML page for `report` over `log`.
pub fn render_html(report: &Report, log: &Log) -> String {
    let (from, to) = (
        report.window.from_ms,
        report.window.to_ms.max(report.window.from_ms + 1),
    );
    let x = |ms: i64| LEFT + (ms.clamp(from, to) - from) as f64 / (to - from) as f64 * W;
    let lanes: Vec<&str> = report.agents.iter().map(|a| a.name.as_str()).collect();
    let height = TOP + LANE_H * (lanes.len() as f64 + 1.0) + 30.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {} {height}" width="{}" height="{height}">"#,
        LEFT + W + 20.0,
        LEFT + W + 20.0
    );
    // Phase bands, with a boundary line through every lane.
    svg.push_str(r#"<g class="phases">"#);
    for (i, p) in report.phases.iter().enumerate() {
        let (x0, x1) = (x(p.start_ms), x(p.end_ms.unwrap_or(to)));
        let fill = if i % 2 == 0 { "#d6eaf8" } else { "#d1f2eb" };
        let _ = write!(
            svg,
            r#"<g class="phase"><title>{}</title><rect x="{x0:.1}" y="8" width="{:.1}" height="22" fill="{fill}"/><text x="{:.1}" y="23">{}</text></g><line x1="{x0:.1}" x2="{x0:.1}" y1="8" y2="{:.1}" class="edge"/>"#,
            esc(&format!(
                "phase {}: {} claims, {} reviews ({} findings, {} approvals){}",
                p.id,
                p.claims,
                p.reviews,
                p.findings,
                p.approvals,
                if p.done { ", DONE" } else { "" }
            )),
            (x1 - x0).max(1.0),
            x0 + 3.0,
            esc(&p.id),
            height - 30.0
        );
    }
    svg.push_str("</g>");
    // Time axis: six ticks.
    for i in 0..=5 {
        let ms = from + (to - from) * i / 5;
        let _ = write!(
            svg,
            r#"<text class="tick" x="{:.1}" y="46" text-anchor="middle">{}</text>"#,
            x(ms),
            esc(&tick_label(ms, to - from))
        );
    }
    // Lane 0 is the watchdog (phase and watchdog events); then one lane per agent.
    let lane_y = |i: usize| TOP + LANE_H * i as f64;
    let _ = write!(
        svg,
        r#"<g class="wdlane"><text x="4" y="{:.1}">watchdog</text></g>"#,
        lane_y(0) + 25.0
    );
    for (i, a) in report.agents.iter().enumerate() {
        let y = lane_y(i + 1);
        let _ = write!(
            svg,
            r##"<g class="lane" data-agent="{}"><text x="4" y="{:.1}">{}</text><rect x="{LEFT}" y="{:.1}" width="{W}" height="{:.1}" fill="#fbfcfc"/>"##,
            esc(&a.name),
            y + 25.0,
            esc(&a.name),
            y + BAR_Y,
            BAR_H
        );
        for (x0, x1, state) in pixel_runs(&a.spans, &x) {
            let colour = STATES
                .iter()
                .find(|(s, _)| *s == state)
                .map_or("#ccc", |(_, c)| c);
            let _ = write!(
                svg,
                r#"<rect class="st" x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}</title></rect>"#,
                y + BAR_Y,
                (x1 - x0).max(0.5),
                BAR_H,
                state
            );
        }
        svg.push_str("</g>");
    }
    // Markers, binned per lane and kind.
    let lane_of: BTreeMap<&str, usize> =
        lanes.iter().enumerate().map(|(i, n)| (*n, i + 1)).collect();
    let mut bins: BTreeMap<(usize, &'static str, i64), Vec<&Event>> = BTreeMap::new();
    for e in log.events.iter().filter(|e| e.ts >= from && e.ts <= to) {
        let Some(kind) = marker_kind(&e.name) else {
            continue;
        };
        let lane = match (kind, e.agent.as_deref()) {
            ("phase" | "watchdog", _) | (_, None) => 0,
            (_, Some(a)) => lane_of.get(a).copied().unwrap_or(0),
        };
        let bin = ((x(e.ts) - LEFT) / MARKER_BIN) as i64;
        bins.entry((lane, kind, bin)).or_default().push(e);
    }
    svg.push_str(r#"<g class="markers">"#);
    for ((lane, kind, _), evs) in &bins {
        let mx = x(evs[0].ts);
        let y = lane_y(*lane);
        let mut title = if evs.len() > 1 {
            format!("{} events:\n", evs.len())
        } else {
            String::new()
        };
        for e in evs.iter().take(TITLE_EVENTS) {
            title.push_str(&describe(e));
            title.push('\n');
        }
        if evs.len() > TITLE_EVENTS {
            let _ = write!(title, "… and {} more", evs.len() - TITLE_EVENTS);
        }
        let title = esc(title.trim_end());
        // Pings are ticks above the bar (wider when several merge); the rest sit below it.
        let below = y + BAR_Y + BAR_H + 3.0;
        let shape = match *kind {
            "ping" => format!(
                r#"<rect x="{:.1}" y="{:.1}" width="{}" height="8"/>"#,
                mx - 1.0,
                y + 2.0,
                if evs.len() > 1 { 3 } else { 2 }
            ),
            "restart" => format!(r#"<path d="M{mx:.1} {below:.1}l5 9h-10z"/>"#),
            "limit" | "watchdog" => format!(
                r#"<rect x="{:.1}" y="{:.1}" width="7" height="7"/>"#,
                mx - 3.5,
                below + 1.0
            ),
            "phase" => format!(r#"<path d="M{mx:.1} {:.1}l5 6l-5 6l-5 -6z"/>"#, y + BAR_Y),
            _ => format!(r#"<path d="M{mx:.1} {below:.1}l5 5l-5 5l-5 -5z"/>"#),
        };
        let _ = write!(
            svg,
            r#"<g class="m {kind}"><title>{title}</title>{shape}</g>"#
        );
    }
    svg.push_str("</g></svg>");

    let mut legend = String::new();
    for (s, c) in STATES {
        let _ = write!(legend, r#"<span><i style="background:{c}"></i>{s}</span>"#);
    }
    for k in [
        "ping",
        "restart",
        "limit",
        "attention",
        "exit",
        "phase",
        "watchdog",
    ] {
        let _ = write!(legend, r#"<span class="mk {k}">● {k}</span>"#);
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>orch report</title>
<style>
body{{font:14px system-ui,sans-serif;margin:16px;color:#1c2833;background:#fff}}
h1{{font-size:18px}} pre{{background:#f8f9f9;padding:10px;overflow:auto}}
svg text{{font:12px system-ui,sans-serif;fill:#1c2833}} svg .tick{{fill:#566573;font-size:11px}}
.edge{{stroke:#85929e;stroke-dasharray:3 3}}
.m.ping{{fill:#1b4f72}} .m.restart{{fill:#c0392b}} .m.limit{{fill:#d68910}}
.m.attention{{fill:#8e44ad}} .m.exit{{fill:#17202a}} .m.phase{{fill:#117a65}} .m.watchdog{{fill:#7b7d7d}}
.m:hover{{stroke:#000;stroke-width:2}}
.legend span{{margin-right:12px}} .legend i{{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:middle}}
.mk.ping{{color:#1b4f72}} .mk.restart{{color:#c0392b}} .mk.limit{{color:#d68910}} .mk.attention{{color:#8e44ad}}
.mk.exit{{color:#17202a}} .mk.phase{{color:#117a65}} .mk.watchdog{{color:#7b7d7d}}
</style></head><body>
<h1>orch report: {} → {}</h1>
<div class="legend">{legend}</div>
{svg}
<pre>{}</pre>
</body></html>
"#,
        esc(report.window.from.as_deref().unwrap_or("-")),
        esc(report.window.to.as_deref().unwrap_or("-")),
        esc(&super::render_text(report))
    )
}

/// The spans as runs of whole pixels: each pixel takes the state that covers most of it, and
/// neighbouring pixels in one state merge, so a lane has at most one rect per pixel.
fn pixel_runs(
    spans: &[super::model::Span],
    x: &impl Fn(i64) -> f64,
) -> Vec<(f64, f64, &'static str)> {
    let mut cover: BTreeMap<i64, Vec<(&'static str, f64)>> = BTreeMap::new();
    for s in spans {
        let (x0, x1) = (x(s.start_ms), x(s.end_ms));
        let mut px = x0.floor() as i64;
        while (px as f64) < x1 {
            let part = x1.min(px as f64 + 1.0) - x0.max(px as f64);
            let cell = cover.entry(px).or_default();
            match cell.iter_mut().find(|(st, _)| *st == s.state) {
                Some((_, w)) => *w += part,
                None => cell.push((s.state, part)),
            }
            px += 1;
        }
    }
    let mut runs: Vec<(f64, f64, &'static str)> = Vec::new();
    for (px, cell) in cover {
        let Some(&(state, _)) = cell.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
            continue;
        };
        let (a, b) = (px as f64, px as f64 + 1.0);
        match runs.last_mut() {
            Some(last) if last.2 == state && (last.1 - a).abs() < 1e-9 => last.1 = b,
            _ => runs.push((a, b, state)),
        }
    }
    runs
}
