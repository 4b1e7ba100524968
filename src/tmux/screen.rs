//! Pure reading of a pane snapshot for delivery: where the typed text sits relative to the
//! input position, and whether a submit moved it away. No tmux calls here.

/// How many characters of the text's first line identify it on screen.
const PREFIX_CHARS: usize = 28;
/// What agent TUIs show instead of a long paste (Claude, opencode, Codex, Gemini).
const PLACEHOLDERS: [&str; 4] = [
    "[Pasted text #",
    "[Pasted ~",
    "[Pasted Content",
    "[Pasted Text:",
];

/// What identifies the text on screen: the start of its first non-blank line (up to the
/// first control character, e.g. a tab tmux shows as spaces), plus the paste placeholders.
pub(crate) fn needles(text: &str) -> Vec<String> {
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

/// A snapshot of a pane: its visible rows and its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Screen {
    pub(crate) rows: Vec<String>,
    pub(crate) cursor_y: usize,
    /// Agent TUIs like Claude Code and Gemini CLI hide the terminal cursor.
    pub(crate) cursor_visible: bool,
}

/// Where the typed text was found before submitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Anchor {
    /// Measured from the cursor row (true) or from the last non-blank row (false).
    by_cursor: bool,
    /// Rows from that base up to the row holding the text.
    depth: usize,
    /// One more row to watch when UI sits below the input (a swallowed Enter that inserts
    /// a newline pushes the text one row further from the base).
    slack: usize,
}

/// The `display-message` format whose line follows the captured rows.
pub(crate) const CURSOR_FORMAT: &str = "#{cursor_flag} #{cursor_y}";

impl Screen {
    /// Parses `capture-pane -p` output followed by one `CURSOR_FORMAT` line.
    pub(crate) fn parse(output: &str) -> Option<Screen> {
        let mut rows: Vec<String> = output.lines().map(str::to_string).collect();
        let last = rows.pop()?;
        let (flag, y) = last.trim().split_once(' ')?;
        Some(Screen {
            rows,
            cursor_y: y.parse().ok()?,
            cursor_visible: flag == "1",
        })
    }

    fn last_text_row(&self) -> Option<usize> {
        self.rows.iter().rposition(|r| !r.trim().is_empty())
    }

    fn base(&self, by_cursor: bool) -> usize {
        if by_cursor {
            self.cursor_y
        } else {
            self.last_text_row().unwrap_or(0)
        }
    }

    /// Finds the lowest row holding a mark within `search_rows` above the input position:
    /// the cursor when it is shown, else (or failing that) the last non-blank row.
    pub(crate) fn anchor(&self, marks: &[String], search_rows: usize) -> Option<Anchor> {
        let modes: &[bool] = if self.cursor_visible {
            &[true, false]
        } else {
            &[false]
        };
        modes.iter().find_map(|&by_cursor| {
            let base = self.base(by_cursor);
            let start = (base + 1).saturating_sub(search_rows.max(1));
            let row = (start..=base).rev().find(|&i| self.row_has(i, marks))?;
            let ui_below = self.last_text_row().is_some_and(|t| t > base);
            let slack = usize::from(!self.cursor_visible || ui_below);
            Some(Anchor {
                by_cursor,
                depth: base - row,
                slack,
            })
        })
    }

