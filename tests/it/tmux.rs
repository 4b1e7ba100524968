//! The tmux module against a real private tmux server: exact targets, env and argv passing,
//! pane logs, delivery into a reading process, the fleet snapshot, missing or hung tmux.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use orch::tmux::{Command, DeliverOptions, NewSession, Tmux, TmuxError};

use crate::support::{TempDir, TmuxServer, wait_for};

const WAIT: Duration = Duration::from_secs(5);

fn shell(line: &str) -> Command {
    Command::Shell(line.to_string())
}

fn argv(args: &[&str]) -> Command {
    Command::Argv(args.iter().map(|a| a.to_string()).collect())
}

fn start(server: &TmuxServer, name: &str, cwd: &Path, command: Command) {
    let spec = NewSession::new(name, cwd, command);
    server.tmux.new_session(&spec).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until the file at `path` has exactly `expected` as content.
fn wait_for_file(path: &Path, expected: &str) -> String {
    wait_for(WAIT, || read(path) == expected);
    read(path)
}

/// `sh -c` reading lines and appending each to `rec`.
fn line_recorder(rec: &Path) -> Command {
    Command::Argv(vec![
        "sh".into(),
        "-c".into(),
        r#"while IFS= read -r l; do printf '%s\n' "$l" >> "$0"; done"#.into(),
        rec.to_string_lossy().into_owned(),
    ])
}

#[test]
fn killing_a_session_spares_the_one_whose_name_extends_it() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    start(
        &server,
        "x-builder",
        dir.path(),
        shell("echo I-AM-ONE; exec sleep 60"),
    );
    start(
        &server,
        "x-builder2",
        dir.path(),
        shell("echo I-AM-TWO; exec sleep 60"),
    );
    let t = &server.tmux;
    assert!(wait_for(WAIT, || t
        .capture("x-builder2", 5)
        .unwrap()
        .contains("I-AM-TWO")));
    assert!(wait_for(WAIT, || t
        .capture("x-builder", 5)
        .unwrap()
        .contains("I-AM-ONE")));
    assert!(!t.capture("x-builder", 50).unwrap().contains("I-AM-TWO"));
    assert!(!t.has_session("x-build").unwrap());

    assert!(t.kill_session("x-builder").unwrap());
    assert!(!t.has_session("x-builder").unwrap());
    assert!(t.has_session("x-builder2").unwrap());
    assert!(
        !t.kill_session("x-builder").unwrap(),
        "second kill finds nothing"
    );
    assert_eq!(
        t.display("x-builder2", "#{session_name}").unwrap(),
        "x-builder2"
    );
}

#[test]
fn env_reaches_the_process_without_being_typed_and_cwd_is_created() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    let cwd = dir.path().join("new dir").join("sub");
    let out = dir.path().join("env.out");
    let value = "s3cret value with $HOME and `x` and 'q'";
    let mut spec = NewSession::new(
        "envy",
        &cwd,
        argv(&[
            "sh",
            "-c",
            r#"printf '%s|%s' "$ORCH_SECRET" "$(pwd)" > "$0"; exec sleep 60"#,
            out.to_str().unwrap(),
        ]),
    );
    spec.env.push(("ORCH_SECRET".into(), value.into()));
    server.tmux.new_session(&spec).unwrap();
    let cwd = cwd.canonicalize().unwrap();
    let expected = format!("{value}|{}", cwd.display());
    assert_eq!(wait_for_file(&out, &expected), expected);
    assert!(!server.tmux.capture("envy", 50).unwrap().contains("s3cret"));
}

#[test]
fn env_values_never_reach_the_tmux_argv_and_their_file_is_gone_once_read() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    let record = dir.path().join("argv.log");
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v tmux"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let body = format!(
        "printf '%s\\n' \"$*\" >> {}; exec {} \"$@\"",
        record.display(),
        real.trim()
    );
    let tmux = server
        .tmux
        .clone()
        .with_binary(fake_tmux(dir.path(), &body));
    let out = dir.path().join("env.out");
    let secret = "hunter2-value-of-a-secret-kind";
    let mut spec = NewSession::new(
        "envfile",
        dir.path(),
        argv(&[
            "sh",
            "-c",
            r#"printf '%s' "$ORCH_TOKEN" > "$0"; exec sleep 60"#,
            out.to_str().unwrap(),
        ]),
    );
    spec.env.push(("ORCH_TOKEN".into(), secret.into()));
    tmux.new_session(&spec).unwrap();
    assert_eq!(wait_for_file(&out, secret), secret);
    let argvs = std::fs::read_to_string(&record).unwrap();
    assert!(argvs.contains("new-session"), "{argvs}");
    assert!(!argvs.contains(secret), "a secret in tmux's argv: {argvs}");
    let leftover = ["/dev/shm", dir.path().to_str().unwrap()]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
        })
        .filter(|n| n.starts_with(".orch-env-envfile-"))
        .collect::<Vec<_>>();
    assert!(leftover.is_empty(), "env files left: {leftover:?}");
}

