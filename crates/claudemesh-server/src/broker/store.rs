//! The broker's tables: instances, sessions (presence), messages and
//! deliveries. Every statement the broker runs on them is here.
//!
//! New messages and acknowledgements are written by [`super::writer`],
//! which groups them into few transactions and calls the statements below
//! (on a SQLite file through its own rusqlite connection, see
//! [`write_batch_direct`]; otherwise through the pool).

use claudemesh_api::broker::{
    Attestation, DeliveryState, Envelope, KeyBox, MemberKeys, MessageKind, Peer, PeerStatus,
    Priority, RecipientStatus, SealedBody, Sender, SessionRight,
};
use sqlx::AnyPool;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::clock::rfc3339;
use crate::db::pool::Engine;
use crate::db::sql::{insert_sql, placeholders};

/// A message to store: what the sender sent, with its id (the sender's
/// choice, or the broker's for an older client).
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
            sent_at: rfc3339(self.created_at),
            from: self.from.clone(),
            body: self.body.clone(),
            key: key.clone(),
        }
    }
}

/// A membership the hello proved (the member key belongs to it), and the
/// sessions already connected that the broker's limits count.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Membership {
    pub member_id: String,
    pub mesh_slug: String,
    pub mesh_name: String,
    /// When the mesh was archived (it then takes no sessions).
    pub archived_at: Option<i64>,
    /// Sessions connected in the mesh, on any instance.
    pub sessions_in_mesh: i64,
    /// Of those, the member's own.
    pub sessions_of_member: i64,
}

/// The live membership of `mesh_id` that registered `member_key`, if any,
/// with its mesh's and its own connected sessions, not counting
/// `session_key` (a reconnect replaces itself). One query: every
/// connecting session asks it.
pub async fn membership_of_key(
    pool: &AnyPool,
    mesh_id: &str,
    member_key: &str,
    session_key: &str,
) -> Result<Option<Membership>, sqlx::Error> {
    // The earliest registration wins, should two members have registered
    // the same public key.
    sqlx::query_as(
        "SELECT mm.id AS member_id, m.slug AS mesh_slug, m.name AS mesh_name, m.archived_at, \
         (SELECT COUNT(*) FROM broker_sessions s \
          WHERE s.mesh_id = $2 AND s.session_key <> $3) AS sessions_in_mesh, \
         (SELECT COUNT(*) FROM broker_sessions s \
          WHERE s.mesh_id = $2 AND s.member_id = mm.id AND s.session_key <> $3) AS sessions_of_member \
         FROM mesh_member_keys k JOIN mesh_members mm ON mm.id = k.member_id \
         JOIN meshes m ON m.id = mm.mesh_id \
         WHERE k.public_key = $1 AND mm.mesh_id = $2 AND mm.revoked_at IS NULL \
         ORDER BY k.created_at LIMIT 1",
    )
    .bind(member_key)
    .bind(mesh_id)
    .bind(session_key)
    .fetch_optional(pool)
    .await
}

/// Which of these members are no longer live members (removed, or left),
/// or are in a mesh that was archived since.
pub async fn ended_memberships(
    pool: &AnyPool,
    member_ids: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    if member_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT mm.id FROM mesh_members mm JOIN meshes m ON m.id = mm.mesh_id \
         WHERE (mm.revoked_at IS NOT NULL OR m.archived_at IS NOT NULL) AND mm.id IN ({})",
        placeholders(1, member_ids.len())
    );
    let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
    for id in member_ids {
        query = query.bind(id);
    }
    Ok(query
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    session_key: String,
    member_id: String,
    member_key: String,
    display_name: String,
    role: String,
    groups: String,
    #[sqlx(try_from = "String")]
    status: PeerStatus,
    summary: String,
    connected_at: i64,
}

