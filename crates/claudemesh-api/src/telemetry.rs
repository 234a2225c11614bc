//! Usage telemetry: the batch `claudemesh` sends to `POST /api/telemetry`
//! (docs/telemetry.md lists every field).
//!
//! What can be sent is spelled out here and nothing else can be: every
//! struct refuses unknown fields, event names, login methods, failure
//! reasons and command names are enums, and the few strings left (random
//! ids, a user id, the CLI version, the platform, a route template) have
//! checks below that the server applies before storing anything. None of
//! them can carry a token, an email, a path, a mesh name, a message or an
//! argument: a route template is one of the server's own routes, never a URL.

use crate::ErrorCode;
use crate::wire::{Timestamp, wire};
use serde::{Deserialize, Serialize};

/// The most events one batch may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 100;

/// Characters in an install id or an event id: 16 random bytes in lowercase
/// base32 without padding.
pub const RANDOM_ID_CHARS: usize = 26;

wire! {
    /// `POST /api/telemetry`: events of one installation of the CLI.
    #[serde(deny_unknown_fields)]
    pub struct TelemetryBatch {
        /// Random, made on the first run (`claudemesh telemetry status` shows it).
        pub install_id: String,
        /// The CLI's version, e.g. `0.12.0`.
        pub cli_version: String,
        /// `std::env::consts::OS`, e.g. `linux`.
        pub os: String,
        /// `std::env::consts::ARCH`, e.g. `x86_64`.
        pub arch: String,
        pub events: Vec<TelemetryEvent>,
    }

    /// One event: its name (`event`), a random id (a batch sent twice is
    /// stored once), when it happened on the CLI's clock, and its properties.
    #[serde(tag = "event", deny_unknown_fields)]
    pub enum TelemetryEvent {
        #[serde(rename = "cli.login.started")]
        LoginStarted { id: String, at: Timestamp, properties: LoginStartedProperties },
        #[serde(rename = "cli.login.succeeded")]
        LoginSucceeded { id: String, at: Timestamp, properties: LoginSucceededProperties },
        #[serde(rename = "cli.login.failed")]
        LoginFailed { id: String, at: Timestamp, properties: LoginFailedProperties },
        #[serde(rename = "cli.logout")]
        Logout { id: String, at: Timestamp, properties: LogoutProperties },
        #[serde(rename = "cli.command.executed")]
        CommandExecuted { id: String, at: Timestamp, properties: CommandExecutedProperties },
        #[serde(rename = "cli.api.error")]
        ApiError { id: String, at: Timestamp, properties: ApiErrorProperties },
    }

    #[serde(deny_unknown_fields)]
    pub struct LoginStartedProperties {
        pub method: LoginMethod,
    }

    #[serde(deny_unknown_fields)]
    pub struct LoginSucceededProperties {
        pub method: LoginMethod,
        /// The account's id (`usr_…`), never its name or email.
        pub user_id: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct LoginFailedProperties {
        pub method: LoginMethod,
        pub reason: LoginFailure,
    }

    #[serde(deny_unknown_fields)]
    pub struct LogoutProperties {
        /// `null` when the saved login was too damaged to say whose it was.
        pub user_id: Option<String>,
    }

    #[serde(deny_unknown_fields)]
    pub struct CommandExecutedProperties {
        /// The subcommand's name only, never its arguments.
        pub command: CliCommand,
        pub exit_code: u8,
        pub duration_ms: u64,
        /// Whether the command ran with a credential (a saved login, `--token`
        /// or `CLAUDEMESH_TOKEN`).
        pub authenticated: bool,
    }

    #[serde(deny_unknown_fields)]
    pub struct ApiErrorProperties {
        /// The route template (`/api/my/meshes/{slug}`), never the URL.
        pub endpoint: String,
        /// The HTTP status of the answer.
        pub status: u16,
        /// The error code of the answer; `null` when it had none (a proxy's page).
        pub error_code: Option<ErrorCode>,
    }

    #[serde(rename_all = "kebab-case")]
    #[derive(Copy, Eq, Hash, PartialOrd, Ord)]
    pub enum LoginMethod {
        /// The browser approves a code (`claudemesh login`).
        DeviceCode,
        /// A personal access token (`--token`, `--with-token`, the wizard's prompt).
        Pat,
    }

    /// Why a login failed.
    #[serde(rename_all = "snake_case")]
    #[derive(Copy, Eq, Hash, PartialOrd, Ord)]
    pub enum LoginFailure {
        /// Denied in the browser.
        Denied,
        /// The code expired before anyone approved it.
        Expired,
        /// Another `claudemesh login` took the token of the approved code.
        AlreadyClaimed,
        /// The server refused the token.
        TokenRejected,
        /// The token given is not a claudemesh token.
        InvalidTokenFormat,
        /// The server could not be reached, or failed.
        Network,
        /// The login worked but could not be saved on this machine.
        NotSaved,
        /// Given up at a prompt (Esc or Ctrl-C).
        Cancelled,
        Other,
    }

    /// The subcommand that ran.
    #[serde(rename_all = "kebab-case")]
    #[derive(Copy, Eq, Hash, PartialOrd, Ord)]
    pub enum CliCommand {
        /// Bare `claudemesh`: the welcome wizard.
        Welcome,
        /// `claudemesh <invite link>`: join and launch.
        OpenInvite,
        Login,
        Logout,
        Whoami,
        Create,
        List,
        Sync,
        Invite,
        Join,
        Leave,
        Peers,
        Send,
        Inbox,
        Launch,
        Completions,
        Telemetry,
        /// A word that is no command (its text is not sent).
        Unknown,
    }

    /// What `POST /api/telemetry` answers.
    pub struct TelemetryReceipt {
        /// Events of the batch taken (a resent one counts, though stored once).
        pub accepted: u32,
    }
}

impl TelemetryEvent {
    pub fn id(&self) -> &str {
        match self {
            Self::LoginStarted { id, .. }
            | Self::LoginSucceeded { id, .. }
            | Self::LoginFailed { id, .. }
            | Self::Logout { id, .. }
            | Self::CommandExecuted { id, .. }
            | Self::ApiError { id, .. } => id,
        }
    }

    pub fn at(&self) -> &str {
        match self {
            Self::LoginStarted { at, .. }
            | Self::LoginSucceeded { at, .. }
            | Self::LoginFailed { at, .. }
            | Self::Logout { at, .. }
            | Self::CommandExecuted { at, .. }
            | Self::ApiError { at, .. } => at,
        }
    }

    /// The event's name on the wire, e.g. `cli.login.started`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::LoginStarted { .. } => "cli.login.started",
            Self::LoginSucceeded { .. } => "cli.login.succeeded",
            Self::LoginFailed { .. } => "cli.login.failed",
            Self::Logout { .. } => "cli.logout",
            Self::CommandExecuted { .. } => "cli.command.executed",
            Self::ApiError { .. } => "cli.api.error",
        }
    }

    /// Why the server must refuse this event, if it must: a malformed id,
    /// user id or route template. (Whether a template is one of the
    /// server's own routes is for the server to say.)
    pub fn problem(&self) -> Option<String> {
        if !is_random_id(self.id()) {
            return Some(format!("{}: the id is not a random id", self.name()));
        }
        let user_id = match self {
            Self::LoginSucceeded { properties, .. } => Some(properties.user_id.as_str()),
            Self::Logout { properties, .. } => properties.user_id.as_deref(),
            _ => None,
        };
        if user_id.is_some_and(|id| !is_user_id(id)) {
            return Some(format!("{}: user_id is not a user id", self.name()));
        }
        if let Self::ApiError { properties, .. } = self
            && !is_route_template(&properties.endpoint)
        {
            return Some("cli.api.error: endpoint is not a route template".to_owned());
        }
        None
    }
}

