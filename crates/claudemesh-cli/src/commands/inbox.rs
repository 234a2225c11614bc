//! `claudemesh inbox [--mesh S] [--follow]`: connect as a session of this
//! machine's member key and print, decrypted, what was waiting and what
//! arrives. Without `--follow` it stops after [`QUIET`] with nothing new;
//! with it, it stays until Ctrl-C (exit 0) or the connection ends (exit 4,
//! or 7 when the membership ended).
//!
//! The client acknowledges each message as it arrives, so a message shown
//! here is not shown again. With `--json`, the one-shot form prints one
//! document at the end (even when the connection failed part way, so what
//! was acknowledged is not lost), `--follow` one object per line as each
//! arrives.

use super::relay;
use crate::base::exit::CliResult;
use crate::base::output::{Mark, Output};
use crate::base::when;
use crate::cli::InboxArgs;
use crate::context::Context;
use crate::session::{self, Interrupt, MeshSession, SessionKind};
use crate::stores::config_store::JoinedMesh;
use crate::stores::permission_requests::Pending;
use claudemesh_api::broker::{BrokerErrorCode, MessageKind, Peer, Priority};
use claudemesh_client::{Event, Received};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// How long `inbox` waits for something new before it stops.
const QUIET: Duration = Duration::from_millis(1500);

#[derive(Serialize)]
struct InboxJson<'a> {
    mesh: &'a str,
    messages: Vec<MessageJson<'a>>,
}

/// A message as `--json` prints it.
#[derive(Serialize)]
struct MessageJson<'a> {
    id: &'a str,
    from: FromJson<'a>,
    kind: MessageKind,
    /// The group, for `group` messages.
    group: Option<&'a str>,
    priority: Priority,
    sent_at: &'a str,
    text: &'a str,
    /// A permission request of one of your launched sessions, as
    /// [`relay::json`] shows it (the text is then its JSON payload).
    #[serde(skip_serializing_if = "Option::is_none")]
    permission_request: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct FromJson<'a> {
    display_name: &'a str,
    member_id: &'a str,
    session_key: &'a str,
}

impl<'a> From<&'a Received> for MessageJson<'a> {
    fn from(message: &'a Received) -> Self {
        Self {
            id: &message.id,
            from: FromJson {
                display_name: &message.from.display_name,
                member_id: &message.from.member_id,
                session_key: &message.from.session_key,
            },
            kind: message.kind,
            group: message.group.as_deref(),
            priority: message.priority,
            sent_at: &message.sent_at,
            text: &message.text,
            permission_request: None,
        }
    }
}

pub fn run(args: &InboxArgs, ctx: &Context) -> CliResult<()> {
    let (account, mesh) = session::account_and_mesh(ctx, args.mesh.as_deref(), "inbox")?;
    let runtime = session::runtime()?;
    if args.follow {
        runtime.block_on(follow(
            &ctx.out,
            &account.server,
            &mesh,
            &ctx.config_dir,
            args.verbose,
        ))
    } else {
        runtime.block_on(read(&ctx.out, &account.server, &mesh, &ctx.config_dir))
    }
}

/// What is waiting, and what comes until things are quiet.
async fn read(out: &Output, server: &str, mesh: &JoinedMesh, config_dir: &Path) -> CliResult<()> {
    let mut interrupt = Interrupt::listen()?;
    let session = MeshSession::connect(server, mesh, SessionKind::OneOff).await?;
    let mut received: Vec<(Received, Option<Pending>)> = Vec::new();
    let mut failure = None;
    let mut quiet_from = Instant::now() + QUIET;
    loop {
        tokio::select! {
            event = tokio::time::timeout_at(quiet_from, session.client.next_event()) => match event {
                Err(_quiet) => break,
                Ok(Some(Event::Message(message))) => {
                    let request = relay::take_request(&message, server, mesh, config_dir);
                    if relay::is_request(&message) {
                        // Shown (and, when ours, kept for `approve`): the
                        // client leaves requests for us to acknowledge.
                        let _ = session.client.ack(vec![message.id.clone()]);
                    }
                    if !out.json {
                        out.data(shown(&message, request.as_ref()));
                    }
                    received.push((message, request));
                    quiet_from = Instant::now() + QUIET;
                }
                Ok(Some(Event::Rejected { reason, .. })) => out.warn(rejected(&reason)),
                Ok(Some(Event::Closed { code, message })) => {
                    failure = Some(session.closed(code, &message));
                    break;
                }
                Ok(None) => {
                    failure = Some(session.closed(None, ""));
                    break;
                }
                Ok(Some(_presence)) => {}
            },
            () = interrupt.recv() => break,
        }
    }
    if failure.is_none() {
        for message in session.close_collecting().await {
            let request = relay::take_request(&message, server, mesh, config_dir);
            if !out.json {
                out.data(shown(&message, request.as_ref()));
            }
            received.push((message, request));
        }
    }
    if out.json {
        out.json(&InboxJson {
            mesh: &mesh.slug,
            messages: received
                .iter()
                .map(|(message, request)| with_request(message, request.as_ref()))
                .collect(),
        });
    } else if received.is_empty() {
        out.line(format!("No new messages in {}.", mesh.slug));
    } else {
        let count = if received.len() == 1 {
            "1 message".to_owned()
        } else {
            format!("{} messages", received.len())
        };
        out.success(format!("{count} in {}", mesh.slug));
    }
    failure.map_or(Ok(()), Err)
}

