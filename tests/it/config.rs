//! Config loading and validation: the full DESIGN.md schema merges as documented, and
//! each kind of mistake yields its own message with file:line:col and exit code 2.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use orch::config::{self, Delivery, Kind, LoadOptions, Watch};

/// Every key of the DESIGN.md schema, with values that differ from the defaults.
const FULL: &str = r###"
[defaults]
session_prefix = "myproj-"
log_dir = ".orch"
project_dir = "."
backend = "claude"
model = "sonnet"
watch = "heal"
tmux_socket = "orch-myproj"

[watchdog]
signal_interval = 7
heavy_interval = "2m"
stall_grace = 11
limit_probe_fallback = 13
limit_reset_slack = 17

[backend.claude]
bin = "claude"
flags = "--dangerously-skip-permissions"
prompt_delivery = "arg"
process_name = "claude"
submit_key = "C-m"
model_flag = "--model '{model}'"
supports_resume = true
resume_flag = "--resume '{id}'"
active_re = "esc to interrupt"
limit_re = "usage limit|limit reached"
fatal_re = "session.*corrupt"
footer_ui = true
log_grace = 19
stall_idle = 23

[backend.oc]
bin = "opencode"
prompt_delivery = "ping"
preamble = "export A=1"
attach = "{bin} attach {server} --dir {dir}"
server = "http://127.0.0.1:4096"
connect_delay = 3
model_env = true

[[agent]]
name = "builder"
kind = "loop"
role = "builder"
watch = "heal+stall"

[[agent]]
name = "adversary"
kind = "loop"
role = "adversary"
backend = "oc"
model = "gpt"
resume = true

[[agent]]
name = "super"
kind = "persistent"
prompt_file = "prompts/super.md"
dir = "sub"
session = "custom-super"
enabled = false
wake = { interval = 3600, prompt_file = "prompts/wake.md" }
env = { TOKEN = "t0p" }

[[agent]]
name = "finisher"
kind = "task"
prompt = "finish it"

[[service]]
name = "web"
command = "python3 -m http.server 8000"

[loop]
state_file = "phase-idx"
done_marker = "## DONE"
kickoff_template = "prompts/kickoff.md"
roles_dir = "prompts"
auto_advance = false
phases = [
  { id = "p1", plan = "docs/p1-plan.md", status = "p1-STATUS.md" },
  { id = "p2", plan = "docs/p2-plan.md", status = "p2-STATUS.md", models = { builder = "opus" } },
]
[loop.handoff]
repo = "."
state_subdir = "machine-docs"
claim_pattern = "^claim"
review_pattern = "^review"
claim_pings = "adversary"
review_pings = "builder"
inboxes = ["ADVERSARY-INBOX.md", "BUILDER-INBOX.md"]
[loop.on_complete]
run = "finisher"
trigger_file = ".run-on-complete"
"###;