impl SessionRow {
    fn into_peer(self) -> Peer {
        Peer {
            session_key: self.session_key,
            member_id: self.member_id,
            member_key: self.member_key,
            display_name: self.display_name,
            role: self.role,
            groups: serde_json::from_str(&self.groups).unwrap_or_default(),
            status: self.status,
            summary: self.summary,
            connected_at: rfc3339(self.connected_at),
        }
    }
}

/// Every connected session of a mesh, on any instance.
pub async fn peers(pool: &AnyPool, mesh_id: &str) -> Result<Vec<Peer>, sqlx::Error> {
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT session_key, member_id, member_key, display_name, role, groups, status, summary, \
         connected_at FROM broker_sessions WHERE mesh_id = $1 ORDER BY connected_at, session_key",
    )
    .bind(mesh_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(SessionRow::into_peer).collect())
}

/// The `(session_key, conn_id)` of every session recorded for an instance.
pub async fn sessions_of_instance(
    pool: &AnyPool,
    instance_id: &str,
) -> Result<std::collections::HashSet<(String, String)>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT session_key, conn_id FROM broker_sessions WHERE instance_id = $1")
            .bind(instance_id)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// A session to record as connected.
pub struct NewSession<'a> {
    pub mesh_id: &'a str,
    pub peer: &'a Peer,
    pub connected_at: i64,
    pub instance_id: &'a str,
    pub conn_id: &'a str,
}

/// How many sessions a mesh, and one member in it, may have connected.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub in_mesh: i64,
    pub of_member: i64,
}

/// Records a connected session if its mesh and its member are still under
/// `limits`; false, with nothing written, if not. A reconnect of the same
/// session key takes its row over and does not count against itself.
///
/// The counts and the row are one statement, so sessions admitted at the
/// same moment cannot pass a limit together (each counting the others out
/// before any row is written, as a count read first would). SQLite runs a
/// writing statement whole under its write lock; on PostgreSQL, whose
/// statements each count what was committed when they began, the
/// statement waits for a lock on the mesh held to the end of its
/// transaction, so the next admission of the mesh, on any instance, counts
/// this row.
pub async fn insert_session_within(
    pool: &AnyPool,
    engine: Engine,
    session: &NewSession<'_>,
    limits: SessionLimits,
) -> Result<bool, sqlx::Error> {
    let peer = session.peer;
    let insert = sqlx::query(
        "INSERT INTO broker_sessions (session_key, mesh_id, member_id, member_key, display_name, \
         role, groups, status, summary, connected_at, instance_id, conn_id) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
         WHERE (SELECT COUNT(*) FROM broker_sessions s \
                WHERE s.mesh_id = $2 AND s.session_key <> $1) < $13 \
           AND (SELECT COUNT(*) FROM broker_sessions s \
                WHERE s.mesh_id = $2 AND s.member_id = $3 AND s.session_key <> $1) < $14 \
         ON CONFLICT (session_key) DO UPDATE SET mesh_id = $2, member_id = $3, member_key = $4, \
         display_name = $5, role = $6, groups = $7, status = $8, summary = $9, \
         connected_at = $10, instance_id = $11, conn_id = $12",
    )
    .bind(&peer.session_key)
    .bind(session.mesh_id)
    .bind(&peer.member_id)
    .bind(&peer.member_key)
    .bind(&peer.display_name)
    .bind(&peer.role)
    .bind(serde_json::to_string(&peer.groups).unwrap_or_else(|_| "[]".into()))
    .bind(peer.status.as_str())
    .bind(&peer.summary)
    .bind(session.connected_at)
    .bind(session.instance_id)
    .bind(session.conn_id)
    .bind(limits.in_mesh)
    .bind(limits.of_member);
    let inserted = if engine == Engine::Postgres {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("broker_sessions:{}", session.mesh_id))
            .execute(&mut *tx)
            .await?;
        let inserted = insert.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        inserted
    } else {
        insert.execute(pool).await?.rows_affected()
    };
    Ok(inserted > 0)
}

