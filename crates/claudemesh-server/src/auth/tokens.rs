//! The `/api/my/cli/*` routes (and `/api/my/whoami`, and revoking by
//! possession at `/api/auth/cli/revoke`): what the CLI and scripts see of
//! their tokens. The tokens themselves (minting, verifying, revoking) are
//! [`crate::auth::token_store`].

use crate::app::state::AppState;
use crate::auth::caller::{Caller, Via};
use crate::auth::token_store::{self, TokenRecord};
use crate::http::error::{AppError, AppResult};
use crate::http::openapi::{CsrfRejected, JsonBodyRejected, Unauthorized};
use crate::http::request::{ApiJson, ClientInfo};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use claudemesh_api::wire::{
    CreatePatRequest, CreatedPat, CredentialInfo, OkResponse, RevokeRequest, SessionInfo,
    SessionList, TokenList, WhoAmIResponse,
};
use claudemesh_api::{ErrorBody, Token, TokenKind};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(create_pat, list_pats))
        .routes(routes!(revoke_pat))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_current_session))
        .routes(routes!(revoke_session))
        .routes(routes!(revoke_by_possession))
}

/// Who the caller is, and which credential it used.
#[utoipa::path(get, path = "/api/my/whoami", tag = "tokens",
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = WhoAmIResponse), Unauthorized, crate::auth::request_limit::RateLimited))]
async fn whoami(caller: Caller) -> Json<WhoAmIResponse> {
    let credential = match &caller.via {
        Via::Token(token) => CredentialInfo {
            via: "token".into(),
            token: Some(token.info()),
        },
        Via::Cookie(_) => CredentialInfo {
            via: "cookie".into(),
            token: None,
        },
    };
    Json(WhoAmIResponse {
        user: caller.user,
        credential,
    })
}

/// Create a personal access token. The raw token is in this answer only.
#[utoipa::path(post, path = "/api/my/cli/tokens", tag = "tokens", request_body = CreatePatRequest,
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 201, body = CreatedPat), JsonBodyRejected, Unauthorized, CsrfRejected, crate::auth::request_limit::RateLimited))]
async fn create_pat(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<CreatePatRequest>,
) -> AppResult<(StatusCode, Json<CreatedPat>)> {
    let lang = crate::text::i18n::negotiate(None, &headers).lang;
    let (token, record) = token_store::create_pat_for(
        &state,
        &caller.user.id,
        &client.ip,
        lang,
        &body.name,
        body.expires_in_days,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedPat {
            token: token.expose().to_owned(),
            info: record.info(),
        }),
    ))
}

/// List the account's live personal access tokens (metadata only).
#[utoipa::path(get, path = "/api/my/cli/tokens", tag = "tokens",
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = TokenList), Unauthorized, crate::auth::request_limit::RateLimited))]
async fn list_pats(State(state): State<AppState>, caller: Caller) -> AppResult<Json<TokenList>> {
    let tokens = token_store::list_of_kind(&state, &caller.user.id, TokenKind::Pat).await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(TokenRecord::info).collect(),
    }))
}

/// Revoke a personal access token.
#[utoipa::path(delete, path = "/api/my/cli/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = OkResponse), Unauthorized, CsrfRejected,
        (status = 404, body = ErrorBody, description = "`not_found`: the account has no live PAT with this id"), crate::auth::request_limit::RateLimited))]
async fn revoke_pat(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> AppResult<Json<OkResponse>> {
    token_store::revoke_owned(&state, &caller.user.id, &id, TokenKind::Pat, &client.ip).await?;
    Ok(Json(OkResponse { ok: true }))
}

/// List the account's live CLI sessions, marking the one making the request.
#[utoipa::path(get, path = "/api/my/cli/sessions", tag = "tokens",
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = SessionList), Unauthorized, crate::auth::request_limit::RateLimited))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> AppResult<Json<SessionList>> {
    let current = caller.token().map(|token| token.id.as_str());
    let sessions = token_store::list_of_kind(&state, &caller.user.id, TokenKind::Session).await?;
    Ok(Json(SessionList {
        sessions: sessions
            .iter()
            .map(|record| SessionInfo {
                token: record.info(),
                current: Some(record.id.as_str()) == current,
            })
            .collect(),
    }))
}

/// Revoke one CLI session.
#[utoipa::path(delete, path = "/api/my/cli/sessions/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Session id")),
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = OkResponse), Unauthorized, CsrfRejected,
        (status = 404, body = ErrorBody, description = "`not_found`: the account has no live CLI session with this id"), crate::auth::request_limit::RateLimited))]
async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> AppResult<Json<OkResponse>> {
    token_store::revoke_owned(&state, &caller.user.id, &id, TokenKind::Session, &client.ip).await?;
    Ok(Json(OkResponse { ok: true }))
}

/// Revoke the CLI session token this request is made with.
#[utoipa::path(delete, path = "/api/my/cli/sessions/current", tag = "tokens",
    security(("bearer" = []), ("oauth2" = []), ("cookie" = [])),
    responses((status = 200, body = OkResponse), Unauthorized, CsrfRejected,
        (status = 403, body = ErrorBody, description = "`forbidden`: the request is not made with a CLI session token (a PAT, or a browser session); `csrf_rejected`: a browser session's request from another origin"),
        crate::auth::request_limit::RateLimited))]
async fn revoke_current_session(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
) -> AppResult<Json<OkResponse>> {
    match caller.token() {
        Some(token) if token.kind() == TokenKind::Session => {
            token_store::revoke_owned(
                &state,
                &caller.user.id,
                &token.id,
                TokenKind::Session,
                &client.ip,
            )
            .await?;
            Ok(Json(OkResponse { ok: true }))
        }
        // A well-formed request with the wrong kind of credential.
        _ => Err(AppError::forbidden(
            "This request is not made with a CLI session token; revoke a PAT with DELETE /api/my/cli/tokens/{id}",
        )),
    }
}

/// Revoke a token by possession, no other auth needed: what `claudemesh
/// logout` uses, and what anyone who finds a leaked token can do. The answer
/// is the same whether or not the token existed.
#[utoipa::path(post, path = "/api/auth/cli/revoke", tag = "tokens", request_body = RevokeRequest,
    responses((status = 200, body = OkResponse, description = "Revoked, or there was no such live token"), JsonBodyRejected))]
async fn revoke_by_possession(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<RevokeRequest>,
) -> AppResult<Json<OkResponse>> {
    if let Ok(token) = Token::parse(&body.token) {
        token_store::revoke_by_possession(&state, &token, &client.ip).await?;
    }
    Ok(Json(OkResponse { ok: true }))
}
