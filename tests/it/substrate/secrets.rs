//! Secrets never reach disk in clear: an agent prints its env value, its secrets_dir value and
//! token-shaped strings; no file under log_dir holds any of them afterwards.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::project::Project;
use crate::support::wait_for;

const ENV_SECRET: &str = "s3cr3t-env-value-4711";
const DIR_SECRET: &str = "dir-secret-value-0815";
const ANTHROPIC: &str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345";
const GITHUB: &str = "ghp_abcdefghijklmnopqrstuvwxyz0123456789AB";

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The argv of a process that holds `needle`, if any.
fn in_some_argv(needle: &str) -> Option<String> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|p| {
        std::fs::read(p.path().join("cmdline"))
            .ok()
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(needle))
    })
}

#[test]
fn a_secret_printed_by_an_agent_is_absent_from_every_file_under_log_dir() {
    // The agent prints everything once, half a token in one write and the rest 0.3 s later,
    // then keeps the secrets on screen for the scrollback capture at `down`.
    let script = format!(
        "echo env=$TOKEN; echo dir=$DIR_TOKEN; echo key {ANTHROPIC}; \
         printf 'gh {}'; sleep 0.3; echo '{} done'; echo 'Authorization: Bearer abcdefghijklmnop.qrs'; \
         echo printed; exec sleep 600",
        &GITHUB[..12],
        &GITHUB[12..]
    );
    let body = format!(
        r#"
[backend.printer]
bin = "sh ../print.sh"
prompt_delivery = "exec"
process_name = "sleep"

[[agent]]
name = "leaky"
backend = "printer"
prompt = "x"
secrets_dir = "secrets"
env = {{ TOKEN = "{ENV_SECRET}" }}
dir = "work"
"#
    );
    let p = Project::new(&body);
    std::fs::write(p.path("print.sh"), script).unwrap();
    std::fs::create_dir_all(p.path("work")).unwrap();
    let secrets = p.path("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(secrets.join("DIR_TOKEN"), format!("{DIR_SECRET}\n")).unwrap();
    p.orch_ok(&["up"]);
    let log = p.log_dir().join("t-leaky.log");
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("printed"))),
        "the agent's output never reached its log: {:?}",
        std::fs::read_to_string(&log)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    for marker in [
        "[redacted:TOKEN]",
        "[redacted:DIR_TOKEN]",
        "[redacted:anthropic-key]",
        "[redacted:github-token]",
        "Bearer [redacted:bearer]",
    ] {
        assert!(text.contains(marker), "no {marker} in the log: {text}");
    }
    // No process shows a value in its argv: the log filter gets them in a file it deletes,
    // the pane's env comes from a file its first process sources and deletes (the tmux server
    // keeps the argv of the client that started it, so `-e KEY=value` would show there).
    for secret in [ENV_SECRET, DIR_SECRET] {
        let argv = in_some_argv(secret);
        assert!(argv.is_none(), "a secret is in a process's argv: {argv:?}");
    }
    let filter_file = in_some_argv("--secrets-file").and_then(|a| {
        a.split_whitespace()
            .skip_while(|w| *w != "--secrets-file")
            .nth(1)
            .map(String::from)
    });
    if let Some(file) = filter_file {
        assert!(
            wait_for(Duration::from_secs(5), || !Path::new(&file).exists()),
            "the filter did not delete its secrets file {file}"
        );
    }
    p.orch_ok(&["down"]);
    let scrollback = p.log_dir().join("t-leaky.scrollback.log");
    assert!(scrollback.exists(), "down kept no scrollback");
    let files = files_under(&p.log_dir());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [
            ENV_SECRET,
            DIR_SECRET,
            ANTHROPIC,
            GITHUB,
            "abcdefghijklmnop.qrs",
        ] {
            assert!(
                !text.contains(secret),
                "{} holds {secret}: {text}",
                file.display()
            );
        }
    }
}
