//! The store: one pool over SQLite (embedded default) or PostgreSQL.
//!
//! All queries are runtime SQL through sqlx's `Any` driver with `$1`
//! placeholders, which both engines accept. To stay inside what `Any` carries,
//! times are integer milliseconds and ids are text; the rare statement that
//! must differ asks [`Db::engine`].

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub engine: Engine,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL must start with postgres:// or sqlite:")]
    UnsupportedUrl,
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the {engine} database: {source}")]
    Connect {
        engine: &'static str,
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Db {
    /// Opens the store named by `database_url`, or the SQLite file in
    /// `data_dir` when there is none, and applies pending migrations.
    pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Self, DbError> {
        install_default_drivers();
        let (url, engine) = match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (url.to_owned(), Engine::Postgres)
            }
            Some(url) if url.starts_with("sqlite:") => (url.to_owned(), Engine::Sqlite),
            Some(_) => return Err(DbError::UnsupportedUrl),
            None => {
                std::fs::create_dir_all(data_dir).map_err(|source| DbError::DataDir {
                    path: data_dir.display().to_string(),
                    source,
                })?;
                let file = data_dir.join("claudemesh.db");
                (
                    format!("sqlite://{}?mode=rwc", file.display()),
                    Engine::Sqlite,
                )
            }
        };
        let options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            .max_connections(match engine {
                // One writer at a time anyway; a few readers in WAL mode.
                Engine::Sqlite => 8,
                Engine::Postgres => 16,
            });
        let options = if engine == Engine::Sqlite {
            options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                    )
                    .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| DbError::Connect {
                engine: engine.name(),
                source,
            })?;
        let db = Self { pool, engine };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies the embedded migrations. On PostgreSQL sqlx holds an advisory
    /// lock meanwhile, so instances starting together do not race.
    async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self.engine {
            Engine::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&self.pool).await,
            Engine::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.pool)
                    .await
            }
        }
    }
}
