//! A session of a claudemesh mesh, over the broker's WebSocket.
//!
//! [`Client::connect`] answers the broker's challenge with a session key
//! attested by the member key ([`SessionIdentity`]); then [`Client::send`]
//! resolves a target ([`target::resolve`]), seals the text per recipient
//! key and waits for the broker's `sent`, and [`Client::next_event`] yields
//! what arrives, already checked and decrypted, each message once.
//!
//! One task owns the socket; the [`Client`] talks to it over channels, so a
//! client can be shared by reference between what sends and what receives.
//!
//! A [`Client`] is one connection. What keeps a session up across drops
//! connects again with the same session key, waiting as [`Backoff`] says
//! (jittered, so the sessions of a dead instance do not all come back at
//! once), and sends again what got no `sent` as the same [`Outgoing`].

pub use claudemesh_api::backoff;
pub mod target;

use claudemesh_api::broker::{
    Attestation, BrokerErrorCode, ClientFrame, Envelope, Hello, MAX_FRAME_BYTES, MemberKeys,
    MessageKind, Peer, PeerStatus, Priority, RecipientStatus, SendRequest, Sender, ServerFrame,
    SessionRight, Welcome,
};
use claudemesh_api::e2e::{self, KeyPair};
use claudemesh_api::sealed::{self, SealedHeader};
use futures_util::{SinkExt, StreamExt};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use backoff::Backoff;
pub use target::{Resolved, TargetError};

/// Message ids remembered to drop repeats (the broker delivers at least once).
const REMEMBERED_IDS: usize = 10_000;

