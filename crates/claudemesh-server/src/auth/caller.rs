//! Who is calling: one extractor per kind of caller.
//!
//! - [`Caller`]: `Authorization: Bearer cm_…` or the browser's session cookie
//!   (every `/api/my/*` route).
//! - [`BrowserCaller`]: the session cookie only, for acts a stolen CLI token
//!   must not be able to do (approving a device code, changing the password).
//!
//! Tokens are checked against the database on every request, so revocation
//! takes effect at once on every instance; a verified token then counts
//! against its per-minute limit ([`crate::auth::request_limit`]; cookie sessions
//! are not limited). Cookie-authenticated requests that
//! change state must come from our own origin or carry the session's CSRF
//! token; bearer requests cannot be forged by a browser and skip that check.

use crate::app::state::AppState;
use crate::auth::csrf;
use crate::auth::token_store::{self, TokenRecord};
use crate::clock::DAY_MS;
use crate::db::ids::random_base32;
use crate::http::cookies::{SESSION_COOKIE, cookie, set_cookie};
use crate::http::error::{AppError, AppResult};
use axum::extract::FromRequestParts;
use axum::http::{HeaderMap, Method, StatusCode, header, request::Parts};
use claudemesh_api::wire::UserSummary;
use claudemesh_api::{ErrorCode, sha256_hex};

pub const CSRF_HEADER: &str = "x-csrf-token";
const BROWSER_SESSION_LIFETIME_MS: i64 = 30 * DAY_MS;

/// How the caller proved who it is.
#[derive(Debug, Clone)]
pub enum Via {
    Token(TokenRecord),
    Cookie(BrowserSession),
}

/// An authenticated caller: a bearer token or a browser session.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserSummary,
    pub via: Via,
}

impl Caller {
    /// The token used for this request, if it came with one.
    pub fn token(&self) -> Option<&TokenRecord> {
        match &self.via {
            Via::Token(token) => Some(token),
            Via::Cookie(_) => None,
        }
    }
}

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct BrowserSession {
    pub id_hash: String,
    pub csrf_token: String,
}

#[derive(Debug, Clone)]
pub struct BrowserCaller {
    pub user: UserSummary,
    pub session: BrowserSession,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let bearer = value
                .to_str()
                .ok()
                .and_then(|text| {
                    let (scheme, rest) = text.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
                })
                .ok_or_else(|| {
                    AppError::new(
                        StatusCode::UNAUTHORIZED,
                        ErrorCode::InvalidToken,
                        "Authorization must be `Bearer cm_…`",
                    )
                })?;
            let (user, token) = token_store::authenticate(state, bearer).await?;
            state.request_limit.check(&token.id, state.now())?;
            return Ok(Self {
                user,
                via: Via::Token(token),
            });
        }
        let BrowserCaller { user, session } =
            BrowserCaller::from_request_parts(parts, state).await?;
        Ok(Self {
            user,
            via: Via::Cookie(session),
        })
    }
}

impl FromRequestParts<AppState> for BrowserCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let raw = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(AppError::unauthenticated)?;
        let caller = browser_session(state, raw)
            .await?
            .ok_or_else(AppError::unauthenticated)?;
        if !is_safe(&parts.method) {
            check_csrf(&parts.headers, state, &caller.session)?;
        }
        Ok(caller)
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Accepts a state-changing cookie request only from our own origin (the
/// `Origin` header, or the `Referer` when there is none) or with the
/// session's CSRF token in the `x-csrf-token` header: [`csrf::allows`].
pub fn check_csrf(
    headers: &HeaderMap,
    state: &AppState,
    session: &BrowserSession,
) -> AppResult<()> {
    let header_text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let claims = csrf::Claims {
        origin: header_text(header::ORIGIN),
        referer: header_text(header::REFERER),
        token: headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
    };
    if csrf::allows(
        claims,
        &state.settings.public_origin,
        Some(&session.csrf_token),
    ) {
        Ok(())
    } else {
        Err(csrf_rejected())
    }
}

/// The API's answer to a request [`csrf::allows`] refuses.
pub fn csrf_rejected() -> AppError {
    AppError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::CsrfRejected,
        "Cross-site request refused: send it from this site or with the CSRF token",
    )
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    csrf_token: String,
    user_id: String,
    name: String,
    email: String,
}

/// Looks up the browser session a raw `cm_sid` value names (no CSRF check:
/// the pages check their forms' token themselves).
pub async fn browser_session(state: &AppState, raw: &str) -> AppResult<Option<BrowserCaller>> {
    let id_hash = sha256_hex(raw);
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT s.csrf_token, u.id AS user_id, u.name, u.email \
         FROM browser_sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id_hash = $1 AND s.expires_at > $2",
    )
    .bind(&id_hash)
    .bind(state.now())
    .fetch_optional(state.pool())
    .await?;
    Ok(row.map(|row| BrowserCaller {
        user: UserSummary {
            id: row.user_id,
            name: row.name,
            email: row.email,
        },
        session: BrowserSession {
            id_hash,
            csrf_token: row.csrf_token,
        },
    }))
}

/// Starts a browser session and returns the `Set-Cookie` value for it.
pub async fn start_browser_session(state: &AppState, user_id: &str) -> AppResult<String> {
    let raw = random_base32::<32>();
    let now = state.now();
    sqlx::query(
        "INSERT INTO browser_sessions (id_hash, user_id, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sha256_hex(&raw))
    .bind(user_id)
    .bind(random_base32::<20>())
    .bind(now)
    .bind(now + BROWSER_SESSION_LIFETIME_MS)
    .execute(state.pool())
    .await?;
    Ok(session_cookie(
        state,
        &raw,
        BROWSER_SESSION_LIFETIME_MS / 1000,
    ))
}

/// Ends a browser session.
pub async fn end_browser_session(state: &AppState, session: &BrowserSession) -> AppResult<()> {
    sqlx::query("DELETE FROM browser_sessions WHERE id_hash = $1")
        .bind(&session.id_hash)
        .execute(state.pool())
        .await?;
    Ok(())
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_session_cookie(state: &AppState) -> String {
    session_cookie(state, "", 0)
}

fn session_cookie(state: &AppState, value: &str, max_age_seconds: i64) -> String {
    set_cookie(
        SESSION_COOKIE,
        value,
        max_age_seconds,
        state.settings.secure_cookies,
    )
}
