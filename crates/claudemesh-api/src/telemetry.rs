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
use crate::rules;
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
        #[cfg_attr(feature = "openapi", schema(schema_with = field::install_id))]
        pub install_id: String,
        /// The CLI's version, e.g. `0.12.0`.
        #[cfg_attr(feature = "openapi", schema(schema_with = field::cli_version))]
        pub cli_version: String,
        /// `std::env::consts::OS`, e.g. `linux`.
        #[cfg_attr(feature = "openapi", schema(schema_with = field::os))]
        pub os: String,
        /// `std::env::consts::ARCH`, e.g. `x86_64`.
        #[cfg_attr(feature = "openapi", schema(schema_with = field::arch))]
        pub arch: String,
        #[cfg_attr(feature = "openapi", schema(schema_with = field::events))]
        pub events: Vec<TelemetryEvent>,
    }

    /// One event: its name (`event`), a random id (a batch sent twice is
    /// stored once), when it happened on the CLI's clock, and its properties.
    #[serde(tag = "event", deny_unknown_fields)]
    pub enum TelemetryEvent {
        #[serde(rename = "cli.login.started")]
        LoginStarted {
            #[cfg_attr(feature = "openapi", schema(schema_with = field::event_id))]
            id: String,
            #[cfg_attr(feature = "openapi", schema(schema_with = field::occurred_at))]
            at: Timestamp,
            properties: LoginStartedProperties,
        },
        #[serde(rename = "cli.login.succeeded")]
        LoginSucceeded {
            #[cfg_attr(feature = "openapi", schema(schema_with = field::event_id))]
            id: String,
            #[cfg_attr(feature = "openapi", schema(schema_with = field::occurred_at))]
            at: Timestamp,
            properties: LoginSucceededProperties,
        },
        #[serde(rename = "cli.login.failed")]
        LoginFailed {
            #[cfg_attr(feature = "openapi", schema(schema_with = field::event_id))]
            id: String,
            #[cfg_attr(feature = "openapi", schema(schema_with = field::occurred_at))]
            at: Timestamp,
            properties: LoginFailedProperties,
        },
        #[serde(rename = "cli.logout")]
        Logout {
            #[cfg_attr(feature = "openapi", schema(schema_with = field::event_id))]
            id: String,
            #[cfg_attr(feature = "openapi", schema(schema_with = field::occurred_at))]
            at: Timestamp,
            properties: LogoutProperties,
        },
        #[serde(rename = "cli.command.executed")]
        CommandExecuted {
            #[cfg_attr(feature = "openapi", schema(schema_with = field::event_id))]
            id: String,
            #[cfg_attr(feature = "openapi", schema(schema_with = field::occurred_at))]
            at: Timestamp,
            properties: CommandExecutedProperties,
        },
        #[serde(rename = "cli.api.error")]
        ApiError {
            #[cfg_attr(feature = "openapi", schema(schema_with = field::event_id))]
            id: String,
            #[cfg_attr(feature = "openapi", schema(schema_with = field::occurred_at))]
            at: Timestamp,
            properties: ApiErrorProperties,
        },
    }

    #[serde(deny_unknown_fields)]
    pub struct LoginStartedProperties {
        pub method: LoginMethod,
    }

    #[serde(deny_unknown_fields)]
    pub struct LoginSucceededProperties {
        pub method: LoginMethod,
        /// The account's id (`usr_…`), never its name or email.
        #[cfg_attr(feature = "openapi", schema(schema_with = field::user_id))]
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
        #[cfg_attr(feature = "openapi", schema(schema_with = field::logout_user_id))]
        pub user_id: Option<String>,
    }

    #[serde(deny_unknown_fields)]
    pub struct CommandExecutedProperties {
        /// The subcommand's name only, never its arguments.
        pub command: CliCommand,
        #[serde(deserialize_with = "rules::whole")]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::exit_code))]
        pub exit_code: u8,
        #[serde(deserialize_with = "rules::whole")]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::duration_ms))]
        pub duration_ms: u64,
        /// Whether the command ran with a credential (a saved login, `--token`
        /// or `CLAUDEMESH_TOKEN`).
        pub authenticated: bool,
    }

    #[serde(deny_unknown_fields)]
    pub struct ApiErrorProperties {
        /// The route template (`/api/my/meshes/{slug}`), never the URL.
        #[cfg_attr(feature = "openapi", schema(schema_with = field::endpoint))]
        pub endpoint: String,
        /// The HTTP status of the answer.
        #[serde(deserialize_with = "rules::whole")]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::status))]
        pub status: u16,
        /// The error code of the answer; `null` when it had none (a proxy's page).
        #[cfg_attr(feature = "openapi", schema(schema_with = field::error_code))]
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
        Doctor,
        Completions,
        Telemetry,
        Members,
        Mesh,
        Grant,
        Revoke,
        Block,
        Unblock,
        Grants,
        /// `log tail` and `log verify`.
        LogTail,
        LogVerify,
        /// `approve` and `deny` (a relayed permission prompt).
        Approve,
        Deny,
        /// `stream subscribe`.
        StreamSubscribe,
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

/// Characters in a route template.
pub const MAX_ROUTE_TEMPLATE_CHARS: usize = 128;

/// [`is_random_id`] as a pattern.
pub const RANDOM_ID_PATTERN: &str = "^[a-z2-7]{26}$";
/// [`is_user_id`] as a pattern.
pub const USER_ID_PATTERN: &str = "^usr_[A-Za-z0-9]{1,64}$";
/// [`is_route_template`] as a pattern (with a length of at most
/// [`MAX_ROUTE_TEMPLATE_CHARS`]).
pub const ROUTE_TEMPLATE_PATTERN: &str = "^(/([a-z0-9_-]+|\\{[a-z0-9_-]+\\}))+$";
/// [`is_version`] as a pattern.
pub const VERSION_PATTERN: &str = "^[0-9][A-Za-z0-9.+-]{0,31}$";
/// [`is_platform_word`] as a pattern.
pub const PLATFORM_WORD_PATTERN: &str = "^[a-z0-9_]{1,16}$";

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
    text.len() <= MAX_ROUTE_TEMPLATE_CHARS
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

/// The schemas of the fields above that a type alone would leave too wide.
#[cfg(feature = "openapi")]
mod field {
    use super::*;
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{Array, Object, Ref};

    fn text(pattern: &str, description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .description(Some(description))
    }

    pub fn install_id() -> Object {
        text(
            RANDOM_ID_PATTERN,
            "Random, made on the first run (`claudemesh telemetry status` shows it).",
        )
        .build()
    }
    pub fn cli_version() -> Object {
        text(VERSION_PATTERN, "The CLI's version, e.g. `0.12.0`.").build()
    }
    pub fn os() -> Object {
        text(
            PLATFORM_WORD_PATTERN,
            "`std::env::consts::OS`, e.g. `linux`.",
        )
        .build()
    }
    pub fn arch() -> Object {
        text(
            PLATFORM_WORD_PATTERN,
            "`std::env::consts::ARCH`, e.g. `x86_64`.",
        )
        .build()
    }
    pub fn events() -> Array {
        ArrayBuilder::new()
            .items(Ref::from_schema_name("TelemetryEvent"))
            .max_items(Some(MAX_EVENTS_PER_BATCH))
            .build()
    }
    pub fn event_id() -> Object {
        text(
            RANDOM_ID_PATTERN,
            "Random: a batch sent again is stored once.",
        )
        .build()
    }
    pub fn occurred_at() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("When it happened, on the CLI's clock (RFC 3339)."))
            .build()
    }
    pub fn user_id() -> Object {
        text(
            USER_ID_PATTERN,
            "The account's id (`usr_…`), never its name or email.",
        )
        .build()
    }
    pub fn logout_user_id() -> Object {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
            .pattern(Some(USER_ID_PATTERN))
            .description(Some("The account's id; `null` when the saved login was too damaged to say whose it was."))
            .build()
    }
    pub fn exit_code() -> Object {
        rules::schema::whole("The command's exit code.", 0, u64::from(u8::MAX))
    }
    pub fn duration_ms() -> Object {
        rules::schema::whole("How long the command ran, in milliseconds.", 0, u64::MAX)
    }
    pub fn endpoint() -> Object {
        text(
            ROUTE_TEMPLATE_PATTERN,
            "The route template (`/api/my/meshes/{slug}`), never the URL: one of this server's.",
        )
        .max_length(Some(MAX_ROUTE_TEMPLATE_CHARS))
        .build()
    }
    /// Any text: a code that this server does not know (from a newer
    /// server) reads as `unknown`, as in the CLI.
    pub fn error_code() -> Object {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ]))
            .description(Some(
                "The error code of the answer (`ErrorCode`; one this server does not know is kept as `unknown`); `null` when it had none (a proxy's page).",
            ))
            .build()
    }
    pub fn status() -> Object {
        rules::schema::whole("The HTTP status of the answer.", 0, u64::from(u16::MAX))
    }
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

