//! The broker's wire protocol (version 1): the frames of `GET /api/mesh/ws`.
//!
//! One JSON object per WebSocket text frame, tagged by `type`. Frames from
//! clients refuse unknown fields, so a typo is an error, not a silently
//! ignored setting. Everything here is data: the server and every client
//! parse the same types, and `docs/protocol.md` describes them in prose.
//!
//! Keys are lowercase hex (ed25519 public keys, 64 characters); ciphertext
//! and nonces are standard base64. Times the broker reports are RFC 3339;
//! the attestation expiry is signed, so it is an integer (ms since epoch).

use crate::wire::{MeshRole, Timestamp};
use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// The largest frame a client may send. The broker's own `welcome` and
/// `peers` grow with the mesh and may be larger: clients accept 4 times this.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The largest message text, in bytes, before encryption. A broadcast to a
/// full mesh (100 key boxes of ~300 bytes) still fits one frame.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// How far ahead an attestation may expire.
pub const MAX_ATTESTATION_MS: i64 = 24 * 60 * 60 * 1000;
/// Display names and roles: bounds in characters (as the API's names).
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_SUMMARY_CHARS: usize = 280;
pub const MAX_GROUPS: usize = 20;

/// What a session is doing. A `working` or `dnd` session is pushed only
/// `now` messages; the rest wait until it is `idle` again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    #[default]
    Idle,
    Working,
    Dnd,
}

impl PeerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Working => "working",
            Self::Dnd => "dnd",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "idle" => Some(Self::Idle),
            "working" => Some(Self::Working),
            "dnd" => Some(Self::Dnd),
            _ => None,
        }
    }

    /// Whether a message of this priority is pushed to a session in this status.
    pub fn accepts(self, priority: Priority) -> bool {
        self == Self::Idle || priority == Priority::Now
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Pushed even to a busy session.
    Now,
    #[default]
    Next,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Now => "now",
            Self::Next => "next",
            Self::Low => "low",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "now" => Some(Self::Now),
            "next" => Some(Self::Next),
            "low" => Some(Self::Low),
            _ => None,
        }
    }
}

/// How a message was addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// To one session, or to one member (all their sessions).
    Direct,
    /// To the sessions in a group (`@name`).
    Group,
    /// To every other session in the mesh (`*`).
    Broadcast,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Group => "group",
            Self::Broadcast => "broadcast",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "direct" => Some(Self::Direct),
            "group" => Some(Self::Group),
            "broadcast" => Some(Self::Broadcast),
            _ => None,
        }
    }
}

/// The member key's signature binding a session key to a mesh until
/// `expires_at` (see [`crate::e2e::attestation_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// Milliseconds since the Unix epoch; at most 24 h after the hello.
    pub expires_at: i64,
    /// ed25519 signature by the member key, hex.
    pub signature: String,
    /// What this session may do, signed with the rest
    /// ([`crate::e2e::attestation_bytes_for`]); absent: all of its
    /// member's rights (older clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rights: Option<Vec<SessionRight>>,
}

impl Attestation {
    /// Whether the session may do `right`.
    pub fn allows(&self, right: SessionRight) -> bool {
        self.rights
            .as_ref()
            .is_none_or(|rights| rights.contains(&right))
    }
}

/// The rights a session's attestation may limit it to (`launch --caps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionRight {
    /// Send direct messages.
    SendDm,
    /// Send to a group.
    SendGroup,
    /// Send to everyone.
    Broadcast,
    /// Set its status (idle, working, dnd).
    Presence,
    /// Set its summary.
    SetSummary,
}

