//! The broker's face to the rest of the server ([`Broker`]: started with
//! the server, told when a membership ends, asked who is connected), and
//! what runs behind it on each instance: the heartbeat, the sweeps, and the
//! events from the other instances applied to this one's connections.

use super::bus::{Bus, BusError, BusEvent};
use super::hub::{Directory, Hub, Stage, frame, scrubbed};
use super::limits;
use super::store;
use super::stored_ids::StoredIds;
use super::welcome_reads::WelcomeReads;
use super::writer::Writer;
use crate::app::config::Config;
use crate::clock::{Clock, SECOND_MS};
use crate::db::ids::new_id;
use crate::db::pool::{Db, Engine};
use crate::meshes::grant_store::{self, Caps};
use crate::meshes::log::{Appender, LogEvent};
use claudemesh_api::broker::{BrokerErrorCode, Limits, MemberKeys, Peer, ServerFrame};
use claudemesh_api::mesh_log::LogKind;
use claudemesh_api::wire::Capability;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often an instance says it is alive, and how long its silence means
/// it crashed (its sessions are then removed by the others).
const BEAT_EVERY: Duration = Duration::from_secs(5);
const DEAD_AFTER_MS: i64 = 30 * SECOND_MS;
/// How often local sessions are checked against the tables (memberships
/// ended while a notification was lost, rows deleted under us).
const RECONCILE_EVERY: Duration = Duration::from_secs(5);
/// Expired messages stay this long for status queries, then go.
const KEEP_EXPIRED_MS: i64 = 7 * 24 * 3600 * SECOND_MS;

#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub send_burst: u32,
    pub sends_per_minute: u32,
    pub max_peers: u32,
    pub max_connections_per_member: u32,
    pub message_ttl_ms: i64,
    /// Ping every this often; a peer silent for `silent_after` is gone.
    pub ping_every: Duration,
    pub silent_after: Duration,
}

impl BrokerSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            send_burst: config.broker_send_burst,
            sends_per_minute: config.broker_sends_per_minute,
            max_peers: config.broker_max_peers,
            max_connections_per_member: config.broker_max_connections_per_member,
            message_ttl_ms: i64::try_from(config.broker_message_ttl)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(SECOND_MS),
            ping_every: Duration::from_secs(30),
            silent_after: Duration::from_secs(75),
        }
    }

    pub(super) fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: claudemesh_api::broker::MAX_FRAME_BYTES as u64,
            max_message_bytes: claudemesh_api::broker::MAX_MESSAGE_BYTES as u64,
            send_burst: self.send_burst,
            sends_per_minute: self.sends_per_minute,
            message_ttl_seconds: u64::try_from(self.message_ttl_ms / SECOND_MS).unwrap_or(0),
        }
    }
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

#[derive(Clone)]
pub struct Broker(Arc<Inner>);

pub struct Inner {
    pub(super) pool: sqlx::AnyPool,
    pub(super) engine: Engine,
    clock: Arc<dyn Clock>,
    pub(super) settings: BrokerSettings,
    pub(super) instance_id: String,
    pub(super) bus: Bus,
    pub(super) hub: Arc<Hub>,
    pub(super) writer: Writer,
    pub(super) rate: limits::SendRate,
    pub(super) shutdown: watch::Sender<bool>,
    /// Copies not stored because the recipient does not grant the
    /// capability, by capability (dm, group, presence).
    drops: [std::sync::atomic::AtomicU64; Capability::ALL.len()],
    log: Appender,
    /// Whether an id is stored already.
    stored_ids: StoredIds,
    /// Ids of messages this instance has accepted and the writer has not
    /// finished with (see [`Broker::may_deliver_early`]).
    accepting: std::sync::Mutex<std::collections::HashSet<String>>,
    /// What the welcomes list, read once for sessions connecting together.
    pub(super) welcome_reads: WelcomeReads,
    /// Room for the admissions that may use the database at once.
    pub(super) admitting: tokio::sync::Semaphore,
    /// Reads of a session's waiting messages that failed (each is tried
    /// again later on its connection).
    backlog_read_failures: std::sync::atomic::AtomicU64,
}

