//! The store and what every module writes into it alike.
//!
//! - [`pool`]: one pool over SQLite or PostgreSQL, migrated at start.
//! - [`sqlite_reader`]: synchronous read-only SQLite connections for the
//!   request hot path (the token check).
//! - [`audit`]: the audit trail of security events.
//! - [`ids`]: random row ids and secrets.

pub mod audit;
pub mod ids;
pub mod pool;
pub mod sqlite_reader;
