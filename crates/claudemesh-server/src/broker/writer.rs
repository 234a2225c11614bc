//! One writer for the broker's hot writes: new messages and acknowledgements.
//!
//! Every message is stored before its sender hears `sent`. Committing each
//! on its own would cap the broker at what one transaction per message
//! costs (measured on the device-code path: ~1,650 single-row inserts a
//! second on SQLite); instead the writer takes whatever is queued (up to
//! [`MAX_BATCH`] operations), writes it as a few multi-row statements in one
//! transaction, and only then answers the senders. Under load, batches grow
//! and each commit carries more messages; idle, a message waits for nothing.
//! The other instances hear of messages only once they are durable: on
//! PostgreSQL's NOTIFY the same transaction carries the notifications, on
//! NATS they are published once it has committed (see `bus`).
//!
//! On a SQLite file the writer skips sqlx: each sqlx statement is handed to
//! the connection's own thread and back (see `sqlite_reader.rs`), which cost
//! more than the insert itself. A batch instead runs on a blocking thread,
//! on one rusqlite connection with cached statements (the same bundled
//! SQLite). Measured with 100 peers x 1,000 messages: 6,600 messages a
//! second through sqlx's multi-row statements, see bench/README.md for the
//! figures with this writer.

use super::bus::Bus;
use super::store::{self, NewMessage};
use crate::db::sqlite_checkpointer::Checkpointer;
use crate::metrics::METRICS;
use claudemesh_api::broker::KeyBox;
use sqlx::AnyPool;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Operations per transaction, at most.
const MAX_BATCH: usize = 512;
/// Rows per multi-row statement (SQLite allows 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 200;

/// What became of a message handed to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Committed with this batch.
    New,
    /// A message with this id is stored already (a sender's resend after a
    /// lost `sent`, or an id someone else took): nothing was written. Who
    /// owns it is for the caller to ask (see `store::stored_message`).
    Duplicate,
    /// Not stored: the database failed.
    Failed,
}

pub enum WriteOp {
    Insert(Arc<NewMessage>, oneshot::Sender<Stored>),
    /// These message ids reached a session holding these keys.
    Ack {
        keys: Vec<String>,
        ids: Vec<String>,
        at: i64,
        /// Told once committed, when the caller waits for that.
        done: Option<oneshot::Sender<bool>>,
    },
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<WriteOp>,
}

impl Writer {
    /// Starts the writer task; `stored` is called with each batch of
    /// messages once committed.
    pub fn start(
        pool: AnyPool,
        sqlite_file: Option<std::path::PathBuf>,
        bus: Bus,
        stored: impl Fn(Vec<Arc<NewMessage>>) + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        // Whichever connection writes, the log is left to this thread (the
        // pool's connections checkpoint only far past it, see `db::pool`).
        let checkpointer = sqlite_file.clone().and_then(|file| {
            Checkpointer::start(file)
                .map_err(|err| {
                    tracing::warn!(error = %err, "broker: no checkpointing thread; SQLite's own checkpoints");
                })
                .ok()
        });
        let backend = match sqlite_file.map(|file| open_sqlite(file, checkpointer.is_some())) {
            Some(Ok(conn)) => Backend::Sqlite(Arc::new(std::sync::Mutex::new(conn))),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "broker: direct SQLite writer unavailable; using the pool");
                Backend::Pool(pool)
            }
            None => Backend::Pool(pool),
        };
        tokio::spawn(async move {
            // Checkpoints for as long as the writer runs.
            let _checkpointer = checkpointer;
            run(backend, bus, rx, stored).await;
        });
        Self { tx }
    }

    /// Queues a message for storing; the receiver says what became of it
    /// once its batch is committed. `None` when the writer has stopped.
    pub async fn submit(&self, message: Arc<NewMessage>) -> Option<oneshot::Receiver<Stored>> {
        let (done, stored) = oneshot::channel();
        self.tx.send(WriteOp::Insert(message, done)).await.ok()?;
        Some(stored)
    }

    /// Records acknowledgements (fire and forget: an ack lost in a crash
    /// only means the message comes again, and recipients drop it by id).
    pub async fn ack(&self, keys: Vec<String>, ids: Vec<String>, at: i64) {
        let _ = self
            .tx
            .send(WriteOp::Ack {
                keys,
                ids,
                at,
                done: None,
            })
            .await;
    }

    /// Records acknowledgements and returns once they are committed.
    pub async fn ack_committed(&self, keys: Vec<String>, ids: Vec<String>, at: i64) -> bool {
        let (done, committed) = oneshot::channel();
        let op = WriteOp::Ack {
            keys,
            ids,
            at,
            done: Some(done),
        };
        if self.tx.send(op).await.is_err() {
            return false;
        }
        committed.await.unwrap_or(false)
    }
}

