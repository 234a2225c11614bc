//! Checkpoints a SQLite file's write-ahead log on a thread of its own.
//!
//! By default SQLite checkpoints from whichever connection's commit takes
//! the log past 1,000 pages: that commit then copies the log into the
//! database file and syncs both before it returns. On the broker's writer
//! (one connection committing every batch) that was 30% of its time under
//! load, and every message of the batch behind it waited. This thread
//! checkpoints instead, PASSIVE (it never blocks a writer or a reader),
//! several times a second. The writer turns SQLite's own checkpoints off
//! (`wal_autocheckpoint = 0`); the pool's connections keep them only as a
//! safety net far above where this thread keeps the log
//! ([`POOL_AUTOCHECKPOINT`]): at SQLite's 1,000 pages every commit of the
//! mesh log's appender stopped to checkpoint a log this thread had
//! already copied (16% of the server's CPU on a paced load).
//!
//! A PASSIVE checkpoint copies the log but never starts it again from its
//! beginning: a writer does that only when it finds the log wholly copied
//! and no reader on it, which under a steady load (readers all the time)
//! it seldom does, and the log grew: 194 MB in a 20 s paced run, without
//! bound had the load gone on. Past [`RESTART_PAST`] pages, this thread
//! rewinds it (RESTART), which holds the writers back for the moment it
//! takes (30–50 ms at that size on these machines, and a writer waiting
//! for SQLite's lock sleeps in steps of 1, 2, 5, 10… ms), so it is kept
//! rare.

use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// How often the log is checkpointed. At the broker's peak (about 10,000
/// messages a second) the log grows by a few thousand pages in this time.
const EVERY: Duration = Duration::from_millis(100);

/// The log's size, in pages, past which it is started again (256 MiB of
/// 4 KiB pages): a bound on the file, reached every few seconds at the
/// broker's peak and never at an everyday load, where the writer restarts
/// the log itself between readers.
pub const RESTART_PAST: i64 = 65_536;

/// The pool connections' own checkpoint threshold: above [`RESTART_PAST`],
/// so they checkpoint only should this thread not run.
pub const POOL_AUTOCHECKPOINT: i64 = 100_000;

/// The checkpointing thread; it stops once this is dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database file at `path`. An error means
    /// nothing will: the caller then keeps SQLite's own checkpoints.
    pub fn start(path: PathBuf) -> Result<Self, String> {
        Self::start_with(path, RESTART_PAST)
    }

    fn start_with(path: PathBuf, restart_past: i64) -> Result<Self, String> {
        let conn = Connection::open(&path).map_err(|err| err.to_string())?;
        conn.busy_handler(Some(wait_briefly))
            .map_err(|err| err.to_string())?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if let Err(err) = checkpoint(&conn, restart_past) {
                        tracing::debug!(error = %err, "SQLite checkpoint failed; trying again");
                    }
                }
            })
            .map_err(|err| err.to_string())?;
        Ok(Self { _stop: stop })
    }
}

/// Copies what it can of the log into the database file without waiting
/// for anyone; then, if the log is past `restart_past` pages, has the next
/// commit start it again from its beginning.
fn checkpoint(conn: &Connection, restart_past: i64) -> rusqlite::Result<()> {
    let log_pages: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))?;
    if log_pages >= restart_past {
        // Copies what the PASSIVE run could not (little: what came since,
        // or what a reader still needed), then waits for the readers still
        // on the log; new readers read the database file, which by then
        // holds the whole log.
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// How a RESTART waits for the writer's transaction and the readers: a
/// few tens of microseconds at a time (SQLite's own waits start at a
/// millisecond, while its writers wait), 200 times at most (a sleep of
/// 25 µs takes 60–80 µs here: 12–16 ms in all, more on a loaded
/// machine), then gives up until the next turn.
fn wait_briefly(tries: i32) -> bool {
    if tries >= 200 {
        return false;
    }
    std::thread::sleep(Duration::from_micros(25));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to a new database at `path` (one table, `t`) that
    /// leaves its log to the checkpointer, as the broker's writer does.
    fn writer_without_checkpoints(path: &std::path::Path) -> Connection {
        let writer = Connection::open(path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x BLOB);",
            )
            .unwrap();
        writer
    }

    /// What a connection without automatic checkpoints leaves in the log
    /// reaches the database file through the checkpointer.
    #[test]
    fn the_log_is_checkpointed_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = writer_without_checkpoints(&path);
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

    /// Under a steady load (a writer committing, readers always on the
    /// log), the log is started again once past the threshold, so its
    /// file stays bounded: with PASSIVE checkpoints alone it grows with
    /// every commit.
    #[test]
    fn a_log_under_steady_load_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = writer_without_checkpoints(&path);
        let restart_past = 100;
        let _checkpointer = Checkpointer::start_with(path.clone(), restart_past).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (path, stop) = (path.clone(), std::sync::Arc::clone(&stop));
                std::thread::spawn(move || {
                    let reader = Connection::open(&path).unwrap();
                    reader.busy_timeout(Duration::from_secs(5)).unwrap();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        reader.execute_batch("BEGIN").unwrap();
                        let _: i64 = reader
                            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
                            .unwrap();
                        std::thread::sleep(Duration::from_micros(300));
                        reader.execute_batch("COMMIT").unwrap();
                    }
                })
            })
            .collect();
        // Two seconds of commits, a millisecond apart: twenty turns of the
        // checkpointer, and a few hundred pages between two of them.
        let until = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < until {
            writer
                .execute("INSERT INTO t VALUES (randomblob(3000))", [])
                .unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for reader in readers {
            reader.join().unwrap();
        }
        let wal_pages = std::fs::metadata(path.with_extension("sqlite-wal"))
            .unwrap()
            .len()
            / 4096;
        // Over a thousand commits of a page or more each; the bound leaves
        // room for what comes between two turns of the checkpointer.
        assert!(
            wal_pages < 20 * restart_past as u64,
            "the log's file holds {wal_pages} pages"
        );
    }
}
