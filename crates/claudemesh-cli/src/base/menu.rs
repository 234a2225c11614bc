//! A menu on the terminal: arrows (or j/k) move, a digit picks that line,
//! Enter picks the marked one, Esc, q or Ctrl-C cancel (exit 130). Drawn on
//! stderr, erased after, the cursor shown again however it ends.

use crate::base::exit::{CliError, CliResult, Exit};
use dialoguer::console::{Key, Term, measure_text_width};

/// One line of a menu.
pub struct Item {
    pub label: String,
}

impl Item {
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
        }
    }
}

pub fn cancelled() -> CliError {
    CliError::new(Exit::Cancelled, "Cancelled")
}

/// Shows `header` lines (not selectable) and `items`; the index picked.
pub fn choose(term: &Term, header: &[String], items: &[Item], default: usize) -> CliResult<usize> {
    let mut at = default.min(items.len().saturating_sub(1));
    let _ = term.hide_cursor();
    let result = loop {
        let drawn = draw(term, header, items, at);
        let key = match term.read_key_raw() {
            Ok(key) => key,
            Err(_) => break Err(cancelled()),
        };
        let _ = term.clear_last_lines(drawn);
        match key {
            Key::ArrowUp | Key::Char('k') | Key::BackTab => {
                at = if at == 0 { items.len() - 1 } else { at - 1 };
            }
            Key::ArrowDown | Key::Char('j') | Key::Tab => at = (at + 1) % items.len(),
            Key::Home => at = 0,
            Key::End => at = items.len() - 1,
            Key::Char(digit @ '1'..='9') => {
                let picked = digit as usize - '1' as usize;
                if picked < items.len() {
                    break Ok(picked);
                }
            }
            Key::Enter => break Ok(at),
            Key::Escape | Key::CtrlC | Key::Char('q') => break Err(cancelled()),
            _ => {}
        }
    };
    let _ = term.show_cursor();
    result
}

/// Draws the menu; the terminal rows it took (a line wider than the
/// terminal wraps onto more than one, and all of them are erased after).
fn draw(term: &Term, header: &[String], items: &[Item], at: usize) -> usize {
    let width = usize::from(term.size().1).max(1);
    let mut rows = 0;
    let mut line = |text: &str| {
        let _ = term.write_line(text);
        rows += measure_text_width(text).div_ceil(width).max(1);
    };
    for text in header {
        line(text);
    }
    for (i, item) in items.iter().enumerate() {
        let marker = if i == at { "▸" } else { " " };
        line(&format!("{marker} {}. {}", i + 1, item.label));
    }
    rows
}
