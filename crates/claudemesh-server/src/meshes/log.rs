//! The mesh log: one append-only, hash-chained log per mesh (tables
//! `mesh_log` and `mesh_log_heads`; all their SQL is here).
//!
//! Every module that changes a mesh calls [`append`] inside the transaction
//! of the change, so the entry and the change commit together; the broker,
//! whose hot path must not wait, hands its events to an [`Appender`], which
//! writes them a moment later in batches. Entries carry identifiers,
//! names and counts only: never a message body, never a token.
//!
//! Appends lock the mesh's row in `mesh_log_heads`, so entries are numbered
//! one after another whichever instance writes them; the chain itself
//! (hashes, cursors, verification) is `claudemesh_api::mesh_log`.

use crate::db::sql::insert_sql;
use claudemesh_api::mesh_log::{ChainBreak, ChainVerifier, GENESIS_HASH, LogKind, entry_hash};
use claudemesh_api::wire::LogEntry;
use sqlx::Connection;
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// One event to append: a kind and its detail (text values).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEvent {
    pub kind: LogKind,
    pub detail: BTreeMap<String, String>,
}

impl LogEvent {
    pub fn new(kind: LogKind) -> Self {
        Self {
            kind,
            detail: BTreeMap::new(),
        }
    }

    /// Adds a detail; an empty value is left out.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        let value = value.to_string();
        if !value.is_empty() {
            self.detail.insert(key.to_owned(), value);
        }
        self
    }
}

/// The head of a mesh's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The last entry's position (0 before the first).
    pub seq: u64,
    pub hash: String,
    /// The first position retention kept.
    pub first_seq: u64,
}

/// Appends one event to a mesh's log, inside the caller's transaction.
pub async fn append(
    conn: &mut sqlx::AnyConnection,
    mesh_id: &str,
    at: i64,
    event: &LogEvent,
) -> Result<u64, sqlx::Error> {
    append_many(conn, mesh_id, std::slice::from_ref(&(at, event.clone()))).await
}

/// Log rows per insert statement (7 values each; both engines take
/// thousands of parameters).
const ROWS_PER_INSERT: usize = 200;

/// Appends events in order; returns the position of the last.
pub async fn append_many(
    conn: &mut sqlx::AnyConnection,
    mesh_id: &str,
    events: &[(i64, LogEvent)],
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO mesh_log_heads (mesh_id, seq, hash, first_seq) VALUES ($1, 0, $2, 1) \
         ON CONFLICT (mesh_id) DO NOTHING",
    )
    .bind(mesh_id)
    .bind(GENESIS_HASH)
    .execute(&mut *conn)
    .await?;
    // Locks the head until the caller commits (a row lock on PostgreSQL,
    // the write lock on SQLite): appends to one mesh queue here.
    let (seq, mut prev): (i64, String) = sqlx::query_as(
        "UPDATE mesh_log_heads SET seq = seq WHERE mesh_id = $1 RETURNING seq, hash",
    )
    .bind(mesh_id)
    .fetch_one(&mut *conn)
    .await?;
    let mut seq = u64::try_from(seq).unwrap_or(0);
    // Chained first, then written a few hundred rows to a statement: under
    // the broker's load a batch holds thousands of entries, and a statement
    // each cost more than the rows (on SQLite every sqlx statement is a
    // hop to the connection's thread and back).
    let mut rows = Vec::with_capacity(events.len());
    for (at, event) in events {
        seq += 1;
        let hash = entry_hash(mesh_id, seq, *at, event.kind.as_str(), &event.detail, &prev);
        let detail = serde_json::to_string(&event.detail)
            .map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
        rows.push((seq, *at, event.kind.as_str(), detail, prev, hash.clone()));
        prev = hash;
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = insert_sql(
            "mesh_log",
            "mesh_id, seq, at, kind, detail, prev_hash, hash",
            7,
            chunk.len(),
            '$',
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, at, kind, detail, prev_hash, hash) in chunk {
            insert = insert
                .bind(mesh_id)
                .bind(*seq as i64)
                .bind(*at)
                .bind(*kind)
                .bind(detail)
                .bind(prev_hash)
                .bind(hash);
        }
        insert.execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE mesh_log_heads SET seq = $2, hash = $3 WHERE mesh_id = $1")
        .bind(mesh_id)
        .bind(seq as i64)
        .bind(&prev)
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// The head of a mesh's chain (an empty log has position 0).
pub async fn head(pool: &sqlx::AnyPool, mesh_id: &str) -> Result<Head, sqlx::Error> {
    let row: Option<(i64, String, i64)> =
        sqlx::query_as("SELECT seq, hash, first_seq FROM mesh_log_heads WHERE mesh_id = $1")
            .bind(mesh_id)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((seq, hash, first_seq)) => Head {
            seq: u64::try_from(seq).unwrap_or(0),
            hash,
            first_seq: u64::try_from(first_seq).unwrap_or(1),
        },
        None => Head {
            seq: 0,
            hash: GENESIS_HASH.to_owned(),
            first_seq: 1,
        },
    })
}

