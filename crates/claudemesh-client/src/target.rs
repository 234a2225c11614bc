//! Who a target names: `*`, `@group`, a session key (or an unambiguous
//! prefix of one, 8 characters at least), a member id (`mem_…`), or a
//! display name. Resolved by the sender, who must seal a key box per
//! recipient key, against the peer list the broker sent.

use claudemesh_api::broker::{MemberKeys, MessageKind, Peer};

/// The recipients of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub kind: MessageKind,
    pub group: Option<String>,
    /// Session keys, or a member's machine keys when none of their sessions
    /// is connected (the message then waits for one).
    pub keys: Vec<String>,
    /// Whether the recipient is offline and the message will wait.
    pub waits: bool,
    /// How many of `keys` are connected sessions (the rest are machine keys).
    pub sessions: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Nothing in the mesh goes by that name.
    Unknown(String),
    /// A name several members share; their member ids.
    Ambiguous(String, Vec<String>),
    /// The group is empty, no one else is connected, or the member has no key.
    NoRecipients(String),
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unknown(target) => write!(
                f,
                "No peer or member called `{target}` in this mesh (see `claudemesh peers`)"
            ),
            Self::Ambiguous(target, ids) => write!(
                f,
                "`{target}` names several members ({}); use a member id",
                ids.join(", ")
            ),
            Self::NoRecipients(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TargetError {}

/// Resolves `target` for a sender whose session key is `own_session`.
pub fn resolve(
    target: &str,
    own_session: &str,
    peers: &[Peer],
    members: &[MemberKeys],
) -> Result<Resolved, TargetError> {
    let target = target.trim();
    let others: Vec<&Peer> = peers
        .iter()
        .filter(|p| p.session_key != own_session)
        .collect();
    if target == "*" {
        let keys: Vec<String> = others.iter().map(|p| p.session_key.clone()).collect();
        if keys.is_empty() {
            return Err(TargetError::NoRecipients(
                "No one else is connected to this mesh".into(),
            ));
        }
        return Ok(Resolved {
            kind: MessageKind::Broadcast,
            group: None,
            sessions: keys.len(),
            keys,
            waits: false,
        });
    }
    if let Some(group) = target.strip_prefix('@') {
        let group = group.to_ascii_lowercase();
        let keys: Vec<String> = others
            .iter()
            .filter(|p| p.groups.contains(&group))
            .map(|p| p.session_key.clone())
            .collect();
        if keys.is_empty() {
            return Err(TargetError::NoRecipients(format!(
                "No one connected is in the group @{group}"
            )));
        }
        return Ok(Resolved {
            kind: MessageKind::Group,
            group: Some(group),
            sessions: keys.len(),
            keys,
            waits: false,
        });
    }
    let lower = target.to_ascii_lowercase();
    if lower.len() >= 8 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        let matching: Vec<&&Peer> = others
            .iter()
            .filter(|p| p.session_key.starts_with(&lower))
            .collect();
        if let [peer] = matching.as_slice() {
            return Ok(direct(vec![peer.session_key.clone()], 1));
        }
        if matching.len() > 1 {
            return Err(TargetError::Ambiguous(
                target.to_owned(),
                matching.iter().map(|p| p.session_key.clone()).collect(),
            ));
        }
    }
    if let Some(member) = members.iter().find(|m| m.member_id == target) {
        return to_member(member, &others);
    }
    // A display name: of a connected session first, else of a member.
    let mut named: Vec<&str> = others
        .iter()
        .filter(|p| p.display_name.eq_ignore_ascii_case(target))
        .map(|p| p.member_id.as_str())
        .collect();
    if named.is_empty() {
        named = members
            .iter()
            .filter(|m| m.display_name.eq_ignore_ascii_case(target))
            .map(|m| m.member_id.as_str())
            .collect();
    }
    named.sort_unstable();
    named.dedup();
    match named.as_slice() {
        [] => Err(TargetError::Unknown(target.to_owned())),
        [member_id] => {
            let member = members.iter().find(|m| m.member_id == *member_id);
            match member {
                Some(member) => to_member(member, &others),
                // Connected but not in our member list (it just joined):
                // its sessions.
                None => {
                    let keys: Vec<String> = others
                        .iter()
                        .filter(|p| p.member_id == *member_id)
                        .map(|p| p.session_key.clone())
                        .collect();
                    let sessions = keys.len();
                    Ok(direct(keys, sessions))
                }
            }
        }
        several => Err(TargetError::Ambiguous(
            target.to_owned(),
            several.iter().map(|s| (*s).to_owned()).collect(),
        )),
    }
}

/// A direct message to `keys`, of which the first `sessions` are
/// connected sessions; with none, the message waits.
fn direct(keys: Vec<String>, sessions: usize) -> Resolved {
    Resolved {
        kind: MessageKind::Direct,
        group: None,
        keys,
        waits: sessions == 0,
        sessions,
    }
}