/// A project folder with the prompt files FULL refers to.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    for f in [
        "kickoff.md",
        "builder.md",
        "adversary.md",
        "super.md",
        "wake.md",
    ] {
        std::fs::write(prompts.join(f), format!("{f}\n")).unwrap();
    }
    dir
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("agents.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn full_schema_merges_defaults_and_resolves_paths() {
    let dir = project();
    let path = write(dir.path(), FULL);
    let env = |k: &str| (k == "AGENT_MODEL_builder").then(|| "haiku".to_string());
    let loaded = config::load_str_with_env(FULL, &path, LoadOptions::STRICT, &env).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    let root = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(c.project_dir, root);
    assert_eq!(c.log_dir, root.join(".orch"));
    assert_eq!(c.state_dir, root.join(".orch/state"));
    assert_eq!(c.tmux_socket.as_deref(), Some("orch-myproj"));
    assert_eq!(c.watchdog.signal_interval, Duration::from_secs(7));
    assert_eq!(c.watchdog.heavy_interval, Duration::from_secs(120));
    assert_eq!(c.watchdog.stall_grace, Duration::from_secs(11));
    assert_eq!(c.watchdog.limit_probe_fallback, Duration::from_secs(13));
    assert_eq!(c.watchdog.limit_reset_slack, Duration::from_secs(17));

    let claude = &c.backends["claude"];
    assert_eq!(claude.submit_key, "C-m");
    assert!(claude.supports_resume && claude.footer_ui);
    assert_eq!(claude.process_name.as_deref(), Some("claude"));
    assert!(
        claude
            .active_re
            .as_ref()
            .unwrap()
            .is_match("ESC TO INTERRUPT")
    );
    assert!(
        claude
            .fatal_re
            .as_ref()
            .unwrap()
            .is_match("session file corrupt")
    );
    assert_eq!(claude.log_grace, Duration::from_secs(19));
    assert_eq!(claude.stall_idle, Duration::from_secs(23));
    let oc = &c.backends["oc"];
    assert_eq!(oc.prompt_delivery, Delivery::Ping);
    assert_eq!(oc.connect_delay, Duration::from_secs(3));
    assert_eq!(oc.submit_key, "Enter", "backend default");
    assert!(oc.model_env);

    let builder = c.agent("builder").unwrap();
    assert_eq!(builder.kind, Kind::Loop);
    assert_eq!(builder.backend, "claude", "from [defaults]");
    assert_eq!(builder.model, "haiku", "AGENT_MODEL_builder overrides");
    assert_eq!(builder.watch, Watch::HealStall);
    assert_eq!(builder.session, "myproj-builder");
    assert_eq!(builder.dir, root);
    let adversary = c.agent("adversary").unwrap();
    assert_eq!(
        (adversary.backend.as_str(), adversary.model.as_str()),
        ("oc", "gpt")
    );
    assert_eq!(adversary.watch, Watch::Heal, "from [defaults]");
    assert!(adversary.resume);
    let sup = c.agent("super").unwrap();
    assert_eq!(sup.session, "custom-super");
    assert_eq!(sup.dir, root.join("sub"));
    assert!(!sup.enabled);
    assert_eq!(
        sup.prompt_file.as_deref(),
        Some(root.join("prompts/super.md").as_path())
    );
    assert_eq!(
        sup.wake.as_ref().unwrap().interval,
        Duration::from_secs(3600)
    );
    assert_eq!(sup.env["TOKEN"], "t0p");
    assert_eq!(c.agent("finisher").unwrap().kind, Kind::Task);
    assert_eq!(c.services[0].session, "myproj-web");

    let l = c.loop_.as_ref().unwrap();
    assert!(!l.auto_advance);
    assert_eq!(
        l.kickoff_template.as_deref(),
        Some(root.join("prompts/kickoff.md").as_path())
    );
    assert_eq!(l.phases[1].models["builder"], "opus");
    assert_eq!(c.phase_index_file(), root.join(".orch/state/phase-idx"));
    let h = l.handoff.as_ref().unwrap();
    assert_eq!(h.repo, root);
    assert_eq!(h.inboxes, ["ADVERSARY-INBOX.md", "BUILDER-INBOX.md"]);
    assert!(h.claim_pattern.is_match("Claim: p1 done"));
    assert_eq!(l.on_complete.as_ref().unwrap().run, "finisher");
}