pub async fn update_session(
    pool: &AnyPool,
    session_key: &str,
    conn_id: &str,
    status: PeerStatus,
    summary: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE broker_sessions SET status = $1, summary = $2 WHERE session_key = $3 AND conn_id = $4",
    )
    .bind(status.as_str())
    .bind(summary)
    .bind(session_key)
    .bind(conn_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes a session's row unless another connection has taken it over.
/// Whether it was this connection's.
pub async fn delete_session(
    pool: &AnyPool,
    session_key: &str,
    conn_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM broker_sessions WHERE session_key = $1 AND conn_id = $2")
        .bind(session_key)
        .bind(conn_id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Records that a session of this member connected or ended now.
pub async fn touch_last_seen(pool: &AnyPool, member_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO broker_last_seen (member_id, seen_at) VALUES ($1, $2) \
         ON CONFLICT (member_id) DO UPDATE SET seen_at = $2",
    )
    .bind(member_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// When each member of a mesh was last seen, and how many sessions each
/// has connected now (any instance): `(member_id, seen_at, sessions)`.
pub async fn member_activity(
    pool: &AnyPool,
    mesh_id: &str,
) -> Result<Vec<(String, Option<i64>, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT mm.id, ls.seen_at, \
         (SELECT COUNT(*) FROM broker_sessions s WHERE s.member_id = mm.id) \
         FROM mesh_members mm LEFT JOIN broker_last_seen ls ON ls.member_id = mm.id \
         WHERE mm.mesh_id = $1 AND mm.revoked_at IS NULL",
    )
    .bind(mesh_id)
    .fetch_all(pool)
    .await
}

/// Deletes the broker's rows of a mesh (deliveries, messages, sessions),
/// inside the transaction that deletes the mesh.
pub async fn delete_mesh_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mesh_id: &str,
) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM broker_deliveries WHERE message_id IN \
         (SELECT id FROM broker_messages WHERE mesh_id = $1)",
        "DELETE FROM broker_messages WHERE mesh_id = $1",
        "DELETE FROM broker_sessions WHERE mesh_id = $1",
        "DELETE FROM broker_last_seen WHERE member_id IN \
         (SELECT id FROM mesh_members WHERE mesh_id = $1)",
    ] {
        sqlx::query(sql).bind(mesh_id).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Drops the deliveries still waiting for `recipient` from `sender` that a
/// new grant refuses: direct ones without `dm`, group and broadcast ones
/// without `group`.
pub async fn drop_waiting(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    recipient: &str,
    sender: &str,
    direct: bool,
    group: bool,
) -> Result<(), sqlx::Error> {
    let kinds = match (direct, group) {
        (false, false) => return Ok(()),
        (true, false) => "('direct')",
        (false, true) => "('group', 'broadcast')",
        (true, true) => "('direct', 'group', 'broadcast')",
    };
    let sql = format!(
        "DELETE FROM broker_deliveries WHERE recipient_member_id = $1 AND delivered_at IS NULL \
         AND message_id IN (SELECT id FROM broker_messages WHERE sender_member_id = $2 AND kind IN {kinds})"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(recipient)
        .bind(sender)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Removes every session (on SQLite, at start: one instance only, so
/// whatever sessions are recorded are from a process that is gone).
pub async fn clear_sessions(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM broker_sessions")
        .execute(pool)
        .await?;
    Ok(())
}

/// An instance's heartbeat.
pub async fn beat(pool: &AnyPool, instance_id: &str, now: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO broker_instances (id, seen_at) VALUES ($1, $2) \
         ON CONFLICT (id) DO UPDATE SET seen_at = $2",
    )
    .bind(instance_id)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the sessions of other instances silent since `cutoff` (crashed),
/// and those instances; returns the sessions removed as `(mesh_id, session_key)`.
pub async fn sweep_dead_instances(
    pool: &AnyPool,
    own_instance: &str,
    cutoff: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    let gone: Vec<(String, String)> = sqlx::query_as(
        "DELETE FROM broker_sessions WHERE instance_id <> $1 AND instance_id NOT IN \
         (SELECT id FROM broker_instances WHERE seen_at >= $2) RETURNING mesh_id, session_key",
    )
    .bind(own_instance)
    .bind(cutoff)
    .fetch_all(pool)
    .await?;
    sqlx::query("DELETE FROM broker_instances WHERE seen_at < $1 AND id <> $2")
        .bind(cutoff)
        .bind(own_instance)
        .execute(pool)
        .await?;
    Ok(gone)
}

/// Deletes messages that expired more than `keep_ms` ago (their status can
/// be asked until then).
pub async fn sweep_expired_messages(
    pool: &AnyPool,
    now: i64,
    keep_ms: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("DELETE FROM broker_messages WHERE expires_at < $1")
        .bind(now - keep_ms)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// The live members of a mesh with their machine keys.
pub async fn member_keys(pool: &AnyPool, mesh_id: &str) -> Result<Vec<MemberKeys>, sqlx::Error> {
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT mm.id, mm.display_name, mm.role, k.public_key FROM mesh_members mm \
         LEFT JOIN mesh_member_keys k ON k.member_id = mm.id \
         WHERE mm.mesh_id = $1 AND mm.revoked_at IS NULL ORDER BY mm.joined_at, mm.id, k.created_at",
    )
    .bind(mesh_id)
    .fetch_all(pool)
    .await?;
    let mut members: BTreeMap<String, MemberKeys> = BTreeMap::new();
    let mut order = Vec::new();
    for (id, display_name, role, key) in rows {
        let role = claudemesh_api::wire::MeshRole::try_from(role)
            .map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
        let entry = members.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            MemberKeys {
                member_id: id,
                display_name,
                role,
                keys: Vec::new(),
                permits_dm: true,
                may_approve: false,
            }
        });
        entry.keys.extend(key);
    }
    Ok(order
        .into_iter()
        .filter_map(|id| members.remove(&id))
        .collect())
}

#[derive(sqlx::FromRow)]
struct EnvelopeRow {
    id: String,
    mesh_id: String,
    sender_member_id: String,
    sender_session_key: String,
    sender_member_key: String,
    sender_name: String,
    attestation_expires_at: i64,
    attestation_signature: String,
    attestation_rights: Option<String>,
    #[sqlx(try_from = "String")]
    kind: MessageKind,
    group_name: Option<String>,
    #[sqlx(try_from = "String")]
    priority: Priority,
    body_nonce: String,
    body: String,
    created_at: i64,
    recipient_key: String,
    key_nonce: String,
    key_box: String,
}

impl EnvelopeRow {
    fn into_envelope(self) -> Envelope {
        // Written by `rights_text`; a word this build does not know makes
        // the signature fail at the recipient, as it should.
        let rights = self
            .attestation_rights
            .as_deref()
            .map(|text| SessionRight::split(text).unwrap_or_default());
        Envelope {
            id: self.id,
            mesh_id: self.mesh_id,
            kind: self.kind,
            group: self.group_name,
            priority: self.priority,
            sent_at: rfc3339(self.created_at),
            from: Sender {
                session_key: self.sender_session_key,
                member_id: self.sender_member_id,
                member_key: self.sender_member_key,
                display_name: self.sender_name,
                attestation: Attestation {
                    expires_at: self.attestation_expires_at,
                    signature: self.attestation_signature,
                    rights,
                },
            },
            body: SealedBody {
                nonce: self.body_nonce,
                ciphertext: self.body,
            },
            key: KeyBox {
                to: self.recipient_key,
                nonce: self.key_nonce,
                sealed: self.key_box,
            },
        }
    }
}

const ENVELOPE_COLUMNS: &str = "m.id, m.mesh_id, m.sender_member_id, m.sender_session_key, \
    m.sender_member_key, m.sender_name, m.attestation_expires_at, m.attestation_signature, \
    m.attestation_rights, m.kind, m.group_name, m.priority, m.body_nonce, m.body, m.created_at, \
    d.recipient_key, d.key_nonce, d.key_box";

/// The kinds and priorities of message this build knows, as stored. A row
/// with another (written by a newer build sharing the database during an
/// upgrade) is not read at all: it waits for an instance that can deliver
/// it, and keeps no other from being read, nor a full read from paging on.
const READABLE_KINDS: &str = "m.kind IN ('direct', 'group', 'broadcast') \
    AND m.priority IN ('now', 'next', 'low')";

/// Undelivered, unexpired messages for any of `keys`, oldest first, at most
/// `limit`.
pub async fn waiting_for(
    pool: &AnyPool,
    keys: &[&str],
    now: i64,
    limit: i64,
) -> Result<Vec<Envelope>, sqlx::Error> {
    let sql = format!(
        "SELECT {ENVELOPE_COLUMNS} FROM broker_deliveries d \
         JOIN broker_messages m ON m.id = d.message_id \
         WHERE d.recipient_key IN ({}) AND d.delivered_at IS NULL AND m.expires_at > ${} \
         AND {READABLE_KINDS} ORDER BY m.created_at, m.id LIMIT ${}",
        placeholders(1, keys.len()),
        keys.len() + 1,
        keys.len() + 2,
    );
    let mut query = sqlx::query_as::<_, EnvelopeRow>(sqlx::AssertSqlSafe(sql));
    for key in keys {
        query = query.bind(*key);
    }
    let rows = query.bind(now).bind(limit).fetch_all(pool).await?;
    Ok(rows.into_iter().map(EnvelopeRow::into_envelope).collect())
}

/// The undelivered deliveries of these messages, for recipients connected
/// to another instance than the sender's.
pub async fn deliveries_of(
    pool: &AnyPool,
    message_ids: &[String],
) -> Result<Vec<Envelope>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {ENVELOPE_COLUMNS} FROM broker_deliveries d \
         JOIN broker_messages m ON m.id = d.message_id \
         WHERE d.message_id IN ({}) AND d.delivered_at IS NULL AND {READABLE_KINDS}",
        placeholders(1, message_ids.len())
    );
    let mut query = sqlx::query_as::<_, EnvelopeRow>(sqlx::AssertSqlSafe(sql));
    for id in message_ids {
        query = query.bind(id);
    }
    let rows = query.fetch_all(pool).await?;
    Ok(rows.into_iter().map(EnvelopeRow::into_envelope).collect())
}

/// Recipient key, member id, member name, delivered at, expires at.
type StatusRow = (String, String, Option<String>, Option<i64>, i64);

/// Where a message stands for each recipient; `None` if this member did
/// not send it (or it is gone).
pub async fn message_status(
    pool: &AnyPool,
    message_id: &str,
    sender_member_id: &str,
    now: i64,
) -> Result<Option<Vec<RecipientStatus>>, sqlx::Error> {
    let rows: Vec<StatusRow> = sqlx::query_as(
        "SELECT d.recipient_key, d.recipient_member_id, mm.display_name, d.delivered_at, m.expires_at \
         FROM broker_messages m JOIN broker_deliveries d ON d.message_id = m.id \
         LEFT JOIN mesh_members mm ON mm.id = d.recipient_member_id \
         WHERE m.id = $1 AND m.sender_member_id = $2 ORDER BY d.recipient_key",
    )
    .bind(message_id)
    .bind(sender_member_id)
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .map(
                |(to, member_id, name, delivered_at, expires_at)| RecipientStatus {
                    to,
                    member_id,
                    display_name: name.unwrap_or_default(),
                    state: match delivered_at {
                        Some(_) => DeliveryState::Delivered,
                        None if expires_at <= now => DeliveryState::Expired,
                        None => DeliveryState::Waiting,
                    },
                },
            )
            .collect(),
    ))
}

