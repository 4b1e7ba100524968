//! A pane captured with `capture-pane -e` turned into ratatui lines: SGR colours and
//! attributes kept (or dropped for NO_COLOR); every other escape sequence skipped.
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

/// The lines of `text`, styled from its SGR escapes when `colour`; the style carries across
/// lines as on the terminal.
pub fn to_lines(text: &str, colour: bool) -> Vec<Line<'static>> {
    let mut style = Style::default();
    text.lines()
        .map(|line| {
            let mut spans = Vec::new();
            let mut buf = String::new();
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                if c != '\x1b' {
                    if c >= ' ' {
                        buf.push(c);
                    }
                    continue;
                }
                match chars.next() {
                    Some('[') => {
                        let mut params = String::new();
                        let mut fin = None;
                        for d in chars.by_ref() {
                            if ('\x40'..='\x7e').contains(&d) {
                                fin = Some(d);
                                break;
                            }
                            params.push(d);
                        }
                        if fin == Some('m') {
                            if !buf.is_empty() {
                                spans.push(Span::styled(std::mem::take(&mut buf), style));
                            }
                            if colour {
                                style = apply_sgr(style, &params);
                            }
                        }
                    }
                    Some(']') => {
                        // OSC (e.g. a hyperlink): up to BEL or ST.
                        while let Some(d) = chars.next() {
                            if d == '\x07' || (d == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                                break;
                            }
                        }
                    }
                    _ => {}
                }
            }
            if !buf.is_empty() {
                spans.push(Span::styled(buf, style));
            }
            Line::from(spans)
        })
        .collect()
}

/// `style` after the SGR parameters `params` (`1;31`, `38;5;208`, `48;2;1;2;3`, ...).
pub fn apply_sgr(mut style: Style, params: &str) -> Style {
    let nums: Vec<u16> = params
        .split([';', ':'])
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let mut i = 0;
    while i < nums.len() {
        let n = nums[i];
        match n {
            0 => style = Style::default(),
            1 => style = style.add_modifier(Modifier::BOLD),
            2 => style = style.add_modifier(Modifier::DIM),
            3 => style = style.add_modifier(Modifier::ITALIC),
            4 => style = style.add_modifier(Modifier::UNDERLINED),
            5 => style = style.add_modifier(Modifier::SLOW_BLINK),
            7 => style = style.add_modifier(Modifier::REVERSED),
            9 => style = style.add_modifier(Modifier::CROSSED_OUT),
            22 => style = style.remove_modifier(Modifier::BOLD | Modifier::DIM),
            23 => style = style.remove_modifier(Modifier::ITALIC),
            24 => style = style.remove_modifier(Modifier::UNDERLINED),
            25 => style = style.remove_modifier(Modifier::SLOW_BLINK),
            27 => style = style.remove_modifier(Modifier::REVERSED),
            29 => style = style.remove_modifier(Modifier::CROSSED_OUT),
            30..=37 => style = style.fg(Color::Indexed((n - 30) as u8)),
            40..=47 => style = style.bg(Color::Indexed((n - 40) as u8)),
            90..=97 => style = style.fg(Color::Indexed((n - 90 + 8) as u8)),
            100..=107 => style = style.bg(Color::Indexed((n - 100 + 8) as u8)),
            39 => style.fg = Some(Color::Reset),
            49 => style.bg = Some(Color::Reset),
            38 | 48 => {
                let colour = match nums.get(i + 1) {
                    Some(5) => {
                        let c = nums.get(i + 2).map(|&v| Color::Indexed(v.min(255) as u8));
                        i += 2;
                        c
                    }
                    Some(2) => {
                        let v = |k: usize| nums.get(i + k).map_or(0, |&x| x.min(255) as u8);
                        let c = Some(Color::Rgb(v(2), v(3), v(4)));
                        i += 4;
                        c
                    }
                    _ => None,
                };
                if let Some(c) = colour {
                    style = if n == 38 { style.fg(c) } else { style.bg(c) };
                }
            }
            _ => {}
        }
        i += 1;
    }
    style
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgr_colours_and_attributes_become_styles() {
        let lines = to_lines(
            "plain \x1b[1;31mred\x1b[0m \x1b[38;5;208mx\x1b[48;2;1;2;3my",
            true,
        );
        let spans = &lines[0].spans;
        assert_eq!(spans[0].content, "plain ");
        assert_eq!(spans[1].content, "red");
        assert_eq!(
            spans[1].style,
            Style::default()
                .fg(Color::Indexed(1))
                .add_modifier(Modifier::BOLD)
        );
        assert_eq!(spans[3].style.fg, Some(Color::Indexed(208)));
        assert_eq!(spans[4].style.bg, Some(Color::Rgb(1, 2, 3)));
    }

    #[test]
    fn without_colour_only_text_remains_and_other_escapes_vanish() {
        let text = "\x1b[32mok\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07\x1b[2K!\nnext";
        let lines = to_lines(text, false);
        assert_eq!(lines.len(), 2);
        let flat: String = lines[0].spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(flat, "ok link!");
        assert!(lines[0].spans.iter().all(|s| s.style == Style::default()));
    }

    #[test]
    fn a_style_carries_into_the_next_line() {
        let lines = to_lines("\x1b[33ma\nb", true);
        assert_eq!(lines[1].spans[0].style.fg, Some(Color::Indexed(3)));
    }
}
