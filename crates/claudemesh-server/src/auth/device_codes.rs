//! Device codes: how a terminal with no credentials gets one (RFC 8628).
//!
//! ```text
//!   start ──▶ pending ──approve──▶ approved ──first poll──▶ claimed
//!                │    ╲──deny────▶ denied
//!                ╰── 10 min ─────▶ expired
//! ```
//!
//! The token is minted at the first poll after approval, inside the one
//! conditional update that moves `approved` to `claimed`: exactly one poller
//! ever receives it, and the raw token is never stored. The device code is
//! stored only as its SHA-256. The time of the last poll lives in the row, so
//! the once-a-second poll limit holds across server instances; a refused poll
//! does not move it, and a poll up to 20% early is tolerated (clocks drift).
//!
//! A poll may wait (`?wait=N`, up to [`MAX_WAIT_SECS`]): it answers as soon
//! as the code stops being pending (approved, denied, claimed, expired), or
//! `pending` when the wait runs out. It sleeps in [`crate::auth::wakeups`], holding
//! no database connection, and is woken by the approval on any instance. A
//! waiting poll is never refused as too early, whatever the time since the
//! previous answer: it costs one read when it starts and the usual poll when
//! it answers, which is when its time is recorded (an early one is answered
//! without being recorded, so it cannot push the limit on). Plain polls keep
//! the limit, and so does the RFC 8628 endpoint, whose clients expect it.
//!
//! This module holds the state machine and the spec's JSON endpoints; the
//! standard OAuth face of the same machine is in [`crate::auth::oauth`].

use crate::app::state::AppState;
use crate::auth::address_limits::Write;
use crate::auth::caller::BrowserCaller;
use crate::auth::credential_mail;
use crate::auth::guessing;
use crate::auth::token_store::{self, SESSION_LIFETIME_MS};
use crate::clock::{DAY_MS, MINUTE_MS, SECOND_MS, rfc3339};
use crate::db::audit;
use crate::http::error::{AppError, AppResult};
use crate::http::openapi::{BrowserOnly, JsonBodyRejected};
use crate::http::request::{ApiJson, ClientInfo};
use crate::text::i18n::{self, Lang};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{StatusCode, request::Parts};
use axum::response::{IntoResponse, Response};
use claudemesh_api::wire::{
    DeviceCodeRequest, DeviceCodeResponse, DeviceCodeStatus, DeviceDecisionResponse, DeviceInfo,
    DevicePollResponse, SlowDownBody, UserSummary,
};
use claudemesh_api::{DeviceCode, ErrorBody, ErrorCode, Token, TokenKind, UserCode};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;
use utoipa_axum::{router::OpenApiRouter, routes};

/// How long a code can be approved.
pub const CODE_LIFETIME_MS: i64 = 10 * MINUTE_MS;
/// The poll interval advertised to the CLI, in seconds.
pub const POLL_INTERVAL_SECS: f64 = 1.5;
/// Polls closer together than this (less the tolerance) are refused.
pub const MIN_POLL_GAP_MS: i64 = SECOND_MS;
/// A poll up to 20% early is accepted.
pub const POLL_TOLERANCE_MS: i64 = MIN_POLL_GAP_MS / 5;
/// An approved code stays claimable at least this long after approval, even
/// if that runs past its expiry.
pub const CLAIM_GRACE_MS: i64 = MINUTE_MS;
/// Finished rows are kept this long (for audit), then deleted lazily.
pub const RETENTION_MS: i64 = 7 * DAY_MS;
/// Rows past [`RETENTION_MS`] that one start deletes at most (see [`start`]).
pub const CLEANUP_BATCH: i64 = 100;
/// The longest a poll may wait for news, in seconds: well under the usual
/// 30 to 60 s idle timeouts of proxies and clients.
pub const MAX_WAIT_SECS: u64 = 20;
/// A waiting poll looks at the clock at least this often, so that it sees an
/// expiry even when the clock jumps (NTP; the tests' manual clock).
const CLOCK_CHECK: Duration = Duration::from_secs(1);
const MAX_DEVICE_FIELD_CHARS: usize = claudemesh_api::rules::MAX_LABEL_CHARS;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_device_code))
        .routes(routes!(poll_device_code))
        .routes(routes!(approve_device_code))
        .routes(routes!(deny_device_code))
}