/// All the member's connected sessions, and their machine keys: a copy
/// for a machine key reaches whichever of their sessions connects first, so
/// the message is not lost if every session it was sealed for goes away
/// unread. Recipients see it once (same id).
fn to_member(member: &MemberKeys, others: &[&Peer]) -> Result<Resolved, TargetError> {
    let mut sessions: Vec<String> = others
        .iter()
        .filter(|p| p.member_id == member.member_id)
        .map(|p| p.session_key.clone())
        .collect();
    if !sessions.is_empty() {
        let connected = sessions.len();
        for key in &member.keys {
            if !sessions.contains(key) {
                sessions.push(key.clone());
            }
        }
        return Ok(direct(sessions, connected));
    }
    if member.keys.is_empty() {
        return Err(TargetError::NoRecipients(format!(
            "{} has no machine key registered yet, so nothing can be sealed for them",
            member.display_name
        )));
    }
    Ok(direct(member.keys.clone(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use claudemesh_api::broker::PeerStatus;
    use claudemesh_api::wire::MeshRole;

    fn peer(key: char, member: &str, name: &str, groups: &[&str]) -> Peer {
        Peer {
            session_key: key.to_string().repeat(64),
            member_id: member.into(),
            member_key: "f".repeat(64),
            display_name: name.into(),
            role: String::new(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            status: PeerStatus::Idle,
            summary: String::new(),
            connected_at: String::new(),
        }
    }

    fn member(id: &str, name: &str, key: char) -> MemberKeys {
        MemberKeys {
            member_id: id.into(),
            display_name: name.into(),
            role: MeshRole::Member,
            keys: vec![key.to_string().repeat(64)],
            permits_dm: true,
            may_approve: false,
        }
    }

    fn mesh() -> (Vec<Peer>, Vec<MemberKeys>) {
        (
            vec![
                peer('a', "mem_me", "Me", &["ops"]),
                peer('b', "mem_bob", "Bob", &["ops"]),
                peer('c', "mem_bob", "Bob", &[]),
                peer('d', "mem_carol", "Carol", &["dev"]),
            ],
            vec![
                member("mem_me", "Me", '1'),
                member("mem_bob", "Bob", '2'),
                member("mem_carol", "Carol", '3'),
                member("mem_dan", "Dan", '4'),
                member("mem_dan2", "Dan", '5'),
                member("mem_erin", "Erin", '6'),
            ],
        )
    }

    #[test]
    fn broadcast_and_groups_skip_the_sender() {
        let (peers, members) = mesh();
        let me = "a".repeat(64);
        let all = resolve("*", &me, &peers, &members).unwrap();
        assert_eq!(all.kind, MessageKind::Broadcast);
        assert_eq!(all.keys.len(), 3);
        let ops = resolve("@ops", &me, &peers, &members).unwrap();
        assert_eq!(ops.keys, vec!["b".repeat(64)]);
        assert_eq!(ops.group.as_deref(), Some("ops"));
        assert!(matches!(
            resolve("@nobody", &me, &peers, &members),
            Err(TargetError::NoRecipients(_))
        ));
    }

    #[test]
    fn a_name_reaches_every_session_of_that_member() {
        let (peers, members) = mesh();
        let me = "a".repeat(64);
        let bob = resolve("bob", &me, &peers, &members).unwrap();
        assert_eq!(
            bob.keys,
            vec!["b".repeat(64), "c".repeat(64), "2".repeat(64)]
        );
        assert!(!bob.waits);
        let by_id = resolve("mem_carol", &me, &peers, &members).unwrap();
        assert_eq!(by_id.keys, vec!["d".repeat(64), "3".repeat(64)]);
        let by_key = resolve(&"c".repeat(10), &me, &peers, &members).unwrap();
        assert_eq!(by_key.keys, vec!["c".repeat(64)]);
    }

    #[test]
    fn an_offline_member_gets_their_machine_keys_and_waits() {
        let (peers, members) = mesh();
        let erin = resolve("Erin", &"a".repeat(64), &peers, &members).unwrap();
        assert_eq!(erin.keys, vec!["6".repeat(64)]);
        assert!(erin.waits);
    }

    #[test]
    fn unknown_and_ambiguous_names_are_errors() {
        let (peers, members) = mesh();
        let me = "a".repeat(64);
        assert_eq!(
            resolve("zoe", &me, &peers, &members),
            Err(TargetError::Unknown("zoe".into()))
        );
        assert!(matches!(
            resolve("Dan", &me, &peers, &members),
            Err(TargetError::Ambiguous(_, ids)) if ids.len() == 2
        ));
    }
}
