//! `orch logs NAME [-f] [-n N] [--raw]`: an agent's output as text (its pane's history and
//! screen while it runs, else its session log rendered); `--raw` prints the log's bytes.
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;
use crate::fleet::render::render_log;
use crate::{Error, Result, detect, fleet};

pub fn run(cfg: &Config, name: &str, follow: bool, lines: usize, raw: bool) -> Result<ExitCode> {
    super::up::check_names(cfg, &[name.to_string()])?;
    let watchdog = cfg.service(name).is_none() && name == "watchdog";
    let session = match cfg.service(name) {
        Some(s) => s.session.clone(),
        None if watchdog => cfg.watchdog_session(),
        None => cfg.session_of(name),
    };
    if cfg.host_dir_of(name).is_some() {
        return remote_log(cfg, name, &session, follow, lines);
    }
    let path = cfg.session_log(&session);
    // The watchdog writes its log itself (plain lines); a pane's log is a terminal stream.
    let text = if raw {
        None
    } else if watchdog {
        std::fs::read(&path)
            .ok()
            .map(|b| detect::strip_ansi(&String::from_utf8_lossy(&b)))
    } else {
        live_text(cfg, &session).or_else(|| std::fs::read(&path).ok().map(|b| render_log(&b)))
    };
    match text {
        Some(text) => println!("{}", last_lines(&text, lines)),
        None if path.exists() => {
            let tail = fleet::read_log_tail(&path, lines)
                .map_err(|e| Error::io(&path, "reading the session log", e))?;
            println!("{tail}");
        }
        None if !follow => {
            return Err(Error::Runtime(format!(
                "{name} has no log yet ({} does not exist)",
                path.display()
            )));
        }
        None => {}
    }
    if follow {
        follow_log(&path, raw)?;
    }
    Ok(ExitCode::SUCCESS)
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

/// The pane's history and screen when `session` runs (`capture-pane -p -S -`).
fn live_text(cfg: &Config, session: &str) -> Option<String> {
    let tmux = fleet::tmux_for(cfg);
    let pane = tmux.fleet().ok()?;
    pane.get(session)?;
    tmux.capture_history(session).ok()
}

/// The last `n` lines of `text`, trailing blank lines dropped and runs of blank rows (an
/// emptied screen's) folded to one.
fn last_lines(text: &str, n: usize) -> String {
    let mut all: Vec<&str> = Vec::new();
    for line in text.trim_end().lines().map(str::trim_end) {
        if !(line.is_empty() && all.last().is_some_and(|l| l.is_empty())) {
            all.push(line);
        }
    }
    all[all.len().saturating_sub(n)..].join("\n")
}

/// Print what is appended to `path` until the reader goes away: the bytes with `raw`, else
/// whole lines with escape codes and carriage returns removed.
fn follow_log(path: &std::path::Path, raw: bool) -> Result<()> {
    let mut pos = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let mut out = std::io::stdout();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let Ok(mut f) = std::fs::File::open(path) else {
            continue;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < pos {
            pos = 0; // truncated or replaced: start over
            pending.clear();
        }
        if len <= pos {
            continue;
        }
        let mut buf = Vec::new();
        f.seek(SeekFrom::Start(pos))
            .and_then(|_| f.read_to_end(&mut buf))
            .map_err(|e| Error::io(path, "following the session log", e))?;
        pos += buf.len() as u64;
        let chunk = if raw {
            buf
        } else {
            pending.extend_from_slice(&buf);
            let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let complete: Vec<u8> = pending.drain(..=end).collect();
            readable_lines(&complete).into_bytes()
        };
        if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
            return Ok(()); // reader went away (e.g. piped into head)
        }
    }
}

/// Complete lines of a terminal stream as text: escape codes removed, and of each line what
/// was written after its last carriage return (a line redrawn in place shows once).
fn readable_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes).replace("\r\n", "\n");
    let mut out = String::new();
    for line in text.split('\n') {
        let last = line
            .rsplit('\r')
            .map(detect::strip_ansi)
            .find(|s| !s.trim().is_empty())
            .unwrap_or_default();
        if !last.trim().is_empty() {
            out += last.trim_end();
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_lines_lose_escape_codes_and_in_place_redraws() {
        let got = readable_lines(b"\x1b[1mbold\x1b[0m\r\nspin |\rspin /\rdone\r\n\x1b[2K\r\n");
        assert_eq!(got, "bold\ndone\n");
    }

    #[test]
    fn last_lines_drops_trailing_blank_rows() {
        assert_eq!(last_lines("a\nb  \nc\n\n  \n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(
            last_lines("out\n\n\n\n\nPane is dead", 3),
            "out\n\nPane is dead"
        );
    }
}