/// A freshly started device authorization.
pub struct Started {
    pub device_code: DeviceCode,
    pub user_code: UserCode,
    pub expires_at: i64,
    pub now: i64,
}

impl Started {
    pub fn expires_in_secs(&self) -> u64 {
        u64::try_from((self.expires_at - self.now) / 1000).unwrap_or(0)
    }
}

/// What a poll finds.
#[derive(Debug)]
pub enum PollOutcome {
    NotFound,
    SlowDown,
    Pending,
    Denied,
    Expired,
    /// Approved, and another poll already took the token.
    AlreadyClaimed,
    /// Approved: this poll gets the token, once.
    Issued {
        token: Token,
        user: UserSummary,
    },
}

fn clean_device_field(raw: &str, what: &str) -> AppResult<String> {
    if !claudemesh_api::rules::is_label(raw) {
        return Err(AppError::bad_request(format!(
            "{what} must be 1 to {MAX_DEVICE_FIELD_CHARS} printable characters"
        )));
    }
    Ok(raw.trim().to_owned())
}

/// Validates what the CLI says about its machine.
pub fn clean_device(request: &DeviceCodeRequest) -> AppResult<DeviceInfo> {
    Ok(DeviceInfo {
        name: clean_device_field(&request.device_name, "device_name")?,
        os: clean_device_field(&request.device_os, "device_os")?,
        arch: clean_device_field(&request.device_arch, "device_arch")?,
    })
}

