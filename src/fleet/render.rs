//! A pane's byte stream (its session log, filled by pipe-pane) rendered as the text a terminal
//! shows: cursor moves, redraws and escape codes applied, the scrollback and the screen kept.
/// The size orch gives a pane (`NewSession`'s default), so redraws land where they did.
pub const PANE_ROWS: u16 = 50;
pub const PANE_COLS: u16 = 200;

/// Rows of history kept while rendering; older rows are dropped.
const HISTORY_ROWS: usize = 100_000;

/// The text a `rows`x`cols` terminal shows after `bytes`: its history then its screen, one line
/// a row, trailing spaces and trailing blank rows dropped.
pub fn render_stream(bytes: &[u8], rows: u16, cols: u16) -> String {
    let mut parser = vt100::Parser::new(rows.max(1), cols.max(1), HISTORY_ROWS);
    parser.process(bytes);
    let width = parser.screen().size().1;
    parser.screen_mut().set_scrollback(usize::MAX);
    let history = parser.screen().scrollback();
    let mut lines: Vec<String> = Vec::new();
    // View the history a screenful at a time, oldest first: at offset `o` the top `min(o,
    // rows)` visible rows are history rows not taken yet.
    let mut offset = history;
    while offset > 0 {
        parser.screen_mut().set_scrollback(offset);
        let take = offset.min(usize::from(rows));
        lines.extend(parser.screen().rows(0, width).take(take));
        offset -= take;
    }
    parser.screen_mut().set_scrollback(0);
    lines.extend(parser.screen().rows(0, width));
    let mut out: Vec<&str> = lines.iter().map(|l| l.trim_end()).collect();
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// [`render_stream`] at orch's pane size.
pub fn render_log(bytes: &[u8]) -> String {
    render_stream(bytes, PANE_ROWS, PANE_COLS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_moves_and_colours_are_applied_not_printed() {
        // A spinner redrawn in place, a coloured word, a line erased and rewritten.
        let stream = b"start\r\n\x1b[32mgreen\x1b[0m text\r\nworking |\rworking /\rworking -\r\x1b[2Kdone\r\n";
        let text = render_stream(stream, 10, 40);
        assert_eq!(text, "start\ngreen text\ndone");
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn history_that_scrolled_off_the_screen_is_kept_in_order() {
        let mut stream = Vec::new();
        for i in 0..25 {
            stream.extend_from_slice(format!("line {i}\r\n").as_bytes());
        }
        let text = render_stream(&stream, 4, 20);
        let expected: Vec<String> = (0..25).map(|i| format!("line {i}")).collect();
        assert_eq!(text, expected.join("\n"));
    }

    #[test]
    fn a_redrawn_screen_shows_its_last_state() {
        // Clear, draw at absolute positions, then redraw one row.
        let stream = b"\x1b[2J\x1b[1;1HTitle\x1b[3;1H> typed\x1b[3;1H\x1b[K> \x1b[5;1Hfooter";
        let text = render_stream(stream, 6, 30);
        assert_eq!(text, "Title\n\n>\n\nfooter");
    }
}
