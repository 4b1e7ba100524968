//! The pure handoff decision: given what the watchdog remembers and what it now sees at
//! origin/main, which claim/review/inbox pings to send and what to remember next.
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

use super::{Commit, md5_hex};

/// Typed into the `claim_pings` agent's pane when claim commits arrive.
pub const CLAIM_PING: &str = "watchdog ping: the other loop pushed a gate CLAIM commit. \
                              Pull and verify the claimed gate now.";

/// Typed into the `review_pings` agent's pane when review commits arrive.
pub const REVIEW_PING: &str = "watchdog ping: the other loop pushed a verdict/finding commit. \
                               Pull the review file and act.";

/// Typed into an inbox's target pane when the inbox file's content changed.
pub fn inbox_ping(state_subdir: &str, file: &str) -> String {
    format!(
        "watchdog ping: the other loop pushed {state_subdir}/{file} — pull, read it, act, \
         then delete the file (commit + push) to mark it consumed."
    )
}

/// Compile a `claim_pattern`/`review_pattern` the way the reference matches it: case-insensitive,
/// `^`/`$` at each subject's start/end.
pub fn compile_subject_pattern(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .multi_line(true)
        .build()
}

/// What the watchdog remembers between looks; persisted so a restarted watchdog never re-pings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HandoffMemory {
    /// The origin/main sha already handled; None before the first look.
    pub tip: Option<String>,
    /// md5 (hex) of each inbox's last pinged content, by index in `[loop.handoff].inboxes`;
    /// None when the inbox was absent or empty.
    pub inboxes: Vec<Option<String>>,
    /// The baseline was taken while origin/main did not exist yet (an empty remote): every
    /// commit that appears later is new, the very first one included.
    pub empty_baseline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingReason {
    Claim,
    Review,
    Inbox,
}

impl PingReason {
    /// The `reason` field of a `ping` event.
    pub fn as_str(self) -> &'static str {
        match self {
            PingReason::Claim => "claim",
            PingReason::Review => "review",
            PingReason::Inbox => "inbox",
        }
    }
}

/// One ping to send. The caller maps it to a pane: claim → `claim_pings`, review →
/// `review_pings`; in the reference inbox 0 pings `claim_pings` and inbox 1 `review_pings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingDecision {
    pub reason: PingReason,
    /// Which inbox changed (Inbox pings only).
    pub inbox_index: Option<usize>,
    /// The shas of the commits that matched (Claim/Review pings only), oldest first.
    pub commits: Vec<String>,
}

