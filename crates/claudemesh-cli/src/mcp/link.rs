//! The MCP server's connection to the broker, as the launched session.
//!
//! It connects in the background and again after any drop, with backoff:
//! each wait drawn at random below a ceiling of 0.5 s doubling to 30 s
//! (full jitter, see [`Backoff`]: the sessions of an instance that died do
//! not all come back at the same instants); each connection is attested afresh by the
//! member key when the launch's attestation is near its end, so a Claude
//! Code session can outlive the 24-hour bound. What it hears becomes
//! [`Notice`]s for the MCP server; message ids are remembered across
//! reconnects, so Claude sees each message once.

use claudemesh_api::broker::{BrokerErrorCode, PeerStatus};
use claudemesh_api::e2e::KeyPair;
use claudemesh_client::{
    Backoff, Client, ClientError, Event, Options, Presence, Received, SeenIds, SessionIdentity,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

use crate::stores::session_dir::SessionFile;

/// A new attestation is made when the one at hand ends within this.
const REATTEST_BEFORE_MS: i64 = 10 * 60 * 1000;
/// How long a fresh attestation lasts: under the broker's 24 h bound.
const ATTEST_FOR_MS: i64 = 23 * 60 * 60 * 1000;

/// What the MCP server is told.
pub enum Notice {
    Message(Box<Received>),
    Joined(String),
    Left(String),
    /// The session can no longer be in the mesh (removed, or its key no
    /// longer belongs to a member); the link stops.
    Gone(String),
}

/// Where the link stands, for tools and `mesh_info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Connecting,
    Connected,
    /// Waiting to try again, after this.
    Retrying(String),
    Gone(String),
}

struct Shared {
    client: Option<Arc<Client>>,
    state: State,
    status: PeerStatus,
    summary: String,
    seen: SeenIds,
    /// Messages handled (pushed to Claude, or read with check_messages) and
    /// acknowledged; a repeat of one is acknowledged again.
    handled: SeenIds,
}

#[derive(Clone)]
pub struct Link {
    shared: Arc<Mutex<Shared>>,
    connected: watch::Receiver<bool>,
}

