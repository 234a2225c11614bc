//! JSON bodies of every endpoint. Requests refuse unknown fields, so a typo
//! in a client is an error rather than a silently ignored setting.
//!
//! Times are RFC 3339 strings in UTC (`2026-11-23T19:05:33Z`).

use crate::rules;
use crate::token::TokenKind;
use serde::{Deserialize, Deserializer, Serialize};

/// An RFC 3339 UTC timestamp.
pub type Timestamp = String;

/// Derives the traits every wire type has, plus its OpenAPI schema when the
/// `openapi` feature is on.
macro_rules! wire {
    ($($item:item)*) => {$(
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        $item
    )*};
}
pub(crate) use wire;

// ---------------------------------------------------------------- accounts
wire! {
    #[serde(deny_unknown_fields)]
    pub struct RegisterRequest {
        #[cfg_attr(feature = "openapi", schema(schema_with = field::account_email))]
        pub email: String,
        #[cfg_attr(feature = "openapi", schema(schema_with = field::new_password))]
        pub password: String,
        #[cfg_attr(feature = "openapi", schema(schema_with = field::account_name))]
        pub name: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct SignInRequest {
        pub email: String,
        pub password: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct ChangePasswordRequest {
        pub current_password: String,
        #[cfg_attr(feature = "openapi", schema(schema_with = field::new_password))]
        pub new_password: String,
    }

    /// Who an account is.
    pub struct UserSummary {
        pub id: String,
        pub name: String,
        pub email: String,
    }

    pub struct AccountResponse {
        pub user: UserSummary,
    }

    pub struct ChangePasswordResponse {
        /// How many CLI session tokens the change revoked (PATs are kept).
        pub revoked_sessions: u64,
    }

    pub struct OkResponse {
        pub ok: bool,
    }
}

// ------------------------------------------------------------ device codes
wire! {
    /// What the CLI tells the server about the machine asking to sign in.
    #[serde(deny_unknown_fields)]
    pub struct DeviceCodeRequest {
        #[cfg_attr(feature = "openapi", schema(schema_with = field::device_name))]
        pub device_name: String,
        #[cfg_attr(feature = "openapi", schema(schema_with = field::device_os))]
        pub device_os: String,
        #[cfg_attr(feature = "openapi", schema(schema_with = field::device_arch))]
        pub device_arch: String,
    }

    pub struct DeviceCodeResponse {
        /// The secret the CLI polls with. Never show it to the user.
        pub device_code: String,
        /// The code the user checks in the browser, `ABCD-EFGH`.
        pub user_code: String,
        /// The page where the user approves (`…/cli-auth`).
        pub verification_url: String,
        /// The same page with the code filled in.
        pub verification_uri_complete: String,
        pub expires_at: Timestamp,
        /// Seconds until the code expires (immune to clock skew).
        pub expires_in: u64,
        /// Seconds to wait between polls.
        pub interval: f64,
    }

    #[serde(rename_all = "snake_case")]
    #[derive(Copy, Eq)]
    pub enum DeviceCodeStatus {
        Pending,
        Approved,
        Denied,
        Expired,
    }

    pub struct DevicePollResponse {
        pub status: DeviceCodeStatus,
        /// Present exactly once: on the first poll after approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<UserSummary>,
        /// True when the code was approved but another poller already took the token.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pub already_claimed: bool,
    }

    /// The 429 body of a poll that came too early.
    pub struct SlowDownBody {
        pub error: crate::ErrorCode,
        pub message: String,
        pub slow_down: bool,
        /// Seconds to wait before the next poll.
        pub interval: f64,
    }

    /// What the approve and deny endpoints answer.
    pub struct DeviceDecisionResponse {
        pub status: DeviceCodeStatus,
    }
}

// ----------------------------------------------------------------- tokens
wire! {
    /// The machine a session token was issued to.
    pub struct DeviceInfo {
        pub name: String,
        pub os: String,
        pub arch: String,
    }

    /// A token as listed: metadata only, never the raw value.
    pub struct TokenInfo {
        pub id: String,
        pub kind: TokenKind,
        pub name: String,
        /// The first characters of the token, e.g. `cm_pat_k3xq9a2b`.
        pub display_prefix: String,
        pub created_at: Timestamp,
        pub last_used_at: Option<Timestamp>,
        /// `null` for a token that never expires.
        pub expires_at: Option<Timestamp>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub device: Option<DeviceInfo>,
    }

    #[serde(deny_unknown_fields)]
    pub struct CreatePatRequest {
        #[cfg_attr(feature = "openapi", schema(schema_with = field::token_name))]
        pub name: String,
        /// 30, 90 or 365; `null` for a token that never expires; absent for the default (365).
        #[serde(default, deserialize_with = "present_or_null_whole", skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::pat_expiry))]
        pub expires_in_days: Option<Option<u32>>,
    }

    pub struct CreatedPat {
        /// The raw token. Shown once; the server keeps only its hash.
        pub token: String,
        #[serde(flatten)]
        pub info: TokenInfo,
    }

    pub struct TokenList {
        pub tokens: Vec<TokenInfo>,
    }

    /// A CLI session: one `claudemesh login` on one machine.
    pub struct SessionInfo {
        #[serde(flatten)]
        pub token: TokenInfo,
        /// Whether this is the session making the request.
        pub current: bool,
    }

    pub struct SessionList {
        pub sessions: Vec<SessionInfo>,
    }

    /// How the request proved who it is.
    pub struct CredentialInfo {
        /// `token` or `cookie`.
        pub via: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub token: Option<TokenInfo>,
    }

    pub struct WhoAmIResponse {
        pub user: UserSummary,
        pub credential: CredentialInfo,
    }

    /// Revoke a token by possession: logout, or anyone who found a leak.
    #[serde(deny_unknown_fields)]
    pub struct RevokeRequest {
        pub token: String,
    }
}

// ------------------------------------------------------- meshes and invites
wire! {
    #[serde(rename_all = "snake_case")]
    #[derive(Copy, Eq, Default)]
    pub enum MeshRole {
        Admin,
        #[default]
        Member,
    }

    #[serde(deny_unknown_fields)]
    pub struct CreateMeshRequest {
        #[cfg_attr(feature = "openapi", schema(schema_with = field::mesh_name))]
        pub name: String,
        /// Derived from the name when absent.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::mesh_slug))]
        pub slug: Option<String>,
        /// The creator's ed25519 public key, 64 hex characters.
        #[cfg_attr(feature = "openapi", schema(schema_with = field::creator_key))]
        pub public_key: String,
        /// The creator's name in this mesh; the account name when absent.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::creator_display_name))]
        pub display_name: Option<String>,
    }

    /// A mesh as one of its members sees it.
    pub struct MeshSummary {
        pub id: String,
        pub slug: String,
        pub name: String,
        pub role: MeshRole,
        pub member_id: String,
        pub display_name: String,
        /// How many live members the mesh has.
        pub member_count: u64,
        pub created_at: Timestamp,
        /// When an admin archived the mesh; absent while it is live.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub archived_at: Option<Timestamp>,
    }

    pub struct MeshList {
        pub meshes: Vec<MeshSummary>,
    }

    pub struct MeshMember {
        pub id: String,
        pub display_name: String,
        pub role: MeshRole,
        /// One ed25519 public key per machine the member uses (hex).
        pub public_keys: Vec<String>,
        pub joined_at: Timestamp,
        /// Whether this member is the caller.
        pub you: bool,
    }

    pub struct MeshDetail {
        #[serde(flatten)]
        pub mesh: MeshSummary,
        pub members: Vec<MeshMember>,
    }

    /// Registers this machine's key for the caller's membership.
    #[serde(deny_unknown_fields)]
    pub struct RegisterKeyRequest {
        #[cfg_attr(feature = "openapi", schema(schema_with = field::machine_key))]
        pub public_key: String,
    }

    #[serde(deny_unknown_fields)]
    pub struct CreateInviteRequest {
        /// Send the invite link to this address.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::invite_email))]
        pub email: Option<String>,
        #[serde(default)]
        pub role: Option<MeshRole>,
        /// 1 to 365; 7 when absent.
        #[serde(default, deserialize_with = "rules::optional_whole")]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::invite_expiry))]
        pub expires_in_days: Option<u32>,
        /// 1 to 1000; 1 when absent.
        #[serde(default, deserialize_with = "rules::optional_whole")]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::invite_uses))]
        pub max_uses: Option<u32>,
        /// Language of the email, `en` or `es`; from Accept-Language when absent.
        #[serde(default)]
        pub lang: Option<String>,
    }

    pub struct InviteInfo {
        pub id: String,
        pub code: String,
        /// `<public URL>/i/<code>`.
        pub url: String,
        pub role: MeshRole,
        pub email: Option<String>,
        pub max_uses: u32,
        pub uses: u32,
        pub expires_at: Timestamp,
        pub created_at: Timestamp,
        pub revoked: bool,
    }

    pub struct CreatedInvite {
        #[serde(flatten)]
        pub invite: InviteInfo,
        /// Whether the email was handed to the mail server (SMTP). False
        /// when it only went to the outbox: nobody receives that.
        pub emailed: bool,
        /// What became of the email, when one was asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mail: Option<MailStatus>,
        /// Why the email did not reach the mail server, when it did not.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub email_error: Option<String>,
    }

    /// What became of an email the server was asked to send.
    #[serde(rename_all = "snake_case")]
    #[derive(Copy, Eq)]
    pub enum MailStatus {
        /// Handed to the mail server (SMTP).
        Sent,
        /// No mail server is set up: written to the server's outbox folder,
        /// where nobody receives it.
        Outbox,
        /// The mail server refused it, or it could not be written.
        Failed,
    }

    pub struct InviteList {
        pub invites: Vec<InviteInfo>,
    }

    #[serde(rename_all = "snake_case")]
    #[derive(Copy, Eq)]
    pub enum InviteStatus {
        Valid,
        Expired,
        Revoked,
        UsedUp,
    }

    /// What anyone holding an invite link may see of it.
    pub struct InvitePreview {
        pub code: String,
        pub mesh_name: String,
        pub mesh_slug: String,
        pub inviter_name: String,
        pub role: MeshRole,
        pub expires_at: Timestamp,
        pub status: InviteStatus,
    }

    #[serde(deny_unknown_fields)]
    pub struct AcceptInviteRequest {
        /// This machine's ed25519 public key, 64 hex characters.
        #[cfg_attr(feature = "openapi", schema(schema_with = field::machine_key))]
        pub public_key: String,
        /// The name to show in the mesh; the account name when absent.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::member_display_name))]
        pub display_name: Option<String>,
    }

    pub struct AcceptedInvite {
        pub mesh: MeshSummary,
        /// True when the caller was already a member (nothing was used up).
        pub already_member: bool,
    }
}

// ------------------------------------------------------------- governance
wire! {
    /// A member as `claudemesh members` shows them.
    pub struct MemberInfo {
        pub id: String,
        pub display_name: String,
        pub role: MeshRole,
        pub joined_at: Timestamp,
        /// When a session of theirs last connected or ended; absent if never.
        pub last_seen_at: Option<Timestamp>,
        /// Sessions of theirs connected now, on any instance.
        pub sessions_online: u32,
        /// One ed25519 public key per machine the member uses (hex).
        pub public_keys: Vec<String>,
        /// Whether this member is the caller.
        pub you: bool,
    }

    /// An invite that can still be used.
    pub struct PendingInvite {
        pub id: String,
        /// Who it is addressed to, when it was mailed.
        pub email: Option<String>,
        pub role: MeshRole,
        /// The account name of the admin who made it.
        pub invited_by: String,
        pub created_at: Timestamp,
        pub expires_at: Timestamp,
    }

    pub struct MemberList {
        pub mesh: String,
        pub members: Vec<MemberInfo>,
        pub pending: Vec<PendingInvite>,
    }

    /// Invite a person by email (the same invite and mail as `invite --email`).
    #[serde(deny_unknown_fields)]
    pub struct AddMemberRequest {
        #[cfg_attr(feature = "openapi", schema(schema_with = field::member_email))]
        pub email: String,
        #[serde(default)]
        pub role: Option<MeshRole>,
        /// Language of the email, `en` or `es`; from Accept-Language when absent.
        #[serde(default)]
        pub lang: Option<String>,
    }

    #[serde(deny_unknown_fields)]
    pub struct ChangeRoleRequest {
        pub role: MeshRole,
    }

    #[serde(deny_unknown_fields)]
    pub struct RenameMeshRequest {
        #[cfg_attr(feature = "openapi", schema(schema_with = field::mesh_name))]
        pub name: String,
    }

    /// What a deleted mesh was.
    pub struct DeletedMesh {
        pub id: String,
        pub slug: String,
        pub deleted: bool,
    }

    /// What one member may do to another: send them direct messages, reach
    /// them with group and broadcast messages, see their status and summary
    /// (the three every member has until taken away), and answer their
    /// sessions' relayed permission prompts (`approve`: never by default,
    /// given to one member at a time).
    #[serde(rename_all = "snake_case")]
    #[derive(Copy, Eq, Hash, PartialOrd, Ord)]
    pub enum Capability {
        Dm,
        Group,
        Presence,
        Approve,
    }

    /// What one member allows another.
    pub struct PeerGrant {
        pub member_id: String,
        pub display_name: String,
        pub caps: Vec<Capability>,
    }

    /// `claudemesh grants`: what I allow each peer, and what each allows me.
    pub struct GrantList {
        pub mesh: String,
        pub you_allow: Vec<PeerGrant>,
        pub allows_you: Vec<PeerGrant>,
        /// What you allow a member you have said nothing about.
        pub your_default: Vec<Capability>,
        /// What a new member allows the others, until they say otherwise.
        pub mesh_default: Vec<Capability>,
    }

    /// Adds and takes away capabilities of one peer towards the caller.
    #[serde(deny_unknown_fields)]
    pub struct ChangeGrantRequest {
        #[serde(default)]
        pub grant: Vec<Capability>,
        #[serde(default)]
        pub revoke: Vec<Capability>,
    }

    /// The mesh's default for new members (admins only).
    #[serde(deny_unknown_fields)]
    pub struct DefaultGrantsRequest {
        #[cfg_attr(feature = "openapi", schema(schema_with = field::default_caps))]
        pub caps: Vec<Capability>,
    }
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::Dm,
        Capability::Group,
        Capability::Presence,
        Capability::Approve,
    ];
    /// What a member allows everyone until they say otherwise (and what
    /// `unblock` gives back): all but `approve`.
    pub const BASIC: [Capability; 3] = [Capability::Dm, Capability::Group, Capability::Presence];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dm => "dm",
            Self::Group => "group",
            Self::Presence => "presence",
            Self::Approve => "approve",
        }
    }

    /// `dm,group`: how a set is stored. Sorted, without repeats.
    pub fn join(caps: &[Capability]) -> String {
        let mut caps = caps.to_vec();
        caps.sort();
        caps.dedup();
        caps.iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The set `join` wrote; an unknown word is an error, never skipped.
    pub fn split(text: &str) -> Result<Vec<Capability>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|word| {
                Self::ALL
                    .into_iter()
                    .find(|cap| cap.as_str() == word)
                    .ok_or_else(|| format!("unknown capability `{word}`"))
            })
            .collect()
    }
}

