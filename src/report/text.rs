//! The report as text for a terminal, and the short digest sent to notification sinks when
//! the sequence completes.
use std::fmt::Write;
use std::path::Path;

use super::model::{Report, Summary};

fn secs(s: f64) -> String {
    let s = s.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".to_string(), f)
}

fn summary(s: &Summary) -> String {
    if s.samples == 0 {
        return "no samples".into();
    }
    format!(
        "p50 {} p95 {} max {} ({} samples)",
        opt(s.p50, secs),
        opt(s.p95, secs),
        opt(s.max, secs),
        s.samples
    )
}

/// The whole report as aligned text.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let w = &r.window;
    let _ = writeln!(
        o,
        "orch report: {} → {} ({})",
        w.from.as_deref().unwrap_or("-"),
        w.to.as_deref().unwrap_or("-"),
        secs(w.seconds)
    );
    let _ = writeln!(
        o,
        "{} events read, {} malformed lines skipped, {} unknown events; sequence {}",
        r.events.read,
        r.events.malformed,
        r.events.unknown,
        if r.sequence_complete {
            "complete"
        } else {
            "not complete"
        }
    );
    let _ = writeln!(o, "\nPHASES");
    let _ = writeln!(
        o,
        "  {:<12} {:<20} {:>10} {:>6} {:>7} {:>8} {:>9} {:>7} {:>5}",
        "id",
        "started",
        "duration",
        "claims",
        "reviews",
        "findings",
        "approvals",
        "commits",
        "done"
    );
    for p in &r.phases {
        let started = p.started_at.as_deref().unwrap_or("-");
        let _ = writeln!(
            o,
            "  {:<12} {:<20} {:>10} {:>6} {:>7} {:>8} {:>9} {:>7} {:>5}",
            p.id,
            started.get(..19).unwrap_or(started),
            secs(p.duration_seconds),
            p.claims,
            p.reviews,
            p.findings,
            p.approvals,
            p.commits.map_or("-".into(), |c| c.to_string()),
            if p.done { "DONE" } else { "-" }
        );
    }
    let _ = writeln!(o, "\nAGENTS");
    let _ = writeln!(
        o,
        "  {:<14} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6}",
        "name", "uptime", "up", "working", "idle", "held", "dead", "restarts", "stalls", "pings"
    );
    for a in &r.agents {
        let s = &a.seconds;
        let _ = writeln!(
            o,
            "  {:<14} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6}",
            a.name,
            opt(a.uptime_pct, |p| format!("{p:.1}%")),
            secs(s.running + s.working + s.idle),
            secs(s.working),
            secs(s.idle),
            secs(s.held),
            secs(s.dead),
            a.restarts,
            a.stalls,
            a.pings_received
        );
        if !a.restarts_by_reason.is_empty() {
            let by: Vec<String> = a
                .restarts_by_reason
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(o, "  {:<14} restarts: {}", "", by.join(", "));
        }
    }
    let h = &r.health;
    let l = &h.ping_ack_latency;
    let _ = writeln!(o, "\nLOOP HEALTH");
    let _ = writeln!(
        o,
        "  pings                {} ({} delivered, {} not, {} lost)",
        h.pings, h.pings_delivered, h.pings_undelivered, h.pings_lost
    );
    let latency = match l.source {
        "none" => "no acknowledgements or delivery times in the log".to_string(),
        src => format!(
            "p50 {} p95 {} ({} samples, from {src})",
            opt(l.p50_ms, |x| format!("{x:.0}ms")),
            opt(l.p95_ms, |x| format!("{x:.0}ms")),
            l.samples
        ),
    };
    let _ = writeln!(o, "  ping→ack latency     {latency}");
    let _ = writeln!(
        o,
        "  stall detection      {}",
        summary(&h.stall_detect_seconds)
    );
    let _ = writeln!(
        o,
        "  restart MTTR         {}",
        summary(&h.restart_mttr_seconds)
    );
    let _ = writeln!(o, "  restarts             {}", h.restarts);
    let _ = writeln!(o, "  held for limits      {:.2}h", h.limit_held_hours);
    let _ = writeln!(
        o,
        "  handoffs             {} ({}/h)",
        h.handoffs,
        opt(h.handoffs_per_hour, |x| format!("{x:.1}"))
    );
    let _ = writeln!(
        o,
        "  commits              {}",
        h.commits.map_or("-".into(), |c| c.to_string())
    );
    let _ = writeln!(
        o,
        "  attention            {} · config errors {} · fetch errors {} · watchdog starts {}",
        h.attention, h.config_errors, h.fetch_errors, h.watchdog_starts
    );
    o
}

/// The short summary for notification sinks: how far the loop got, what broke and healed,
/// and where the HTML report is.
pub fn digest(r: &Report, html: Option<&Path>) -> String {
    let done = r.phases.iter().filter(|p| p.done).count();
    let h = &r.health;
    let mut o = format!(
        "orch: {} — {done}/{} phases done in {}; {} handoffs, {} restarts, {:.1}h held for limits",
        if r.sequence_complete {
            "sequence complete"
        } else {
            "loop report"
        },
        r.phases.len(),
        secs(r.window.seconds),
        h.handoffs,
        h.restarts,
        h.limit_held_hours
    );
    for p in &r.phases {
        let _ = write!(
            o,
            "\n  {} {}: {} claims, {} findings, {} approvals{}",
            p.id,
            secs(p.duration_seconds),
            p.claims,
            p.findings,
            p.approvals,
            if p.done { ", DONE" } else { "" }
        );
    }
    let troubled: Vec<String> = r
        .agents
        .iter()
        .filter(|a| a.restarts > 0 || a.attention > 0)
        .map(|a| {
            format!(
                "{} ({} restarts, {} attention)",
                a.name, a.restarts, a.attention
            )
        })
        .collect();
    if !troubled.is_empty() {
        let _ = write!(o, "\n  trouble: {}", troubled.join(", "));
    }
    if let Some(path) = html {
        let _ = write!(o, "\n  report: {}", path.display());
    }
    o
}
