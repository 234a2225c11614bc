//! The claudemesh server as a library: `main.rs` and the tests both build the
//! same [`Application`].
//!
//! Resources each own a module (routes, queries, tests): [`accounts`],
//! [`device_codes`] (with its RFC 8628 face in [`oauth`] and its waiting
//! polls in [`wakeups`]), [`tokens`], [`meshes`] and [`invites`] (with
//! [`mail`]), and the message [`broker`].
//! Shared plumbing sits beside them: [`config`], [`db`], [`error`], [`auth`]
//! (who is calling, and [`request_limit`] on each token; [`address_limits`]
//! on what needs no sign-in), [`http`]
//! (extractors), [`audit`], [`clock`].

pub mod accounts;
pub mod address_limits;
pub mod app;
pub mod audit;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod credential_mail;
pub mod csrf;
pub mod db;
pub mod device_codes;
pub mod error;
pub mod format;
pub mod guessing;
pub mod http;
pub mod i18n;
pub mod ids;
pub mod invites;
pub mod logging;
pub mod mail;
pub mod meshes;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod passwords;
pub mod request_limit;
pub mod sqlite_reader;
pub mod state;
pub mod telemetry;
pub mod token_store;
pub mod tokens;
pub mod wakeups;

pub use app::Application;
pub use config::Config;
