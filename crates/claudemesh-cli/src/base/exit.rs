//! Exit codes and the one error type every command returns.
//!
//! Scripts branch on the exit code, so the codes are stable and documented in
//! `claudemesh --help` and the crate README. `2` always means "your
//! credential does not work": clap's usage errors (which clap would exit 2
//! for) are remapped to [`Exit::InvalidArgs`].
//!
//! Every API error code maps to one exit code and one message here
//! ([`CliError::from_api`]), and so does every broker refusal
//! ([`CliError::from_broker`], [`CliError::broker_closed`]), so no command
//! decides that on its own.

use claudemesh_api::broker::BrokerErrorCode;
use claudemesh_api::{ErrorBody, ErrorCode};
use claudemesh_client::{ClientError, TargetError};
use std::fmt;
use std::time::Duration;

/// The process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// Something failed, or the user said no (denied, timed out).
    Failure = 1,
    /// No credential, or the server refused it.
    Auth = 2,
    /// The command line (or a value given on it) is wrong.
    InvalidArgs = 3,
    /// The server could not be reached, or failed.
    Network = 4,
    NotFound = 5,
    Conflict = 6,
    /// Not allowed: by the server, or by the file system.
    Permission = 7,
    /// `launch`: there is no Claude Code to run.
    ClaudeMissing = 8,
    /// Cancelled at a prompt (Esc or Ctrl-C), as a shell reports SIGINT.
    Cancelled = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit-code table shown after `claudemesh --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  failure (e.g. login denied or timed out, `leave` answered no, too many requests)
  2  authentication: not logged in, or the token was rejected, expired or revoked
  3  invalid arguments
  4  network: the server could not be reached or failed
  5  not found
  6  conflict (e.g. the login code was used by another claudemesh login)
  7  permission denied (by the server or the file system)
  8  launch: Claude Code is not installed (or CLAUDEMESH_CLAUDE_BIN is wrong)
  130  cancelled at a prompt (Esc or Ctrl-C)
  launch otherwise exits with Claude Code's own status

Environment:
  CLAUDEMESH_TOKEN    token to use when --token is not given (beats the saved login)
  CLAUDEMESH_API_URL  server to talk to (default https://claudemesh.com)
  CLAUDEMESH_HOME     config directory (default ~/.claudemesh)
  CLAUDEMESH_CLAUDE_BIN  the Claude Code binary launch runs (default: claude on PATH)
  NO_COLOR            disable colours
  CLAUDEMESH_TELEMETRY=0, DO_NOT_TRACK=1  no usage telemetry (see `claudemesh telemetry`)";

/// Where a token given explicitly came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplicitToken {
    Flag,
    Env,
}

/// The page where a person makes and revokes their tokens.
pub fn tokens_page(server: &str) -> String {
    format!("{server}/dashboard/settings/cli-tokens")
}

/// A failure to report: one line, an optional hint, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
}

pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(Exit::Failure, message)
    }

    pub fn invalid_args(message: impl Into<String>) -> Self {
        Self::new(Exit::InvalidArgs, message)
    }

    /// The server refused the credential (spec flow 4).
    pub fn auth_failed() -> Self {
        Self::new(
            Exit::Auth,
            "Authentication failed (token expired or revoked)",
        )
        .with_hint("Run claudemesh login to re-authenticate.")
    }

    /// The server refused a token the user gave explicitly. A new login
    /// would not help: `--token` and `CLAUDEMESH_TOKEN` win over the saved
    /// login, so the hint says what to change instead.
    pub fn explicit_token_rejected(given: ExplicitToken, server: &str) -> Self {
        let page = tokens_page(server);
        match given {
            ExplicitToken::Flag => Self::new(
                Exit::Auth,
                "The token given with --token was rejected (expired or revoked)",
            )
            .with_hint(format!(
                "Create a new personal access token on the CLI tokens page ({page}), or leave out --token to use your saved login."
            )),
            ExplicitToken::Env => Self::new(
                Exit::Auth,
                "The token in CLAUDEMESH_TOKEN was rejected (expired or revoked)",
            )
            .with_hint(format!(
                "CLAUDEMESH_TOKEN wins over `claudemesh login`: unset it to use your saved login, or set it to a new personal access token from the CLI tokens page ({page})."
            )),
        }
    }

    pub fn not_logged_in() -> Self {
        Self::new(Exit::Auth, "Not logged in")
            .with_hint("Run claudemesh login, or set CLAUDEMESH_TOKEN.")
    }

    pub fn auth_file_corrupted() -> Self {
        Self::new(Exit::Auth, "Auth file corrupted, run `claudemesh login`")
    }

    /// The server could not be reached at all.
    pub fn unreachable(server: &str, detail: &str) -> Self {
        Self::new(
            Exit::Network,
            format!("Could not reach the claudemesh server at {server} ({detail})"),
        )
        .with_hint("Check your connection, or CLAUDEMESH_API_URL if you set it.")
    }

    /// Maps an API error answer to what the user sees. `body` is `None` when
    /// the answer was not the API's JSON error shape (a proxy's error page).
    pub fn from_api(status: u16, body: Option<&ErrorBody>) -> Self {
        let server_says = |fallback: &str| {
            body.map(|b| b.message.trim())
                .filter(|m| !m.is_empty())
                .map_or_else(|| fallback.to_owned(), str::to_owned)
        };
        let code = body.map_or(ErrorCode::Unknown, |b| b.error);
        use ErrorCode as C;
        match code {
            C::Unauthenticated | C::InvalidToken | C::TokenExpired => Self::auth_failed(),
            C::InvalidCredentials => Self::new(Exit::Auth, server_says("Wrong email or password")),
            C::Forbidden | C::CsrfRejected | C::RemovedFromMesh => {
                Self::new(Exit::Permission, server_says("Not allowed"))
            }
            C::NotFound | C::UserCodeNotFound => {
                Self::new(Exit::NotFound, server_says("Not found"))
            }
            C::EmailTaken | C::SlugTaken | C::CodeAlreadyUsed | C::LastAdmin | C::MeshArchived => {
                Self::new(Exit::Conflict, server_says("Conflict"))
            }
            C::InvalidRequest | C::InvalidUserCode | C::WeakPassword => Self::new(
                Exit::InvalidArgs,
                server_says("The server refused the request"),
            ),
            C::SlowDown | C::TooManyAttempts => Self::failure(server_says("Too many requests"))
                .with_hint("Wait a little and try again."),
            C::RateLimited => Self::failure(server_says("Too many requests with this token"))
                .with_hint("Wait a minute and try again."),
            C::CodeExpired => Self::failure(server_says("The login code expired")),
            C::InviteExpired | C::InviteRevoked | C::InviteUsedUp => {
                Self::failure(server_says("The invite can no longer be used"))
            }
            C::Internal | C::Unavailable => {
                Self::new(Exit::Network, server_says("The server failed to answer"))
                    .with_hint("Try again in a moment.")
            }
            // Errors that mean this client sent something the server does not
            // understand: a bug on our side, or a server of another version.
            C::InvalidJson | C::UnsupportedMediaType | C::PayloadTooLarge | C::MethodNotAllowed => {
                Self::failure(server_says("The server did not understand the request"))
                    .with_hint("Is claudemesh up to date? See claudemesh --version.")
            }
            C::Unknown => Self::from_status(status, server_says(&format!("HTTP {status}"))),
        }
    }

    /// 429 `rate_limited`: too many requests with this token (exit 1), and
    /// when the server said, how long until it takes the next one. Reads
    /// have already waited once (`api.rs`); what remains is the user's call.
    pub fn rate_limited(body: &ErrorBody, retry_after: Option<u64>) -> Self {
        let refusal = Self::from_api(429, Some(body));
        match retry_after {
            Some(seconds) => refusal.with_hint(format!("Try again in {}.", seconds_text(seconds))),
            None => refusal,
        }
    }

    /// For answers whose code this build does not know: judge by HTTP status.
    fn from_status(status: u16, message: String) -> Self {
        match status {
            401 => Self::auth_failed(),
            403 => Self::new(Exit::Permission, message),
            404 => Self::new(Exit::NotFound, message),
            409 => Self::new(Exit::Conflict, message),
            400 | 422 => Self::new(Exit::InvalidArgs, message),
            500..=599 => Self::new(
                Exit::Network,
                format!("The server failed to answer ({message})"),
            ),
            _ => Self::failure(message),
        }
    }

    /// Maps what went wrong in a broker session (`peers`, `send`, `inbox`)
    /// to what the user sees. `server` is the claudemesh server, `mesh` the
    /// slug, both for the hints.
    pub fn from_broker(err: &ClientError, server: &str, mesh: &str) -> Self {
        match err {
            ClientError::Connection(why) => Self::new(
                Exit::Network,
                format!("Could not reach the claudemesh broker at {server} ({why})"),
            )
            .with_hint("Check your connection, or CLAUDEMESH_API_URL if you set it."),
            ClientError::Refused {
                code,
                message,
                retry_after,
            } => Self::broker_refused(*code, message, *retry_after, mesh),
            ClientError::Target(target) => {
                let exit = match target {
                    TargetError::Unknown(_) | TargetError::NoRecipients(_) => Exit::NotFound,
                    TargetError::Ambiguous(..) => Exit::InvalidArgs,
                };
                Self::new(exit, target.to_string())
            }
            ClientError::Local(why) => Self::failure(why.clone()),
        }
    }

    /// The broker ended a session that was running (`inbox --follow`):
    /// `code` when it said why.
    pub fn broker_closed(code: Option<BrokerErrorCode>, message: &str, mesh: &str) -> Self {
        match code {
            // Closed with no reason, or one this build does not know.
            None | Some(BrokerErrorCode::Unknown) => {
                let why = message.trim();
                let why = if why.is_empty() { "closed" } else { why };
                Self::new(
                    Exit::Network,
                    format!("Lost the connection to the broker ({why})"),
                )
                .with_hint("Check your connection, and run the command again.")
            }
            Some(code) => Self::broker_refused(code, message, None, mesh),
        }
    }

    /// One broker error code: its exit code, message and hint.
    fn broker_refused(
        code: BrokerErrorCode,
        message: &str,
        retry_after: Option<Duration>,
        mesh: &str,
    ) -> Self {
        let broker_says = |fallback: &str| {
            Some(message.trim())
                .filter(|m| !m.is_empty())
                .map_or_else(|| fallback.to_owned(), str::to_owned)
        };
        use BrokerErrorCode as B;
        match code {
            B::NotAMember | B::Removed => Self::new(
                Exit::Permission,
                broker_says("You are not a member of this mesh"),
            )
            .with_hint(format!(
                "Run `claudemesh sync`: it registers this machine's key for {mesh}, \
                 or flags the mesh if you are no longer a member."
            )),
            B::MeshArchived => Self::new(Exit::Conflict, broker_says("This mesh is archived"))
                .with_hint(format!(
                    "An admin can make it live again: `claudemesh mesh unarchive --mesh {mesh}`."
                )),
            B::NotPermitted => Self::new(
                Exit::Permission,
                broker_says("The recipient does not permit this"),
            )
            .with_hint("See `claudemesh grants`: what each peer allows you."),
            B::Observer => Self::new(
                Exit::Permission,
                broker_says("This session only watches: it sends nothing"),
            ),
            B::RateLimited => {
                let seconds =
                    retry_after.map_or(1, |wait| wait.as_secs_f64().ceil().max(1.0) as u64);
                Self::failure(broker_says("Sending too fast"))
                    .with_hint(format!("Try again in {}.", seconds_text(seconds)))
            }
            B::UnknownRecipient | B::NotFound => Self::new(
                Exit::NotFound,
                broker_says("No such recipient in this mesh"),
            )
            .with_hint("See `claudemesh peers`, and try again."),
            B::MessageTooLarge => {
                Self::new(Exit::InvalidArgs, broker_says("The message is too large"))
            }
            B::Replaced => Self::failure(broker_says(
                "This session connected again elsewhere, which ended it here",
            )),
            B::MeshFull | B::TooManyConnections => {
                Self::failure(broker_says("The broker has no room for another session"))
                    .with_hint("Close a session you no longer use, or try again later.")
            }
            B::AttestationExpired | B::BadAttestation => {
                Self::failure(broker_says("The broker refused this session's attestation"))
                    .with_hint(
                        "Check this machine's clock: the session's expiry is signed with it.",
                    )
            }
            B::Internal | B::HandshakeTimeout => {
                Self::new(Exit::Network, broker_says("The broker failed to answer"))
                    .with_hint("Try again in a moment.")
            }
            // This client said something the broker does not understand: a
            // bug on our side, or a server of another version.
            B::BadFrame
            | B::FrameTooLarge
            | B::UnsupportedVersion
            | B::HelloRequired
            | B::BadSignature
            | B::BadMessageId => {
                Self::failure(broker_says("The broker did not understand this client"))
                    .with_hint("Is claudemesh up to date? See claudemesh --version.")
            }
            B::Unknown => Self::failure(broker_says("The broker refused")),
        }
    }
}

/// `1 second`, `30 seconds`.
fn seconds_text(seconds: u64) -> String {
    let unit = if seconds == 1 { "second" } else { "seconds" };
    format!("{seconds} {unit}")
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(code: ErrorCode, message: &str) -> ErrorBody {
        // Built from JSON, as it arrives, so optional fields take their defaults.
        serde_json::from_value(serde_json::json!({ "error": code, "message": message }))
            .expect("an error body")
    }

    #[test]
    fn every_401_code_is_an_authentication_failure_with_the_spec_message() {
        for code in [
            ErrorCode::InvalidToken,
            ErrorCode::TokenExpired,
            ErrorCode::Unauthenticated,
        ] {
            let err = CliError::from_api(401, Some(&body(code, "whatever")));
            assert_eq!(err.exit, Exit::Auth);
            assert_eq!(
                err.message,
                "Authentication failed (token expired or revoked)"
            );
            assert_eq!(
                err.hint.as_deref(),
                Some("Run claudemesh login to re-authenticate.")
            );
        }
    }

    #[test]
    fn codes_map_to_stable_exit_codes() {
        let cases = [
            (ErrorCode::Forbidden, 403, Exit::Permission),
            (ErrorCode::CsrfRejected, 403, Exit::Permission),
            (ErrorCode::NotFound, 404, Exit::NotFound),
            (ErrorCode::UserCodeNotFound, 404, Exit::NotFound),
            (ErrorCode::SlugTaken, 409, Exit::Conflict),
            (ErrorCode::CodeAlreadyUsed, 409, Exit::Conflict),
            (ErrorCode::LastAdmin, 409, Exit::Conflict),
            (ErrorCode::MeshArchived, 409, Exit::Conflict),
            (ErrorCode::InvalidRequest, 400, Exit::InvalidArgs),
            (ErrorCode::Internal, 500, Exit::Network),
            (ErrorCode::Unavailable, 503, Exit::Network),
            (ErrorCode::SlowDown, 429, Exit::Failure),
            (ErrorCode::RateLimited, 429, Exit::Failure),
            (ErrorCode::InvalidJson, 400, Exit::Failure),
            (ErrorCode::CodeExpired, 410, Exit::Failure),
        ];
        for (code, status, exit) in cases {
            assert_eq!(
                CliError::from_api(status, Some(&body(code, "m"))).exit,
                exit,
                "{code:?}"
            );
        }
    }

    #[test]
    fn the_server_message_is_shown_when_there_is_one() {
        let err = CliError::from_api(409, Some(&body(ErrorCode::SlugTaken, "Slug taken")));
        assert_eq!(err.message, "Slug taken");
        let err = CliError::from_api(409, Some(&body(ErrorCode::SlugTaken, "  ")));
        assert_eq!(err.message, "Conflict");
    }

    #[test]
    fn unknown_codes_and_bodiless_answers_fall_back_to_the_status() {
        let newer = body(ErrorCode::Unknown, "Quota exceeded");
        assert_eq!(CliError::from_api(403, Some(&newer)).exit, Exit::Permission);
        assert_eq!(CliError::from_api(401, None).exit, Exit::Auth);
        assert_eq!(CliError::from_api(404, None).exit, Exit::NotFound);
        assert_eq!(CliError::from_api(502, None).exit, Exit::Network);
        assert_eq!(CliError::from_api(418, None).exit, Exit::Failure);
        assert_eq!(CliError::from_api(418, None).message, "HTTP 418");
    }

    #[test]
    fn broker_refusals_map_to_stable_exit_codes() {
        let refused = |code, retry_after| ClientError::Refused {
            code,
            message: "m".into(),
            retry_after,
        };
        let cases = [
            (refused(BrokerErrorCode::NotAMember, None), Exit::Permission),
            (refused(BrokerErrorCode::Removed, None), Exit::Permission),
            (refused(BrokerErrorCode::RateLimited, None), Exit::Failure),
            (
                refused(BrokerErrorCode::UnknownRecipient, None),
                Exit::NotFound,
            ),
            (
                refused(BrokerErrorCode::MessageTooLarge, None),
                Exit::InvalidArgs,
            ),
            (refused(BrokerErrorCode::Internal, None), Exit::Network),
            (refused(BrokerErrorCode::BadFrame, None), Exit::Failure),
            (refused(BrokerErrorCode::Unknown, None), Exit::Failure),
            (ClientError::Connection("refused".into()), Exit::Network),
            (
                ClientError::Target(TargetError::Unknown("zoe".into())),
                Exit::NotFound,
            ),
            (
                ClientError::Target(TargetError::NoRecipients("no one".into())),
                Exit::NotFound,
            ),
            (
                ClientError::Target(TargetError::Ambiguous("Dan".into(), vec![])),
                Exit::InvalidArgs,
            ),
            (ClientError::Local("random".into()), Exit::Failure),
        ];
        for (err, exit) in cases {
            assert_eq!(
                CliError::from_broker(&err, "http://s", "dev").exit,
                exit,
                "{err:?}"
            );
        }
        let member = CliError::from_broker(&refused(BrokerErrorCode::NotAMember, None), "s", "dev");
        assert!(member.hint.unwrap().starts_with("Run `claudemesh sync`"));
        let slow = CliError::from_broker(
            &refused(
                BrokerErrorCode::RateLimited,
                Some(Duration::from_millis(2300)),
            ),
            "s",
            "dev",
        );
        assert_eq!(slow.hint.as_deref(), Some("Try again in 3 seconds."));
        let down = CliError::from_broker(
            &ClientError::Connection("refused".into()),
            "http://s",
            "dev",
        );
        assert_eq!(
            down.message,
            "Could not reach the claudemesh broker at http://s (refused)"
        );
    }

    #[test]
    fn a_session_the_broker_ends_is_a_network_error_unless_it_says_otherwise() {
        assert_eq!(CliError::broker_closed(None, "", "dev").exit, Exit::Network);
        assert_eq!(
            CliError::broker_closed(None, "", "dev").message,
            "Lost the connection to the broker (closed)"
        );
        assert_eq!(
            CliError::broker_closed(Some(BrokerErrorCode::Unknown), "bye", "dev").exit,
            Exit::Network
        );
        assert_eq!(
            CliError::broker_closed(Some(BrokerErrorCode::Internal), "restarting", "dev").exit,
            Exit::Network
        );
        assert_eq!(
            CliError::broker_closed(Some(BrokerErrorCode::Removed), "gone", "dev").exit,
            Exit::Permission
        );
    }

    #[test]
    fn exit_codes_are_pinned() {
        let codes = [
            (Exit::Success, 0),
            (Exit::Failure, 1),
            (Exit::Auth, 2),
            (Exit::InvalidArgs, 3),
            (Exit::Network, 4),
            (Exit::NotFound, 5),
            (Exit::Conflict, 6),
            (Exit::Permission, 7),
            (Exit::ClaudeMissing, 8),
            (Exit::Cancelled, 130),
        ];
        for (exit, code) in codes {
            assert_eq!(exit.code(), code);
            assert!(EXIT_CODES_HELP.contains(&format!("  {code}  ")), "{code}");
        }
    }
}
