//! Typing into panes reliably: deliver (type, submit, confirm, bounded retry) and
//! wait_until_ready (a settled screen showing an input prompt), with pure screen checks.
use std::thread;
use std::time::{Duration, Instant};

use super::exec::Cmdline;
use super::screen::{Anchor, CURSOR_FORMAT, Screen, needles};
use super::{Tmux, TmuxError, pane_target};

/// Tuning for [`Tmux::deliver`]; the defaults suit agent TUIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverOptions {
    /// Pause between typing the text and the first submit key.
    pub settle: Duration,
    /// How long to keep looking for the typed text on screen before submitting blind.
    pub echo_wait: Duration,
    /// How long to watch for the submit to take effect before sending the key again.
    pub submit_wait: Duration,
    /// Most submit keys sent for one delivery.
    pub max_submits: u32,
    /// Texts longer than this many characters are pasted rather than typed.
    pub paste_over: usize,
    /// How many rows above the input position (plus one per line of text) to look for it.
    pub tail_rows: usize,
    /// Screen polling interval.
    pub poll: Duration,
}

impl Default for DeliverOptions {
    fn default() -> Self {
        DeliverOptions {
            settle: Duration::from_millis(300),
            echo_wait: Duration::from_millis(1500),
            submit_wait: Duration::from_millis(1000),
            max_submits: 10,
            paste_over: 200,
            tail_rows: 8,
            poll: Duration::from_millis(100),
        }
    }
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// The screen showed the text leave the input area after a submit key.
    pub confirmed: bool,
    /// How many submit keys were sent.
    pub submits: u32,
    /// The text went in as a (bracketed) paste rather than typed keys.
    pub pasted: bool,
}

impl Tmux {
    /// Types `text` into the session (literal keys for one short line, a bracketed paste
    /// otherwise), waits `opts.settle`, sends `submit_key` and confirms the submit took: the
    /// text's prefix (or a paste placeholder) left the rows just above the input position
    /// (the cursor, or the last non-blank row when the app hides its cursor). Unconfirmed
    /// submits are retried, at most `opts.max_submits` keys in all. Text never seen on
    /// screen is submitted once and reported unconfirmed.
    pub fn deliver(
        &self,
        name: &str,
        text: &str,
        submit_key: &str,
        opts: &DeliverOptions,
    ) -> Result<DeliveryOutcome, TmuxError> {
        let text = text.trim_end_matches(['\n', '\r']);
        let pasted = text.contains('\n') || text.chars().count() > opts.paste_over;
        if pasted {
            self.paste(name, text)?;
        } else if !text.is_empty() {
            self.send_literal(name, text)?;
        }
        thread::sleep(opts.settle);
        let marks = needles(text);
        let anchor = if marks.is_empty() {
            None
        } else {
            let search_rows = opts.tail_rows + text.lines().count();
            self.find_anchor(name, &marks, search_rows, opts)?
        };
        let Some(anchor) = anchor else {
            // The text is not visible: submit once, but do not claim it was confirmed.
            self.send_keys(name, &[submit_key])?;
            return Ok(DeliveryOutcome {
                confirmed: false,
                submits: 1,
                pasted,
            });
        };
        for submits in 1..=opts.max_submits {
            self.send_keys(name, &[submit_key])?;
            let deadline = Instant::now() + opts.submit_wait;
            loop {
                thread::sleep(opts.poll);
                if !self.screen(name)?.still_shows(&marks, anchor) {
                    return Ok(DeliveryOutcome {
                        confirmed: true,
                        submits,
                        pasted,
                    });
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
        }
        Ok(DeliveryOutcome {
            confirmed: false,
            submits: opts.max_submits,
            pasted,
        })
    }

    /// Polls until the typed text shows near the input position; where it was found.
    fn find_anchor(
        &self,
        name: &str,
        marks: &[String],
        search_rows: usize,
        opts: &DeliverOptions,
    ) -> Result<Option<Anchor>, TmuxError> {
        let deadline = Instant::now() + opts.echo_wait;
        loop {
            if let Some(anchor) = self.screen(name)?.anchor(marks, search_rows) {
                return Ok(Some(anchor));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(opts.poll);
        }
    }

    /// The visible rows and the cursor, from one tmux invocation (one consistent moment).
    fn screen(&self, name: &str) -> Result<Screen, TmuxError> {
        let pane = pane_target(name);
        let cmd = Cmdline::new("capture-pane", &pane)
            .args(["-p", "-t", &pane])
            .then("display-message")
            .args(["-p", "-t", &pane, CURSOR_FORMAT]);
        let ran = self.run(cmd, name, None)?;
        Screen::parse(&ran.stdout).ok_or_else(|| TmuxError::Parse {
            verb: "display-message",
            detail: format!("no cursor line after the screen of session {name:?}"),
        })
    }

    /// Polls the screen (every 150 ms) until it has not changed for 600 ms and `is_input`
    /// accepts it; `Ok(false)` when `timeout` passes first.
    pub fn wait_until_ready(
        &self,
        name: &str,
        timeout: Duration,
        is_input: impl Fn(&str) -> bool,
    ) -> Result<bool, TmuxError> {
        const POLL: Duration = Duration::from_millis(150);
        const STABLE: Duration = Duration::from_millis(600);
        let deadline = Instant::now() + timeout;
        let mut last = self.capture(name, usize::MAX)?;
        let mut since = Instant::now();
        loop {
            if since.elapsed() >= STABLE && is_input(&last) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            thread::sleep(POLL);
            let now = self.capture(name, usize::MAX)?;
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
    }
}
