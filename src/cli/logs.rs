//! `orch logs NAME [-f] [-n N]`: print the end of a session log, and follow it with `-f`.
//! Reads `<log_dir>/<session>.log`, which tmux's pipe-pane fills.
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::{Error, Result, fleet};

pub fn run(cfg: &Config, name: &str, follow: bool, lines: usize) -> Result<ExitCode> {
    super::up::check_names(cfg, &[name.to_string()])?;
    let session = match cfg.service(name) {
        Some(s) => s.session.clone(),
        None if name == "watchdog" => cfg.watchdog_session(),
        None => cfg.session_of(name),
    };
    if cfg.host_dir_of(name).is_some() {
        return remote_log(cfg, name, &session, follow, lines);
    }
    let path = cfg.session_log(&session);
    if !path.exists() && !follow {
        return Err(Error::Runtime(format!(
            "{name} has no log yet ({} does not exist)",
            path.display()
        )));
    }
    if path.exists() {
        let tail = fleet::read_log_tail(&path, lines)
            .map_err(|e| Error::io(&path, "reading the session log", e))?;
        println!("{tail}");
    }
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut pos = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut out = std::io::stdout();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(mut f) = std::fs::File::open(&path) else {
            continue;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0; // truncated or replaced: start over
        }
        if len > pos {
            let mut buf = Vec::new();
            f.seek(SeekFrom::Start(pos))
                .and_then(|_| f.read_to_end(&mut buf))
                .map_err(|e| Error::io(&path, "following the session log", e))?;
            pos += buf.len() as u64;
            if out.write_all(&buf).and_then(|_| out.flush()).is_err() {
                return Ok(ExitCode::SUCCESS); // reader went away (e.g. piped into head)
            }
        }
    }
}

/// The log of an agent or service on a host: `tail` there, over ssh (`-F` to follow).
fn remote_log(
    cfg: &Config,
    name: &str,
    session: &str,
    follow: bool,
    lines: usize,
) -> Result<ExitCode> {
    let tmux = fleet::tmux_for(cfg);
    let path = cfg.log_of(name).display().to_string();
    let n = lines.to_string();
    let argv: Vec<String> = if follow {
        vec![
            "tail".into(),
            "-n".into(),
            n,
            "-F".into(),
            "--".into(),
            path.clone(),
        ]
    } else {
        vec!["tail".into(), "-n".into(), n, "--".into(), path.clone()]
    };
    if follow {
        let Some(mut cmd) = tmux.streaming_command(session, &argv) else {
            return Err(Error::Runtime(format!("{name} is not on a host")));
        };
        // ssh replaces this process: stopping `orch logs -f` stops the remote tail too.
        let err = std::os::unix::process::CommandExt::exec(&mut cmd);
        return Err(Error::Runtime(format!(
            "cannot run ssh to follow the log of {name}: {err}"
        )));
    }
    match tmux.run_for(session, &argv) {
        Some(Ok(text)) => {
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(Error::Runtime(format!(
            "cannot read the log of {name} on its host ({path}): {e}"
        ))),
        None => Err(Error::Runtime(format!("{name} is not on a host"))),
    }
}