/// Decide the pings for one look at origin/main.
///
/// - `new_tip`: origin/main now (None when the ref is missing: commits are not looked at and
///   the remembered tip is kept).
/// - `commits`: what arrived since `mem.tip` (from `commits_between`), oldest first.
/// - `inbox_contents`: each inbox's pushed content, by index (None = absent).
///
/// Rules: with no remembered tip the new tip is only recorded (the baseline), no commit pings,
/// unless the baseline saw an empty remote (`empty_baseline`): then every commit is new.
/// Otherwise, when the tip moved, all claim-matching commits give ONE claim ping naming them,
/// likewise review (a commit may match both). Inboxes are checked on every look, baseline
/// included (as the reference does): a non-empty inbox whose md5 differs from the remembered one
/// (or there is none) gives one ping; an absent or empty inbox resets its memory to None, so the
/// same content pushed again later pings again.
pub fn decide(
    mem: &HandoffMemory,
    new_tip: Option<&str>,
    commits: &[Commit],
    claim: &Regex,
    review: &Regex,
    inbox_contents: &[Option<Vec<u8>>],
) -> (Vec<PingDecision>, HandoffMemory) {
    let mut pings = Vec::new();
    let mut next = HandoffMemory {
        tip: mem.tip.clone(),
        inboxes: Vec::with_capacity(inbox_contents.len()),
        // Looked, and the remote is still empty: what comes next is new.
        empty_baseline: mem.tip.is_none() && (mem.empty_baseline || new_tip.is_none()),
    };
    if let Some(tip) = new_tip {
        let moved = match mem.tip.as_deref() {
            Some(old) => old != tip,
            None => mem.empty_baseline,
        };
        next.empty_baseline = false;
        if moved {
            for (reason, pattern) in [(PingReason::Claim, claim), (PingReason::Review, review)] {
                let matched: Vec<String> = commits
                    .iter()
                    .filter(|c| pattern.is_match(&c.subject))
                    .map(|c| c.sha.clone())
                    .collect();
                if !matched.is_empty() {
                    pings.push(PingDecision {
                        reason,
                        inbox_index: None,
                        commits: matched,
                    });
                }
            }
        }
        next.tip = Some(tip.to_string());
    }
    for (index, content) in inbox_contents.iter().enumerate() {
        let remembered = mem.inboxes.get(index).cloned().flatten();
        let hash = content
            .as_deref()
            .filter(|bytes| !bytes.is_empty())
            .map(md5_hex);
        if let Some(hash) = &hash
            && remembered.as_ref() != Some(hash)
        {
            pings.push(PingDecision {
                reason: PingReason::Inbox,
                inbox_index: Some(index),
                commits: Vec::new(),
            });
        }
        next.inboxes.push(hash);
    }
    (pings, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(sha: &str, subject: &str) -> Commit {
        Commit {
            sha: sha.into(),
            subject: subject.into(),
        }
    }

    fn patterns() -> (Regex, Regex) {
        (
            compile_subject_pattern("^claim").unwrap(),
            compile_subject_pattern("^review").unwrap(),
        )
    }

    fn at(tip: &str) -> HandoffMemory {
        HandoffMemory {
            tip: Some(tip.into()),
            inboxes: vec![],
            empty_baseline: false,
        }
    }

    #[test]
    fn first_look_records_the_tip_without_pinging() {
        let (c, r) = patterns();
        let commits = [commit("a1", "claim: gate 1"), commit("a2", "review: ok")];
        let (pings, mem) = decide(&HandoffMemory::default(), Some("a2"), &commits, &c, &r, &[]);
        assert!(pings.is_empty(), "{pings:?}");
        assert_eq!(mem.tip.as_deref(), Some("a2"));
    }

    #[test]
    fn one_claim_commit_gives_one_claim_ping() {
        let (c, r) = patterns();
        let commits = [commit("b1", "claim: gate 1 passes")];
        let (pings, mem) = decide(&at("a0"), Some("b1"), &commits, &c, &r, &[]);
        assert_eq!(
            pings,
            vec![PingDecision {
                reason: PingReason::Claim,
                inbox_index: None,
                commits: vec!["b1".into()]
            }]
        );
        assert_eq!(mem.tip.as_deref(), Some("b1"));
    }

    #[test]
    fn two_claims_in_one_batch_give_one_ping_naming_both() {
        let (c, r) = patterns();
        let commits = [
            commit("b1", "claim: gate 1"),
            commit("b2", "wip"),
            commit("b3", "CLAIM gate 2"),
        ];
        let (pings, _) = decide(&at("a0"), Some("b3"), &commits, &c, &r, &[]);
        assert_eq!(pings.len(), 1, "{pings:?}");
        assert_eq!(pings[0].reason, PingReason::Claim);
        assert_eq!(pings[0].commits, vec!["b1".to_string(), "b3".to_string()]);
    }

    #[test]
    fn claim_and_review_in_one_batch_give_one_ping_each() {
        let (c, r) = patterns();
        let commits = [commit("b1", "review: finding 3"), commit("b2", "claim: g")];
        let (pings, _) = decide(&at("a0"), Some("b2"), &commits, &c, &r, &[]);
        let reasons: Vec<_> = pings.iter().map(|p| p.reason).collect();
        assert_eq!(reasons, vec![PingReason::Claim, PingReason::Review]);
        assert_eq!(pings[1].commits, vec!["b1".to_string()]);
    }

    #[test]
    fn a_commit_matching_neither_pattern_pings_nothing_but_moves_the_tip() {
        let (c, r) = patterns();
        let commits = [commit("b1", "refactor: no claim here")];
        let (pings, mem) = decide(&at("a0"), Some("b1"), &commits, &c, &r, &[]);
        assert!(pings.is_empty(), "{pings:?}");
        assert_eq!(mem.tip.as_deref(), Some("b1"));
    }

    #[test]
    fn an_unmoved_tip_pings_nothing_even_if_commits_are_passed() {
        let (c, r) = patterns();
        let commits = [commit("a0", "claim: old")];
        let (pings, _) = decide(&at("a0"), Some("a0"), &commits, &c, &r, &[]);
        assert!(pings.is_empty(), "{pings:?}");
    }

    #[test]
    fn the_first_commit_of_a_remote_empty_at_the_baseline_pings() {
        let (c, r) = patterns();
        // The baseline looks at an empty remote: nothing to ping, but it remembers that.
        let (pings, mem) = decide(&HandoffMemory::default(), None, &[], &c, &r, &[]);
        assert!(pings.is_empty());
        assert!(mem.empty_baseline, "{mem:?}");
        // Still empty at the next look: still remembered.
        let (_, mem) = decide(&mem, None, &[], &c, &r, &[]);
        assert!(mem.empty_baseline);
        // The very first commit is a claim: it pings, and the tip is remembered from now on.
        let commits = [commit("c1", "claim: p1")];
        let (pings, mem) = decide(&mem, Some("c1"), &commits, &c, &r, &[]);
        assert_eq!(pings.len(), 1, "{pings:?}");
        assert_eq!(pings[0].commits, vec!["c1".to_string()]);
        assert_eq!(
            (mem.tip.as_deref(), mem.empty_baseline),
            (Some("c1"), false)
        );
    }

    #[test]
    fn a_missing_ref_keeps_the_remembered_tip() {
        let (c, r) = patterns();
        let (pings, mem) = decide(&at("a0"), None, &[], &c, &r, &[]);
        assert!(pings.is_empty());
        assert_eq!(mem.tip.as_deref(), Some("a0"));
    }

    #[test]
    fn inbox_change_pings_once_then_reset_and_recreation_pings_again() {
        let (c, r) = patterns();
        let note = Some(b"please look at X".to_vec());
        let mem0 = HandoffMemory {
            tip: Some("a0".into()),
            inboxes: vec![None, None],
            empty_baseline: false,
        };
        // inbox 1 appears: one ping, for index 1.
        let (pings, mem1) = decide(&mem0, Some("a0"), &[], &c, &r, &[None, note.clone()]);
        assert_eq!(
            pings,
            vec![PingDecision {
                reason: PingReason::Inbox,
                inbox_index: Some(1),
                commits: vec![]
            }]
        );
        assert_eq!(mem1.inboxes[1], Some(md5_hex(b"please look at X")));
        // unchanged: nothing.
        let (pings, mem2) = decide(&mem1, Some("a0"), &[], &c, &r, &[None, note.clone()]);
        assert!(pings.is_empty(), "{pings:?}");
        // changed content: ping again.
        let other = Some(b"and Y".to_vec());
        let (pings, mem3) = decide(&mem2, Some("a0"), &[], &c, &r, &[None, other]);
        assert_eq!(pings.len(), 1);
        // deleted: memory reset, no ping.
        let (pings, mem4) = decide(&mem3, Some("a0"), &[], &c, &r, &[None, None]);
        assert!(pings.is_empty());
        assert_eq!(mem4.inboxes, vec![None, None]);
        // recreated with the first content: pings again.
        let (pings, _) = decide(&mem4, Some("a0"), &[], &c, &r, &[None, note]);
        assert_eq!(pings.len(), 1);
        assert_eq!(pings[0].inbox_index, Some(1));
    }

    #[test]
    fn an_empty_inbox_counts_as_deleted() {
        let (c, r) = patterns();
        let mem = HandoffMemory {
            tip: None,
            inboxes: vec![Some(md5_hex(b"x"))],
            empty_baseline: false,
        };
        let (pings, next) = decide(&mem, None, &[], &c, &r, &[Some(Vec::new())]);
        assert!(pings.is_empty());
        assert_eq!(next.inboxes, vec![None]);
    }

    #[test]
    fn inboxes_are_checked_on_the_first_look_too() {
        let (c, r) = patterns();
        let (pings, mem) = decide(
            &HandoffMemory::default(),
            Some("a0"),
            &[],
            &c,
            &r,
            &[Some(b"hi".to_vec())],
        );
        assert_eq!(pings.len(), 1);
        assert_eq!(pings[0].reason, PingReason::Inbox);
        assert_eq!(mem.inboxes.len(), 1);
    }

    #[test]
    fn patterns_match_case_insensitively_at_subject_start_only() {
        let (c, _) = patterns();
        assert!(c.is_match("Claim: gate"));
        assert!(!c.is_match("unclaim gate"));
    }

    #[test]
    fn memory_round_trips_through_json_and_tolerates_missing_fields() {
        let mem = HandoffMemory {
            tip: Some("abc".into()),
            inboxes: vec![None, Some("ff".into())],
            empty_baseline: false,
        };
        let text = serde_json::to_string(&mem).unwrap();
        assert_eq!(serde_json::from_str::<HandoffMemory>(&text).unwrap(), mem);
        let empty: HandoffMemory = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, HandoffMemory::default());
    }

    #[test]
    fn ping_texts_match_the_reference() {
        assert_eq!(
            CLAIM_PING,
            "watchdog ping: the other loop pushed a gate CLAIM commit. Pull and verify the claimed gate now."
        );
        assert_eq!(
            REVIEW_PING,
            "watchdog ping: the other loop pushed a verdict/finding commit. Pull the review file and act."
        );
        assert_eq!(
            inbox_ping("machine-docs", "BUILDER-INBOX.md"),
            "watchdog ping: the other loop pushed machine-docs/BUILDER-INBOX.md — pull, read it, act, then delete the file (commit + push) to mark it consumed."
        );
    }
}