/// How a sender's session rights are stored with its message.
fn rights_text(attestation: &Attestation) -> Option<String> {
    attestation.rights.as_deref().map(SessionRight::join)
}

/// The columns of a `broker_messages` row, in the order the inserts bind them.
const MESSAGE_COLUMNS: &str = "id, mesh_id, sender_member_id, sender_session_key, \
    sender_member_key, sender_name, attestation_expires_at, attestation_signature, kind, \
    group_name, priority, body_nonce, body, created_at, expires_at, attestation_rights";
const MESSAGE_COLUMN_COUNT: usize = 16;
/// Ids are the primary key: a message whose id is stored already is not
/// inserted again (nor are its deliveries). Both engines take this.
const SKIP_STORED_IDS: &str = "ON CONFLICT (id) DO NOTHING";
/// The columns of a `broker_deliveries` row, in the order the inserts bind them.
const DELIVERY_COLUMNS: &str = "message_id, recipient_key, recipient_member_id, key_nonce, key_box";
const DELIVERY_COLUMN_COUNT: usize = 5;

/// The broker writer's own connection to a SQLite file (see
/// [`super::writer`]): WAL, and a wait of up to five seconds for a lock.
pub fn open_direct(path: std::path::PathBuf) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    Ok(conn)
}

/// Writes one batch in one transaction on the writer's own SQLite
/// connection: the messages with their deliveries, then the
/// acknowledgements as (recipient key, message id, when).
///
/// Returns the ids of the messages inserted: one whose id is stored already
/// (a resend) is skipped with its deliveries.
pub fn write_batch_direct(
    conn: &mut rusqlite::Connection,
    messages: &[Arc<NewMessage>],
    acks: &[(String, String, i64)],
) -> rusqlite::Result<std::collections::HashSet<String>> {
    let mut inserted = std::collections::HashSet::new();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut insert_message = tx.prepare_cached(&format!(
            "{} {SKIP_STORED_IDS}",
            insert_sql(
                "broker_messages",
                MESSAGE_COLUMNS,
                MESSAGE_COLUMN_COUNT,
                1,
                '?',
            )
        ))?;
        let mut insert_delivery = tx.prepare_cached(&insert_sql(
            "broker_deliveries",
            DELIVERY_COLUMNS,
            DELIVERY_COLUMN_COUNT,
            1,
            '?',
        ))?;
        for m in messages {
            let rows = insert_message.execute(rusqlite::params![
                m.id,
                m.mesh_id,
                m.from.member_id,
                m.from.session_key,
                m.from.member_key,
                m.from.display_name,
                m.from.attestation.expires_at,
                m.from.attestation.signature,
                m.kind.as_str(),
                m.group,
                m.priority.as_str(),
                m.body.nonce,
                m.body.ciphertext,
                m.created_at,
                m.expires_at,
                rights_text(&m.from.attestation),
            ])?;
            if rows == 0 {
                continue;
            }
            inserted.insert(m.id.clone());
            for (key, member_id) in &m.deliveries {
                insert_delivery.execute(rusqlite::params![
                    m.id, key.to, member_id, key.nonce, key.sealed
                ])?;
            }
        }
        let mut mark = tx.prepare_cached(
            "UPDATE broker_deliveries SET delivered_at = ?1 \
             WHERE recipient_key = ?2 AND message_id = ?3 AND delivered_at IS NULL",
        )?;
        for (key, id, at) in acks {
            mark.execute(rusqlite::params![at, key, id])?;
        }
    }
    tx.commit()?;
    Ok(inserted)
}