fn orch(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_TMUX_SOCKET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MINIMAL: &str = "[defaults]\nsession_prefix = \"p-\"\nlog_dir = \".orch\"\nbackend = \"sh\"\n\n[backend.sh]\nbin = \"sh\"\n";

#[test]
fn each_bad_config_gets_its_own_message_and_exit_2() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "missing session_prefix",
            "[defaults]\nlog_dir = \"x\"\n",
            "agents.toml:1:1: [defaults].session_prefix is required",
        ),
        (
            "missing log_dir",
            "[defaults]\nsession_prefix = \"p-\"\n",
            "agents.toml:1:1: [defaults].log_dir is required",
        ),
        (
            "unknown backend",
            &format!("{MINIMAL}[[agent]]\nname = \"a\"\nbackend = \"claud\"\n"),
            "agents.toml:10:11: agent a: unknown backend \"claud\" (known: claude-code, codex, gemini-cli, opencode, sh)",
        ),
        (
            "duplicate agent",
            &format!("{MINIMAL}[[agent]]\nname = \"a\"\n[[agent]]\nname = \"a\"\n"),
            "agents.toml:11:8: agent a: the name is used twice",
        ),
        (
            "agent and service share a name",
            &format!(
                "{MINIMAL}[[agent]]\nname = \"a\"\n[[service]]\nname = \"a\"\ncommand = \"true\"\n"
            ),
            "service a: the name is already used",
        ),
        (
            "session with a dot",
            &format!("{MINIMAL}[[agent]]\nname = \"a\"\nsession = \"p.a\"\n"),
            "agents.toml:10:11: agent a: session name \"p.a\" cannot be used by tmux",
        ),
        (
            "session with a colon",
            &format!("{MINIMAL}[[agent]]\nname = \"a:b\"\n"),
            "agent a:b: session name \"p-a:b\" cannot be used by tmux",
        ),
        (
            "broken regex",
            &format!("{MINIMAL}limit_re = \"(usage\"\n"),
            "agents.toml:8:12: backend sh: limit_re does not compile as a regex: unclosed group",
        ),
        (
            "loop agent without role",
            &format!("{MINIMAL}[[agent]]\nname = \"b\"\nkind = \"loop\"\n[loop]\n"),
            "agent b: a loop agent needs a role",
        ),
        (
            "role prompt missing",
            &format!(
                "{MINIMAL}[[agent]]\nname = \"b\"\nkind = \"loop\"\nrole = \"builder\"\n[loop]\n"
            ),
            "agents.toml:11:8: agent b: role prompt",
        ),
        (
            "phase without id",
            &format!("{MINIMAL}[loop]\nphases = [{{ status = \"s.md\" }}]\n"),
            "agents.toml:9:11: [loop].phases[0] has no id",
        ),
        (
            "phase without status",
            &format!("{MINIMAL}[loop]\nphases = [{{ id = \"p1\" }}]\n"),
            "[loop].phases[0] (p1) has no status file",
        ),
        (
            "on_complete names no agent",
            &format!("{MINIMAL}[loop]\n[loop.on_complete]\nrun = \"ghost\"\n"),
            "agents.toml:10:7: [loop.on_complete].run names \"ghost\", which is not an agent",
        ),
        (
            "unknown key",
            "[defaults]\nsesion_prefix = \"p-\"\nlog_dir = \"x\"\n",
            "agents.toml:2:1: unknown key `defaults.sesion_prefix` (did you mean `session_prefix`?)",
        ),
        (
            "wrong type",
            "[defaults]\nsession_prefix = \"p-\"\nlog_dir = 3\n",
            "agents.toml:3:11: defaults.log_dir: invalid type: integer `3`, expected a string",
        ),
        (
            "bad kind",
            &format!("{MINIMAL}[[agent]]\nname = \"a\"\nkind = \"worker\"\n"),
            "agent a: kind \"worker\" is not one of loop, persistent, task, orchestrator",
        ),
        (
            "bad duration",
            &format!("{MINIMAL}[watchdog]\nsignal_interval = \"5x\"\n"),
            "watchdog.signal_interval: \"5x\" is not a duration",
        ),
        (
            "broken TOML",
            "[defaults\n",
            "agents.toml:1:10: invalid TOML",
        ),
        (
            "missing prompt file",
            &format!("{MINIMAL}[[agent]]\nname = \"a\"\nprompt_file = \"nope.md\"\n"),
            "agent a: prompt_file",
        ),
    ];
    for (what, text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), text);
        let (code, out, err) = orch(dir.path(), &["validate"]);
        assert_eq!(code, 2, "{what}: exit code; stderr: {err}");
        assert!(
            err.contains(expected),
            "{what}: expected {expected:?} in stderr:\n{err}"
        );
        assert!(out.is_empty(), "{what}: nothing on stdout");
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "{what}: validate wrote nothing to disk");
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &format!(
            "{MINIMAL}active_re = \"(\"\n[[agent]]\nname = \"a\"\nbackend = \"x\"\n[[agent]]\nname = \"a\"\n"
        ),
    );
    let (code, _, err) = orch(dir.path(), &["validate"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 3, "{err}");
    assert!(
        err.contains("active_re") && err.contains("unknown backend") && err.contains("used twice")
    );
}

#[test]
fn unknown_keys_are_errors_for_validate_and_warnings_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        format!("{MINIMAL}extra_from_reference = 1\n[[agent]]\nname = \"a\"\nmodle = \"x\"\n");
    let path = write(dir.path(), &text);
    let strict = config::load(&path, LoadOptions::STRICT)
        .unwrap_err()
        .to_string();
    assert!(
        strict.contains("unknown key `agent[0].modle` (did you mean `model`?)"),
        "{strict}"
    );
    assert!(
        strict.contains("unknown key `backend.sh.extra_from_reference`"),
        "{strict}"
    );
    let lenient = config::load(&path, LoadOptions::LENIENT).unwrap();
    assert_eq!(lenient.warnings.len(), 2, "{:?}", lenient.warnings);
    assert!(
        lenient
            .warnings
            .iter()
            .any(|w| w.contains("did you mean `model`?"))
    );
}

