//! Backend presets: preset names as backends, key-by-key overrides, screen rules from config,
//! `orch classify`, auto-accepted dialogs and needs-attention episodes on fake CLIs in tmux.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use orch::config::{self, LoadOptions};
use serde_json::Value;

use crate::project::Project;
use crate::support::{orch_bin, wait_for};

const HEAD: &str = "[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n";

fn load(body: &str) -> orch::Result<config::Config> {
    let text = format!("{HEAD}{body}");
    config::load_str(
        &text,
        Path::new("/tmp/presets-test/agents.toml"),
        LoadOptions::STRICT,
    )
    .map(|l| l.config)
}

fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tui")
        .join(rel)
}

#[test]
fn a_preset_name_is_a_backend_without_any_table() {
    let cfg = load("[[agent]]\nname = \"a\"\nbackend = \"codex\"\nprompt = \"hi\"\n").unwrap();
    let b = cfg.backend_of(cfg.agent("a").unwrap());
    assert_eq!(b.bin, "codex");
    assert_eq!(b.process_names, ["node", "codex"]);
    assert_eq!(b.process_name.as_deref(), Some("node"));
    assert_eq!(b.preset.as_deref(), Some("codex"));
    assert!(!b.screen_rules.is_empty());
    assert_eq!(
        cfg.backends.keys().collect::<Vec<_>>(),
        ["codex"],
        "unused presets are not listed"
    );
}

#[test]
fn a_user_table_of_a_preset_name_overrides_keys_one_by_one() {
    let cfg = load(
        "[backend.claude-code]\nbin = \"/opt/claude\"\nprocess_name = \"claude-bin\"\n\
         [[agent]]\nname = \"a\"\nbackend = \"claude-code\"\nprompt = \"hi\"\n",
    )
    .unwrap();
    let b = cfg.backend_of(cfg.agent("a").unwrap());
    assert_eq!(b.bin, "/opt/claude");
    assert_eq!(b.flags, "--dangerously-skip-permissions");
    assert_eq!(b.process_names, ["claude-bin"]);
    assert!(b.supports_resume);
    assert!(!b.dialogs.is_empty());
}

#[test]
fn a_custom_backend_can_start_from_a_preset_and_add_screen_rules() {
    let cfg = load(
        "[backend.mine]\npreset = \"gemini-cli\"\nbin = \"gem\"\n\
         screen_rules = [{ state = \"busy\", pattern = \"CRUNCHING\", rows = 5, name = \"mine busy\" }]\n\
         [[agent]]\nname = \"a\"\nbackend = \"mine\"\nprompt = \"hi\"\n",
    )
    .unwrap();
    let b = cfg.backend_of(cfg.agent("a").unwrap());
    assert_eq!(b.bin, "gem");
    assert_eq!(b.flags, "--yolo -i");
    assert_eq!(b.screen_rules[0].name, "mine busy");
    let now = chrono::Local::now().fixed_offset();
    let c = orch::detect::classify("CRUNCHING\n > Type your message\n", &b.screen_rules, now);
    assert_eq!(c.state.as_str(), "busy");
    let idle = orch::detect::classify(
        " >   Type your message or @path/to/file\n",
        &b.screen_rules,
        now,
    );
    assert_eq!(idle.state.as_str(), "idle_input");
}

#[test]
fn auto_accept_must_name_a_dialog_of_the_backend() {
    let err = load(
        "[[agent]]\nname = \"a\"\nbackend = \"claude-code\"\nprompt = \"hi\"\nauto_accept = [\"trust\", \"everything\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("auto_accept \"everything\""), "{err}");
    assert!(
        err.contains("known: trust, bypass-permissions, api-key"),
        "{err}"
    );
    assert!(err.contains("agents.toml:"), "points at a line: {err}");
    let ok = load(
        "[[agent]]\nname = \"a\"\nbackend = \"claude-code\"\nprompt = \"hi\"\nauto_accept = [\"trust\", \"bypass-permissions\"]\n",
    )
    .unwrap();
    assert_eq!(
        ok.agent("a").unwrap().auto_accept,
        ["trust", "bypass-permissions"]
    );
}

