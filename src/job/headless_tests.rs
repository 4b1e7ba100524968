//! Unit tests of the headless parsers on each CLI's exact output shapes, and of the argv
//! each form builds.
use super::*;

fn run(form: Form, out: &str, err: &str, exit: Option<i32>) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    std::fs::write(&o, out).unwrap();
    std::fs::write(&e, err).unwrap();
    parse(form, &o, &e, exit)
}

const CLAUDE_OK: &str = r#"{"type":"system","subtype":"init","session_id":"abc","tools":["Bash"],"model":"claude-sonnet"}
{"type":"assistant","message":{"role":"assistant","content":[{"type":"text","text":"on it"}]},"session_id":"abc"}
{"type":"result","subtype":"success","is_error":false,"duration_ms":2000,"num_turns":4,"result":"Fixed the bug.","session_id":"abc","total_cost_usd":0.031,"usage":{"input_tokens":5}}
"#;

#[test]
fn claude_success_reads_cost_turns_and_session() {
    let o = run(Form::Claude, CLAUDE_OK, "", Some(0));
    assert!(o.success);
    assert_eq!(o.reason, Some(Reason::Ok));
    assert_eq!(o.session_id.as_deref(), Some("abc"));
    assert_eq!(o.turns, Some(4));
    assert_eq!(o.cost_usd, Some(0.031));
    assert_eq!(o.summary.as_deref(), Some("Fixed the bug."));
}

#[test]
fn claude_success_subtype_with_is_error_true_is_a_failure() {
    let out = r#"{"type":"result","subtype":"success","is_error":true,"result":"API Error: 500","session_id":"s","num_turns":1}"#;
    let o = run(Form::Claude, out, "", Some(1));
    assert!(!o.success);
    assert_eq!(o.reason, Some(Reason::AgentError));
    assert_eq!(o.error.as_deref(), Some("API Error: 500"));
    // Even with exit 0 it is a failure.
    assert!(!run(Form::Claude, out, "", Some(0)).success);
}

#[test]
fn claude_max_turns_and_missing_result_and_nonzero_exit() {
    let out = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":5,"session_id":"s"}"#;
    assert_eq!(
        run(Form::Claude, out, "", Some(1)).reason,
        Some(Reason::MaxTurns)
    );
    let o = run(Form::Claude, "not json\n", "", Some(0));
    assert!(!o.success);
    // A clean result with a non-zero exit is still a failure.
    assert!(!run(Form::Claude, CLAUDE_OK, "", Some(2)).success);
}

#[test]
fn claude_limit_text_gives_reason_limit() {
    let out = r#"{"type":"result","subtype":"success","is_error":true,"result":"Claude AI usage limit reached|1767225600"}"#;
    assert_eq!(
        run(Form::Claude, out, "", Some(1)).reason,
        Some(Reason::Limit)
    );
}

#[test]
fn codex_reconnect_errors_are_not_terminal() {
    let out = r#"{"type":"thread.started","thread_id":"t-1"}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion)"}
{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"thinking"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"All done."}}
{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":0,"output_tokens":2}}
"#;
    let o = run(Form::Codex, out, "", Some(0));
    assert!(o.success, "{o:?}");
    assert_eq!(o.session_id.as_deref(), Some("t-1"));
    assert_eq!(o.summary.as_deref(), Some("All done."));
}

#[test]
fn codex_turn_failed_or_a_real_error_fails() {
    let failed = r#"{"type":"thread.started","thread_id":"t"}
{"type":"turn.failed","error":{"message":"stream error: 500"}}
"#;
    let o = run(Form::Codex, failed, "", Some(1));
    assert_eq!(
        (o.success, o.reason, o.error.as_deref()),
        (false, Some(Reason::AgentError), Some("stream error: 500"))
    );
    let err = r#"{"type":"error","message":"unexpected status 401 Unauthorized"}"#;
    assert!(!run(Form::Codex, err, "", Some(1)).success);
}

