//! Which keys agents.toml knows, where each value sits in the file (line:col), and
//! the "did you mean" suggestion for a key that is not known.
use std::ops::Range;

use toml::de::{DeTable, DeValue};

const AGENT_KEYS: &[&str] = &[
    "backend",
    "model",
    "watch",
    "dir",
    "enabled",
    "resume",
    "env",
    "auto_accept",
    "secrets_dir",
    "files",
    "worktree",
    "grace_period",
    "timeout",
    "restart",
    "max_restarts",
    "restart_backoff",
    "restart_backoff_max",
    "restart_reset_after",
    "hooks",
    "rotation",
];
const ROTATION_KEYS: &[&str] = &[
    "every_iterations",
    "at_context_pct",
    "handoff_file",
    "handoff_timeout",
];
const DEFAULTS_KEYS: &[&str] = &["session_prefix", "log_dir", "project_dir", "tmux_socket"];
const AGENT_ONLY_KEYS: &[&str] = &[
    "name",
    "kind",
    "role",
    "session",
    "prompt",
    "prompt_file",
    "wake",
    "host",
    "pool",
];
const WAKE_KEYS: &[&str] = &["interval", "prompt_file"];
const SERVICE_KEYS: &[&str] = &["name", "command", "dir", "enabled", "env", "host"];
const API_KEYS: &[&str] = &["metrics_listen"];
const POOL_KEYS: &[&str] = &["release_stagger", "reset_slack", "probe_ladder"];
const HOST_KEYS: &[&str] = &[
    "ssh",
    "ssh_options",
    "tmux_socket",
    "orch_bin",
    "transport",
    "slurm",
    "via",
    "engine",
    "image",
    "options",
    "mounts",
];
const WATCHDOG_KEYS: &[&str] = &[
    "signal_interval",
    "heavy_interval",
    "stall_grace",
    "limit_probe_fallback",
    "limit_reset_slack",
    "attention_after",
    "phase_quiet_after",
    "repeat_after",
    "batch_window",
    "max_resends",
];
const NOTIFY_KEYS: &[&str] = &[
    "webhook", "command", "format", "events", "agents", "timeout",
];
pub const BACKEND_KEYS: &[&str] = &[
    "preset",
    "pool",
    "screen_rules",
    "dialogs",
    "bin",
    "flags",
    "prompt_delivery",
    "process_name",
    "submit_key",
    "model_flag",
    "supports_resume",
    "resume_flag",
    "remote_control",
    "remote_control_flag",
    "active_re",
    "limit_re",
    "fatal_re",
    "footer_ui",
    "log_grace",
    "stall_idle",
    "preamble",
    "attach",
    "server",
    "connect_delay",
    "startup_settle",
    "busy_input",
    "model_env",
    "stop_keys",
];
const LOOP_KEYS: &[&str] = &[
    "state_file",
    "done_marker",
    "kickoff_template",
    "roles_dir",
    "auto_advance",
    "resume_phase",
    "phases",
    "handoff",
    "on_complete",
];
const PHASE_KEYS: &[&str] = &["id", "plan", "status", "models"];
const HANDOFF_KEYS: &[&str] = &[
    "repo",
    "state_subdir",
    "claim_pattern",
    "review_pattern",
    "claim_pings",
    "review_pings",
    "inboxes",
];
const ON_COMPLETE_KEYS: &[&str] = &["run", "trigger_file"];
const TOP_KEYS: &[&str] = &[
    "defaults", "watchdog", "backend", "agent", "service", "loop", "api", "notify", "jobs",
    "profile", "host", "pool",
];

/// A key the schema does not know, with where it is and the nearest known key.
#[derive(Debug)]
pub struct UnknownKey {
    pub path: String,
    pub span: Range<usize>,
    pub suggestion: Option<&'static str>,
}

