//! The mesh log's hash chain, its kinds and its cursors: shared by the
//! server, which appends and checks at start-up, and the CLI, which checks
//! a whole log it downloaded (`claudemesh log verify`).
//!
//! Each entry's hash is SHA-256 over a canonical encoding of the mesh id,
//! its position, its time, its kind, its detail (keys sorted) and the hash
//! of the entry before; every field is length-prefixed, so no two different
//! entries encode alike. Editing an entry changes its hash; deleting one
//! leaves a gap in the positions and a `prev_hash` that no longer matches.

use crate::wire::LogEntry;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// The `prev_hash` of a mesh's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Tags the encoding, so that a later change of it cannot collide.
const ENCODING: &str = "claudemesh-mesh-log-v1";

/// What a log entry records. The stored word (`as_str`) is the API's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogKind {
    MemberJoined,
    MemberLeft,
    MemberRemoved,
    InviteCreated,
    InviteAccepted,
    InviteRevoked,
    SessionConnected,
    SessionDisconnected,
    MessageSent,
    // Governance (issue 17): who changed what about the mesh and its members.
    MemberRoleChanged,
    MeshRenamed,
    MeshArchived,
    MeshUnarchived,
    GrantsChanged,
}

impl LogKind {
    pub const ALL: [LogKind; 14] = [
        Self::MemberJoined,
        Self::MemberLeft,
        Self::MemberRemoved,
        Self::InviteCreated,
        Self::InviteAccepted,
        Self::InviteRevoked,
        Self::SessionConnected,
        Self::SessionDisconnected,
        Self::MessageSent,
        Self::MemberRoleChanged,
        Self::MeshRenamed,
        Self::MeshArchived,
        Self::MeshUnarchived,
        Self::GrantsChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemberJoined => "member.joined",
            Self::MemberLeft => "member.left",
            Self::MemberRemoved => "member.removed",
            Self::InviteCreated => "invite.created",
            Self::InviteAccepted => "invite.accepted",
            Self::InviteRevoked => "invite.revoked",
            Self::SessionConnected => "session.connected",
            Self::SessionDisconnected => "session.disconnected",
            Self::MessageSent => "message.sent",
            Self::MemberRoleChanged => "member.role_changed",
            Self::MeshRenamed => "mesh.renamed",
            Self::MeshArchived => "mesh.archived",
            Self::MeshUnarchived => "mesh.unarchived",
            Self::GrantsChanged => "grants.changed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Every kind, comma-separated (for error messages and help).
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for LogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The canonical encoding of an entry's content, hashed with SHA-256.
pub fn entry_hash(
    mesh_id: &str,
    seq: u64,
    at_ms: i64,
    kind: &str,
    detail: &BTreeMap<String, String>,
    prev_hash: &str,
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(ENCODING.as_bytes());
    field(mesh_id.as_bytes());
    field(&seq.to_be_bytes());
    field(&at_ms.to_be_bytes());
    field(kind.as_bytes());
    field(&(detail.len() as u64).to_be_bytes());
    // A BTreeMap iterates in key order: the encoding is canonical.
    for (key, value) in detail {
        field(key.as_bytes());
        field(value.as_bytes());
    }
    field(prev_hash.as_bytes());
    data_encoding::HEXLOWER.encode(&hasher.finalize())
}

/// The first place a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The entry at `seq` is not what was hashed: edited.
    Edited { seq: u64 },
    /// Entries are missing before `seq` (deleted), `expected` being the
    /// position that should have come next.
    Missing { expected: u64, seq: u64 },
    /// The entry at `seq` does not point at the hash of the one before it.
    Relinked { seq: u64 },
    /// The log ends before its recorded head (entries deleted at the end).
    Truncated { last: u64, head: u64 },
    /// The last entry is not the recorded head.
    HeadMismatch { seq: u64 },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Edited { seq } => write!(f, "entry {seq} was edited (its hash does not match)"),
            Self::Missing { expected, seq } if expected + 1 == *seq => {
                write!(f, "entry {expected} is missing (deleted)")
            }
            Self::Missing { expected, seq } => {
                write!(f, "entries {expected} to {} are missing (deleted)", seq - 1)
            }
            Self::Relinked { seq } => write!(
                f,
                "entry {seq} does not follow the entry before it (prev_hash differs)"
            ),
            Self::Truncated { last, head } => write!(
                f,
                "entries {} to {head} are missing (deleted at the end)",
                last + 1
            ),
            Self::HeadMismatch { seq } => {
                write!(f, "entry {seq} is not the recorded head of the log")
            }
        }
    }
}

