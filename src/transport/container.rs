//! The container transport: one long-lived container per host entry (`<engine> run -d --init
//! ... sleep infinity`), every call an `<engine> exec -i` with a deadline; made, healed, removed.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::process::{self, ProcessError};
use super::{Output, Place, PlaceDetails, PlaceError};

/// How long making a container may take (`run` of a local image; no pull: `--pull=never`).
pub const CREATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long stopping and removing one may take.
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The container's own environment, given with `--env-file` (tmux inside needs a UTF-8 locale).
const BASE_ENV: &[(&str, &str)] = &[("LANG", "C.UTF-8"), ("TERM", "xterm-256color")];

/// How to make and reach the container of one host entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerSpec {
    /// The host's name in the config (for messages).
    pub name: String,
    /// `podman` or `docker` (the program run).
    pub engine: String,
    pub image: String,
    /// Extra `run` options, as written.
    pub options: Vec<String>,
    /// `-v` values: `SRC:DST[:OPTS]` with `{dir}` already filled in.
    pub volumes: Vec<String>,
    /// The container's name (from the session prefix and the host's name).
    pub container: String,
    /// Where the private env file lives for the moment of `run` (`<log_dir>/containers`).
    pub state_dir: PathBuf,
}

/// What `inspect` says of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// `running`, `exited`, `created`, `paused`, ... (`None`: there is no such container).
    pub state: Option<String>,
    pub id: Option<String>,
}

impl Inspected {
    pub fn running(&self) -> bool {
        self.state.as_deref() == Some("running")
    }
}

/// One host entry's container, shared process-wide per spec.
#[derive(Debug)]
pub struct ContainerPlace {
    spec: ContainerSpec,
    /// Set by a place error, cleared by an answer (as for ssh hosts).
    down: Mutex<Option<PlaceError>>,
    /// The last inspect (or the `run` that made it).
    last: Mutex<Option<Inspected>>,
    /// Held while making the container: two heals at once make one.
    making: Mutex<()>,
}

impl ContainerPlace {
    pub fn shared(spec: ContainerSpec) -> Arc<ContainerPlace> {
        static ALL: OnceLock<Mutex<HashMap<ContainerSpec, Arc<ContainerPlace>>>> = OnceLock::new();
        let all = ALL.get_or_init(|| Mutex::new(HashMap::new()));
        let mut all = lock(all);
        all.entry(spec.clone())
            .or_insert_with(|| {
                Arc::new(ContainerPlace {
                    spec,
                    down: Mutex::new(None),
                    last: Mutex::new(None),
                    making: Mutex::new(()),
                })
            })
            .clone()
    }

    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    /// The last state and id seen (from `inspect`, or `run`).
    pub fn last_seen(&self) -> Option<Inspected> {
        lock(&self.last).clone()
    }

    fn exec(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        let mut cmd = Command::new(&self.spec.engine);
        cmd.args(exec_args(&self.spec.container, argv));
        let out = self.engine(&mut cmd, stdin, timeout)?;
        if out.success() {
            return Ok(out);
        }
        if engine_down(&self.spec.engine, &out) {
            return Err(PlaceError::Unreachable {
                host: self.spec.name.clone(),
                detail: format!(
                    "{} does not answer: {}",
                    self.spec.engine,
                    last_line(&out.stderr, "no message")
                ),
            });
        }
        if !engine_refused(&out.stderr) {
            return Ok(out);
        }
        // The engine refused the exec: learn why (no container, or not running) in one look.
        let seen = self.inspect(timeout)?;
        if seen.running() {
            return Ok(out);
        }
        Err(self.gone(&seen))
    }

    /// The error for a container that is not running.
    fn gone(&self, seen: &Inspected) -> PlaceError {
        let detail = match &seen.state {
            Some(state) => format!("container {} is {state}", self.spec.container),
            None => format!("container {} does not exist", self.spec.container),
        };
        PlaceError::Gone {
            host: self.spec.name.clone(),
            detail,
        }
    }