/// Inserts messages, as one multi-row statement; returns the ids inserted
/// (not those stored already: resends).
pub async fn insert_messages(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    messages: &[&NewMessage],
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "{} {SKIP_STORED_IDS} RETURNING id",
        insert_sql(
            "broker_messages",
            MESSAGE_COLUMNS,
            MESSAGE_COLUMN_COUNT,
            messages.len(),
            '$',
        )
    );
    let mut query = sqlx::query_as::<_, (String,)>(sqlx::AssertSqlSafe(sql));
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
            .bind(m.expires_at)
            .bind(rights_text(&m.from.attestation));
    }
    Ok(query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
}

/// Who sent the stored message with this id, and how many key boxes it
/// has: `(mesh_id, sender member id, recipients)`. What a resend is
/// answered from.
pub async fn stored_message(
    pool: &AnyPool,
    id: &str,
) -> Result<Option<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT m.mesh_id, m.sender_member_id, \
         (SELECT COUNT(*) FROM broker_deliveries d WHERE d.message_id = m.id) \
         FROM broker_messages m WHERE m.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Whether a message with this id is stored: inline on SQLite (see
/// [`crate::db::sqlite_reader`]), through the pool otherwise.
pub async fn is_stored(
    pool: &AnyPool,
    reader: Option<&crate::db::sqlite_reader::SqliteReader>,
    id: &str,
) -> Result<bool, String> {
    const SQL: &str = "SELECT COUNT(*) FROM broker_messages WHERE id = $1";
    if let Some(reader) = reader
        && let Ok(found) = reader.read(|conn| {
            conn.prepare_cached(SQL)?
                .query_row([id], |row| row.get::<_, i64>(0))
        })
    {
        return Ok(found > 0);
    }
    let (found,): (i64,) = sqlx::query_as(SQL)
        .bind(id)
        .fetch_one(pool)
        .await
        .map_err(|err| err.to_string())?;
    Ok(found > 0)
}

/// Which of these message ids are stored, in one query.
pub async fn stored_among<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    ids: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "SELECT id FROM broker_messages WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    // Only placeholders are put into the statement.
    let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    query.fetch_all(db).await
}

