//! The connections this instance holds, indexed by session key, member key
//! and mesh, and the directory of each mesh it serves (which keys may
//! receive messages there).
//!
//! The hub holds nothing that matters after a crash: presence and messages
//! are in the tables. It only routes events to connection tasks, each of
//! which owns its socket.

use super::socket::Utf8Bytes;
use crate::meshes::grant_store::MeshGrants;
use claudemesh_api::broker::{
    BrokerErrorCode, Envelope, MemberKeys, Peer, PeerStatus, ServerFrame,
};
use claudemesh_api::wire::Capability;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

/// Events waiting per connection before it is told to read the table
/// instead (a slow reader cannot make the broker buffer without bound).
pub const CONN_QUEUE: usize = 256;

pub enum ConnEvent {
    /// A frame ready to send (presence).
    Frame(Utf8Bytes),
    /// A message for this session, and how far it has got.
    Deliver(Arc<Envelope>, Stage),
    /// Read this session's waiting messages from the table.
    Backlog,
    Close(BrokerErrorCode, String),
}

/// How far a message handed to a connection has got. A message accepted
/// here reaches the local recipients twice: once the writer holds it, while
/// it is committed (`Accepted`), and when the writer is done with it
/// (`Committed` or `Abandoned`), so that a connection that missed the first
/// (it was not registered yet, or its queue was full) still gets it, and one
/// that sent it already does not send it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Accepted here, at this instant, and being committed.
    Accepted(std::time::Instant),
    /// Accepted here at this instant, and now stored.
    Committed(std::time::Instant),
    /// Accepted here and sent early, then not stored: the database failed,
    /// or another message took its id meanwhile. Sends nothing.
    Abandoned,
    /// Stored, and read from the table (another instance's, or a backlog).
    Stored,
}

pub struct ConnHandle {
    pub conn_id: String,
    pub mesh_id: String,
    pub member_id: String,
    pub session_key: String,
    pub member_key: String,
    pub tx: mpsc::Sender<ConnEvent>,
    /// An observer (`hello.observer`): gets the mesh's presence and what is
    /// sealed for its member key, like any connection here, but is in no
    /// table, so no peer list or count has it.
    pub observer: bool,
    /// Set when an event did not fit the queue: the connection reads its
    /// waiting messages from the table once it has caught up.
    pub behind: std::sync::atomic::AtomicBool,
}

impl ConnHandle {
    fn push(&self, event: ConnEvent) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            // Nothing is lost: a message waits in the table. (A presence
            // frame is dropped; the peer list is asked for afresh anyway.)
            self.behind
                .store(true, std::sync::atomic::Ordering::Release);
            crate::metrics::METRICS.broker_queue_overflows.inc();
        }
    }
}

/// Which keys of a mesh may receive messages, and whose they are.
#[derive(Default)]
pub struct Directory {
    /// Connected session key → member id.
    pub sessions: HashMap<String, String>,
    /// Member machine key → member id.
    pub member_keys: HashMap<String, String>,
    /// What each member allows each other member.
    pub grants: MeshGrants,
}

#[derive(Default)]
struct Inner {
    conns: HashMap<String, Arc<ConnHandle>>,
    by_key: HashMap<String, HashSet<String>>,
    by_mesh: HashMap<String, HashSet<String>>,
    /// Member id → its observers connected here (counted on admission, so
    /// kept rather than found by a scan of every connection).
    observers: HashMap<String, usize>,
    directories: HashMap<String, Directory>,
}

/// A place among a member's observers on this instance (see
/// [`Hub::reserve_observer`]).
pub struct ObserverSlot<'hub> {
    hub: &'hub Hub,
    member_id: String,
    registered: bool,
}

impl Drop for ObserverSlot<'_> {
    fn drop(&mut self) {
        if !self.registered {
            Hub::release_observer(&mut self.hub.lock(), &self.member_id);
        }
    }
}

