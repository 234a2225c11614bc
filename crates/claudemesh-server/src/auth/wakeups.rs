//! Wake-ups for device-code polls that wait (`?wait=N`, see
//! [`crate::auth::device_codes`]).
//!
//! A waiting poll registers here under its device code's hash and sleeps until
//! that hash is woken: by this instance when it approves, denies or claims the
//! code, and, on PostgreSQL, by the listener when another instance did so and
//! said it with a `NOTIFY` on [`CHANNEL`]. The payload is the hash alone,
//! never the code. A wake-up carries no state: the woken poll reads the row
//! again, so a duplicate or stray wake-up costs one read and nothing else.
//!
//! Nothing here is needed for correctness: a notification lost while the
//! listening connection is down (every waiter is woken when it comes back) or
//! a waiter turned away by the caps below only means an answer at the end of
//! the wait instead of at once. No database connection is held while waiting.

use crate::db::pool::Engine;
use sqlx::postgres::PgListener;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{Notify, futures::Notified, watch};

/// The PostgreSQL channel that carries device-code hashes between instances.
pub const CHANNEL: &str = "claudemesh_device_codes";
/// Waiting polls one instance holds at most; past it a poll is answered at
/// once. Each is an open HTTP request and a few hundred bytes here.
pub const MAX_WAITERS: usize = 10_000;
/// Waiting polls per device code: one CLI polls a code; more is a client
/// polling in parallel, which gains nothing by waiting.
pub const MAX_WAITERS_PER_CODE: usize = 4;

/// The registry of waiting polls, cheap to clone.
#[derive(Clone)]
pub struct Wakeups(Arc<Inner>);

struct Inner {
    engine: Engine,
    waiting: Mutex<Waiting>,
    closing: AtomicBool,
    /// Stops the listener: sent on close, dropped with the registry.
    stop: watch::Sender<bool>,
}

#[derive(Default)]
struct Waiting {
    codes: HashMap<String, Slot>,
    total: usize,
}

struct Slot {
    notify: Arc<Notify>,
    waiters: usize,
}

/// One waiting poll's place in the registry; leaving is dropping it.
pub struct Waiter {
    wakeups: Wakeups,
    hash: String,
    notify: Arc<Notify>,
}

impl Waiter {
    /// Completes at the next wake-up of this code (or of everyone). Take it
    /// *before* reading the row: a wake-up between the read and the wait
    /// is then not missed.
    pub fn woken(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// The server is stopping: answer now.
    pub fn closing(&self) -> bool {
        self.wakeups.0.closing.load(Ordering::SeqCst)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut waiting = self.wakeups.lock();
        waiting.total -= 1;
        if let Some(slot) = waiting.codes.get_mut(&self.hash) {
            slot.waiters -= 1;
            if slot.waiters == 0 {
                waiting.codes.remove(&self.hash);
            }
        }
    }
}

impl Wakeups {
    /// A registry for this instance; on PostgreSQL it also listens for the
    /// other instances (the first `LISTEN` is in place when this returns,
    /// unless the database refused it: then it keeps trying in the background).
    pub async fn start(engine: Engine, database_url: Option<&str>) -> Self {
        let wakeups = Self(Arc::new(Inner {
            engine,
            waiting: Mutex::default(),
            closing: AtomicBool::new(false),
            stop: watch::channel(false).0,
        }));
        if let (Engine::Postgres, Some(url)) = (engine, database_url) {
            let first = connect(url).await;
            if let Err(err) = &first {
                tracing::warn!(error = %err, "device codes: cannot LISTEN yet; retrying");
            }
            tokio::spawn(listen(
                url.to_owned(),
                first.ok(),
                Arc::downgrade(&wakeups.0),
                wakeups.0.stop.subscribe(),
            ));
        }
        wakeups
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Nothing panics while holding the lock; a poisoned one is still
        // consistent.
        self.0.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place to wait for `hash`, or `None` when the caps are reached or the
    /// server is stopping (the poll is then answered at once).
    pub fn waiter(&self, hash: &str) -> Option<Waiter> {
        if self.0.closing.load(Ordering::SeqCst) {
            return None;
        }
        let mut waiting = self.lock();
        if waiting.total >= MAX_WAITERS {
            return None;
        }
        let slot = waiting
            .codes
            .entry(hash.to_owned())
            .or_insert_with(|| Slot {
                notify: Arc::default(),
                waiters: 0,
            });
        if slot.waiters >= MAX_WAITERS_PER_CODE {
            return None;
        }
        slot.waiters += 1;
        let notify = Arc::clone(&slot.notify);
        waiting.total += 1;
        Some(Waiter {
            wakeups: self.clone(),
            hash: hash.to_owned(),
            notify,
        })
    }

    /// Wakes the polls of this instance waiting on `hash`.
    pub fn wake(&self, hash: &str) {
        if let Some(slot) = self.lock().codes.get(hash) {
            slot.notify.notify_waiters();
        }
    }

    /// Wakes every waiting poll of this instance (they read their rows again).
    pub fn wake_all(&self) {
        for slot in self.lock().codes.values() {
            slot.notify.notify_waiters();
        }
    }

    /// The server is stopping: waiting polls answer now, new ones do not
    /// wait, and the listener stops.
    pub fn close(&self) {
        self.0.closing.store(true, Ordering::SeqCst);
        self.wake_all();
        let _ = self.0.stop.send(true);
    }

    /// Tells the other instances that `hash` changed. In a transaction the
    /// notification goes out only if it commits. Nothing to do on SQLite
    /// (one instance): the caller wakes this instance with [`Self::wake`]
    /// after committing.
    pub async fn announce<'e, E>(&self, executor: E, hash: &str) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = sqlx::Any>,
    {
        if self.0.engine == Engine::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(hash)
                .execute(executor)
                .await?;
        }
        Ok(())
    }