#[cfg(test)]
mod pattern_tests {
    use super::*;
    use proptest::prelude::*;
    use regex_lite::Regex;

    fn matches(pattern: &str, text: &str) -> bool {
        Regex::new(pattern).unwrap().is_match(text)
    }

    proptest! {
        #[test]
        fn each_pattern_is_its_check(text in "[a-zA-Z0-9_./{}+ @-]{0,30}|usr_[a-zA-Z0-9]{0,66}|[a-z2-7]{25,27}") {
            prop_assert_eq!(matches(RANDOM_ID_PATTERN, &text), is_random_id(&text));
            prop_assert_eq!(matches(USER_ID_PATTERN, &text), is_user_id(&text));
            prop_assert_eq!(matches(VERSION_PATTERN, &text), is_version(&text));
            prop_assert_eq!(matches(PLATFORM_WORD_PATTERN, &text), is_platform_word(&text));
            let short_enough = text.len() <= MAX_ROUTE_TEMPLATE_CHARS;
            prop_assert_eq!(matches(ROUTE_TEMPLATE_PATTERN, &text) && short_enough, is_route_template(&text));
        }
    }

    #[test]
    fn route_templates_match() {
        for good in ["/api/my/meshes/{slug}", "/oauth/token", "/a"] {
            assert!(matches(ROUTE_TEMPLATE_PATTERN, good), "{good}");
        }
        for bad in ["/", "/api/", "api", "/api//x", "/{a", "/A"] {
            assert!(!matches(ROUTE_TEMPLATE_PATTERN, bad), "{bad}");
        }
    }
}
