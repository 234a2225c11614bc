//! The one error type handlers return.
//!
//! Use the constructor that names what went wrong for the caller
//! ([`AppError::bad_request`], [`AppError::not_found`], …) with a message a
//! person can act on. Database and other unexpected failures convert with `?`
//! into a 500 `internal` whose details go to the log, never to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use claudemesh_api::{ErrorBody, ErrorCode};
use std::borrow::Cow;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    /// Seconds for a `Retry-After` header (rate limits).
    pub retry_after: Option<u64>,
    /// A value to try instead (a free slug), sent as `suggestion`.
    pub suggestion: Option<String>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            suggestion: None,
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthenticated,
            "Sign in, or send Authorization: Bearer cm_…",
        )
    }

    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidToken,
            "Authentication failed (token expired or revoked)",
        )
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn with_suggestion(mut self, suggestion: impl Into<String>) -> Self {
        self.suggestion = Some(suggestion.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Whole minutes until a refused request may be tried again (at least
    /// one), for the pages that say so.
    pub fn wait_minutes(&self) -> u64 {
        self.retry_after.unwrap_or(0).div_ceil(60).max(1)
    }

    /// Puts this error's `Retry-After`, if it has one, on the response that
    /// reports it (JSON or a page).
    pub fn set_retry_after(&self, response: &mut Response) {
        set_retry_after(response, self.retry_after);
    }

    /// An unexpected failure: logged here, answered as a bare 500.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "Internal error; it has been logged",
        )
    }
}

/// A stored state, role or kind the code does not know: the row is wrong,
/// not the request (logged, 500).
impl From<claudemesh_api::stored::UnknownValue> for AppError {
    fn from(err: claudemesh_api::stored::UnknownValue) -> Self {
        Self::internal(format!("in the database: {err}"))
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::PoolTimedOut = err {
            tracing::warn!("database pool exhausted");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "The server is busy; try again shortly",
            )
            .with_retry_after(1);
        }
        Self::internal(err)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let body = ErrorBody {
            error: self.code,
            message: self.message.into_owned(),
            suggestion: self.suggestion,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        set_retry_after(&mut response, retry_after);
        response
    }
}

fn set_retry_after(response: &mut Response, seconds: Option<u64>) {
    if let Some(seconds) = seconds {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
}
