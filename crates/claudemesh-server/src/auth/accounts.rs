//! Accounts: register, sign in and out, change password.
//!
//! Passwords are hashed by `passwords` (argon2id). Emails are unique
//! case-insensitively. A wrong password and an unknown email get the same
//! answer in about the same time.

use crate::app::state::AppState;
use crate::auth::address_limits::Write;
use crate::auth::caller::{
    BrowserCaller, clear_session_cookie, end_browser_session, start_browser_session,
};
use crate::auth::guessing;
use crate::auth::passwords;
use crate::auth::token_store;
use crate::db::audit;
use crate::db::ids::new_id;
use crate::http::error::{AppError, AppResult};
use crate::http::openapi::{BrowserOnly, CsrfRejected, JsonBodyRejected};
use crate::http::request::{ApiJson, ClientInfo};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use claudemesh_api::wire::{
    AccountResponse, ChangePasswordRequest, ChangePasswordResponse, OkResponse, RegisterRequest,
    SignInRequest, UserSummary,
};
use claudemesh_api::{ErrorBody, ErrorCode, rules};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use claudemesh_api::rules::{MAX_EMAIL_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(sign_in))
        .routes(routes!(sign_out))
        .routes(routes!(change_password))
}

/// Checks an email address ([`rules::is_email`]) and trims it; the
/// lowercase form is the unique key.
pub fn clean_email(raw: &str) -> AppResult<(String, String)> {
    if !rules::is_email(raw) {
        return Err(AppError::bad_request("That is not a valid email address"));
    }
    let email = raw.trim();
    Ok((email.to_owned(), email.to_lowercase()))
}

pub fn check_password_strength(password: &str) -> AppResult<()> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::WeakPassword,
            format!("A password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

fn signed_in(status: StatusCode, cookie: String, user: UserSummary) -> Response {
    (
        status,
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Json(AccountResponse { user }),
    )
        .into_response()
}

/// Create an account and sign this browser in. One client address may
/// create 10 a minute (the server's setting).
#[utoipa::path(post, path = "/api/auth/register", tag = "accounts", request_body = RegisterRequest,
    responses((status = 201, body = AccountResponse), JsonBodyRejected,
        (status = 400, body = ErrorBody, description = "`invalid_request`: not a valid email address or name; `weak_password`: the password is not 8 to 256 characters; `invalid_json`: the body is not JSON"),
        (status = 409, body = ErrorBody, description = "`email_taken`: an account has this email already"),
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many accounts created from this client address (per server instance; 10 a minute by default)",
            headers(("Retry-After" = u64, description = "Seconds until a sign-up from this address is accepted again")))))]
async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> AppResult<Response> {
    let user = create_account(&state, &client, &body).await?;
    let cookie = start_browser_session(&state, &user.id).await?;
    Ok(signed_in(StatusCode::CREATED, cookie, user))
}

/// Validates and stores a new account (shared by the JSON API and the pages).
/// Every attempt counts against the client address's sign-up limit, before
/// the password is hashed.
pub async fn create_account(
    state: &AppState,
    client: &ClientInfo,
    body: &RegisterRequest,
) -> AppResult<UserSummary> {
    state
        .address_limits
        .check(Write::SignUp, &client.ip, state.now())?;
    let (email, email_normalized) = clean_email(&body.email)?;
    let name = token_store::clean_name(&body.name, "name")?;
    check_password_strength(&body.password)?;
    let password_hash = passwords::hash(body.password.clone()).await?;
    let now = state.now();
    let user = UserSummary {
        id: new_id("usr"),
        name,
        email,
    };
    let mut tx = state.pool().begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, email_normalized, name, password_hash, created_at, password_changed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&user.id)
    .bind(&user.email)
    .bind(&email_normalized)
    .bind(&user.name)
    .bind(&password_hash)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(sqlx::Error::Database(err)) if err.is_unique_violation() => {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                ErrorCode::EmailTaken,
                "An account with this email already exists; sign in instead",
            ));
        }
        other => other?,
    };
    audit::record(
        &mut *tx,
        now,
        audit::ACCOUNT_REGISTERED,
        Some(&user.id),
        Some(&client.ip),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: String,
    name: String,
    email: String,
    password_hash: String,
}

/// Checks an email and password (shared by the JSON API and the pages).
/// Too many recent failures for this email, or from this IP, answer 429
/// `too_many_attempts` without looking at the password, right or wrong; too
/// many attempts of any outcome from this address in a minute, 429
/// `rate_limited` (a right password is a hash and a session row too).
pub async fn check_credentials(
    state: &AppState,
    client: &ClientInfo,
    email: &str,
    password: &str,
) -> AppResult<UserSummary> {
    state
        .address_limits
        .check(Write::SignIn, &client.ip, state.now())?;
    let email_normalized = email.trim().to_lowercase();
    let row: Option<CredentialRow> = sqlx::query_as(
        "SELECT id, name, email, password_hash FROM users WHERE email_normalized = $1",
    )
    .bind(&email_normalized)
    .fetch_optional(state.pool())
    .await?;
    let stored = row.as_ref().map(|row| row.password_hash.clone());
    let ok = verify_limited(state, client, &email_normalized, password, stored).await?;
    let (event, user_id) = match &row {
        Some(row) if ok => (audit::LOGIN, Some(row.id.as_str())),
        row => (audit::LOGIN_FAILED, row.as_ref().map(|row| row.id.as_str())),
    };
    audit::record(
        state.pool(),
        state.now(),
        event,
        user_id,
        Some(&client.ip),
        json!({}),
    )
    .await?;
    match row {
        Some(row) if ok => Ok(UserSummary {
            id: row.id,
            name: row.name,
            email: row.email,
        }),
        _ => Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "Wrong email or password",
        )),
    }
}