/// Starts a device authorization, deleting long-finished ones on the way;
/// refused with 429 `rate_limited` past the client address's limit.
///
/// The clean-up finds old rows through the index on `expires_at`, so it
/// costs a look-up however large the table, and deletes at most
/// [`CLEANUP_BATCH`]: a start after a quiet week that follows a flood does
/// not pay for the whole backlog, and as each start removes up to a hundred
/// old rows for the one it adds, the backlog still goes.
#[tracing::instrument(name = "device_code.start", skip_all)]
pub async fn start(
    state: &AppState,
    device: &DeviceInfo,
    client: &ClientInfo,
) -> AppResult<Started> {
    let now = state.now();
    state
        .address_limits
        .check(Write::DeviceCode, &client.ip, now)?;
    // Planned afresh each time (not a prepared statement kept per
    // connection), with the batch written in, not bound: PostgreSQL plans a
    // kept statement once for any value, and a plan made while the table was
    // small (kept until an ANALYZE), or a bound LIMIT, which it takes for
    // thousands of rows, joins the batch to a scan of the whole table on
    // every start (bench/README.md).
    let cleanup = format!(
        "DELETE FROM cli_device_codes WHERE device_code_hash IN \
         (SELECT device_code_hash FROM cli_device_codes WHERE expires_at < $1 \
         ORDER BY expires_at LIMIT {CLEANUP_BATCH})"
    );
    sqlx::query(sqlx::AssertSqlSafe(cleanup))
        .bind(now - RETENTION_MS)
        .persistent(false)
        .execute(state.pool())
        .await?;
    let expires_at = now + CODE_LIFETIME_MS;
    // 20^8 user codes make a collision with a live one rare; retry if it happens.
    for _ in 0..5 {
        let device_code = DeviceCode::generate();
        let user_code = UserCode::generate();
        let inserted = sqlx::query(
            "INSERT INTO cli_device_codes (device_code_hash, user_code, status, device_name, \
             device_os, device_arch, ip_address, user_agent, created_at, expires_at) \
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(device_code.digest())
        .bind(user_code.compact())
        .bind(&device.name)
        .bind(&device.os)
        .bind(&device.arch)
        .bind(&client.ip)
        .bind(&client.user_agent)
        .bind(now)
        .bind(expires_at)
        .execute(state.pool())
        .await;
        match inserted {
            Ok(_) => {
                return Ok(Started {
                    device_code,
                    user_code,
                    expires_at,
                    now,
                });
            }
            Err(sqlx::Error::Database(err)) if err.is_unique_violation() => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(AppError::internal(
        "could not find a free user code in 5 tries",
    ))
}

#[derive(sqlx::FromRow)]
struct PolledRow {
    #[sqlx(try_from = "String")]
    status: DeviceCodeState,
    user_id: Option<String>,
    expires_at: i64,
    decided_at: Option<i64>,
    device_name: String,
    device_os: String,
    device_arch: String,
    /// The terminal's IP when it asked to sign in, for the new-session mail.
    ip_address: Option<String>,
    approver_lang: Option<String>,
}

/// One plain poll (the spec's endpoint without `wait`, and RFC 8628's):
/// rate limit, then the state machine.
#[tracing::instrument(name = "device_code.poll", skip_all)]
pub async fn poll(state: &AppState, device_code_text: &str) -> AppResult<PollOutcome> {
    let Ok(device_code) = DeviceCode::parse(device_code_text) else {
        return Ok(PollOutcome::NotFound);
    };
    answer(state, &device_code.digest(), Early::Refuse).await
}

/// A poll that waits up to `wait` for the code to stop being pending (see
/// the module's first lines). A zero wait, or no room left among the
/// waiters, makes it a plain poll.
#[tracing::instrument(name = "device_code.poll_waiting", skip_all)]
pub async fn poll_waiting(
    state: &AppState,
    device_code_text: &str,
    wait: Duration,
) -> AppResult<PollOutcome> {
    let Ok(device_code) = DeviceCode::parse(device_code_text) else {
        return Ok(PollOutcome::NotFound);
    };
    let hash = device_code.digest();
    let waiter = if wait.is_zero() {
        None
    } else {
        state.wakeups.waiter(&hash)
    };
    let Some(waiter) = waiter else {
        return answer(state, &hash, Early::Refuse).await;
    };
    let deadline = Instant::now() + wait;
    // Taken before each read, so a wake-up between the read and the wait
    // is not lost.
    let mut woken = Box::pin(waiter.woken());
    let mut pending = pending_until(state, &hash).await?;
    while let Some(expires_at) = pending {
        let now = state.now();
        let left = deadline.saturating_duration_since(Instant::now());
        if now >= expires_at || left.is_zero() || waiter.closing() {
            break;
        }
        let to_expiry = Duration::from_millis(u64::try_from(expires_at - now).unwrap_or(0));
        let nap = left.min(to_expiry).min(CLOCK_CHECK);
        let was_woken = tokio::select! {
            () = &mut woken => true,
            () = tokio::time::sleep(nap) => false,
        };
        if was_woken {
            woken = Box::pin(waiter.woken());
            pending = pending_until(state, &hash).await?;
        }
    }
    drop(woken);
    drop(waiter);
    answer(state, &hash, Early::Answer).await
}

/// The expiry of a code that is still pending; `None` for any other state
/// or an unknown code. A plain read: the waiting poll has not answered yet.
async fn pending_until(state: &AppState, hash: &str) -> AppResult<Option<i64>> {
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT status, expires_at FROM cli_device_codes WHERE device_code_hash = $1",
    )
    .bind(hash)
    .fetch_optional(state.pool())
    .await?;
    match row {
        Some((status, expires_at)) => Ok((DeviceCodeState::try_from(status)?
            == DeviceCodeState::Pending)
            .then_some(expires_at)),
        None => Ok(None),
    }
}

/// What a poll that comes sooner than the limit allows gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Early {
    /// `slow_down` (a plain poll).
    Refuse,
    /// Its answer, without recording it as the last poll (a waiting poll).
    Answer,
}

/// Answers a poll: records it (if not early) and runs the state machine.
async fn answer(state: &AppState, hash: &str, early: Early) -> AppResult<PollOutcome> {
    let now = state.now();
    // Recording the poll and checking the gap are one statement, so two
    // racing polls cannot both pass; a refused poll changes nothing.
    let polled: Option<PolledRow> = sqlx::query_as(
        "UPDATE cli_device_codes SET last_poll_at = $1 \
         WHERE device_code_hash = $2 AND (last_poll_at IS NULL OR last_poll_at <= $3) \
         RETURNING status, user_id, expires_at, decided_at, device_name, device_os, device_arch, \
         ip_address, approver_lang",
    )
    .bind(now)
    .bind(hash)
    .bind(now - (MIN_POLL_GAP_MS - POLL_TOLERANCE_MS))
    .fetch_optional(state.pool())
    .await?;
    let row = match polled {
        Some(row) => row,
        None => {
            let early_row: Option<PolledRow> = sqlx::query_as(
                "SELECT status, user_id, expires_at, decided_at, device_name, device_os, device_arch, \
                 ip_address, approver_lang FROM cli_device_codes WHERE device_code_hash = $1",
            )
            .bind(hash)
            .fetch_optional(state.pool())
            .await?;
            match (early_row, early) {
                (None, _) => return Ok(PollOutcome::NotFound),
                (Some(_), Early::Refuse) => return Ok(PollOutcome::SlowDown),
                (Some(row), Early::Answer) => row,
            }
        }
    };
    match row.status {
        DeviceCodeState::Pending if now >= row.expires_at => {
            mark_expired(state, hash).await?;
            Ok(PollOutcome::Expired)
        }
        DeviceCodeState::Pending => Ok(PollOutcome::Pending),
        DeviceCodeState::Denied => Ok(PollOutcome::Denied),
        DeviceCodeState::Claimed => Ok(PollOutcome::AlreadyClaimed),
        DeviceCodeState::Approved => {
            let claimable_until = row
                .expires_at
                .max(row.decided_at.unwrap_or(0) + CLAIM_GRACE_MS);
            if now >= claimable_until {
                return Ok(PollOutcome::Expired);
            }
            claim(state, hash, row, now).await
        }
        DeviceCodeState::Expired => Ok(PollOutcome::Expired),
    }
}

/// The states of a device code, as stored in `cli_device_codes.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceCodeState {
    Pending,
    Approved,
    Denied,
    /// Approved, and its token handed out.
    Claimed,
    Expired,
}

