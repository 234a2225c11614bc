//! One WebSocket: challenge, hello, then the session's frames until it
//! closes, goes silent, or its membership ends.
//!
//! A frame that does not parse, or any frame before the hello, gets an
//! error frame and a close (1008); a well-formed request the broker cannot
//! honour (rate, size, an unknown recipient) gets an error frame carrying
//! its `req`, and the session goes on.

use super::bus::BusEvent;
use super::hub::{CONN_QUEUE, ConnEvent, ConnHandle, Stage, frame};
use super::service::Broker;
use super::socket::{
    CloseCode, CloseFrame, Error as SocketError, Message, Socket, Upgrade, Utf8Bytes,
    WebSocketConfig,
};
use super::store::{self, NewMessage};
use super::writer::Stored;
use crate::db::ids::new_id;
use crate::meshes::log::LogEvent;
use crate::metrics::METRICS;
use axum::extract::State;
use axum::response::Response;
use claudemesh_api::backoff::Backoff;
use claudemesh_api::broker::SessionRight;
use claudemesh_api::broker::{
    BrokerErrorCode as Code, ClientFrame, Hello, MAX_ATTESTATION_MS, MAX_FRAME_BYTES, MAX_GROUPS,
    MAX_MESSAGE_BYTES, MAX_SUMMARY_CHARS, MessageKind, Peer, PeerStatus, SendRequest, Sender,
    ServerFrame, Welcome, is_clean_label, is_client_message_id, is_group_name, is_key_hex,
};
use claudemesh_api::e2e;
use claudemesh_api::mesh_log::LogKind;
use claudemesh_api::sealed::MAX_HEADER_BYTES;
use claudemesh_api::wire::Capability;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Time allowed between the challenge and the hello.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// Clock skew tolerated on an attestation's 24-hour bound.
const SKEW_MS: i64 = 5 * 60 * 1000;
/// Waiting messages sent per backlog read.
const BACKLOG_BATCH: i64 = 500;
/// Ids per `ack` frame, at most.
const MAX_ACK_IDS: usize = 1000;

/// How long a closing connection waits for the client's close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

const OBSERVER_SENDS_NOTHING: &str =
    "This session is an observer: it sends nothing and has no status or summary";

const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_GOING_AWAY: u16 = 1001;

/// A refusal: the error frame, then a close with this code.
struct Refusal {
    code: Code,
    message: String,
    close: u16,
}

fn refuse(code: Code, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        close: CLOSE_POLICY,
    }
}

/// Upgrades to a WebSocket and hands the socket to its connection task.
pub async fn upgrade(State(broker): State<Broker>, upgrade: Upgrade) -> Response {
    let config = WebSocketConfig::default()
        // Read past the protocol's limit, so an oversized frame gets a
        // proper error frame before the close; far beyond it, the socket
        // layer itself refuses.
        .max_message_size(Some(4 * claudemesh_api::broker::MAX_FRAME_BYTES))
        .max_frame_size(Some(4 * claudemesh_api::broker::MAX_FRAME_BYTES))
        // Small buffers: most sessions are idle most of the time, and both
        // keep the capacity they reach (measured with heaptrack on 5,000
        // idle sessions: 4 KiB to read, 7.6 KiB to write, per session, with
        // 4 and 8 KiB here). A larger frame read grows the read buffer for
        // as long as it needs; no frame written is larger than a fragment
        // (`socket.rs`), and frames are written once a fragment's worth is
        // queued: the buffer then holds at most two fragments, where with
        // 4 KiB here the welcome's third fragment doubled it to 8 KiB.
        .read_buffer_size(1024)
        .write_buffer_size(super::socket::FRAGMENT);
    upgrade.on_upgrade(config, move |socket| serve(socket, broker))
}

/// One connection, from the challenge to the departure.
///
/// Every idle session is this future, parked in `run`'s loop, and a future
/// is as large as its largest state: the handshake and the handling of a
/// frame go in boxes of their own, so an idle session does not keep their
/// room (measured: 5.4 KiB a session before, see bench/README.md).
pub async fn serve(mut socket: Socket, broker: Broker) {
    let Some((mut session, rx)) = Box::pin(open(&mut socket, &broker)).await else {
        return;
    };
    run(&mut socket, &broker, &mut session, rx).await;
    Box::pin(depart(&broker, &session)).await;
}

/// The challenge, the hello and the welcome: the admitted session, or
/// `None` once the connection is closed.
async fn open(
    socket: &mut Socket,
    broker: &Broker,
) -> Option<(Session, mpsc::Receiver<ConnEvent>)> {
    let challenge = data_encoding::HEXLOWER.encode(&random_bytes());
    let opening = ServerFrame::Challenge {
        version: claudemesh_api::broker::PROTOCOL_VERSION,
        challenge: challenge.clone(),
    };
    send(socket, &opening).await.ok()?;
    let hello = match tokio::time::timeout(HELLO_WITHIN, read_hello(socket)).await {
        Ok(Ok(Some(hello))) => hello,
        Ok(Ok(None)) => return None,
        Ok(Err(refusal)) => {
            close(socket, None, refusal).await;
            return None;
        }
        Err(_) => {
            let refusal = refuse(Code::HandshakeTimeout, "No hello within 10 seconds");
            close(socket, None, refusal).await;
            return None;
        }
    };
    let (mut session, rx) = match admit(broker, &challenge, hello).await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            close(socket, None, refusal).await;
            return None;
        }
    };
    let welcome = session.welcome.take();
    let welcomed = match welcome {
        Some(welcome) => send(socket, &ServerFrame::Welcome(welcome)).await.is_ok(),
        None => false,
    };
    if !welcomed {
        // Admitted, so recorded: it leaves as any session does.
        depart(broker, &session).await;
        return None;
    }
    Some((session, rx))
}

