//! The container transport: one long-lived container per host entry (`<engine> run -d --init
//! ... sleep infinity`), every call an `<engine> exec -i` with a deadline; made, healed, removed.
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::engine::{
    engine_down, engine_refused, exec_args, last_line, no_such_container, parse_inspect, run_args,
    write_private,
};
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
