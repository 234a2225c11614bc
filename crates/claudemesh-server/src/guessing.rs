//! Limits on guessing: user codes, and passwords.
//!
//! A user code has 20^8 values and lives ten minutes, and a password is only
//! worth guessing with many tries, so both limits count failures. Every
//! failure is counted against its subject (the account approving a code, or
//! the email being signed in to) and against the client's IP, in a sliding
//! window; past a limit that subject or IP gets 429 until old failures age
//! out. A success does not reset the count (otherwise a code guesser could
//! interleave codes of its own). Counts live in the database so the limits
//! hold across server instances.

use crate::clock::MINUTE_MS;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use axum::http::StatusCode;
use claudemesh_api::ErrorCode;

pub const WINDOW_MS: i64 = 15 * MINUTE_MS;

/// One kind of guessing and how many failures it allows per window.
pub struct Limit {
    /// Prefix of this kind's counters, so each kind counts on its own.
    kind: &'static str,
    per_subject: i64,
    per_ip: i64,
    message: &'static str,
}

/// Wrong user codes typed by a signed-in account.
pub const USER_CODES: Limit = Limit {
    kind: "code",
    per_subject: 10,
    per_ip: 30,
    message: "Too many wrong codes; wait a few minutes and check the code in your terminal",
};

/// Failed sign-ins to one email. Higher per IP: an office shares one address.
pub const PASSWORDS: Limit = Limit {
    kind: "password",
    per_subject: 10,
    per_ip: 50,
    message: "Too many failed sign-ins; wait a few minutes and try again",
};

impl Limit {
    fn subjects(&self, subject: &str, ip: &str) -> [(String, i64); 2] {
        [
            (format!("{}:who:{subject}", self.kind), self.per_subject),
            (format!("{}:ip:{ip}", self.kind), self.per_ip),
        ]
    }

    /// Refuses with 429 when `subject` or `ip` has failed too often lately.
    pub async fn check(&self, state: &AppState, subject: &str, ip: &str) -> AppResult<()> {
        let since = state.now() - WINDOW_MS;
        for (subject, limit) in self.subjects(subject, ip) {
            let (count,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM failed_attempts WHERE subject = $1 AND failed_at > $2",
            )
            .bind(&subject)
            .bind(since)
            .fetch_one(state.pool())
            .await?;
            if count >= limit {
                return Err(AppError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManyAttempts,
                    self.message,
                )
                .with_retry_after(u64::try_from(WINDOW_MS / 1000).unwrap_or(900)));
            }
        }
        Ok(())
    }

    /// Counts one failure against `subject` and `ip`.
    pub async fn record_failure(&self, state: &AppState, subject: &str, ip: &str) -> AppResult<()> {
        let now = state.now();
        let mut tx = state.pool().begin().await?;
        sqlx::query("DELETE FROM failed_attempts WHERE failed_at <= $1")
            .bind(now - WINDOW_MS)
            .execute(&mut *tx)
            .await?;
        for (subject, _) in self.subjects(subject, ip) {
            sqlx::query("INSERT INTO failed_attempts (subject, failed_at) VALUES ($1, $2)")
                .bind(subject)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