/// The last [`REMEMBERED_IDS`] message ids seen, to show each message once.
#[derive(Default)]
pub struct SeenIds {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenIds {
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether `id` is new (and remembers it, forgetting the oldest).
    pub fn first_time(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > REMEMBERED_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

/// The keys a session speaks with, and the member key's word for it.
pub struct SessionIdentity {
    pub mesh_id: String,
    pub member: KeyPair,
    pub session: KeyPair,
    pub attestation: Attestation,
}

impl SessionIdentity {
    /// A fresh session key for `mesh_id`, attested by `member` until
    /// `expires_at` (ms since the epoch; at most 24 h ahead).
    pub fn new(mesh_id: &str, member: KeyPair, expires_at: i64) -> Result<Self, ClientError> {
        let session = KeyPair::generate()
            .map_err(|_| ClientError::Local("the system's random source failed".into()))?;
        Ok(Self::with_session(mesh_id, member, session, expires_at))
    }

    /// An identity for a given session key (`launch` keeps one per session).
    pub fn with_session(mesh_id: &str, member: KeyPair, session: KeyPair, expires_at: i64) -> Self {
        Self::limited(mesh_id, member, session, expires_at, None)
    }

    /// An identity whose attestation limits the session to `rights`
    /// (`launch --caps`); `None` is every right of the member.
    pub fn limited(
        mesh_id: &str,
        member: KeyPair,
        session: KeyPair,
        expires_at: i64,
        rights: Option<Vec<SessionRight>>,
    ) -> Self {
        let rights = rights.map(|mut rights| {
            rights.sort();
            rights.dedup();
            rights
        });
        let signature = member.sign_hex(&e2e::attestation_bytes_for(
            mesh_id,
            &session.public_hex(),
            expires_at,
            rights.as_deref(),
        ));
        Self {
            mesh_id: mesh_id.to_owned(),
            member,
            session,
            attestation: Attestation {
                expires_at,
                signature,
                rights,
            },
        }
    }
}

/// How the session presents itself to the others.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    pub display_name: String,
    pub role: String,
    pub groups: Vec<String>,
    pub status: PeerStatus,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The broker could not be reached, or the connection dropped.
    Connection(String),
    /// The broker refused: its stable code and message.
    Refused {
        code: BrokerErrorCode,
        message: String,
        retry_after: Option<Duration>,
    },
    Target(TargetError),
    /// Something on this side (randomness, an over-long message).
    Local(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connection(why) => write!(f, "broker connection: {why}"),
            Self::Refused { code, message, .. } => write!(f, "{message} ({})", code.as_str()),
            Self::Target(err) => err.fmt(f),
            Self::Local(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ClientError {}

/// A message as its recipient reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: String,
    pub from: Sender,
    pub kind: MessageKind,
    pub group: Option<String>,
    pub priority: Priority,
    /// When the broker stored it (its clock).
    pub sent_at: String,
    /// When the sender sealed it (the sender's clock, ms since the epoch),
    /// from the sealed header; `None` for a message from an older client,
    /// which carries no sealed header: its id, kind, group and priority are
    /// only the broker's word.
    pub sealed_at: Option<i64>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Message(Received),
    PeerJoined(Peer),
    PeerLeft(String),
    PeerUpdated(Peer),
    /// A message that failed its checks (forged, from no member, or with a
    /// sealed header the envelope disagrees with: copied under a new id,
    /// relabelled); it is acknowledged and dropped, never shown as a
    /// message.
    Rejected {
        id: String,
        reason: String,
    },
    /// The connection ended; `code` when the broker said why.
    Closed {
        code: Option<BrokerErrorCode>,
        message: String,
    },
}

/// What `sent` told: the broker's id and how many key boxes it stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub id: String,
    pub recipients: u32,
    pub kind: MessageKind,
    /// The recipient was offline: the message waits for them.
    pub waits: bool,
    /// How many connected sessions it was sealed for (the other boxes are
    /// for machine keys, for whichever session of the member comes next).
    pub sessions: u32,
}

/// A message sealed and ready to send, under the id it keeps: sending it
/// again ([`Client::send_sealed`], after a lost `sent` or a dropped
/// connection, from the same session key) is answered for the message
/// stored the first time, never stored twice.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The client-chosen id; `None` when the broker picks (an older server).
    pub id: Option<String>,
    request: SendRequest,
    waits: bool,
    sessions: u32,
}

impl Outgoing {
    /// The `send` frame with this `req`, as [`Client::send_sealed`] sends
    /// it (for tests that speak to the broker directly).
    pub fn frame(&self, req: u64) -> ClientFrame {
        ClientFrame::Send(SendRequest {
            req,
            ..self.request.clone()
        })
    }
}

/// How a client behaves beyond the defaults.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Acknowledge each message as soon as it is received and opened (the
    /// default). Off, the caller acknowledges with [`Client::ack`] once the
    /// message is really handled (read by a person, shown to a model); until
    /// then the broker keeps it for the next session of this member.
    /// Relayed permission requests are never acknowledged on receipt (the
    /// caller that keeps one acknowledges it).
    pub ack_on_receipt: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            ack_on_receipt: true,
        }
    }
}

enum Command {
    /// A frame to send, and where its answer goes (for frames with a `req`).
    Request(
        u64,
        ClientFrame,
        oneshot::Sender<Result<ServerFrame, ClientError>>,
    ),
    Frame(ClientFrame),
    Raw(String),
    Close,
}

/// What the session knows of its mesh, kept current by presence events.
#[derive(Default)]
struct View {
    peers: Vec<Peer>,
    members: Vec<MemberKeys>,
}

pub struct Client {
    commands: mpsc::UnboundedSender<Command>,
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>,
    view: Arc<Mutex<View>>,
    next_req: std::sync::atomic::AtomicU64,
    session: KeyPair,
    session_key: String,
    welcome: Welcome,
    /// Keys shared with each recipient key, derived once.
    sealing: Mutex<HashMap<String, Arc<e2e::SharedKey>>>,
}

/// `http(s)://host` → `ws(s)://host/api/mesh/ws`.
pub fn broker_url(server: &str) -> String {
    let server = server.trim_end_matches('/');
    let rest = server
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| server.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| server.to_owned());
    format!("{rest}/api/mesh/ws")
}