/// The writer's own connection to a SQLite file. With the checkpointing
/// thread running, its commits never stop to copy the log into the
/// database file (see [`crate::db::sqlite_checkpointer`]); without it, the
/// connection checkpoints as SQLite does by default.
fn open_sqlite(
    file: std::path::PathBuf,
    checkpointed: bool,
) -> rusqlite::Result<rusqlite::Connection> {
    let conn = store::open_direct(file)?;
    if checkpointed {
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
    }
    Ok(conn)
}

/// Where batches are written.
#[derive(Clone)]
enum Backend {
    Pool(AnyPool),
    Sqlite(Arc<std::sync::Mutex<rusqlite::Connection>>),
}

async fn run(
    backend: Backend,
    bus: Bus,
    mut rx: mpsc::Receiver<WriteOp>,
    stored: impl Fn(Vec<Arc<NewMessage>>),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Whatever is waiting, up to MAX_BATCH, once something is.
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        METRICS
            .broker_writer_queue
            .set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        METRICS.broker_writer_batch.observe(batch.len() as f64);
        let started = std::time::Instant::now();
        let written = write(&backend, &bus, &batch).await;
        METRICS
            .broker_writer_commit
            .observe(started.elapsed().as_secs_f64());
        // The ids this batch inserted: a message whose id is not among them
        // was stored before (or earlier in the batch), and is not again.
        let (ok, mut inserted) = match written {
            Ok(ids) => (true, ids),
            Err(err) => {
                tracing::warn!(error = %err, ops = batch.len(), "broker batch failed; retrying one by one");
                (false, HashSet::new())
            }
        };
        let mut committed = Vec::new();
        // The senders hear what became of their messages only once the
        // other instances have been told (see below).
        let mut answers = Vec::new();
        for op in batch.drain(..) {
            let alone = if ok {
                None
            } else {
                Some(
                    write(&backend, &bus, std::slice::from_ref(&op))
                        .await
                        .inspect_err(|err| tracing::error!(error = %err, "broker write failed")),
                )
            };
            let op_ok = !matches!(alone, Some(Err(_)));
            match op {
                WriteOp::Insert(message, done) => {
                    let outcome = match alone {
                        Some(Err(_)) => Stored::Failed,
                        Some(Ok(ids)) if ids.contains(&message.id) => Stored::New,
                        Some(Ok(_)) => Stored::Duplicate,
                        // The first of a batch's messages with an id takes it.
                        None if inserted.remove(&message.id) => Stored::New,
                        None => Stored::Duplicate,
                    };
                    if outcome == Stored::New {
                        committed.push(message);
                    }
                    answers.push((done, outcome));
                }
                WriteOp::Ack {
                    done: Some(done), ..
                } => {
                    let _ = done.send(op_ok);
                }
                WriteOp::Ack { done: None, .. } => {}
            }
        }
        // Told before `sent` goes out: an instance killed after this
        // batch's commit but before its news left would otherwise strand an
        // acknowledged message (on NOTIFY the news is in the commit itself).
        bus.announce_committed(
            committed
                .iter()
                .map(|m| (m.mesh_id.as_str(), m.id.as_str())),
        )
        .await;
        for (done, outcome) in answers {
            let _ = done.send(outcome);
        }
        if !committed.is_empty() {
            stored(committed);
        }
    }
}

