//! One child process run to completion or a hard deadline: stdin fed from a thread, stdout and
//! stderr read in the background, the child killed (and reaped) when the deadline passes.
use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// A finished child.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("the program was not found")]
    NotFound,
    #[error("{0}")]
    Spawn(std::io::Error),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

/// Runs `command` (its stdio is set here) and returns its output whatever the exit status;
/// past `timeout` the child is killed and `TimedOut` returned.
pub fn run(
    command: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Finished, ProcessError> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ProcessError::NotFound
        } else {
            ProcessError::Spawn(e)
        }
    })?;
    match collect(&mut child, stdin, timeout) {
        Ok(done) => Ok(done),
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(err)
        }
    }
}

fn collect(
    child: &mut Child,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Finished, ProcessError> {
    let deadline = Instant::now() + timeout;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        // A separate thread: a reader that stops reading must not block us past the deadline.
        thread::Builder::new()
            .name("orch-stdin".into())
            .spawn(move || {
                let _ = pipe.write_all(&data);
            })
            .map_err(ProcessError::Spawn)?;
    }
    let stdout = read_in_background(child.stdout.take())?;
    let stderr = read_in_background(child.stderr.take())?;
    // A child closes its stdout when it exits: waiting for that EOF first returns as soon as
    // the call is done, where polling the exit alone adds up to one poll pause per call.
    let stdout = receive(stdout, deadline);
    let status = wait_until(child, deadline, timeout)?;
    let grace = deadline.max(Instant::now() + Duration::from_millis(500));
    Ok(Finished {
        status,
        stdout,
        stderr: receive(stderr, grace),
    })
}

type Pending = mpsc::Receiver<Vec<u8>>;

fn read_in_background<R: Read + Send + 'static>(
    pipe: Option<R>,
) -> Result<Option<Pending>, ProcessError> {
    let Some(mut pipe) = pipe else {
        return Ok(None);
    };
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("orch-output".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send(buf);
        })
        .map_err(ProcessError::Spawn)?;
    Ok(Some(rx))
}

fn receive(pending: Option<Pending>, deadline: Instant) -> String {
    let Some(rx) = pending else {
        return String::new();
    };
    let wait = deadline.saturating_duration_since(Instant::now());
    match rx.recv_timeout(wait) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    }
}

/// Polls the child (1 ms doubling to 20 ms) until it exits or the deadline passes.
fn wait_until(
    child: &mut Child,
    deadline: Instant,
    after: Duration,
) -> Result<ExitStatus, ProcessError> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(ProcessError::Spawn(e)),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ProcessError::TimedOut(after));
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_exit_status_is_data_and_stdin_reaches_the_child() {
        let done = run(
            Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]),
            Some(b"hello"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stdout, "hello");
        assert_eq!(done.stderr, "err\n");
    }

    #[test]
    fn a_child_past_its_deadline_is_killed() {
        let start = Instant::now();
        let err = run(
            Command::new("sh").args(["-c", "exec sleep 30"]),
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, ProcessError::TimedOut(_)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
