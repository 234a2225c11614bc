//! Where things are printed, and how.
//!
//! Data goes to stdout, and only as JSON with `--json`; every human message
//! (progress, success lines, warnings, errors) goes to stderr, so a script
//! piping stdout never sees them. Colours only when stderr is a terminal, and
//! never with `NO_COLOR` or `--json`.

use serde::Serialize;
use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paint {
    Green,
    Yellow,
    Red,
    Bold,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Self::Green => "32",
            Self::Yellow => "33",
            Self::Red => "31",
            Self::Bold => "1",
        }
    }
}

/// The kinds of line in a list of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Added,
    Changed,
    Flagged,
    Removed,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub json: bool,
    color: bool,
    stderr_tty: bool,
}

/// Whether to colour: a terminal, no `NO_COLOR` (any non-empty value, per
/// no-color.org), not `TERM=dumb`, not `--json`.
pub fn use_color(stderr_tty: bool, json: bool, no_color: Option<&str>, term: Option<&str>) -> bool {
    stderr_tty && !json && no_color.is_none_or(str::is_empty) && term != Some("dumb")
}

impl Output {
    pub fn from_env(json: bool) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let no_color = std::env::var("NO_COLOR").ok();
        let term = std::env::var("TERM").ok();
        Self {
            json,
            color: use_color(stderr_tty, json, no_color.as_deref(), term.as_deref()),
            stderr_tty,
        }
    }

    /// Whether a person is probably watching stderr (spinner, QR code).
    pub fn interactive(&self) -> bool {
        self.stderr_tty && !self.json
    }

    pub fn stderr_is_terminal(&self) -> bool {
        self.stderr_tty
    }

    fn paint(&self, paint: Paint, text: &str) -> String {
        if self.color {
            format!("\x1b[{}m{text}\x1b[0m", paint.code())
        } else {
            text.to_owned()
        }
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint(Paint::Bold, text)
    }

    /// `✔`, green where colours are on (status rows, success lines).
    pub fn check(&self) -> String {
        self.paint(Paint::Green, "✔")
    }

    /// A plain line on stderr.
    pub fn line(&self, text: impl AsRef<str>) {
        let _ = writeln!(std::io::stderr().lock(), "{}", text.as_ref());
    }

    pub fn success(&self, text: impl AsRef<str>) {
        self.line(format!(
            "{} {}",
            self.paint(Paint::Green, "✔"),
            text.as_ref()
        ));
    }

    pub fn warn(&self, text: impl AsRef<str>) {
        self.line(format!(
            "{} {}",
            self.paint(Paint::Yellow, "⚠"),
            text.as_ref()
        ));
    }

    pub fn error(&self, text: impl AsRef<str>) {
        self.line(format!("{} {}", self.paint(Paint::Red, "✘"), text.as_ref()));
    }

    /// One line of a list of changes on stderr (`+ dev (new key registered)`).
    pub fn change(&self, mark: Mark, text: impl AsRef<str>) {
        let (symbol, paint) = match mark {
            Mark::Added => ("+", Paint::Green),
            Mark::Changed => ("~", Paint::Bold),
            Mark::Flagged => ("!", Paint::Yellow),
            Mark::Removed => ("-", Paint::Red),
        };
        self.line(format!("{} {}", self.paint(paint, symbol), text.as_ref()));
    }

    /// A command's text result on stdout (not used with `--json`).
    pub fn data(&self, text: impl AsRef<str>) {
        let _ = std::io::stdout().lock().write_all(text.as_ref().as_bytes());
    }

    /// The one JSON document a `--json` command prints on stdout.
    pub fn json<T: Serialize>(&self, value: &T) {
        let mut stdout = std::io::stdout().lock();
        // Serialising our own types cannot fail; a closed pipe is not worth a panic.
        if let Ok(text) = serde_json::to_string_pretty(value) {
            let _ = writeln!(stdout, "{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color_or_json() {
        assert!(use_color(true, false, None, Some("xterm")));
        assert!(use_color(true, false, Some(""), None));
        assert!(!use_color(false, false, None, Some("xterm")));
        assert!(!use_color(true, true, None, Some("xterm")));
        assert!(!use_color(true, false, Some("1"), Some("xterm")));
        assert!(!use_color(true, false, None, Some("dumb")));
    }

    #[test]
    fn plain_output_has_no_escape_codes() {
        let out = Output {
            json: false,
            color: false,
            stderr_tty: false,
        };
        assert_eq!(out.bold("x"), "x");
        let coloured = Output { color: true, ..out };
        assert_eq!(coloured.bold("x"), "\x1b[1mx\x1b[0m");
    }
}
