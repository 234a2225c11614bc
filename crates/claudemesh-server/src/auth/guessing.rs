//! Limits on guessing: user codes, and passwords.
//!
//! A user code has 20^8 values and lives ten minutes, and a password is only
//! worth guessing with many tries, so both limits count failures in a sliding
//! window, per subject (the account approving a code; the email signed in
//! to) and per client IP; passwords also per subject from one IP. Past a limit
//! that counter answers 429 until old failures age out. Counts live in the
//! database so the limits hold across server instances.
//!
//! User codes count a failure after the look-up (a look-up is cheap, and a
//! success does not reset the count, or a guesser could interleave codes of
//! its own). Passwords count the attempt *before* testing it (a test is an
//! argon2 hash that takes a while): of many attempts racing in at once, the
//! k-th to be recorded sees at least k, so no more than the limit are ever
//! tested. A right password then takes its own attempt back.

use crate::app::state::AppState;
use crate::clock::MINUTE_MS;
use crate::db::ids::new_id;
use crate::http::error::{AppError, AppResult};
use axum::http::StatusCode;
use claudemesh_api::ErrorCode;

pub const WINDOW_MS: i64 = 15 * MINUTE_MS;

/// One kind of guessing and how many failures each counter allows per window.
pub struct Limit {
    /// Prefix of this kind's counters, so each kind counts on its own.
    kind: &'static str,
    per_subject: i64,
    per_ip: i64,
    /// Per subject from one IP: lower than `per_subject`, so that a stranger
    /// failing on purpose does not lock the owner out as soon.
    per_subject_and_ip: Option<i64>,
    message: &'static str,
}

/// Wrong user codes typed by a signed-in account.
pub const USER_CODES: Limit = Limit {
    kind: "code",
    per_subject: 10,
    per_ip: 30,
    per_subject_and_ip: None,
    message: "Too many wrong codes; wait a few minutes and check the code in your terminal",
};

/// Wrong passwords for one email. Higher per IP than per email and IP: an
/// office shares one address.
pub const PASSWORDS: Limit = Limit {
    kind: "password",
    per_subject: 100,
    per_ip: 50,
    per_subject_and_ip: Some(10),
    message: "Too many failed sign-ins; wait a few minutes and try again",
};

/// A password attempt, recorded before its test; [`Attempt::succeeded`]
/// takes it back.
#[must_use = "a right password must take its attempt back"]
pub struct Attempt {
    id: String,
}

impl Attempt {
    pub async fn succeeded(self, state: &AppState) -> AppResult<()> {
        sqlx::query("DELETE FROM failed_attempts WHERE attempt_id = $1")
            .bind(&self.id)
            .execute(state.pool())
            .await?;
        Ok(())
    }
}

impl Limit {
    /// The counters an attempt on `subject` from `ip` counts against.
    fn counters(&self, subject: &str, ip: &str) -> Vec<(String, i64)> {
        let mut counters = vec![
            (format!("{}:who:{subject}", self.kind), self.per_subject),
            (format!("{}:ip:{ip}", self.kind), self.per_ip),
        ];
        if let Some(limit) = self.per_subject_and_ip {
            counters.push((format!("{}:who-ip:{subject}|{ip}", self.kind), limit));
        }
        counters
    }

    /// Refuses with 429 when a counter holds more than its limit plus
    /// `slack` failures (one query for all the counters).
    async fn refuse_over(
        &self,
        state: &AppState,
        counters: &[(String, i64)],
        slack: i64,
    ) -> AppResult<()> {
        let placeholders: Vec<String> = (2..counters.len() + 2).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT subject, COUNT(*) FROM failed_attempts \
             WHERE failed_at > $1 AND subject IN ({}) GROUP BY subject",
            placeholders.join(", ")
        );
        // Only numbered placeholders are generated; every value is bound.
        let mut query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
            .bind(state.now() - WINDOW_MS);
        for (subject, _) in counters {
            query = query.bind(subject);
        }
        let counts = query.fetch_all(state.pool()).await?;
        let over = counts.iter().any(|(subject, count)| {
            counters
                .iter()
                .any(|(counter, limit)| counter == subject && *count > limit + slack)
        });
        if over {
            return Err(AppError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyAttempts,
                self.message,
            )
            .with_retry_after(u64::try_from(WINDOW_MS / 1000).unwrap_or(900)));
        }
        Ok(())
    }

    /// Refuses with 429 when `subject` or `ip` has failed too often lately.
    pub async fn check(&self, state: &AppState, subject: &str, ip: &str) -> AppResult<()> {
        self.refuse_over(state, &self.counters(subject, ip), -1)
            .await
    }

    /// Counts one failure against `subject` and `ip`.
    pub async fn record_failure(&self, state: &AppState, subject: &str, ip: &str) -> AppResult<()> {
        // A failure stays counted: nothing takes it back.
        let _failure = self.record(state, &self.counters(subject, ip)).await?;
        Ok(())
    }

    /// Records an attempt before it is tested, then refuses it if it is one
    /// too many (see the module's notes).
    pub async fn begin_attempt(
        &self,
        state: &AppState,
        subject: &str,
        ip: &str,
    ) -> AppResult<Attempt> {
        let counters = self.counters(subject, ip);
        // Already over: refuse without adding a row, so a flood of refused
        // attempts does not grow the table.
        self.refuse_over(state, &counters, -1).await?;
        let attempt = self.record(state, &counters).await?;
        self.refuse_over(state, &counters, 0).await?;
        Ok(attempt)
    }

    /// Writes one row per counter (committed before anyone counts them), and
    /// drops rows past the window.
    async fn record(&self, state: &AppState, counters: &[(String, i64)]) -> AppResult<Attempt> {
        let now = state.now();
        let attempt = Attempt { id: new_id("att") };
        let mut tx = state.pool().begin().await?;
        sqlx::query("DELETE FROM failed_attempts WHERE failed_at <= $1")
            .bind(now - WINDOW_MS)
            .execute(&mut *tx)
            .await?;
        for (subject, _) in counters {
            sqlx::query(
                "INSERT INTO failed_attempts (attempt_id, subject, failed_at) VALUES ($1, $2, $3)",
            )
            .bind(&attempt.id)
            .bind(subject)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(attempt)
    }
}
