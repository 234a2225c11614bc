//! The browser side: server-rendered HTML pages (askama templates in
//! `templates/`, texts in `locales/`), a stylesheet and two small scripts.
//!
//! - [`account`] — `/login`, `/register`, `/logout`, `/dashboard/settings/password`
//! - [`cli_auth`] — `/cli-auth`, where a signed-in person approves a CLI login
//! - [`dashboard`] — `/dashboard` (the account's meshes) and
//!   `/dashboard/settings/cli-tokens`
//! - [`meshes`] — `/dashboard/meshes/{slug}`: members, and for admins invites
//! - [`mesh_admin`] — the mesh page's admin actions: a member's role,
//!   rename, archive, unarchive, delete (each after a confirmation page)
//! - [`invite`] — `/i/{code}`: an invitation, accepted in the browser
//! - [`assets`] — `/static/…`
//! - [`fallback`] — any other path outside `/api` and `/oauth` gets an HTML
//!   404 (and a known path asked with the wrong method, a 405).
//!
//! What they share, one file each:
//! - `ctx` — `Ctx`, where every handler starts: the language, the
//!   signed-in user (if any, read from the session cookie), the query, and
//!   the ways to answer (render, redirect); `PageResult`, what a handler
//!   returns.
//! - `csrf` — GET never changes state; every form that does carries a CSRF
//!   token and is accepted when it comes from our own origin or its token
//!   matches: [`crate::auth::csrf::allows`], the API's rule, with the token
//!   taken from the form body.
//! - `cookies` — the language cookie, and the double-submit token of the
//!   sign-in and register forms, which have no session yet.
//! - `headers` — a strict Content-Security-Policy (no inline script or
//!   style), `nosniff`, `Referrer-Policy: same-origin`, and `no-store` (one
//!   page shows a new token) on every response.
//! - `message` — the one-message page and the error pages; `confirm` — the
//!   step before an action that cannot be undone. Times, escaping and
//!   `?next=` are [`crate::text::format`]'s.

pub mod account;
pub mod assets;
pub mod cli_auth;
mod confirm;
mod cookies;
mod csrf;
mod ctx;
pub mod dashboard;
pub mod fallback;
mod headers;
pub mod invite;
mod mesh_admin;
pub mod meshes;
mod message;

use crate::app::state::AppState;
use axum::Router;
use axum::middleware;

/// Every page route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(account::routes())
        .merge(cli_auth::routes())
        .merge(dashboard::routes())
        .merge(meshes::routes())
        .merge(mesh_admin::routes())
        .merge(invite::routes())
        .merge(assets::routes())
        .layer(middleware::from_fn(headers::security_headers))
}
