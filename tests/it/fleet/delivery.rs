//! The three prompt deliveries, checked from the started process's side: the kickoff text (or
//! its file) arrives intact, with the model flag, the phase's model override and the env.
use std::time::Duration;

use super::fixture::{Fx, KICKOFF, quote, toml_str};
use crate::support::wait_for;

#[test]
fn arg_delivery_gives_the_process_the_full_kickoff_as_its_last_argument() {
    let fx = Fx::new(&format!(
        r#"
[[agent]]
name = "file"
prompt_file = "prompts/tricky.md"

[[agent]]
name = "inline"
model = "big model's"
prompt = {}
"#,
        toml_str(KICKOFF)
    ));
    fx.write("prompts/tricky.md", KICKOFF);
    fx.orch_ok(&["up", "file", "inline"]);
    for (agent, session) in [("file", "x-file"), ("inline", "x-inline")] {
        assert_eq!(fx.record(agent, "lastarg"), KICKOFF, "{agent}");
        assert_eq!(
            std::fs::read_to_string(fx.kickoff_file(session)).unwrap(),
            KICKOFF,
            "{agent}: kickoff file"
        );
    }
    assert_eq!(fx.argv("file"), [KICKOFF]);
    assert_eq!(fx.argv("inline"), ["--model", "big model's", KICKOFF]);
}

#[test]
fn exec_delivery_fills_the_template_with_the_kickoff_path_session_and_model() {
    let fx = Fx::new(&format!(
        r#"
[backend.ex]
bin = {}
prompt_delivery = "exec"

[[agent]]
name = "e"
backend = "ex"
dir = "e dir"
model = "m $x"
prompt_file = "prompts/tricky.md"
"#,
        toml_str(
            "cp {kickoff} exec-copy.txt && printf '%s\\n' {session} '{model}' > vars.txt; exec sleep 600"
        )
    ));
    fx.write("prompts/tricky.md", KICKOFF);
    fx.orch_ok(&["up", "e"]);
    let dir = fx.root.join("e dir");
    let vars = dir.join("vars.txt");
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(&vars)
            .is_ok_and(|t| t.ends_with('\n'))),
        "the exec template never ran; log: {:?}",
        std::fs::read_to_string(fx.log_dir().join("x-e.log"))
    );
    // The copy proves the kickoff file existed before the process started.
    assert_eq!(
        std::fs::read_to_string(dir.join("exec-copy.txt")).unwrap(),
        KICKOFF
    );
    assert_eq!(std::fs::read_to_string(&vars).unwrap(), "x-e\nm $x\n");
    fx.wait_command("x-e", "sleep");
}

#[test]
fn ping_delivery_types_the_read_line_once_the_pane_shows_an_input() {
    let reader = r#"#!/bin/sh
printf '%s' "$OPENCODE_CONFIG_CONTENT" > "$ORCH_LOG_DIR/$ORCH_AGENT.model"
printf 'ready> '
while IFS= read -r l; do
  printf '%s\n' "$l" >> "$ORCH_LOG_DIR/$ORCH_AGENT.typed"
  printf 'ready> '
done
"#;
    let fx = Fx::new("");
    let script = fx.root.join("bin/reader.sh");
    std::fs::write(&script, reader).unwrap();
    std::fs::write(
        &fx.config,
        std::fs::read_to_string(&fx.config).unwrap()
            + &format!(
                r#"
[backend.pg]
bin = {}
prompt_delivery = "ping"
connect_delay = 5
model_env = true

[[agent]]
name = "p"
backend = "pg"
model = "pm"
prompt_file = "prompts/tricky.md"
"#,
                toml_str(&format!("sh {}", quote(&script)))
            ),
    )
    .unwrap();
    fx.write("prompts/tricky.md", KICKOFF);
    fx.orch_ok(&["up", "p"]);
    let kickoff = fx.kickoff_file("x-p");
    let typed = fx.log_dir().join("p.typed");
    // `up` returns after the line was delivered; allow the reader a moment to write it.
    assert!(wait_for(Duration::from_secs(5), || typed.exists()));
    assert_eq!(
        std::fs::read_to_string(&typed).unwrap(),
        format!("read {} and follow it\n", kickoff.display())
    );
    assert_eq!(std::fs::read_to_string(&kickoff).unwrap(), KICKOFF);
    assert_eq!(
        std::fs::read_to_string(fx.log_dir().join("p.model")).unwrap(),
        r#"{"model":"pm"}"#
    );
}

