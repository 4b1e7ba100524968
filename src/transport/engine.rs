//! The container engine's command lines (`run`, `exec`) and how to read its answers: which
//! failures are the engine's (no container, not running, no daemon) rather than the command's.
use std::path::Path;

use super::Output;
use super::container::{ContainerSpec, Inspected};

/// `exec -i NAME argv...` (stdin kept open: the env and file bodies travel on it).
pub fn exec_args(container: &str, argv: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec!["exec".into(), "-i".into(), container.into()];
    args.extend(argv.iter().cloned());
    args
}

/// `run -d --init --name NAME --env-file FILE [--pull=never] -v ... OPTIONS IMAGE sleep infinity`.
pub fn run_args(spec: &ContainerSpec, env_file: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--init".into(),
        "--name".into(),
        spec.container.clone(),
        "--env-file".into(),
        env_file.into(),
    ];
    if !spec.options.iter().any(|o| o.starts_with("--pull")) {
        // An image that is not here would be pulled inside a tick: never.
        args.push("--pull=never".into());
    }
    for v in &spec.volumes {
        args.push("-v".into());
        args.push(v.clone());
    }
    args.extend(spec.options.iter().cloned());
    args.extend([spec.image.clone(), "sleep".into(), "infinity".into()]);
    args
}

/// `"<state> <id>"` from inspect.
pub(super) fn parse_inspect(stdout: &str) -> Inspected {
    let line = stdout.lines().next().unwrap_or("").trim();
    let mut words = line.split_whitespace();
    Inspected {
        state: words.next().map(String::from),
        id: words.next().map(String::from),
    }
}

/// The engine (not the command) refused an exec: no such container, or not running.
pub(super) fn engine_refused(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    no_such_container(stderr)
        || s.contains("is not running")
        || s.contains("container state improper")
        || s.contains("can only create exec sessions on running containers")
        || s.contains("is paused")
}

/// The engine itself failed (no daemon, podman's own error status 125 for something else than
/// the container's state): the place is unreachable, not the command failed.
pub(super) fn engine_down(engine: &str, out: &Output) -> bool {
    let s = out.stderr.to_ascii_lowercase();
    s.contains("cannot connect to the docker daemon")
        || s.contains("error during connect")
        || (engine == "podman" && out.code == Some(125) && !engine_refused(&out.stderr))
}

pub(super) fn no_such_container(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no such container") || s.contains("no such object")
}

pub(super) fn last_line(text: &str, fallback: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(fallback)
        .to_string()
}

/// Writes `data` to a new file readable by its owner only (created 0600, never wider).
pub(super) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "box".into(),
            engine: "podman".into(),
            image: "localhost/agent:latest".into(),
            options: vec!["--network".into(), "none".into()],
            volumes: vec!["/p/a:/workspace".into()],
            container: "t-box".into(),
            state_dir: PathBuf::from("/p/.orch/containers"),
        }
    }

    #[test]
    fn the_container_runs_sleep_under_init_with_env_from_a_file_and_no_pull() {
        let args = run_args(&spec(), "/p/.orch/containers/.env-t-box");
        assert_eq!(
            args.join(" "),
            "run -d --init --name t-box --env-file /p/.orch/containers/.env-t-box \
             --pull=never -v /p/a:/workspace --network none localhost/agent:latest sleep infinity"
        );
        let mut own = spec();
        own.options = vec!["--pull=missing".into()];
        assert!(!run_args(&own, "f").contains(&"--pull=never".to_string()));
    }

    #[test]
    fn exec_keeps_every_word_as_one_argument() {
        let argv: Vec<String> = ["sh", "-c", "echo \"$1\"", "x", "it's $HOME"]
            .map(String::from)
            .into();
        assert_eq!(
            exec_args("t-box", &argv),
            [
                "exec",
                "-i",
                "t-box",
                "sh",
                "-c",
                "echo \"$1\"",
                "x",
                "it's $HOME"
            ]
        );
    }

    #[test]
    fn engine_refusals_are_told_from_a_command_failing_inside() {
        assert!(engine_refused(
            "Error: can only create exec sessions on running containers: container state improper"
        ));
        assert!(engine_refused(
            "Error: no container with name or ID \"t-box\" found: no such container"
        ));
        assert!(engine_refused(
            "Error response from daemon: Container 3f2a is not running"
        ));
        assert!(engine_refused("Error: No such container: t-box"));
        assert!(!engine_refused("can't find session: =t-a"));
        assert!(!engine_refused(""));
    }

    #[test]
    fn inspect_output_gives_state_and_id() {
        let seen = parse_inspect("exited 3cfbb49598e3c126\n");
        assert_eq!(seen.state.as_deref(), Some("exited"));
        assert_eq!(seen.id.as_deref(), Some("3cfbb49598e3c126"));
        assert!(!seen.running());
        assert!(parse_inspect("running abc").running());
    }

    #[test]
    fn the_env_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(".env-x");
        write_private(&f, b"A=1\n").unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
