//! `claudemesh stream subscribe [--mesh S] [--events …] [--json]`: what
//! happens in a mesh, one line an event, for scripts and dashboards, until
//! Ctrl-C, SIGTERM or a closed stdout (all exit 0).
//!
//! Two sources, each used only when an event asked for needs it:
//!
//! - the broker, as an **observer** (`hello.observer`, see
//!   `docs/protocol.md`): presence (sessions joining and leaving), status
//!   and summary changes, and the messages sealed for this machine's member
//!   key, opened here. The observer is in no peer list or count and sends
//!   nothing; it never acknowledges a message, so a message shown here
//!   still reaches the member's own sessions.
//! - the mesh log's Server-Sent Events (the same follow as `log tail
//!   --follow`, resumed without gaps): the broker would have to learn to
//!   carry log entries, while the API already serves them to members, from
//!   any instance, within a second.

use crate::base::closed_stdout;
use crate::base::exit::{CliError, CliResult};
use crate::base::output::Output;
use crate::base::when;
use crate::cli::{StreamCommand, StreamSubscribeArgs};
use crate::commands::{mesh_log, relay};
use crate::context::{Account, Context};
use crate::session::{self, Interrupt, MeshSession, SessionKind};
use crate::stores::config_store::JoinedMesh;
use crate::stores::permission_requests::Pending;
use claudemesh_api::Slug;
use claudemesh_api::broker::{BrokerErrorCode, MessageKind, Peer, PeerStatus, Priority};
use claudemesh_api::wire::LogEntry;
use claudemesh_client::{Event, Received};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;

pub fn run(command: &StreamCommand, ctx: &Context) -> CliResult<()> {
    match command {
        StreamCommand::Subscribe(args) => subscribe(args, ctx),
    }
}

/// The kinds of event a subscriber may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Sessions joining and leaving (and those present at the start).
    Presence,
    Status,
    Summary,
    /// Messages addressed to this member, opened on this machine.
    Messages,
    /// Entries of the mesh log.
    Log,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        Self::Presence,
        Self::Status,
        Self::Summary,
        Self::Messages,
        Self::Log,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Presence => "presence",
            Self::Status => "status",
            Self::Summary => "summary",
            Self::Messages => "messages",
            Self::Log => "log",
        }
    }

    fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// Whether the broker is needed for this kind.
    fn needs_broker(self) -> bool {
        self != Self::Log
    }
}

/// `--events presence,log`: the kinds named (all when absent); an unknown
/// or missing name is exit 3, naming the valid ones.
pub fn parse_events(text: Option<&str>) -> CliResult<BTreeSet<EventKind>> {
    let Some(text) = text else {
        return Ok(EventKind::ALL.into_iter().collect());
    };
    let mut kinds = BTreeSet::new();
    for word in text.split(',').map(str::trim) {
        let kind = EventKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
            .ok_or_else(|| {
                let what = if word.is_empty() {
                    "An empty event name in --events".to_owned()
                } else {
                    format!("Unknown event `{word}` in --events")
                };
                CliError::invalid_args(what).with_hint(format!(
                    "The events are {}, separated by commas (e.g. --events presence,messages).",
                    EventKind::names()
                ))
            })?;
        kinds.insert(kind);
    }
    Ok(kinds)
}

fn subscribe(args: &StreamSubscribeArgs, ctx: &Context) -> CliResult<()> {
    // Bad input is refused before any network call.
    let events = parse_events(args.events.as_deref())?;
    let (account, mesh) = session::account_and_mesh(ctx, args.mesh.as_deref(), "stream subscribe")?;
    let runtime = session::runtime()?;
    runtime.block_on(watch(&ctx.out, &account, &mesh, &events, &ctx.config_dir))
}

/// One event on stdout, as `--json` or as text.
#[derive(Serialize)]
struct Line<'a> {
    event: EventKind,
    mesh: &'a str,
    /// When this machine saw it (RFC 3339).
    at: String,
    #[serde(flatten)]
    what: What<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum What<'a> {
    Presence {
        /// `here` (connected when the subscription began), `joined`, `left`.
        change: &'static str,
        peer: PeerJson<'a>,
    },
    Status {
        peer: PeerJson<'a>,
        status: PeerStatus,
        was: PeerStatus,
    },
    Summary {
        peer: PeerJson<'a>,
        summary: &'a str,
        was: &'a str,
    },
    Message {
        message: MessageJson<'a>,
        /// When the message is a permission request of one of this
        /// member's sessions: what `approve` answers (as `inbox --json`).
        #[serde(skip_serializing_if = "Option::is_none")]
        permission_request: Option<serde_json::Value>,
        #[serde(skip)]
        pending: Option<Box<Pending>>,
    },
    Log {
        entry: &'a LogEntry,
    },
}

