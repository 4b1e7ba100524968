//! Handoff git reads against real repos: fetch (ok, dead remote, hanging remote), tip,
//! commits_between, blob_at/show_pushed, and decide() fed from a real fetch.
use std::path::Path;
use std::time::{Duration, Instant};

use orch::handoff::{self, GitError, HandoffMemory, ORIGIN_MAIN, PingReason};

use crate::gitfix::{GitFixture, git};

const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

fn subjects(repo: &Path, from: Option<&str>) -> Vec<String> {
    handoff::commits_between(repo, from, ORIGIN_MAIN)
        .unwrap()
        .into_iter()
        .map(|c| c.subject)
        .collect()
}

#[test]
fn fetch_sees_a_commit_pushed_by_another_clone() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let builder = fx.clone("builder");
    let before = handoff::tip(&watch, ORIGIN_MAIN).unwrap();
    assert_eq!(before.as_deref(), Some(fx.remote_tip().as_str()));
    let pushed = fx.commit_and_push(&builder, "claim: gate 1", &[]);
    assert_eq!(
        handoff::tip(&watch, ORIGIN_MAIN).unwrap(),
        before,
        "no fetch yet"
    );
    handoff::fetch(&watch, FETCH_TIMEOUT).unwrap();
    assert_eq!(
        handoff::tip(&watch, ORIGIN_MAIN).unwrap(),
        Some(pushed.clone())
    );
    // Like `git -C`, a subdirectory of the clone names the clone.
    let sub = watch.join("docs");
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(handoff::tip(&sub, ORIGIN_MAIN).unwrap(), Some(pushed));
}

#[test]
fn tip_of_a_missing_ref_is_none() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    assert_eq!(handoff::tip(&watch, "origin/no-such-branch").unwrap(), None);
}

#[test]
fn commits_between_lists_new_subjects_oldest_first() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let builder = fx.clone("builder");
    let base = handoff::tip(&watch, ORIGIN_MAIN).unwrap().unwrap();
    let a = fx.commit_and_push(&builder, "first change", &[("a.txt", "a")]);
    fx.commit_and_push(&builder, "claim: gate 1", &[]);
    let c = fx.commit_and_push(
        &builder,
        "third change\n\nwith a body that is not the subject",
        &[],
    );
    handoff::fetch(&watch, FETCH_TIMEOUT).unwrap();
    assert_eq!(
        subjects(&watch, Some(&base)),
        ["first change", "claim: gate 1", "third change"]
    );
    let commits = handoff::commits_between(&watch, Some(&base), ORIGIN_MAIN).unwrap();
    assert_eq!(commits[0].sha, a);
    assert_eq!(commits[2].sha, c);
    assert!(
        subjects(&watch, Some(&c)).is_empty(),
        "from == to gives nothing"
    );
    assert_eq!(
        subjects(&watch, None).len(),
        4,
        "no from: the whole history"
    );
}

#[test]
fn commits_between_with_an_unknown_from_gives_only_the_tip() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let builder = fx.clone("builder");
    fx.commit_and_push(&builder, "one", &[]);
    fx.commit_and_push(&builder, "claim: two", &[]);
    handoff::fetch(&watch, FETCH_TIMEOUT).unwrap();
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    assert_eq!(subjects(&watch, Some(unknown)), ["claim: two"]);
}

#[test]
fn commits_between_after_a_force_push_lists_only_the_rewritten_commits() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let builder = fx.clone("builder");
    let base = fx.remote_tip();
    let old = fx.commit_and_push(&builder, "doomed", &[]);
    handoff::fetch(&watch, FETCH_TIMEOUT).unwrap();
    git(&builder, &["reset", "-q", "--hard", &base]);
    git(
        &builder,
        &["commit", "-q", "--allow-empty", "-m", "review: rewritten"],
    );
    git(&builder, &["push", "-q", "-f", "origin", "HEAD:main"]);
    handoff::fetch(&watch, FETCH_TIMEOUT).unwrap();
    assert_eq!(subjects(&watch, Some(&old)), ["review: rewritten"]);
}

#[test]
fn blob_at_reads_pushed_files_in_subdirs_and_at_the_root() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let builder = fx.clone("builder");
    fx.commit_and_push(
        &builder,
        "state files",
        &[
            ("machine-docs/BUILDER-INBOX.md", "in subdir\n"),
            ("ADVERSARY-INBOX.md", "at root\n"),
            ("BUILDER-INBOX.md", "root copy, shadowed\n"),
        ],
    );
    // Local edits that were never pushed must not be seen.
    std::fs::write(watch.join("ADVERSARY-INBOX.md"), "local only").unwrap();
    handoff::fetch(&watch, FETCH_TIMEOUT).unwrap();
    let blob = |p: &str| handoff::blob_at(&watch, ORIGIN_MAIN, p).unwrap();
    assert_eq!(
        blob("machine-docs/BUILDER-INBOX.md").unwrap(),
        b"in subdir\n"
    );
    assert_eq!(blob("ADVERSARY-INBOX.md").unwrap(), b"at root\n");
    assert_eq!(blob("missing.md"), None);
    assert_eq!(blob("machine-docs"), None, "a directory is not a file");
    let show = |f: &str| handoff::show_pushed(&watch, "machine-docs", f).unwrap();
    assert_eq!(show("BUILDER-INBOX.md").unwrap(), b"in subdir\n");
    assert_eq!(show("ADVERSARY-INBOX.md").unwrap(), b"at root\n");
    assert_eq!(show("NOPE.md"), None);
    assert_eq!(
        handoff::blob_at(&watch, "origin/no-such-branch", "README.md").unwrap(),
        None
    );
}