impl DeviceCodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Claimed => "claimed",
            Self::Expired => "expired",
        }
    }
}

/// Parsed when the row is read: a state the code does not know is an error.
impl TryFrom<String> for DeviceCodeState {
    type Error = claudemesh_api::stored::UnknownValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        [
            Self::Pending,
            Self::Approved,
            Self::Denied,
            Self::Claimed,
            Self::Expired,
        ]
        .into_iter()
        .find(|state| state.as_str() == value)
        .ok_or(claudemesh_api::stored::UnknownValue {
            what: "device code state",
            value,
        })
    }
}

async fn mark_expired(state: &AppState, hash: &str) -> AppResult<()> {
    sqlx::query("UPDATE cli_device_codes SET status = 'expired' WHERE device_code_hash = $1 AND status = 'pending'")
        .bind(hash)
        .execute(state.pool())
        .await?;
    Ok(())
}

/// Mints the session token and moves `approved` to `claimed` in one
/// transaction; if another poll claimed first, the token is rolled back.
#[tracing::instrument(name = "device_code.claim", skip_all, fields(token_id, user_id))]
async fn claim(state: &AppState, hash: &str, row: PolledRow, now: i64) -> AppResult<PollOutcome> {
    let user_id = row
        .user_id
        .ok_or_else(|| AppError::internal("approved device code without a user"))?;
    let device = DeviceInfo {
        name: row.device_name,
        os: row.device_os,
        arch: row.device_arch,
    };
    let mut tx = state.pool().begin().await?;
    let (token, record) = token_store::mint(
        &mut *tx,
        now,
        &user_id,
        TokenKind::Session,
        &device.name,
        Some(&device),
        Some(now + SESSION_LIFETIME_MS),
    )
    .await?;
    let span = tracing::Span::current();
    span.record("token_id", record.id.as_str());
    span.record("user_id", user_id.as_str());
    let claimed = sqlx::query(
        "UPDATE cli_device_codes SET status = 'claimed', claimed_at = $1, api_token_id = $2 \
         WHERE device_code_hash = $3 AND status = 'approved'",
    )
    .bind(now)
    .bind(&record.id)
    .bind(hash)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(PollOutcome::AlreadyClaimed);
    }
    let user: (String, String, String) =
        sqlx::query_as("SELECT id, name, email FROM users WHERE id = $1")
            .bind(&user_id)
            .fetch_one(&mut *tx)
            .await?;
    audit::record(
        &mut *tx,
        now,
        audit::SESSION_CREATED,
        Some(&user_id),
        None,
        json!({ "token_id": record.id, "device_name": device.name, "device_os": device.os, "device_arch": device.arch }),
    )
    .await?;
    // Any other poll waiting on this code answers `already_claimed` now.
    state.wakeups.announce(&mut *tx, hash).await?;
    tx.commit().await?;
    state.wakeups.wake(hash);
    credential_mail::notify(
        state,
        credential_mail::NewCredential {
            user_id: user_id.clone(),
            token_id: record.id.clone(),
            kind: TokenKind::Session,
            label: format!("{} · {} · {}", device.name, device.os, device.arch),
            ip: row.ip_address,
            at: now,
            lang: row
                .approver_lang
                .as_deref()
                .and_then(Lang::parse)
                .unwrap_or(Lang::En),
        },
    )
    .await;
    Ok(PollOutcome::Issued {
        token,
        user: UserSummary {
            id: user.0,
            name: user.1,
            email: user.2,
        },
    })
}

