//! Request plumbing shared by every resource: a JSON extractor whose errors
//! use the API's error shape, the caller's address, and the request log.

use crate::app::state::AppState;
use crate::http::error::AppError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::{StatusCode, request::Parts};
use axum::middleware::Next;
use axum::response::Response;
use claudemesh_api::ErrorCode;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::time::Instant;

/// Largest request body accepted anywhere.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// `axum::Json`, but a bad body answers `{ error, message }` like every other
/// error: 400 `invalid_json` for broken syntax, 400 `invalid_request` for the
/// wrong shape (missing or unknown fields, or not an object), 415 without a
/// JSON content type, 413 past [`MAX_BODY_BYTES`].
///
/// Every request body is an object: serde would also read a struct from an
/// array of its fields in order (`[null, null]`), which the OpenAPI document
/// does not allow, so that is refused first.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(json_rejection)?;
        if !value.is_object() {
            return Err(AppError::bad_request("The body must be a JSON object"));
        }
        T::deserialize(value).map(Self).map_err(|err| {
            AppError::bad_request(format!(
                "Failed to deserialize the JSON body into the target type: {err}"
            ))
        })
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    let (status, code, message) = match &rejection {
        JsonRejection::JsonSyntaxError(_) => (
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            rejection.body_text(),
        ),
        JsonRejection::MissingJsonContentType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Send the body as JSON with Content-Type: application/json".into(),
        ),
        _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => (
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("The body is larger than {MAX_BODY_BYTES} bytes"),
        ),
        // Axum says 422 for a well-formed body of the wrong shape; every
        // `invalid_request` is a 400 here, so one code means one status.
        _ => (
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            rejection.body_text(),
        ),
    };
    AppError::new(status, code, message)
}

/// Where a request came from, for audit and rate limits.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: Option<String>,
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The last address is the one our proxy added; any before it came
        // from the client, which can write whatever it likes there.
        let forwarded = state
            .settings
            .trust_proxy
            .then(|| parts.headers.get("x-forwarded-for")?.to_str().ok())
            .flatten()
            .and_then(|list| list.rsplit(',').next())
            .map(|ip| ip.trim().to_owned())
            .filter(|ip| !ip.is_empty());
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        Ok(Self {
            ip: forwarded.or(peer).unwrap_or_else(|| "unknown".into()),
            user_agent,
        })
    }
}

/// Logs each request by its route template (`/api/auth/cli/device-code/{device_code}`),
/// never its URI: paths carry device codes.
pub async fn log_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let route = route.as_deref().unwrap_or("<unmatched>");
    crate::metrics::METRICS.observe_request(method.as_str(), route, status, elapsed_ms / 1000.0);
    if status >= 500 {
        tracing::error!(%method, route, status, elapsed_ms, "request failed");
    } else {
        tracing::debug!(%method, route, status, elapsed_ms, "request");
    }
    response
}

/// JSON 404 for unknown API paths.
pub async fn not_found() -> AppError {
    AppError::not_found("No such endpoint")
}

/// JSON 405 for a known path with the wrong method.
pub async fn method_not_allowed() -> AppError {
    AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "This endpoint does not take that method",
    )
}