/// Every message as it comes, until Ctrl-C or the connection ends; on
/// stderr, the sessions that come and go (see [`worth_showing`]).
async fn follow(
    out: &Output,
    server: &str,
    mesh: &JoinedMesh,
    config_dir: &Path,
    verbose: bool,
) -> CliResult<()> {
    let mut interrupt = Interrupt::listen()?;
    let mut session = MeshSession::connect(server, mesh, SessionKind::Follower).await?;
    let me = session.client.welcome().member_id.clone();
    let mut shown = shown_sessions(&session.client.welcome().peers, &me, verbose);
    out.success(format!(
        "Connected to {} as {}; waiting for messages (Ctrl-C to stop)",
        mesh.slug,
        session::presence_name(&mesh.display_name)
    ));
    loop {
        let event = tokio::select! {
            event = session.client.next_event() => event,
            () = interrupt.recv() => {
                for message in session.close_collecting().await {
                    let request = relay::take_request(&message, server, mesh, config_dir);
                    if !print(out, &message, request.as_ref()) {
                        break;
                    }
                }
                out.line(format!("Stopped listening to {}.", mesh.slug));
                return Ok(());
            }
        };
        match event {
            Some(Event::Message(message)) => {
                let request = relay::take_request(&message, server, mesh, config_dir);
                if relay::is_request(&message) {
                    // Shown (and, when ours, kept for `approve`): the client
                    // leaves requests for us to acknowledge.
                    let _ = session.client.ack(vec![message.id.clone()]);
                }
                if !print(out, &message, request.as_ref()) {
                    // Nothing reads stdout any more (`| head -1`): done.
                    session.close(out).await;
                    return Ok(());
                }
            }
            Some(Event::PeerJoined(peer)) if worth_showing(&peer, &me, verbose) => {
                out.change(
                    Mark::Added,
                    format!("{} connected{}", who(&peer, &me), role_of(&peer)),
                );
                shown.insert(peer.session_key.clone(), who(&peer, &me));
            }
            Some(Event::PeerJoined(_)) => {}
            Some(Event::PeerLeft(session_key)) => {
                if let Some(name) = shown.remove(&session_key) {
                    out.change(Mark::Removed, format!("{name} left"));
                }
            }
            Some(Event::PeerUpdated(peer)) => {
                let summary = session::printable(&peer.summary).replace('\n', " ");
                let summary = if summary.is_empty() {
                    String::new()
                } else {
                    format!(": {summary}")
                };
                out.change(
                    Mark::Changed,
                    format!("{} is {}{summary}", who(&peer, &me), peer.status.as_str()),
                );
            }
            Some(Event::Rejected { reason, .. }) => out.warn(rejected(&reason)),
            Some(Event::Closed {
                code: Some(BrokerErrorCode::AttestationExpired),
                ..
            }) => {
                // The broker holds a session to its attestation: attest the
                // same session key again and carry on.
                session = session.reconnect().await?;
                shown = shown_sessions(&session.client.welcome().peers, &me, verbose);
            }
            Some(Event::Closed { code, message }) => return Err(session.closed(code, &message)),
            None => return Err(session.closed(None, "")),
        }
    }
}

/// Whether a session's coming and going is worth a line: long-lived ones
/// (a launched Claude Code, another `inbox --follow`) are; one-off commands
/// (`peers`, `send`, `inbox`) are plumbing, shown only with `--verbose`, and
/// never one's own.
fn worth_showing(peer: &Peer, me: &str, verbose: bool) -> bool {
    peer.role != session::ONE_OFF_ROLE || (verbose && peer.member_id != me)
}