impl Client {
    /// Connects to the broker of `server` (the claudemesh server URL) as
    /// this session, and waits for the broker's welcome.
    pub async fn connect(
        server: &str,
        identity: SessionIdentity,
        presence: Presence,
    ) -> Result<Self, ClientError> {
        Self::connect_with(server, identity, presence, Options::default()).await
    }

    /// [`Client::connect`] with [`Options`].
    pub async fn connect_with(
        server: &str,
        identity: SessionIdentity,
        presence: Presence,
        options: Options,
    ) -> Result<Self, ClientError> {
        Self::open_session(server, identity, presence, options, false).await
    }

    /// Connects as an observer (`claudemesh stream subscribe`): listed
    /// nowhere, sending nothing, seeing the mesh's presence and the
    /// messages sealed for the member key, which it leaves unacknowledged
    /// for the member's real sessions (see `docs/protocol.md`). An older
    /// broker refuses the hello with `bad_frame`.
    pub async fn observe(
        server: &str,
        identity: SessionIdentity,
        presence: Presence,
    ) -> Result<Self, ClientError> {
        let options = Options {
            ack_on_receipt: false,
        };
        Self::open_session(server, identity, presence, options, true).await
    }

    async fn open_session(
        server: &str,
        identity: SessionIdentity,
        presence: Presence,
        options: Options,
        observer: bool,
    ) -> Result<Self, ClientError> {
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_FRAME_BYTES * 4);
        config.max_frame_size = Some(MAX_FRAME_BYTES * 4);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(broker_url(server), Some(config), true)
                .await
                .map_err(|err| ClientError::Connection(err.to_string()))?;
        let challenge = match next_frame(&mut socket).await? {
            ServerFrame::Challenge { challenge, .. } => challenge,
            other => return Err(unexpected(other)),
        };
        let session_key = identity.session.public_hex();
        let hello = Hello {
            version: claudemesh_api::broker::PROTOCOL_VERSION,
            mesh_id: identity.mesh_id.clone(),
            member_key: identity.member.public_hex(),
            session_key: session_key.clone(),
            signature: identity.session.sign_hex(&e2e::hello_bytes(
                &challenge,
                &identity.mesh_id,
                &session_key,
            )),
            attestation: identity.attestation.clone(),
            display_name: presence.display_name,
            role: presence.role,
            groups: presence.groups,
            status: presence.status,
            summary: presence.summary,
            observer,
        };
        socket
            .send(Message::text(to_json(&ClientFrame::Hello(hello))))
            .await
            .map_err(|err| ClientError::Connection(err.to_string()))?;
        let welcome = match next_frame(&mut socket).await? {
            ServerFrame::Welcome(welcome) => welcome,
            other => return Err(unexpected(other)),
        };
        let view = Arc::new(Mutex::new(View {
            peers: welcome.peers.clone(),
            members: welcome.members.clone(),
        }));
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (event_tx, events) = mpsc::unbounded_channel();
        let task = Task {
            member_key: identity.member.public_hex(),
            session_key: session_key.clone(),
            member: identity.member,
            session: KeyPair::from_secret_hex(&identity.session.secret_hex())
                .ok_or_else(|| ClientError::Local("the session key does not copy".into()))?,
            mesh_id: identity.mesh_id,
            view: Arc::clone(&view),
            events: event_tx,
            pending: HashMap::new(),
            seen: SeenIds::default(),
            ack_on_receipt: options.ack_on_receipt,
            ids_required: welcome.client_message_ids,
            held: HashSet::new(),
            attested: HashSet::new(),
            opening: HashMap::new(),
        };
        tokio::spawn(task.run(socket, command_rx));
        Ok(Self {
            commands,
            events: tokio::sync::Mutex::new(events),
            view,
            next_req: std::sync::atomic::AtomicU64::new(1),
            session: identity.session,
            session_key,
            welcome,
            sealing: Mutex::new(HashMap::new()),
        })
    }

    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    pub fn session_key(&self) -> &str {
        &self.session_key
    }

    /// The next thing that happened; `None` once the connection is gone
    /// and everything before was read.
    pub async fn next_event(&self) -> Option<Event> {
        self.events.lock().await.recv().await
    }

    /// The other sessions and the members, as last heard.
    pub fn view(&self) -> (Vec<Peer>, Vec<MemberKeys>) {
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        (view.peers.clone(), view.members.clone())
    }

    async fn request(
        &self,
        make: impl FnOnce(u64) -> ClientFrame,
    ) -> Result<ServerFrame, ClientError> {
        let req = self
            .next_req
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Request(req, make(req), tx))
            .map_err(|_| closed())?;
        match rx.await.map_err(|_| closed())?? {
            ServerFrame::Error {
                code,
                message,
                retry_after_ms,
                ..
            } => Err(ClientError::Refused {
                code,
                message,
                retry_after: retry_after_ms.map(Duration::from_millis),
            }),
            frame => Ok(frame),
        }
    }

    /// Asks the broker for the current peers and members.
    pub async fn peers(&self) -> Result<(Vec<Peer>, Vec<MemberKeys>), ClientError> {
        match self.request(|req| ClientFrame::ListPeers { req }).await? {
            ServerFrame::Peers { peers, members, .. } => Ok((peers, members)),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `text` to `target` (see [`target::resolve`]), sealed for each
    /// recipient key; returns once the broker has stored it.
    pub async fn send(
        &self,
        target: &str,
        text: &str,
        priority: Priority,
    ) -> Result<Sent, ClientError> {
        // A session may leave between the peer list and the send: the
        // broker then refuses its key, and one fresh try settles it.
        let mut tries = 0;
        loop {
            tries += 1;
            let (peers, members) = self.peers().await?;
            let resolved = target::resolve(target, &self.session_key, &peers, &members)
                .map_err(ClientError::Target)?;
            match self.send_resolved(&resolved, text, priority).await {
                Err(ClientError::Refused {
                    code: BrokerErrorCode::UnknownRecipient,
                    ..
                }) if tries < 3 => tokio::time::sleep(Duration::from_millis(50)).await,
                result => return result,
            }
        }
    }

    /// Sends to recipients already resolved.
    pub async fn send_resolved(
        &self,
        resolved: &Resolved,
        text: &str,
        priority: Priority,
    ) -> Result<Sent, ClientError> {
        let outgoing = self.seal(resolved, text, priority)?;
        self.send_sealed(&outgoing).await
    }

    /// Seals `text` for recipients already resolved, with the sealed header
    /// (see `claudemesh_api::sealed`) and a fresh message id, without
    /// sending it.
    pub fn seal(
        &self,
        resolved: &Resolved,
        text: &str,
        priority: Priority,
    ) -> Result<Outgoing, ClientError> {
        if text.len() > claudemesh_api::broker::MAX_MESSAGE_BYTES {
            return Err(ClientError::Local(format!(
                "A message is at most {} bytes",
                claudemesh_api::broker::MAX_MESSAGE_BYTES
            )));
        }
        let random = || ClientError::Local("the system's random source failed".into());
        // An older broker refuses an id it does not know (bad_frame): it
        // picks the id itself, and the header says none.
        let id = if self.welcome.client_message_ids {
            Some(sealed::new_message_id().map_err(|_| random())?)
        } else {
            None
        };
        let header = SealedHeader {
            id: id.clone(),
            mesh_id: self.welcome.mesh_id.clone(),
            session_key: self.session_key.clone(),
            member_id: self.welcome.member_id.clone(),
            kind: resolved.kind,
            group: resolved.group.clone(),
            priority,
            to: resolved.keys.clone(),
            sent_at: now_ms(),
        };
        let plain = sealed::wrap(&header, text);
        if plain.len() - text.len() > sealed::MAX_HEADER_BYTES {
            return Err(ClientError::Local(format!(
                "Too many recipients for one message ({})",
                resolved.keys.len()
            )));
        }
        let shared = self.shared_keys(&resolved.keys)?;
        let pairs: Vec<(&str, &e2e::SharedKey)> = resolved
            .keys
            .iter()
            .map(String::as_str)
            .zip(shared.iter().map(Arc::as_ref))
            .collect();
        let (body, keys) =
            e2e::seal_with(&pairs, &plain).map_err(|err| ClientError::Local(err.to_string()))?;
        Ok(Outgoing {
            id: id.clone(),
            request: SendRequest {
                req: 0,
                id,
                kind: resolved.kind,
                group: resolved.group.clone(),
                priority,
                body,
                keys,
            },
            waits: resolved.waits,
            sessions: u32::try_from(resolved.sessions).unwrap_or(u32::MAX),
        })
    }

    /// Sends a sealed message; returns once the broker has stored it. With
    /// an id, a send the broker could not store (`internal`) is tried again
    /// after the wait it asks for, since a resend cannot store it twice.
    pub async fn send_sealed(&self, outgoing: &Outgoing) -> Result<Sent, ClientError> {
        let mut tries = 0;
        let frame = loop {
            tries += 1;
            let sent = self.request(|req| outgoing.frame(req)).await;
            match sent {
                Err(ClientError::Refused {
                    code: BrokerErrorCode::Internal,
                    retry_after: Some(wait),
                    ..
                }) if outgoing.id.is_some() && tries < 3 => {
                    tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                }
                other => break other?,
            }
        };
        match frame {
            ServerFrame::Sent { id, recipients, .. } => Ok(Sent {
                id,
                recipients,
                kind: outgoing.request.kind,
                waits: outgoing.waits,
                sessions: outgoing.sessions,
            }),
            other => Err(unexpected(other)),
        }
    }

    fn shared_keys(&self, keys: &[String]) -> Result<Vec<Arc<e2e::SharedKey>>, ClientError> {
        let mut cache = self.sealing.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        keys.iter()
            .map(|key| {
                if let Some(shared) = cache.get(key) {
                    return Ok(Arc::clone(shared));
                }
                let shared =
                    Arc::new(e2e::SharedKey::new(&self.session, key).ok_or_else(|| {
                        ClientError::Local(format!("`{key}` is not a usable public key"))
                    })?);
                cache.insert(key.clone(), Arc::clone(&shared));
                Ok(shared)
            })
            .collect()
    }

    pub async fn message_status(&self, id: &str) -> Result<Vec<RecipientStatus>, ClientError> {
        let id = id.to_owned();
        match self
            .request(|req| ClientFrame::MessageStatus { req, id })
            .await?
        {
            ServerFrame::MessageStatus { recipients, .. } => Ok(recipients),
            other => Err(unexpected(other)),
        }
    }

    /// Acknowledges messages (with [`Options::ack_on_receipt`] off): the
    /// broker records them as delivered and sends them no more.
    pub fn ack(&self, ids: Vec<String>) -> Result<(), ClientError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.commands
            .send(Command::Frame(ClientFrame::Ack { ids }))
            .map_err(|_| closed())
    }

    pub fn set_status(&self, status: PeerStatus) -> Result<(), ClientError> {
        self.commands
            .send(Command::Frame(ClientFrame::SetStatus { status }))
            .map_err(|_| closed())
    }

    pub fn set_summary(&self, summary: &str) -> Result<(), ClientError> {
        self.commands
            .send(Command::Frame(ClientFrame::SetSummary {
                summary: summary.to_owned(),
            }))
            .map_err(|_| closed())
    }

    /// Sends a text frame as is (for tests of what the broker refuses).
    pub fn send_raw(&self, text: impl Into<String>) -> Result<(), ClientError> {
        self.commands
            .send(Command::Raw(text.into()))
            .map_err(|_| closed())
    }

    /// Closes the connection politely.
    pub fn close(&self) {
        let _ = self.commands.send(Command::Close);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn closed() -> ClientError {
    ClientError::Connection("the connection is closed".into())
}

fn unexpected(frame: ServerFrame) -> ClientError {
    match frame {
        ServerFrame::Error {
            code,
            message,
            retry_after_ms,
            ..
        } => ClientError::Refused {
            code,
            message,
            retry_after: retry_after_ms.map(Duration::from_millis),
        },
        other => ClientError::Connection(format!("unexpected frame from the broker: {other:?}")),
    }
}

fn to_json(frame: &ClientFrame) -> String {
    serde_json::to_string(frame).unwrap_or_default()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next broker frame during the handshake.
async fn next_frame(socket: &mut Socket) -> Result<ServerFrame, ClientError> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(&text).map_err(|err| {
                    ClientError::Connection(format!("unreadable frame from the broker: {err}"))
                });
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(frame))) => {
                return Err(ClientError::Connection(format!(
                    "the broker closed the connection{}",
                    frame
                        .map(|f| format!(" ({})", f.reason))
                        .unwrap_or_default()
                )));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(ClientError::Connection(err.to_string())),
            None => return Err(closed()),
        }
    }
}