/// Which entries a read wants.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Entries after this position, oldest first; `None` with no `since`:
    /// the newest `limit`.
    pub after: Option<u64>,
    /// Entries at or after this time (ms), oldest first.
    pub since_ms: Option<i64>,
    pub kind: Option<LogKind>,
    pub limit: u32,
}

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    at: i64,
    kind: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl Row {
    /// Rows become entries when read; a detail that is not an object of
    /// text values is an error, never a default.
    fn into_entry(self, mesh_id: &str) -> Result<LogEntry, sqlx::Error> {
        let detail: BTreeMap<String, String> =
            serde_json::from_str(&self.detail).map_err(|err| sqlx::Error::Decode(Box::new(err)))?;
        let seq = u64::try_from(self.seq).unwrap_or(0);
        Ok(LogEntry {
            seq,
            at: crate::clock::rfc3339(self.at),
            at_ms: self.at,
            kind: self.kind,
            detail,
            prev_hash: self.prev_hash,
            hash: self.hash,
            cursor: claudemesh_api::mesh_log::cursor(mesh_id, seq),
        })
    }
}

/// Reads entries, oldest first.
pub async fn read(
    pool: &sqlx::AnyPool,
    mesh_id: &str,
    query: &Query,
) -> Result<Vec<LogEntry>, sqlx::Error> {
    let mut sql = String::from(
        "SELECT seq, at, kind, detail, prev_hash, hash FROM mesh_log WHERE mesh_id = $1",
    );
    let mut n = 1;
    let mut placeholder = |sql: &mut String, clause: &str| {
        n += 1;
        sql.push_str(&clause.replace('?', &format!("${n}")));
    };
    if query.after.is_some() {
        placeholder(&mut sql, " AND seq > ?");
    }
    if query.since_ms.is_some() {
        placeholder(&mut sql, " AND at >= ?");
    }
    if query.kind.is_some() {
        placeholder(&mut sql, " AND kind = ?");
    }
    let newest = query.after.is_none() && query.since_ms.is_none();
    sql.push_str(if newest {
        " ORDER BY seq DESC"
    } else {
        " ORDER BY seq"
    });
    placeholder(&mut sql, " LIMIT ?");
    // Only fixed clauses and placeholders are put together above.
    let mut select = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql)).bind(mesh_id);
    if let Some(after) = query.after {
        select = select.bind(i64::try_from(after).unwrap_or(i64::MAX));
    }
    if let Some(since) = query.since_ms {
        select = select.bind(since);
    }
    if let Some(kind) = query.kind {
        select = select.bind(kind.as_str());
    }
    let rows = select.bind(i64::from(query.limit)).fetch_all(pool).await?;
    let mut entries = rows
        .into_iter()
        .map(|row| row.into_entry(mesh_id))
        .collect::<Result<Vec<_>, _>>()?;
    if newest {
        entries.reverse();
    }
    Ok(entries)
}

