//! The message broker: `GET /api/mesh/ws`, where the members' sessions meet.
//!
//! - [`Broker`] (`service`): the broker's face to the rest of the server:
//!   started with the server, told when a membership ends, asked who is
//!   connected; inside, the heartbeat, the sweeps and the events from the
//!   other instances.
//! - `connection`: one task per WebSocket: the challenge, the hello, then
//!   the session's frames.
//! - `socket`: the WebSocket upgrade, and a socket that writes a large
//!   frame as fragments (so no idle session keeps a welcome's worth of
//!   write buffer).
//! - `hub`: the connections this instance holds, and where events go.
//! - `writer`: every message stored before its ack, many per transaction.
//! - `stored_ids`: whether an id is stored already (inline on SQLite,
//!   batched on PostgreSQL).
//! - `welcome_reads`: the sessions and members a welcome lists, read once
//!   for the sessions of a mesh that connect together.
//! - `store`: the tables (presence, messages, deliveries); all the broker's
//!   SQL.
//! - `bus`: the other instances, through PostgreSQL's LISTEN/NOTIFY or,
//!   with `--bus nats://…`, NATS.
//! - `limits`: the per-member send rate.
//!
//! The broker relays ciphertext only (see `claudemesh_api::e2e`) and keeps
//! nothing in memory that a restart would lose: presence and messages live
//! in the database, which is what lets several instances act as one.

mod bus;
mod connection;
mod hub;
mod limits;
mod service;
mod socket;
mod store;
mod stored_ids;
mod welcome_reads;
mod writer;

pub use bus::{BusError, describe_setting as describe_bus};
pub use service::{Broker, BrokerSettings, StartError};

/// The broker's one route, in any router whose state holds the broker (the
/// server's `AppState`: the broker does not depend on it).
pub fn routes<S>() -> axum::Router<S>
where
    Broker: axum::extract::FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    axum::Router::new().route("/api/mesh/ws", axum::routing::get(connection::upgrade))
}