/// The messages of a batch to insert: the first with each id (a sender may
/// resend one before the first copy is committed; the later copies are
/// answered as resends).
fn first_of_each_id(ops: &[WriteOp]) -> Vec<&Arc<NewMessage>> {
    let mut ids = HashSet::new();
    ops.iter()
        .filter_map(|op| match op {
            WriteOp::Insert(message, _) => Some(message),
            WriteOp::Ack { .. } => None,
        })
        .filter(|message| ids.insert(message.id.as_str()))
        .collect()
}

/// Writes one batch in one transaction; returns the ids of the messages it
/// inserted (those whose id was not stored already).
async fn write(backend: &Backend, bus: &Bus, ops: &[WriteOp]) -> Result<HashSet<String>, String> {
    match backend {
        Backend::Pool(pool) => write_pool(pool, bus, ops)
            .await
            .map_err(|err| err.to_string()),
        Backend::Sqlite(conn) => {
            let messages: Vec<Arc<NewMessage>> =
                first_of_each_id(ops).into_iter().map(Arc::clone).collect();
            let acks: Vec<(String, String, i64)> = ops
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Ack { keys, ids, at, .. } => Some((keys, ids, *at)),
                    WriteOp::Insert(..) => None,
                })
                .flat_map(|(keys, ids, at)| {
                    ids.iter().flat_map(move |id| {
                        keys.iter().map(move |key| (key.clone(), id.clone(), at))
                    })
                })
                .collect();
            let conn = Arc::clone(conn);
            tokio::task::spawn_blocking(move || {
                let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                store::write_batch_direct(&mut conn, &messages, &acks)
            })
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string())
        }
    }
}

async fn write_pool(
    pool: &AnyPool,
    bus: &Bus,
    ops: &[WriteOp],
) -> Result<HashSet<String>, sqlx::Error> {
    let offered: Vec<&NewMessage> = first_of_each_id(ops).into_iter().map(Arc::as_ref).collect();
    let mut tx = pool.begin().await?;
    let mut inserted = HashSet::new();
    for chunk in offered.chunks(ROWS_PER_STATEMENT / 2) {
        inserted.extend(store::insert_messages(&mut tx, chunk).await?);
    }
    // A message whose id was stored already gets no deliveries of its own:
    // its resend must not add recipients, nor anyone else's message.
    let messages: Vec<&NewMessage> = offered
        .into_iter()
        .filter(|m| inserted.contains(&m.id))
        .collect();
    let deliveries: Vec<(&NewMessage, &KeyBox, &String)> = messages
        .iter()
        .flat_map(|m| {
            m.deliveries
                .iter()
                .map(move |(key, member)| (*m, key, member))
        })
        .collect();
    for chunk in deliveries.chunks(ROWS_PER_STATEMENT) {
        store::insert_deliveries(&mut tx, chunk).await?;
    }
    // Every acknowledgement of the batch as (recipient key, message id)
    // pairs, a few hundred per statement.
    let acked: Vec<(&str, &str)> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Ack { keys, ids, .. } => Some((keys, ids)),
            WriteOp::Insert(..) => None,
        })
        .flat_map(|(keys, ids)| {
            ids.iter()
                .flat_map(move |id| keys.iter().map(move |key| (key.as_str(), id.as_str())))
        })
        .collect();
    let at = ops.iter().find_map(|op| match op {
        WriteOp::Ack { at, .. } => Some(*at),
        WriteOp::Insert(..) => None,
    });
    if let Some(at) = at {
        for chunk in acked.chunks(ROWS_PER_STATEMENT) {
            store::mark_delivered(&mut tx, chunk, at).await?;
        }
    }
    // On NOTIFY, the other instances hear of the messages with the commit.
    bus.announce_in_transaction(
        &mut tx,
        messages.iter().map(|m| (m.mesh_id.as_str(), m.id.as_str())),
    )
    .await?;
    tx.commit().await?;
    Ok(inserted)
}
