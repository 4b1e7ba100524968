//! A wrapper place: every argv run behind a prefix (`srun --jobid=J --overlap --`, `podman exec
//! -i NAME`), on this machine or through another place (`via` an ssh host).
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::process::{self, ProcessError};
use super::{Output, Place, PlaceError};

/// The prefix in force for the next call, or why the place cannot take calls now (no
/// allocation yet, no container).
pub type Prefix = Result<Vec<String>, String>;
type PrefixFn = dyn Fn() -> Prefix + Send + Sync;
/// Tells a command's output that means "the place is not there" (the job ended, the container
/// stopped) from the command's own failure.
type FailureFn = dyn Fn(&Output) -> Option<String> + Send + Sync;

/// Commands run as `PREFIX... ARGV...`.
pub struct WrapPlace {
    name: String,
    prefix: Box<PrefixFn>,
    failure: Option<Box<FailureFn>>,
    via: Option<Arc<dyn Place>>,
    down: Mutex<Option<PlaceError>>,
}

impl std::fmt::Debug for WrapPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapPlace")
            .field("name", &self.name)
            .field("prefix", &(self.prefix)())
            .field("via", &self.via.as_ref().map(|v| v.name().to_string()))
            .finish()
    }
}

impl WrapPlace {
    /// A place named `name` (the host in the config) whose prefix is asked for at each call.
    pub fn new(name: &str, prefix: impl Fn() -> Prefix + Send + Sync + 'static) -> Self {
        WrapPlace {
            name: name.to_string(),
            prefix: Box::new(prefix),
            failure: None,
            via: None,
            down: Mutex::new(None),
        }
    }

    /// Runs the wrapped commands through `via` (an ssh host) instead of on this machine.
    pub fn via(mut self, via: Option<Arc<dyn Place>>) -> Self {
        self.via = via;
        self
    }

    /// Outputs for which `failure` returns a reason are place errors (unreachable), not
    /// answers.
    pub fn failure(
        mut self,
        failure: impl Fn(&Output) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.failure = Some(Box::new(failure));
        self
    }

    fn full_argv(&self, argv: &[String]) -> Result<Vec<String>, PlaceError> {
        let mut full = (self.prefix)().map_err(|detail| PlaceError::Unreachable {
            host: self.name.clone(),
            detail,
        })?;
        full.extend(argv.iter().cloned());
        Ok(full)
    }

    fn call(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
        probing: bool,
    ) -> Result<Output, PlaceError> {
        let full = self.full_argv(argv)?;
        let out = match &self.via {
            Some(via) if probing => via.probe(&full, stdin, timeout)?,
            Some(via) => via.run(&full, stdin, timeout)?,
            None => self.run_here(&full, stdin, timeout)?,
        };
        if let Some(detail) = self.failure.as_ref().and_then(|f| f(&out)) {
            return Err(PlaceError::Unreachable {
                host: self.name.clone(),
                detail,
            });
        }
        Ok(out)
    }

    fn run_here(
        &self,
        full: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        let Some((program, args)) = full.split_first() else {
            return Err(PlaceError::Spawn {
                host: self.name.clone(),
                detail: "empty command".into(),
            });
        };
        let mut cmd = std::process::Command::new(program);
        cmd.args(args);
        match process::run(&mut cmd, stdin, timeout) {
            Ok(done) => Ok(Output {
                code: done.status.code(),
                stdout: done.stdout,
                stderr: done.stderr,
            }),
            Err(ProcessError::TimedOut(after)) => Err(PlaceError::TimedOut {
                host: self.name.clone(),
                after,
            }),
            Err(ProcessError::NotFound) => Err(PlaceError::Spawn {
                host: self.name.clone(),
                detail: format!("{program} is not installed here"),
            }),
            Err(e) => Err(PlaceError::Spawn {
                host: self.name.clone(),
                detail: format!("{program}: {e}"),
            }),
        }
    }
}

impl Place for WrapPlace {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        if let Some(err) = self.down() {
            return Err(err);
        }
        self.probe_or_run(argv, stdin, timeout, false)
    }

    fn probe(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, PlaceError> {
        self.probe_or_run(argv, stdin, timeout, true)
    }

    fn down(&self) -> Option<PlaceError> {
        lock(&self.down).clone()
    }

    fn command(&self, argv: &[String]) -> std::process::Command {
        let full = self.full_argv(argv).unwrap_or_else(|_| {
            // No place now: a command that says so and fails.
            let why = format!("host {} has no place to run commands now", self.name);
            vec![
                "sh".into(),
                "-c".into(),
                "echo \"$1\" >&2; exit 1".into(),
                "orch".into(),
                why,
            ]
        });
        if let Some(via) = &self.via {
            return via.command(&full);
        }
        let mut cmd = std::process::Command::new(&full[0]);
        cmd.args(&full[1..]);
        cmd
    }

    fn close(&self) {
        if let Some(via) = &self.via {
            via.close();
        }
    }
}

impl WrapPlace {
    fn probe_or_run(
        &self,
        argv: &[String],
        stdin: Option<&[u8]>,
        timeout: Duration,
        probing: bool,
    ) -> Result<Output, PlaceError> {
        let result = self.call(argv, stdin, timeout, probing);
        match &result {
            Ok(_) => *lock(&self.down) = None,
            Err(e) => *lock(&self.down) = Some(e.clone()),
        }
        result
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_prefix_runs_the_argv_and_stdin_reaches_it() {
        let place = WrapPlace::new("box", || Ok(words(&["env", "ORCH_WRAP=1"])));
        let out = place
            .run(
                &words(&["sh", "-c", "cat; echo \" $ORCH_WRAP\""]),
                Some(b"hi"),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(out.stdout, "hi 1\n");
        assert!(place.down().is_none());
    }

    #[test]
    fn no_prefix_or_a_failure_marks_the_place_down_until_a_probe_answers() {
        let ready = Arc::new(Mutex::new(false));
        let r = ready.clone();
        let place = WrapPlace::new("gpu", move || {
            if *lock(&r) {
                Ok(vec![])
            } else {
                Err("the allocation is pending".into())
            }
        })
        .failure(|out| (out.code == Some(42)).then(|| "the job ended".to_string()));
        let err = place
            .run(&words(&["true"]), None, Duration::from_secs(5))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("host gpu is unreachable: the allocation is pending"),
            "{err}"
        );
        *lock(&ready) = true;
        assert!(
            place
                .run(&words(&["true"]), None, Duration::from_secs(5))
                .is_err(),
            "still down"
        );
        place
            .probe(&words(&["true"]), None, Duration::from_secs(5))
            .unwrap();
        let err = place
            .run(
                &words(&["sh", "-c", "exit 42"]),
                None,
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert!(err.to_string().contains("the job ended"), "{err}");
        let out = place
            .probe(
                &words(&["sh", "-c", "exit 3"]),
                None,
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(out.code, Some(3), "a command's own failure is an answer");
    }

    #[test]
    fn a_wrapped_call_past_its_deadline_is_a_timeout() {
        let place = WrapPlace::new("slow", || Ok(vec![]));
        let err = place
            .run(&words(&["sleep", "30"]), None, Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(err, PlaceError::TimedOut { .. }), "{err}");
    }
}
