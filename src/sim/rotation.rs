//! The sim's side of context rotation: a growing context reported as `orch statusline` records
//! it, hook records as `orch hook` writes them, compactions, and answering a handoff request.
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::Identity;
use super::git::Checkout;
use super::roles::StepError;
use super::screen::Screen;

/// Env knobs: the context fill at start and its growth per step (percent; no records when
/// the step is unset or 0), hook records on every turn (`1`), a compaction's length (ms).
pub const ENV_CONTEXT_START: &str = "ORCH_SIM_CONTEXT_START";
pub const ENV_CONTEXT_STEP: &str = "ORCH_SIM_CONTEXT_STEP";
pub const ENV_HOOKS: &str = "ORCH_SIM_HOOKS";
pub const ENV_COMPACT_MS: &str = "ORCH_SIM_COMPACT_MS";

/// What the sim reports about itself, through the same files the real hooks and statusline
/// write (`<log_dir>/hooks/<agent>.jsonl`, `<log_dir>/state/context/<agent>.json`).
pub struct Reporter {
    agent: String,
    log_dir: Option<PathBuf>,
    hooks: bool,
    start: f64,
    step: f64,
    pct: f64,
    compact_for: Duration,
    pub session_id: String,
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Reporter {
    pub fn from_env(id: &Identity) -> Self {
        let start = env_f64(ENV_CONTEXT_START).unwrap_or(10.0).clamp(0.0, 100.0);
        Reporter {
            agent: id.agent.clone(),
            log_dir: id.log_dir.clone(),
            hooks: std::env::var(ENV_HOOKS).is_ok_and(|v| v.trim() == "1"),
            start,
            step: env_f64(ENV_CONTEXT_STEP).unwrap_or(0.0).max(0.0),
            pct: start,
            compact_for: Duration::from_millis(
                env_f64(ENV_COMPACT_MS).map_or(3000, |v| v.max(0.0) as u64),
            ),
            session_id: format!(
                "sim-{}-{}",
                std::process::id(),
                chrono::Utc::now().timestamp_millis()
            ),
        }
    }

    /// Write one hook record (always when `forced`, else only with ORCH_SIM_HOOKS=1).
    fn hook(&self, event: &str, mut input: Value, forced: bool) {
        let Some(dir) = self.log_dir.as_ref().filter(|_| self.hooks || forced) else {
            return;
        };
        input["session_id"] = json!(self.session_id);
        let _ = crate::hooks::handle(dir, &self.agent, event, &input, chrono::Utc::now());
    }

    /// The session began (SessionStart, source `startup`; with a resume id, `resume`).
    pub fn started(&self, resumed: bool) {
        let source = if resumed { "resume" } else { "startup" };
        self.hook("SessionStart", json!({ "source": source }), false);
        self.report();
    }

    /// A turn ended: the context grew by one step (Stop, then the statusline record).
    pub fn turn_done(&mut self) {
        self.pct = (self.pct + self.step).min(100.0);
        self.hook("Stop", json!({}), false);
        self.report();
    }

    /// Write the statusline record as `orch statusline` does (only when the context grows).
    fn report(&self) {
        let Some(dir) = self.log_dir.as_ref().filter(|_| self.step > 0.0) else {
            return;
        };
        let input = json!({
            "session_id": self.session_id,
            "context_window": {
                "used_percentage": self.pct,
                "context_window_size": 200_000,
                "current_usage": { "input_tokens": (self.pct * 2000.0) as u64 },
            },
            "rate_limits": { "five_hour": { "used_percentage": 1 } },
        });
        let _ = crate::context::record_statusline(dir, &self.agent, &input, chrono::Utc::now());
    }

    /// Compact the conversation: PreCompact, an idle screen for ORCH_SIM_COMPACT_MS, then
    /// SessionStart with source `compact`; the context is back at its start.
    pub fn compact(&mut self, scr: &mut Screen) -> crate::Result<()> {
        scr.say("● Compacting the conversation (simulated)")?;
        self.hook("PreCompact", json!({ "trigger": "auto" }), true);
        scr.prompt()?;
        std::thread::sleep(self.compact_for);
        self.hook("SessionStart", json!({ "source": "compact" }), true);
        self.pct = self.start;
        self.report();
        scr.say("")?;
        scr.say("● Conversation compacted")
    }
}

/// A handoff request typed by orch: the note's path and the request's id.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub file: String,
    pub id: String,
}

