//! One writer for the broker's hot writes: new messages and acknowledgements.
//!
//! Every message is stored before its sender hears `sent`. Committing each
//! on its own would cap the broker at what one transaction per message
//! costs (measured on the device-code path: ~1,650 single-row inserts a
//! second on SQLite); instead the writer takes whatever is queued (up to
//! [`MAX_BATCH`] operations), writes it as a few multi-row statements in one
//! transaction, and only then answers the senders. Under load, batches grow
//! and each commit carries more messages; idle, a message waits for nothing.
//! On PostgreSQL the same transaction carries the `NOTIFY` that tells the
//! other instances, so they hear of messages only once they are durable.

use super::bus::{self, BusEvent};
use super::store::placeholders;
use crate::db::Engine;
use claudemesh_api::broker::{Envelope, KeyBox, SealedBody, Sender};
use sqlx::AnyPool;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Operations per transaction, at most.
const MAX_BATCH: usize = 512;
/// Rows per multi-row statement (SQLite allows 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 200;

/// A message to store: what the sender sent, with the broker's id.
pub struct NewMessage {
    pub id: String,
    pub mesh_id: String,
    pub from: Sender,
    pub kind: claudemesh_api::broker::MessageKind,
    pub group: Option<String>,
    pub priority: claudemesh_api::broker::Priority,
    pub body: SealedBody,
    /// Each recipient key's box, with the member it belongs to.
    pub deliveries: Vec<(KeyBox, String)>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl NewMessage {
    /// The envelope one recipient gets.
    pub fn envelope(&self, key: &KeyBox) -> Envelope {
        Envelope {
            id: self.id.clone(),
            mesh_id: self.mesh_id.clone(),
            kind: self.kind,
            group: self.group.clone(),
            priority: self.priority,
            sent_at: crate::clock::rfc3339(self.created_at),
            from: self.from.clone(),
            body: self.body.clone(),
            key: key.clone(),
        }
    }
}

pub enum WriteOp {
    Insert(Arc<NewMessage>, oneshot::Sender<bool>),
    /// These message ids reached a session holding these keys.
    Ack {
        keys: Vec<String>,
        ids: Vec<String>,
        at: i64,
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
        engine: Engine,
        instance_id: String,
        stored: impl Fn(Vec<Arc<NewMessage>>) + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        tokio::spawn(run(pool, engine, instance_id, rx, stored));
        Self { tx }
    }

    /// Stores a message; `true` once it is committed.
    pub async fn insert(&self, message: Arc<NewMessage>) -> bool {
        let (done, stored) = oneshot::channel();
        if self.tx.send(WriteOp::Insert(message, done)).await.is_err() {
            return false;
        }
        stored.await.unwrap_or(false)
    }

    /// Records acknowledgements (fire and forget: an ack lost in a crash
    /// only means the message comes again, and recipients drop it by id).
    pub async fn ack(&self, keys: Vec<String>, ids: Vec<String>, at: i64) {
        let _ = self.tx.send(WriteOp::Ack { keys, ids, at }).await;
    }
}

async fn run(
    pool: AnyPool,
    engine: Engine,
    instance_id: String,
    mut rx: mpsc::Receiver<WriteOp>,
    stored: impl Fn(Vec<Arc<NewMessage>>),
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(op) = rx.recv().await {
        batch.push(op);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let ok = match write(&pool, engine, &instance_id, &batch).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(error = %err, ops = batch.len(), "broker batch failed; retrying one by one");
                false
            }
        };
        let mut committed = Vec::new();
        for op in batch.drain(..) {
            let op_ok = ok || write(&pool, engine, &instance_id, std::slice::from_ref(&op))
                .await
                .inspect_err(|err| tracing::error!(error = %err, "broker write failed"))
                .is_ok();
            if let WriteOp::Insert(message, done) = op {
                if op_ok {
                    committed.push(message);
                }
                let _ = done.send(op_ok);
            }
        }
        if !committed.is_empty() {
            stored(committed);
        }
    }
}

