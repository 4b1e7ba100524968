//! Typing into panes reliably: deliver (type, submit, confirm, bounded retry) and
//! wait_until_ready (a settled screen showing an input prompt), with pure screen checks.
use std::thread;
use std::time::{Duration, Instant};

use super::exec::Cmdline;
use super::{Tmux, TmuxError, pane_target};

/// How many characters of the text's first line identify it on screen.
const PREFIX_CHARS: usize = 28;
/// What agent TUIs show instead of a long paste.
const PLACEHOLDERS: [&str; 3] = ["[Pasted text #", "[Pasted ~", "[Pasted Content"];

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
    /// How many rows at the end of the screen count as "the input area".
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
    /// Types `text` into the session, submits it with `submit_key` and confirms the submit
    /// took (the text's prefix, or a paste placeholder, left the input area at the end of the
    /// screen); the submit key is re-sent, bounded by `opts.max_submits`.
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
        let depth = if marks.is_empty() {
            None
        } else {
            self.find_anchor(name, &marks, opts)?
        };
        let Some(depth) = depth else {
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
                if !self.screen(name)?.shows_within(&marks, depth) {
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

    /// Polls until the typed text shows in the input area; its depth above the screen's end.
    fn find_anchor(
        &self,
        name: &str,
        marks: &[String],
        opts: &DeliverOptions,
    ) -> Result<Option<usize>, TmuxError> {
        let deadline = Instant::now() + opts.echo_wait;
        loop {
            if let Some(depth) = self.screen(name)?.anchor_depth(marks, opts.tail_rows) {
                return Ok(Some(depth));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(opts.poll);
        }
    }

    /// The visible rows and the cursor row, from one tmux invocation (one consistent moment).
    fn screen(&self, name: &str) -> Result<Screen, TmuxError> {
        let pane = pane_target(name);
        let cmd = Cmdline::new("capture-pane", &pane)
            .args(["-p", "-t", &pane])
            .then("display-message")
            .args(["-p", "-t", &pane, "#{cursor_y}"]);
        let ran = self.run(cmd, name, None)?;
        Screen::parse(&ran.stdout).ok_or_else(|| TmuxError::Parse {
            verb: "display-message",
            detail: format!("no cursor row after the screen of session {name:?}"),
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

/// What identifies the text on screen: the start of its first non-blank line (up to the
/// first tab, which tmux shows as spaces), plus the placeholders TUIs show for pastes.
fn needles(text: &str) -> Vec<String> {
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Vec::new();
    };
    let prefix: String = first
        .chars()
        .take_while(|c| !c.is_control())
        .take(PREFIX_CHARS)
        .collect();
    let prefix = prefix.trim_end();
    let mut marks: Vec<String> = PLACEHOLDERS.iter().map(|p| p.to_string()).collect();
    if !prefix.is_empty() {
        marks.insert(0, prefix.to_string());
    }
    marks
}

/// A snapshot of a pane: its visible rows and the row the cursor is on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Screen {
    rows: Vec<String>,
    cursor_y: usize,
}

impl Screen {
    /// Parses `capture-pane -p` output followed by one line holding `#{cursor_y}`.
    fn parse(output: &str) -> Option<Screen> {
        let mut rows: Vec<String> = output.lines().map(str::to_string).collect();
        let cursor_y = rows.pop()?.trim().parse().ok()?;
        Some(Screen { rows, cursor_y })
    }

    /// The row where the input area ends: the cursor, or the last text below it.
    fn end(&self) -> usize {
        let last_text = self.rows.iter().rposition(|r| !r.trim().is_empty());
        last_text.map_or(self.cursor_y, |t| t.max(self.cursor_y))
    }

    /// How far above `end()` the lowest row holding a mark is, looking `tail_rows` rows up.
    fn anchor_depth(&self, marks: &[String], tail_rows: usize) -> Option<usize> {
        let end = self.end();
        let start = (end + 1).saturating_sub(tail_rows.max(1));
        (start..=end)
            .rev()
            .find(|&i| self.row_has(i, marks))
            .map(|i| end - i)
    }

    /// Whether any of the `depth + 1` rows ending at `end()` still holds a mark.
    fn shows_within(&self, marks: &[String], depth: usize) -> bool {
        let end = self.end();
        (end.saturating_sub(depth)..=end).any(|i| self.row_has(i, marks))
    }

    fn row_has(&self, i: usize, marks: &[String]) -> bool {
        self.rows
            .get(i)
            .is_some_and(|row| marks.iter().any(|m| row.contains(m.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(rows: &[&str], cursor_y: usize) -> Screen {
        Screen {
            rows: rows.iter().map(|r| r.to_string()).collect(),
            cursor_y,
        }
    }

    #[test]
    fn needles_take_the_first_line_prefix_and_placeholders() {
        let marks = needles("\n  please review the claim commit on main now\nsecond");
        assert_eq!(marks[0], "please review the claim comm");
        assert!(marks.contains(&"[Pasted text #".to_string()));
        assert_eq!(needles("a\tb")[0], "a");
        assert!(needles(" \n ").is_empty());
    }

    #[test]
    fn screen_parse_reads_the_cursor_row_last() {
        let s = Screen::parse("one\ntwo\n\n\n1\n").unwrap();
        assert_eq!(s.rows, ["one", "two", "", ""]);
        assert_eq!(s.cursor_y, 1);
        assert!(Screen::parse("").is_none());
        assert!(Screen::parse("a\nnot-a-number\n").is_none());
    }

    #[test]
    fn echoed_line_above_the_cursor_counts_as_submitted() {
        let marks = needles("hello there");
        let typed = screen(&["hello there", "", ""], 0);
        let depth = typed.anchor_depth(&marks, 8).unwrap();
        assert_eq!(depth, 0);
        assert!(typed.shows_within(&marks, depth));
        let submitted = screen(&["hello there", "", ""], 1);
        assert!(!submitted.shows_within(&marks, depth));
    }

    #[test]
    fn tui_input_box_cleared_counts_as_submitted() {
        let marks = needles("review claim abc123");
        let typed = screen(
            &[
                "old talk",
                "╭────╮",
                "│ > review claim abc123 │",
                "╰────╯",
                "  ? for shortcuts",
                "",
                "",
            ],
            6,
        );
        let depth = typed.anchor_depth(&marks, 8).unwrap();
        assert!(typed.shows_within(&marks, depth));
        let sent = screen(
            &[
                "old talk",
                "> review claim abc123",
                "⏺ Looking.",
                "╭────╮",
                "│ >  │",
                "╰────╯",
                "  ? for shortcuts",
            ],
            6,
        );
        assert!(!sent.shows_within(&marks, depth));
    }

    #[test]
    fn paste_placeholder_is_an_anchor_until_it_goes() {
        let marks = needles("line one\nline two");
        let typed = screen(&["│ > [Pasted text #1 +1 lines] │", "footer"], 1);
        let depth = typed.anchor_depth(&marks, 8).unwrap();
        assert_eq!(depth, 1);
        let sent = screen(&["│ >  │", "footer"], 1);
        assert!(!sent.shows_within(&marks, depth));
    }

    #[test]
    fn old_copies_far_above_the_input_are_not_anchors() {
        let marks = needles("ping");
        let mut rows = vec!["ping"];
        rows.extend(std::iter::repeat_n("talk", 20));
        rows.push("> ");
        let s = screen(&rows, rows.len() - 1);
        assert_eq!(s.anchor_depth(&marks, 8), None);
    }
}
