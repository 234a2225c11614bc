//! The real claudemesh server, started in-process on a random port over a
//! fresh database, for integration tests of the server and the CLI.
//!
//! ```no_run
//! # use claudemesh_testkit::{Engine, TestServer};
//! # async fn example() {
//! let server = TestServer::start(Engine::Sqlite).await;
//! let alice = server.register("Alice").await;
//! let pat = alice.create_pat("ci", None).await;
//! // People in a mesh, in one call: accounts, PATs, machine keys, member ids.
//! let mesh = server.mesh(&["Ada", "Ben"]).await;
//! let ben = mesh.member("Ben");
//! # }
//! ```
//!
//! SQLite databases live in a temporary directory. PostgreSQL tests each get
//! their own database on the server named by `CLAUDEMESH_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the
//! [`TestServer`] is. No PostgreSQL server is a failure, never a skip.
//!
//! The rest runs the real server binary from outside, as processes: several
//! [`instances`] on one PostgreSQL database behind a round-robin
//! [`forward`]er, and [`killed`]: sessions under paced load that reconnect
//! while instances are SIGKILLed and restarted, and what they saw. That part
//! needs no server in this process, so without the `server` feature (on by
//! default) it builds on its own, for the bench (`bench/broker`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test harness: a failure stops the test"
)]

pub mod forward;
pub mod instances;
pub mod killed;
pub mod nats;

#[cfg(feature = "server")]
mod mesh;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
mod smtp;
#[cfg(feature = "server")]
mod user;

#[cfg(feature = "server")]
pub use claudemesh_server::clock::ManualClock as Clock;
#[cfg(feature = "server")]
pub use mesh::{Member, Mesh, MeshOptions, member_id};
#[cfg(feature = "server")]
pub use server::{DEFAULT_PASSWORD, Engine, Options, SecondInstance, TestServer};
#[cfg(feature = "server")]
pub use smtp::{ReceivedMail, SmtpSink, outbox};
#[cfg(feature = "server")]
pub use user::TestUser;

/// Runs each listed `async fn(Engine)` once on SQLite and once on PostgreSQL:
/// `on_both_engines!(a, b);` in a test module makes `sqlite::a`,
/// `postgres::a`, … (multi-threaded runtimes, as the server runs). Used by the
/// server's and the CLI's integration tests alike.
#[cfg(feature = "server")]
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Engine::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Engine::Postgres).await
                }
            )*
        }
    };
}