#[test]
fn unknown_backends_and_bad_screen_rules_are_config_errors() {
    let err = load("[[agent]]\nname = \"a\"\nbackend = \"claud\"\nprompt = \"hi\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("claude-code, codex, gemini-cli, opencode"),
        "{err}"
    );
    let err = load(
        "[backend.x]\nbin = \"x\"\nscreen_rules = [{ state = \"sleepy\", pattern = \"z\" }]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("screen_rules[0]") && err.contains("sleepy"),
        "{err}"
    );
    let err = load("[backend.x]\npreset = \"nope\"\nbin = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a built-in preset"), "{err}");
}

fn classify_cmd(args: &[&str], stdin: Option<&str>, cwd: &Path) -> (i32, String, String) {
    let mut child = Command::new(orch_bin())
        .arg("classify")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn classify_prints_the_state_of_a_fixture_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let trust = fixture("claude/d-shell-launch-3s.txt");
    let (code, out, err) = classify_cmd(
        &["--backend", "claude-code", trust.to_str().unwrap()],
        None,
        dir.path(),
    );
    assert_eq!((code, out.as_str()), (0, "trust_prompt\n"), "{err}");
    let (code, out, _) = classify_cmd(
        &["--json", "--backend", "codex", "-"],
        Some("■ Conversation interrupted\n You've hit your usage limit. Try again in 3h 47m.\n"),
        dir.path(),
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "rate_limited");
    assert_eq!(v["rule"], "usage limit banner");
    let reset = v["reset"].as_str().unwrap();
    let reset = chrono::DateTime::parse_from_rfc3339(reset).unwrap();
    let ahead = reset.signed_duration_since(chrono::Local::now());
    assert!(
        ahead > chrono::Duration::minutes(3 * 60 + 40)
            && ahead < chrono::Duration::minutes(3 * 60 + 50),
        "{ahead}"
    );
}

#[test]
fn classify_rejects_an_unknown_backend_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = classify_cmd(&["--backend", "nope"], Some("x\n"), dir.path());
    assert_eq!(code, 2, "{out}");
    assert!(err.contains("unknown backend \"nope\""), "{err}");
}

#[test]
fn classify_uses_the_backends_and_rules_of_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("agents.toml"),
        format!(
            "{HEAD}[backend.cc]\npreset = \"claude-code\"\nbin = \"claude\"\n\
             screen_rules = [{{ state = \"exited\", pattern = \"^BYE$\", name = \"my bye\" }}]\n"
        ),
    )
    .unwrap();
    let (code, out, err) = classify_cmd(
        &["--json", "--backend", "cc"],
        Some("BYE\n❯ \n"),
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["rule"].as_str()),
        (Some("exited"), Some("my bye"))
    );
    let (_, out, _) = classify_cmd(
        &["--backend", "cc"],
        Some("  ⏵⏵ auto mode on\n"),
        dir.path(),
    );
    assert_eq!(out, "idle_input\n");
}

/// A fake CLI: shows Claude's trust dialog, records the first 4 key bytes, then the input box.
const FAKE_TRUST: &str = r#"stty -echo -icanon min 1 time 0
printf ' Quick safety check: Is this a project you created or one you trust?\n\n ❯ No, exit\n   Yes, I trust this folder\n\n Enter to confirm · Esc to cancel\n'
keys=$(dd bs=1 count=4 2>/dev/null | od -An -c | tr -s ' ')
printf '%s\n' "$keys" > "$ORCH_LOG_DIR/$ORCH_AGENT.keys"
clear
printf '────\n❯ \n────\n  ⏵⏵ bypass permissions on (shift+tab to cycle)\n'
exec sleep 600
"#;