/// What a pending request looks like to the person asked to approve it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRequest {
    pub user_code: String,
    #[sqlx(try_from = "String")]
    pub status: DeviceCodeState,
    pub device_name: String,
    pub device_os: String,
    pub device_arch: String,
    pub ip_address: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl PendingRequest {
    /// The status as the approver sees it, with expiry applied.
    pub fn effective_status(&self, now: i64) -> DeviceCodeState {
        if self.status == DeviceCodeState::Pending && now >= self.expires_at {
            DeviceCodeState::Expired
        } else {
            self.status
        }
    }
}

/// Looks up a code a signed-in person typed or followed, counting failures
/// against the guessing limit.
pub async fn lookup(
    state: &AppState,
    user_id: &str,
    typed: &str,
    client: &ClientInfo,
) -> AppResult<PendingRequest> {
    guessing::USER_CODES
        .check(state, user_id, &client.ip)
        .await?;
    let found = match UserCode::parse(typed) {
        Ok(code) => {
            sqlx::query_as::<_, PendingRequest>(
                "SELECT user_code, status, device_name, device_os, device_arch, ip_address, created_at, expires_at \
                 FROM cli_device_codes WHERE user_code = $1",
            )
            .bind(code.compact())
            .fetch_optional(state.pool())
            .await?
        }
        Err(_) => None,
    };
    match found {
        Some(request) => Ok(request),
        None => {
            guessing::USER_CODES
                .record_failure(state, user_id, &client.ip)
                .await?;
            Err(AppError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UserCodeNotFound,
                "No login request has this code; check the code in your terminal",
            ))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// Approves or denies a pending code on behalf of the signed-in user, whose
/// language (`lang`) the new-session mail will be in.
#[tracing::instrument(name = "device_code.decide", skip_all, fields(user_id = %user.id, ?decision))]
pub async fn decide(
    state: &AppState,
    user: &UserSummary,
    typed: &str,
    decision: Decision,
    client: &ClientInfo,
    lang: Lang,
) -> AppResult<DeviceCodeStatus> {
    let request = lookup(state, &user.id, typed, client).await?;
    let now = state.now();
    let (new_status, event, answer) = match decision {
        Decision::Approve => (
            "approved",
            audit::SESSION_APPROVED,
            DeviceCodeStatus::Approved,
        ),
        Decision::Deny => ("denied", audit::SESSION_DENIED, DeviceCodeStatus::Denied),
    };
    let mut tx = state.pool().begin().await?;
    let decided: Option<(String,)> = sqlx::query_as(
        "UPDATE cli_device_codes SET status = $1, user_id = $2, decided_at = $3, approver_lang = $5 \
         WHERE user_code = $4 AND status = 'pending' AND expires_at > $3 \
         RETURNING device_code_hash",
    )
    .bind(new_status)
    .bind(&user.id)
    .bind(now)
    .bind(&request.user_code)
    .bind(lang.code())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((hash,)) = decided else {
        tx.rollback().await?;
        return Err(match request.effective_status(now) {
            DeviceCodeState::Pending | DeviceCodeState::Expired => AppError::new(
                StatusCode::GONE,
                ErrorCode::CodeExpired,
                "This code has expired; run `claudemesh login` again",
            ),
            _ => AppError::new(
                StatusCode::CONFLICT,
                ErrorCode::CodeAlreadyUsed,
                "This code has already been approved or denied",
            ),
        });
    };
    let detail = json!({
        "user_code": request.user_code,
        "device_name": request.device_name,
        "device_os": request.device_os,
        "device_arch": request.device_arch,
        "requested_from": request.ip_address,
    });
    audit::record(
        &mut *tx,
        now,
        event,
        Some(&user.id),
        Some(&client.ip),
        detail,
    )
    .await?;
    // The CLI's waiting poll, on whichever instance, answers now.
    state.wakeups.announce(&mut *tx, &hash).await?;
    tx.commit().await?;
    state.wakeups.wake(&hash);
    Ok(answer)
}

/// Start a CLI login: get a device code to poll and a user code to show.
/// One client address may start 30 a minute (the server's setting).
#[utoipa::path(post, path = "/api/auth/cli/device-code", tag = "device codes", request_body = DeviceCodeRequest,
    responses((status = 200, body = DeviceCodeResponse, links(
            ("approve" = (operation_id = "approve_device_code", parameters(("code" = "$response.body#/user_code")))),
            ("deny" = (operation_id = "deny_device_code", parameters(("code" = "$response.body#/user_code")))))),
        JsonBodyRejected,
        (status = 429, body = ErrorBody, description = "`rate_limited`: too many logins started from this client address (per server instance; 30 a minute by default)",
            headers(("Retry-After" = u64, description = "Seconds until a login from this address is accepted again")))))]