// --------------------------------------------- OAuth 2.0 device grant (RFC 8628)
/// The RFC 8628 grant type for polling `/oauth/token`.
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

wire! {
    /// `POST /oauth/device_authorization`, form-encoded (RFC 8628 §3.1).
    pub struct OAuthDeviceAuthorizationRequest {
        #[serde(default)]
        pub client_id: Option<String>,
        #[serde(default)]
        pub scope: Option<String>,
        #[serde(default)]
        pub device_name: Option<String>,
        #[serde(default)]
        pub device_os: Option<String>,
        #[serde(default)]
        pub device_arch: Option<String>,
    }

    /// RFC 8628 §3.2.
    pub struct OAuthDeviceAuthorizationResponse {
        pub device_code: String,
        pub user_code: String,
        pub verification_uri: String,
        pub verification_uri_complete: String,
        pub expires_in: u64,
        /// Whole seconds, as the RFC requires.
        pub interval: u64,
    }

    /// `POST /oauth/token`, form-encoded (RFC 8628 §3.4).
    pub struct OAuthTokenRequest {
        /// Only `urn:ietf:params:oauth:grant-type:device_code`.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(schema_with = field::grant_type, required = true))]
        pub grant_type: Option<String>,
        /// The `device_code` from `/oauth/device_authorization`.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = String, required = true))]
        pub device_code: Option<String>,
        #[serde(default)]
        pub client_id: Option<String>,
    }

    /// RFC 6749 §5.1.
    pub struct OAuthTokenResponse {
        pub access_token: String,
        pub token_type: String,
        pub expires_in: u64,
    }

    /// RFC 6749 §5.2.
    pub struct OAuthErrorBody {
        pub error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error_description: Option<String>,
    }
}

