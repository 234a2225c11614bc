//! How things read on stdout: roles, counts, short ids, shell words for
//! hints, and tables.

use claudemesh_api::wire::MeshRole;
use std::fmt::Write as _;

pub fn role_name(role: MeshRole) -> &'static str {
    match role {
        MeshRole::Admin => "admin",
        MeshRole::Member => "member",
    }
}

/// `1 mesh`, `2 meshes`.
pub fn meshes_count(n: usize) -> String {
    if n == 1 {
        "1 mesh".to_owned()
    } else {
        format!("{n} meshes")
    }
}

/// `msh_q5ri89fl…`: enough of an id to recognise it.
pub fn short_id(id: &str) -> String {
    let (prefix, rest) = id.split_once('_').unwrap_or(("", id));
    let head: String = rest.chars().take(8).collect();
    let ellipsis = if rest.chars().count() > 8 { "…" } else { "" };
    if prefix.is_empty() {
        format!("{head}{ellipsis}")
    } else {
        format!("{prefix}_{head}{ellipsis}")
    }
}

/// Quotes a word for a POSIX shell when it needs it, for commands shown in
/// hints (`claudemesh create 'Platform team' --slug platform-team-2`).
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./@:+=,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A table for stdout: a header and rows, columns padded to fit (the last
/// one is not padded), trailing spaces trimmed.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut widths = vec![0usize; header.len()];
    for row in std::iter::once(&header).chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = width - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_characters() {
        let rows = vec![
            vec!["é".to_owned(), "x".to_owned(), "last".to_owned()],
            vec!["abc".to_owned(), "".to_owned(), "".to_owned()],
        ];
        assert_eq!(
            columns(&["A", "BB", "C"], &rows),
            "A    BB  C\né    x   last\nabc\n"
        );
    }

    #[test]
    fn ids_are_shortened_after_their_prefix() {
        assert_eq!(short_id("msh_q5ri89flabcdefgh"), "msh_q5ri89fl…");
        assert_eq!(short_id("msh_abc"), "msh_abc");
        assert_eq!(short_id("abcdefghijk"), "abcdefgh…");
    }

    #[test]
    fn hint_commands_are_quoted_for_the_shell() {
        assert_eq!(shell_word("platform-team-2"), "platform-team-2");
        assert_eq!(shell_word("Platform team"), "'Platform team'");
        assert_eq!(shell_word("Bob's"), r"'Bob'\''s'");
        assert_eq!(shell_word("$(rm)"), "'$(rm)'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn counts_read_naturally() {
        assert_eq!(meshes_count(0), "0 meshes");
        assert_eq!(meshes_count(1), "1 mesh");
        assert_eq!(meshes_count(3), "3 meshes");
    }
}
