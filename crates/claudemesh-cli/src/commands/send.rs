//! `claudemesh send TARGET MESSAGE|- [--mesh S] [--priority P]`: seal a
//! message on this machine for each recipient key and hand it to the
//! broker, from a short session of this machine's member key. The message
//! id goes to stdout, so `ID=$(claudemesh send …)` works.

use crate::base::exit::{CliError, CliResult};
use crate::base::when;
use crate::cli::SendArgs;
use crate::context::Context;
use crate::session::{self, MeshSession, SessionKind};
use claudemesh_api::broker::{MAX_MESSAGE_BYTES, MessageKind};
use claudemesh_client::Sent;
use serde::Serialize;
use std::io::{IsTerminal, Read};

#[derive(Serialize)]
struct SendJson<'a> {
    id: &'a str,
    /// Key boxes the broker stored: one per recipient session, and one per
    /// machine of a member sent to (for whichever of their sessions is next).
    recipients: u32,
    /// How many of those are connected sessions.
    sessions: u32,
    kind: MessageKind,
    /// The recipient is offline: the message waits for them.
    waits: bool,
}

pub fn run(args: &SendArgs, ctx: &Context) -> CliResult<()> {
    let target = args.target.trim();
    if target.is_empty() {
        return Err(CliError::invalid_args("Send to whom? The target is empty")
            .with_hint("See `claudemesh send --help` for the targets, `claudemesh peers` for who is there."));
    }
    let (account, mesh) = session::account_and_mesh(ctx, args.mesh.as_deref(), "send")?;
    let out = &ctx.out;
    let text = message_text(&args.message, out)?;
    let priority = session::priority(args.priority);

    let (sent, ttl_seconds) = session::runtime()?.block_on(async {
        let session = MeshSession::connect(&account.server, &mesh, SessionKind::OneOff).await?;
        let ttl = session.client.welcome().limits.message_ttl_seconds;
        let sent = session.client.send(target, &text, priority).await;
        let sent = sent.map_err(|err| session.error(&err));
        session.close(out).await;
        sent.map(|sent| (sent, ttl))
    })?;

    out.success(sent_line(target, &mesh.slug, &sent));
    if sent.waits {
        out.line(format!(
            "{target} has no session connected: the message waits for them (up to {}).",
            when::span(i64::try_from(ttl_seconds).unwrap_or(i64::MAX))
        ));
    }
    if out.json {
        out.json(&SendJson {
            id: &sent.id,
            recipients: sent.recipients,
            sessions: sent.sessions,
            kind: sent.kind,
            waits: sent.waits,
        });
    } else {
        out.data(format!("{}\n", sent.id));
    }
    Ok(())
}

/// `✔ Sent to Alice (1 session)`, `✔ Sent to @ops (3 sessions)`, …
fn sent_line(target: &str, mesh: &str, sent: &Sent) -> String {
    let count = |n: u32, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match sent.kind {
        MessageKind::Broadcast => format!(
            "Sent to everyone connected to {mesh} ({})",
            count(sent.sessions, "session")
        ),
        _ if sent.waits => format!(
            "Sent to {target} (sealed for {})",
            count(sent.recipients, "machine")
        ),
        _ => format!("Sent to {target} ({})", count(sent.sessions, "session")),
    }
}

/// MESSAGE, or stdin for `-` (one trailing newline dropped). Empty, too
/// long or not UTF-8 is invalid (exit 3), before anything is sent.
fn message_text(arg: &str, out: &crate::base::output::Output) -> CliResult<String> {
    let text = if arg == "-" {
        let mut stdin = std::io::stdin();
        if stdin.is_terminal() {
            out.line("Type the message, then Ctrl-D on a line of its own:");
        }
        let mut bytes = Vec::new();
        stdin.read_to_end(&mut bytes).map_err(|err| {
            CliError::failure(format!("Could not read the message from stdin: {err}"))
        })?;
        let mut text = String::from_utf8(bytes)
            .map_err(|_| CliError::invalid_args("The message on stdin is not UTF-8 text"))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        text
    } else {
        arg.to_owned()
    };
    check_text(text)
}

fn check_text(text: String) -> CliResult<String> {
    if text.trim().is_empty() {
        return Err(CliError::invalid_args("The message is empty"));
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(CliError::invalid_args(format!(
            "The message is {} bytes; at most {MAX_MESSAGE_BYTES} can be sent",
            text.len()
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::exit::Exit;

    fn sent(kind: MessageKind, recipients: u32, waits: bool) -> Sent {
        Sent {
            id: "msg_1".into(),
            recipients,
            kind,
            waits,
            sessions: if waits { 0 } else { recipients },
        }
    }

    #[test]
    fn the_line_says_who_got_it_and_how() {
        assert_eq!(
            sent_line("Alice", "dev", &sent(MessageKind::Direct, 1, false)),
            "Sent to Alice (1 session)"
        );
        assert_eq!(
            sent_line("Alice", "dev", &sent(MessageKind::Direct, 2, true)),
            "Sent to Alice (sealed for 2 machines)"
        );
        assert_eq!(
            sent_line("@ops", "dev", &sent(MessageKind::Group, 3, false)),
            "Sent to @ops (3 sessions)"
        );
        assert_eq!(
            sent_line("*", "dev", &sent(MessageKind::Broadcast, 2, false)),
            "Sent to everyone connected to dev (2 sessions)"
        );
    }

    #[test]
    fn empty_and_oversized_messages_are_invalid() {
        assert_eq!(check_text("hi".into()).unwrap(), "hi");
        assert_eq!(
            check_text(" \n ".into()).unwrap_err().exit,
            Exit::InvalidArgs
        );
        let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
        let err = check_text(big).unwrap_err();
        assert_eq!(err.exit, Exit::InvalidArgs);
        assert!(err.message.contains("at most 16384"), "{}", err.message);
        assert!(check_text("x".repeat(MAX_MESSAGE_BYTES)).is_ok());
    }
}