/// Keeps "absent" (outer `None`) apart from an explicit `null`
/// (`Some(None)`), for a whole number ([`rules::optional_whole`]).
fn present_or_null_whole<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    rules::optional_whole(deserializer).map(Some)
}

/// The schemas of request fields that follow [`rules`]: a field's type
/// alone would let through values that the server refuses.
#[cfg(feature = "openapi")]
mod field {
    use super::DEVICE_CODE_GRANT_TYPE;
    use crate::rules::{self, schema};
    use utoipa::openapi::{Object, RefOr, Schema};

    /// A mesh's default grants: any of the basic capabilities, never
    /// `approve` (given to one member at a time).
    pub fn default_caps() -> utoipa::openapi::Array {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        let basic = super::Capability::BASIC.map(|cap| match cap {
            super::Capability::Dm => "dm",
            super::Capability::Group => "group",
            super::Capability::Presence => "presence",
            super::Capability::Approve => "approve",
        });
        ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(basic)))
            .description(Some(
                "What a new member allows everyone until they say otherwise: any of dm, group, presence (never approve).",
            ))
            .build()
    }
    pub fn account_email() -> Object {
        schema::email("The account's email address; unique whatever its case.")
    }
    pub fn new_password() -> Object {
        schema::password("The new password.")
    }
    pub fn account_name() -> Object {
        schema::label(false, "The account holder's name.")
    }
    pub fn device_name() -> Object {
        schema::label(false, "The machine's name, e.g. its host name.")
    }
    pub fn device_os() -> Object {
        schema::label(false, "The machine's operating system, e.g. `linux`.")
    }
    pub fn device_arch() -> Object {
        schema::label(false, "The machine's architecture, e.g. `x86_64`.")
    }
    pub fn token_name() -> Object {
        schema::label(false, "What the token is for.")
    }
    pub fn pat_expiry() -> RefOr<Schema> {
        schema::one_of_or_null(
            "Days until the token expires: 30, 90 or 365; `null` for a token that never expires; absent for the default (365).",
            &rules::PAT_EXPIRY_DAYS,
        )
    }
    pub fn mesh_name() -> Object {
        schema::label(false, "The mesh's name.")
    }
    pub fn mesh_slug() -> Object {
        schema::slug(
            true,
            "The mesh's handle; derived from the name when absent or `null`.",
        )
    }
    pub fn creator_key() -> Object {
        schema::public_key("The creator's ed25519 public key, 64 hex characters.")
    }
    pub fn creator_display_name() -> Object {
        schema::label(
            true,
            "The creator's name in this mesh; the account name when absent.",
        )
    }
    pub fn machine_key() -> Object {
        schema::public_key("This machine's ed25519 public key, 64 hex characters.")
    }
    pub fn member_display_name() -> Object {
        schema::label(
            true,
            "The name to show in the mesh; the account name when absent.",
        )
    }
    pub fn invite_email() -> Object {
        schema::blank_or_email(
            "Send the invite link to this address; blank or absent: send nothing.",
        )
    }
    pub fn member_email() -> Object {
        schema::email("The person to add: the invite link is mailed to this address.")
    }
    pub fn invite_expiry() -> Object {
        schema::optional_whole(
            "Days the invite is valid; 7 when absent.",
            1,
            u64::from(rules::MAX_INVITE_EXPIRY_DAYS),
        )
    }
    pub fn invite_uses() -> Object {
        schema::optional_whole(
            "How many people may join with the invite; 1 when absent.",
            1,
            u64::from(rules::MAX_INVITE_USES),
        )
    }
    pub fn grant_type() -> Object {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some([DEVICE_CODE_GRANT_TYPE]))
            .description(Some(
                "The RFC 8628 grant; another answers 400 `unsupported_grant_type`.",
            ))
            .build()
    }
}

