//! Permission prompts relayed to their owner (issue 18): what travels
//! *inside* an end-to-end encrypted message when a launched session asks
//! its member's other sessions whether Claude Code may use a tool, and
//! the answer.
//!
//! The broker never sees these: they are the text of ordinary direct
//! messages, a JSON object whose `claudemesh` field names the kind
//! ([`Payload`]). A request goes to the asking member's own member id (its
//! other sessions and its machine keys, which the broker always allows); a
//! verdict goes to the asking session's key; an outcome back to the
//! answering session's key.
//!
//! Claude Code's side of it (its channels reference,
//! <https://code.claude.com/docs/en/channels-reference#relay-permission-prompts>):
//! a request id is five letters a–z without `l`, the input preview is the
//! tool input as JSON cut to 200 characters, the verdict's behaviour is
//! `allow` or `deny`, and the first answer wins.

use crate::e2e;
use serde::{Deserialize, Serialize};

/// How long a request may be answered: 10 minutes.
pub const REQUEST_TTL_MS: i64 = 10 * 60 * 1000;
/// The letters of a request id, as Claude Code makes them: a–z without `l`.
pub const REQUEST_ID_ALPHABET: &[u8; 25] = b"abcdefghijkmnopqrstuvwxyz";
pub const REQUEST_ID_LEN: usize = 5;
/// Claude Code cuts the input preview to this many characters.
pub const PREVIEW_CHARS: usize = 200;
/// Bounds on what a request carries, so a peer's request cannot flood a
/// terminal.
pub const MAX_TOOL_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;

/// What the owner answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behavior {
    Allow,
    Deny,
}

impl Behavior {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// A tool use waiting for its owner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionRequest {
    pub request_id: String,
    pub tool_name: String,
    pub description: String,
    pub input_preview: String,
    /// The session key of the asking session: the verdict goes there, and
    /// its signature covers it.
    pub session_key: String,
    /// When the asking session stops waiting (ms since the epoch).
    pub expires_at: i64,
}

/// The owner's answer, signed by the answering machine's member key over
/// [`verdict_bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub request_id: String,
    pub session_key: String,
    pub behavior: Behavior,
    pub signature: String,
}

/// What became of a verdict, told back to the session that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// The verdict was the first: Claude Code has it.
    Applied,
    /// Another answer came first.
    AlreadyAnswered,
    /// The request expired before the verdict came.
    Expired,
    /// The session has no such request (it restarted, or never asked).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub request_id: String,
    pub outcome: OutcomeKind,
}

/// A relay payload, as the text of an encrypted message:
/// `{"claudemesh":"permission_request", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "claudemesh", rename_all = "snake_case")]
pub enum Payload {
    PermissionRequest(PermissionRequest),
    PermissionVerdict(Verdict),
    PermissionOutcome(Outcome),
}

