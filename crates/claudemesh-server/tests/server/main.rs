//! claudemesh-server over real HTTP, on SQLite and on PostgreSQL: the JSON
//! API (`api`) and the browser pages (`pages`). One test binary, so the crate
//! links once.
//!
//! Servers come from the testkit: the real router on a random port over a
//! fresh database, with a frozen clock that tests move forward instead of
//! sleeping.

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

mod api;
mod pages;