impl SessionRight {
    pub const ALL: [SessionRight; 5] = [
        Self::SendDm,
        Self::SendGroup,
        Self::Broadcast,
        Self::Presence,
        Self::SetSummary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendDm => "send_dm",
            Self::SendGroup => "send_group",
            Self::Broadcast => "broadcast",
            Self::Presence => "presence",
            Self::SetSummary => "set_summary",
        }
    }

    /// `send_dm,presence`: sorted, without repeats (what is signed).
    pub fn join(rights: &[SessionRight]) -> String {
        let mut rights = rights.to_vec();
        rights.sort();
        rights.dedup();
        rights
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// What `join` wrote (as stored with a message); an unknown word is an error.
    pub fn split(text: &str) -> Result<Vec<SessionRight>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(|word| {
                Self::ALL
                    .into_iter()
                    .find(|r| r.as_str() == word)
                    .ok_or_else(|| format!("unknown session right `{word}`"))
            })
            .collect()
    }

    /// The right a message of this kind needs.
    pub fn to_send(kind: MessageKind) -> SessionRight {
        match kind {
            MessageKind::Direct => Self::SendDm,
            MessageKind::Group => Self::SendGroup,
            MessageKind::Broadcast => Self::Broadcast,
        }
    }
}

/// The client's answer to the challenge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub version: u32,
    pub mesh_id: String,
    /// This machine's key for the membership (registered with the server).
    pub member_key: String,
    /// The per-session ed25519 key.
    pub session_key: String,
    pub attestation: Attestation,
    pub display_name: String,
    /// What this session does in the mesh ("reviewer"); free text.
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub status: PeerStatus,
    #[serde(default)]
    pub summary: String,
    /// The session key's signature over [`crate::e2e::hello_bytes`], hex.
    pub signature: String,
    /// An observer (`claudemesh stream subscribe`): it watches and sends
    /// nothing. It is in no peer list, count or presence event, nobody can
    /// address it, and it gets live only the messages sealed for its member
    /// key, which it never acknowledges (they stay for the member's real
    /// sessions). Sent only when true, so an older broker still takes every
    /// other hello.
    #[serde(default, skip_serializing_if = "is_false")]
    pub observer: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// A message body sealed with a one-time content key (XSalsa20-Poly1305).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBody {
    /// 24 bytes, base64.
    pub nonce: String,
    pub ciphertext: String,
}

/// The content key (and the body's digest) boxed for one recipient key with
/// libsodium's `crypto_box`, from the sender's session key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBox {
    /// The recipient: a session key, or a member's machine key (offline).
    pub to: String,
    /// 24 bytes, base64.
    pub nonce: String,
    /// 64 bytes of plaintext plus the 16-byte tag, base64.
    pub sealed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Chosen by the client; echoed in `sent` or `error`.
    pub req: u64,
    /// The message's id, chosen by the client ([`is_client_message_id`]):
    /// sending again with the same id (after a lost `sent`) is answered
    /// `sent` for the message already stored, never stored twice. Absent
    /// (older clients): the broker picks one. Written only when present,
    /// so the frame stays what an older broker takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub kind: MessageKind,
    /// The group name for `group` messages (without the `@`).
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub priority: Priority,
    pub body: SealedBody,
    /// One per recipient key. At least one.
    pub keys: Vec<KeyBox>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Hello(Hello),
    Send(SendRequest),
    /// The messages with these ids were received (and need not come again).
    Ack {
        ids: Vec<String>,
    },
    SetStatus {
        status: PeerStatus,
    },
    SetSummary {
        summary: String,
    },
    /// Asks for a `peers` frame.
    ListPeers {
        req: u64,
    },
    /// Asks where a message this member sent stands, per recipient.
    MessageStatus {
        req: u64,
        id: String,
    },
}

/// A connected session as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub session_key: String,
    pub member_id: String,
    pub member_key: String,
    pub display_name: String,
    pub role: String,
    pub groups: Vec<String>,
    pub status: PeerStatus,
    pub summary: String,
    pub connected_at: Timestamp,
}

