//! The human line of one event, shared by `orch demo`, `orch events` and `orch top`:
//! `  <time>  <event>  <agent>  (what)`. Pure: the caller gives the time column and commit subjects.
use serde_json::Value;

/// The line of `event` (one events.jsonl object) with `time` in the first column; `subjects`
/// turns the commit shas of a ping into their subjects (empty when unknown).
pub fn line(event: &Value, time: &str, subjects: &dyn Fn(&[String]) -> Vec<String>) -> String {
    let name = str_field(event, "event");
    let agent = str_field(event, "agent");
    let what = what(event, subjects);
    format!("  {time}  {name:<18} {agent:<10} {what}")
        .trim_end()
        .to_string()
}

/// The `(what)` part of the line: empty when the event says nothing more.
pub fn what(event: &Value, subjects: &dyn Fn(&[String]) -> Vec<String>) -> String {
    let detail = detail(str_field(event, "event"), event, subjects);
    if detail.is_empty() {
        String::new()
    } else {
        format!("({detail})")
    }
}

/// No commit subjects known.
pub fn no_subjects(_: &[String]) -> Vec<String> {
    Vec::new()
}

pub fn str_field<'a>(event: &'a Value, key: &str) -> &'a str {
    event.get(key).and_then(Value::as_str).unwrap_or("")
}

fn detail(name: &str, e: &Value, subjects: &dyn Fn(&[String]) -> Vec<String>) -> String {
    let s = |k: &str| str_field(e, k).to_string();
    let mut parts: Vec<String> = Vec::new();
    match name {
        "agent_started" => {
            if !s("phase").is_empty() {
                parts.push(format!("phase {}", s("phase")));
            }
            if !s("model").is_empty() {
                parts.push(format!("model {}", s("model")));
            }
        }
        "agent_stopped" => parts.push(format!("by {}", s("by"))),
        "ping" => {
            let shas: Vec<String> = e
                .get("commits")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let named = if shas.is_empty() {
                Vec::new()
            } else {
                subjects(&shas)
            };
            if !named.is_empty() {
                parts.push(named.join("; "));
            } else {
                parts.push(s("reason"));
                if !s("file").is_empty() {
                    parts.push(s("file"));
                }
            }
            if e.get("delivered") == Some(&Value::Bool(false)) {
                parts.push("not confirmed".into());
            }
        }
        "phase_advanced" => parts.push(format!("{} -> {}", s("from"), s("to"))),
        "sequence_complete" => {
            parts.push(format!("after {}", s("phase")));
            if !s("on_complete").is_empty() {
                parts.push(format!("on-complete task {}", s("on_complete")));
            }
        }
        "healed" => parts.push(s("reason")),
        "limit_hit" => parts.push(format!("until {}", s("until"))),
        "watchdog_started" => {
            if !s("phase").is_empty() {
                parts.push(format!("phase {}", s("phase")));
            }
        }
        "watchdog_stopped" => parts.push(s("reason")),
        "config_error" | "fetch_error" => parts.push(s("error")),
        "needs_attention" => {
            parts.push(s("state"));
            parts.push(s("rule"));
            if let Some(code) = e.get("exit_status").and_then(Value::as_i64) {
                parts.push(format!("exit status {code}"));
            }
        }
        "ping_queued" => parts.push(format!("{}, waits on {}", s("reason"), s("waiting_on"))),
        "heal_limit" => parts.push(format!(
            "{} healed {} times: left alone",
            s("reason"),
            e.get("heals").and_then(Value::as_u64).unwrap_or(0)
        )),
        "state_changed" => parts.push(format!("{} -> {}", s("from"), s("to"))),
        "host_unreachable" => parts.push(format!("{}: {}", s("host"), s("error"))),
        "host_back" => parts.push(s("host")),
        "pool_held" => parts.push(format!(
            "pool {} held until {} ({})",
            s("pool"),
            s("until"),
            s("source")
        )),
        "pool_probe" => parts.push(format!(
            "pool {}, probe {}",
            s("pool"),
            e.get("probe").and_then(Value::as_u64).unwrap_or(0)
        )),
        "pool_released" => parts.push(format!(
            "pool {}, {}, {} still held",
            s("pool"),
            s("how"),
            e.get("remaining").and_then(Value::as_u64).unwrap_or(0)
        )),
        _ if !s("summary").is_empty() => parts.push(s("summary")),
        _ => {
            let rest: serde_json::Map<String, Value> = e
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "ts" | "event" | "agent"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            if !rest.is_empty() {
                parts.push(Value::Object(rest).to_string());
            }
        }
    }
    parts.retain(|p| !p.is_empty());
    parts.join(", ")
}

#[cfg(test)]
mod attention_tests {
    use super::*;

    #[test]
    fn pool_events_read_as_pool_state_and_release() {
        let held = serde_json::json!({"event": "pool_held", "agent": "b", "pool": "max-a",
            "until": "2026-01-01T10:00:00+00:00", "source": "screen"});
        assert_eq!(
            what(&held, &no_subjects),
            "(pool max-a held until 2026-01-01T10:00:00+00:00 (screen))"
        );
        let rel = serde_json::json!({"event": "pool_released", "agent": "a", "pool": "max-a",
            "how": "stagger", "remaining": 1});
        assert_eq!(
            what(&rel, &no_subjects),
            "(pool max-a, stagger, 1 still held)"
        );
    }

    #[test]
    fn needs_attention_reads_as_state_rule_and_exit_status_not_raw_json() {
        let e = serde_json::json!({"event": "needs_attention", "agent": "builder",
            "state": "network_error", "rule": "claude preflight cannot connect",
            "exit_status": 1, "lines": ["a", "b"]});
        assert_eq!(
            what(&e, &no_subjects),
            "(network_error, claude preflight cannot connect, exit status 1)"
        );
    }
}