#[test]
fn argv_command_receives_each_argument_intact() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("argv.out");
    let args = [
        "with space",
        "it's \"quoted\"",
        "$HOME",
        "`id`",
        "semi;",
        ";",
        "back\\slash\\;",
        "-x",
        "",
    ];
    let script =
        r#"out=$1; shift; for a in "$@"; do printf '<%s>\n' "$a"; done > "$out"; exec sleep 60"#;
    let mut command = vec!["sh", "-c", script, "recorder", out.to_str().unwrap()];
    command.extend(args);
    start(&server, "argv", dir.path(), argv(&command));
    let expected: String = args.iter().map(|a| format!("<{a}>\n")).collect();
    assert_eq!(wait_for_file(&out, &expected), expected);
}

#[test]
fn single_argv_program_with_spaces_in_its_path_runs() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    let bin_dir = dir.path().join("my tools");
    std::fs::create_dir(&bin_dir).unwrap();
    let program = bin_dir.join("it's prog");
    let out = dir.path().join("ran");
    std::fs::write(
        &program,
        format!("#!/bin/sh\necho ran > '{}'\nexec sleep 60\n", out.display()),
    )
    .unwrap();
    make_executable(&program);
    start(
        &server,
        "single",
        dir.path(),
        argv(&[program.to_str().unwrap()]),
    );
    assert_eq!(wait_for_file(&out, "ran\n"), "ran\n");
}

#[test]
fn pane_log_receives_output_even_with_spaces_and_a_quote_in_its_path() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    let log = dir.path().join("log dir").join("it's a log.log");
    let mut spec = NewSession::new(
        "logged",
        dir.path(),
        shell("echo FIRST-LINE-MARKER; exec cat"),
    );
    spec.log = Some(log.clone());
    server.tmux.new_session(&spec).unwrap();
    assert!(
        wait_for(WAIT, || read(&log).contains("FIRST-LINE-MARKER")),
        "log: {:?}",
        read(&log)
    );
    server.tmux.send_literal("logged", "typed later;").unwrap();
    server.tmux.send_keys("logged", &["Enter"]).unwrap();
    assert!(wait_for(WAIT, || read(&log).contains("typed later;")));
}

#[test]
fn deliver_submits_single_and_multi_line_texts_into_a_line_reader() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    let rec = dir.path().join("rec");
    start(&server, "reader", dir.path(), line_recorder(&rec));
    let t = &server.tmux;
    let opts = DeliverOptions::default();

    let one = t
        .deliver("reader", "claim landed: $HOME `x` 'q';", "Enter", &opts)
        .unwrap();
    assert!(one.confirmed, "{one:?}");
    assert_eq!(one.submits, 1);
    assert!(!one.pasted);
    let mut expected = "claim landed: $HOME `x` 'q';\n".to_string();
    assert_eq!(wait_for_file(&rec, &expected), expected);

    let many = t
        .deliver(
            "reader",
            "first line\nsecond line\nthird line\n",
            "Enter",
            &opts,
        )
        .unwrap();
    assert!(many.confirmed && many.pasted, "{many:?}");
    assert_eq!(many.submits, 1);
    expected.push_str("first line\nsecond line\nthird line\n");
    assert_eq!(wait_for_file(&rec, &expected), expected);

    let long = format!("long {}", "y".repeat(300));
    let sent = t.deliver("reader", &long, "Enter", &opts).unwrap();
    assert!(sent.confirmed && sent.pasted, "{sent:?}");
    expected.push_str(&long);
    expected.push('\n');
    assert_eq!(wait_for_file(&rec, &expected), expected);
}