/// A member of the mesh with the machine keys that can open messages left
/// for them while none of their sessions is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberKeys {
    pub member_id: String,
    pub display_name: String,
    pub role: MeshRole,
    pub keys: Vec<String>,
    /// Whether this member accepts direct messages from the member whose
    /// session asked (their `dm` grant). Absent from older servers: true.
    #[serde(default = "yes")]
    pub permits_dm: bool,
    /// Whether the member whose session asked lets this member answer its
    /// relayed permission prompts (its `approve` grant to them). Absent
    /// from older servers: false.
    #[serde(default)]
    pub may_approve: bool,
}

fn yes() -> bool {
    true
}

/// Who sent a message, with the proof that the member key vouches for the
/// session key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub session_key: String,
    pub member_id: String,
    pub member_key: String,
    pub display_name: String,
    pub attestation: Attestation,
}

/// A message for this session: the shared body and this recipient's key box.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    pub mesh_id: String,
    pub kind: MessageKind,
    pub group: Option<String>,
    pub priority: Priority,
    pub sent_at: Timestamp,
    pub from: Sender,
    pub body: SealedBody,
    pub key: KeyBox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Delivered,
    Waiting,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientStatus {
    pub to: String,
    pub member_id: String,
    pub display_name: String,
    pub state: DeliveryState,
}