/// Walks a mesh's whole chain, a page at a time: `Ok(entries checked)` or
/// the first place it breaks.
pub async fn verify(
    pool: &sqlx::AnyPool,
    mesh_id: &str,
) -> Result<Result<u64, ChainBreak>, sqlx::Error> {
    let head = head(pool, mesh_id).await?;
    verify_to(pool, mesh_id, &head).await
}

/// Verifies a mesh's chain from its first kept entry up to `head`, read
/// before: entries appended since (by another instance, say) are past it
/// and left for the next check, not taken for a chain that goes on where
/// its head says it ends.
pub async fn verify_to(
    pool: &sqlx::AnyPool,
    mesh_id: &str,
    head: &Head,
) -> Result<Result<u64, ChainBreak>, sqlx::Error> {
    let mut verifier = ChainVerifier::new(mesh_id, head.first_seq);
    let mut after = head.first_seq.saturating_sub(1);
    while after < head.seq {
        let page = read(
            pool,
            mesh_id,
            &Query {
                after: Some(after),
                limit: 500,
                ..Query::default()
            },
        )
        .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in page.iter().filter(|entry| entry.seq <= head.seq) {
            if let Err(broken) = verifier.push(entry) {
                return Ok(Err(broken));
            }
        }
    }
    Ok(verifier.finish(head.seq, &head.hash))
}

/// Verifies every mesh's log; what is broken, by mesh id (the start-up
/// check, which warns about each).
pub async fn verify_all(pool: &sqlx::AnyPool) -> Result<Vec<(String, ChainBreak)>, sqlx::Error> {
    let meshes: Vec<(String,)> =
        sqlx::query_as("SELECT mesh_id FROM mesh_log_heads ORDER BY mesh_id")
            .fetch_all(pool)
            .await?;
    let mut broken = Vec::new();
    for (mesh_id,) in meshes {
        if let Err(chain_break) = verify(pool, &mesh_id).await? {
            broken.push((mesh_id, chain_break));
        }
    }
    Ok(broken)
}

/// The start-up check: verifies every log in the background and warns
/// about each broken one (it never stops the server).
pub fn spawn_startup_check(pool: sqlx::AnyPool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match verify_all(&pool).await {
            Ok(broken) if broken.is_empty() => tracing::info!("mesh log: every chain verified"),
            Ok(broken) => {
                for (mesh_id, chain_break) in broken {
                    tracing::warn!(
                        mesh_id,
                        seq = chain_break.seq(),
                        problem = %chain_break,
                        "mesh log: the chain is broken (an entry was edited or deleted outside the server)"
                    );
                }
            }
            Err(err) => tracing::warn!(error = %err, "mesh log: the start-up check failed"),
        }
    })
}

/// Drops the entries older than `days` days (0 keeps them forever), from
/// the start of each chain only, and always keeps each log's last entry so
/// the chain stays anchored; `first_seq` records where each log now starts.
pub async fn sweep(pool: &sqlx::AnyPool, now: i64, days: u32) -> Result<u64, sqlx::Error> {
    if days == 0 {
        return Ok(0);
    }
    let cutoff = now - i64::from(days) * 24 * 3600 * 1000;
    let meshes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT h.mesh_id, h.seq FROM mesh_log_heads h WHERE EXISTS \
         (SELECT 1 FROM mesh_log l WHERE l.mesh_id = h.mesh_id AND l.at < $1 AND l.seq < h.seq)",
    )
    .bind(cutoff)
    .fetch_all(pool)
    .await?;
    let mut swept = 0;
    for (mesh_id, _) in meshes {
        let mut tx = pool.begin().await?;
        let (head_seq,): (i64,) =
            sqlx::query_as("UPDATE mesh_log_heads SET seq = seq WHERE mesh_id = $1 RETURNING seq")
                .bind(&mesh_id)
                .fetch_one(&mut *tx)
                .await?;
        let (keep_from,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(seq) FROM mesh_log WHERE mesh_id = $1 AND at >= $2")
                .bind(&mesh_id)
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await?;
        let keep_from = keep_from.unwrap_or(head_seq).min(head_seq);
        let done = sqlx::query("DELETE FROM mesh_log WHERE mesh_id = $1 AND seq < $2")
            .bind(&mesh_id)
            .bind(keep_from)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE mesh_log_heads SET first_seq = $2 WHERE mesh_id = $1")
            .bind(&mesh_id)
            .bind(keep_from)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        swept += done.rows_affected();
    }
    Ok(swept)
}