/// The task that owns the socket.
struct Task {
    member: KeyPair,
    session: KeyPair,
    /// The two keys' public halves (hex), which key boxes are addressed to.
    member_key: String,
    session_key: String,
    mesh_id: String,
    view: Arc<Mutex<View>>,
    events: mpsc::UnboundedSender<Event>,
    pending: HashMap<u64, oneshot::Sender<Result<ServerFrame, ClientError>>>,
    seen: SeenIds,
    ack_on_receipt: bool,
    /// The broker takes client-chosen ids, so every sealed header this
    /// client's version writes names the message's id (see
    /// [`SealedHeader::check`]).
    ids_required: bool,
    /// Permission requests received and left for the caller to
    /// acknowledge (see [`held_for_the_caller`]).
    held: HashSet<String>,
    /// Attestations already verified: (session key, member key, expiry,
    /// signature), all of what the signature covers or proves.
    attested: HashSet<(String, String, i64, String, Option<String>)>,
    /// Keys shared with each sender session, per own key (session or member).
    opening: HashMap<(bool, String), e2e::SharedKey>,
}

impl Task {
    async fn run(mut self, socket: Socket, mut commands: mpsc::UnboundedReceiver<Command>) {
        let (mut sink, mut stream) = socket.split();
        let mut last_error: Option<(BrokerErrorCode, String)> = None;
        // Acknowledgements wait until no frame is ready, then go as one.
        let mut acks: Vec<String> = Vec::new();
        loop {
            tokio::select! {
                biased;
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else {
                            continue;
                        };
                        acks.extend(self.on_frame(frame, &mut last_error));
                        // The broker takes at most 1,000 ids per ack.
                        if acks.len() >= 500 {
                            let ids = std::mem::take(&mut acks);
                            if sink.send(Message::text(to_json(&ClientFrame::Ack { ids }))).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        if last_error.is_none() && let Some(frame) = frame {
                            last_error = Some((BrokerErrorCode::Unknown, frame.reason.to_string()));
                        }
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                command = commands.recv() => {
                    let text = match command {
                        Some(Command::Request(req, frame, reply)) => {
                            self.pending.insert(req, reply);
                            to_json(&frame)
                        }
                        Some(Command::Frame(frame)) => to_json(&frame),
                        Some(Command::Raw(text)) => text,
                        Some(Command::Close) | None => {
                            // What arrived is acknowledged before leaving, so
                            // it does not come again next time.
                            if !acks.is_empty() {
                                let ids = std::mem::take(&mut acks);
                                let _ = sink.send(Message::text(to_json(&ClientFrame::Ack { ids }))).await;
                            }
                            let _ = sink.send(Message::Close(None)).await;
                            // Wait briefly for the broker's close, reading
                            // (and dropping) whatever is still on the way.
                            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                                while let Some(Ok(message)) = stream.next().await {
                                    if matches!(message, Message::Close(_)) {
                                        break;
                                    }
                                }
                            })
                            .await;
                            break;
                        }
                    };
                    if sink.send(Message::text(text)).await.is_err() {
                        break;
                    }
                }
                () = std::future::ready(()), if !acks.is_empty() => {
                    let ids = std::mem::take(&mut acks);
                    if sink.send(Message::text(to_json(&ClientFrame::Ack { ids }))).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Requests cut off by the close learn why, when the broker said.
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(match &last_error {
                Some((code, message)) => ClientError::Refused {
                    code: *code,
                    message: message.clone(),
                    retry_after: None,
                },
                None => closed(),
            }));
        }
        let (code, message) = match last_error {
            Some((code, message)) => (Some(code), message),
            None => (None, "the connection closed".to_owned()),
        };
        let _ = self.events.send(Event::Closed { code, message });
    }

