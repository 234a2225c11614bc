//! The server's JSON API over real HTTP, on SQLite and on PostgreSQL.
//!
//! Every test is written once as `async fn name(engine: Engine)` and run on
//! both engines by `on_both_engines!`. Servers come from the testkit: the
//! real router on a random port over a fresh database, with a frozen clock
//! that tests move forward instead of sleeping.

/// Runs each listed `async fn(Engine)` once on SQLite and once on PostgreSQL.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(claudemesh_testkit::Engine::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(claudemesh_testkit::Engine::Postgres).await
                }
            )*
        }
    };
}

mod accounts;
mod bad_input;
mod device_codes;
mod meshes;
mod oauth;
mod startup;
mod support;
mod tokens;
