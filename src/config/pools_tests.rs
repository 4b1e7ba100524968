//! Unit tests of `[pool.NAME]`: knobs and their defaults, explicit placement, config errors,
//! and derived account pools (API keys, Claude's oauthAccount); temp dirs only.
use super::*;
use crate::config::{LoadOptions, load_str_with_env};

fn load(text: &str) -> Result<Config, String> {
    let text = format!("[defaults]\nsession_prefix = \"t-\"\nlog_dir = \".orch\"\n{text}");
    load_str_with_env(
        &text,
        Path::new("/tmp/agents.toml"),
        LoadOptions::STRICT,
        &|_| None,
    )
    .map(|l| l.config)
    .map_err(|e| e.to_string())
}

const AGENTS: &str = r#"
[backend.sim]
bin = "orch sim"
[[agent]]
name = "a"
backend = "sim"
pool = "max-a"
[[agent]]
name = "b"
backend = "sim"
"#;

#[test]
fn a_declared_pool_takes_its_knobs_and_members() {
    let cfg = load(&format!(
        "[pool.max-a]\nrelease_stagger = \"5s\"\nreset_slack = 2\nprobe_ladder = [\"1m\", \"2m\"]\n{AGENTS}"
    ))
    .unwrap();
    let pools = cfg.pool_members();
    let p = &pools["max-a"];
    assert_eq!(p.members, vec!["a"]);
    assert_eq!(p.pool.release_stagger, Duration::from_secs(5));
    assert_eq!(p.pool.reset_slack, Some(Duration::from_secs(2)));
    assert_eq!(
        p.pool.probe_ladder,
        vec![Duration::from_secs(60), Duration::from_secs(120)]
    );
    assert!(
        cfg.pool_of("b").is_none(),
        "a sim with no account is in no pool"
    );
}

#[test]
fn an_empty_pool_table_has_the_documented_defaults() {
    let cfg = load(&format!("[pool.max-a]\n{AGENTS}")).unwrap();
    let p = &cfg.pools.declared["max-a"];
    assert_eq!(p.release_stagger, DEFAULT_RELEASE_STAGGER);
    assert_eq!(p.probe_ladder, DEFAULT_PROBE_LADDER.to_vec());
    assert_eq!(p.reset_slack, None);
}

#[test]
fn a_backend_pool_places_its_agents_unless_they_name_their_own() {
    let text = r#"
[pool.one]
[pool.two]
[backend.sim]
bin = "orch sim"
pool = "one"
[[agent]]
name = "a"
backend = "sim"
[[agent]]
name = "b"
backend = "sim"
pool = "two"
"#;
    let cfg = load(text).unwrap();
    assert_eq!(cfg.pools.assigned["a"], "one");
    assert_eq!(cfg.pools.assigned["b"], "two");
}

#[test]
fn an_undeclared_pool_is_an_error_naming_the_field() {
    let e = load(&AGENTS.replace("max-a", "max-b")).unwrap_err();
    assert!(e.contains("agent a: pool \"max-b\" is not declared"), "{e}");
    assert!(e.starts_with("/tmp/agents.toml:10:"), "{e}");
    let e = load(
        "[backend.sim]\nbin = \"x\"\npool = \"p\"\n[[agent]]\nname = \"a\"\nbackend = \"sim\"\n",
    )
    .unwrap_err();
    assert!(e.contains("backend sim: pool \"p\""), "{e}");
}

#[test]
fn bad_pool_knobs_are_errors() {
    let e = load(&format!("[pool.max-a]\nprobe_ladder = []\n{AGENTS}")).unwrap_err();
    assert!(e.contains("[pool.max-a].probe_ladder is empty"), "{e}");
    let e = load(&format!(
        "[pool.max-a]\nrelease_stagger = \"soon\"\n{AGENTS}"
    ))
    .unwrap_err();
    assert!(e.contains("pool.max-a.release_stagger"), "{e}");
    let e = load(&format!("[pool.max-a]\nrelese_stagger = 3\n{AGENTS}")).unwrap_err();
    assert!(e.contains("did you mean `release_stagger`"), "{e}");
    let e = load(&format!("[\"pool\".\"a b\"]\n{AGENTS}")).unwrap_err();
    assert!(e.contains("a pool name may use only"), "{e}");
}

#[test]
fn agents_with_one_api_key_share_a_derived_pool_and_the_key_hides_the_secret() {
    let text = r#"
[backend.sim]
bin = "orch sim"
[[agent]]
name = "a"
backend = "sim"
env = { ANTHROPIC_API_KEY = "sk-secret-1" }
[[agent]]
name = "b"
backend = "sim"
env = { ANTHROPIC_API_KEY = "sk-secret-1" }
[[agent]]
name = "c"
backend = "sim"
env = { ANTHROPIC_API_KEY = "sk-secret-2" }
"#;
    let cfg = load(text).unwrap();
    let pools = cfg.pool_members();
    assert_eq!(pools.len(), 1, "{pools:?}");
    let (name, p) = pools.iter().next().unwrap();
    assert_eq!(p.members, vec!["a", "b"]);
    assert!(
        name.starts_with("sim-") && name.len() == "sim-".len() + 12,
        "{name}"
    );
    assert!(!format!("{pools:?}").contains("secret"));
}

#[test]
fn claude_agents_share_a_pool_by_their_oauth_account() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    for (d, uuid) in [(&one, "u-1"), (&two, "u-1")] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(
            d.join(".claude.json"),
            format!(r#"{{"oauthAccount": {{"accountUuid": "{uuid}", "emailAddress": "x@y"}}}}"#),
        )
        .unwrap();
    }
    let text = format!(
        r#"
[[agent]]
name = "a"
backend = "claude-code"
env = {{ CLAUDE_CONFIG_DIR = "{}" }}
[[agent]]
name = "b"
backend = "claude-code"
env = {{ CLAUDE_CONFIG_DIR = "{}" }}
"#,
        one.display(),
        two.display()
    );
    let cfg = load(&text).unwrap();
    let pools = cfg.pool_members();
    assert_eq!(pools.len(), 1, "one account, two homes: one pool {pools:?}");
    std::fs::write(
        two.join(".claude.json"),
        r#"{"oauthAccount": {"accountUuid": "u-2"}}"#,
    )
    .unwrap();
    assert!(
        cfg.pool_members().is_empty(),
        "two accounts: no shared pool"
    );
}

#[test]
fn account_keys_are_short_stable_hashes() {
    assert_eq!(account_key("x"), account_key("x"));
    assert_ne!(account_key("x"), account_key("y"));
    assert_eq!(account_key("x").len(), 12);
}
