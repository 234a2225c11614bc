//! The server as a process: its configuration, the state every handler
//! reaches, the router and listener, and the log.
//!
//! - [`config`]: flags and environment variables.
//! - [`state`]: what every handler can reach ([`state::AppState`]).
//! - [`application`]: building and running the server ([`application::Application`]),
//!   and the whole HTTP surface assembled in one place.
//! - [`logging`]: log set-up.
//! - [`check`]: `--check-config`, the settings checked without starting.
//! - [`probes`]: `/healthz` (the process answers) and `/readyz` (it can
//!   serve: database reachable, schema current).
//! - [`metrics_listener`]: `/metrics` on `--metrics-bind`'s own address.

pub mod application;
pub mod check;
pub mod config;
pub mod logging;
pub mod metrics_listener;
pub mod probes;
pub mod state;