    /// Handles one frame; returns the message ids to acknowledge.
    fn on_frame(
        &mut self,
        frame: ServerFrame,
        last_error: &mut Option<(BrokerErrorCode, String)>,
    ) -> Vec<String> {
        let req = match &frame {
            ServerFrame::Sent { req, .. }
            | ServerFrame::Peers { req, .. }
            | ServerFrame::MessageStatus { req, .. } => Some(*req),
            ServerFrame::Error { req, .. } => *req,
            _ => None,
        };
        if let Some(reply) = req.and_then(|req| self.pending.remove(&req)) {
            if let ServerFrame::Peers { peers, members, .. } = &frame {
                let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                view.peers = peers.clone();
                view.members = members.clone();
            }
            let _ = reply.send(Ok(frame));
            return Vec::new();
        }
        match frame {
            ServerFrame::Message(envelope) => {
                let id = envelope.id.clone();
                if !self.seen.first_time(&id) {
                    // A repeat: acknowledged now if the first copy was.
                    return if self.ack_on_receipt && !self.held.contains(&id) {
                        vec![id]
                    } else {
                        Vec::new()
                    };
                }
                let event = match self.open(&envelope) {
                    Ok((text, sealed_at)) => Event::Message(Received {
                        id: envelope.id,
                        from: envelope.from,
                        kind: envelope.kind,
                        group: envelope.group,
                        priority: envelope.priority,
                        sent_at: envelope.sent_at,
                        sealed_at,
                        text,
                    }),
                    Err(reason) => Event::Rejected {
                        id: envelope.id,
                        reason,
                    },
                };
                // A message that fails its checks is never worth keeping.
                let rejected = matches!(event, Event::Rejected { .. });
                let held = matches!(&event, Event::Message(m) if held_for_the_caller(&m.text));
                if held {
                    if self.held.len() > 10_000 {
                        self.held.clear();
                    }
                    self.held.insert(id.clone());
                }
                let _ = self.events.send(event);
                if (self.ack_on_receipt && !held) || rejected {
                    vec![id]
                } else {
                    Vec::new()
                }
            }
            ServerFrame::PeerJoined { peer } => {
                let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                view.peers.retain(|p| p.session_key != peer.session_key);
                view.peers.push(peer.clone());
                drop(view);
                let _ = self.events.send(Event::PeerJoined(peer));
                Vec::new()
            }
            ServerFrame::PeerLeft { session_key } => {
                let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                view.peers.retain(|p| p.session_key != session_key);
                drop(view);
                let _ = self.events.send(Event::PeerLeft(session_key));
                Vec::new()
            }
            ServerFrame::PeerUpdated { peer } => {
                let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(known) = view
                    .peers
                    .iter_mut()
                    .find(|p| p.session_key == peer.session_key)
                {
                    *known = peer.clone();
                }
                drop(view);
                let _ = self.events.send(Event::PeerUpdated(peer));
                Vec::new()
            }
            ServerFrame::Error { code, message, .. } => {
                *last_error = Some((code, message));
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// Checks who sealed a message, opens it, and checks what the envelope
    /// says against the sealed header: the text, and when it was sealed.
    fn open(&mut self, envelope: &Envelope) -> Result<(String, Option<i64>), String> {
        let from = &envelope.from;
        let attestation = (
            from.session_key.clone(),
            from.member_key.clone(),
            from.attestation.expires_at,
            from.attestation.signature.clone(),
            from.attestation.rights.as_deref().map(SessionRight::join),
        );
        if envelope.mesh_id != self.mesh_id {
            return Err("the message is for another mesh".into());
        }
        if !self.attested.contains(&attestation) {
            let attested = e2e::attestation_bytes_for(
                &self.mesh_id,
                &from.session_key,
                from.attestation.expires_at,
                from.attestation.rights.as_deref(),
            );
            if !e2e::verify(&from.member_key, &attested, &from.attestation.signature) {
                return Err("the sender's session key is not attested by its member key".into());
            }
            if self.attested.len() > 10_000 {
                self.attested.clear();
            }
            self.attested.insert(attestation);
        }
        let known_member = {
            let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
            view.members
                .iter()
                .any(|m| m.member_id == from.member_id && m.keys.contains(&from.member_key))
                || view
                    .peers
                    .iter()
                    .any(|p| p.member_key == from.member_key && p.member_id == from.member_id)
        };
        if !known_member {
            return Err("the sender's member key belongs to no member of this mesh".into());
        }
        let to_member = if envelope.key.to == self.session_key {
            false
        } else if envelope.key.to == self.member_key {
            true
        } else {
            return Err("the message is sealed for another key".into());
        };
        let cache_key = (to_member, from.session_key.clone());
        if !self.opening.contains_key(&cache_key) {
            let own = if to_member {
                &self.member
            } else {
                &self.session
            };
            let shared = e2e::SharedKey::new(own, &from.session_key)
                .ok_or("the sender's session key is malformed")?;
            if self.opening.len() > 10_000 {
                self.opening.clear();
            }
            self.opening.insert(cache_key.clone(), shared);
        }
        let plain = e2e::open_with(&self.opening[&cache_key], &envelope.body, &envelope.key)
            .map_err(|err| err.to_string())?;
        match sealed::unwrap(&plain).map_err(|err| err.to_string())? {
            // An older client's message: nothing sealed to check it by.
            (None, text) => Ok((text.to_owned(), None)),
            (Some(header), text) => {
                header
                    .check(envelope, self.ids_required)
                    .map_err(|why| format!("{why}; not shown"))?;
                Ok((text.to_owned(), Some(header.sent_at)))
            }
        }
    }
}

/// A relayed permission request is acknowledged by the command that keeps
/// it for its owner to answer (`inbox`, `approve`), never on receipt: a
/// one-off `peers` or `send` on the same machine must not take it from the
/// broker (a message sealed for a machine key goes to one of its sessions).
fn held_for_the_caller(text: &str) -> bool {
    matches!(
        claudemesh_api::permission::Payload::parse(text),
        Some(claudemesh_api::permission::Payload::PermissionRequest(_))
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_urls_become_broker_urls() {
        assert_eq!(
            super::broker_url("http://127.0.0.1:3000/"),
            "ws://127.0.0.1:3000/api/mesh/ws"
        );
        assert_eq!(
            super::broker_url("https://claudemesh.com"),
            "wss://claudemesh.com/api/mesh/ws"
        );
    }
}