#[derive(Serialize)]
struct PeerJson<'a> {
    session_key: &'a str,
    member_id: &'a str,
    display_name: &'a str,
    role: &'a str,
    groups: &'a [String],
    status: PeerStatus,
    summary: &'a str,
    connected_at: &'a str,
}

impl<'a> From<&'a Peer> for PeerJson<'a> {
    fn from(peer: &'a Peer) -> Self {
        Self {
            session_key: &peer.session_key,
            member_id: &peer.member_id,
            display_name: &peer.display_name,
            role: &peer.role,
            groups: &peer.groups,
            status: peer.status,
            summary: &peer.summary,
            connected_at: &peer.connected_at,
        }
    }
}

/// A message as `--json` prints it: as `inbox --follow --json` does.
#[derive(Serialize)]
struct MessageJson<'a> {
    id: &'a str,
    from: FromJson<'a>,
    /// How it was addressed; a kind this build does not know is printed as
    /// the broker named it.
    kind: MessageKind,
    group: Option<&'a str>,
    priority: Priority,
    sent_at: &'a str,
    text: &'a str,
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
        }
    }
}

/// Writes lines to stdout; remembers once it is closed.
struct Printer<'a> {
    out: &'a Output,
    mesh: &'a str,
    open: bool,
}

impl Printer<'_> {
    /// Prints one event; false once stdout is gone (`| head`).
    fn print(&mut self, event: EventKind, what: What<'_>) -> bool {
        if !self.open {
            return false;
        }
        let line = Line {
            event,
            mesh: self.mesh,
            at: when::now_rfc3339(),
            what,
        };
        let text = if self.out.json {
            match serde_json::to_string(&line) {
                Ok(text) => text,
                Err(_) => return true,
            }
        } else {
            text_line(&line)
        };
        let mut stdout = std::io::stdout().lock();
        self.open = writeln!(stdout, "{text}")
            .and_then(|()| stdout.flush())
            .is_ok();
        self.open
    }
}

/// `Ben (reviewer)`: a session's name for people.
fn name(peer: &PeerJson<'_>) -> String {
    if peer.role.is_empty() {
        peer.display_name.to_owned()
    } else {
        format!("{} ({})", peer.display_name, peer.role)
    }
}

/// One event for people: `presence  Ben (reviewer) joined`.
fn text_line(line: &Line<'_>) -> String {
    let what = match &line.what {
        What::Presence { change, peer } => {
            let change = match *change {
                "here" => "is here",
                other => other,
            };
            format!("{} {change}", name(peer))
        }
        What::Status { peer, status, .. } => {
            format!("{} is {}", name(peer), status.as_str())
        }
        What::Summary { peer, summary, .. } => {
            let summary = session::printable(summary).replace('\n', " ");
            if summary.is_empty() {
                format!("{} cleared their summary", name(peer))
            } else {
                format!("{}: {summary}", name(peer))
            }
        }
        What::Message {
            pending: Some(pending),
            ..
        } => relay::render(pending).replace('\n', "\n          "),
        What::Message { message, .. } => {
            // The kind as the broker named it, whatever it is, so a kind
            // added later still reads as one.
            let to = match (message.kind, message.group) {
                (MessageKind::Group, Some(group)) => format!("@{group}"),
                (MessageKind::Broadcast, _) => "everyone".to_owned(),
                _ => "you".to_owned(),
            };
            format!(
                "{} → {to} [{}, {}]: {}",
                message.from.display_name,
                message.kind.as_str(),
                message.priority.as_str(),
                session::printable(message.text).replace('\n', " ")
            )
        }
        What::Log { entry } => mesh_log::text_line(entry),
    };
    format!("{:<9} {what}", line.event.as_str())
}