/// Walk the parsed document and report every key the schema does not know.
pub fn unknown_keys(root: &DeTable<'_>) -> Vec<UnknownKey> {
    let mut out = Vec::new();
    check_table(root, "", TOP_KEYS, &mut out);
    for (key, value) in root {
        let path = key.get_ref().as_ref();
        match (path, value.get_ref()) {
            ("defaults", DeValue::Table(t)) => {
                let known: Vec<&str> = [DEFAULTS_KEYS, AGENT_KEYS].concat();
                check_keys(t, "defaults", &known, &mut out);
                if let Some(DeValue::Table(r)) = t.get("rotation").map(|v| v.get_ref()) {
                    check_table(r, "defaults.rotation", ROTATION_KEYS, &mut out);
                }
            }
            ("watchdog", DeValue::Table(t)) => check_table(t, "watchdog", WATCHDOG_KEYS, &mut out),
            ("api", DeValue::Table(t)) => check_table(t, "api", API_KEYS, &mut out),
            ("backend", DeValue::Table(t)) => {
                for (name, b) in t {
                    if let DeValue::Table(bt) = b.get_ref() {
                        let p = format!("backend.{}", name.get_ref());
                        check_table(bt, &p, BACKEND_KEYS, &mut out);
                    }
                }
            }
            ("agent", DeValue::Array(items)) => {
                let known: Vec<&str> = [AGENT_ONLY_KEYS, AGENT_KEYS].concat();
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        let p = format!("agent[{i}]");
                        check_keys(t, &p, &known, &mut out);
                        if let Some(DeValue::Table(w)) = t.get("wake").map(|v| v.get_ref()) {
                            check_table(w, &format!("{p}.wake"), WAKE_KEYS, &mut out);
                        }
                        if let Some(DeValue::Table(r)) = t.get("rotation").map(|v| v.get_ref()) {
                            check_table(r, &format!("{p}.rotation"), ROTATION_KEYS, &mut out);
                        }
                    }
                }
            }
            ("service", DeValue::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        check_table(t, &format!("service[{i}]"), SERVICE_KEYS, &mut out);
                    }
                }
            }
            ("loop", DeValue::Table(t)) => check_loop(t, &mut out),
            ("notify", DeValue::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(t) = item.get_ref() {
                        check_table(t, &format!("notify[{i}]"), NOTIFY_KEYS, &mut out);
                    }
                }
            }
            (k @ ("jobs" | "profile"), v) => {
                super::jobs::unknown_keys(k, v, &check_table, &mut out)
            }
            ("host", DeValue::Table(t)) => {
                for (name, h) in t {
                    if let DeValue::Table(ht) = h.get_ref() {
                        let p = format!("host.{}", name.get_ref());
                        check_table(ht, &p, HOST_KEYS, &mut out);
                    }
                }
            }
            ("pool", DeValue::Table(t)) => {
                for (name, h) in t {
                    if let DeValue::Table(pt) = h.get_ref() {
                        let p = format!("pool.{}", name.get_ref());
                        check_table(pt, &p, POOL_KEYS, &mut out);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn check_loop(t: &DeTable<'_>, out: &mut Vec<UnknownKey>) {
    check_table(t, "loop", LOOP_KEYS, out);
    for (key, value) in t {
        match (key.get_ref().as_ref(), value.get_ref()) {
            ("phases", DeValue::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(p) = item.get_ref() {
                        check_table(p, &format!("loop.phases[{i}]"), PHASE_KEYS, out);
                    }
                }
            }
            ("handoff", DeValue::Table(h)) => check_table(h, "loop.handoff", HANDOFF_KEYS, out),
            ("on_complete", DeValue::Table(o)) => {
                check_table(o, "loop.on_complete", ON_COMPLETE_KEYS, out)
            }
            _ => {}
        }
    }
}

fn check_table(t: &DeTable<'_>, path: &str, known: &[&'static str], out: &mut Vec<UnknownKey>) {
    check_keys(t, path, known, out)
}

fn check_keys(t: &DeTable<'_>, path: &str, known: &[&'static str], out: &mut Vec<UnknownKey>) {
    for key in t.keys() {
        let name: &str = key.get_ref().as_ref();
        if !known.contains(&name) {
            let full = if path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            out.push(UnknownKey {
                path: full,
                span: key.span(),
                suggestion: nearest(name, known),
            });
        }
    }
}

/// The known key closest to `name`, if it is close enough to be a likely typo.
pub fn nearest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Edit distance counting a swap of two neighbouring letters as one edit (`modle` → `model`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// One step of a path into the document: a table key or an array index.
#[derive(Debug, Clone, Copy)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The span of the value at `path`, or of the nearest enclosing value that exists.
pub fn locate(root: &DeTable<'_>, path: &[Seg<'_>]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let Seg::Key(k) = first else { return None };
    let (_, mut value) = root.get_key_value(*k)?;
    let mut best = value.span();
    for seg in rest {
        let next = match (seg, value.get_ref()) {
            (Seg::Key(k), DeValue::Table(t)) => t.get(*k),
            (Seg::Index(i), DeValue::Array(a)) => a.get(*i),
            _ => None,
        };
        match next {
            Some(v) => {
                value = v;
                best = v.span();
            }
            None => break,
        }
    }
    Some(best)
}

/// The dotted path of the value whose span holds `offset` (for serde's type errors).
pub fn path_at(root: &DeTable<'_>, offset: usize) -> Option<String> {
    fn walk(v: &toml::Spanned<DeValue<'_>>, offset: usize, path: String) -> Option<String> {
        let children: Vec<(String, &toml::Spanned<DeValue<'_>>)> = match v.get_ref() {
            DeValue::Table(t) => t
                .iter()
                .map(|(k, c)| (join(&path, k.get_ref()), c))
                .collect(),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{path}[{i}]"), c))
                .collect(),
            _ => return v.span().contains(&offset).then_some(path),
        };
        children.into_iter().find_map(|(p, c)| walk(c, offset, p))
    }
    fn join(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    }
    root.iter()
        .find_map(|(k, c)| walk(c, offset, k.get_ref().to_string()))
}

/// 1-based line and column of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_of_session_prefix_suggests_it() {
        assert_eq!(
            nearest("sesion_prefix", &[DEFAULTS_KEYS, AGENT_KEYS].concat()),
            Some("session_prefix")
        );
        assert_eq!(nearest("zzzzzz", DEFAULTS_KEYS), None);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }
}
