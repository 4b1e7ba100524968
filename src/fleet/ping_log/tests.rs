//! Unit tests of ping ids, the outbox history (append, state, compaction) and the ack view
//! (hook records, transcript). Temp dirs only; no tmux.
use super::*;
use crate::config::{LoadOptions, load_str};

fn config(dir: &Path, names: &[&str]) -> Config {
    let mut text =
        "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[backend.sh]\nbin = \"sh\"\n"
            .to_string();
    for n in names {
        text.push_str(&format!(
            "[[agent]]\nname = \"{n}\"\nbackend = \"sh\"\nprompt = \"x\"\n"
        ));
    }
    load_str(&text, &dir.join("agents.toml"), LoadOptions::WATCHDOG)
        .unwrap()
        .config
}

#[test]
fn ids_are_a_short_prefix_and_a_counter_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &["builder", "adversary", "bob"]);
    assert_eq!(id_prefix(&cfg, "builder"), "bu");
    assert_eq!(id_prefix(&cfg, "adversary"), "a");
    assert_eq!(next_id(&cfg, "adversary"), "a-0001");
    assert_eq!(next_id(&cfg, "adversary"), "a-0002");
    assert_eq!(next_id(&cfg, "builder"), "bu-0001");
    // Kept on disk: a new process goes on counting.
    assert_eq!(next_id(&cfg, "adversary"), "a-0003");
}

#[test]
fn the_mark_ends_the_text_and_hooks_read_it_back() {
    let text = mark("pull and review the claim\n", "b-0042");
    assert_eq!(text, "pull and review the claim [orch:ping b-0042]");
    assert_eq!(crate::hooks::ping_id_in(&text).as_deref(), Some("b-0042"));
}

#[test]
fn the_last_step_of_a_ping_is_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &["builder"]);
    record(
        &cfg,
        "builder",
        &OutboxRecord::new("b-0001", "queued", "claim", 0),
    );
    record(
        &cfg,
        "builder",
        &OutboxRecord::new("b-0001", "typed", "claim", 1),
    );
    assert_eq!(
        ping_state(&cfg, "builder", "b-0001").as_deref(),
        Some("typed")
    );
    assert!(!has_arrived(&cfg, "builder", "b-0001"));
    record(
        &cfg,
        "builder",
        &OutboxRecord::new("b-0001", "acked", "claim", 1),
    );
    assert!(has_arrived(&cfg, "builder", "b-0001"));
    assert_eq!(ping_state(&cfg, "builder", "b-0002"), None);
}

#[test]
fn compaction_keeps_recent_lines_and_every_step_of_an_open_ping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox-a.jsonl");
    let mut text = String::new();
    let line = |r: &OutboxRecord| serde_json::to_string(r).unwrap() + "\n";
    text.push_str(&line(&OutboxRecord::new("open", "typed", "claim", 1)));
    for i in 0..30 {
        text.push_str(&line(&OutboxRecord::new(
            &format!("x{i}"),
            "acked",
            "wake",
            1,
        )));
    }
    fs::write(&path, text).unwrap();
    compact(&path, 20, 10).unwrap();
    let kept: Vec<OutboxRecord> = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len(), 11);
    assert_eq!(kept[0].id, "open");
    assert_eq!(kept[1].id, "x20");
    // Under the threshold nothing is rewritten.
    compact(&path, 20, 10).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 11);
}

#[test]
fn a_hook_record_acks_and_a_transcript_row_means_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &["builder"]);
    let transcript = dir.path().join("t.jsonl");
    fs::write(
        &transcript,
        "{\"type\":\"queue-operation\",\"operation\":\"enqueue\",\"content\":\"review [orch:ping b-0002]\"}\n",
    )
    .unwrap();
    let input = serde_json::json!({
        "prompt": "pull [orch:ping b-0001]",
        "transcript_path": transcript.display().to_string(),
    });
    crate::hooks::handle(
        &cfg.log_dir,
        "builder",
        "UserPromptSubmit",
        &input,
        chrono::Utc::now(),
    )
    .unwrap();
    let view = AckView::read(&cfg, "builder");
    let (src, at) = view.ack("b-0001").unwrap();
    assert_eq!(src, AckSource::Hook);
    assert!(at.is_some());
    assert_eq!(view.ack("b-0002").map(|a| a.0), Some(AckSource::Transcript));
    assert_eq!(view.ack("b-0003"), None);
    assert_eq!(view.ack("b-000"), None, "an id is matched whole");
}
