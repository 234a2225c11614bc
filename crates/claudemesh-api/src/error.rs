//! Stable error codes: every API error is `{ "error": code, "message": text }`.
//!
//! Codes are part of the contract: the CLI maps them to its messages and exit
//! codes, scripts match on them. Add codes freely; never rename one.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Malformed requests.
    InvalidJson,
    InvalidRequest,
    UnsupportedMediaType,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    // Authentication.
    /// No credential was sent.
    Unauthenticated,
    /// The bearer token is malformed, unknown or revoked.
    InvalidToken,
    /// The bearer token is past its expiry.
    TokenExpired,
    /// Wrong email or password (deliberately the same for both).
    InvalidCredentials,
    /// A cookie-authenticated change came from another origin without a CSRF token.
    CsrfRejected,
    Forbidden,
    /// Too many requests with one API token; `Retry-After` says when to try again.
    RateLimited,
    // Accounts.
    EmailTaken,
    WeakPassword,
    // Device codes.
    InvalidUserCode,
    UserCodeNotFound,
    CodeExpired,
    CodeAlreadyUsed,
    SlowDown,
    TooManyAttempts,
    // Meshes and invites.
    SlugTaken,
    InviteExpired,
    InviteRevoked,
    InviteUsedUp,
    /// The change would leave a mesh without an admin.
    LastAdmin,
    /// An admin removed this account from the mesh after the invite was made.
    RemovedFromMesh,
    /// The mesh is archived: no new sessions or members until unarchived.
    MeshArchived,
    // Server side.
    Internal,
    Unavailable,
    /// A code this build does not know (a newer server): treat by HTTP status.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::InvalidCredentials => "invalid_credentials",
            Self::CsrfRejected => "csrf_rejected",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::EmailTaken => "email_taken",
            Self::WeakPassword => "weak_password",
            Self::InvalidUserCode => "invalid_user_code",
            Self::UserCodeNotFound => "user_code_not_found",
            Self::CodeExpired => "code_expired",
            Self::CodeAlreadyUsed => "code_already_used",
            Self::SlowDown => "slow_down",
            Self::TooManyAttempts => "too_many_attempts",
            Self::SlugTaken => "slug_taken",
            Self::InviteExpired => "invite_expired",
            Self::InviteRevoked => "invite_revoked",
            Self::InviteUsedUp => "invite_used_up",
            Self::LastAdmin => "last_admin",
            Self::RemovedFromMesh => "removed_from_mesh",
            Self::MeshArchived => "mesh_archived",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    /// A value to try instead, when there is an obvious one (a free slug).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_stable_names() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::CsrfRejected,
            ErrorCode::SlowDown,
            ErrorCode::RateLimited,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn unknown_codes_from_a_newer_server_still_parse() {
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"quota_exceeded","message":"m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::Unknown);
    }
}