impl ChainBreak {
    /// The position of the first broken entry.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Edited { seq } | Self::Relinked { seq } | Self::HeadMismatch { seq } => *seq,
            Self::Missing { expected, .. } => *expected,
            Self::Truncated { last, .. } => last + 1,
        }
    }
}

/// Checks entries in order, one page after another, keeping only the last
/// entry seen: a log of any length is verified in constant memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    mesh_id: String,
    next_seq: u64,
    prev_hash: Option<String>,
    checked: u64,
}

impl ChainVerifier {
    /// `first_seq` is the first position retention kept; the first entry's
    /// `prev_hash` is trusted when it is not 1 (its predecessor is gone).
    pub fn new(mesh_id: &str, first_seq: u64) -> Self {
        Self {
            mesh_id: mesh_id.to_owned(),
            next_seq: first_seq.max(1),
            prev_hash: (first_seq <= 1).then(|| GENESIS_HASH.to_owned()),
            checked: 0,
        }
    }

    pub fn push(&mut self, entry: &LogEntry) -> Result<(), ChainBreak> {
        if entry.seq != self.next_seq {
            return Err(if entry.seq > self.next_seq {
                ChainBreak::Missing {
                    expected: self.next_seq,
                    seq: entry.seq,
                }
            } else {
                ChainBreak::Relinked { seq: entry.seq }
            });
        }
        let hash = entry_hash(
            &self.mesh_id,
            entry.seq,
            entry.at_ms,
            &entry.kind,
            &entry.detail,
            &entry.prev_hash,
        );
        if hash != entry.hash {
            return Err(ChainBreak::Edited { seq: entry.seq });
        }
        if let Some(prev) = &self.prev_hash
            && *prev != entry.prev_hash
        {
            return Err(ChainBreak::Relinked { seq: entry.seq });
        }
        self.prev_hash = Some(entry.hash.clone());
        self.next_seq = entry.seq + 1;
        self.checked += 1;
        Ok(())
    }

    /// Checks that the entries seen end at the recorded head.
    pub fn finish(&self, head_seq: u64, head_hash: &str) -> Result<u64, ChainBreak> {
        let last = self.next_seq - 1;
        if last < head_seq {
            return Err(ChainBreak::Truncated {
                last,
                head: head_seq,
            });
        }
        if head_seq > 0 && self.prev_hash.as_deref() != Some(head_hash) {
            return Err(ChainBreak::HeadMismatch { seq: last });
        }
        Ok(self.checked)
    }
}

/// A position in one mesh's log: `<mesh id>.<seq>`, so that a cursor of
/// another mesh is refused rather than silently read.
pub fn cursor(mesh_id: &str, seq: u64) -> String {
    format!("{mesh_id}.{seq}")
}

/// Why a cursor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    Malformed,
    OtherMesh,
}

impl fmt::Display for CursorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "The cursor is not one this server gave out",
            Self::OtherMesh => "The cursor belongs to another mesh's log",
        })
    }
}

