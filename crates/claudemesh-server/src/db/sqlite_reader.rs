//! Synchronous read-only SQLite connections for the request hot path.
//!
//! sqlx runs every SQLite connection on a thread of its own, so each query
//! hands work to that thread and back: on two cores that cost 70–90 µs and
//! three context switches per request, seven times the whole cost of an
//! unauthenticated request. Bearer-token verification is one indexed read on
//! every authenticated request, so on SQLite it runs here instead: inline on
//! the request's thread, through a small pool of read-only connections to the
//! same file (rusqlite over the same bundled SQLite as sqlx). In WAL mode a
//! reader never waits for writers, and each read sees every committed change,
//! so revocation stays immediate. Everything else, and every write, stays on
//! sqlx.

use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept for reuse; more are opened under load, then dropped.
const KEEP_IDLE: usize = 8;
/// A read blocked longer than this (WAL recovery, say) gives up, and the
/// caller falls back to the sqlx pool rather than stall a runtime thread.
const BUSY_TIMEOUT: Duration = Duration::from_millis(100);

pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteReader {
    /// Readers for the database file at `path` (which must exist: open it
    /// with sqlx and migrate first).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }

    /// Runs `read` on a pooled read-only connection.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = read(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEEP_IDLE
        {
            idle.push(conn);
        }
        result
    }
}