async fn create_device_code(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<DeviceCodeRequest>,
) -> AppResult<Json<DeviceCodeResponse>> {
    let device = clean_device(&body)?;
    let started = start(&state, &device, &client).await?;
    let verification_url = format!("{}/cli-auth", state.settings.public_url);
    Ok(Json(DeviceCodeResponse {
        device_code: started.device_code.expose().to_owned(),
        user_code: started.user_code.to_string(),
        verification_uri_complete: format!("{verification_url}?code={}", started.user_code),
        verification_url,
        expires_at: rfc3339(started.expires_at),
        expires_in: started.expires_in_secs(),
        interval: POLL_INTERVAL_SECS,
    }))
}

/// The query of a poll.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PollQuery {
    /// Wait up to this many seconds (a whole number from 0 to 20) for the
    /// code to be approved, denied or expired, and answer as soon as it is;
    /// `pending` when the wait runs out. A waiting poll is never answered
    /// `slow_down`. Without it (or 0), the poll answers at once.
    #[param(value_type = Option<u8>, minimum = 0, maximum = 20)]
    wait: Option<String>,
}

/// The wait a poll asks for: whole seconds, 0 to [`MAX_WAIT_SECS`].
fn parse_wait(raw: Option<&str>) -> AppResult<Duration> {
    let Some(raw) = raw else {
        return Ok(Duration::ZERO);
    };
    match raw.parse::<u64>() {
        Ok(secs) if secs <= MAX_WAIT_SECS && raw.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Duration::from_secs(secs))
        }
        _ => Err(AppError::bad_request(format!(
            "wait must be a whole number of seconds from 0 to {MAX_WAIT_SECS}"
        ))),
    }
}

/// Poll a device code. The token is in the first answer after approval only;
/// later polls answer `approved` with `already_claimed: true`. With `wait`, the
/// answer comes as soon as the code is decided or expires. Plain polls faster
/// than once a second answer 429 `slow_down`.
#[utoipa::path(get, path = "/api/auth/cli/device-code/{code}", tag = "device codes",
    params(("code" = String, Path, description = "The device_code"), PollQuery),
    responses((status = 200, body = DevicePollResponse),
        (status = 400, body = ErrorBody, description = "`invalid_request`: `wait` is not a whole number from 0 to 20"),
        (status = 404, body = ErrorBody, description = "`not_found`: no such device code (or it was deleted, a week after it ended)"),
        (status = 429, body = SlowDownBody, description = "`slow_down`: a plain poll less than a second after the previous one")))]