#[test]
fn gemini_reads_its_one_object_and_its_stderr_errors() {
    let ok = r#"{"session_id":"g1","response":"Done.","stats":{"models":{"gemini-2.5-pro":{"api":{"totalRequests":3}}},"tools":{},"files":{}}}"#;
    let o = run(Form::Gemini, ok, "", Some(0));
    assert!(o.success);
    assert_eq!((o.turns, o.summary.as_deref()), (Some(3), Some("Done.")));
    let pretty = "{\n  \"response\": \"Done.\",\n  \"stats\": {}\n}\n";
    assert!(run(Form::Gemini, pretty, "", Some(0)).success);
    let err = r#"{"error":{"type":"FatalAuthenticationError","message":"Please set an Auth method","code":41}}"#;
    let o = run(Form::Gemini, "", err, Some(41));
    assert_eq!(
        (o.success, o.reason, o.exit_code),
        (false, Some(Reason::AgentError), Some(41))
    );
    assert_eq!(o.error.as_deref(), Some("Please set an Auth method"));
    let turns = r#"{"error":{"type":"FatalTurnLimitedError","message":"max turns","code":53}}"#;
    assert_eq!(
        run(Form::Gemini, "", turns, Some(53)).reason,
        Some(Reason::MaxTurns)
    );
}

#[test]
fn opencode_needs_a_step_finish_and_no_error() {
    let ok = r#"{"type":"step_start","timestamp":1,"sessionID":"ses_1","part":{"type":"step-start"}}
{"type":"text","timestamp":2,"sessionID":"ses_1","part":{"type":"text","text":"Patched."}}
{"type":"step_finish","timestamp":3,"sessionID":"ses_1","part":{"type":"step-finish","reason":"stop","cost":0.004,"tokens":{"input":1,"output":2}}}
"#;
    let o = run(Form::Opencode, ok, "", Some(0));
    assert!(o.success);
    assert_eq!(o.session_id.as_deref(), Some("ses_1"));
    assert_eq!(o.cost_usd, Some(0.004));
    let bad = r#"{"type":"error","sessionID":"ses_1","error":{"name":"APIError","data":{"message":"boom"}}}"#;
    let o = run(Form::Opencode, bad, "", Some(0));
    assert_eq!((o.success, o.error.as_deref()), (false, Some("boom")));
}

#[test]
fn plain_commands_are_judged_by_their_exit_status() {
    assert!(run(Form::Plain, "did it\n", "", Some(0)).success);
    let o = run(Form::Plain, "", "Segmentation fault", Some(139));
    assert_eq!((o.success, o.reason), (false, Some(Reason::Exit)));
    let o = run(Form::Plain, "", "", None);
    assert_eq!(o.error.as_deref(), Some("the agent was killed by a signal"));
}

fn backend(preset: Option<&str>, bin: &str) -> Backend {
    let cfg = crate::config::load_str(
        "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[jobs]\n",
        std::path::Path::new("/tmp/agents.toml"),
        crate::config::LoadOptions::STRICT,
    )
    .unwrap()
    .config;
    let mut b = cfg.backends["claude-code"].clone();
    b.preset = preset.map(String::from);
    b.bin = bin.into();
    b
}

fn profile() -> Profile {
    let cfg = crate::config::load_str(
        "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n[profile.p]\nbackend = \"claude-code\"\nmodel = \"opus\"\nmax_turns = 7\n",
        std::path::Path::new("/tmp/agents.toml"),
        crate::config::LoadOptions::STRICT,
    )
    .unwrap()
    .config;
    cfg.profiles["p"].clone()
}

#[test]
fn each_form_builds_its_headless_argv() {
    let p = profile();
    let i = invocation(&backend(Some("claude-code"), "claude"), &p, "fix");
    assert_eq!(
        i.argv.join(" "),
        "claude -p --output-format stream-json --verbose --permission-mode bypassPermissions --model opus --max-turns 7"
    );
    assert!(i.prompt_on_stdin);
    let i = invocation(&backend(Some("codex"), "codex"), &p, "fix");
    assert_eq!(
        i.argv.join(" "),
        "codex exec --json --skip-git-repo-check --full-auto --model opus -"
    );
    let i = invocation(&backend(Some("gemini-cli"), "gemini"), &p, "fix it");
    assert_eq!(i.argv.last().map(String::as_str), Some("fix it"));
    assert!(!i.prompt_on_stdin);
    let i = invocation(&backend(Some("opencode"), "opencode"), &p, "fix");
    assert_eq!(
        i.argv.join(" "),
        "opencode run --format json --auto --model opus fix"
    );
    let i = invocation(&backend(None, "my-agent --flag 'a b'"), &p, "fix");
    assert_eq!(i.argv, vec!["my-agent", "--flag", "a b"]);
}