#[test]
fn a_deleted_inbox_is_gone_after_the_next_fetch() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let builder = fx.clone("builder");
    fx.commit_and_push(&builder, "note", &[("machine-docs/INBOX.md", "hi")]);
    handoff::fetch(&watch, FETCH_TIMEOUT).unwrap();
    assert!(
        handoff::show_pushed(&watch, "machine-docs", "INBOX.md")
            .unwrap()
            .is_some()
    );
    fx.delete_and_push(&builder, "machine-docs/INBOX.md", "consume inbox");
    handoff::fetch(&watch, FETCH_TIMEOUT).unwrap();
    assert_eq!(
        handoff::show_pushed(&watch, "machine-docs", "INBOX.md").unwrap(),
        None
    );
}

#[test]
fn fetch_from_a_remote_that_points_nowhere_fails_quickly_naming_the_repo() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let nowhere = fx.dir.path().join("nowhere.git");
    git(
        &watch,
        &["remote", "set-url", "origin", nowhere.to_str().unwrap()],
    );
    let start = Instant::now();
    let err = handoff::fetch(&watch, FETCH_TIMEOUT).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(matches!(err, GitError::Fetch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&watch.display().to_string()), "{msg}");
    assert!(
        msg.contains("nowhere.git"),
        "git's stderr line missing: {msg}"
    );
    assert!(!msg.contains('\n'), "only the first stderr line: {msg}");
}

#[test]
fn fetch_of_a_non_repository_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = handoff::fetch(dir.path(), FETCH_TIMEOUT).unwrap_err();
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

/// True once `pid` has exited (gone, or a zombie awaiting its new parent's reaping).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn fetch_from_a_hanging_remote_is_killed_at_the_timeout_with_its_children() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let pid_file = fx.dir.path().join("upload-pack.pid");
    // git runs the upload-pack command through sh for a local remote: this one records its
    // pid and then hangs, like a dead ssh connection would.
    let hang = format!(
        "echo $$ > {}; exec sleep 60; :",
        shell_words::quote(pid_file.to_str().unwrap())
    );
    git(&watch, &["config", "remote.origin.uploadpack", &hang]);
    let timeout = Duration::from_millis(1500);
    let start = Instant::now();
    let err = handoff::fetch(&watch, timeout).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, GitError::FetchTimeout { .. }), "{err:?}");
    assert!(took >= timeout, "returned before the timeout: {took:?}");
    assert!(
        took < timeout + Duration::from_secs(5),
        "kill was slow: {took:?}"
    );
    assert!(
        err.to_string().contains(&watch.display().to_string()),
        "{err}"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("the hanging upload-pack ran")
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !exited(pid) {
        assert!(
            Instant::now() < deadline,
            "upload-pack {pid} outlived the fetch"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fetch_async_runs_on_the_blocking_pool() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let builder = fx.clone("builder");
    let pushed = fx.commit_and_push(&builder, "review: ok", &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(handoff::fetch_async(watch.clone(), FETCH_TIMEOUT))
        .unwrap();
    assert_eq!(handoff::tip(&watch, ORIGIN_MAIN).unwrap(), Some(pushed));
}

/// One watchdog look: fetch, tip, commits since the remembered tip, inboxes, decide.
fn look(watch: &Path, mem: &HandoffMemory) -> (Vec<handoff::PingDecision>, HandoffMemory) {
    handoff::fetch(watch, FETCH_TIMEOUT).unwrap();
    let tip = handoff::tip(watch, ORIGIN_MAIN).unwrap();
    let commits = match (&mem.tip, &tip) {
        (Some(old), Some(_)) => handoff::commits_between(watch, Some(old), ORIGIN_MAIN).unwrap(),
        _ => Vec::new(),
    };
    let inboxes: Vec<_> = ["ADVERSARY-INBOX.md", "BUILDER-INBOX.md"]
        .iter()
        .map(|f| handoff::show_pushed(watch, "machine-docs", f).unwrap())
        .collect();
    let claim = handoff::compile_subject_pattern("^claim").unwrap();
    let review = handoff::compile_subject_pattern("^review").unwrap();
    handoff::decide(mem, tip.as_deref(), &commits, &claim, &review, &inboxes)
}

#[test]
fn claim_commit_and_inbox_push_each_ping_once_across_looks() {
    let fx = GitFixture::new();
    let watch = fx.clone("watch");
    let builder = fx.clone("builder");
    let (pings, mem) = look(&watch, &HandoffMemory::default());
    assert!(pings.is_empty(), "baseline look: {pings:?}");
    let c1 = fx.commit_and_push(&builder, "claim: gate 1", &[]);
    let c2 = fx.commit_and_push(
        &builder,
        "Claim: gate 2",
        &[("machine-docs/BUILDER-INBOX.md", "fix X")],
    );
    let (pings, mem) = look(&watch, &mem);
    let reasons: Vec<_> = pings.iter().map(|p| (p.reason, p.inbox_index)).collect();
    assert_eq!(
        reasons,
        [(PingReason::Claim, None), (PingReason::Inbox, Some(1))]
    );
    assert_eq!(pings[0].commits, [c1, c2]);
    let (pings, mem) = look(&watch, &mem);
    assert!(pings.is_empty(), "nothing new: {pings:?}");
    // Memory survives a restart as JSON.
    let restored: HandoffMemory =
        serde_json::from_str(&serde_json::to_string(&mem).unwrap()).unwrap();
    let (pings, _) = look(&watch, &restored);
    assert!(pings.is_empty(), "restarted watchdog re-pinged: {pings:?}");
}