/// A fake CLI that is not logged in.
const FAKE_LOGIN: &str = r#"printf '❯ hello\n  ⎿  Not logged in · Please run /login\n────\n❯ \n────\n'
exec sleep 600
"#;

fn fake_project(agents: &str) -> Project {
    let body = r#"
[backend.fake-trust]
preset = "claude-code"
bin = "sh ./fake-trust.sh"
flags = ""
connect_delay = 10

[backend.fake-login]
preset = "claude-code"
bin = "sh ./fake-login.sh"
flags = ""
stall_idle = 1
log_grace = 0
"#;
    let p = Project::new(&format!("{body}{agents}"));
    std::fs::write(p.path("fake-trust.sh"), FAKE_TRUST).unwrap();
    std::fs::write(p.path("fake-login.sh"), FAKE_LOGIN).unwrap();
    p
}

#[test]
fn up_answers_an_opted_in_trust_dialog_before_it_returns() {
    let p = fake_project(
        "[[agent]]\nname = \"cc\"\nbackend = \"fake-trust\"\nprompt = \"hi\"\nauto_accept = [\"trust\"]\n",
    );
    p.orch_ok(&["up", "cc"]);
    let accepted = p.events_named("auto_accepted");
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["dialog"], "trust");
    assert_eq!(accepted[0]["keys"], serde_json::json!(["Down", "Enter"]));
    let keys = p.log_dir().join("cc.keys");
    assert!(wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&keys).is_ok_and(|k| k.contains("033 [ B"))
    }));
    let idle = wait_for(Duration::from_secs(5), || {
        let screen = p
            .server
            .tmux
            .capture("t-cc", usize::MAX)
            .unwrap_or_default();
        screen.contains("⏵⏵")
    });
    assert!(idle, "the fake CLI got past its trust dialog");
}

#[test]
fn watchdog_reports_a_login_problem_once_never_restarts_it_and_leaves_unopted_dialogs_alone() {
    let p = fake_project(
        "[[agent]]\nname = \"login\"\nbackend = \"fake-login\"\nprompt = \"hi\"\nwatch = \"heal+stall\"\n\
         [[agent]]\nname = \"shy\"\nbackend = \"fake-trust\"\nprompt = \"hi\"\n",
    );
    p.orch_ok(&["up"]);
    assert!(p.wait_events("needs_attention", 1, Duration::from_secs(15)));
    // Three more ticks (1 s each) keep the one episode open without a new event.
    assert!(p.wait_events("watchdog_started", 1, Duration::from_secs(1)));
    std::thread::sleep(Duration::from_secs(3));
    let events = p.events_named("needs_attention");
    let of =
        |n: &str| -> Vec<Value> { events.iter().filter(|e| e["agent"] == n).cloned().collect() };
    assert_eq!(of("login").len(), 1, "{events:?}");
    assert_eq!(of("login")[0]["state"], "login_required");
    // A dialog the agent may not answer is news for a person too: once, never keys.
    assert_eq!(of("shy").len(), 1, "{events:?}");
    assert_eq!(of("shy")[0]["state"], "trust_prompt");
    assert!(p.events_named("auto_accepted").is_empty());
    // An idle, logged-out agent is not rebooted as stalled (no restart loop).
    assert!(
        p.events_named("healed").is_empty(),
        "{:?}",
        p.events_named("healed")
    );
    let screen = p.server.tmux.capture("t-shy", usize::MAX).unwrap();
    assert!(screen.contains("❯ No, exit"), "{screen}");
    let status: Value = serde_json::from_str(&p.orch_ok(&["status", "--json"])).unwrap();
    let agent = |n: &str| {
        status["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(agent("login")["needs_attention"], "login_required");
    assert_eq!(agent("shy")["needs_attention"], "trust_prompt");
    assert_eq!(agent("shy")["state"], "waiting_input");
    let table = p.orch_ok(&["status"]);
    assert!(table.contains("attn: login"), "{table}");
    p.orch_ok(&["down"]);
}