    /// How many polls are waiting here (for tests and metrics).
    pub fn waiting(&self) -> usize {
        self.lock().total
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Wakes this instance's waiters for each hash another instance announces,
/// until the registry closes or is dropped.
async fn listen(
    url: String,
    first: Option<PgListener>,
    wakeups: Weak<Inner>,
    mut stop: watch::Receiver<bool>,
) {
    let run = async {
        let mut listener = match first {
            Some(listener) => listener,
            None => loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match connect(&url).await {
                    Ok(listener) => break listener,
                    Err(err) => {
                        tracing::warn!(error = %err, "device codes: cannot LISTEN yet; retrying");
                    }
                }
            },
        };
        // Whatever was announced before the first LISTEN is missed.
        with(&wakeups, Wakeups::wake_all);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let hash = notification.payload();
                    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        with(&wakeups, |w| w.wake(hash));
                    }
                }
                // The connection dropped and the next call reconnects: what
                // was announced meanwhile is lost, so everyone looks again.
                Ok(None) => {
                    tracing::warn!("device codes: LISTEN connection lost; reconnecting");
                    with(&wakeups, Wakeups::wake_all);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "device codes: LISTEN failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    with(&wakeups, Wakeups::wake_all);
                }
            }
        }
    };
    tokio::select! {
        () = run => {}
        // Sent on close, or an error once the registry is dropped.
        _ = stop.changed() => {}
    }
}

fn with(wakeups: &Weak<Inner>, f: impl FnOnce(&Wakeups)) {
    if let Some(inner) = wakeups.upgrade() {
        f(&Wakeups(inner));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Wakeups {
        Wakeups(Arc::new(Inner {
            engine: Engine::Sqlite,
            waiting: Mutex::default(),
            closing: AtomicBool::new(false),
            stop: watch::channel(false).0,
        }))
    }

    #[tokio::test]
    async fn a_wake_up_reaches_the_waiters_of_that_code_only() {
        let wakeups = registry();
        let a = wakeups.waiter("a").unwrap();
        let b = wakeups.waiter("b").unwrap();
        let (woken_a, woken_b) = (a.woken(), b.woken());
        // Taken before the wake: not missed even though not yet polled.
        wakeups.wake("a");
        tokio::time::timeout(Duration::from_secs(5), woken_a)
            .await
            .expect("a is woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), woken_b)
                .await
                .is_err()
        );
    }

    #[test]
    fn waiters_are_capped_per_code_and_leave_nothing_behind() {
        let wakeups = registry();
        let held: Vec<_> = (0..MAX_WAITERS_PER_CODE)
            .map(|_| wakeups.waiter("x").unwrap())
            .collect();
        assert!(wakeups.waiter("x").is_none());
        assert!(wakeups.waiter("y").is_some());
        assert_eq!(wakeups.waiting(), MAX_WAITERS_PER_CODE);
        drop(held);
        assert_eq!(wakeups.waiting(), 0);
        assert!(wakeups.lock().codes.is_empty());
    }

    #[tokio::test]
    async fn closing_wakes_everyone_and_turns_new_waiters_away() {
        let wakeups = registry();
        let waiter = wakeups.waiter("a").unwrap();
        let woken = waiter.woken();
        wakeups.close();
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("woken on close");
        assert!(waiter.closing());
        assert!(wakeups.waiter("b").is_none());
    }
}