/// Sweeps now and every hour until the returned task is aborted. Nothing to
/// do when `days` is 0.
pub fn spawn_retention(
    pool: sqlx::AnyPool,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    days: u32,
) -> Option<tokio::task::JoinHandle<()>> {
    (days > 0).then(|| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every.tick().await;
                match sweep(&pool, clock.now_ms(), days).await {
                    Ok(0) => {}
                    Ok(swept) => tracing::info!(swept, days, "mesh log: old entries deleted"),
                    Err(err) => {
                        tracing::warn!(error = %err, "mesh log: the retention sweep failed")
                    }
                }
            }
        })
    })
}

/// Events queued for the log by code that must not wait for it (the
/// broker): written a moment later, in batches, one transaction per mesh.
#[derive(Clone)]
pub struct Appender {
    tx: mpsc::Sender<(String, i64, LogEvent)>,
}

/// Events waiting to be appended, at most; beyond, new ones are dropped
/// (and counted in the server log) rather than held without bound.
const APPENDER_QUEUE: usize = 8192;

impl Appender {
    pub fn start(pool: sqlx::AnyPool) -> Self {
        let (tx, rx) = mpsc::channel(APPENDER_QUEUE);
        tokio::spawn(run_appender(pool, rx));
        Self { tx }
    }

    /// Queues an event; never waits.
    pub fn push(&self, mesh_id: &str, at: i64, event: LogEvent) {
        if let Err(err) = self.tx.try_send((mesh_id.to_owned(), at, event)) {
            let kind = match &err {
                mpsc::error::TrySendError::Full((_, _, e))
                | mpsc::error::TrySendError::Closed((_, _, e)) => e.kind,
            };
            tracing::warn!(mesh_id, kind = %kind, "mesh log: queue full; an entry was dropped");
        }
    }
}

async fn run_appender(pool: sqlx::AnyPool, mut rx: mpsc::Receiver<(String, i64, LogEvent)>) {
    let mut batch = Vec::new();
    // Whatever is waiting, up to 1,024, once something is.
    while rx.recv_many(&mut batch, 1024).await > 0 {
        let mut by_mesh: BTreeMap<String, Vec<(i64, LogEvent)>> = BTreeMap::new();
        for (mesh_id, at, event) in batch.drain(..) {
            by_mesh.entry(mesh_id).or_default().push((at, event));
        }
        // One connection for the batch: taken from the pool per mesh, each
        // waited behind whatever else queues for the pool (10,000 sessions
        // connecting at once: seconds each), and the queue overflowed.
        let Some(mut conn) = acquire_patiently(&pool).await else {
            return;
        };
        for (mesh_id, events) in by_mesh {
            let written = async {
                let mut tx = conn.begin().await?;
                append_many(&mut tx, &mesh_id, &events).await?;
                tx.commit().await
            }
            .await;
            if let Err(err) = written {
                // A mesh deleted meanwhile takes its log with it.
                tracing::warn!(mesh_id, entries = events.len(), error = %err, "mesh log: entries not written");
                // The connection may be what failed: the next mesh gets
                // another.
                drop(conn);
                let Some(other) = acquire_patiently(&pool).await else {
                    return;
                };
                conn = other;
            }
        }
    }
}

/// A pool connection, waited for as long as the database is unreachable
/// (the entries wait with it, and the queue behind them: pushes beyond it
/// are dropped, each logged); `None` once the pool is closed.
async fn acquire_patiently(pool: &sqlx::AnyPool) -> Option<sqlx::pool::PoolConnection<sqlx::Any>> {
    loop {
        match pool.acquire().await {
            Ok(conn) => return Some(conn),
            Err(sqlx::Error::PoolClosed) => return None,
            Err(err) => {
                tracing::warn!(error = %err, "mesh log: no database connection; trying again in a second");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}