/// Tests a password for the account at `email_normalized` under the
/// guessing limit: the attempt counts unless the password is right.
async fn verify_limited(
    state: &AppState,
    client: &ClientInfo,
    email_normalized: &str,
    password: &str,
    stored: Option<String>,
) -> AppResult<bool> {
    // No address is longer; a longer one must not make a long counter key.
    let key: String = email_normalized.chars().take(MAX_EMAIL_CHARS).collect();
    let attempt = guessing::PASSWORDS
        .begin_attempt(state, &key, &client.ip)
        .await?;
    let ok = passwords::verify(password.to_owned(), stored).await?;
    if ok {
        attempt.succeeded(state).await?;
    }
    Ok(ok)
}

/// Sign in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/api/auth/sign-in", tag = "accounts", request_body = SignInRequest,
    responses((status = 200, body = AccountResponse), JsonBodyRejected,
        (status = 401, body = ErrorBody, description = "`invalid_credentials`: wrong email or password"),
        (status = 429, body = ErrorBody, description = "`too_many_attempts`: too many wrong passwords lately for this email or from this address (15 minutes); or `rate_limited`: too many sign-ins of any outcome from this client address (per server instance; 30 a minute by default)",
            headers(("Retry-After" = u64, description = "Seconds until a sign-in is accepted again")))))]
async fn sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<SignInRequest>,
) -> AppResult<Response> {
    let user = check_credentials(&state, &client, &body.email, &body.password).await?;
    let cookie = start_browser_session(&state, &user.id).await?;
    Ok(signed_in(StatusCode::OK, cookie, user))
}

/// Sign this browser out.
#[utoipa::path(post, path = "/api/auth/sign-out", tag = "accounts",
    security((), ("cookie" = [])),
    responses((status = 200, body = OkResponse, description = "Signed out, or was not signed in"), CsrfRejected))]
async fn sign_out(
    State(state): State<AppState>,
    caller: Result<BrowserCaller, AppError>,
) -> AppResult<Response> {
    match caller {
        Ok(caller) => end_browser_session(&state, &caller.session).await?,
        // A live session asked to end from another site: refuse, keep it.
        Err(err) if err.code == ErrorCode::CsrfRejected => return Err(err),
        // No session: nothing to end, just clear the cookie.
        Err(_) => {}
    }
    let cookie = clear_session_cookie(&state);
    Ok((
        AppendHeaders([(header::SET_COOKIE, cookie)]),
        Json(OkResponse { ok: true }),
    )
        .into_response())
}

/// Change the password. Revokes every CLI session token of the account (not
/// its PATs) and signs out its other browsers.
#[utoipa::path(post, path = "/api/my/password", tag = "accounts", request_body = ChangePasswordRequest,
    security(("cookie" = [])),
    responses((status = 200, body = ChangePasswordResponse), JsonBodyRejected,
        (status = 400, body = ErrorBody, description = "`weak_password`: the new password is not 8 to 256 characters; `invalid_json`, `invalid_request`: the body is not of the documented shape"),
        BrowserOnly,
        (status = 401, body = ErrorBody, description = "`unauthenticated`: no browser session (a bearer token is not accepted here); `invalid_credentials`: the current password is wrong"),
        (status = 429, body = ErrorBody, description = "`too_many_attempts`: too many wrong passwords lately for this account or from this address",
            headers(("Retry-After" = u64, description = "Seconds until a password is checked again")))))]
async fn change_password(
    State(state): State<AppState>,
    caller: BrowserCaller,
    client: ClientInfo,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> AppResult<Json<ChangePasswordResponse>> {
    let revoked_sessions = change_password_for(&state, &caller, &client, &body).await?;
    Ok(Json(ChangePasswordResponse { revoked_sessions }))
}

/// Shared by the JSON API and the settings page.
pub async fn change_password_for(
    state: &AppState,
    caller: &BrowserCaller,
    client: &ClientInfo,
    body: &ChangePasswordRequest,
) -> AppResult<u64> {
    check_password_strength(&body.new_password)?;
    let (stored,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
        .bind(&caller.user.id)
        .fetch_one(state.pool())
        .await?;
    let email_normalized = caller.user.email.trim().to_lowercase();
    let current = &body.current_password;
    if !verify_limited(state, client, &email_normalized, current, Some(stored)).await? {
        return Err(AppError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "The current password is wrong",
        ));
    }
    let new_hash = passwords::hash(body.new_password.clone()).await?;
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
        .bind(&new_hash)
        .bind(now)
        .bind(&caller.user.id)
        .execute(&mut *tx)
        .await?;
    let revoked = token_store::revoke_all_sessions(&mut *tx, &caller.user.id, now).await?;
    sqlx::query("DELETE FROM browser_sessions WHERE user_id = $1 AND id_hash <> $2")
        .bind(&caller.user.id)
        .bind(&caller.session.id_hash)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut *tx,
        now,
        audit::PASSWORD_CHANGED,
        Some(&caller.user.id),
        Some(&client.ip),
        json!({ "revoked_cli_sessions": revoked }),
    )
    .await?;
    tx.commit().await?;
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_keyed_lowercase() {
        let (email, key) = clean_email("  Alice@Example.COM ").unwrap();
        assert_eq!(email, "Alice@Example.COM");
        assert_eq!(key, "alice@example.com");
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in ["", "alice", "@x.com", "a@b", "a b@c.com", "a@b@c.com"] {
            assert!(clean_email(bad).is_err(), "{bad:?}");
        }
    }
}