// ---------------------------------------------------------------- mesh log
wire! {
    /// One entry of a mesh's log (see `crate::mesh_log` for the chain).
    pub struct LogEntry {
        /// Position in the mesh's log, from 1, without gaps.
        pub seq: u64,
        pub at: Timestamp,
        /// `at` in milliseconds since the Unix epoch (what the hash covers).
        pub at_ms: i64,
        /// `member.joined`, `session.connected`, `message.sent`, … (docs/api.md).
        pub kind: String,
        /// What happened, as text values only: ids, names, counts. Never a
        /// message body, never a token.
        pub detail: std::collections::BTreeMap<String, String>,
        /// The hash of the entry before (64 zeros for the first).
        pub prev_hash: String,
        /// SHA-256 over this entry's canonical encoding, hex.
        pub hash: String,
        /// Where to continue after this entry (`after=`).
        pub cursor: String,
    }

    /// A page of a mesh's log, oldest first.
    pub struct LogPage {
        pub mesh_id: String,
        pub entries: Vec<LogEntry>,
        /// The cursor of the last entry returned (or the one given, when
        /// none was): pass it as `after` for what follows.
        pub cursor: String,
        /// The head of the chain when the page was read (the last entry's
        /// `seq` and `hash`), so a verifier also sees a truncated tail.
        pub head_seq: u64,
        pub head_hash: String,
        /// The first `seq` still kept (older ones fell to retention).
        pub first_seq: u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_stored_sorted_and_an_unknown_one_is_an_error() {
        assert_eq!(
            Capability::join(&[Capability::Presence, Capability::Dm, Capability::Dm]),
            "dm,presence"
        );
        assert_eq!(
            Capability::split("dm, group").unwrap(),
            [Capability::Dm, Capability::Group]
        );
        assert!(Capability::split("dm,teleport").is_err());
        assert!(serde_json::from_str::<ChangeGrantRequest>(r#"{"grant":["teleport"]}"#).is_err());
        assert!(serde_json::from_str::<ChangeGrantRequest>(r#"{"revoke":["dm"],"x":1}"#).is_err());
    }

    #[test]
    fn pat_expiry_tells_absent_from_never() {
        let absent: CreatePatRequest = serde_json::from_str(r#"{"name":"ci"}"#).unwrap();
        assert_eq!(absent.expires_in_days, None);
        let never: CreatePatRequest =
            serde_json::from_str(r#"{"name":"ci","expires_in_days":null}"#).unwrap();
        assert_eq!(never.expires_in_days, Some(None));
        let days: CreatePatRequest =
            serde_json::from_str(r#"{"name":"ci","expires_in_days":30}"#).unwrap();
        assert_eq!(days.expires_in_days, Some(Some(30)));
        let back = serde_json::to_value(&never).unwrap();
        assert_eq!(back["expires_in_days"], serde_json::Value::Null);
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let err = serde_json::from_str::<SignInRequest>(r#"{"email":"a","password":"b","x":1}"#);
        assert!(err.is_err());
    }

    #[test]
    fn a_mesh_detail_round_trips_with_distinct_keys() {
        let detail = MeshDetail {
            mesh: MeshSummary {
                id: "msh_1".into(),
                slug: "dev".into(),
                name: "Dev".into(),
                role: MeshRole::Admin,
                member_id: "mem_1".into(),
                display_name: "Alice".into(),
                member_count: 1,
                created_at: "2026-01-01T00:00:00Z".into(),
                archived_at: None,
            },
            members: vec![MeshMember {
                id: "mem_1".into(),
                display_name: "Alice".into(),
                role: MeshRole::Admin,
                public_keys: vec!["ab".into()],
                joined_at: "2026-01-01T00:00:00Z".into(),
                you: true,
            }],
        };
        let text = serde_json::to_string(&detail).unwrap();
        assert_eq!(text.matches("\"members\"").count(), 1, "{text}");
        assert_eq!(serde_json::from_str::<MeshDetail>(&text).unwrap(), detail);
    }

    #[test]
    fn poll_response_omits_absent_token() {
        let body = DevicePollResponse {
            status: DeviceCodeStatus::Pending,
            token: None,
            user: None,
            already_claimed: false,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"status":"pending"}"#
        );
    }
}
