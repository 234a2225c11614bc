//! `claudemesh peers [--mesh S]`: connect to the mesh's broker for a moment
//! as a session of this machine's member key, and print the other sessions
//! connected, then the members with none connected (offline).

use crate::base::display::{columns, role_name, short_id};
use crate::base::exit::CliResult;
use crate::base::when;
use crate::cli::PeersArgs;
use crate::context::Context;
use crate::session::{self, MeshSession, SessionKind};
use claudemesh_api::broker::{MemberKeys, Peer};
use serde::Serialize;
use time::OffsetDateTime;

/// Characters of a session key shown: the shortest prefix `send` takes.
const SESSION_PREFIX: usize = 8;

#[derive(Serialize)]
struct PeersJson<'a> {
    mesh: &'a str,
    /// Your member id in the mesh.
    member_id: &'a str,
    peers: Vec<PeerJson<'a>>,
    offline: Vec<&'a MemberKeys>,
}

#[derive(Serialize)]
struct PeerJson<'a> {
    #[serde(flatten)]
    peer: &'a Peer,
    /// The member's name in the mesh (the session may go by another).
    member_name: Option<&'a str>,
    /// One of your own sessions.
    you: bool,
}

pub fn run(args: &PeersArgs, ctx: &Context) -> CliResult<()> {
    let (account, mesh) = session::account_and_mesh(ctx, args.mesh.as_deref(), "peers")?;
    let out = &ctx.out;
    let (peers, members, me) = session::runtime()?.block_on(async {
        let session = MeshSession::connect(&account.server, &mesh, SessionKind::OneOff).await?;
        let listed = session.client.peers().await;
        let me = session.client.welcome().member_id.clone();
        let listed = listed.map_err(|err| session.error(&err));
        session.close(out).await;
        listed.map(|(peers, members)| (peers, members, me))
    })?;

    let offline = offline(&peers, &members, &me);
    if out.json {
        out.json(&PeersJson {
            mesh: &mesh.slug,
            member_id: &me,
            peers: peers
                .iter()
                .map(|peer| PeerJson {
                    peer,
                    member_name: member_name(&members, &peer.member_id),
                    you: peer.member_id == me,
                })
                .collect(),
            offline,
        });
        return Ok(());
    }
    let mut text = String::new();
    if peers.is_empty() {
        out.line(format!("No one else is connected to {}.", mesh.slug));
    } else {
        text.push_str(&peers_table(&peers, &members, &me, when::now()));
    }
    if !offline.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&offline_table(&offline));
    }
    out.data(text);
    Ok(())
}

/// The members with no session connected, other than you.
fn offline<'a>(peers: &[Peer], members: &'a [MemberKeys], me: &str) -> Vec<&'a MemberKeys> {
    members
        .iter()
        .filter(|m| m.member_id != me && !peers.iter().any(|p| p.member_id == m.member_id))
        .collect()
}

fn member_name<'a>(members: &'a [MemberKeys], member_id: &str) -> Option<&'a str> {
    members
        .iter()
        .find(|m| m.member_id == member_id)
        .map(|m| m.display_name.as_str())
}

/// The connected sessions, one a line.
fn peers_table(peers: &[Peer], members: &[MemberKeys], me: &str, now: OffsetDateTime) -> String {
    let or_dash = |text: String| {
        if text.is_empty() {
            "-".to_owned()
        } else {
            text
        }
    };
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|peer| {
            let member = member_name(members, &peer.member_id)
                .map_or_else(|| short_id(&peer.member_id), str::to_owned);
            let member = if peer.member_id == me {
                format!("{member} (you)")
            } else {
                member
            };
            let groups: Vec<String> = peer.groups.iter().map(|g| format!("@{g}")).collect();
            let connected = when::parse(&peer.connected_at)
                .map_or_else(|| peer.connected_at.clone(), |at| when::relative(at, now));
            vec![
                peer.session_key.chars().take(SESSION_PREFIX).collect(),
                peer.display_name.clone(),
                member,
                or_dash(peer.role.clone()),
                or_dash(groups.join(" ")),
                peer.status.as_str().to_owned(),
                connected,
                session::printable(&peer.summary).replace('\n', " "),
            ]
        })
        .collect();
    columns(
        &[
            "SESSION",
            "NAME",
            "MEMBER",
            "ROLE",
            "GROUPS",
            "STATUS",
            "CONNECTED",
            "SUMMARY",
        ],
        &rows,
    )
}

/// The members with no session connected.
fn offline_table(offline: &[&MemberKeys]) -> String {
    let rows: Vec<Vec<String>> = offline
        .iter()
        .map(|m| {
            vec![
                m.display_name.clone(),
                m.member_id.clone(),
                role_name(m.role).to_owned(),
                m.keys.len().to_string(),
            ]
        })
        .collect();
    columns(&["OFFLINE", "MEMBER ID", "ROLE", "MACHINES"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use claudemesh_api::broker::PeerStatus;
    use claudemesh_api::wire::MeshRole;

    fn peer(key: char, member: &str, name: &str, groups: &[&str], summary: &str) -> Peer {
        Peer {
            session_key: key.to_string().repeat(64),
            member_id: member.into(),
            member_key: "f".repeat(64),
            display_name: name.into(),
            role: "cli".into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            status: PeerStatus::Working,
            summary: summary.into(),
            connected_at: "2026-01-10T11:58:00Z".into(),
        }
    }

    fn member(id: &str, name: &str, keys: usize) -> MemberKeys {
        MemberKeys {
            member_id: id.into(),
            display_name: name.into(),
            role: MeshRole::Member,
            keys: vec!["1".repeat(64); keys],
            permits_dm: true,
            may_approve: false,
        }
    }

    #[test]
    fn sessions_then_offline_members_line_up() {
        let peers = [
            peer('a', "mem_alice", "Alice", &["ops", "dev"], "fixing CI"),
            peer('b', "mem_me", "Me (desktop)", &[], ""),
        ];
        let members = [
            member("mem_me", "Me", 1),
            member("mem_alice", "Alice", 1),
            member("mem_carol", "Carol", 2),
        ];
        let now = when::parse("2026-01-10T12:00:00Z").unwrap();
        assert_eq!(
            peers_table(&peers, &members, "mem_me", now),
            "\
SESSION   NAME          MEMBER    ROLE  GROUPS     STATUS   CONNECTED      SUMMARY
aaaaaaaa  Alice         Alice     cli   @ops @dev  working  2 minutes ago  fixing CI
bbbbbbbb  Me (desktop)  Me (you)  cli   -          working  2 minutes ago
"
        );
        let offline = offline(&peers, &members, "mem_me");
        assert_eq!(
            offline_table(&offline),
            "\
OFFLINE  MEMBER ID  ROLE    MACHINES
Carol    mem_carol  member  2
"
        );
    }

    #[test]
    fn you_are_never_listed_offline() {
        let members = [member("mem_me", "Me", 1), member("mem_bob", "Bob", 1)];
        let offline = offline(&[], &members, "mem_me");
        let ids: Vec<&str> = offline.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, ["mem_bob"]);
    }
}