async fn write(
    pool: &AnyPool,
    engine: Engine,
    instance_id: &str,
    ops: &[WriteOp],
) -> Result<(), sqlx::Error> {
    let messages: Vec<&NewMessage> = ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Insert(message, _) => Some(message.as_ref()),
            WriteOp::Ack { .. } => None,
        })
        .collect();
    let mut tx = pool.begin().await?;
    for chunk in messages.chunks(ROWS_PER_STATEMENT / 2) {
        insert_messages(&mut tx, chunk).await?;
    }
    let deliveries: Vec<(&NewMessage, &KeyBox, &String)> = messages
        .iter()
        .flat_map(|m| m.deliveries.iter().map(move |(key, member)| (*m, key, member)))
        .collect();
    for chunk in deliveries.chunks(ROWS_PER_STATEMENT) {
        insert_deliveries(&mut tx, chunk).await?;
    }
    for op in ops {
        if let WriteOp::Ack { keys, ids, at } = op {
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                mark_delivered(&mut tx, keys, chunk, *at).await?;
            }
        }
    }
    if engine == Engine::Postgres && !messages.is_empty() {
        // Per mesh, the ids of what was stored; the other instances read the
        // rows they need. Payloads stay far below NOTIFY's 8,000 bytes.
        let mut by_mesh: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for message in &messages {
            by_mesh
                .entry(message.mesh_id.as_str())
                .or_default()
                .push(message.id.clone());
        }
        for (mesh_id, ids) in by_mesh {
            for ids in ids.chunks(100) {
                let event = BusEvent::Messages {
                    mesh_id: mesh_id.to_owned(),
                    ids: ids.to_vec(),
                };
                bus::notify_in(&mut tx, instance_id, &event).await?;
            }
        }
    }
    tx.commit().await
}

async fn insert_messages(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    messages: &[&NewMessage],
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 15;
    let rows: Vec<String> = (0..messages.len())
        .map(|i| format!("({})", placeholders(i * COLUMNS + 1, COLUMNS)))
        .collect();
    let sql = format!(
        "INSERT INTO broker_messages (id, mesh_id, sender_member_id, sender_session_key, \
         sender_member_key, sender_name, attestation_expires_at, attestation_signature, kind, \
         group_name, priority, body_nonce, body, created_at, expires_at) VALUES {}",
        rows.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for m in messages {
        query = query
            .bind(&m.id)
            .bind(&m.mesh_id)
            .bind(&m.from.member_id)
            .bind(&m.from.session_key)
            .bind(&m.from.member_key)
            .bind(&m.from.display_name)
            .bind(m.from.attestation.expires_at)
            .bind(&m.from.attestation.signature)
            .bind(m.kind.as_str())
            .bind(m.group.as_deref())
            .bind(m.priority.as_str())
            .bind(&m.body.nonce)
            .bind(&m.body.ciphertext)
            .bind(m.created_at)
            .bind(m.expires_at);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(&NewMessage, &KeyBox, &String)],
) -> Result<(), sqlx::Error> {
    const COLUMNS: usize = 5;
    let values: Vec<String> = (0..rows.len())
        .map(|i| format!("({})", placeholders(i * COLUMNS + 1, COLUMNS)))
        .collect();
    let sql = format!(
        "INSERT INTO broker_deliveries (message_id, recipient_key, recipient_member_id, key_nonce, \
         key_box) VALUES {}",
        values.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (message, key, member_id) in rows {
        query = query
            .bind(&message.id)
            .bind(&key.to)
            .bind(*member_id)
            .bind(&key.nonce)
            .bind(&key.sealed);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn mark_delivered(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    keys: &[String],
    ids: &[String],
    at: i64,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "UPDATE broker_deliveries SET delivered_at = $1 WHERE delivered_at IS NULL \
         AND recipient_key IN ({}) AND message_id IN ({})",
        placeholders(2, keys.len()),
        placeholders(2 + keys.len(), ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
    for key in keys {
        query = query.bind(key);
    }
    for id in ids {
        query = query.bind(id);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}