impl Link {
    /// Starts connecting; notices arrive on the returned receiver.
    pub fn start(
        session: SessionFile,
        member: KeyPair,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> (Self, mpsc::UnboundedReceiver<Notice>) {
        let shared = Arc::new(Mutex::new(Shared {
            client: None,
            state: State::Connecting,
            status: PeerStatus::Idle,
            summary: String::new(),
            seen: SeenIds::default(),
            handled: SeenIds::default(),
        }));
        let (notices, notices_rx) = mpsc::unbounded_channel();
        let (connected_tx, connected) = watch::channel(false);
        let link = Self { shared, connected };
        tokio::spawn(run(
            link.clone(),
            session,
            member,
            notices,
            connected_tx,
            Arc::new(log),
        ));
        (link, notices_rx)
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `within` for the first connection.
    pub async fn wait_connected(&self, within: Duration) -> bool {
        let mut connected = self.connected.clone();
        tokio::time::timeout(within, connected.wait_for(|c| *c))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn client(&self) -> Option<Arc<Client>> {
        self.lock().client.clone()
    }

    pub fn state(&self) -> State {
        self.lock().state.clone()
    }

    pub fn status(&self) -> (PeerStatus, String) {
        let shared = self.lock();
        (shared.status, shared.summary.clone())
    }

    /// Sets the status now and for every later connection.
    pub fn set_status(&self, status: PeerStatus) -> Result<(), ClientError> {
        let client = {
            let mut shared = self.lock();
            shared.status = status;
            shared.client.clone()
        };
        client.map_or(Ok(()), |c| c.set_status(status))
    }

    pub fn set_summary(&self, summary: &str) -> Result<(), ClientError> {
        let client = {
            let mut shared = self.lock();
            shared.summary = summary.to_owned();
            shared.client.clone()
        };
        client.map_or(Ok(()), |c| c.set_summary(summary))
    }

    /// Whether this message id is new to this session (across reconnects).
    fn first_time(&self, id: &str) -> bool {
        self.lock().seen.first_time(id)
    }

    /// Records that Claude has these messages (pushed, or read): the broker
    /// keeps a message until then, so one that arrived but was never shown
    /// (Claude Code exited first) goes to the member's next session.
    pub fn handled(&self, ids: Vec<String>) {
        let client = {
            let mut shared = self.lock();
            for id in &ids {
                shared.handled.first_time(id);
            }
            shared.client.clone()
        };
        if let Some(client) = client {
            let _ = client.ack(ids);
        }
    }

    fn was_handled(&self, id: &str) -> bool {
        self.lock().handled.contains(id)
    }

    fn set(&self, state: State, client: Option<Arc<Client>>) {
        let mut shared = self.lock();
        shared.state = state;
        shared.client = client;
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

/// The session's identity for the next connection: the launch's
/// attestation while it lasts, then a fresh one from the member key.
fn identity(session: &SessionFile, member: &KeyPair) -> Option<SessionIdentity> {
    let key = KeyPair::from_secret_hex(&session.session_secret_key)?;
    let member = KeyPair::from_secret_hex(&member.secret_hex())?;
    if session.attestation_expires_at - now_ms() > REATTEST_BEFORE_MS {
        return Some(SessionIdentity {
            mesh_id: session.mesh_id.clone(),
            member,
            session: key,
            attestation: claudemesh_api::broker::Attestation {
                expires_at: session.attestation_expires_at,
                signature: session.attestation_signature.clone(),
                rights: session.rights.clone(),
            },
        });
    }
    // A fresh attestation keeps the launch's limits: least privilege holds
    // for the whole session.
    Some(SessionIdentity::limited(
        &session.mesh_id,
        member,
        key,
        now_ms() + ATTEST_FOR_MS,
        session.rights.clone(),
    ))
}

/// Refusals after which trying again cannot help.
fn final_refusal(code: BrokerErrorCode) -> bool {
    matches!(
        code,
        BrokerErrorCode::NotAMember | BrokerErrorCode::Removed | BrokerErrorCode::Replaced
    )
}

async fn run(
    link: Link,
    session: SessionFile,
    member: KeyPair,
    notices: mpsc::UnboundedSender<Notice>,
    connected: watch::Sender<bool>,
    log: Arc<dyn Fn(&str) + Send + Sync>,
) {
    let mut backoff = Backoff::reconnecting();
    loop {
        let Some(identity) = identity(&session, &member) else {
            let why = "the session's keys in session.json are damaged".to_owned();
            link.set(State::Gone(why.clone()), None);
            let _ = notices.send(Notice::Gone(why));
            return;
        };
        let (status, summary) = link.status();
        let presence = Presence {
            display_name: session.display_name.clone(),
            role: session.role.clone(),
            groups: session.groups.clone(),
            status,
            summary,
        };
        // Messages are acknowledged once Claude has them (see `handled`).
        let options = Options {
            ack_on_receipt: false,
        };
        let why = match Client::connect_with(&session.server, identity, presence, options).await {
            Ok(client) => {
                let client = Arc::new(client);
                log(&format!(
                    "connected to the broker as {} in {}",
                    session.display_name, session.mesh_slug
                ));
                link.set(State::Connected, Some(Arc::clone(&client)));
                let _ = connected.send(true);
                backoff.reset();
                let (code, message) = pump(&link, &client, &notices, log.as_ref()).await;
                link.set(State::Retrying(message.clone()), None);
                if let Some(code) = code
                    && final_refusal(code)
                {
                    let why = format!("{message} ({})", code.as_str());
                    log(&format!("the broker ended this session: {why}"));
                    link.set(State::Gone(why.clone()), None);
                    let _ = notices.send(Notice::Gone(why));
                    return;
                }
                message
            }
            Err(ClientError::Refused { code, message, .. }) if final_refusal(code) => {
                let why = format!("{message} ({})", code.as_str());
                log(&format!("the broker refused this session: {why}"));
                link.set(State::Gone(why.clone()), None);
                let _ = notices.send(Notice::Gone(why));
                return;
            }
            Err(err) => err.to_string(),
        };
        let wait = backoff.next_wait();
        log(&format!(
            "broker connection lost ({why}); retrying in {wait:.1?}"
        ));
        link.set(State::Retrying(why), None);
        tokio::time::sleep(wait).await;
    }
}

/// Passes on what one connection hears, until it closes.
async fn pump(
    link: &Link,
    client: &Client,
    notices: &mpsc::UnboundedSender<Notice>,
    log: &(dyn Fn(&str) + Send + Sync),
) -> (Option<BrokerErrorCode>, String) {
    // Names of the sessions present, to say who left.
    let mut names: std::collections::HashMap<String, String> = client
        .welcome()
        .peers
        .iter()
        .map(|p| (p.session_key.clone(), p.display_name.clone()))
        .collect();
    while let Some(event) = client.next_event().await {
        match event {
            Event::Message(message) => {
                if link.first_time(&message.id) {
                    let _ = notices.send(Notice::Message(Box::new(message)));
                } else if link.was_handled(&message.id) {
                    let _ = client.ack(vec![message.id]);
                }
            }
            Event::PeerJoined(peer) => {
                names.insert(peer.session_key, peer.display_name.clone());
                let _ = notices.send(Notice::Joined(peer.display_name));
            }
            Event::PeerLeft(key) => {
                let name = names
                    .remove(&key)
                    .unwrap_or_else(|| format!("session {}", &key[..key.len().min(8)]));
                let _ = notices.send(Notice::Left(name));
            }
            // Never shown to Claude: forged, or copied or relabelled by
            // whoever holds the broker's database. The log says so.
            Event::Rejected { id, reason } => {
                log(&format!("dropped message {id}: {reason}"));
            }
            Event::PeerUpdated(_) => {}
            Event::Closed { code, message } => return (code, message),
        }
    }
    (None, "the connection closed".into())
}