/// The position a cursor names, if it is one of this mesh's.
pub fn parse_cursor(mesh_id: &str, text: &str) -> Result<u64, CursorError> {
    let (mesh, seq) = text.rsplit_once('.').ok_or(CursorError::Malformed)?;
    let seq: u64 = seq.parse().map_err(|_| CursorError::Malformed)?;
    if mesh.is_empty() {
        return Err(CursorError::Malformed);
    }
    if mesh != mesh_id {
        return Err(CursorError::OtherMesh);
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(mesh: &str, n: u64) -> Vec<LogEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|seq| {
                let detail: BTreeMap<String, String> =
                    [("member".to_owned(), format!("m{seq}"))].into();
                let at_ms = 1_000 * seq as i64;
                let hash = entry_hash(mesh, seq, at_ms, "member.joined", &detail, &prev);
                let entry = LogEntry {
                    seq,
                    at: String::new(),
                    at_ms,
                    kind: "member.joined".into(),
                    detail,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                    cursor: cursor(mesh, seq),
                };
                prev = hash;
                entry
            })
            .collect()
    }

    fn verify(mesh: &str, entries: &[LogEntry], head: &LogEntry) -> Result<u64, ChainBreak> {
        let mut verifier = ChainVerifier::new(mesh, 1);
        for entry in entries {
            verifier.push(entry)?;
        }
        verifier.finish(head.seq, &head.hash)
    }

    #[test]
    fn an_intact_chain_verifies() {
        let entries = chain("msh_a", 5);
        assert_eq!(verify("msh_a", &entries, &entries[4]), Ok(5));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let mut entries = chain("msh_a", 5);
        entries[2]
            .detail
            .insert("member".into(), "someone else".into());
        assert_eq!(
            verify("msh_a", &entries, &entries[4].clone()),
            Err(ChainBreak::Edited { seq: 3 })
        );
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let mut entries = chain("msh_a", 5);
        let head = entries[4].clone();
        entries.remove(1);
        let broken = verify("msh_a", &entries, &head).unwrap_err();
        assert_eq!(broken.seq(), 2);
        assert_eq!(broken.to_string(), "entry 2 is missing (deleted)");
    }

    #[test]
    fn a_deleted_tail_is_named() {
        let mut entries = chain("msh_a", 5);
        let head = entries[4].clone();
        entries.truncate(3);
        assert_eq!(
            verify("msh_a", &entries, &head),
            Err(ChainBreak::Truncated { last: 3, head: 5 })
        );
    }

    #[test]
    fn a_rehashed_edit_still_breaks_the_link() {
        let mut entries = chain("msh_a", 5);
        let e = &mut entries[1];
        e.detail.insert("member".into(), "forged".into());
        e.hash = entry_hash("msh_a", e.seq, e.at_ms, &e.kind, &e.detail, &e.prev_hash);
        assert_eq!(
            verify("msh_a", &entries, &entries[4].clone()),
            Err(ChainBreak::Relinked { seq: 3 })
        );
    }

    #[test]
    fn another_meshes_entries_do_not_verify() {
        let entries = chain("msh_a", 2);
        assert_eq!(
            verify("msh_b", &entries, &entries[1].clone()),
            Err(ChainBreak::Edited { seq: 1 })
        );
    }

    #[test]
    fn the_encoding_is_pinned() {
        let detail: BTreeMap<String, String> = [("a".to_owned(), "b".to_owned())].into();
        assert_eq!(
            entry_hash("msh_x", 1, 0, "member.joined", &detail, GENESIS_HASH),
            entry_hash(
                "msh_x",
                1,
                0,
                "member.joined",
                &detail.clone(),
                GENESIS_HASH
            )
        );
        // Moving text between fields changes the hash (length prefixes).
        let shifted: BTreeMap<String, String> = [("ab".to_owned(), String::new())].into();
        assert_ne!(
            entry_hash("msh_x", 1, 0, "member.joined", &detail, GENESIS_HASH),
            entry_hash("msh_x", 1, 0, "member.joined", &shifted, GENESIS_HASH)
        );
    }

    #[test]
    fn cursors_belong_to_their_mesh() {
        assert_eq!(parse_cursor("msh_a", &cursor("msh_a", 7)), Ok(7));
        assert_eq!(
            parse_cursor("msh_a", &cursor("msh_b", 7)),
            Err(CursorError::OtherMesh)
        );
        assert_eq!(parse_cursor("msh_a", "7"), Err(CursorError::Malformed));
        assert_eq!(
            parse_cursor("msh_a", "msh_a.x"),
            Err(CursorError::Malformed)
        );
    }

    #[test]
    fn kinds_round_trip() {
        for kind in LogKind::ALL {
            assert_eq!(LogKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(LogKind::parse("member.joinedx"), None);
    }
}