/// Everything the broker and the log have to say, until stopped.
async fn watch(
    out: &Output,
    account: &Account,
    mesh: &JoinedMesh,
    events: &BTreeSet<EventKind>,
    config_dir: &Path,
) -> CliResult<()> {
    let mut interrupt = Interrupt::listen()?;
    let mut terminate = Terminate::listen()?;
    let wants = |kind: EventKind| events.contains(&kind);
    // The log first: it starts at the head as it is now, so nothing that
    // happens from here on (this subscriber's own connection included) is
    // missed.
    let mut log = if wants(EventKind::Log) {
        let slug = Slug::parse(&mesh.slug)
            .map_err(|err| CliError::failure(format!("A joined mesh's slug: {err}")))?;
        let head = account
            .api
            .mesh_log(
                &slug,
                &crate::api::LogRead {
                    limit: Some(1),
                    ..crate::api::LogRead::default()
                },
            )
            .map_err(|err| err.into_cli(&account.server))?;
        Some(mesh_log::spawn_follower(account, &slug, head.cursor, None))
    } else {
        None
    };
    let mut broker = if events.iter().any(|k| k.needs_broker()) {
        Some(MeshSession::connect(&account.server, mesh, SessionKind::Observer).await?)
    } else {
        None
    };
    // Every session as last heard, to tell a status change from a summary change.
    let mut known: HashMap<String, Peer> = HashMap::new();
    let mut printer = Printer {
        out,
        mesh: &mesh.slug,
        open: true,
    };
    out.success(format!(
        "Watching {} ({}); Ctrl-C to stop",
        mesh.slug,
        events
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let Some(session) = &broker {
        for peer in &session.client.welcome().peers {
            known.insert(peer.session_key.clone(), peer.clone());
            if wants(EventKind::Presence)
                && !printer.print(
                    EventKind::Presence,
                    What::Presence {
                        change: "here",
                        peer: peer.into(),
                    },
                )
            {
                return Ok(());
            }
        }
    }
    let stdout_closed = closed_stdout::closed();
    tokio::pin!(stdout_closed);
    loop {
        tokio::select! {
            event = next_event(broker.as_ref()) => {
                match event {
                    Some(Event::Closed { code: Some(BrokerErrorCode::AttestationExpired), .. }) => {
                        // Attest the same session key again and carry on.
                        if let Some(session) = broker.take() {
                            broker = Some(session.reconnect().await?);
                        }
                    }
                    Some(Event::Closed { code, message }) => {
                        return Err(match &broker {
                            Some(session) => session.closed(code, &message),
                            None => CliError::broker_closed(code, &message, &mesh.slug),
                        });
                    }
                    None => return Err(CliError::broker_closed(None, "", &mesh.slug)),
                    Some(event) => {
                        // A permission request is kept for `approve` as
                        // `inbox` keeps it (an observer acknowledges
                        // nothing: the member's sessions still get it).
                        let take = |message: &Received| {
                            relay::take_request(message, &account.server, mesh, config_dir)
                        };
                        if !on_broker_event(&mut printer, &mut known, events, event, &take) {
                            break;
                        }
                    }
                }
            }
            next = next_entry(log.as_mut()) => match next {
                Some(Ok(entry)) => {
                    if !printer.print(EventKind::Log, What::Log { entry: &entry }) {
                        break;
                    }
                }
                Some(Err(err)) => return Err(err),
                None => log = None,
            },
            () = interrupt.recv() => break,
            () = terminate.recv() => break,
            // `| head -3` is done: stop now, not at the next event.
            () = &mut stdout_closed => break,
        }
    }
    if let Some(session) = broker {
        // An observer acknowledges nothing: closing is only polite.
        session.client.close();
    }
    Ok(())
}

/// The broker's next event; never, without a broker.
async fn next_event(broker: Option<&MeshSession<'_>>) -> Option<Event> {
    match broker {
        Some(session) => session.client.next_event().await,
        None => std::future::pending().await,
    }
}

/// The log's next entry; never, without a log.
async fn next_entry(
    log: Option<&mut tokio::sync::mpsc::Receiver<Result<LogEntry, CliError>>>,
) -> Option<Result<LogEntry, CliError>> {
    match log {
        Some(entries) => entries.recv().await,
        None => std::future::pending().await,
    }
}

/// Prints what one broker event means for the kinds asked for; false once
/// stdout is gone.
fn on_broker_event(
    printer: &mut Printer<'_>,
    known: &mut HashMap<String, Peer>,
    events: &BTreeSet<EventKind>,
    event: Event,
    take_request: &dyn Fn(&Received) -> Option<Pending>,
) -> bool {
    let wants = |kind: EventKind| events.contains(&kind);
    match event {
        Event::PeerJoined(peer) => {
            known.insert(peer.session_key.clone(), peer.clone());
            !wants(EventKind::Presence)
                || printer.print(
                    EventKind::Presence,
                    What::Presence {
                        change: "joined",
                        peer: (&peer).into(),
                    },
                )
        }
        Event::PeerLeft(session_key) => {
            let peer = known.remove(&session_key).unwrap_or_else(|| Peer {
                session_key: session_key.clone(),
                member_id: String::new(),
                member_key: String::new(),
                display_name: String::new(),
                role: String::new(),
                groups: Vec::new(),
                status: PeerStatus::Idle,
                summary: String::new(),
                connected_at: String::new(),
            });
            !wants(EventKind::Presence)
                || printer.print(
                    EventKind::Presence,
                    What::Presence {
                        change: "left",
                        peer: (&peer).into(),
                    },
                )
        }
        Event::PeerUpdated(peer) => {
            let was = known.insert(peer.session_key.clone(), peer.clone());
            let (was_status, was_summary) = was
                .as_ref()
                .map_or((PeerStatus::Idle, ""), |p| (p.status, p.summary.as_str()));
            if wants(EventKind::Status)
                && was_status != peer.status
                && !printer.print(
                    EventKind::Status,
                    What::Status {
                        peer: (&peer).into(),
                        status: peer.status,
                        was: was_status,
                    },
                )
            {
                return false;
            }
            if wants(EventKind::Summary)
                && was_summary != peer.summary
                && !printer.print(
                    EventKind::Summary,
                    What::Summary {
                        peer: (&peer).into(),
                        summary: &peer.summary,
                        was: was_summary,
                    },
                )
            {
                return false;
            }
            true
        }
        Event::Message(message) => {
            if !wants(EventKind::Messages) {
                return true;
            }
            let pending = take_request(&message);
            printer.print(
                EventKind::Messages,
                What::Message {
                    message: (&message).into(),
                    permission_request: pending.as_ref().map(relay::json),
                    pending: pending.map(Box::new),
                },
            )
        }
        Event::Rejected { reason, .. } => {
            printer.out.warn(format!(
                "Dropped a message that failed its checks: {reason}"
            ));
            true
        }
        // Handled by the caller.
        Event::Closed { .. } => true,
    }
}

/// SIGTERM, listened for from the start (a service manager stopping a
/// dashboard's feed ends it as Ctrl-C does, exit 0).
struct Terminate {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Terminate {
    fn listen() -> CliResult<Self> {
        #[cfg(unix)]
        {
            let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|err| CliError::failure(format!("Could not listen for SIGTERM: {err}")))?;
            Ok(Self { signal })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if self.signal.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::exit::Exit;

    #[test]
    fn events_are_named_or_all_and_an_unknown_one_lists_the_valid_ones() {
        assert_eq!(parse_events(None).unwrap().len(), 5);
        assert_eq!(
            parse_events(Some("log, Presence,log")).unwrap(),
            [EventKind::Presence, EventKind::Log].into_iter().collect()
        );
        let err = parse_events(Some("presence,typing")).unwrap_err();
        assert_eq!(err.exit, Exit::InvalidArgs);
        assert_eq!(err.message, "Unknown event `typing` in --events");
        assert!(
            err.hint
                .unwrap()
                .contains("presence, status, summary, messages, log")
        );
        assert_eq!(
            parse_events(Some("presence,")).unwrap_err().message,
            "An empty event name in --events"
        );
    }

    #[test]
    fn a_line_names_its_event_mesh_and_time() {
        let peer = Peer {
            session_key: "a".repeat(64),
            member_id: "mem_b".into(),
            member_key: "b".repeat(64),
            display_name: "Ben".into(),
            role: "reviewer".into(),
            groups: vec![],
            status: PeerStatus::Working,
            summary: String::new(),
            connected_at: "2026-12-07T06:00:00Z".into(),
        };
        let line = Line {
            event: EventKind::Status,
            mesh: "dev",
            at: "2026-12-07T06:00:01Z".into(),
            what: What::Status {
                peer: (&peer).into(),
                status: PeerStatus::Working,
                was: PeerStatus::Idle,
            },
        };
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["event"], "status");
        assert_eq!(json["mesh"], "dev");
        assert_eq!(json["status"], "working");
        assert_eq!(json["was"], "idle");
        assert_eq!(json["peer"]["display_name"], "Ben");
        assert_eq!(text_line(&line), "status    Ben (reviewer) is working");
    }
}