/// The broker's limits, told to each session at the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: u64,
    pub max_message_bytes: u64,
    pub send_burst: u32,
    pub sends_per_minute: u32,
    pub message_ttl_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub mesh_id: String,
    pub mesh_slug: String,
    pub mesh_name: String,
    pub member_id: String,
    /// Every other connected session of the mesh.
    pub peers: Vec<Peer>,
    pub members: Vec<MemberKeys>,
    pub limits: Limits,
    /// Whether this broker takes client-chosen message ids
    /// ([`SendRequest::id`]). Absent from older servers: false, and a
    /// client then lets the broker pick.
    #[serde(default)]
    pub client_message_ids: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerErrorCode {
    /// Not JSON, or not a known frame: closes (1008). Also a well-formed
    /// `send` with a value out of bounds: answered with its `req`, no close.
    BadFrame,
    /// Over [`MAX_FRAME_BYTES`]. Closes (1009).
    FrameTooLarge,
    UnsupportedVersion,
    /// Anything before a successful hello, or a second hello. Closes (1008).
    HelloRequired,
    /// The session key did not sign this connection's challenge.
    BadSignature,
    /// The member key did not sign this session key for this mesh.
    BadAttestation,
    AttestationExpired,
    /// The key belongs to no current membership of the mesh.
    NotAMember,
    /// An admin removed this member (or they left). Closes.
    Removed,
    /// The same session connected again (elsewhere); this connection closes.
    Replaced,
    MeshFull,
    TooManyConnections,
    /// Over the send rate; `retry_after_ms` says when to try again.
    RateLimited,
    MessageTooLarge,
    /// A key box is for a key that is neither a session nor a member key of
    /// this mesh.
    UnknownRecipient,
    /// No such message among this member's.
    NotFound,
    /// No hello within the time allowed.
    HandshakeTimeout,
    /// The mesh is archived: no sessions. Closes.
    MeshArchived,
    /// The recipient does not allow this (a grant not given, a block), or
    /// this session's attestation does not carry the right. The same code
    /// whatever the reason.
    NotPermitted,
    /// An observer session (`hello.observer`) sent a frame that would act
    /// (`send`, `set_status`, `set_summary`): it only watches. No close.
    Observer,
    /// A `send`'s `id` is not of the client's shape, or belongs to a
    /// message another member sent. No close.
    BadMessageId,
    Internal,
    /// A code this build does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl BrokerErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::FrameTooLarge => "frame_too_large",
            Self::UnsupportedVersion => "unsupported_version",
            Self::HelloRequired => "hello_required",
            Self::BadSignature => "bad_signature",
            Self::BadAttestation => "bad_attestation",
            Self::AttestationExpired => "attestation_expired",
            Self::NotAMember => "not_a_member",
            Self::Removed => "removed",
            Self::Replaced => "replaced",
            Self::MeshFull => "mesh_full",
            Self::TooManyConnections => "too_many_connections",
            Self::RateLimited => "rate_limited",
            Self::MessageTooLarge => "message_too_large",
            Self::UnknownRecipient => "unknown_recipient",
            Self::NotFound => "not_found",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::MeshArchived => "mesh_archived",
            Self::NotPermitted => "not_permitted",
            Self::Observer => "observer",
            Self::BadMessageId => "bad_message_id",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The first frame of every connection: sign it to say hello.
    Challenge {
        version: u32,
        /// 32 random bytes, hex; never used twice.
        challenge: String,
    },
    Welcome(Welcome),
    PeerJoined {
        peer: Peer,
    },
    PeerLeft {
        session_key: String,
    },
    /// A session's status or summary changed.
    PeerUpdated {
        peer: Peer,
    },
    Peers {
        req: u64,
        peers: Vec<Peer>,
        members: Vec<MemberKeys>,
    },
    /// The message is stored: it will reach its recipients.
    Sent {
        req: u64,
        id: String,
        recipients: u32,
    },
    Message(Envelope),
    MessageStatus {
        req: u64,
        id: String,
        recipients: Vec<RecipientStatus>,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<u64>,
        code: BrokerErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerFrame {
    pub fn error(req: Option<u64>, code: BrokerErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            req,
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// Whether `text` is an ed25519 public key as the protocol writes it.
pub fn is_key_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The length of a client-chosen message id: `msg_` and 32 lowercase hex
/// characters (128 random bits). The broker's own ids are shorter
/// (`msg_` and 16 base32 characters), so the two never collide.
pub const CLIENT_MESSAGE_ID_CHARS: usize = 4 + 32;

/// Whether `text` is a message id a client may choose.
pub fn is_client_message_id(text: &str) -> bool {
    text.len() == CLIENT_MESSAGE_ID_CHARS
        && text.strip_prefix("msg_").is_some_and(|hex| {
            hex.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// A display name, role or group name: 1 to [`MAX_NAME_CHARS`] characters,
/// no control characters (a role may be empty).
pub fn is_clean_label(text: &str, may_be_empty: bool) -> bool {
    let chars = text.chars().count();
    (may_be_empty || chars > 0)
        && chars <= MAX_NAME_CHARS
        && text == text.trim()
        && !text.chars().any(char::is_control)
}

/// A group name: like a slug, 1 to 40 of `a-z 0-9 - _`.
pub fn is_group_name(text: &str) -> bool {
    (1..=40).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_rights_are_signed_in_one_order_and_an_absent_list_means_all() {
        let rights = [
            SessionRight::SetSummary,
            SessionRight::SendDm,
            SessionRight::SendDm,
        ];
        assert_eq!(SessionRight::join(&rights), "send_dm,set_summary");
        assert_eq!(
            SessionRight::split("send_dm,set_summary").unwrap(),
            [SessionRight::SendDm, SessionRight::SetSummary]
        );
        assert!(SessionRight::split("send_dm,teleport").is_err());
        let all = Attestation {
            expires_at: 1,
            signature: String::new(),
            rights: None,
        };
        assert!(SessionRight::ALL.iter().all(|r| all.allows(*r)));
        let limited = Attestation {
            rights: Some(vec![SessionRight::SendDm]),
            ..all.clone()
        };
        assert!(limited.allows(SessionRight::SendDm));
        assert!(!limited.allows(SessionRight::Broadcast));
        assert_eq!(
            SessionRight::to_send(MessageKind::Group),
            SessionRight::SendGroup
        );
        // Older attestations (no field) still parse, and are written without it.
        let old: Attestation =
            serde_json::from_str(r#"{"expires_at":1,"signature":"ab"}"#).unwrap();
        assert_eq!(old.rights, None);
        assert!(!serde_json::to_string(&old).unwrap().contains("rights"));
        let members: MemberKeys = serde_json::from_str(
            r#"{"member_id":"m","display_name":"A","role":"member","keys":[]}"#,
        )
        .unwrap();
        assert!(
            members.permits_dm,
            "an older server's member takes direct messages"
        );
    }

    #[test]
    fn frames_are_tagged_by_type() {
        let frame = ClientFrame::Ack {
            ids: vec!["m1".into()],
        };
        assert_eq!(
            serde_json::to_string(&frame).unwrap(),
            r#"{"type":"ack","ids":["m1"]}"#
        );
        let back: ClientFrame = serde_json::from_str(r#"{"type":"list_peers","req":7}"#).unwrap();
        assert_eq!(back, ClientFrame::ListPeers { req: 7 });
    }

    #[test]
    fn client_frames_refuse_unknown_fields_and_types() {
        for bad in [
            r#"{"type":"ack","ids":[],"extra":1}"#,
            r#"{"type":"shout"}"#,
            r#"{"ids":[]}"#,
            r#"{"type":"set_status","status":"asleep"}"#,
            "[]",
            "",
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_error_codes_from_a_newer_server_still_parse() {
        let frame: ServerFrame =
            serde_json::from_str(r#"{"type":"error","code":"quota","message":"m"}"#).unwrap();
        assert!(matches!(
            frame,
            ServerFrame::Error {
                code: BrokerErrorCode::Unknown,
                ..
            }
        ));
        let json = serde_json::to_string(&ServerFrame::error(
            Some(3),
            BrokerErrorCode::RateLimited,
            "slow",
        ))
        .unwrap();
        assert_eq!(
            json,
            r#"{"type":"error","req":3,"code":"rate_limited","message":"slow"}"#
        );
    }

    #[test]
    fn client_message_ids_have_one_shape() {
        assert!(is_client_message_id(&format!("msg_{}", "0a".repeat(16))));
        for bad in [
            "msg_q4w7e2rt5yu3io6p".to_owned(),
            format!("msg_{}", "0A".repeat(16)),
            format!("msg_{}", "0a".repeat(17)),
            format!("mem_{}", "0a".repeat(16)),
            format!("msg_{}g", "0".repeat(31)),
            String::new(),
        ] {
            assert!(!is_client_message_id(&bad), "{bad}");
        }
        // Absent from an older client, and not written when absent.
        let old: ClientFrame = serde_json::from_str(
            r#"{"type":"send","req":1,"kind":"direct","body":{"nonce":"n","ciphertext":"c"},"keys":[]}"#,
        )
        .unwrap();
        let ClientFrame::Send(old) = old else {
            panic!("a send");
        };
        assert_eq!(old.id, None);
        assert!(
            !serde_json::to_string(&ClientFrame::Send(old))
                .unwrap()
                .contains("\"id\"")
        );
    }

    #[test]
    fn a_busy_session_gets_only_now() {
        assert!(PeerStatus::Idle.accepts(Priority::Low));
        assert!(PeerStatus::Working.accepts(Priority::Now));
        assert!(!PeerStatus::Working.accepts(Priority::Next));
        assert!(!PeerStatus::Dnd.accepts(Priority::Low));
    }

    #[test]
    fn labels_and_groups_are_bounded() {
        assert!(is_clean_label("Alex (laptop)", false));
        assert!(!is_clean_label("", false));
        assert!(is_clean_label("", true));
        assert!(!is_clean_label(" padded", false));
        assert!(!is_clean_label("bell\u{7}", false));
        assert!(is_clean_label(&"x".repeat(100), false));
        assert!(!is_clean_label(&"x".repeat(101), false));
        assert!(is_group_name("backend_team-2"));
        assert!(!is_group_name("Backend"));
        assert!(!is_group_name("a'; DROP TABLE x;--"));
        assert!(!is_group_name(""));
    }
}
