//! The store and what every module writes into it alike.
//!
//! - [`pool`]: one pool over SQLite or PostgreSQL, migrated at start.
//! - [`sqlite_reader`]: synchronous read-only SQLite connections for the
//!   request hot path (the token check).
//! - [`sqlite_checkpointer`]: checkpoints a SQLite file's write-ahead log
//!   off the broker writer's commits.
//! - [`audit`]: the audit trail of security events.
//! - [`ids`]: random row ids and secrets.
//! - [`sql`]: placeholders and multi-row inserts, as SQL text.

pub mod audit;
pub mod ids;
pub mod pool;
pub mod sql;
pub mod sqlite_checkpointer;
pub mod sqlite_reader;