    /// Whether the text is still where it was typed (measured the same way as `anchor`).
    pub(crate) fn still_shows(&self, marks: &[String], anchor: Anchor) -> bool {
        let by_cursor = anchor.by_cursor && self.cursor_visible;
        let base = self.base(by_cursor);
        let span = anchor.depth + anchor.slack;
        (base.saturating_sub(span)..=base).any(|i| self.row_has(i, marks))
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

    fn screen(rows: &[&str], cursor: Option<usize>) -> Screen {
        Screen {
            rows: rows.iter().map(|r| r.to_string()).collect(),
            cursor_y: cursor.unwrap_or(0),
            cursor_visible: cursor.is_some(),
        }
    }

    /// Typed, then submitted: whether delivery would call it confirmed.
    fn confirmed(text: &str, typed: &Screen, after: &Screen) -> bool {
        let marks = needles(text);
        let anchor = typed.anchor(&marks, 8 + text.lines().count()).unwrap();
        assert!(typed.still_shows(&marks, anchor), "anchor must hold before");
        !after.still_shows(&marks, anchor)
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
    fn parse_reads_cursor_flag_and_row_last() {
        let s = Screen::parse("one\ntwo\n\n\n1 1\n").unwrap();
        assert_eq!(s.rows, ["one", "two", "", ""]);
        assert_eq!((s.cursor_visible, s.cursor_y), (true, 1));
        assert!(!Screen::parse("x\n0 3\n").unwrap().cursor_visible);
        assert!(Screen::parse("").is_none());
        assert!(Screen::parse("a\nnot numbers\n").is_none());
    }

    #[test]
    fn line_reader_echo_above_the_cursor_is_submitted() {
        let typed = screen(&["hello there", "", ""], Some(0));
        assert!(confirmed(
            "hello there",
            &typed,
            &screen(&["hello there", "", ""], Some(1))
        ));
        assert!(!confirmed("hello there", &typed, &typed));
    }

    #[test]
    fn line_reader_multi_line_paste_is_submitted_when_the_cursor_moves_on() {
        let text = "line one\nline two\nline three";
        let typed = screen(&["line one", "line two", "line three", ""], Some(2));
        let after = screen(&["line one", "line two", "line three", ""], Some(3));
        assert!(confirmed(text, &typed, &after));
        assert!(!confirmed(text, &typed, &typed));
    }

    // Rows from tests/fixtures/tui/claude (b2-typed-sayhi, b2-sayhi-enter1): cursor hidden.
    #[test]
    fn claude_prompt_moving_into_the_transcript_is_submitted() {
        let rule = "────────────";
        let typed = screen(
            &[
                "▎ docs",
                "",
                rule,
                "❯ say hi",
                rule,
                "  ⏵⏵ auto mode on",
                "",
                "",
            ],
            None,
        );
        let after = screen(
            &[
                "▎ docs",
                "",
                "❯ say hi",
                "",
                "✻ Can't reach the API server · retrying in 2s",
                "",
                rule,
                "❯ ",
                rule,
                "  ⏵⏵ auto mode on · esc to interrupt",
            ],
            None,
        );
        assert!(confirmed("say hi", &typed, &after));
        assert!(!confirmed("say hi", &typed, &typed));
    }

    // Gemini (cursor hidden): an Enter sent too early inserts a newline under the text.
    #[test]
    fn gemini_newline_inserted_instead_of_submit_is_not_submitted() {
        let typed = screen(
            &[
                "──────",
                " Shift+Tab to accept edits",
                " > quick hello",
                " workspace",
                " /srv/x   main",
            ],
            None,
        );
        let swallowed = screen(
            &[
                "──────",
                " Shift+Tab to accept edits",
                " > quick hello",
                "",
                " workspace",
                " /srv/x   main",
            ],
            None,
        );
        assert!(!confirmed("quick hello", &typed, &swallowed));
    }

    // Codex shows its cursor in the prompt box with a footer below it.
    #[test]
    fn codex_newline_inserted_under_a_visible_cursor_is_not_submitted() {
        let typed = screen(&["› say hi", "", "  model · dir"], Some(0));
        let swallowed = screen(&["› say hi", "", "", "  model · dir"], Some(1));
        assert!(!confirmed("say hi", &typed, &swallowed));
        let sent = screen(
            &["› say hi", "• Working", "", "› ", "", "  model · dir"],
            Some(3),
        );
        assert!(confirmed("say hi", &typed, &sent));
    }

    // opencode's first screen has its input box mid-screen, far above the last text.
    #[test]
    fn opencode_input_mid_screen_is_found_by_its_visible_cursor() {
        let mut rows = vec!["┃", "┃  say hi", "┃", "┃  Build · Big Pickle", "╹▀▀▀▀"];
        rows.extend(std::iter::repeat_n("", 20));
        rows.push("  /srv/x:main");
        let typed = screen(&rows, Some(1));
        let mut after_rows = vec!["  say hi", ""];
        after_rows.extend(std::iter::repeat_n("", 20));
        after_rows.extend(["┃", "┃  ", "┃  Build", "╹▀▀▀▀"]);
        let after = screen(&after_rows, Some(23));
        assert!(confirmed("say hi", &typed, &after));
        assert!(!confirmed("say hi", &typed, &typed));
    }

    #[test]
    fn paste_placeholder_is_an_anchor_until_it_goes() {
        let text = "line one\nline two";
        let typed = screen(
            &[
                "─",
                "❯ [Pasted text #1 +1 lines]",
                "─",
                "paste again to expand",
            ],
            None,
        );
        let after = screen(
            &[
                "❯ line one",
                "  line two",
                "─",
                "❯ ",
                "─",
                "  ⏵⏵ auto mode on",
            ],
            None,
        );
        assert!(confirmed(text, &typed, &after));
        assert!(!confirmed(text, &typed, &typed));
    }

    #[test]
    fn old_copies_far_above_the_input_are_not_anchors() {
        let marks = needles("ping");
        let mut rows = vec!["ping"];
        rows.extend(std::iter::repeat_n("talk", 20));
        rows.push("> ");
        let s = screen(&rows, None);
        assert_eq!(s.anchor(&marks, 8), None);
    }
}