/// Inserts deliveries (message, recipient key's box, recipient member), as
/// one multi-row statement.
pub async fn insert_deliveries(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(&NewMessage, &KeyBox, &String)],
) -> Result<(), sqlx::Error> {
    let sql = insert_sql(
        "broker_deliveries",
        DELIVERY_COLUMNS,
        DELIVERY_COLUMN_COUNT,
        rows.len(),
        '$',
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

/// Marks these (recipient key, message id) pairs delivered at `at`, as one
/// statement.
pub async fn mark_delivered(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    pairs: &[(&str, &str)],
    at: i64,
) -> Result<(), sqlx::Error> {
    let values: Vec<String> = (0..pairs.len())
        .map(|i| format!("(${}, ${})", 2 + 2 * i, 3 + 2 * i))
        .collect();
    let sql = format!(
        "UPDATE broker_deliveries SET delivered_at = $1 WHERE delivered_at IS NULL \
         AND (recipient_key, message_id) IN (VALUES {})",
        values.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
    for (key, id) in pairs {
        query = query.bind(*key).bind(*id);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{MessageKind, Priority, READABLE_KINDS};

    /// The reads take every kind and priority this build knows (a new
    /// variant fails to compile in the match until the filter names it).
    #[test]
    fn the_reads_take_every_kind_and_priority_this_build_knows() {
        let kinds = [
            MessageKind::Direct,
            MessageKind::Group,
            MessageKind::Broadcast,
        ];
        for kind in kinds {
            let kind = match kind {
                MessageKind::Direct | MessageKind::Group | MessageKind::Broadcast => kind.as_str(),
            };
            assert!(READABLE_KINDS.contains(&format!("'{kind}'")), "{kind}");
        }
        for priority in [Priority::Now, Priority::Next, Priority::Low] {
            let priority = match priority {
                Priority::Now | Priority::Next | Priority::Low => priority.as_str(),
            };
            assert!(
                READABLE_KINDS.contains(&format!("'{priority}'")),
                "{priority}"
            );
        }
    }

    #[test]
    fn the_column_lists_match_their_counts() {
        assert_eq!(
            super::MESSAGE_COLUMNS.split(", ").count(),
            super::MESSAGE_COLUMN_COUNT
        );
        assert_eq!(
            super::DELIVERY_COLUMNS.split(", ").count(),
            super::DELIVERY_COLUMN_COUNT
        );
    }
}
