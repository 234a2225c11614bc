//! The sealed header: what a sender seals in front of its text so that the
//! broker cannot replay or relabel a message.
//!
//! The broker stores a message's id, kind, group, priority and time in
//! clear, beside the ciphertext; whoever holds its database could deliver
//! an old ciphertext again under a new id, or tell a recipient that a
//! direct message was a broadcast. So the sender also writes them (and the
//! recipient keys, its own session key and member id, and its clock)
//! inside the body it seals. The body is pinned by the digest in each
//! recipient's key box, which only the sender's session key could have
//! boxed (see [`crate::e2e`]), so a recipient that opens the message knows
//! the header is the sender's, and compares it with the envelope
//! ([`SealedHeader::check`]).
//!
//! The plaintext of a body is then
//!
//! ```text
//! \0claudemesh-sealed-v1\n{header as one line of JSON}\n{text}
//! ```
//!
//! The leading NUL keeps it apart from any text an older client sealed
//! (which is the whole plaintext, and opens as before, unprotected). The
//! version says how to read the rest: a later format bumps it, and a
//! reader refuses a version it does not know rather than guess. Within
//! version 1, fields may be added (readers ignore what they do not know);
//! a field that protects something needs a new version, since an older
//! reader would not check it.

use crate::broker::{Envelope, MessageKind, Priority};
use serde::{Deserialize, Serialize};

/// What every sealed plaintext starts with, before its version.
const PREFIX: &str = "\u{0}claudemesh-sealed-v";
/// The format this build writes and the only one it reads.
pub const VERSION: u32 = 1;
/// The largest header, in bytes: a broadcast to a full mesh lists 100 keys
/// of 64 characters, about 7 KiB; this leaves room for more keys (machine
/// keys of offline members). The broker takes a body of this and
/// [`crate::broker::MAX_MESSAGE_BYTES`] of text.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A message's metadata as its sender sealed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedHeader {
    /// The message id the sender chose, which the broker stores it under;
    /// `None` when the sender's broker picks ids itself (an older server).
    #[serde(default)]
    pub id: Option<String>,
    pub mesh_id: String,
    /// The sender's session key (hex) and member id.
    pub session_key: String,
    pub member_id: String,
    pub kind: MessageKind,
    #[serde(default)]
    pub group: Option<String>,
    pub priority: Priority,
    /// Every recipient key the sender sealed for.
    pub to: Vec<String>,
    /// The sender's clock when it sealed the message (ms since the epoch).
    pub sent_at: i64,
}

/// Why a sealed plaintext cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Sealed by a newer client, in a format this build does not know.
    Version(String),
    /// The header is not what version 1 says.
    Malformed,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Version(v) => write!(
                f,
                "the message is sealed in a newer format (v{v}): update claudemesh to read it"
            ),
            Self::Malformed => f.write_str("the message's sealed header is malformed"),
        }
    }
}

impl std::error::Error for HeaderError {}

/// The plaintext to seal: the header, then the text.
pub fn wrap(header: &SealedHeader, text: &str) -> String {
    // serde_json writes no raw newline in compact form (newlines inside
    // strings are escaped), so the header is one line.
    let json = serde_json::to_string(header).unwrap_or_default();
    format!("{PREFIX}{VERSION}\n{json}\n{text}")
}

/// Splits an opened plaintext into its header (`None`: an older client's
/// message, the whole plaintext is its text) and its text.
pub fn unwrap(plain: &str) -> Result<(Option<SealedHeader>, &str), HeaderError> {
    let Some(rest) = plain.strip_prefix(PREFIX) else {
        return Ok((None, plain));
    };
    let (version, rest) = rest.split_once('\n').ok_or(HeaderError::Malformed)?;
    if version != VERSION.to_string() {
        let shown: String = version.chars().take(10).collect();
        if shown.is_empty() || !shown.chars().all(|c| c.is_ascii_digit()) {
            return Err(HeaderError::Malformed);
        }
        return Err(HeaderError::Version(shown));
    }
    let (json, text) = rest.split_once('\n').ok_or(HeaderError::Malformed)?;
    if json.len() > MAX_HEADER_BYTES {
        return Err(HeaderError::Malformed);
    }
    let header = serde_json::from_str(json).map_err(|_| HeaderError::Malformed)?;
    Ok((Some(header), text))
}

/// A random client-chosen message id: `msg_` and 128 random bits in hex
/// (see [`crate::broker::is_client_message_id`]).
pub fn new_message_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format!("msg_{}", data_encoding::HEXLOWER.encode(&bytes)))
}

