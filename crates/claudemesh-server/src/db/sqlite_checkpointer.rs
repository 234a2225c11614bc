//! Checkpoints a SQLite file's write-ahead log on a thread of its own.
//!
//! By default SQLite checkpoints from whichever connection's commit takes
//! the log past 1,000 pages: that commit then copies the log into the
//! database file and syncs both before it returns. On the broker's writer
//! (one connection committing every batch) that was 30% of its time under
//! load, and every message of the batch behind it waited. The writer turns
//! that off (`wal_autocheckpoint = 0`) and this thread checkpoints instead,
//! PASSIVE (it never blocks a writer or a reader), several times a second.
//! The other connections keep the default as a safety net: should this
//! thread fall behind, the log is still checkpointed past 1,000 pages.

use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// How often the log is checkpointed. At the broker's peak (about 10,000
/// messages a second) the log grows by a few hundred pages in this time.
const EVERY: Duration = Duration::from_millis(100);

/// The checkpointing thread; it stops once this is dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database file at `path`. An error means
    /// nothing will: the caller then keeps SQLite's own checkpoints.
    pub fn start(path: PathBuf) -> Result<Self, String> {
        let conn = Connection::open(&path).map_err(|err| err.to_string())?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if let Err(err) = checkpoint(&conn) {
                        tracing::debug!(error = %err, "SQLite checkpoint failed; trying again");
                    }
                }
            })
            .map_err(|err| err.to_string())?;
        Ok(Self { _stop: stop })
    }
}

/// Copies what it can of the log into the database file without waiting
/// for anyone; returns the log's size and how much of it is copied, in pages.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a connection without automatic checkpoints leaves in the log
    /// reaches the database file through the checkpointer.
    #[test]
    fn the_log_is_checkpointed_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
                 CREATE TABLE t (x BLOB);",
            )
            .unwrap();
        for _ in 0..50 {
            writer
                .execute("INSERT INTO t VALUES (randomblob(4000))", [])
                .unwrap();
        }
        let file_size = || std::fs::metadata(&path).unwrap().len();
        assert!(file_size() < 50 * 4000, "nothing is checkpointed yet");
        let _checkpointer = Checkpointer::start(path.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while file_size() < 50 * 4000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the log was not checkpointed into the database file"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
