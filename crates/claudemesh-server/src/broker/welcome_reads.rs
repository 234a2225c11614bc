//! The peers and members a welcome lists, read once for the many sessions
//! of a mesh that connect in the same moment.
//!
//! Each welcome lists every session of its mesh and every member's keys:
//! for a mesh of 100 that is some 200 rows, and when all its sessions
//! connect at once (an instance restarting, say) every one of them read
//! them again, 100 x 200 rows whose decoding was most of the server's time
//! (measured with 10,000 sessions in meshes of 100 connecting at once).
//! Here the sessions of a mesh share a read: one session reads while the
//! others wait, and a waiting session takes the result of a read that
//! began after it asked.
//!
//! Why that is enough: a session is registered with the hub (so every later
//! join is queued to it) before it asks, and a read that began after it
//! asked sees every session that joined before; it is what the session's
//! own read would have seen, or newer. A read that failed is shared too:
//! with the database down, the sessions waiting on a mesh fail together
//! instead of each waiting out the pool in turn.

use super::store;
use claudemesh_api::broker::{MemberKeys, Peer};
use sqlx::AnyPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The mesh's sessions and members, as one read found them.
#[derive(Clone)]
pub(super) struct MeshView {
    pub peers: Arc<Vec<Peer>>,
    pub members: Arc<Vec<MemberKeys>>,
}

/// The last read of a mesh, and when it began.
struct Read {
    began: u64,
    view: Result<MeshView, String>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Read>>>;

#[derive(Default)]
pub(super) struct WelcomeReads {
    /// A clock of asks and reads: a read answers the asks before it began.
    ticks: AtomicU64,
    /// One slot per mesh being asked about; forgotten when nobody is.
    meshes: Mutex<HashMap<String, Slot>>,
}

impl WelcomeReads {
    /// The sessions and members of `mesh_id` as a read that began after
    /// this call finds them.
    pub async fn view(&self, pool: &AnyPool, mesh_id: &str) -> Result<MeshView, sqlx::Error> {
        let asked = self.ticks.fetch_add(1, Ordering::SeqCst);
        let held = Held {
            reads: self,
            mesh_id,
            slot: Arc::clone(self.meshes().entry(mesh_id.to_owned()).or_default()),
        };
        fresh_view(&self.ticks, &held.slot, pool, mesh_id, asked).await
    }

    fn meshes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        self.meshes.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn meshes_held(&self) -> usize {
        self.meshes().len()
    }
}

/// A mesh's slot as one ask holds it; the last to let go, answered or
/// cancelled, forgets the mesh.
struct Held<'a> {
    reads: &'a WelcomeReads,
    mesh_id: &'a str,
    slot: Slot,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut meshes = self.reads.meshes();
        // The map's handle and this one: nobody else is waiting on this
        // mesh (handles are only taken with the map locked).
        if Arc::strong_count(&self.slot) == 2 {
            meshes.remove(self.mesh_id);
        }
    }
}

/// The slot's last read if it began after `asked`, or a new one.
async fn fresh_view(
    ticks: &AtomicU64,
    slot: &Slot,
    pool: &AnyPool,
    mesh_id: &str,
    asked: u64,
) -> Result<MeshView, sqlx::Error> {
    let mut last = slot.lock().await;
    let read = match last.take() {
        Some(read) if read.began > asked => read,
        _ => {
            let began = ticks.fetch_add(1, Ordering::SeqCst);
            let view = async {
                Ok::<_, sqlx::Error>(MeshView {
                    peers: Arc::new(store::peers(pool, mesh_id).await?),
                    members: Arc::new(store::member_keys(pool, mesh_id).await?),
                })
            }
            .await
            .map_err(|err| err.to_string());
            Read { began, view }
        }
    };
    let answer = read.view.clone().map_err(sqlx::Error::Protocol);
    *last = Some(read);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory database with the real schema; foreign keys are off on
    /// its one connection, so sessions need no mesh or member rows.
    async fn pool_with_sessions() -> AnyPool {
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        crate::db::pool::MIGRATOR.run(&pool).await.unwrap();
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&pool)
            .await
            .unwrap();
        pool
    }

    async fn connect(pool: &AnyPool, mesh_id: &str, session_key: &str) {
        sqlx::query(
            "INSERT INTO broker_sessions (session_key, mesh_id, member_id, member_key, \
             display_name, role, groups, status, summary, connected_at, instance_id, conn_id) \
             VALUES ($1, $2, 'mem', 'k', 'Ann', '', '[]', 'idle', '', 1, 'i', 'c')",
        )
        .bind(session_key)
        .bind(mesh_id)
        .execute(pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_view_shows_every_session_connected_before_it_was_asked_for() {
        let pool = pool_with_sessions().await;
        let reads = WelcomeReads::default();
        connect(&pool, "m1", "s1").await;
        assert_eq!(reads.view(&pool, "m1").await.unwrap().peers.len(), 1);
        connect(&pool, "m1", "s2").await;
        connect(&pool, "m2", "s3").await;
        let view = reads.view(&pool, "m1").await.unwrap();
        let keys: Vec<&str> = view.peers.iter().map(|p| p.session_key.as_str()).collect();
        assert_eq!(keys, ["s1", "s2"]);
        assert_eq!(reads.meshes_held(), 0, "nothing is kept once answered");
    }

    #[tokio::test]
    async fn a_read_is_taken_only_by_those_who_asked_before_it_began() {
        let pool = pool_with_sessions().await;
        let ticks = AtomicU64::new(10);
        let empty = MeshView {
            peers: Arc::new(Vec::new()),
            members: Arc::new(Vec::new()),
        };
        let slot: Slot = Arc::new(tokio::sync::Mutex::new(Some(Read {
            began: 5,
            view: Ok(empty),
        })));
        connect(&pool, "m1", "s1").await;
        // Asked before the read began: the read (empty) answers.
        let view = fresh_view(&ticks, &slot, &pool, "m1", 4).await.unwrap();
        assert!(view.peers.is_empty());
        // Asked after: a new read, which sees the session.
        let view = fresh_view(&ticks, &slot, &pool, "m1", 6).await.unwrap();
        assert_eq!(view.peers.len(), 1);
        // A failed read answers those who asked before it, as a failure.
        *slot.lock().await = Some(Read {
            began: 20,
            view: Err("the database is down".into()),
        });
        let failed = fresh_view(&ticks, &slot, &pool, "m1", 19).await;
        assert!(failed.is_err());
        assert_eq!(
            fresh_view(&ticks, &slot, &pool, "m1", 21)
                .await
                .unwrap()
                .peers
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn sessions_asking_at_once_share_reads() {
        let pool = pool_with_sessions().await;
        connect(&pool, "m1", "s1").await;
        let reads = Arc::new(WelcomeReads::default());
        let asks: Vec<_> = (0..50)
            .map(|_| {
                let (reads, pool) = (Arc::clone(&reads), pool.clone());
                tokio::spawn(async move { reads.view(&pool, "m1").await.unwrap() })
            })
            .collect();
        let mut distinct = Vec::new();
        for ask in asks {
            let view = ask.await.unwrap();
            assert_eq!(view.peers.len(), 1);
            if !distinct.iter().any(|p| Arc::ptr_eq(p, &view.peers)) {
                distinct.push(Arc::clone(&view.peers));
            }
        }
        // The first ask reads alone; the others, asking meanwhile, share
        // the next read (or that one, if they asked before it began).
        assert!(distinct.len() <= 2, "{} reads for 50 asks", distinct.len());
        assert_eq!(reads.meshes_held(), 0);
    }
}