impl SealedHeader {
    /// Whether the envelope the broker delivered says what the sender
    /// sealed; `Err` names the first disagreement. `ids_required`: the
    /// recipient's broker takes client ids, so a header without one was
    /// not sealed by a client of this version talking to it (a sender's
    /// broker is the recipient's).
    pub fn check(&self, envelope: &Envelope, ids_required: bool) -> Result<(), &'static str> {
        match &self.id {
            Some(id) if *id != envelope.id => {
                return Err("its sealed id is not the broker's (a copy or a replay)");
            }
            None if ids_required => return Err("it carries no sealed id"),
            _ => {}
        }
        if self.mesh_id != envelope.mesh_id {
            return Err("it was sealed for another mesh");
        }
        if self.session_key != envelope.from.session_key
            || self.member_id != envelope.from.member_id
        {
            return Err("its sealed sender is not the broker's");
        }
        if self.kind != envelope.kind || self.group != envelope.group {
            return Err("its sealed kind or group is not the broker's (relabelled)");
        }
        if self.priority != envelope.priority {
            return Err("its sealed priority is not the broker's");
        }
        if !self.to.contains(&envelope.key.to) {
            return Err("its sealed recipients do not include this key");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{Attestation, KeyBox, SealedBody, Sender};

    fn header() -> SealedHeader {
        SealedHeader {
            id: Some(format!("msg_{}", "ab".repeat(16))),
            mesh_id: "msh_1".into(),
            session_key: "a1".into(),
            member_id: "mem_a".into(),
            kind: MessageKind::Direct,
            group: None,
            priority: Priority::Next,
            to: vec!["b0".into(), "b1".into()],
            sent_at: 1_767_355_200_000,
        }
    }

    fn envelope(header: &SealedHeader) -> Envelope {
        Envelope {
            id: header.id.clone().unwrap_or_default(),
            mesh_id: header.mesh_id.clone(),
            kind: header.kind,
            group: header.group.clone(),
            priority: header.priority,
            sent_at: "2026-01-01T12:00:05Z".into(),
            from: Sender {
                session_key: header.session_key.clone(),
                member_id: header.member_id.clone(),
                member_key: "7f".into(),
                display_name: "Alice".into(),
                attestation: Attestation {
                    expires_at: 1,
                    signature: String::new(),
                    rights: None,
                },
            },
            body: SealedBody {
                nonce: String::new(),
                ciphertext: String::new(),
            },
            key: KeyBox {
                to: "b1".into(),
                nonce: String::new(),
                sealed: String::new(),
            },
        }
    }

    #[test]
    fn a_header_and_its_text_round_trip_even_with_newlines() {
        let text = "line one\nline two\n\u{0}claudemesh-sealed-v1\n";
        let plain = wrap(&header(), text);
        assert!(plain.starts_with("\u{0}claudemesh-sealed-v1\n{"));
        assert_eq!(unwrap(&plain).unwrap(), (Some(header()), text));
    }

    #[test]
    fn an_older_clients_text_opens_as_it_is() {
        for text in [
            "hola",
            "",
            "claudemesh-sealed-v1\n{}\nx",
            "{\"claudemesh\":1}",
        ] {
            assert_eq!(unwrap(text).unwrap(), (None, text));
        }
    }

    #[test]
    fn a_newer_or_broken_format_is_refused_not_shown() {
        assert_eq!(
            unwrap("\u{0}claudemesh-sealed-v2\n{}\nhi"),
            Err(HeaderError::Version("2".into()))
        );
        for bad in [
            "\u{0}claudemesh-sealed-v",
            "\u{0}claudemesh-sealed-v1",
            "\u{0}claudemesh-sealed-v1\n{\"id\":1}\nhi",
            "\u{0}claudemesh-sealed-v1\nnot json\nhi",
            "\u{0}claudemesh-sealed-vx\n{}\nhi",
        ] {
            assert_eq!(unwrap(bad), Err(HeaderError::Malformed), "{bad:?}");
        }
        // Fields added later within version 1 are ignored.
        let mut json = serde_json::to_value(header()).unwrap();
        json["thread"] = "t1".into();
        let plain = format!("\u{0}claudemesh-sealed-v1\n{json}\nhi");
        assert_eq!(unwrap(&plain).unwrap(), (Some(header()), "hi"));
    }

    #[test]
    fn the_envelope_must_say_what_was_sealed() {
        let sealed = header();
        assert_eq!(sealed.check(&envelope(&sealed), true), Ok(()));

        let mut copy = envelope(&sealed);
        copy.id = "msg_copycopycopycopy".into();
        assert!(sealed.check(&copy, true).is_err());

        let mut relabelled = envelope(&sealed);
        relabelled.kind = MessageKind::Broadcast;
        assert!(sealed.check(&relabelled, true).is_err());
        let mut regrouped = envelope(&sealed);
        regrouped.kind = MessageKind::Group;
        regrouped.group = Some("ops".into());
        assert!(sealed.check(&regrouped, true).is_err());
        let mut hurried = envelope(&sealed);
        hurried.priority = Priority::Now;
        assert!(sealed.check(&hurried, true).is_err());
        let mut other_sender = envelope(&sealed);
        other_sender.from.member_id = "mem_b".into();
        assert!(sealed.check(&other_sender, true).is_err());
        let mut other_mesh = envelope(&sealed);
        other_mesh.mesh_id = "msh_2".into();
        assert!(sealed.check(&other_mesh, true).is_err());
        let mut not_for_me = envelope(&sealed);
        not_for_me.key.to = "c0".into();
        assert!(sealed.check(&not_for_me, true).is_err());

        // Without an id: only where the broker picks ids.
        let unnamed = SealedHeader {
            id: None,
            ..header()
        };
        assert!(unnamed.check(&envelope(&sealed), true).is_err());
        assert_eq!(unnamed.check(&envelope(&sealed), false), Ok(()));
    }

    #[test]
    fn new_ids_are_client_ids() {
        let id = new_message_id().unwrap();
        assert!(crate::broker::is_client_message_id(&id), "{id}");
        assert_ne!(id, new_message_id().unwrap());
    }
}