/// Reads raw keys, echoes them, and ignores the first Enter of every line (like a TUI
/// that turns an early Enter into a newline); the second Enter records the line.
const ENTER_SWALLOWER: &str = r#"stty -icanon -echo -icrnl min 1 time 0
cr=$(printf '\r'); swallowed=; line=
while :; do
  c=$(dd bs=1 count=1 2>/dev/null)
  if [ "$c" = "$cr" ]; then
    if [ -z "$swallowed" ]; then swallowed=1; continue; fi
    printf '\r\n'; printf '%s\n' "$line" >> "$0"; line=; swallowed=
  else
    printf '%s' "$c"; line="$line$c"
  fi
done"#;

#[test]
fn deliver_resends_the_submit_key_when_the_first_one_is_swallowed() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    let rec = dir.path().join("rec");
    let command = argv(&["sh", "-c", ENTER_SWALLOWER, rec.to_str().unwrap()]);
    start(&server, "swallow", dir.path(), command);
    let opts = DeliverOptions {
        submit_wait: Duration::from_millis(500),
        ..DeliverOptions::default()
    };
    let outcome = server
        .tmux
        .deliver("swallow", "needs two enters", "Enter", &opts)
        .unwrap();
    assert!(outcome.confirmed, "{outcome:?}");
    assert_eq!(outcome.submits, 2);
    assert_eq!(
        wait_for_file(&rec, "needs two enters\n"),
        "needs two enters\n"
    );
}

#[test]
fn deliver_does_not_claim_a_submit_it_could_not_see() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    let rec = dir.path().join("rec");
    let script = r#"stty -echo; while IFS= read -r l; do printf '%s\n' "$l" >> "$0"; done"#;
    start(
        &server,
        "blind",
        dir.path(),
        argv(&["sh", "-c", script, rec.to_str().unwrap()]),
    );
    assert!(wait_for(WAIT, || server
        .tmux
        .display("blind", "#{pane_current_command}")
        .unwrap()
        == "sh"));
    std::thread::sleep(Duration::from_millis(200));
    let opts = DeliverOptions {
        echo_wait: Duration::from_millis(300),
        ..DeliverOptions::default()
    };
    let outcome = server
        .tmux
        .deliver("blind", "unseen words", "Enter", &opts)
        .unwrap();
    assert!(!outcome.confirmed, "{outcome:?}");
    assert_eq!(outcome.submits, 1);
    assert_eq!(wait_for_file(&rec, "unseen words\n"), "unseen words\n");
}

#[test]
fn paste_leaves_no_buffer_behind() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    start(&server, "pasty", dir.path(), shell("exec cat"));
    server.tmux.paste("pasty", "pasted;\ntext").unwrap();
    assert!(wait_for(WAIT, || server
        .tmux
        .capture("pasty", 10)
        .unwrap()
        .contains("pasted;")));
    let buffers = std::process::Command::new("tmux")
        .args(["-L", &server.socket, "list-buffers"])
        .output()
        .unwrap();
    assert!(buffers.status.success());
    assert_eq!(String::from_utf8_lossy(&buffers.stdout), "");
}

#[test]
fn fleet_sees_every_session_with_its_command_in_one_call() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    start(&server, "proj builder", dir.path(), shell("exec sleep 60"));
    start(&server, "proj-adv", dir.path(), shell("exec cat"));
    let mut dead = NewSession::new("proj-dead", dir.path(), shell("exit 3"));
    dead.remain_on_exit = true;
    server.tmux.new_session(&dead).unwrap();

    let fleet_ready = || {
        let fleet = server.tmux.fleet().unwrap();
        fleet
            .get("proj builder")
            .is_some_and(|p| p.command == "sleep")
            && fleet.get("proj-adv").is_some_and(|p| p.command == "cat")
            && fleet.get("proj-dead").is_some_and(|p| p.dead)
    };
    assert!(wait_for(WAIT, fleet_ready), "{:?}", server.tmux.fleet());
    let fleet = server.tmux.fleet().unwrap();
    assert_eq!(fleet.len(), 3);
    let builder = fleet.get("proj builder").unwrap();
    assert!(builder.pane_id.starts_with('%'));
    assert!(builder.pid.is_some_and(|p| p > 1));
    assert!(!builder.dead);
    assert!(builder.activity.is_some());
    let dead = fleet.get("proj-dead").unwrap();
    assert!(dead.dead_status.is_none_or(|s| s == 3), "{dead:?}");
    assert!(fleet.get("proj").is_none());
}

