//! The sim's terminal: banner, `> ` prompt, transcript lines, and the transient
//! "esc to interrupt" status line that is erased when a step ends.
use std::io::Write;
use std::thread;
use std::time::Duration;

use crate::{Error, Result};

/// The status line shown while a step runs; erased (never left in the scrollback) when it ends.
pub const WORKING: &str = "✻ Working… (esc to interrupt)";
/// Carriage return + erase the whole line.
const ERASE_LINE: &str = "\r\x1b[2K";
/// Erase the screen and home the cursor.
const CLEAR_SCREEN: &str = "\x1b[2J\x1b[H";

/// Writes the sim's screen to stdout, flushing after every write.
pub struct Screen {
    step: Duration,
    status_shown: bool,
}

impl Screen {
    pub fn new(step: Duration) -> Self {
        Screen {
            step,
            status_shown: false,
        }
    }

    fn write(&mut self, text: &str) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| Error::io("<stdout>", "writing the sim's screen", e))
    }

    /// Print one whole line; while a step runs, the status line is re-shown below it.
    pub fn say(&mut self, line: &str) -> Result<()> {
        if self.status_shown {
            self.write(&format!("{ERASE_LINE}{line}\n{WORKING}"))
        } else {
            self.write(&format!("{line}\n"))
        }
    }

    /// Show the input prompt (no newline: typed text follows it).
    pub fn prompt(&mut self) -> Result<()> {
        self.write("> ")
    }

    /// A submit that did not take: the text stays in the input box (the row the terminal just
    /// left), the cursor after it, as a TUI whose Enter was swallowed shows it.
    pub fn keep_in_input(&mut self, text: &str) -> Result<()> {
        self.write(&format!("\x1b[1A{ERASE_LINE}> {text}"))
    }

    /// Echo a typed line the way a transcript shows it.
    pub fn echo_input(&mut self, line: &str) -> Result<()> {
        self.say(&format!("› {line}"))
    }

    /// Erase the screen (the scrollback of a real terminal keeps what scrolled off).
    pub fn clear(&mut self) -> Result<()> {
        self.write(CLEAR_SCREEN)
    }

    /// Start a step: show the status line and take one step's worth of time.
    pub fn begin_step(&mut self) -> Result<()> {
        if !self.status_shown {
            self.write(WORKING)?;
            self.status_shown = true;
        }
        thread::sleep(self.step);
        Ok(())
    }

    /// Take another step's worth of time inside a running step.
    pub fn pause(&self) {
        thread::sleep(self.step);
    }

    /// End a step: erase the status line so "esc to interrupt" never lingers.
    pub fn end_step(&mut self) -> Result<()> {
        if self.status_shown {
            self.status_shown = false;
            self.write(ERASE_LINE)?;
        }
        Ok(())
    }
}
