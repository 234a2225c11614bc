//! `claudemesh list`: the account's meshes on the server merged with those
//! joined on this machine (`config.json`), each marked joined here, not
//! joined here, or local only. Read-only: it never changes `config.json`
//! (that is `sync`'s job).

use crate::base::display::{columns, role_name};
use crate::base::exit::CliResult;
use crate::cli::ListArgs;
use crate::context::Context;
use crate::stores::config_store::JoinedMesh;
use claudemesh_api::wire::{MeshRole, MeshSummary};
use serde::Serialize;

/// Where a mesh stands on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// On the server, and this machine has a key for it.
    JoinedHere,
    /// On the server; this machine has not joined (`claudemesh sync`).
    NotJoinedHere,
    /// Recorded here, but the server no longer lists it for this account.
    LocalOnly,
}

impl Standing {
    fn describe(self) -> &'static str {
        match self {
            Self::JoinedHere => "joined here",
            Self::NotJoinedHere => "not joined here",
            Self::LocalOnly => "local only",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Listed {
    pub slug: String,
    pub name: String,
    pub id: String,
    pub role: MeshRole,
    /// Unknown (`null`) for a mesh that is only recorded here.
    pub members: Option<u64>,
    pub member_id: String,
    pub display_name: String,
    pub here: Standing,
    /// This machine's public key for the mesh, when it has one.
    pub public_key: Option<String>,
    /// Whether an admin archived the mesh (no sessions until unarchived).
    pub archived: bool,
}

#[derive(Serialize)]
struct ListJson<'a> {
    server: &'a str,
    meshes: &'a [Listed],
}

pub fn run(_args: &ListArgs, ctx: &Context) -> CliResult<()> {
    let account = ctx.account()?;
    let config = ctx.config().load(&ctx.out)?;
    let remote = account
        .api
        .meshes()
        .map_err(|err| err.into_cli(&account.server))?
        .meshes;
    let local: Vec<&JoinedMesh> = config.meshes(&account.server, &account.user.id).collect();
    let listed = merge(&remote, &local);
    let out = &ctx.out;
    if out.json {
        out.json(&ListJson {
            server: &account.server,
            meshes: &listed,
        });
        return Ok(());
    }
    if listed.is_empty() {
        out.line("No meshes yet.");
        out.line(
            "Create one with `claudemesh create \"Name\"`, or join one with `claudemesh join <invite link>`.",
        );
        return Ok(());
    }
    out.data(table(&listed));
    let count = |here| listed.iter().filter(|m| m.here == here).count();
    if count(Standing::NotJoinedHere) > 0 {
        out.line("Run `claudemesh sync` to join the others on this machine.");
    }
    if count(Standing::LocalOnly) > 0 {
        out.line(
            "Local only: you are no longer a member on the server; `claudemesh sync --prune` removes them from this machine.",
        );
    }
    Ok(())
}

/// The server's meshes in its order (oldest first), then those only
/// recorded here. A record matches by mesh id, not slug: a slug freed by a
/// deleted mesh may be reused by another.
pub fn merge(remote: &[MeshSummary], local: &[&JoinedMesh]) -> Vec<Listed> {
    let mut listed: Vec<Listed> = remote
        .iter()
        .map(|mesh| {
            let here = local.iter().find(|l| l.mesh_id == mesh.id);
            Listed {
                slug: mesh.slug.clone(),
                name: mesh.name.clone(),
                id: mesh.id.clone(),
                role: mesh.role,
                members: Some(mesh.member_count),
                member_id: mesh.member_id.clone(),
                display_name: mesh.display_name.clone(),
                here: if here.is_some() {
                    Standing::JoinedHere
                } else {
                    Standing::NotJoinedHere
                },
                public_key: here.map(|l| l.public_key.clone()),
                archived: mesh.archived_at.is_some(),
            }
        })
        .collect();
    listed.extend(
        local
            .iter()
            .filter(|l| !remote.iter().any(|mesh| mesh.id == l.mesh_id))
            .map(|l| Listed {
                slug: l.slug.clone(),
                name: l.name.clone(),
                id: l.mesh_id.clone(),
                role: l.role,
                members: None,
                member_id: l.member_id.clone(),
                display_name: l.display_name.clone(),
                here: Standing::LocalOnly,
                public_key: Some(l.public_key.clone()),
                archived: false,
            }),
    );
    listed
}

/// The human table, columns padded to fit.
pub fn table(listed: &[Listed]) -> String {
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|m| {
            vec![
                m.slug.clone(),
                m.name.clone(),
                role_name(m.role).to_owned(),
                m.members.map_or_else(|| "-".to_owned(), |n| n.to_string()),
                if m.archived {
                    format!("{} (archived)", m.here.describe())
                } else {
                    m.here.describe().to_owned()
                },
            ]
        })
        .collect();
    columns(
        &["MESH", "NAME", "ROLE", "MEMBERS", "ON THIS MACHINE"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::keys::KeyPair;

    fn summary(id: &str, slug: &str, members: u64) -> MeshSummary {
        MeshSummary {
            id: id.into(),
            slug: slug.into(),
            name: format!("{slug} mesh"),
            role: MeshRole::Member,
            member_id: format!("mem_{id}"),
            display_name: "Alice".into(),
            member_count: members,
            created_at: "2026-01-01T00:00:00Z".into(),
            archived_at: None,
        }
    }

    fn joined(id: &str, slug: &str) -> JoinedMesh {
        JoinedMesh::new(
            &summary(id, slug, 1),
            "usr_a",
            &KeyPair::generate().unwrap(),
            "2026-01-01T00:00:00Z",
        )
    }

    #[test]
    fn meshes_are_joined_here_not_joined_here_or_local_only() {
        let remote = [summary("msh_1", "dev", 5), summary("msh_2", "ops", 2)];
        let here = joined("msh_1", "dev");
        let gone = joined("msh_9", "old");
        // Same slug as a live mesh, but another (deleted) mesh.
        let reused = joined("msh_8", "ops");
        let listed = merge(&remote, &[&here, &gone, &reused]);
        let got: Vec<_> = listed
            .iter()
            .map(|m| (m.slug.as_str(), m.here, m.members))
            .collect();
        assert_eq!(
            got,
            [
                ("dev", Standing::JoinedHere, Some(5)),
                ("ops", Standing::NotJoinedHere, Some(2)),
                ("old", Standing::LocalOnly, None),
                ("ops", Standing::LocalOnly, None),
            ]
        );
        assert_eq!(
            listed[0].public_key.as_deref(),
            Some(here.public_key.as_str())
        );
        assert_eq!(listed[1].public_key, None);
        let json = serde_json::to_value(&listed[0]).unwrap();
        assert_eq!(json["here"], "joined_here");
        assert!(json.get("secret_key").is_none());
    }

    #[test]
    fn the_table_lines_up() {
        let remote = [summary("msh_1", "platform-team", 12)];
        let gone = joined("msh_9", "old");
        let text = table(&merge(&remote, &[&gone]));
        assert_eq!(
            text,
            "\
MESH           NAME                ROLE    MEMBERS  ON THIS MACHINE
platform-team  platform-team mesh  member  12       not joined here
old            old mesh            member  -        local only
"
        );
    }
}
