//! `orch send NAME TEXT|-`: type a message into an agent's pane the way the watchdog pings
//! (literal keys or a bracketed paste, submit, confirmed), logged as a `ping` with reason `human`.
use std::io::Read;
use std::process::ExitCode;

use serde_json::json;

use crate::config::Config;
use crate::fleet::ping_log::{self, OutboxRecord};
use crate::tmux::{DeliverOptions, DeliveryOutcome, Tmux};
use crate::{Error, Result, events, fleet, status};

pub fn run(cfg: &Config, name: &str, text: &str) -> Result<ExitCode> {
    let text = if text == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .read_to_string(&mut buf)
            .map_err(|e| Error::Runtime(format!("cannot read the message from stdin: {e}")))?;
        buf
    } else {
        text.to_string()
    };
    let outcome = send_message(cfg, &fleet::tmux_for(cfg), name, &text)?;
    println!(
        "delivered to {name} (confirmed after {} submit key{})",
        outcome.submits,
        if outcome.submits == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Deliver `text` to the agent `name` and log a `ping` (reason `human`). Errors: an unknown
/// agent or an empty text (usage, exit 2); not running, held by a usage-limit hold, or a
/// submit never confirmed (runtime, exit 1) — each one sentence naming the agent.
pub fn send_message(cfg: &Config, tmux: &Tmux, name: &str, text: &str) -> Result<DeliveryOutcome> {
    let Some(agent) = cfg.agent(name) else {
        let known: Vec<&str> = cfg.agents.iter().map(|a| a.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "unknown agent {name:?} in {} (known agents: {})",
            cfg.path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if text.trim().is_empty() {
        return Err(Error::Usage(format!(
            "the message to {name} is empty: give the text, or - to read it from stdin"
        )));
    }
    let running = tmux.fleet()?.get(&agent.session).is_some_and(|p| !p.dead);
    if !running {
        return Err(Error::Runtime(format!(
            "agent {name} is not running (no live session {}): nothing was sent; start it with `orch up {name}`",
            agent.session
        )));
    }
    if let Some(until) = status::read_hold(&cfg.state_dir, &agent.session) {
        let at = chrono::DateTime::from_timestamp(until as i64, 0)
            .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
            .unwrap_or_else(|| "its reset".into());
        return Err(Error::Runtime(format!(
            "agent {name} is held by a usage-limit hold until {at}: nothing was sent"
        )));
    }
    if let Some(hold) = crate::fleet::pool_hold::holding(cfg, &agent.name) {
        let at = chrono::DateTime::from_timestamp(hold.until as i64, 0)
            .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
            .unwrap_or_else(|| "its reset".into());
        return Err(Error::Runtime(format!(
            "agent {name} is held with its account pool {} until {at}: nothing was sent",
            hold.pool
        )));
    }
    let submit = cfg.backend_of(agent).submit_key.clone();
    let opts = DeliverOptions::default();
    // A ping like the watchdog's: an id in a trailing mark, and its steps in the outbox history
    // (settled by the screen here: `orch send` reports the delivery itself, never re-sends).
    let id = ping_log::next_id(cfg, name);
    let began = std::time::Instant::now();
    let outcome = tmux.deliver(&agent.session, &ping_log::mark(text, &id), &submit, &opts)?;
    let mut typed = OutboxRecord::new(&id, "typed", "human", 1);
    typed.confirmed = Some(outcome.confirmed);
    ping_log::record(cfg, name, &typed);
    fleet::log_event(
        cfg,
        events::PING,
        json!({"agent": name, "reason": "human", "delivered": outcome.confirmed, "id": id, "attempt": 1}),
    );
    if outcome.confirmed {
        let mut last = OutboxRecord::new(&id, "arrived", "human", 1);
        last.confirmed_by = Some("screen".into());
        last.latency_ms = Some(began.elapsed().as_millis() as i64);
        ping_log::record(cfg, name, &last);
        fleet::log_event(
            cfg,
            events::PING_ACKED,
            json!({"agent": name, "id": id, "reason": "human", "source": "screen",
                   "latency_ms": last.latency_ms, "attempts": 1}),
        );
    } else {
        ping_log::record(cfg, name, &OutboxRecord::new(&id, "lost", "human", 1));
        fleet::log_event(
            cfg,
            events::PING_LOST,
            json!({"agent": name, "id": id, "reason": "human", "attempts": 1,
                   "why": "submit not confirmed"}),
        );
    }
    if !outcome.confirmed {
        return Err(Error::Runtime(format!(
            "the message was typed into {name} but its submit was not confirmed after {} submit key{}",
            outcome.submits,
            if outcome.submits == 1 { "" } else { "s" }
        )));
    }
    Ok(outcome)
}