/// Sessions admitted at once, at most (their queries, their welcomes being
/// built). Beyond, a burst of connections (an instance restarting: 10,000
/// at once) waits its turn here: in the database pool, a queue of 10,000
/// held up every HTTP request and the broker's own writers for seconds
/// (now the pool's queue is at most this long), and 10,000 welcomes being
/// built took their memory together (measured: 60-90 KiB a session after
/// the burst, against 15 with this limit).
const MAX_ADMITTING: usize = 32;

/// An id [`Broker::may_deliver_early`] let through, held until dropped.
pub(super) struct EarlyClaim {
    broker: Broker,
    id: String,
}

impl Drop for EarlyClaim {
    fn drop(&mut self) {
        self.broker
            .accepting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl std::ops::Deref for Broker {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Broker {
    /// Starts the broker's background work: the writer, the heartbeat and
    /// sweeps, and on PostgreSQL the listener for the other instances (on
    /// the database's NOTIFY, or the NATS server `bus_url` names).
    pub async fn start(
        db: &Db,
        database_url: Option<&str>,
        bus_url: Option<&str>,
        clock: Arc<dyn Clock>,
        settings: BrokerSettings,
    ) -> Result<Self, StartError> {
        let instance_id = new_id("ins");
        let bus = Bus::open(&instance_id, &db.pool, database_url, bus_url).await?;
        if db.engine == Engine::Sqlite {
            // One instance only: whatever sessions are recorded are from a
            // process that is gone.
            store::clear_sessions(&db.pool).await?;
        }
        store::beat(&db.pool, &instance_id, clock.now_ms()).await?;
        let hub = Arc::new(Hub::default());
        let log = Appender::start(db.pool.clone());
        let writer = {
            let log = log.clone();
            Writer::start(
                db.pool.clone(),
                db.sqlite_reader.as_ref().map(|r| r.path().to_owned()),
                bus.clone(),
                // The local recipients have had them since they were
                // accepted (see `connection::send_message`).
                move |messages| {
                    for message in &messages {
                        log.push(&message.mesh_id, message.created_at, message_event(message));
                    }
                },
            )
        };
        let broker = Self(Arc::new(Inner {
            pool: db.pool.clone(),
            engine: db.engine,
            clock,
            rate: limits::SendRate::new(settings.send_burst, settings.sends_per_minute),
            settings,
            instance_id,
            bus,
            hub,
            writer,
            shutdown: watch::channel(false).0,
            drops: Default::default(),
            log,
            stored_ids: StoredIds::start(db.pool.clone(), db.sqlite_reader.clone(), database_url),
            accepting: Default::default(),
            welcome_reads: WelcomeReads::default(),
            admitting: tokio::sync::Semaphore::new(MAX_ADMITTING),
            backlog_read_failures: Default::default(),
        }));
        broker.spawn_housekeeping();
        let (on_event, on_gap) = (broker.clone(), broker.clone());
        broker.bus.listen(
            move |event| on_event.apply(event),
            move || on_gap.resync(),
            broker.shutdown.subscribe(),
        );
        Ok(broker)
    }

    pub(super) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Tells when the server is stopping (long-lived responses end then).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Where the broker's mesh log events go (written a moment later).
    pub(super) fn log(&self) -> &Appender {
        &self.log
    }

    /// Closes every connection (the server is stopping).
    pub fn shut_down(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A membership ended (removed by an admin, or left): its sessions are
    /// refused from now on and closed on every instance.
    pub async fn member_removed(&self, mesh_id: &str, member_id: &str) {
        self.publish(BusEvent::Removed {
            mesh_id: mesh_id.to_owned(),
            member_id: member_id.to_owned(),
        })
        .await;
    }

    /// The mesh was archived (`deleted` false) or deleted: its sessions
    /// close on every instance (new ones are refused by the hello).
    pub async fn mesh_closed(&self, mesh_id: &str, deleted: bool) {
        self.publish(BusEvent::Closed {
            mesh_id: mesh_id.to_owned(),
            deleted,
        })
        .await;
    }

    /// When each member of a mesh was last seen and how many sessions each
    /// has now: `(member_id, seen_at, sessions)`.
    pub async fn member_activity(
        &self,
        mesh_id: &str,
    ) -> Result<Vec<(String, Option<i64>, i64)>, sqlx::Error> {
        store::member_activity(&self.pool, mesh_id).await
    }

    /// Deletes the broker's rows of a mesh inside the transaction that
    /// deletes the mesh.
    pub async fn delete_mesh_rows(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        mesh_id: &str,
    ) -> Result<(), sqlx::Error> {
        store::delete_mesh_rows(tx, mesh_id).await
    }

    /// Drops the messages waiting for `recipient` from `sender` that a new
    /// grant refuses (direct ones, group and broadcast ones), inside the
    /// grant's transaction.
    pub async fn drop_waiting(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        recipient: &str,
        sender: &str,
        direct: bool,
        group: bool,
    ) -> Result<(), sqlx::Error> {
        store::drop_waiting(tx, recipient, sender, direct, group).await
    }

    /// Counts one copy refused or skipped for want of `cap`.
    pub(super) fn count_drop(&self, cap: Capability) {
        let at = Capability::ALL.iter().position(|c| *c == cap).unwrap_or(0);
        self.drops[at].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::METRICS
            .broker_grant_drops
            .with_label_values(&[cap.as_str()])
            .inc();
    }

    /// How many reads of a session's waiting messages failed on this
    /// instance.
    pub fn backlog_read_failures(&self) -> u64 {
        self.backlog_read_failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn backlog_read_failed(&self) {
        self.backlog_read_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::METRICS.broker_backlog_read_failures.inc();
    }

    /// Copies refused or skipped since start, by capability.
    pub fn drops_by_capability(&self) -> Vec<(Capability, u64)> {
        Capability::ALL
            .iter()
            .zip(&self.drops)
            .map(|(cap, n)| (*cap, n.load(std::sync::atomic::Ordering::Relaxed)))
            .collect()
    }

    /// What a member allows a peer changed: the broker's copy of the
    /// mesh's grants follows on every instance.
    pub async fn grant_changed(
        &self,
        mesh_id: &str,
        member_id: &str,
        peer_member_id: &str,
        caps: u8,
    ) {
        self.publish(BusEvent::Grant {
            mesh_id: mesh_id.to_owned(),
            member_id: member_id.to_owned(),
            peer_member_id: peer_member_id.to_owned(),
            caps,
        })
        .await;
    }

    /// Every connected session of a mesh, on any instance.
    pub async fn peers(&self, mesh_id: &str) -> Result<Vec<Peer>, sqlx::Error> {
        store::peers(&self.pool, mesh_id).await
    }

    /// Whether a message accepted under this id may reach the recipients
    /// connected here before the writer has stored it: only when no message
    /// with the id is stored, nor being stored by this instance. Otherwise
    /// it is a resend, or someone else's id, which the writer answers (a
    /// member who got a message could else send one of their own under its
    /// id, to be shown in its place to whoever had not got it yet). The
    /// claim on the id holds until it is dropped, once the writer has
    /// answered. (Another instance's message still being committed is not
    /// seen: the window is that commit.)
    pub(super) async fn may_deliver_early(&self, id: &str) -> Option<EarlyClaim> {
        let claimed = self
            .accepting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_owned());
        if !claimed {
            return None;
        }
        let claim = EarlyClaim {
            broker: self.clone(),
            id: id.to_owned(),
        };
        // Dropped (the claim released) unless the id is known to be new.
        (self.stored_ids.contains(id).await == Some(false)).then_some(claim)
    }

    /// Applies an event here and tells the other instances.
    pub(super) async fn publish(&self, event: BusEvent) {
        self.publish_all(std::slice::from_ref(&event)).await;
    }

    /// Applies events here, in order, and tells the other instances
    /// together (one statement on NOTIFY, one flush on NATS).
    pub(super) async fn publish_all(&self, events: &[BusEvent]) {
        if events.is_empty() {
            return;
        }
        for event in events {
            self.apply(event.clone());
        }
        if let Err(err) = self.bus.send(&self.pool, events).await {
            tracing::warn!(error = %err, "broker: could not notify the other instances");
        }
    }

    /// What an event means for the connections of this instance.
    fn apply(&self, event: BusEvent) {
        match event {
            BusEvent::Messages { mesh_id, ids } => {
                if !self.hub.serves_mesh(&mesh_id) {
                    return;
                }
                let broker = self.clone();
                tokio::spawn(async move {
                    match store::deliveries_of(&broker.pool, &ids).await {
                        Ok(envelopes) => broker
                            .hub
                            .deliver(envelopes.into_iter().map(|e| (Arc::new(e), Stage::Stored))),
                        // The recipients find them in their backlog later.
                        Err(err) => {
                            tracing::warn!(error = %err, "broker: cannot read new messages");
                            broker.hub.wake_all();
                        }
                    }
                });
            }
            BusEvent::Joined { mesh_id, peer } => {
                self.hub.with_directory(&mesh_id, |dir| {
                    if let Some(dir) = dir {
                        dir.sessions
                            .insert(peer.session_key.clone(), peer.member_id.clone());
                    }
                });
                self.hub
                    .peer_to_mesh(&mesh_id, peer, |peer| ServerFrame::PeerJoined { peer });
            }
            BusEvent::Left {
                mesh_id,
                session_key,
            } => {
                self.hub.with_directory(&mesh_id, |dir| {
                    if let Some(dir) = dir {
                        dir.sessions.remove(&session_key);
                    }
                });
                self.hub.to_mesh(
                    &mesh_id,
                    &session_key,
                    frame(&ServerFrame::PeerLeft {
                        session_key: session_key.clone(),
                    }),
                );
            }
            BusEvent::Updated { mesh_id, peer } => {
                self.hub
                    .peer_to_mesh(&mesh_id, peer, |peer| ServerFrame::PeerUpdated { peer });
            }
            BusEvent::Removed { mesh_id, member_id } => {
                self.hub.with_directory(&mesh_id, |dir| {
                    if let Some(dir) = dir {
                        dir.sessions.retain(|_, m| *m != member_id);
                        dir.member_keys.retain(|_, m| *m != member_id);
                    }
                });
                self.hub.close_where(
                    |c| c.mesh_id == mesh_id && c.member_id == member_id,
                    BrokerErrorCode::Removed,
                    "You are no longer a member of this mesh",
                );
            }
            BusEvent::Grant {
                mesh_id,
                member_id,
                peer_member_id,
                caps,
            } => self.hub.with_directory(&mesh_id, |dir| {
                if let Some(dir) = dir {
                    dir.grants
                        .set(&member_id, &peer_member_id, Caps::from_bits(caps));
                }
            }),
            BusEvent::Closed { mesh_id, deleted } => {
                self.hub.with_directory(&mesh_id, |dir| {
                    if let Some(dir) = dir {
                        dir.sessions.clear();
                    }
                });
                let (code, message) = if deleted {
                    (BrokerErrorCode::NotAMember, "This mesh was deleted")
                } else {
                    (BrokerErrorCode::MeshArchived, "This mesh was archived")
                };
                self.hub
                    .close_where(|c| c.mesh_id == mesh_id, code, message);
            }
            BusEvent::Kick {
                session_key,
                conn_id,
            } => self.hub.close_session_except(
                &session_key,
                &conn_id,
                BrokerErrorCode::Replaced,
                "This session connected again elsewhere",
            ),
        }
    }

    /// After a gap in the notifications: directories may be stale and
    /// messages may be waiting; re-read both.
    fn resync(&self) {
        self.hub.forget_directories();
        self.hub.wake_all();
        let broker = self.clone();
        tokio::spawn(async move { broker.reconcile().await });
    }

    /// `peers` and `members` as `viewer` may see them (see
    /// `Hub::view_for`), loading the mesh's directory first if it is not in
    /// memory.
    pub(super) async fn view_for(
        &self,
        mesh_id: &str,
        viewer: &str,
        mut peers: Vec<Peer>,
        mut members: Vec<MemberKeys>,
    ) -> Result<(Vec<Peer>, Vec<MemberKeys>), sqlx::Error> {
        if !self.hub.view_for(mesh_id, viewer, &mut peers, &mut members) {
            self.load_directory(mesh_id).await?;
            if !self.hub.view_for(mesh_id, viewer, &mut peers, &mut members) {
                // Not served here any more (the session just left): show
                // the least.
                for peer in &mut peers {
                    if peer.member_id != viewer {
                        *peer = scrubbed(peer);
                    }
                }
            }
        }
        Ok((peers, members))
    }

    /// The directory of a mesh, read from the tables when not in memory.
    pub(super) async fn load_directory(&self, mesh_id: &str) -> Result<(), sqlx::Error> {
        let peers = store::peers(&self.pool, mesh_id).await?;
        let members = store::member_keys(&self.pool, mesh_id).await?;
        let mut directory = Directory {
            grants: grant_store::load(&self.pool, mesh_id).await?,
            ..Directory::default()
        };
        for peer in peers {
            directory.sessions.insert(peer.session_key, peer.member_id);
        }
        for member in members {
            for key in member.keys {
                directory.member_keys.insert(key, member.member_id.clone());
            }
        }
        self.hub.set_directory(mesh_id, directory);
        Ok(())
    }

    fn spawn_housekeeping(&self) {
        let broker = self.clone();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(BEAT_EVERY);
            let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
            loop {
                tokio::select! {
                    _ = beat.tick() => broker.beat_and_sweep().await,
                    _ = reconcile.tick() => broker.reconcile().await,
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    async fn beat_and_sweep(&self) {
        let now = self.now();
        if let Err(err) = store::beat(&self.pool, &self.instance_id, now).await {
            tracing::warn!(error = %err, "broker: heartbeat failed");
            return;
        }
        match store::sweep_dead_instances(&self.pool, &self.instance_id, now - DEAD_AFTER_MS).await
        {
            Ok(gone) => {
                for (mesh_id, session_key) in gone {
                    self.publish(BusEvent::Left {
                        mesh_id,
                        session_key,
                    })
                    .await;
                }
            }
            Err(err) => tracing::warn!(error = %err, "broker: sweeping dead instances failed"),
        }
        if let Err(err) = store::sweep_expired_messages(&self.pool, now, KEEP_EXPIRED_MS).await {
            tracing::warn!(error = %err, "broker: sweeping expired messages failed");
        }
    }

    /// Closes local sessions whose membership ended (should a notification
    /// have been lost), and those whose row is gone (another instance swept
    /// them while this one could not reach the database): they reconnect
    /// and are recorded again.
    async fn reconcile(&self) {
        let connections = self.hub.connections();
        match store::sessions_of_instance(&self.pool, &self.instance_id).await {
            Ok(recorded) => {
                let lost: Vec<String> = connections
                    .iter()
                    .filter(|(conn_id, key, _)| !recorded.contains(&(key.clone(), conn_id.clone())))
                    .map(|(conn_id, _, _)| conn_id.clone())
                    .collect();
                if !lost.is_empty() {
                    // Observers are in no table: nothing of theirs is lost.
                    self.hub.close_where(
                        |c| !c.observer && lost.contains(&c.conn_id),
                        BrokerErrorCode::Internal,
                        "The broker lost track of this session; connect again",
                    );
                }
            }
            Err(err) => tracing::warn!(error = %err, "broker: reconciling sessions failed"),
        }
        let mut members: Vec<String> = connections.iter().map(|(_, _, m)| m.clone()).collect();
        members.sort();
        members.dedup();
        match store::ended_memberships(&self.pool, &members).await {
            Ok(ended) if !ended.is_empty() => self.hub.close_where(
                |c| ended.contains(&c.member_id),
                BrokerErrorCode::Removed,
                "You are no longer a member of this mesh",
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "broker: reconciling sessions failed"),
        }
    }
}

/// A stored message in the mesh log: who sent it, how, to how many, how
/// big; never its body.
fn message_event(message: &store::NewMessage) -> LogEvent {
    let sealed = message.body.ciphertext.trim_end_matches('=').len() * 3 / 4;
    let members: std::collections::HashSet<&str> = message
        .deliveries
        .iter()
        .map(|(_, member)| member.as_str())
        .collect();
    LogEvent::new(LogKind::MessageSent)
        .with("message_id", &message.id)
        .with("sender", &message.from.display_name)
        .with("sender_member_id", &message.from.member_id)
        .with("sender_session_key", &message.from.session_key)
        .with("message_kind", message.kind.as_str())
        .with("group", message.group.as_deref().unwrap_or_default())
        .with("recipients", members.len())
        .with("copies", message.deliveries.len())
        .with("size", sealed)
}