#[test]
fn loop_kickoff_is_template_plus_role_prompt_with_phase_model_and_identity_env() {
    let fx = Fx::new(
        r#"
[[agent]]
name = "builder"
kind = "loop"
role = "builder"
model = "base"
env = { SECRET_X = "a b$c 'q'" }

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
model = "base"

[[agent]]
name = "helper"
kind = "persistent"
role = "builder"
model = "base"
prompt = "help"

[loop]
kickoff_template = "prompts/kickoff.md"
roles_dir = "prompts"
phases = [{ id = "p1", plan = "plans/p1.md", status = "p1-STATUS.md" },
          { id = "p2", plan = "plans/p2.md", status = "p2-STATUS.md", models = { builder = "opus-x" } }]
"#,
    );
    fx.write(
        "prompts/kickoff.md",
        "Kickoff {role} phase {phase_id} plan {plan} status {status} {other} $HOME\n",
    );
    fx.write("prompts/builder.md", "You are the builder.\n");
    fx.write("prompts/adversary.md", "You are the adversary.\n");
    for i in 1..=2 {
        fx.write(&format!("plans/p{i}.md"), "# plan\n");
    }
    fx.orch_ok(&["phase", "set", "1"]);
    fx.orch_ok(&["up", "builder", "adversary"]);
    let want = |role: &str| {
        format!(
            "Kickoff {role} phase p2 plan plans/p2.md status p2-STATUS.md {{other}} $HOME\n\
             You are the {role}.\n"
        )
    };
    for (agent, model) in [("builder", "opus-x"), ("adversary", "base")] {
        let session = format!("x-{agent}");
        let kickoff = std::fs::read_to_string(fx.kickoff_file(&session)).unwrap();
        assert_eq!(kickoff, want(agent), "{agent}: kickoff file");
        assert_eq!(fx.argv(agent), ["--model", model, want(agent).as_str()]);
    }
    let env = fx.env("builder");
    let get = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{key} not in the environment"))
    };
    let kickoff = fx.kickoff_file("x-builder").display().to_string();
    let root = fx.root.display().to_string();
    let log_dir = fx.log_dir().display().to_string();
    for (key, value) in [
        ("ORCH_AGENT", "builder"),
        ("ORCH_ROLE", "builder"),
        ("ORCH_KIND", "loop"),
        ("ORCH_SESSION", "x-builder"),
        ("ORCH_PHASE", "p2"),
        ("ORCH_PLAN", "plans/p2.md"),
        ("ORCH_STATUS", "p2-STATUS.md"),
        ("ORCH_PROJECT_DIR", root.as_str()),
        ("ORCH_LOG_DIR", log_dir.as_str()),
        ("ORCH_KICKOFF", kickoff.as_str()),
        ("SECRET_X", "a b$c 'q'"),
    ] {
        assert_eq!(get(key), value, "{key}");
    }
    assert!(
        !fx.env("adversary").iter().any(|(k, _)| k == "SECRET_X"),
        "the builder's env table leaked into the adversary"
    );
    let json: serde_json::Value = serde_json::from_str(&fx.orch_ok(&["status", "--json"])).unwrap();
    assert_eq!(json["agents"][0]["model"], "opus-x");
    assert_eq!(json["agents"][1]["model"], "base");
    // Phase overrides are for loop agents: a persistent agent with the same role keeps its model.
    fx.orch_ok(&["up", "helper"]);
    assert_eq!(fx.argv("helper"), ["--model", "base", "help"]);
    let json: serde_json::Value = serde_json::from_str(&fx.orch_ok(&["status", "--json"])).unwrap();
    assert_eq!(json["agents"][2]["name"], "helper");
    assert_eq!(json["agents"][2]["model"], "base", "status shows what runs");
}
