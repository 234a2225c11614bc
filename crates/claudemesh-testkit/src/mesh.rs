//! A mesh with members, made over the JSON API as people make one: the
//! first creates it with a machine key, each other accepts an invite of the
//! first's with a machine key of their own. Each member comes with the
//! account, that key (secret half included, for broker sessions and for a
//! CLI's config), the member id, and a PAT when asked for one.

use crate::user::{TestUser, send};
use claudemesh_api::e2e::KeyPair;
use claudemesh_api::wire::{AcceptedInvite, MeshRole, MeshSummary};
use claudemesh_client::{Client, ClientError, Presence, SessionIdentity};
use claudemesh_server::clock::{Clock, ManualClock};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// How [`TestServer::mesh_with`](crate::TestServer::mesh_with) makes the
/// mesh beyond the defaults.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    /// The mesh's name, `Team` unless said; its slug is made from it
    /// (`Team` → `team`).
    pub name: String,
    /// Members (by name) who join as admins. The first member, who creates
    /// the mesh, is always one; everyone else joins as a member.
    pub admins: Vec<String>,
}

impl Default for MeshOptions {
    fn default() -> Self {
        Self::named("Team")
    }
}

impl MeshOptions {
    /// A mesh called `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            admins: Vec::new(),
        }
    }

    /// `name` joins as an admin.
    #[must_use]
    pub fn admin(mut self, name: &str) -> Self {
        self.admins.push(name.to_owned());
        self
    }
}

/// One member of a [`Mesh`].
pub struct Member {
    /// The member's name in the mesh: their account's.
    pub name: String,
    pub user: TestUser,
    /// The machine key registered for the membership.
    pub key: KeyPair,
    pub member_id: String,
    pub role: MeshRole,
    token: OnceCell<String>,
}

impl Member {
    /// A PAT of the account, what a CLI logs in with: made the first time
    /// it is asked for (the server mails the account about each new one).
    pub async fn token(&self) -> &str {
        self.token
            .get_or_init(|| async { self.user.create_pat("test", None).await.token })
            .await
    }

    /// A copy of the machine key (a key pair is not `Clone`).
    pub fn key_pair(&self) -> KeyPair {
        KeyPair::from_secret_hex(&self.key.secret_hex()).expect("the member's key")
    }
}

/// A mesh and its members, in the order they joined.
pub struct Mesh {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: String,
    pub members: Vec<Member>,
    base_url: String,
    clock: Arc<ManualClock>,
}

impl Mesh {
    /// `creator` creates the mesh, with a machine key of their own.
    pub(crate) async fn create(
        base_url: &str,
        clock: Arc<ManualClock>,
        creator: TestUser,
        name: &str,
    ) -> Self {
        let key = KeyPair::generate().expect("a key pair");
        let (status, body) = send(
            creator
                .browser
                .post(creator.url("/api/my/meshes"))
                .json(&json!({ "name": name, "public_key": key.public_hex() })),
        )
        .await;
        assert_eq!(status, 201, "create the mesh {name}: {body}");
        let mesh: MeshSummary = serde_json::from_value(body).expect("the created mesh");
        Self {
            id: mesh.id,
            slug: mesh.slug,
            name: mesh.name,
            created_at: mesh.created_at,
            members: vec![Member {
                name: mesh.display_name,
                user: creator,
                key,
                member_id: mesh.member_id,
                role: mesh.role,
                token: OnceCell::new(),
            }],
            base_url: base_url.to_owned(),
            clock,
        }
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no member called {name} in {}", self.slug))
    }

    /// The creator, who makes the invites.
    pub fn admin(&self) -> &Member {
        &self.members[0]
    }

    /// An invite made by the creator over the API (`body` as the API takes
    /// it: `{}`, `{ "role": "admin" }`, …): `{ id, code, url, … }`.
    pub async fn invite(&self, body: Value) -> Value {
        let admin = &self.admin().user;
        let path = format!("/api/my/meshes/{}/invites", self.slug);
        let (status, invite) = send(admin.browser.post(admin.url(&path)).json(&body)).await;
        assert_eq!(status, 201, "invite to {}: {invite}", self.slug);
        invite
    }

    /// `user` joins with a fresh invite of `role` from the creator and a
    /// new machine key: a new member, or the same person again after
    /// leaving or being removed (their entry then follows the new
    /// membership).
    pub async fn join(&mut self, user: &TestUser, role: MeshRole) -> &Member {
        let invite = self.invite(json!({ "role": role })).await;
        let code = invite["code"].as_str().expect("an invite code");
        let key = KeyPair::generate().expect("a key pair");
        let (status, body) = send(
            user.browser
                .post(user.url(&format!("/api/invites/{code}/accept")))
                .json(&json!({ "public_key": key.public_hex() })),
        )
        .await;
        assert_eq!(status, 200, "join {}: {body}", self.slug);
        let joined: AcceptedInvite = serde_json::from_value(body).expect("the accepted invite");
        let mesh = joined.mesh;
        let at = self
            .members
            .iter()
            .position(|m| m.user.user.id == user.user.id);
        let member = Member {
            name: mesh.display_name,
            user: user.clone(),
            key,
            member_id: mesh.member_id,
            role: mesh.role,
            token: at.map_or_else(OnceCell::new, |at| self.members[at].token.clone()),
        };
        let at = match at {
            Some(at) => {
                self.members[at] = member;
                at
            }
            None => {
                self.members.push(member);
                self.members.len() - 1
            }
        };
        &self.members[at]
    }

    /// The creator removes the member called `name`.
    pub async fn remove(&self, name: &str) {
        let member_id = &self.member(name).member_id;
        let (status, body) = self.admin().user.remove_member(&self.slug, member_id).await;
        assert_eq!(status, 200, "remove {name} from {}: {body}", self.slug);
    }

    // ------------------------------------------------ broker sessions

    /// A session of member `who` (by index), attested by their machine key
    /// for an hour of the server's clock.
    pub fn identity(&self, who: usize) -> SessionIdentity {
        self.identity_until(who, self.clock.now_ms() + 3_600_000)
    }

    /// A session of member `who`, attested until `expires_at` (ms since the
    /// epoch).
    pub fn identity_until(&self, who: usize, expires_at: i64) -> SessionIdentity {
        SessionIdentity::new(&self.id, self.members[who].key_pair(), expires_at)
            .expect("a session identity")
    }

    /// Member `who` under their own name, in `groups`.
    pub fn presence(&self, who: usize, groups: &[&str]) -> Presence {
        Presence {
            display_name: self.members[who].name.clone(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Presence::default()
        }
    }

    /// A broker session of member `who`.
    pub async fn connect(&self, who: usize) -> Client {
        self.connect_in(who, &[]).await
    }

    /// A broker session of member `who`, in `groups`.
    pub async fn connect_in(&self, who: usize, groups: &[&str]) -> Client {
        self.session(self.identity(who), self.presence(who, groups))
            .await
            .expect("the session connects")
    }

    /// A broker session as `identity` says, showing `presence`.
    pub async fn session(
        &self,
        identity: SessionIdentity,
        presence: Presence,
    ) -> Result<Client, ClientError> {
        Client::connect(&self.base_url, identity, presence).await
    }
}

/// The member id of `name` in a mesh's detail (`GET /api/my/meshes/{slug}`).
pub fn member_id(detail: &Value, name: &str) -> String {
    let members = detail["members"]
        .as_array()
        .unwrap_or_else(|| panic!("no members in {detail}"));
    let member = members.iter().find(|m| m["display_name"] == name);
    member.expect("a member by that name")["id"]
        .as_str()
        .expect("a member id")
        .to_owned()
}
