//! Whether a message id is stored already, asked on every send that may
//! reach its recipients before its commit (see `Broker::may_deliver_early`).
//!
//! On SQLite it is an inline read of a few microseconds (see
//! [`crate::db::sqlite_reader`]). On PostgreSQL a query per send, through
//! the shared pool, cost more than early delivery saved (measured: a paced
//! run's p50 went from 0.8 to 6.3 ms, and 5,000 to 4,100 messages a second),
//! so the sends of a moment share one: a task asks for whatever ids are
//! waiting, up to [`MAX_IDS`] in a query, while the next ones queue for the
//! other of [`ANSWERERS`] tasks. Each asks on a connection of its own:
//! through the pool they waited behind the writer's transactions.

use super::store;
use crate::db::sqlite_reader::SqliteReader;
use sqlx::Connection;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

/// Ids asked in one query, at most.
const MAX_IDS: usize = 256;
/// Queries in flight at once, each on a connection of its own: with one, a
/// send arriving during a query waited for it to end before its own began.
const ANSWERERS: usize = 2;
/// An answer slower than this is not waited for: the message then goes out
/// at its commit, as it would without early delivery. (Answers take a
/// millisecond or two; a send must never hang on a dead connection.)
const ANSWER_WITHIN: Duration = Duration::from_millis(50);
/// Connecting, or one query, taking longer than this gives up the
/// connection.
const DATABASE_WITHIN: Duration = Duration::from_secs(1);
/// After a failed connection, the pool serves this long before the next try.
const RECONNECT_AFTER: Duration = Duration::from_secs(5);

type Question = (String, oneshot::Sender<bool>);

pub enum StoredIds {
    Inline {
        pool: sqlx::AnyPool,
        reader: Arc<SqliteReader>,
    },
    Batched(mpsc::Sender<Question>),
}

impl StoredIds {
    /// Inline on a SQLite file (`reader`), batched otherwise: on
    /// connections of their own to a PostgreSQL `database_url` (through `pool`
    /// while it cannot connect, and for an in-memory SQLite store).
    pub fn start(
        pool: sqlx::AnyPool,
        reader: Option<Arc<SqliteReader>>,
        database_url: Option<&str>,
    ) -> Self {
        match reader {
            Some(reader) => Self::Inline { pool, reader },
            None => {
                let (tx, rx) = mpsc::channel(4 * MAX_IDS);
                let own_url = database_url
                    .filter(|url| url.starts_with("postgres"))
                    .map(str::to_owned);
                let questions = Arc::new(tokio::sync::Mutex::new(rx));
                for _ in 0..ANSWERERS {
                    tokio::spawn(answer(
                        pool.clone(),
                        own_url.clone(),
                        Arc::clone(&questions),
                    ));
                }
                Self::Batched(tx)
            }
        }
    }

    /// Whether a message with this id is stored; `None` when the database
    /// could not tell.
    pub async fn contains(&self, id: &str) -> Option<bool> {
        match self {
            Self::Inline { pool, reader } => store::is_stored(pool, Some(reader), id).await.ok(),
            Self::Batched(questions) => {
                let (tx, rx) = oneshot::channel();
                // A full queue means the answers are slow: do without.
                questions.try_send((id.to_owned(), tx)).ok()?;
                tokio::time::timeout(ANSWER_WITHIN, rx).await.ok()?.ok()
            }
        }
    }
}

/// Answers the waiting questions, a query for each handful. Several of
/// these take turns at the queue: while one waits for its answer, the next
/// takes what arrived meanwhile.
async fn answer(
    pool: sqlx::AnyPool,
    own_url: Option<String>,
    questions: Arc<tokio::sync::Mutex<mpsc::Receiver<Question>>>,
) {
    let mut own: Option<sqlx::AnyConnection> = None;
    let mut next_connect = Instant::now();
    let mut batch = Vec::with_capacity(MAX_IDS);
    // Whatever is waiting, up to MAX_IDS, once something is.
    while questions.lock().await.recv_many(&mut batch, MAX_IDS).await > 0 {
        if own.is_none()
            && let Some(url) = own_url.as_deref()
            && Instant::now() >= next_connect
        {
            own = match timeout(DATABASE_WITHIN, sqlx::AnyConnection::connect(url)).await {
                Ok(Ok(conn)) => Some(conn),
                Ok(Err(_)) | Err(_) => {
                    next_connect = Instant::now() + RECONNECT_AFTER;
                    None
                }
            };
        }
        let ids: Vec<&str> = batch.iter().map(|(id, _)| id.as_str()).collect();
        let found = match own.as_mut() {
            Some(conn) => timeout(DATABASE_WITHIN, store::stored_among(&mut *conn, &ids)).await,
            None => timeout(DATABASE_WITHIN, store::stored_among(&pool, &ids)).await,
        };
        match found {
            Ok(Ok(found)) => {
                let found: HashSet<String> = found.into_iter().collect();
                for (id, tx) in batch.drain(..) {
                    let _ = tx.send(found.contains(&id));
                }
            }
            failed => {
                // Dropped unanswered: the senders' messages go out at commit.
                if let Ok(Err(err)) = failed {
                    tracing::warn!(error = %err, "broker: cannot tell whether message ids are stored");
                } else {
                    tracing::warn!("broker: no answer from the database on stored message ids");
                }
                own = None;
                batch.clear();
            }
        }
    }
}