/// The sessions whose leaving will be shown, by session key, with the name
/// to show.
fn shown_sessions(peers: &[Peer], me: &str, verbose: bool) -> HashMap<String, String> {
    peers
        .iter()
        .filter(|p| worth_showing(p, me, verbose))
        .map(|p| (p.session_key.clone(), who(p, me)))
        .collect()
}

/// A session's name, `(you)` for one of your own.
fn who(peer: &Peer, me: &str) -> String {
    if peer.member_id == me {
        format!("{} (you)", peer.display_name)
    } else {
        peer.display_name.clone()
    }
}

fn role_of(peer: &Peer) -> String {
    if peer.role.is_empty() {
        String::new()
    } else {
        format!(" ({})", peer.role)
    }
}

fn rejected(reason: &str) -> String {
    format!("Dropped a message that failed its checks: {reason}")
}

/// Prints one message on stdout as it comes (a JSON line with `--json`);
/// false once stdout is gone.
fn print(out: &Output, message: &Received, request: Option<&Pending>) -> bool {
    let text = if out.json {
        match serde_json::to_string(&with_request(message, request)) {
            Ok(line) => format!("{line}\n"),
            Err(_) => return true,
        }
    } else {
        shown(message, request)
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).is_ok() && stdout.flush().is_ok()
}

/// A message as `--json` prints it, with the permission request it carries.
fn with_request<'a>(message: &'a Received, request: Option<&Pending>) -> MessageJson<'a> {
    let mut json = MessageJson::from(message);
    json.permission_request = request.map(relay::json);
    json
}

/// A message for people: a permission request as [`relay::render`] shows
/// it (with the commands that answer it), anything else as a [`block`].
fn shown(message: &Received, request: Option<&Pending>) -> String {
    match request {
        Some(pending) => relay::render(pending),
        None => block(message),
    }
}

/// A message for people:
///
/// ```text
/// 2026-11-23 19:05 UTC  Bob → @ops  [now]
///   the deploy is done
/// ```
fn block(message: &Received) -> String {
    let at = when::parse(&message.sent_at).map_or_else(|| message.sent_at.clone(), when::date);
    let mut text = format!(
        "{at}  {} → {}  [{}]\n",
        message.from.display_name,
        session::addressee(message),
        message.priority.as_str()
    );
    for line in session::printable(&message.text).lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use claudemesh_api::broker::{Attestation, Sender};

    fn received(kind: MessageKind, group: Option<&str>, text: &str) -> Received {
        Received {
            id: "msg_1".into(),
            from: Sender {
                session_key: "a".repeat(64),
                member_id: "mem_bob".into(),
                member_key: "b".repeat(64),
                display_name: "Bob".into(),
                attestation: Attestation {
                    expires_at: 0,
                    signature: String::new(),
                    rights: None,
                },
            },
            kind,
            group: group.map(str::to_owned),
            priority: Priority::Now,
            sent_at: "2026-11-23T19:05:33Z".into(),
            sealed_at: None,
            text: text.into(),
        }
    }

    #[test]
    fn a_message_reads_when_who_to_whom_and_what() {
        assert_eq!(
            block(&received(
                MessageKind::Group,
                Some("ops"),
                "done\nreally\u{1b}[2J"
            )),
            "2026-11-23 19:05 UTC  Bob → @ops  [now]\n  done\n  really\\u{1b}[2J\n"
        );
        assert_eq!(
            block(&received(MessageKind::Direct, None, "hi")),
            "2026-11-23 19:05 UTC  Bob → you  [now]\n  hi\n"
        );
        assert!(block(&received(MessageKind::Broadcast, None, "x")).contains("Bob → everyone"));
    }

    #[test]
    fn the_json_of_a_message_has_no_keys_or_signatures_beyond_the_sender() {
        let message = received(MessageKind::Group, Some("ops"), "hi");
        let json = serde_json::to_value(MessageJson::from(&message)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "msg_1",
                "from": {
                    "display_name": "Bob",
                    "member_id": "mem_bob",
                    "session_key": "a".repeat(64),
                },
                "kind": "group",
                "group": "ops",
                "priority": "now",
                "sent_at": "2026-11-23T19:05:33Z",
                "text": "hi",
            })
        );
    }
}
