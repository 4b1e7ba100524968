//! The handoff part of the light tick: fetch the handoff repo, turn new claim/review commits
//! and changed inboxes into pings, remember what was handled (on disk, so exactly once).
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::Watchdog;
use crate::config::{Config, Handoff};
use crate::handoff::{self, HandoffMemory, ORIGIN_MAIN, PingDecision, PingReason};
use crate::tmux::DeliverOptions;
use crate::{events, state};

/// How long one `git fetch` may take before it is killed and reported.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

fn memory_file(cfg: &Config) -> PathBuf {
    cfg.state_dir.join("handoff.json")
}

fn load_memory(cfg: &Config) -> HandoffMemory {
    match state::load_json(&memory_file(cfg)) {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("{e}; starting from an empty handoff memory");
            HandoffMemory::default()
        }
    }
}

fn save_memory(cfg: &Config, mem: &HandoffMemory) {
    if let Err(e) = std::fs::create_dir_all(&cfg.state_dir)
        .map_err(|e| e.to_string())
        .and_then(|_| state::save_json(&memory_file(cfg), mem).map_err(|e| e.to_string()))
    {
        tracing::error!("cannot save the handoff memory: {e}");
    }
}

/// Record the origin/main tip as already handled (loops are starting: `up`, phase advance).
/// With `keep_existing` a tip already remembered is kept: the sequence is under way and what
/// was pushed since the watchdog last looked must still be pinged.
pub fn record_baseline(
    cfg: &Config,
    repo: &Path,
    keep_existing: bool,
) -> Result<(), handoff::GitError> {
    let mem = load_memory(cfg);
    if keep_existing && (mem.tip.is_some() || mem.empty_baseline) {
        return Ok(());
    }
    baseline(cfg, repo, false)
}

/// `reset_inboxes` forgets inbox hashes too (a new phase starts fresh, as the reference does).
pub(super) fn baseline(
    cfg: &Config,
    repo: &Path,
    reset_inboxes: bool,
) -> Result<(), handoff::GitError> {
    handoff::fetch(repo, FETCH_TIMEOUT)?;
    let mut mem = if reset_inboxes {
        HandoffMemory::default()
    } else {
        load_memory(cfg)
    };
    mem.tip = handoff::tip(repo, ORIGIN_MAIN)?;
    // An empty remote: its very first commit (a claim, say) is new, not the baseline.
    mem.empty_baseline = mem.tip.is_none();
    save_memory(cfg, &mem);
    super::redeliver::clear(cfg);
    Ok(())
}

impl Watchdog {
    pub(super) fn handoff_tick(&mut self) {
        let Some(h) = self.cfg.loop_.as_ref().and_then(|l| l.handoff.clone()) else {
            return;
        };
        let repo = h.repo.clone();
        if let Err(e) = handoff::fetch(&repo, FETCH_TIMEOUT) {
            let text = e.to_string();
            if self.fetch_error.as_deref() != Some(text.as_str()) {
                tracing::warn!("fetch failed (retrying next tick): {text}");
                self.event(events::FETCH_ERROR, json!({ "repo": repo, "error": text }));
                self.fetch_error = Some(text);
            }
            return;
        }
        match observe(&repo, &h, &load_memory(&self.cfg)) {
            Ok((pings, mem)) => {
                if self.fetch_error.take().is_some() {
                    tracing::info!("the handoff repo {} reads again", repo.display());
                }
                let mut owed = super::redeliver::load(&self.cfg);
                let owed_before = owed.clone();
                for p in &pings {
                    self.queue_handoff_ping(&h, p, &mut owed);
                }
                if owed != owed_before {
                    super::redeliver::save(&self.cfg, &owed);
                }
                save_memory(&self.cfg, &mem);
            }
            Err(e) => {
                let text = e.to_string();
                if self.fetch_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!("cannot read {}: {text}", repo.display());
                    self.event(events::FETCH_ERROR, json!({ "repo": repo, "error": text }));
                    self.fetch_error = Some(text);
                }
            }
        }
    }

    /// Queue the ping `p` for its target (typed by the outbox pass once the target's screen
    /// takes input); queued before the handoff memory moves past it, so it is never lost.
    /// A claim or review also becomes what its target owes an answer to (`owed`).
    fn queue_handoff_ping(&self, h: &Handoff, p: &PingDecision, owed: &mut super::redeliver::Owed) {
        let (target, text, file) = match (p.reason, p.inbox_index) {
            (PingReason::Claim, _) => (&h.claim_pings, handoff::CLAIM_PING.to_string(), None),
            (PingReason::Review, _) => (&h.review_pings, handoff::REVIEW_PING.to_string(), None),
            (PingReason::Inbox, Some(i)) => {
                let file = h.inboxes.get(i).cloned().unwrap_or_default();
                let target = if i % 2 == 0 {
                    &h.claim_pings
                } else {
                    &h.review_pings
                };
                (
                    target,
                    handoff::inbox_ping(&h.state_subdir, &file),
                    Some(file),
                )
            }
            (PingReason::Inbox, None) => return,
        };
        let id = match (&file, p.commits.last()) {
            (Some(f), _) => format!("inbox-{f}-{}", crate::fleet::records::now_ms()),
            (None, Some(sha)) => format!("{}-{sha}", p.reason.as_str()),
            (None, None) => format!("{}-{}", p.reason.as_str(), crate::fleet::records::now_ms()),
        };
        let fields = json!({ "commits": p.commits, "file": file });
        let ping = crate::fleet::pings::PendingPing::new(id, p.reason.as_str(), text, fields);
        match p.reason {
            PingReason::Claim => owed.handed(target, &h.review_pings, ping.clone()),
            PingReason::Review => owed.handed(target, &h.claim_pings, ping.clone()),
            PingReason::Inbox => {}
        }
        self.queue_ping(target, ping);
    }

    /// Type `text` into the agent's pane and submit it; false when the agent is not running
    /// or the submit could not be confirmed.
    pub fn ping_agent(&self, name: &str, text: &str) -> bool {
        let session = self.cfg.session_of(name);
        let submit = self
            .cfg
            .agent(name)
            .map_or("Enter", |a| self.cfg.backend_of(a).submit_key.as_str());
        match self.tmux.has_session(&session) {
            Ok(true) => {}
            _ => return false,
        }
        match self
            .tmux
            .deliver(&session, text, submit, &DeliverOptions::default())
        {
            Ok(outcome) => outcome.confirmed,
            Err(e) => {
                tracing::warn!("cannot ping {name}: {e}");
                false
            }
        }
    }
}

/// Read origin/main and the inboxes, and decide the pings against `mem`.
fn observe(
    repo: &Path,
    h: &Handoff,
    mem: &HandoffMemory,
) -> Result<(Vec<PingDecision>, HandoffMemory), handoff::GitError> {
    let tip = handoff::tip(repo, ORIGIN_MAIN)?;
    let commits = match (&tip, &mem.tip) {
        (Some(t), Some(old)) if t != old => handoff::commits_between(repo, Some(old), t)?,
        // The remote was empty at the baseline: all of its history is new.
        (Some(t), None) if mem.empty_baseline => handoff::commits_between(repo, None, t)?,
        _ => Vec::new(),
    };
    let inboxes = h
        .inboxes
        .iter()
        .map(|f| handoff::show_pushed(repo, &h.state_subdir, f))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(handoff::decide(
        mem,
        tip.as_deref(),
        &commits,
        &h.claim_pattern,
        &h.review_pattern,
        &inboxes,
    ))
}
