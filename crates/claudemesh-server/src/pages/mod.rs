//! The browser side: server-rendered HTML pages (askama templates in
//! `templates/`, texts in `locales/`), a stylesheet and two small scripts.
//!
//! - [`account`] — `/login`, `/register`, `/logout`, `/dashboard/settings/password`
//! - [`cli_auth`] — `/cli-auth`, where a signed-in person approves a CLI login
//! - [`dashboard`] — `/dashboard` (the account's meshes) and
//!   `/dashboard/settings/cli-tokens`
//! - [`meshes`] — `/dashboard/meshes/{slug}`: members, and for admins invites
//! - [`invite`] — `/i/{code}`: an invitation, accepted in the browser
//! - [`assets`] — `/static/…`
//!
//! Any other path outside `/api` and `/oauth` gets the HTML [`fallback`] 404.
//!
//! What they share, one file each:
//! - `ctx` — [`Ctx`], where every handler starts: the language, the
//!   signed-in user (if any, read from the session cookie), the query, and
//!   the ways to answer (render, redirect, message page, error page).
//! - `csrf` — GET never changes state; every form that does carries a CSRF
//!   token and is accepted when it comes from our own origin or its token
//!   matches: [`crate::auth::csrf::allows`], the API's rule, with the token taken
//!   from the form body.
//! - `cookies` — the language cookie, and the double-submit token of the
//!   sign-in and register forms, which have no session yet
//!   ([`PRE_SESSION_COOKIE`]).
//! - `headers` — a strict Content-Security-Policy (no inline script or
//!   style), `nosniff`, `Referrer-Policy: same-origin`, and `no-store` (one
//!   page shows a new token) on every response.
//! - `message` — the one-message page; `confirm` — the step before an
//!   action that cannot be undone; `format` — times, escaping, `?next=`.

pub mod account;
pub mod assets;
pub mod cli_auth;
mod confirm;
mod cookies;
mod csrf;
mod ctx;
pub mod dashboard;
mod headers;
pub mod invite;
pub mod meshes;
mod message;

pub use crate::text::format::{
    format_clock, format_countdown, format_rfc3339, format_time, html_escape, parse_rfc3339,
    percent_encode, safe_next,
};
pub use cookies::PRE_SESSION_COOKIE;
pub use ctx::{Ctx, LangLink};
pub use message::{Action, Message};

use crate::app::state::AppState;
use crate::auth::caller::{BrowserCaller, Caller, Via};
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use headers::{add_security_headers, security_headers};

/// What a page handler returns: the page, or an early answer (a redirect to
/// sign in, an error page) through `?`.
pub type PageResult = Result<Response, PageError>;

/// An early answer of a page handler: a finished response (boxed, it is big).
pub struct PageError(Box<Response>);

impl From<Response> for PageError {
    fn from(response: Response) -> Self {
        Self(Box::new(response))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// Every page route.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(account::routes())
        .merge(cli_auth::routes())
        .merge(dashboard::routes())
        .merge(meshes::routes())
        .merge(invite::routes())
        .merge(assets::routes())
        .layer(middleware::from_fn(security_headers))
}

/// Whether a path belongs to the JSON side (its errors are JSON bodies).
pub fn is_api_path(path: &str) -> bool {
    ["/api", "/oauth"]
        .iter()
        .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
}

/// The router's fallback: the API's JSON 404 under `/api` and `/oauth`
/// (clients read the error body), an HTML page everywhere else (people).
pub async fn fallback(State(state): State<AppState>, request: Request) -> Response {
    if is_api_path(request.uri().path()) {
        return crate::http::request::not_found().await.into_response();
    }
    let (mut parts, _body) = request.into_parts();
    let Ok(ctx) = Ctx::from_request_parts(&mut parts, &state).await;
    let mut response = not_found_page(&ctx);
    add_security_headers(&mut response);
    response
}

/// For a known path asked with a method it does not take (a `PUT /login`):
/// the API's JSON 405 under `/api` and `/oauth`, an HTML page elsewhere.
pub async fn method_not_allowed(State(state): State<AppState>, request: Request) -> Response {
    if is_api_path(request.uri().path()) {
        return crate::http::request::method_not_allowed()
            .await
            .into_response();
    }
    let (mut parts, _body) = request.into_parts();
    let Ok(ctx) = Ctx::from_request_parts(&mut parts, &state).await;
    let home = if ctx.user.is_some() {
        "/dashboard"
    } else {
        "/"
    };
    let mut response = ctx.message(
        StatusCode::METHOD_NOT_ALLOWED,
        Message::new("warn", "?", ctx.t("method-not-allowed-title"))
            .paragraph(ctx.t("method-not-allowed-body"))
            .action(home, ctx.t("not-found-home"), true),
    );
    add_security_headers(&mut response);
    response
}

/// The page for a path that leads nowhere.
pub fn not_found_page(ctx: &Ctx) -> Response {
    let home = if ctx.user.is_some() {
        "/dashboard"
    } else {
        "/"
    };
    ctx.message(
        StatusCode::NOT_FOUND,
        Message::new("warn", "?", ctx.t("not-found-title"))
            .paragraph(ctx.t("not-found-body"))
            .action(home, ctx.t("not-found-home"), true),
    )
}

/// The API's caller for a signed-in browser, to call the functions shared
/// with the JSON API ([`crate::meshes::mesh`], [`crate::meshes::invites`]).
pub fn api_caller(user: &BrowserCaller) -> Caller {
    Caller {
        user: user.user.clone(),
        via: Via::Cookie(user.session.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_told_apart_from_pages() {
        for api in ["/api", "/api/nope", "/oauth/token", "/oauth"] {
            assert!(is_api_path(api), "{api}");
        }
        for page in ["/dashboard/nope", "/apis", "/oauthx", "/", "/i/x"] {
            assert!(!is_api_path(page), "{page}");
        }
    }
}