#[expect(
    clippy::expect_used,
    reason = "no randomness from the OS: nothing secure can be made, so stop"
)]
fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

async fn send(socket: &mut Socket, frame: &ServerFrame) -> Result<(), SocketError> {
    socket.send(Message::Text(super::hub::frame(frame))).await
}

async fn close(socket: &mut Socket, req: Option<u64>, refusal: Refusal) {
    if refusal.close != CLOSE_GOING_AWAY {
        METRICS.refusal(refusal.code.as_str());
    }
    let _ = send(
        socket,
        &ServerFrame::error(req, refusal.code, &refusal.message),
    )
    .await;
    let reason: String = refusal.code.as_str().to_owned();
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(refusal.close),
            reason: Utf8Bytes::from(reason),
        })))
        .await;
    // Read until the client's own close (briefly): dropping a socket with
    // unread frames (acks in flight) makes TCP reset the connection, and
    // the client would lose the error and the frames before it.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Parses a text frame, refusing one that is too large or malformed.
fn parse(text: &str) -> Result<ClientFrame, Refusal> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(Refusal {
            code: Code::FrameTooLarge,
            message: format!("Frames are at most {MAX_FRAME_BYTES} bytes"),
            close: CLOSE_TOO_BIG,
        });
    }
    serde_json::from_str(text).map_err(|err| refuse(Code::BadFrame, format!("Bad frame: {err}")))
}