    /// The container's state and id (`state: None` when it does not exist).
    pub fn inspect(&self, timeout: Duration) -> Result<Inspected, PlaceError> {
        let mut cmd = Command::new(&self.spec.engine);
        cmd.args([
            "container",
            "inspect",
            "--format",
            "{{.State.Status}} {{.Id}}",
            &self.spec.container,
        ]);
        let out = self.engine(&mut cmd, None, timeout)?;
        let seen = if out.success() {
            parse_inspect(&out.stdout)
        } else if no_such_container(&out.stderr) {
            Inspected {
                state: None,
                id: None,
            }
        } else {
            return Err(PlaceError::Unreachable {
                host: self.spec.name.clone(),
                detail: last_line(&out.stderr, "inspect failed"),
            });
        };
        *lock(&self.last) = Some(seen.clone());
        Ok(seen)
    }

    /// Makes sure the container runs: one that stopped (or never was) is removed and made
    /// anew. Returns true when it was made now.
    pub fn ensure_running(&self, timeout: Duration) -> Result<bool, PlaceError> {
        let _making = lock(&self.making);
        let seen = self.inspect(timeout)?;
        if seen.running() {
            return Ok(false);
        }
        if seen.state.is_some() {
            let mut rm = Command::new(&self.spec.engine);
            rm.args(["rm", "-f", &self.spec.container]);
            let out = self.engine(&mut rm, None, REMOVE_TIMEOUT)?;
            if !out.success() && !no_such_container(&out.stderr) {
                return Err(self.failed("cannot remove the stopped container", &out));
            }
        }
        self.create()?;
        Ok(true)
    }

    /// `run -d --init ... sleep infinity`, its environment in a private file removed after.
    fn create(&self) -> Result<(), PlaceError> {
        let io = |e: std::io::Error| PlaceError::Spawn {
            host: self.spec.name.clone(),
            detail: format!(
                "cannot write the env file under {}: {e}",
                self.spec.state_dir.display()
            ),
        };
        std::fs::create_dir_all(&self.spec.state_dir).map_err(io)?;
        let env_file = self
            .spec
            .state_dir
            .join(format!(".env-{}", self.spec.container));
        let text: String = BASE_ENV.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        write_private(&env_file, text.as_bytes()).map_err(io)?;
        let mut cmd = Command::new(&self.spec.engine);
        cmd.args(run_args(&self.spec, &env_file.display().to_string()));
        let result = self.engine(&mut cmd, None, CREATE_TIMEOUT);
        let _ = std::fs::remove_file(&env_file);
        let out = result?;
        if !out.success() {
            return Err(self.failed("cannot start the container", &out));
        }
        let id = out.stdout.lines().last().map(|l| l.trim().to_string());
        *lock(&self.last) = Some(Inspected {
            state: Some("running".into()),
            id: id.filter(|i| !i.is_empty()),
        });
        Ok(())
    }

    /// Stops and removes the container (for `down`); one that is not there is fine.
    pub fn remove(&self) -> Result<(), PlaceError> {
        let mut stop = Command::new(&self.spec.engine);
        stop.args(["stop", "-t", "2", &self.spec.container]);
        let _ = self.engine(&mut stop, None, REMOVE_TIMEOUT)?;
        let mut rm = Command::new(&self.spec.engine);
        rm.args(["rm", "-f", &self.spec.container]);
        let out = self.engine(&mut rm, None, REMOVE_TIMEOUT)?;
        if !out.success() && !no_such_container(&out.stderr) {
            return Err(self.failed("cannot remove the container", &out));
        }
        *lock(&self.last) = Some(Inspected {
            state: None,
            id: None,
        });
        Ok(())
    }

    fn failed(&self, doing: &str, out: &Output) -> PlaceError {
        PlaceError::Unreachable {
            host: self.spec.name.clone(),
            detail: format!(
                "{doing} ({} {}): {}",
                self.spec.engine,
                self.spec.container,
                last_line(&out.stderr, "no message")
            ),
        }
    }