impl TelemetryBatch {
    /// Why the server must refuse this batch, if it must (beyond what
    /// parsing refuses already).
    pub fn problem(&self) -> Option<String> {
        if self.events.len() > MAX_EVENTS_PER_BATCH {
            return Some(format!(
                "A batch holds at most {MAX_EVENTS_PER_BATCH} events"
            ));
        }
        if !is_random_id(&self.install_id) {
            return Some("install_id is not a random id".to_owned());
        }
        if !is_version(&self.cli_version) {
            return Some("cli_version is not a version".to_owned());
        }
        if !is_platform_word(&self.os) || !is_platform_word(&self.arch) {
            return Some("os and arch are short lowercase words".to_owned());
        }
        self.events.iter().find_map(TelemetryEvent::problem)
    }
}

/// A random id: [`RANDOM_ID_CHARS`] characters of lowercase base32.
pub fn is_random_id(text: &str) -> bool {
    text.len() == RANDOM_ID_CHARS && text.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'))
}

/// A user id as the server makes them: `usr_` and up to 64 letters or digits.
pub fn is_user_id(text: &str) -> bool {
    text.strip_prefix("usr_").is_some_and(|rest| {
        (1..=64).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// The shape of a route template: `/`-separated lowercase words or
/// `{params}`, at most 128 characters.
pub fn is_route_template(text: &str) -> bool {
    text.len() <= 128
        && text.starts_with('/')
        && text[1..].split('/').all(|segment| {
            let word = |w: &str| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_".contains(&b))
            };
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => word(param),
                None => word(segment),
            }
        })
}

/// A version: up to 32 of letters, digits and `.+-`, starting with a digit.
pub fn is_version(text: &str) -> bool {
    text.len() <= 32
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-".contains(&b))
}

/// An OS or architecture name: up to 16 of lowercase letters, digits and `_`.
pub fn is_platform_word(text: &str) -> bool {
    (1..=16).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "abcdefghijklmnopqrstuvwxyz";

    fn batch(events: &str) -> String {
        format!(
            r#"{{"install_id":"{ID}","cli_version":"0.12.0","os":"linux","arch":"x86_64","events":[{events}]}}"#
        )
    }

    #[test]
    fn every_event_has_the_documented_shape() {
        let text = batch(&format!(
            r#"{{"event":"cli.login.started","id":"{ID}","at":"2026-01-01T00:00:00Z","properties":{{"method":"device-code"}}}},
               {{"event":"cli.login.failed","id":"{ID}","at":"t","properties":{{"method":"pat","reason":"token_rejected"}}}},
               {{"event":"cli.logout","id":"{ID}","at":"t","properties":{{"user_id":null}}}},
               {{"event":"cli.command.executed","id":"{ID}","at":"t","properties":{{"command":"open-invite","exit_code":2,"duration_ms":31,"authenticated":false}}}},
               {{"event":"cli.api.error","id":"{ID}","at":"t","properties":{{"endpoint":"/api/my/meshes/{{slug}}","status":404,"error_code":"not_found"}}}}"#
        ));
        let parsed: TelemetryBatch = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.problem(), None);
        let names: Vec<_> = parsed.events.iter().map(TelemetryEvent::name).collect();
        assert_eq!(
            names,
            [
                "cli.login.started",
                "cli.login.failed",
                "cli.logout",
                "cli.command.executed",
                "cli.api.error"
            ]
        );
        let again: TelemetryBatch =
            serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(again, parsed);
    }

    #[test]
    fn unknown_fields_events_and_values_are_refused() {
        for events in [
            // A property that is not part of the event.
            format!(
                r#"{{"event":"cli.logout","id":"{ID}","at":"t","properties":{{"user_id":null,"email":"a@b.c"}}}}"#
            ),
            // A field beside the properties.
            format!(
                r#"{{"event":"cli.logout","id":"{ID}","at":"t","properties":{{}},"path":"/home/a"}}"#
            ),
            format!(r#"{{"event":"cli.secret","id":"{ID}","at":"t","properties":{{}}}}"#),
            format!(
                r#"{{"event":"cli.command.executed","id":"{ID}","at":"t","properties":{{"command":"deploy prod","exit_code":0,"duration_ms":1,"authenticated":true}}}}"#
            ),
            format!(
                r#"{{"event":"cli.login.failed","id":"{ID}","at":"t","properties":{{"method":"pat","reason":"the token cm_pat_x"}}}}"#
            ),
        ] {
            assert!(
                serde_json::from_str::<TelemetryBatch>(&batch(&events)).is_err(),
                "{events}"
            );
        }
        let extra = batch("").replace("\"events\"", "\"hostname\":\"box\",\"events\"");
        assert!(serde_json::from_str::<TelemetryBatch>(&extra).is_err());
    }

    #[test]
    fn free_strings_hold_only_what_they_are_for() {
        let api_error = |endpoint: &str| {
            let events = format!(
                r#"{{"event":"cli.api.error","id":"{ID}","at":"t","properties":{{"endpoint":"{endpoint}","status":404,"error_code":null}}}}"#
            );
            serde_json::from_str::<TelemetryBatch>(&batch(&events))
                .unwrap()
                .problem()
        };
        assert_eq!(api_error("/api/my/meshes/{slug}/keys"), None);
        for bad in [
            "https://claudemesh.com/api/my/whoami",
            "/api/my/meshes/Platform Team",
            "/api/invites/abc?x=1",
            "/api//x",
            "api/my/whoami",
            "/api/my/meshes/{}",
        ] {
            assert!(api_error(bad).is_some(), "{bad}");
        }
        assert!(is_user_id("usr_q5ri89flabcdefgh"));
        for bad in ["", "usr_", "alice@example.com", "usr_a b", "mem_x"] {
            assert!(!is_user_id(bad), "{bad}");
        }
        assert!(is_random_id(ID));
        assert!(!is_random_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
        assert!(!is_random_id("abc"));
        assert!(is_version("0.12.0") && is_version("1.0.0-rc.1+abc"));
        assert!(!is_version("v1") && !is_version("1 0"));
        assert!(is_platform_word("macos") && is_platform_word("x86_64"));
        assert!(!is_platform_word("Linux") && !is_platform_word(""));
    }

    #[test]
    fn a_batch_is_bounded() {
        let one = format!(
            r#"{{"event":"cli.logout","id":"{ID}","at":"t","properties":{{"user_id":null}}}}"#
        );
        let events = vec![one; MAX_EVENTS_PER_BATCH + 1].join(",");
        let parsed: TelemetryBatch = serde_json::from_str(&batch(&events)).unwrap();
        assert!(parsed.problem().unwrap().contains("at most 100 events"));
    }
}
