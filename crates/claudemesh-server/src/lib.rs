//! The claudemesh server as a library: `main.rs` and the tests both build the
//! same [`Application`].
//!
//! Each folder owns one part; each starts with a map of its files.
//!
//! - [`auth`]: who is calling (the bearer-token and cookie check), accounts,
//!   device codes and OAuth, tokens, and the limits on each.
//! - [`meshes`]: meshes, their members, and invites.
//! - [`broker`]: the message broker, where the members' sessions meet.
//! - [`pages`]: the browser side, server-rendered HTML.
//! - [`telemetry`]: usage events from the CLI.
//!
//! The plumbing they share: [`app`] (configuration, state, router, start-up),
//! [`http`] (extractors, errors, cookies, the OpenAPI document), [`db`] (the
//! store, the audit trail, ids), [`text`] (languages, formatting, mail),
//! [`clock`] and [`metrics`] (what operators scrape, off unless asked for).

pub mod app;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod db;
pub mod http;
pub mod meshes;
pub mod metrics;
pub mod pages;
pub mod telemetry;
pub mod text;

pub use app::application::Application;
pub use app::config::Config;