    /// Runs one engine command to its end or `timeout`.
    fn engine(
        &self,
        cmd: &mut Command,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        match process::run(cmd, stdin, timeout) {
            Ok(done) => Ok(Output {
                code: done.status.code(),
                stdout: done.stdout,
                stderr: done.stderr,
            }),
            Err(ProcessError::TimedOut(after)) => Err(PlaceError::TimedOut {
                host: self.spec.name.clone(),
                after,
            }),
            Err(ProcessError::NotFound) => Err(PlaceError::Spawn {
                host: self.spec.name.clone(),
                detail: format!(
                    "the container engine {:?} is not installed here",
                    self.spec.engine
                ),
            }),
            Err(e) => Err(PlaceError::Spawn {
                host: self.spec.name.clone(),
                detail: e.to_string(),
            }),
        }
    }
}

impl Place for ContainerPlace {
    fn name(&self) -> &str {
        &self.spec.name
    }

    /// Runs `argv` in the container; fails at once while the engine is marked down.
    fn run(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        if let Some(err) = self.down() {
            return Err(err);
        }
        self.probe(argv, stdin, timeout)
    }

    /// Runs `argv` in the container even while the engine is marked down. A container that is
    /// not running is `PlaceError::Gone` (the engine answered: not a reason to mark it down).
    /// The first call of a process also learns the container's id (inspect, alongside).
    fn probe(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        let known = lock(&self.last).as_ref().is_some_and(|s| s.id.is_some());
        let result = if known {
            self.exec(argv, stdin, timeout)
        } else {
            std::thread::scope(|scope| {
                let look = scope.spawn(|| self.inspect(timeout));
                let result = self.exec(argv, stdin, timeout);
                let _ = look.join();
                result
            })
        };
        match &result {
            Ok(_) => {
                *lock(&self.down) = None;
                if let Some(seen) = lock(&self.last).as_mut() {
                    seen.state = Some("running".into());
                }
            }
            Err(PlaceError::Gone { .. }) => *lock(&self.down) = None,
            Err(e) => *lock(&self.down) = Some(e.clone()),
        }
        result
    }

    fn down(&self) -> Option<PlaceError> {
        lock(&self.down).clone()
    }

    /// `<engine> exec -i NAME argv...`, for a caller that streams its output (`logs -f`).
    fn command(&self, argv: &[String]) -> Command {
        let mut cmd = Command::new(&self.spec.engine);
        cmd.args(exec_args(&self.spec.container, argv));
        cmd
    }

    /// Nothing stays open to a container (`down` removes it: see [`ContainerPlace::remove`]).
    fn close(&self) {}

    fn details(&self) -> Option<PlaceDetails> {
        let seen = self.last_seen();
        Some(PlaceDetails {
            kind: "container",
            id: seen.as_ref().and_then(|s| s.id.clone()),
            state: seen.and_then(|s| s.state),
        })
    }
}

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
fn parse_inspect(stdout: &str) -> Inspected {
    let line = stdout.lines().next().unwrap_or("").trim();
    let mut words = line.split_whitespace();
    Inspected {
        state: words.next().map(String::from),
        id: words.next().map(String::from),
    }
}

/// The engine (not the command) refused an exec: no such container, or not running.
fn engine_refused(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    no_such_container(stderr)
        || s.contains("is not running")
        || s.contains("container state improper")
        || s.contains("can only create exec sessions on running containers")
        || s.contains("is paused")
}

/// The engine itself failed (no daemon, podman's own error status 125 for something else than
/// the container's state): the place is unreachable, not the command failed.
fn engine_down(engine: &str, out: &Output) -> bool {
    let s = out.stderr.to_ascii_lowercase();
    s.contains("cannot connect to the docker daemon")
        || s.contains("error during connect")
        || (engine == "podman" && out.code == Some(125) && !engine_refused(&out.stderr))
}

fn no_such_container(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no such container") || s.contains("no such object")
}

fn last_line(text: &str, fallback: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(fallback)
        .to_string()
}

/// Writes `data` to a new file readable by its owner only (created 0600, never wider).
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

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
