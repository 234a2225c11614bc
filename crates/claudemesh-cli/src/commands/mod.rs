//! One module per command; each has one `run(args, ctx)`.

mod completions;
mod create;
mod inbox;
mod invite;
mod join;
mod launch;
mod leave;
mod list;
mod login;
mod logout;
mod peers;
mod send;
mod sync;
mod telemetry;
mod whoami;
mod wizard;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::exit::{CliError, CliResult};
use claudemesh_api::Slug;
use claudemesh_api::wire::MeshRole;
use std::fmt::Write as _;

pub fn run(cli: Cli, ctx: &Context) -> CliResult<()> {
    match cli.command {
        Some(Command::Login(args)) => login::run(&args, ctx),
        Some(Command::Logout(args)) => logout::run(&args, ctx),
        Some(Command::Whoami(args)) => whoami::run(&args, ctx),
        Some(Command::Create(args)) => create::run(&args, ctx),
        Some(Command::List(args)) => list::run(&args, ctx),
        Some(Command::Sync(args)) => sync::run(&args, ctx),
        Some(Command::Invite(args)) => invite::run(&args, ctx),
        Some(Command::Join(args)) => join::run(&args, ctx),
        Some(Command::Leave(args)) => leave::run(&args, ctx),
        Some(Command::Peers(args)) => peers::run(&args, ctx),
        Some(Command::Send(args)) => send::run(&args, ctx),
        Some(Command::Inbox(args)) => inbox::run(&args, ctx),
        Some(Command::Launch(args)) => launch::run(&args, ctx),
        Some(Command::Mcp(_)) => crate::mcp::run(ctx),
        Some(Command::Completions(args)) => completions::run(&args),
        Some(Command::Telemetry(args)) => telemetry::run(&args, ctx),
        // `claudemesh <invite link>`: join and launch.
        Some(Command::External(words)) => match words.as_slice() {
            [word] if looks_like_invite(word) => wizard::join_and_launch(ctx, word),
            _ => Err(CliError::invalid_args(format!(
                "Unknown command `{}`",
                words.first().map(String::as_str).unwrap_or_default()
            ))
            .with_hint("See `claudemesh --help`.")),
        },
        // Bare `claudemesh`: the welcome wizard (help, off a terminal).
        None => wizard::run(ctx),
    }
}

pub fn role_name(role: MeshRole) -> &'static str {
    match role {
        MeshRole::Admin => "admin",
        MeshRole::Member => "member",
    }
}

/// A slug given on the command line, checked before it goes into a path.
pub fn slug_arg(text: &str, flag: &str) -> CliResult<Slug> {
    Slug::parse(text.trim())
        .map_err(|err| CliError::invalid_args(format!("Invalid {flag} {text:?}: {err}")))
}

/// An invite link (`https://host/i/<code>`), as `claudemesh <link>` takes.
pub fn looks_like_invite(word: &str) -> bool {
    (word.starts_with("https://") || word.starts_with("http://")) && word.contains("/i/")
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
