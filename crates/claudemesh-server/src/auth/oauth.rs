//! The device-code state machine as standard OAuth 2.0 (RFC 8628), so any
//! stock device-flow client can sign in: form-encoded requests, RFC 6749
//! §5.2 error bodies, and a whole-second `interval`.

use crate::app::state::AppState;
use crate::auth::device_codes::{self, PollOutcome};
use crate::auth::token_store::SESSION_LIFETIME_MS;
use crate::http::error::AppResult;
use crate::http::request::ClientInfo;
use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use claudemesh_api::ErrorCode;
use claudemesh_api::wire::{
    DEVICE_CODE_GRANT_TYPE, DeviceInfo, OAuthDeviceAuthorizationRequest,
    OAuthDeviceAuthorizationResponse, OAuthErrorBody, OAuthTokenRequest, OAuthTokenResponse,
};
use utoipa_axum::{router::OpenApiRouter, routes};

/// RFC 8628 wants whole seconds; 2 is the spec interval (1.5 s) rounded up.
pub const INTERVAL_SECS: u64 = 2;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(device_authorization))
        .routes(routes!(token))
}

/// An RFC 6749 §5.2 error, with the `no-store` headers §5.1 asks for.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.error.into(),
            error_description: Some(self.description),
        };
        no_store((self.status, Json(body)).into_response())
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A form body whose rejection is an RFC `invalid_request`.
struct OAuthForm<T>(T);

impl<T, S> FromRequest<S> for OAuthForm<T>
where
    Form<T>: FromRequest<S, Rejection = FormRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Form::<T>::from_request(req, state).await {
            Ok(Form(value)) => Ok(Self(value)),
            Err(rejection) => {
                Err(OAuthError::new("invalid_request", rejection.body_text()).into_response())
            }
        }
    }
}

/// RFC 8628 §3.1 device authorization request.
#[utoipa::path(post, path = "/oauth/device_authorization", tag = "oauth",
    request_body(content = OAuthDeviceAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = OAuthDeviceAuthorizationResponse), (status = 400, body = OAuthErrorBody),
        (status = 429, body = OAuthErrorBody, description = "`rate_limited`: too many logins started from this client address (per server instance; 30 a minute by default)",
            headers(("Retry-After" = u64, description = "Seconds until a login from this address is accepted again")))))]
async fn device_authorization(
    State(state): State<AppState>,
    client: ClientInfo,
    OAuthForm(body): OAuthForm<OAuthDeviceAuthorizationRequest>,
) -> AppResult<Response> {
    let field = |value: Option<String>, fallback: &str| {
        value
            .map(|v| {
                v.trim()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect::<String>()
            })
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| fallback.to_owned())
    };
    let fallback_name = body
        .client_id
        .clone()
        .unwrap_or_else(|| "OAuth device client".into());
    let device = DeviceInfo {
        name: field(body.device_name, &fallback_name),
        os: field(body.device_os, "unknown"),
        arch: field(body.device_arch, "unknown"),
    };
    let started = match device_codes::start(&state, &device, &client).await {
        Ok(started) => started,
        // The address's limit, in this endpoint's error shape.
        Err(err) if err.code == ErrorCode::RateLimited => {
            let mut response = OAuthError {
                status: err.status,
                error: ErrorCode::RateLimited.as_str(),
                description: err.message.to_string(),
            }
            .into_response();
            err.set_retry_after(&mut response);
            return Ok(response);
        }
        Err(err) => return Err(err),
    };
    let verification_uri = format!("{}/cli-auth", state.settings.public_url);
    let answer = OAuthDeviceAuthorizationResponse {
        device_code: started.device_code.expose().to_owned(),
        user_code: started.user_code.to_string(),
        verification_uri_complete: format!("{verification_uri}?code={}", started.user_code),
        verification_uri,
        expires_in: started.expires_in_secs(),
        interval: INTERVAL_SECS,
    };
    Ok(no_store(Json(answer).into_response()))
}

/// RFC 8628 §3.4 device access token request.
#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = OAuthTokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = OAuthTokenResponse),
        (status = 400, body = OAuthErrorBody, description = "RFC 6749 §5.2 and RFC 8628 §3.5: `authorization_pending`, `slow_down`, `access_denied`, `expired_token`, `invalid_grant` (an unknown or used device code), `unsupported_grant_type`, `invalid_request` (a body that is not a form of the documented fields)")))]
async fn token(
    State(state): State<AppState>,
    OAuthForm(body): OAuthForm<OAuthTokenRequest>,
) -> AppResult<Response> {
    if body.grant_type.as_deref() != Some(DEVICE_CODE_GRANT_TYPE) {
        return Ok(OAuthError::new(
            "unsupported_grant_type",
            format!("Only grant_type={DEVICE_CODE_GRANT_TYPE} is supported"),
        )
        .into_response());
    }
    let Some(device_code) = body.device_code else {
        return Ok(OAuthError::new("invalid_request", "device_code is required").into_response());
    };
    let error = |code, text: &str| Ok(OAuthError::new(code, text).into_response());
    match device_codes::poll(&state, &device_code).await? {
        PollOutcome::Issued { token, .. } => {
            let answer = OAuthTokenResponse {
                access_token: token.expose().to_owned(),
                token_type: "Bearer".into(),
                expires_in: u64::try_from(SESSION_LIFETIME_MS / 1000).unwrap_or(0),
            };
            Ok(no_store(Json(answer).into_response()))
        }
        PollOutcome::Pending => error("authorization_pending", "The user has not approved yet"),
        PollOutcome::SlowDown => error(
            "slow_down",
            "Polling too fast; add 5 seconds to the interval",
        ),
        PollOutcome::Denied => error("access_denied", "The user denied the request"),
        PollOutcome::Expired => error("expired_token", "The device code expired; start again"),
        PollOutcome::AlreadyClaimed => error("invalid_grant", "The device code was already used"),
        PollOutcome::NotFound => error("invalid_grant", "Unknown device code"),
    }
}
