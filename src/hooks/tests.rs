//! Unit tests of the hook records (compaction, summary, trimming) and the settings merge.
//! Pure functions plus temp files; no tmux.
use super::*;
use serde_json::json;

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn rec(event: &str, tool: Option<&str>, secs: i64) -> HookRecord {
    let input = json!({ "tool_name": tool });
    record_from_input(event, &input, at(secs))
}

#[test]
fn record_keeps_only_the_compact_fields() {
    let input = json!({
        "session_id": "abc", "tool_name": "Bash", "tool_input": {"command": "rm -rf /"},
        "transcript_path": "/x", "message": "m".repeat(500), "source": "startup"
    });
    let r = record_from_input("PreToolUse", &input, at(1_700_000_000));
    assert_eq!(r.event, "PreToolUse");
    assert_eq!(r.tool.as_deref(), Some("Bash"));
    assert_eq!(r.session_id.as_deref(), Some("abc"));
    assert_eq!(r.message.as_ref().map(|m| m.len()), Some(200));
    assert_eq!(r.epoch(), Some(1_700_000_000));
    let line = serde_json::to_string(&r).unwrap();
    assert!(!line.contains("rm -rf"), "{line}");
    assert!(!line.contains("transcript"), "{line}");
}

#[test]
fn garbage_input_still_gives_a_record() {
    let r = record_from_input("Stop", &Value::Null, at(5));
    assert_eq!(r.event, "Stop");
    assert_eq!(r.tool, None);
}

#[test]
fn summary_counts_tools_and_tracks_streaks() {
    let recs = vec![
        rec("SessionStart", None, 10),
        rec("UserPromptSubmit", None, 20),
        rec("PreToolUse", Some("Bash"), 30),
        rec("PreToolUse", Some("Edit"), 40),
        rec("PreToolUse", Some("Bash"), 50),
    ];
    let s = summarize(&recs);
    assert_eq!(s.activity, Some((HookActivity::Working, 20)));
    assert_eq!(s.last_tool.as_deref(), Some("Bash"));
    assert_eq!(s.last_tool_at, Some(50));
    assert_eq!(s.tool_counts["Bash"], 2);
    assert_eq!(s.tool_counts["Edit"], 1);
    assert_eq!(s.last_at, Some(50));
    let mut more = recs.clone();
    more.push(rec("Stop", None, 60));
    assert_eq!(summarize(&more).activity, Some((HookActivity::Idle, 60)));
    more.push(rec("Notification", None, 70));
    assert_eq!(
        summarize(&more).activity,
        Some((HookActivity::WaitingInput, 70))
    );
    assert_eq!(summarize(&[]), HookSummary::default());
}

#[test]
fn hook_file_keeps_the_last_500_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = hooks_file(dir.path(), "a");
    for i in 0..(MAX_RECORDS as i64 + 20) {
        append_record(&path, &rec("PreToolUse", Some(&format!("T{i}")), i)).unwrap();
    }
    let recs = read_records(dir.path(), "a");
    assert_eq!(recs.len(), MAX_RECORDS);
    assert_eq!(recs[0].tool.as_deref(), Some("T20"));
    assert_eq!(recs.last().unwrap().tool.as_deref(), Some("T519"));
}

#[test]
fn session_start_stores_the_resume_id_and_unsafe_names_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let input = json!({"session_id": "5f1c-aa_9"});
    handle(dir.path(), "builder", "SessionStart", &input, at(1)).unwrap();
    let id = fs::read_to_string(dir.path().join("state/builder.id")).unwrap();
    assert_eq!(id.trim(), "5f1c-aa_9");
    let evil = json!({"session_id": "x; rm -rf /"});
    handle(dir.path(), "builder", "SessionStart", &evil, at(2)).unwrap();
    let id = fs::read_to_string(dir.path().join("state/builder.id")).unwrap();
    assert_eq!(id.trim(), "5f1c-aa_9");
    handle(dir.path(), "../x", "Stop", &Value::Null, at(3)).unwrap();
    assert!(!dir.path().join("x.jsonl").exists());
    assert_eq!(read_records(dir.path(), "builder").len(), 2);
}

