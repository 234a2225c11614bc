//! Where a path that leads nowhere ends up: the router's fallbacks, the
//! API's JSON 404 and 405 under `/api` and `/oauth` (clients read the error
//! body), an HTML page everywhere else (people).

use super::ctx::Ctx;
use super::headers::add_security_headers;
use super::message::Message;
use crate::app::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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