#[test]
fn init_scaffolds_a_project_that_validates_once_its_next_steps_are_done() {
    let fx = crate::gitfix::GitFixture::new();
    let project = fx.clone("my proj");
    let (code, out, err) = orch(fx.dir.path(), &["init", "my proj"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("agents.toml"));
    let toml = std::fs::read_to_string(project.join("agents.toml")).unwrap();
    assert!(
        toml.contains("session_prefix = \"my-proj-\""),
        "named after the folder: {toml}"
    );
    // Works for its preset on first try: the dialogs its flags bring up, no model forced on
    // other backends, a private tmux server.
    assert!(
        toml.contains(r#"auto_accept = ["trust", "bypass-permissions"]"#),
        "{toml}"
    );
    assert!(!toml.contains("model ="), "no model forced: {toml}");
    assert!(toml.contains("tmux_socket = \"orch-my-proj\""), "{toml}");
    // The log dir is ignored by git.
    let ignore = std::fs::read_to_string(project.join(".gitignore")).unwrap();
    assert_eq!(ignore.matches("/.orch/").count(), 1, "{ignore}");
    // The next steps: the plan, separate clones, the first-run login, validate && up.
    for step in ["p1-plan.md", "clone", "login", "orch validate && orch up"] {
        assert!(out.contains(step), "next steps mention {step:?}: {out}");
    }
    for f in ["kickoff.md", "builder.md", "adversary.md"] {
        assert!(project.join("prompts").join(f).is_file(), "{f}");
    }
    let kickoff = std::fs::read_to_string(project.join("prompts/kickoff.md")).unwrap();
    for slot in ["{phase_id}", "{plan}", "{status}", "{role}"] {
        assert!(kickoff.contains(slot), "kickoff has the {slot} slot");
    }
    // Before the steps: validate names the missing plan and clones, with their lines.
    let (code, _, err) = orch(&project, &["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("agents.toml:"), "{err}");
    assert!(err.contains("plan docs/p1-plan.md does not exist"), "{err}");
    assert!(err.contains("agent builder: dir"), "{err}");
    assert!(err.contains("agent adversary: dir"), "{err}");
    // `up` does not create a missing agent dir: it says so.
    let (code, _, err) = orch(&project, &["up", "builder"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(!fx.dir.path().join("my-proj-builder").exists());
    // After them: valid (the STATUS file is only a warning until the builder pushes it).
    fx.clone("my-proj-builder");
    fx.clone("my-proj-adversary");
    std::fs::create_dir_all(project.join("docs")).unwrap();
    std::fs::write(project.join("docs/p1-plan.md"), "# p1\n").unwrap();
    let (code, out, err) = orch(&project, &["validate"]);
    assert_eq!(
        code, 0,
        "init's output validates after its next steps: {err}"
    );
    assert!(out.contains("ok (2 agents"), "{out}");
    assert!(err.contains("p1-STATUS.md is not there yet"), "{err}");
    // init never overwrites, and leaves .gitignore alone then.
    std::fs::write(project.join("agents.toml"), "mine").unwrap();
    let (code, _, err) = orch(fx.dir.path(), &["init", "my proj"]);
    assert_eq!(code, 2);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(
        std::fs::read_to_string(project.join("agents.toml")).unwrap(),
        "mine"
    );
    assert_eq!(
        std::fs::read_to_string(project.join(".gitignore")).unwrap(),
        ignore
    );
}

#[test]
fn validate_checks_the_current_phase_plan_and_warns_for_later_ones() {
    let fx = crate::gitfix::GitFixture::new();
    let root = fx.dir.path();
    fx.clone("builder");
    std::fs::create_dir_all(root.join("prompts")).unwrap();
    std::fs::write(root.join("prompts/builder.md"), "role").unwrap();
    fx.clone("watch");
    std::fs::create_dir_all(root.join("plans")).unwrap();
    std::fs::write(root.join("plans/p1.md"), "plan").unwrap();
    let text = format!(
        "{MINIMAL}[[agent]]\nname = \"builder\"\nkind = \"loop\"\nrole = \"builder\"\ndir = \"builder\"\n\
         [loop]\nphases = [\n  {{ id = \"p1\", plan = \"plans/p1.md\", status = \"p1-STATUS.md\" }},\n  \
         {{ id = \"p2\", plan = \"plans/p2.md\", status = \"p2-STATUS.md\" }},\n]\n\
         [loop.handoff]\nrepo = \"watch\"\n"
    );
    write(root, &text);
    let (code, _, err) = orch(root, &["validate"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("agents.toml:15:"),
        "later plan warned at its line: {err}"
    );
    assert!(
        err.contains("phase p2: plan plans/p2.md does not exist"),
        "{err}"
    );
    // At phase p2 the missing plan is an error.
    let (code, _, _) = orch(root, &["phase", "set", "1"]);
    assert_eq!(code, 0);
    let (code, _, err) = orch(root, &["validate"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("phase p2: plan plans/p2.md does not exist"),
        "{err}"
    );
}

#[test]
fn shipped_example_config_validates_in_the_project_it_describes() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let config =
        orch::demo::create_project(&root, "orch-example-test", Path::new("/usr/bin/orch")).unwrap();
    // The file as shipped, in the layout it describes.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents.example.toml");
    std::fs::copy(shipped, &config).unwrap();
    let (code, out, err) = orch(&root, &["validate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 agents"), "{out}");
}

#[test]
fn missing_config_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = orch(dir.path(), &["validate"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config agents.toml"), "{err}");
}
