//! Limits on guessing user codes.
//!
//! A user code has 20^8 values and lives ten minutes, so guessing one is only
//! plausible with many tries. Every failed look-up is counted per account and
//! per IP in a sliding window; past the limit that account or IP gets 429
//! until old failures age out. A success does not reset the count (otherwise a
//! guesser could interleave its own valid codes). Counts live in the database
//! so the limit holds across server instances.

use crate::clock::MINUTE_MS;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use axum::http::StatusCode;
use claudemesh_api::ErrorCode;

pub const WINDOW_MS: i64 = 15 * MINUTE_MS;
pub const MAX_FAILURES_PER_USER: i64 = 10;
pub const MAX_FAILURES_PER_IP: i64 = 30;

fn subjects(user_id: &str, ip: &str) -> [(String, i64); 2] {
    [
        (format!("user:{user_id}"), MAX_FAILURES_PER_USER),
        (format!("ip:{ip}"), MAX_FAILURES_PER_IP),
    ]
}

/// Refuses with 429 when this account or IP has failed too often lately.
pub async fn check(state: &AppState, user_id: &str, ip: &str) -> AppResult<()> {
    let since = state.now() - WINDOW_MS;
    for (subject, limit) in subjects(user_id, ip) {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM code_lookup_failures WHERE subject = $1 AND failed_at > $2",
        )
        .bind(&subject)
        .bind(since)
        .fetch_one(state.pool())
        .await?;
        if count >= limit {
            return Err(AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyAttempts,
                "Too many wrong codes; wait a few minutes and check the code in your terminal",
            )
            .with_retry_after(u64::try_from(WINDOW_MS / 1000).unwrap_or(900)));
        }
    }
    Ok(())
}

/// Counts one failed look-up against the account and the IP.
pub async fn record_failure(state: &AppState, user_id: &str, ip: &str) -> AppResult<()> {
    let now = state.now();
    let mut tx = state.pool().begin().await?;
    sqlx::query("DELETE FROM code_lookup_failures WHERE failed_at <= $1")
        .bind(now - WINDOW_MS)
        .execute(&mut *tx)
        .await?;
    for (subject, _) in subjects(user_id, ip) {
        sqlx::query("INSERT INTO code_lookup_failures (subject, failed_at) VALUES ($1, $2)")
            .bind(subject)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