async fn poll_device_code(
    State(state): State<AppState>,
    Path(code): Path<String>,
    query: Result<Query<PollQuery>, QueryRejection>,
) -> AppResult<Response> {
    let wait = match query {
        Ok(Query(query)) => parse_wait(query.wait.as_deref())?,
        Err(rejection) => return Err(AppError::bad_request(rejection.body_text())),
    };
    let answer = |status, token: Option<Token>, user, already_claimed| {
        Json(DevicePollResponse {
            status,
            token: token.map(|token| token.expose().to_owned()),
            user,
            already_claimed,
        })
        .into_response()
    };
    Ok(match poll_waiting(&state, &code, wait).await? {
        PollOutcome::NotFound => {
            return Err(AppError::not_found(
                "Unknown device code; run `claudemesh login` again",
            ));
        }
        PollOutcome::SlowDown => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(SlowDownBody {
                error: ErrorCode::SlowDown,
                message: "Polling too fast; wait `interval` seconds between polls, or poll with `?wait=20`".into(),
                slow_down: true,
                interval: POLL_INTERVAL_SECS,
            }),
        )
            .into_response(),
        PollOutcome::Pending => answer(DeviceCodeStatus::Pending, None, None, false),
        PollOutcome::Denied => answer(DeviceCodeStatus::Denied, None, None, false),
        PollOutcome::Expired => answer(DeviceCodeStatus::Expired, None, None, false),
        PollOutcome::AlreadyClaimed => answer(DeviceCodeStatus::Approved, None, None, true),
        PollOutcome::Issued { token, user } => {
            answer(DeviceCodeStatus::Approved, Some(token), Some(user), false)
        }
    })
}

/// Approve a login request from a signed-in browser.
#[utoipa::path(post, path = "/api/auth/cli/device-code/{code}/approve", tag = "device codes",
    params(("code" = String, Path, description = "The user_code, e.g. BCDF-GHJK")),
    security(("cookie" = [])),
    responses((status = 200, body = DeviceDecisionResponse), BrowserOnly, DecisionRefused))]
async fn approve_device_code(request: BrowserDecision) -> AppResult<Json<DeviceDecisionResponse>> {
    request.decide(Decision::Approve).await
}

/// Deny a login request from a signed-in browser.
#[utoipa::path(post, path = "/api/auth/cli/device-code/{code}/deny", tag = "device codes",
    params(("code" = String, Path, description = "The user_code, e.g. BCDF-GHJK")),
    security(("cookie" = [])),
    responses((status = 200, body = DeviceDecisionResponse), BrowserOnly, DecisionRefused))]
async fn deny_device_code(request: BrowserDecision) -> AppResult<Json<DeviceDecisionResponse>> {
    request.decide(Decision::Deny).await
}

/// What approving and denying a code answer when [`decide`] refuses.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum DecisionRefused {
    #[response(
        status = 404,
        description = "`user_code_not_found`: no login request has this code"
    )]
    NotFound(ErrorBody),
    #[response(
        status = 409,
        description = "`code_already_used`: the code was approved or denied already"
    )]
    AlreadyUsed(ErrorBody),
    #[response(status = 410, description = "`code_expired`: the code expired")]
    Expired(ErrorBody),
    #[response(
        status = 429,
        description = "`too_many_attempts`: too many codes not found lately for this account or from this address",
        headers(("Retry-After" = u64, description = "Seconds until a code is looked up again"))
    )]
    TooManyAttempts(ErrorBody),
}

/// What approving and denying both read from the request, in the order
/// their handlers did: the signed-in browser (else 401, or 403 from another
/// site), its address and language, then the user code in the path.
struct BrowserDecision {
    state: AppState,
    caller: BrowserCaller,
    client: ClientInfo,
    lang: Lang,
    code: String,
}

impl FromRequestParts<AppState> for BrowserDecision {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let caller = BrowserCaller::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(client) = ClientInfo::from_request_parts(parts, state).await;
        let lang = i18n::negotiate(None, &parts.headers).lang;
        let Path(code) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            state: state.clone(),
            caller,
            client,
            lang,
            code,
        })
    }
}

impl BrowserDecision {
    /// Approves or denies the code; answers with its new status.
    async fn decide(self, decision: Decision) -> AppResult<Json<DeviceDecisionResponse>> {
        let status = decide(
            &self.state,
            &self.caller.user,
            &self.code,
            decision,
            &self.client,
            self.lang,
        )
        .await?;
        Ok(Json(DeviceDecisionResponse { status }))
    }
}