#[test]
fn merge_keeps_user_keys_and_hooks_and_replaces_old_orch_entries() {
    let user = json!({
        "permissions": {"allow": ["Bash(ls)"]},
        "hooks": {
            "PreToolUse": [
                {"matcher": "Bash", "hooks": [{"type": "command", "command": "my-guard.sh"}]},
                {"matcher": "*", "hooks": [{"type": "command", "command": "'/old/orch' hook PreToolUse"}]}
            ],
            "PostToolUse": [{"hooks": [{"type": "command", "command": "fmt.sh"}]}]
        }
    });
    let merged = merge_settings(Some(user), Path::new("/new dir/orch")).unwrap();
    assert_eq!(merged["permissions"]["allow"][0], "Bash(ls)");
    assert_eq!(
        merged["hooks"]["PostToolUse"][0]["hooks"][0]["command"],
        "fmt.sh"
    );
    let pre = merged["hooks"]["PreToolUse"].as_array().unwrap();
    assert_eq!(pre.len(), 2, "{pre:?}");
    assert_eq!(pre[0]["hooks"][0]["command"], "my-guard.sh");
    assert_eq!(
        pre[1]["hooks"][0]["command"],
        "'/new dir/orch' hook PreToolUse"
    );
    for ev in HOOK_EVENTS {
        assert_eq!(
            merged["hooks"][ev].as_array().unwrap().len(),
            1 + usize::from(*ev == "PreToolUse")
        );
    }
    // Merging again changes nothing.
    let again = merge_settings(Some(merged.clone()), Path::new("/new dir/orch")).unwrap();
    assert_eq!(again, merged);
    assert!(merge_settings(Some(json!([1])), Path::new("/o")).is_none());
}

#[test]
fn install_refuses_to_rewrite_a_broken_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join(".claude")).unwrap();
    let path = dir.path().join(".claude/settings.local.json");
    fs::write(&path, "{ not json").unwrap();
    let err = install(dir.path(), Path::new("/bin/orch")).unwrap_err();
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "{ not json");
}

#[test]
fn a_prompt_keeps_only_its_orch_ping_id() {
    let input = json!({ "prompt": "watchdog ping: pull and act. [orch:ping claim-ab12]" });
    let r = record_from_input("UserPromptSubmit", &input, at(1_700_000_000));
    assert_eq!(r.ping_id.as_deref(), Some("claim-ab12"));
    let line = serde_json::to_string(&r).unwrap();
    assert!(!line.contains("watchdog ping"), "{line}");
    assert_eq!(ping_id_in("no mark here"), None);
    assert_eq!(ping_id_in("[orch:ping ]"), None);
    assert_eq!(ping_id_in("[orch:ping a b]"), None);
    assert_eq!(
        ping_id_in("[orch:ping x] then [orch:ping y-2]"),
        Some("y-2".into())
    );
}

#[test]
fn a_stop_failure_on_a_rate_limit_is_recognised_and_keeps_no_message() {
    for input in [
        json!({ "error": "rate_limit", "message": "You've hit your limit" }),
        json!({ "error": { "type": "rate_limit_error", "message": "429" } }),
        json!({ "error_type": "rate_limit" }),
    ] {
        let r = record_from_input("StopFailure", &input, at(1));
        assert!(is_rate_limit(&r), "{input}");
    }
    let other = record_from_input("StopFailure", &json!({ "error": "server_error" }), at(1));
    assert!(!is_rate_limit(&other));
    let stop = record_from_input("Stop", &json!({ "error": "rate_limit" }), at(1));
    assert!(!is_rate_limit(&stop), "only StopFailure counts");
    assert_eq!(
        rec("PreToolUse", Some("Bash"), 1).error,
        None,
        "no error field on other records"
    );
}