#[test]
fn fleet_of_a_server_that_is_not_running_is_empty() {
    let server = TmuxServer::new();
    assert!(server.tmux.fleet().unwrap().is_empty());
    assert!(!server.tmux.has_session("anything").unwrap());
    assert!(!server.tmux.kill_server().unwrap());

    let dir = TempDir::new().unwrap();
    start(&server, "brief", dir.path(), shell("exec sleep 60"));
    assert_eq!(server.tmux.fleet().unwrap().len(), 1);
    assert!(server.tmux.kill_server().unwrap());
    assert!(server.tmux.fleet().unwrap().is_empty());
}

#[test]
fn missing_session_is_reported_as_such() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    start(&server, "present", dir.path(), shell("exec sleep 60"));
    let err = server.tmux.capture("absent", 10).unwrap_err();
    assert!(matches!(err, TmuxError::NoSession { .. }), "{err:?}");
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn wait_until_ready_waits_for_a_settled_input_screen() {
    let server = TmuxServer::new();
    let dir = TempDir::new().unwrap();
    start(
        &server,
        "slow",
        dir.path(),
        shell("sleep 0.5; printf 'READY> '; exec cat"),
    );
    let t = &server.tmux;
    assert!(
        t.wait_until_ready("slow", WAIT, |s| s.contains("READY>"))
            .unwrap()
    );

    let started = Instant::now();
    let never = t
        .wait_until_ready("slow", Duration::from_millis(800), |s| s.contains("NOPE"))
        .unwrap();
    assert!(!never);
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[test]
fn missing_tmux_binary_is_not_installed() {
    let empty = TempDir::new().unwrap();
    let tmux = Tmux::new(Some("never-started".into())).with_binary(empty.path().join("tmux"));
    let err = tmux.has_session("x").unwrap_err();
    assert!(matches!(err, TmuxError::NotInstalled), "{err:?}");
    assert!(err.to_string().contains("not installed"), "{err}");
    assert!(matches!(tmux.fleet(), Err(TmuxError::NotInstalled)));
}

#[test]
fn hung_tmux_is_killed_at_the_timeout() {
    let dir = TempDir::new().unwrap();
    let fake = fake_tmux(dir.path(), "exec sleep 30");
    let tmux = Tmux::new(Some("never-started".into()))
        .with_binary(&fake)
        .with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = tmux.capture("x", 10).unwrap_err();
    assert!(matches!(err, TmuxError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("capture-pane"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn tmux_failure_names_the_verb_target_and_stderr() {
    let dir = TempDir::new().unwrap();
    let fake = fake_tmux(dir.path(), "echo 'server exploded' >&2; exit 1");
    let tmux = Tmux::new(None).with_binary(&fake);
    let err = tmux.send_keys("agent", &["Enter"]).unwrap_err().to_string();
    assert!(err.contains("send-keys"), "{err}");
    assert!(err.contains("=agent:"), "{err}");
    assert!(err.contains("server exploded"), "{err}");
}

#[test]
fn child_tmux_does_not_see_the_callers_tmux_variables() {
    // Run the check in a child test process that does have TMUX and TMUX_PANE set.
    let run = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tmux::tmux_variables_check_in_child",
            "--ignored",
        ])
        .env("TMUX", "/tmp/tmux-fake/default,1,0")
        .env("TMUX_PANE", "%99")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert!(stdout.contains("1 passed"), "{stdout}");
}

#[test]
#[ignore = "run by child_tmux_does_not_see_the_callers_tmux_variables"]
fn tmux_variables_check_in_child() {
    assert!(std::env::var_os("TMUX").is_some());
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("env");
    let body = format!(
        "printf '%s|%s' \"${{TMUX-unset}}\" \"${{TMUX_PANE-unset}}\" > '{}'",
        out.display()
    );
    let tmux = Tmux::new(None).with_binary(fake_tmux(dir.path(), &body));
    tmux.has_session("x").unwrap();
    assert_eq!(read(&out), "unset|unset");
}

fn fake_tmux(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-tmux");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    make_executable(&path);
    path
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