#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves maps that are
        // still consistent enough to route by; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place among a member's observers here if fewer than `limit`
    /// hold one. Taken at admission, in one step with the count, so that
    /// observers admitted at the same moment cannot pass the limit
    /// together; given back when the slot is dropped unless a connection
    /// registered with it (it is then given back when that one leaves).
    pub fn reserve_observer(&self, member_id: &str, limit: usize) -> Option<ObserverSlot<'_>> {
        let mut inner = self.lock();
        let count = inner.observers.entry(member_id.to_owned()).or_default();
        if *count >= limit {
            if *count == 0 {
                inner.observers.remove(member_id);
            }
            return None;
        }
        *count += 1;
        Some(ObserverSlot {
            hub: self,
            member_id: member_id.to_owned(),
            registered: false,
        })
    }

    fn release_observer(inner: &mut Inner, member_id: &str) {
        if let Some(count) = inner.observers.get_mut(member_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                inner.observers.remove(member_id);
            }
        }
    }

    /// Adds a connection (an observer with the slot it was admitted with);
    /// returns the other local connections of the same session (a
    /// reconnect), which the caller closes.
    pub fn register(
        &self,
        handle: Arc<ConnHandle>,
        observer_slot: Option<ObserverSlot<'_>>,
    ) -> Vec<Arc<ConnHandle>> {
        debug_assert_eq!(handle.observer, observer_slot.is_some());
        if let Some(mut slot) = observer_slot {
            // Its place is given back when this connection leaves.
            slot.registered = true;
        }
        let mut inner = self.lock();
        let replaced: Vec<Arc<ConnHandle>> = inner
            .by_key
            .get(&handle.session_key)
            .into_iter()
            .flatten()
            .filter_map(|id| inner.conns.get(id))
            .filter(|other| other.session_key == handle.session_key)
            .cloned()
            .collect();
        for key in [&handle.session_key, &handle.member_key] {
            inner
                .by_key
                .entry(key.clone())
                .or_default()
                .insert(handle.conn_id.clone());
        }
        inner
            .by_mesh
            .entry(handle.mesh_id.clone())
            .or_default()
            .insert(handle.conn_id.clone());
        inner.conns.insert(handle.conn_id.clone(), handle);
        replaced
    }

    pub fn unregister(&self, conn_id: &str) {
        let mut inner = self.lock();
        let Some(handle) = inner.conns.remove(conn_id) else {
            return;
        };
        if handle.observer {
            Self::release_observer(&mut inner, &handle.member_id);
        }
        for key in [&handle.session_key, &handle.member_key] {
            if let Some(ids) = inner.by_key.get_mut(key) {
                ids.remove(conn_id);
                if ids.is_empty() {
                    inner.by_key.remove(key);
                }
            }
        }
        if let Some(ids) = inner.by_mesh.get_mut(&handle.mesh_id) {
            ids.remove(conn_id);
            if ids.is_empty() {
                inner.by_mesh.remove(&handle.mesh_id);
                // No one here to serve in that mesh: forget its directory.
                inner.directories.remove(&handle.mesh_id);
            }
        }
    }

    pub fn serves_mesh(&self, mesh_id: &str) -> bool {
        self.lock().by_mesh.contains_key(mesh_id)
    }

    /// Hands each envelope to the local connections holding its recipient
    /// key, at the stage its message has reached.
    pub fn deliver(&self, envelopes: impl IntoIterator<Item = (Arc<Envelope>, Stage)>) {
        let inner = self.lock();
        for (envelope, stage) in envelopes {
            let Some(ids) = inner.by_key.get(&envelope.key.to) else {
                continue;
            };
            for id in ids {
                if let Some(conn) = inner.conns.get(id) {
                    conn.push(ConnEvent::Deliver(Arc::clone(&envelope), stage));
                }
            }
        }
    }

    /// Sends a frame to every local connection of a mesh but one session.
    pub fn to_mesh(&self, mesh_id: &str, except_session: &str, frame: Utf8Bytes) {
        let inner = self.lock();
        for id in inner.by_mesh.get(mesh_id).into_iter().flatten() {
            if let Some(conn) = inner.conns.get(id)
                && conn.session_key != except_session
            {
                conn.push(ConnEvent::Frame(frame.clone()));
            }
        }
    }

    /// Sends a peer's presence (`make` builds the frame) to every local
    /// connection of its mesh but its own: in full to those its member
    /// allows `presence`, without status and summary to the others.
    pub fn peer_to_mesh(&self, mesh_id: &str, peer: Peer, make: impl Fn(Peer) -> ServerFrame) {
        let inner = self.lock();
        let grants = inner.directories.get(mesh_id).map(|d| &d.grants);
        let hidden =
            Utf8Bytes::from(serde_json::to_string(&make(scrubbed(&peer))).unwrap_or_default());
        let full = frame(&make(peer.clone()));
        for id in inner.by_mesh.get(mesh_id).into_iter().flatten() {
            if let Some(conn) = inner.conns.get(id)
                && conn.session_key != peer.session_key
            {
                let sees = conn.member_id == peer.member_id
                    || grants.is_none_or(|g| {
                        g.allows(&peer.member_id, &conn.member_id, Capability::Presence)
                    });
                conn.push(ConnEvent::Frame(if sees {
                    full.clone()
                } else {
                    hidden.clone()
                }));
            }
        }
    }

    /// What `viewer` may see and do: hides the status and summary of peers
    /// whose member does not grant them `presence`, and marks the members
    /// who do not take their direct messages. Needs the directory: `false`
    /// when it is not loaded.
    pub fn view_for(
        &self,
        mesh_id: &str,
        viewer: &str,
        peers: &mut [Peer],
        members: &mut [MemberKeys],
    ) -> bool {
        let inner = self.lock();
        let Some(dir) = inner.directories.get(mesh_id) else {
            return false;
        };
        for peer in peers.iter_mut() {
            if peer.member_id != viewer
                && !dir
                    .grants
                    .allows(&peer.member_id, viewer, Capability::Presence)
            {
                *peer = scrubbed(peer);
            }
        }
        for member in members.iter_mut() {
            member.permits_dm = member.member_id == viewer
                || dir.grants.allows(&member.member_id, viewer, Capability::Dm);
            member.may_approve = member.member_id != viewer
                && dir
                    .grants
                    .allows(viewer, &member.member_id, Capability::Approve);
        }
        true
    }

    /// Closes the local connections matching `which`.
    pub fn close_where(
        &self,
        which: impl Fn(&ConnHandle) -> bool,
        code: BrokerErrorCode,
        message: &str,
    ) {
        let inner = self.lock();
        for conn in inner.conns.values().filter(|c| which(c)) {
            send_close(conn, code, message);
        }
    }

    /// Closes the connections of `session_key` other than `keep`: found
    /// through the key index, as every connection's admission asks this
    /// (a scan of every connection made 10,000 admissions quadratic).
    pub fn close_session_except(
        &self,
        session_key: &str,
        keep: &str,
        code: BrokerErrorCode,
        message: &str,
    ) {
        let inner = self.lock();
        for conn in inner
            .by_key
            .get(session_key)
            .into_iter()
            .flatten()
            .filter(|id| id.as_str() != keep)
            .filter_map(|id| inner.conns.get(id))
            .filter(|c| c.session_key == session_key)
        {
            send_close(conn, code, message);
        }
    }

    /// Every local connection's `(conn_id, session_key, member_id)`.
    pub fn connections(&self) -> Vec<(String, String, String)> {
        self.lock()
            .conns
            .values()
            .map(|c| {
                (
                    c.conn_id.clone(),
                    c.session_key.clone(),
                    c.member_id.clone(),
                )
            })
            .collect()
    }

    /// Tells every local connection to look for waiting messages.
    pub fn wake_all(&self) {
        for conn in self.lock().conns.values() {
            conn.push(ConnEvent::Backlog);
        }
    }

    /// Reads or changes a mesh's directory (`None` when not loaded).
    pub fn with_directory<T>(
        &self,
        mesh_id: &str,
        f: impl FnOnce(Option<&mut Directory>) -> T,
    ) -> T {
        f(self.lock().directories.get_mut(mesh_id))
    }

    /// Installs a freshly read directory, if this instance still serves the mesh.
    pub fn set_directory(&self, mesh_id: &str, directory: Directory) {
        let mut inner = self.lock();
        if inner.by_mesh.contains_key(mesh_id) {
            inner.directories.insert(mesh_id.to_owned(), directory);
        }
    }

    pub fn forget_directories(&self) {
        self.lock().directories.clear();
    }
}

/// A peer as seen by a member it does not grant `presence`: still there,
/// without its status and summary.
pub fn scrubbed(peer: &Peer) -> Peer {
    Peer {
        status: PeerStatus::Idle,
        summary: String::new(),
        ..peer.clone()
    }
}

/// A server frame as WebSocket text.
pub fn frame(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).unwrap_or_default())
}

/// Tells a connection to close. A close must get through even to a full
/// queue: the task also watches for its sender side, so spawn the send.
fn send_close(conn: &ConnHandle, code: BrokerErrorCode, message: &str) {
    let tx = conn.tx.clone();
    let message = message.to_owned();
    tokio::spawn(async move {
        let _ = tx.send(ConnEvent::Close(code, message)).await;
    });
}
