use super::*;

fn fixture(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tui")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

/// The compiled dialog answers of a preset, as config validation builds them.
fn dialogs(preset: &str) -> Vec<DialogAnswer> {
    let table = preset_table(preset).unwrap();
    let Some(toml::Value::Array(items)) = table.get("dialogs") else {
        return Vec::new();
    };
    items
        .iter()
        .map(|d| {
            let s = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap().to_string();
            let keys = d.get("keys").unwrap().as_array().unwrap();
            let keys = keys.iter().map(|k| k.as_str().unwrap().to_string());
            DialogAnswer::new(&s("key"), &s("state"), &s("pattern"), keys.collect()).unwrap()
        })
        .collect()
}

fn answer(preset: &str, opted: &[&str], file: &str, state: ScreenState) -> Option<Vec<String>> {
    let opted: Vec<String> = opted.iter().map(|s| s.to_string()).collect();
    let all = dialogs(preset);
    dialog_answer(&all, &opted, &fixture(file), state).map(|d| d.keys.clone())
}

#[test]
fn the_four_presets_exist_with_a_bin_and_a_rule_set() {
    assert_eq!(
        preset_names(),
        ["claude-code", "codex", "gemini-cli", "opencode"]
    );
    for name in preset_names() {
        let t = preset_table(name).unwrap();
        assert!(t.get("bin").and_then(|b| b.as_str()).is_some(), "{name}");
        assert!(crate::detect::builtin_rules(name).is_some(), "{name}");
        dialogs(name);
    }
    assert!(!is_preset("claude"));
}

#[test]
fn user_keys_override_preset_keys_one_by_one() {
    let user: toml::Table = toml::from_str("flags = \"\"\nbin = \"/opt/claude\"").unwrap();
    let merged = merge_preset("claude-code", Some(&user)).unwrap();
    assert_eq!(merged["bin"].as_str(), Some("/opt/claude"));
    assert_eq!(merged["flags"].as_str(), Some(""));
    assert_eq!(merged["resume_flag"].as_str(), Some("--resume '{id}'"));
    assert!(merge_preset("nope", None).is_none());
}

#[test]
fn claude_trust_dialog_is_answered_down_enter_only_when_opted_in() {
    let f = "claude/d-shell-launch-3s.txt";
    let st = ScreenState::TrustPrompt;
    assert_eq!(
        answer("claude-code", &["trust"], f, st),
        Some(vec!["Down".into(), "Enter".into()])
    );
    assert_eq!(answer("claude-code", &[], f, st), None);
    assert_eq!(answer("claude-code", &["bypass-permissions"], f, st), None);
    // Cursor already on "Yes": Enter alone.
    let moved = "claude/b2-down-1s.txt";
    assert_eq!(
        answer("claude-code", &["trust"], moved, st),
        Some(vec!["Enter".into()])
    );
}

#[test]
fn claude_bypass_and_api_key_dialogs_have_their_own_keys() {
    let bypass = "claude/c-apikey-default-enter-1s.txt";
    let st = ScreenState::PermissionPrompt;
    assert_eq!(
        answer("claude-code", &["bypass-permissions"], bypass, st),
        Some(vec!["Down".into(), "Enter".into()])
    );
    assert_eq!(answer("claude-code", &["trust"], bypass, st), None);
    let key = "claude/b2-down-enter-1s.txt";
    assert_eq!(
        answer("claude-code", &["api-key"], key, ScreenState::Onboarding),
        Some(vec!["Up".into(), "Enter".into()])
    );
    let key_yes = "claude/b2-up-1s.txt";
    assert_eq!(
        answer(
            "claude-code",
            &["api-key"],
            key_yes,
            ScreenState::Onboarding
        ),
        Some(vec!["Enter".into()])
    );
}

#[test]
fn codex_and_gemini_trust_dialogs_are_answered() {
    let st = ScreenState::TrustPrompt;
    assert_eq!(
        answer("codex", &["trust"], "codex/a-typed-key-enter-1s.txt", st),
        Some(vec!["Enter".into()])
    );
    assert_eq!(
        answer("gemini-cli", &["trust"], "gemini/f-longwait-8s.txt", st),
        Some(vec!["1".into()])
    );
}

#[test]
fn a_dialog_pattern_above_the_last_fifteen_rows_is_not_answered() {
    let mut screen = fixture("claude/d-shell-launch-3s.txt");
    screen.push_str(&"some later output\n".repeat(16));
    let opted = vec!["trust".to_string()];
    let all = dialogs("claude-code");
    assert!(dialog_answer(&all, &opted, &screen, ScreenState::TrustPrompt).is_none());
}

#[test]
fn a_dialog_entry_must_name_a_dialog_state_and_keys() {
    assert!(DialogAnswer::new("x", "busy", "a", vec!["Enter".into()]).is_err());
    assert!(DialogAnswer::new("x", "trust_prompt", "a", vec![]).is_err());
    assert!(DialogAnswer::new("x", "trust_prompt", "(", vec!["Enter".into()]).is_err());
    assert!(DialogAnswer::new("x", "nonsense", "a", vec!["Enter".into()]).is_err());
}