impl Payload {
    /// The payload a message's text holds, if it is one (and well formed);
    /// any other text is an ordinary message.
    pub fn parse(text: &str) -> Option<Self> {
        if !text.trim_start().starts_with('{') || !text.contains("\"claudemesh\"") {
            return None;
        }
        let payload: Self = serde_json::from_str(text).ok()?;
        payload.is_well_formed().then_some(payload)
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn is_well_formed(&self) -> bool {
        match self {
            Self::PermissionRequest(r) => {
                is_request_id(&r.request_id)
                    && is_key_hex(&r.session_key)
                    && bounded(&r.tool_name, MAX_TOOL_NAME_CHARS)
                    && !r.tool_name.trim().is_empty()
                    && bounded(&r.description, MAX_DESCRIPTION_CHARS)
                    && bounded(&r.input_preview, PREVIEW_CHARS + 1)
            }
            Self::PermissionVerdict(v) => {
                is_request_id(&v.request_id)
                    && is_key_hex(&v.session_key)
                    && v.signature.len() == 128
                    && v.signature.bytes().all(|b| b.is_ascii_hexdigit())
            }
            Self::PermissionOutcome(o) => is_request_id(&o.request_id),
        }
    }
}

fn bounded(text: &str, chars: usize) -> bool {
    text.chars().count() <= chars
}

fn is_key_hex(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `text` is a request id as Claude Code makes them.
pub fn is_request_id(text: &str) -> bool {
    text.len() == REQUEST_ID_LEN && text.bytes().all(|b| REQUEST_ID_ALPHABET.contains(&b))
}

/// A request id from random bytes (for requests claudemesh makes itself:
/// the `--permission-prompt-tool` path, where Claude Code gives none).
pub fn request_id_from(random: [u8; REQUEST_ID_LEN]) -> String {
    random
        .iter()
        .map(|b| char::from(REQUEST_ID_ALPHABET[usize::from(*b) % REQUEST_ID_ALPHABET.len()]))
        .collect()
}

/// A tool input as Claude Code previews it: JSON cut to 200 characters.
pub fn input_preview(input: &serde_json::Value) -> String {
    let text = serde_json::to_string(input).unwrap_or_default();
    text.chars().take(PREVIEW_CHARS).collect()
}

/// The bytes a verdict's signature covers: the mesh, the asking session,
/// the request and the behaviour, so a verdict cannot be replayed for
/// another session, request, mesh, or the other answer.
pub fn verdict_bytes(
    mesh_id: &str,
    session_key: &str,
    request_id: &str,
    behavior: Behavior,
) -> Vec<u8> {
    format!(
        "claudemesh-permission-verdict-v1\n{mesh_id}\n{session_key}\n{request_id}\n{}",
        behavior.as_str()
    )
    .into_bytes()
}

impl Verdict {
    /// A verdict signed by `member` (the answering machine's member key).
    pub fn sign(
        member: &e2e::KeyPair,
        mesh_id: &str,
        session_key: &str,
        request_id: &str,
        behavior: Behavior,
    ) -> Self {
        Self {
            request_id: request_id.to_owned(),
            session_key: session_key.to_owned(),
            behavior,
            signature: member.sign_hex(&verdict_bytes(mesh_id, session_key, request_id, behavior)),
        }
    }

    /// Whether `member_key` (hex) signed this verdict in `mesh_id`.
    pub fn signed_by(&self, member_key: &str, mesh_id: &str) -> bool {
        e2e::verify(
            member_key,
            &verdict_bytes(mesh_id, &self.session_key, &self.request_id, self.behavior),
            &self.signature,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> e2e::KeyPair {
        e2e::KeyPair::from_seed(&[seed; 32])
    }

    #[test]
    fn request_ids_are_five_letters_without_l() {
        assert!(is_request_id("tbxkq"));
        for bad in ["tbxkl", "TBXKQ", "tbxk", "tbxkqq", "tbx1q", ""] {
            assert!(!is_request_id(bad), "{bad}");
        }
        let id = request_id_from([0, 11, 24, 25, 255]);
        assert!(is_request_id(&id), "{id}");
        assert_eq!(id, "amzaf");
    }

    #[test]
    fn the_preview_is_json_cut_to_200_characters() {
        let input = serde_json::json!({"command": "é".repeat(300)});
        let preview = input_preview(&input);
        assert_eq!(preview.chars().count(), 200);
        assert!(preview.starts_with("{\"command\":\"éé"));
        assert_eq!(input_preview(&serde_json::json!({"a": 1})), "{\"a\":1}");
    }

    #[test]
    fn payloads_round_trip_and_ordinary_text_is_not_one() {
        let request = Payload::PermissionRequest(PermissionRequest {
            request_id: "tbxkq".into(),
            tool_name: "Bash".into(),
            description: "List files".into(),
            input_preview: "{\"command\":\"ls\"}".into(),
            session_key: "a".repeat(64),
            expires_at: 5,
        });
        let text = request.to_text();
        assert!(
            text.starts_with("{\"claudemesh\":\"permission_request\""),
            "{text}"
        );
        assert_eq!(Payload::parse(&text), Some(request));
        for ordinary in [
            "hello",
            "{\"claudemesh\":\"something_else\"}",
            "{\"claudemesh\":\"permission_outcome\",\"request_id\":\"tbxkl\",\"outcome\":\"applied\"}",
            "[1,2]",
        ] {
            assert_eq!(Payload::parse(ordinary), None, "{ordinary}");
        }
        let outcome = "{\"claudemesh\":\"permission_outcome\",\"request_id\":\"tbxkq\",\"outcome\":\"already_answered\"}";
        assert_eq!(
            Payload::parse(outcome),
            Some(Payload::PermissionOutcome(Outcome {
                request_id: "tbxkq".into(),
                outcome: OutcomeKind::AlreadyAnswered
            }))
        );
    }

    #[test]
    fn a_verdict_holds_only_for_its_signer_mesh_session_request_and_behaviour() {
        let owner = key(1);
        let session = "b".repeat(64);
        let verdict = Verdict::sign(&owner, "msh_1", &session, "tbxkq", Behavior::Allow);
        assert!(verdict.signed_by(&owner.public_hex(), "msh_1"));
        assert!(!verdict.signed_by(&key(2).public_hex(), "msh_1"));
        assert!(!verdict.signed_by(&owner.public_hex(), "msh_2"));
        let mut other_session = verdict.clone();
        other_session.session_key = "c".repeat(64);
        assert!(!other_session.signed_by(&owner.public_hex(), "msh_1"));
        let mut other_request = verdict.clone();
        other_request.request_id = "abcde".into();
        assert!(!other_request.signed_by(&owner.public_hex(), "msh_1"));
        let mut flipped = verdict.clone();
        flipped.behavior = Behavior::Deny;
        assert!(!flipped.signed_by(&owner.public_hex(), "msh_1"));
        let text = Payload::PermissionVerdict(verdict.clone()).to_text();
        assert_eq!(
            Payload::parse(&text),
            Some(Payload::PermissionVerdict(verdict))
        );
    }
}