/// The request in `line`, if it is one (`handoff note `<file>`` and `[orch:handoff <id>]`).
pub fn parse_request(line: &str) -> Option<Request> {
    let rest = &line[line.find("handoff note `")? + "handoff note `".len()..];
    let file = &rest[..rest.find('`')?];
    let m = &line[line.find("[orch:handoff ")? + "[orch:handoff ".len()..];
    let id = &m[..m.find(']')?];
    (!file.is_empty() && !id.is_empty() && !file.contains("..")).then(|| Request {
        file: file.to_string(),
        id: id.to_string(),
    })
}

/// The handoff note a kickoff asks to read first (`read <file> first...`).
pub fn note_in_kickoff(text: &str) -> Option<&str> {
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("read ")?;
        let end = rest.find(" first")?;
        Some(rest[..end].trim())
    })
}

/// How the sim answers a handoff request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    Proper,
    /// Never writes the note.
    NoNote,
    /// Writes and pushes the note, then leaves an uncommitted change.
    Dirty,
    /// Writes and pushes the note, then compacts before going idle.
    Compact,
}

/// Write the note (ending with its marker), commit and push it, as `answer` says.
pub fn write_note(
    scr: &mut Screen,
    clone: &Checkout,
    id: &Identity,
    req: &Request,
    answer: Answer,
) -> Result<(), StepError> {
    if answer == Answer::NoNote {
        scr.say("Noted the handoff request; not writing a note (simulated fault).")?;
        return Ok(());
    }
    let text = format!(
        "# Handoff from {agent} (phase {phase})\n\n\
         - done: everything up to the last push on origin/main\n\
         - next: pull, read the phase's review file and go on from there\n\n\
         [orch:handoff {rid}]\n",
        agent = id.agent,
        phase = id.phase,
        rid = req.id,
    );
    let path = clone.dir().join(&req.file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| StepError::File {
            path: parent.to_path_buf(),
            doing: "create the folder",
            source,
        })?;
    }
    std::fs::write(&path, &text).map_err(|source| StepError::File {
        path: path.clone(),
        doing: "write",
        source,
    })?;
    scr.say(&format!("● Wrote the handoff note {}", req.file))?;
    let subject = format!("handoff: {} note", id.agent);
    let hash = clone.commit(&[&req.file], &subject)?;
    scr.say(&format!("● Committed {hash} {subject}"))?;
    clone.push()?;
    scr.say(&format!("● Pushed `{subject}` to origin/main"))?;
    if answer == Answer::Dirty {
        let scratch = clone.dir().join(format!("uncommitted-{}.txt", id.agent));
        std::fs::write(&scratch, "work in progress, never committed\n").map_err(|source| {
            StepError::File {
                path: scratch.clone(),
                doing: "write",
                source,
            }
        })?;
        scr.say("Left an uncommitted file behind (simulated fault).")?;
    }
    Ok(())
}

impl super::Sim {
    /// Answer orch's handoff request (faults: no note, a dirty tree, a compaction after it).
    pub(super) fn handoff(&mut self, req: &Request) -> crate::Result<super::Flow> {
        let answer = if self.take_fault(|f| *f == super::Fault::NoHandoff).is_some() {
            Answer::NoNote
        } else if self
            .take_fault(|f| *f == super::Fault::DirtyHandoff)
            .is_some()
        {
            Answer::Dirty
        } else if self
            .take_fault(|f| *f == super::Fault::CompactInHandoff)
            .is_some()
        {
            Answer::Compact
        } else {
            Answer::Proper
        };
        self.scr.begin_step()?;
        match write_note(&mut self.scr, &self.clone, &self.id, req, answer) {
            Ok(()) => {}
            Err(StepError::Screen(e)) => return Err(e),
            Err(e) => self.scr.say(&format!("⚠ {e}"))?,
        }
        self.scr.end_step()?;
        self.report.turn_done();
        if answer == Answer::Compact {
            self.report.compact(&mut self.scr)?;
        }
        Ok(super::Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_gives_its_file_and_id() {
        let line = crate::fleet::rotation::request_text("machine-docs/HANDOFF-b.md", "rotate-b-1");
        assert_eq!(
            parse_request(&line),
            Some(Request {
                file: "machine-docs/HANDOFF-b.md".into(),
                id: "rotate-b-1".into()
            })
        );
        assert_eq!(parse_request("please review the claim"), None);
    }

    #[test]
    fn a_kickoff_names_the_note_to_read_first() {
        let note = crate::fleet::rotation::kickoff_note("machine-docs/HANDOFF-b.md");
        let text = format!("Kickoff\nYou are the builder.\n\n{note}\n");
        assert_eq!(note_in_kickoff(&text), Some("machine-docs/HANDOFF-b.md"));
        assert_eq!(note_in_kickoff("Kickoff\n"), None);
    }
}