/// The first frame that matters: a hello, or a refusal. `None` when the
/// client went away.
async fn read_hello(socket: &mut Socket) -> Result<Option<Hello>, Refusal> {
    loop {
        match socket.recv().await {
            Some(Ok(Message::Text(text))) => {
                return match parse(&text)? {
                    ClientFrame::Hello(hello) => Ok(Some(hello)),
                    _ => Err(refuse(Code::HelloRequired, "Say hello first")),
                };
            }
            Some(Ok(Message::Binary(_))) => {
                return Err(refuse(Code::BadFrame, "Frames are JSON text"));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(None),
        }
    }
}

/// A connected session: what the connection task keeps.
struct Session {
    conn_id: String,
    mesh_id: String,
    member_id: String,
    peer: Peer,
    attestation: claudemesh_api::broker::Attestation,
    /// Messages sent on this connection and not yet acknowledged.
    unacked: HashSet<String>,
    /// Messages sent on this connection before their commit: their commit's
    /// news then sends nothing again.
    early: HashSet<String>,
    /// The last backlog read was full: read again once these are acked.
    more_waiting: bool,
    /// The last backlog read failed: when to read again (see
    /// [`BacklogRetry`]).
    backlog_retry: Option<BacklogRetry>,
    handle: Arc<ConnHandle>,
    welcome: Option<Welcome>,
    /// Watches and sends nothing (`hello.observer`): see
    /// [`Hub::reserve_observer`](super::hub::Hub::reserve_observer).
    observer: bool,
}

impl Session {
    fn keys(&self) -> [&str; 2] {
        [&self.peer.session_key, &self.peer.member_key]
    }
}

/// Checks a hello, records the session and registers its connection.
async fn admit(
    broker: &Broker,
    challenge: &str,
    hello: Hello,
) -> Result<(Session, mpsc::Receiver<ConnEvent>), Refusal> {
    if hello.version != claudemesh_api::broker::PROTOCOL_VERSION {
        return Err(refuse(
            Code::UnsupportedVersion,
            format!(
                "This broker speaks protocol version {}",
                claudemesh_api::broker::PROTOCOL_VERSION
            ),
        ));
    }
    check_hello_fields(&hello)?;
    let signed = e2e::hello_bytes(challenge, &hello.mesh_id, &hello.session_key);
    if !e2e::verify(&hello.session_key, &signed, &hello.signature) {
        return Err(refuse(
            Code::BadSignature,
            "The session key did not sign this connection's challenge",
        ));
    }
    let now = broker.now();
    let expires_at = hello.attestation.expires_at;
    if expires_at <= now {
        return Err(refuse(
            Code::AttestationExpired,
            "The session's attestation has expired",
        ));
    }
    if expires_at > now + MAX_ATTESTATION_MS + SKEW_MS {
        return Err(refuse(
            Code::BadAttestation,
            "An attestation may expire at most 24 hours ahead",
        ));
    }
    let attested = e2e::attestation_bytes_for(
        &hello.mesh_id,
        &hello.session_key,
        expires_at,
        hello.attestation.rights.as_deref(),
    );
    if !e2e::verify(&hello.member_key, &attested, &hello.attestation.signature) {
        return Err(refuse(
            Code::BadAttestation,
            "The member key did not attest this session key for this mesh",
        ));
    }
    let internal = |err: sqlx::Error| {
        tracing::error!(error = %err, "broker: hello failed");
        refuse(Code::Internal, "The broker could not check this session")
    };
    // From here the admission reads and writes the database: a few at a
    // time (see `MAX_ADMITTING`), the others waiting here.
    let _admitting = broker
        .admitting
        .acquire()
        .await
        // (Never closed: this cannot happen.)
        .map_err(|_| refuse(Code::Internal, "The broker is shutting down"))?;
    let membership = store::membership_of_key(
        &broker.pool,
        &hello.mesh_id,
        &hello.member_key,
        &hello.session_key,
    )
    .await
    .map_err(internal)?
    .ok_or_else(|| {
        refuse(
            Code::NotAMember,
            "This key belongs to no current member of this mesh",
        )
    })?;
    if membership.archived_at.is_some() {
        return Err(refuse(
            Code::MeshArchived,
            "This mesh is archived; an admin can unarchive it",
        ));
    }
    let limits = store::SessionLimits {
        in_mesh: i64::from(broker.settings.max_peers),
        of_member: i64::from(broker.settings.max_connections_per_member),
    };
    // An observer is in no table, so it counts for nothing in the mesh; it
    // is bounded per member on this instance instead, by the same limit as
    // a member's sessions.
    let observer_slot = if hello.observer {
        let limit = usize::try_from(limits.of_member).unwrap_or(usize::MAX);
        let slot = broker.hub.reserve_observer(&membership.member_id, limit);
        Some(slot.ok_or_else(|| over_limit(limits, 0))?)
    } else {
        // Refused early on the counts read with the membership; the row
        // is written only while under the limits (see below).
        let (in_mesh, of_member) = (membership.sessions_in_mesh, membership.sessions_of_member);
        if in_mesh >= limits.in_mesh || of_member >= limits.of_member {
            return Err(over_limit(limits, in_mesh));
        }
        None
    };
    let conn_id = new_id("conn");
    let peer = peer_of(&hello, &membership.member_id, now);
    // Before the session's row: a failure here leaves nothing to undo.
    store::touch_last_seen(&broker.pool, &membership.member_id, now)
        .await
        .map_err(internal)?;
    if !hello.observer {
        let session = store::NewSession {
            mesh_id: &hello.mesh_id,
            peer: &peer,
            connected_at: now,
            instance_id: &broker.instance_id,
            conn_id: &conn_id,
        };
        let recorded = store::insert_session_within(&broker.pool, broker.engine, &session, limits)
            .await
            .map_err(internal)?;
        if !recorded {
            // Others admitted meanwhile took the last places: which?
            let counted = store::membership_of_key(
                &broker.pool,
                &hello.mesh_id,
                &hello.member_key,
                &hello.session_key,
            )
            .await
            .map_err(internal)?;
            return Err(over_limit(
                limits,
                counted.map_or(0, |m| m.sessions_in_mesh),
            ));
        }
    }

    let (tx, rx) = mpsc::channel(CONN_QUEUE);
    let handle = Arc::new(ConnHandle {
        conn_id: conn_id.clone(),
        mesh_id: hello.mesh_id.clone(),
        member_id: membership.member_id.clone(),
        session_key: hello.session_key.clone(),
        member_key: hello.member_key.clone(),
        tx,
        observer: hello.observer,
        behind: AtomicBool::new(false),
    });
    let replaced = broker.hub.register(Arc::clone(&handle), observer_slot);
    METRICS.broker_sessions.inc();
    broker.log().push(
        &hello.mesh_id,
        now,
        LogEvent::new(LogKind::SessionConnected)
            .with("member_id", &membership.member_id)
            .with("display_name", &hello.display_name)
            .with("session_key", &hello.session_key)
            .with("session_role", &hello.role)
            .with("observer", if hello.observer { "true" } else { "" }),
    );
    // Other connections of this session key close (here and, through the
    // bus, on the other instances); the mesh hears of the new peer. Both
    // go to the other instances together (one statement on NOTIFY, one
    // flush on NATS).
    let mut events = Vec::with_capacity(2);
    if !replaced.is_empty() || broker.engine == crate::db::pool::Engine::Postgres {
        events.push(BusEvent::Kick {
            session_key: hello.session_key.clone(),
            conn_id: conn_id.clone(),
        });
    }
    if !hello.observer {
        events.push(BusEvent::Joined {
            mesh_id: hello.mesh_id.clone(),
            peer: peer.clone(),
        });
    }
    broker.publish_all(&events).await;
    let mut session = Session {
        conn_id,
        mesh_id: hello.mesh_id,
        member_id: membership.member_id,
        peer,
        attestation: hello.attestation,
        unacked: HashSet::new(),
        early: HashSet::new(),
        more_waiting: false,
        backlog_retry: None,
        handle,
        welcome: None,
        observer: hello.observer,
    };
    match welcome(broker, &session, membership.mesh_slug, membership.mesh_name).await {
        Ok(welcome) => session.welcome = Some(welcome),
        Err(err) => {
            // Registered, recorded and announced: it leaves as any
            // session does, or it would count against the limits for good.
            Box::pin(depart(broker, &session)).await;
            return Err(internal(err));
        }
    }
    Ok((session, rx))
}

/// What an admitted session is told first: the mesh's sessions and members
/// as it may see them.
async fn welcome(
    broker: &Broker,
    session: &Session,
    mesh_slug: String,
    mesh_name: String,
) -> Result<Welcome, sqlx::Error> {
    // Shared with the sessions of the mesh connecting at the same moment.
    let view = broker
        .welcome_reads
        .view(&broker.pool, &session.mesh_id)
        .await?;
    let peers = view
        .peers
        .iter()
        .filter(|p| p.session_key != session.peer.session_key)
        .cloned()
        .collect();
    let members = view.members.as_ref().clone();
    let (peers, members) = broker
        .view_for(&session.mesh_id, &session.member_id, peers, members)
        .await?;
    Ok(Welcome {
        mesh_id: session.mesh_id.clone(),
        mesh_slug,
        mesh_name,
        member_id: session.member_id.clone(),
        peers,
        members,
        limits: broker.settings.limits(),
        client_message_ids: true,
    })
}

/// The refusal of a session over `limits`: the mesh's first, then the
/// member's (also when the counts read after a refused write no longer say
/// so: a place taken, then freed, meanwhile).
fn over_limit(limits: store::SessionLimits, in_mesh: i64) -> Refusal {
    if in_mesh >= limits.in_mesh {
        refuse(
            Code::MeshFull,
            format!(
                "This mesh already has {} sessions connected",
                limits.in_mesh
            ),
        )
    } else {
        refuse(
            Code::TooManyConnections,
            format!(
                "You already have {} sessions connected in this mesh",
                limits.of_member
            ),
        )
    }
}

fn check_hello_fields(hello: &Hello) -> Result<(), Refusal> {
    let bad = |what: &str| Err(refuse(Code::BadFrame, format!("Bad hello: {what}")));
    if !is_key_hex(&hello.member_key) || !is_key_hex(&hello.session_key) {
        return bad("keys are ed25519 public keys, 64 lowercase hex characters");
    }
    if hello.member_key == hello.session_key {
        return bad("the session key must not be the member key");
    }
    if hello.mesh_id.is_empty() || hello.mesh_id.len() > 64 {
        return bad("mesh_id");
    }
    if !is_clean_label(&hello.display_name, false) {
        return bad("display_name must be 1 to 100 characters");
    }
    if !is_clean_label(&hello.role, true) {
        return bad("role must be at most 100 characters");
    }
    if hello.groups.len() > MAX_GROUPS || !hello.groups.iter().all(|g| is_group_name(g)) {
        return bad("groups: at most 20 names of a-z, 0-9, - and _");
    }
    if !clean_summary(&hello.summary) {
        return bad("summary must be at most 280 characters");
    }
    Ok(())
}

fn clean_summary(text: &str) -> bool {
    text.chars().count() <= MAX_SUMMARY_CHARS && !text.chars().any(|c| c.is_control() && c != '\n')
}

/// What the loop does after a frame.
enum Next {
    Continue,
    Close(Option<u64>, Refusal),
    /// The socket failed: end without a word.
    End,
}

async fn run(
    socket: &mut Socket,
    broker: &Broker,
    session: &mut Session,
    mut rx: mpsc::Receiver<ConnEvent>,
) {
    let mut shutdown = broker.shutdown.subscribe();
    // A shutdown that began before this subscription (between the welcome
    // and here, say) would not count as a change: count it.
    if *shutdown.borrow() {
        shutdown.mark_changed();
    }
    let mut ping = tokio::time::interval(broker.settings.ping_every);
    ping.tick().await;
    let mut last_heard = Instant::now();
    let mut next = if session.observer {
        Next::Continue
    } else {
        backlog(socket, broker, session).await
    };
    loop {
        match next {
            Next::Continue => {}
            Next::Close(req, refusal) => {
                Box::pin(close(socket, req, refusal)).await;
                return;
            }
            Next::End => return,
        }
        // An observer that fell behind has lost what did not fit its queue
        // (it reads no table); anyone else reads what waits for them. (Then
        // on to the queue: events arriving meanwhile may set `behind` again,
        // and only the queue's reader below makes room.)
        if session.handle.behind.swap(false, Ordering::AcqRel) && !session.observer {
            next = backlog(socket, broker, session).await;
            if !matches!(next, Next::Continue) {
                continue;
            }
        }
        if rx.is_empty() && socket.flush().await.is_err() {
            return;
        }
        let retry_at = session.backlog_retry.as_ref().map(|retry| retry.at);
        next = tokio::select! {
            incoming = socket.recv() => {
                last_heard = Instant::now();
                match incoming {
                    Some(Ok(Message::Text(text))) => match parse(&text) {
                        Ok(client_frame) => Box::pin(handle(socket, broker, session, client_frame)).await,
                        Err(refusal) => Next::Close(None, refusal),
                    },
                    Some(Ok(Message::Binary(_))) => {
                        Next::Close(None, refuse(Code::BadFrame, "Frames are JSON text"))
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Next::Continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                }
            }
            event = rx.recv() => match event {
                Some(ConnEvent::Frame(text)) => {
                    if socket.feed(Message::Text(text)).await.is_err() {
                        return;
                    }
                    Next::Continue
                }
                Some(ConnEvent::Deliver(envelope, stage)) => {
                    if deliver(socket, session, &envelope, stage).await.is_err() {
                        return;
                    }
                    Next::Continue
                }
                Some(ConnEvent::Backlog) if session.observer => Next::Continue,
                Some(ConnEvent::Backlog) => backlog(socket, broker, session).await,
                Some(ConnEvent::Close(code, message)) => Next::Close(None, refuse(code, message)),
                None => return,
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > broker.settings.silent_after {
                    tracing::debug!("broker: session silent; dropping it");
                    return;
                }
                if session.attestation.expires_at <= broker.now() {
                    Next::Close(None, refuse(Code::AttestationExpired, "The session's attestation has expired"))
                } else if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                } else {
                    Next::Continue
                }
            }
            () = until(retry_at) => {
                let failed = session.backlog_retry.take();
                read_backlog(socket, broker, session, failed).await
            }
            _ = shutdown.changed() => Next::Close(None, Refusal {
                code: Code::Internal,
                message: "The server is restarting; connect again".into(),
                close: CLOSE_GOING_AWAY,
            }),
        };
    }
}

/// Sends what waits in the table; says what the loop does next. While a
/// read that failed waits to be tried again (see [`BacklogRetry`]), this
/// reads nothing: that read will send everything. (Every session of the
/// instance is told to read when the bus has a gap, as it does every half
/// second while the database is down: they would all read together.)
async fn backlog(socket: &mut Socket, broker: &Broker, session: &mut Session) -> Next {
    if session.backlog_retry.is_some() {
        return Next::Continue;
    }
    read_backlog(socket, broker, session, None).await
}

/// Reads and sends what waits in the table now; a failed read is tried
/// again later, on this connection, after `failed` (the retry that just
/// came due, if this is one).
async fn read_backlog(
    socket: &mut Socket,
    broker: &Broker,
    session: &mut Session,
    failed: Option<BacklogRetry>,
) -> Next {
    match Box::pin(push_backlog(socket, broker, session)).await {
        Ok(()) => Next::Continue,
        Err(BacklogFailed::Unreadable) => {
            broker.backlog_read_failed();
            session.backlog_retry = Some(BacklogRetry::after(failed));
            Next::Continue
        }
        Err(BacklogFailed::Socket) => Next::End,
    }
}

/// Waits until `at`; forever when there is nothing to wait for.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// When a session whose waiting messages could not be read reads them
/// again. The connection stays: live messages still reach it, and closing
/// it would only bring its client back at once to a database that is still
/// failing (every session of the instance, when they were all woken to
/// read). The waits are the clients' reconnect backoff ([`Backoff`]: full
/// jitter, the ceiling doubling from [`BACKLOG_RETRY_FIRST`] to
/// [`BACKLOG_RETRY_MAX`]), so the sessions that failed together do not all
/// read again together.
struct BacklogRetry {
    at: tokio::time::Instant,
    backoff: Backoff,
}

const BACKLOG_RETRY_FIRST: Duration = Duration::from_secs(1);
const BACKLOG_RETRY_MAX: Duration = Duration::from_secs(30);

impl BacklogRetry {
    /// The retry after `failed` (the first, if none).
    fn after(failed: Option<Self>) -> Self {
        let mut backoff = failed.map_or_else(
            || Backoff::new(BACKLOG_RETRY_FIRST, BACKLOG_RETRY_MAX),
            |failed| failed.backoff,
        );
        Self {
            at: tokio::time::Instant::now() + backoff.next_wait(),
            backoff,
        }
    }
}

/// Messages sent early whose commit this connection has not heard of, at
/// most: past it they are forgotten (the commit's news then sends one again,
/// under the same id, which clients show once). News lost to a full queue
/// would otherwise leave its id here for the connection's life.
const MAX_EARLY: usize = 1024;

/// A message for this session, at the stage it has reached (see [`Stage`]).
async fn deliver(
    socket: &mut Socket,
    session: &mut Session,
    envelope: &claudemesh_api::broker::Envelope,
    stage: Stage,
) -> Result<(), SocketError> {
    match stage {
        Stage::Accepted(accepted) => {
            if push(socket, session, envelope, Some(accepted)).await? {
                if session.early.len() >= MAX_EARLY {
                    session.early.clear();
                }
                session.early.insert(envelope.id.clone());
            }
        }
        Stage::Committed(accepted) => {
            if !session.early.remove(&envelope.id) {
                push(socket, session, envelope, Some(accepted)).await?;
            }
        }
        Stage::Abandoned => {
            session.early.remove(&envelope.id);
        }
        Stage::Stored => {
            push(socket, session, envelope, None).await?;
        }
    }
    Ok(())
}

/// Sends one waiting message, if this session takes its priority now and
/// has not been sent it already on this connection; says whether it did.
async fn push(
    socket: &mut Socket,
    session: &mut Session,
    envelope: &claudemesh_api::broker::Envelope,
    accepted: Option<std::time::Instant>,
) -> Result<bool, SocketError> {
    if !session.peer.status.accepts(envelope.priority) || session.unacked.contains(&envelope.id) {
        return Ok(false);
    }
    if session.unacked.len() >= 10_000 {
        // A client that never acknowledges: forget, and let it get repeats.
        session.unacked.clear();
    }
    session.unacked.insert(envelope.id.clone());
    // Queued, not flushed: the loop flushes once nothing else is waiting,
    // so a burst of messages costs one write.
    socket
        .feed(Message::Text(frame(&ServerFrame::Message(
            envelope.clone(),
        ))))
        .await?;
    METRICS.broker_messages_out.inc();
    if let Some(accepted) = accepted {
        METRICS
            .broker_delivery
            .observe(accepted.elapsed().as_secs_f64());
    }
    Ok(true)
}

/// Why the waiting messages were not all sent.
enum BacklogFailed {
    /// The socket failed: nothing more can be said to the client.
    Socket,
    /// The table could not be read.
    Unreadable,
}

impl From<SocketError> for BacklogFailed {
    fn from(_: SocketError) -> Self {
        Self::Socket
    }
}

/// Sends what waits in the table for this session's keys.
async fn push_backlog(
    socket: &mut Socket,
    broker: &Broker,
    session: &mut Session,
) -> Result<(), BacklogFailed> {
    let waiting = match store::waiting_for(
        &broker.pool,
        &session.keys(),
        broker.now(),
        BACKLOG_BATCH,
    )
    .await
    {
        Ok(waiting) => waiting,
        Err(err) => {
            tracing::warn!(error = %err, "broker: cannot read waiting messages; trying again later");
            return Err(BacklogFailed::Unreadable);
        }
    };
    session.more_waiting = waiting.len() as i64 >= BACKLOG_BATCH;
    for envelope in &waiting {
        push(socket, session, envelope, None).await?;
    }
    Ok(socket.flush().await?)
}

async fn handle(
    socket: &mut Socket,
    broker: &Broker,
    session: &mut Session,
    client_frame: ClientFrame,
) -> Next {
    let reply = match client_frame {
        ClientFrame::Hello(_) => {
            return Next::Close(None, refuse(Code::HelloRequired, "Already said hello"));
        }
        ClientFrame::Send(SendRequest { req, .. }) if session.observer => {
            ServerFrame::error(Some(req), Code::Observer, OBSERVER_SENDS_NOTHING)
        }
        ClientFrame::SetStatus { .. } | ClientFrame::SetSummary { .. } if session.observer => {
            ServerFrame::error(None, Code::Observer, OBSERVER_SENDS_NOTHING)
        }
        // What an observer is given stays for the member's own sessions:
        // its acknowledgements are not recorded.
        ClientFrame::Ack { .. } if session.observer => return Next::Continue,
        ClientFrame::Send(request) => {
            let req = request.req;
            match send_message(broker, session, request).await {
                // Answered from the commit, through this connection's own
                // queue: meanwhile the loop reads the next frame and
                // delivers what arrives for this session.
                Ok(()) => return Next::Continue,
                Err(refusal) => send_refusal(req, refusal),
            }
        }
        ClientFrame::Ack { ids } => {
            if ids.len() > MAX_ACK_IDS || ids.iter().any(|id| id.len() > 64) {
                return Next::Close(
                    None,
                    refuse(
                        Code::BadFrame,
                        format!("An ack carries at most {MAX_ACK_IDS} ids"),
                    ),
                );
            }
            for id in &ids {
                session.unacked.remove(id);
            }
            if ids.is_empty() {
                return Next::Continue;
            }
            let keys = session.keys().map(str::to_owned).to_vec();
            if session.more_waiting && session.unacked.is_empty() {
                // The last backlog read was full: once these are recorded,
                // read the next part.
                if broker.writer.ack_committed(keys, ids, broker.now()).await {
                    return backlog(socket, broker, session).await;
                }
                // Not recorded: the next part is read later all the same
                // (what comes again, the client shows once).
                if session.backlog_retry.is_none() {
                    session.backlog_retry = Some(BacklogRetry::after(None));
                }
            } else {
                broker.writer.ack(keys, ids, broker.now()).await;
            }
            return Next::Continue;
        }
        ClientFrame::SetStatus { status } => {
            if !session.attestation.allows(SessionRight::Presence) {
                ServerFrame::error(
                    None,
                    Code::NotPermitted,
                    "This session may not set its status (its attestation does not carry `presence`)",
                )
            } else {
                let was = session.peer.status;
                session.peer.status = status;
                update_peer(broker, session).await;
                if was != PeerStatus::Idle && status == PeerStatus::Idle {
                    // Whatever was held back for a busy session comes now.
                    return backlog(socket, broker, session).await;
                }
                return Next::Continue;
            }
        }
        ClientFrame::SetSummary { summary } => {
            if !clean_summary(&summary) {
                return Next::Close(
                    None,
                    refuse(Code::BadFrame, "A summary is at most 280 characters"),
                );
            } else if !session.attestation.allows(SessionRight::SetSummary) {
                ServerFrame::error(
                    None,
                    Code::NotPermitted,
                    "This session may not set its summary (its attestation does not carry `set_summary`)",
                )
            } else {
                session.peer.summary = summary;
                update_peer(broker, session).await;
                return Next::Continue;
            }
        }
        ClientFrame::ListPeers { req } => {
            let peers = store::peers(&broker.pool, &session.mesh_id).await;
            let members = store::member_keys(&broker.pool, &session.mesh_id).await;
            let view = match (peers, members) {
                (Ok(peers), Ok(members)) => broker
                    .view_for(&session.mesh_id, &session.member_id, peers, members)
                    .await
                    .ok(),
                _ => None,
            };
            match view {
                Some((peers, members)) => ServerFrame::Peers {
                    req,
                    peers: peers
                        .into_iter()
                        .filter(|p| p.session_key != session.peer.session_key)
                        .collect(),
                    members,
                },
                _ => ServerFrame::error(Some(req), Code::Internal, "Cannot read the peers now"),
            }
        }
        ClientFrame::MessageStatus { req, id } => {
            match store::message_status(&broker.pool, &id, &session.member_id, broker.now()).await {
                Ok(Some(recipients)) => ServerFrame::MessageStatus {
                    req,
                    id,
                    recipients,
                },
                Ok(None) => ServerFrame::error(
                    Some(req),
                    Code::NotFound,
                    "You sent no message with this id",
                ),
                Err(_) => {
                    ServerFrame::error(Some(req), Code::Internal, "Cannot read the status now")
                }
            }
        }
    };
    if let ServerFrame::Error { code, .. } = &reply {
        METRICS.refusal(code.as_str());
    }
    if send(socket, &reply).await.is_err() {
        return Next::End;
    }
    Next::Continue
}

async fn update_peer(broker: &Broker, session: &Session) {
    if let Err(err) = store::update_session(
        &broker.pool,
        &session.peer.session_key,
        &session.conn_id,
        session.peer.status,
        &session.peer.summary,
    )
    .await
    {
        tracing::warn!(error = %err, "broker: cannot record a status");
    }
    broker
        .publish(BusEvent::Updated {
            mesh_id: session.mesh_id.clone(),
            peer: session.peer.clone(),
        })
        .await;
}

type SendError = (Code, String, Option<Duration>);

/// Checks, stores and acknowledges one message.
fn send_refusal(req: u64, (code, message, retry_after): SendError) -> ServerFrame {
    ServerFrame::Error {
        req: Some(req),
        code,
        message,
        retry_after_ms: retry_after.map(|d| d.as_millis().try_into().unwrap_or(u64::MAX)),
    }
}

/// Checks a send and hands the message to the writer. The sender hears
/// `sent` (or the error) once it is committed, from a task of its own, so
/// that no session's loop waits on the database: with the loop waiting, a
/// message for this session that arrived meanwhile waited for this one's
/// commit too (see bench/README.md, "The send path").
async fn send_message(
    broker: &Broker,
    session: &Session,
    request: SendRequest,
) -> Result<(), SendError> {
    let accepted = std::time::Instant::now();
    let invalid = |message: &str| (Code::BadFrame, message.to_owned(), None);
    let right = SessionRight::to_send(request.kind);
    if !session.attestation.allows(right) {
        return Err((
            Code::NotPermitted,
            format!(
                "This session may not {} (its attestation does not carry `{}`)",
                match request.kind {
                    MessageKind::Direct => "send direct messages",
                    MessageKind::Group => "send to groups",
                    MessageKind::Broadcast => "broadcast",
                },
                right.as_str()
            ),
            None,
        ));
    }
    if request.keys.is_empty() {
        return Err(invalid("A message needs at least one recipient key"));
    }
    match (request.kind, &request.group) {
        (MessageKind::Group, Some(group)) if is_group_name(group) => {}
        (MessageKind::Group, _) => return Err(invalid("A group message names its group")),
        (_, Some(_)) => return Err(invalid("Only group messages name a group")),
        _ => {}
    }
    if let Some(id) = &request.id
        && !is_client_message_id(id)
    {
        return Err((
            Code::BadMessageId,
            "A message id is `msg_` and 32 lowercase hex characters".to_owned(),
            None,
        ));
    }
    // base64 of the text, the sealed header in front of it (see
    // `claudemesh_api::sealed`) and the 16-byte tag. The broker cannot
    // tell the two apart: the text's own bound is the sender's to keep.
    let max_body = (MAX_MESSAGE_BYTES + MAX_HEADER_BYTES + 16).div_ceil(3) * 4;
    if request.body.ciphertext.len() > max_body {
        return Err((
            Code::MessageTooLarge,
            format!("A message is at most {MAX_MESSAGE_BYTES} bytes"),
            None,
        ));
    }
    if request.body.nonce.len() > 64
        || request
            .keys
            .iter()
            .any(|k| k.nonce.len() > 64 || k.sealed.len() > 256)
    {
        return Err(invalid("A nonce or key box is too long"));
    }
    let mut seen = HashSet::new();
    if !request.keys.iter().all(|k| seen.insert(k.to.as_str())) {
        return Err(invalid("Each recipient key appears once"));
    }
    if let Err(wait) = broker.rate.take(&session.member_id) {
        return Err((
            Code::RateLimited,
            format!(
                "Sending too fast: at most {} messages a minute (bursts of {})",
                broker.settings.sends_per_minute, broker.settings.send_burst
            ),
            Some(wait),
        ));
    }
    let found = recipients(broker, &session.mesh_id, &session.member_id, &request).await?;
    // What the recipients allow this sender: a direct message someone does
    // not permit is refused whole (the same answer blocked or not granted),
    // group and broadcast copies for them are skipped, never stored.
    let mut request = request;
    let mut members = Vec::with_capacity(found.len());
    let mut keys = Vec::with_capacity(found.len());
    for (key, (member, allowed)) in request.keys.drain(..).zip(found) {
        if allowed {
            keys.push(key);
            members.push(member);
        } else if request.kind == MessageKind::Direct {
            broker.count_drop(Capability::Dm);
            return Err((
                Code::NotPermitted,
                "The recipient does not permit direct messages from you".to_owned(),
                None,
            ));
        } else {
            broker.count_drop(Capability::Group);
        }
    }
    request.keys = keys;
    let now = broker.now();
    let message = Arc::new(NewMessage {
        // The sender's id, if it chose one: a resend of it is then known
        // (see the writer's `Stored::Duplicate`).
        id: request.id.take().unwrap_or_else(|| new_id("msg")),
        mesh_id: session.mesh_id.clone(),
        from: Sender {
            session_key: session.peer.session_key.clone(),
            member_id: session.member_id.clone(),
            member_key: session.peer.member_key.clone(),
            display_name: session.peer.display_name.clone(),
            attestation: session.attestation.clone(),
        },
        kind: request.kind,
        group: request.group,
        priority: request.priority,
        body: request.body,
        deliveries: request.keys.into_iter().zip(members).collect(),
        created_at: now,
        expires_at: now.saturating_add(broker.settings.message_ttl_ms),
    });
    let recipients = u32::try_from(message.deliveries.len()).unwrap_or(u32::MAX);
    let early = broker.may_deliver_early(&message.id).await;
    let Some(committed) = broker.writer.submit(Arc::clone(&message)).await else {
        return Err(not_stored());
    };
    // The recipients connected here get it now, while it is committed; the
    // sender's `sent` still waits for the commit. Pushed only once the
    // writer holds it: an acknowledgement then always follows the message
    // into the writer, and is written after it.
    let envelopes: Vec<_> = message
        .deliveries
        .iter()
        .map(|(key, _)| Arc::new(message.envelope(key)))
        .collect();
    if early.is_some() {
        broker.hub.deliver(
            envelopes
                .iter()
                .map(|e| (Arc::clone(e), Stage::Accepted(accepted))),
        );
    }
    let req = request.req;
    let answer_to = session.handle.tx.clone();
    let broker = broker.clone();
    let (mesh_id, member_id) = (session.mesh_id.clone(), session.member_id.clone());
    tokio::spawn(async move {
        let stored = committed.await.unwrap_or(Stored::Failed);
        let sent_early = early.is_some();
        drop(early);
        let stage = match stored {
            Stored::New => Some(Stage::Committed(accepted)),
            // Only connections that had it early have anything to forget.
            Stored::Duplicate | Stored::Failed => sent_early.then_some(Stage::Abandoned),
        };
        if let Some(stage) = stage {
            broker
                .hub
                .deliver(envelopes.into_iter().map(|e| (e, stage)));
        }
        let answer = match stored {
            Stored::New => {
                METRICS.broker_messages_in.inc();
                ServerFrame::Sent {
                    req,
                    id: message.id.clone(),
                    recipients,
                }
            }
            Stored::Duplicate => {
                let answer = resent(&broker.pool, req, &message.id, &mesh_id, &member_id).await;
                if matches!(answer, ServerFrame::Sent { .. }) && broker.bus.announces_after_commit()
                {
                    // The first copy's instance may have died between its
                    // commit and telling the others: tell them again
                    // (recipients drop a message they have seen by its id).
                    broker
                        .publish(BusEvent::Messages {
                            mesh_id: mesh_id.clone(),
                            ids: vec![message.id.clone()],
                        })
                        .await;
                }
                answer
            }
            Stored::Failed => send_refusal(req, not_stored()),
        };
        if let ServerFrame::Error { code, .. } = &answer {
            METRICS.refusal(code.as_str());
        }
        // Waits for room rather than dropping: the sender needs its answer.
        // Fails only when the connection has ended.
        let _ = answer_to.send(ConnEvent::Frame(frame(&answer))).await;
    });
    Ok(())
}

/// The answer to a send whose id is stored already: `sent` again, for the
/// message stored the first time (nothing new is stored; on a NATS bus the
/// other instances are told of it again, see the caller), when
/// this member sent it in this mesh; otherwise the id is someone else's.
async fn resent(
    pool: &sqlx::AnyPool,
    req: u64,
    id: &str,
    mesh_id: &str,
    member_id: &str,
) -> ServerFrame {
    match store::stored_message(pool, id).await {
        Ok(Some((mesh, sender, recipients))) if mesh == mesh_id && sender == member_id => {
            ServerFrame::Sent {
                req,
                id: id.to_owned(),
                recipients: u32::try_from(recipients).unwrap_or(0),
            }
        }
        Ok(Some(_)) => send_refusal(
            req,
            (
                Code::BadMessageId,
                "This message id is taken: choose another".to_owned(),
                None,
            ),
        ),
        // Gone between the insert and now (expired and swept): rare
        // enough that sending again, under a new id, is the answer.
        Ok(None) | Err(_) => send_refusal(req, not_stored()),
    }
}

fn not_stored() -> SendError {
    (
        Code::Internal,
        "The message could not be stored; send it again".into(),
        Some(Duration::from_secs(1)),
    )
}

/// The member each key box is for, and whether that member allows this
/// sender this kind of message (their own other sessions always); every
/// key must be a connected session or a member's machine key in this mesh.
async fn recipients(
    broker: &Broker,
    mesh_id: &str,
    sender: &str,
    request: &SendRequest,
) -> Result<Vec<(String, bool)>, SendError> {
    let cap = match request.kind {
        MessageKind::Direct => Capability::Dm,
        MessageKind::Group | MessageKind::Broadcast => Capability::Group,
    };
    let lookup = || {
        broker.hub.with_directory(mesh_id, |dir| {
            let dir = dir?;
            request
                .keys
                .iter()
                .map(|k| {
                    let member = dir
                        .sessions
                        .get(&k.to)
                        .or_else(|| dir.member_keys.get(&k.to))?;
                    let allowed = member == sender || dir.grants.allows(member, sender, cap);
                    Some((member.clone(), allowed))
                })
                .collect::<Option<Vec<(String, bool)>>>()
        })
    };
    if let Some(found) = lookup() {
        return Ok(found);
    }
    // Not in memory, or a key we have not seen yet (a new machine, a
    // session that just joined elsewhere): read the tables once.
    broker.load_directory(mesh_id).await.map_err(|err| {
        tracing::error!(error = %err, "broker: cannot read the mesh directory");
        (
            Code::Internal,
            "The broker could not check the recipients".to_owned(),
            None,
        )
    })?;
    lookup().ok_or_else(|| {
        (
            Code::UnknownRecipient,
            "A recipient key is not a session or member of this mesh (list the peers again)"
                .to_owned(),
            None,
        )
    })
}

async fn depart(broker: &Broker, session: &Session) {
    broker.hub.unregister(&session.conn_id);
    METRICS.broker_sessions.dec();
    if let Err(err) = store::touch_last_seen(&broker.pool, &session.member_id, broker.now()).await {
        tracing::warn!(error = %err, "broker: cannot record when a member was last seen");
    }
    if session.observer {
        // In no table and no peer list: only the log hears it leave.
        broker.log().push(
            &session.mesh_id,
            broker.now(),
            LogEvent::new(LogKind::SessionDisconnected)
                .with("member_id", &session.member_id)
                .with("display_name", &session.peer.display_name)
                .with("session_key", &session.peer.session_key)
                .with("observer", "true"),
        );
        return;
    }
    match store::delete_session(&broker.pool, &session.peer.session_key, &session.conn_id).await {
        Ok(true) => {
            broker.log().push(
                &session.mesh_id,
                broker.now(),
                LogEvent::new(LogKind::SessionDisconnected)
                    .with("member_id", &session.member_id)
                    .with("display_name", &session.peer.display_name)
                    .with("session_key", &session.peer.session_key),
            );
            broker
                .publish(BusEvent::Left {
                    mesh_id: session.mesh_id.clone(),
                    session_key: session.peer.session_key.clone(),
                })
                .await;
        }
        Ok(false) => {}
        Err(err) => tracing::warn!(error = %err, "broker: cannot record a departure"),
    }
}

/// The peer a hello describes (before it is stored).
fn peer_of(hello: &claudemesh_api::broker::Hello, member_id: &str, connected_at: i64) -> Peer {
    Peer {
        session_key: hello.session_key.clone(),
        member_id: member_id.to_owned(),
        member_key: hello.member_key.clone(),
        display_name: hello.display_name.clone(),
        role: hello.role.clone(),
        groups: hello.groups.clone(),
        status: hello.status,
        summary: hello.summary.clone(),
        connected_at: crate::clock::rfc3339(connected_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a two-argument async fn returns.
    fn future_size<A, B, F: Future>(_: impl Fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every connected session is `serve`'s future parked in `run`'s loop,
    /// so its size is paid once per session, 100,000 times on a busy
    /// instance. The handshake and a frame's handling are boxed to keep it
    /// small: 5,568 bytes before that, 2,272 after (debug build).
    #[test]
    fn a_connected_session_future_stays_small() {
        let size = future_size(serve);
        assert!(size <= 3 * 1024, "serve's future is {size} bytes");
    }
}
