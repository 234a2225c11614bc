//! What each member allows each other member (`mesh_grants`, and each
//! member's default in `mesh_members.default_caps`): the table's SQL, and
//! [`MeshGrants`], the in-memory form the broker checks on every frame.
//!
//! No row for a pair means the granting member's default; a NULL default
//! means every capability. This file imports no domain (the broker and the
//! grant routes both use it).

use claudemesh_api::wire::Capability;
use std::collections::HashMap;

/// A set of capabilities as bits: what the broker checks per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Caps(u8);

impl Caps {
    /// What a member allows a peer they have said nothing about, and what
    /// a NULL default means: every capability but `approve`, which is only
    /// ever granted to one member at a time.
    pub const ALL: Caps = Caps(0b0111);
    pub const NONE: Caps = Caps(0);
    /// Every bit a stored set may carry.
    const KNOWN: u8 = 0b1111;

    fn bit(cap: Capability) -> u8 {
        match cap {
            Capability::Dm => 1,
            Capability::Group => 2,
            Capability::Presence => 4,
            Capability::Approve => 8,
        }
    }

    pub fn of(caps: &[Capability]) -> Caps {
        Caps(caps.iter().fold(0, |bits, cap| bits | Self::bit(*cap)))
    }

    pub fn has(self, cap: Capability) -> bool {
        self.0 & Self::bit(cap) != 0
    }

    pub fn with(self, caps: &[Capability]) -> Caps {
        Caps(self.0 | Self::of(caps).0)
    }

    pub fn without(self, caps: &[Capability]) -> Caps {
        Caps(self.0 & !Self::of(caps).0)
    }

    pub fn list(self) -> Vec<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|cap| self.has(*cap))
            .collect()
    }

    /// How the set is stored: `dm,group,presence` (empty: none).
    pub fn text(self) -> String {
        Capability::join(&self.list())
    }

    /// A stored set; an unknown word is an error, never skipped.
    pub fn parse(text: &str) -> Result<Caps, sqlx::Error> {
        Capability::split(text)
            .map(|caps| Caps::of(&caps))
            .map_err(|err| sqlx::Error::Decode(err.into()))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn from_bits(bits: u8) -> Caps {
        Caps(bits & Self::KNOWN)
    }
}

/// The grants of one mesh, as the broker holds them.
#[derive(Debug, Clone, Default)]
pub struct MeshGrants {
    /// Members whose default is not every capability.
    defaults: HashMap<String, Caps>,
    /// `(member, peer)` → what `member` allows `peer`.
    pairs: HashMap<(String, String), Caps>,
}

impl MeshGrants {
    /// What `member` allows `peer`.
    pub fn allowed(&self, member: &str, peer: &str) -> Caps {
        if self.pairs.is_empty() && self.defaults.is_empty() {
            return Caps::ALL;
        }
        self.pairs
            .get(&(member.to_owned(), peer.to_owned()))
            .copied()
            .unwrap_or_else(|| self.defaults.get(member).copied().unwrap_or(Caps::ALL))
    }

    /// Whether `member` allows `peer` to do `cap` to them.
    pub fn allows(&self, member: &str, peer: &str, cap: Capability) -> bool {
        self.allowed(member, peer).has(cap)
    }

    /// A change heard from the grant routes (here or on another instance).
    pub fn set(&mut self, member: &str, peer: &str, caps: Caps) {
        self.pairs
            .insert((member.to_owned(), peer.to_owned()), caps);
    }
}

/// The grants of a mesh, read from the tables.
pub async fn load(pool: &sqlx::AnyPool, mesh_id: &str) -> Result<MeshGrants, sqlx::Error> {
    let mut grants = MeshGrants::default();
    let defaults: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, default_caps FROM mesh_members \
         WHERE mesh_id = $1 AND revoked_at IS NULL AND default_caps IS NOT NULL",
    )
    .bind(mesh_id)
    .fetch_all(pool)
    .await?;
    for (member, text) in defaults {
        let caps = Caps::parse(&text)?;
        if caps != Caps::ALL {
            grants.defaults.insert(member, caps);
        }
    }
    let pairs: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT member_id, peer_member_id, caps FROM mesh_grants WHERE mesh_id = $1",
    )
    .bind(mesh_id)
    .fetch_all(pool)
    .await?;
    for (member, peer, text) in pairs {
        grants.pairs.insert((member, peer), Caps::parse(&text)?);
    }
    Ok(grants)
}

/// What `member` allows `peer`, read inside a change's transaction.
pub async fn between(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    member: &str,
    peer: &str,
) -> Result<Caps, sqlx::Error> {
    let pair: Option<(String,)> =
        sqlx::query_as("SELECT caps FROM mesh_grants WHERE member_id = $1 AND peer_member_id = $2")
            .bind(member)
            .bind(peer)
            .fetch_optional(&mut **tx)
            .await?;
    if let Some((text,)) = pair {
        return Caps::parse(&text);
    }
    let (default,): (Option<String>,) =
        sqlx::query_as("SELECT default_caps FROM mesh_members WHERE id = $1")
            .bind(member)
            .fetch_one(&mut **tx)
            .await?;
    default.map_or(Ok(Caps::ALL), |text| Caps::parse(&text))
}

/// Records what `member` allows `peer`, inside the change's transaction.
pub async fn set(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mesh_id: &str,
    member: &str,
    peer: &str,
    caps: Caps,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mesh_grants (mesh_id, member_id, peer_member_id, caps, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (member_id, peer_member_id) DO UPDATE SET caps = $4, updated_at = $5",
    )
    .bind(mesh_id)
    .bind(member)
    .bind(peer)
    .bind(caps.text())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The mesh's default for new members.
pub async fn mesh_default(pool: &sqlx::AnyPool, mesh_id: &str) -> Result<Caps, sqlx::Error> {
    let (text,): (String,) = sqlx::query_as("SELECT default_caps FROM meshes WHERE id = $1")
        .bind(mesh_id)
        .fetch_one(pool)
        .await?;
    Caps::parse(&text)
}

/// Sets the mesh's default for members who join from now on.
pub async fn set_mesh_default(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mesh_id: &str,
    caps: Caps,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE meshes SET default_caps = $1 WHERE id = $2")
        .bind(caps.text())
        .bind(mesh_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_beats_the_default_and_no_row_means_everything() {
        let mut grants = MeshGrants::default();
        assert!(grants.allows("a", "b", Capability::Dm));
        grants
            .defaults
            .insert("a".into(), Caps::of(&[Capability::Group]));
        assert!(!grants.allows("a", "b", Capability::Dm));
        assert!(grants.allows("a", "b", Capability::Group));
        grants.set("a", "b", Caps::ALL.without(&[Capability::Presence]));
        assert!(grants.allows("a", "b", Capability::Dm));
        assert!(!grants.allows("a", "b", Capability::Presence));
        assert!(grants.allows("b", "a", Capability::Presence));
    }

    #[test]
    fn sets_round_trip_through_their_text() {
        for bits in 0..8 {
            let caps = Caps::from_bits(bits);
            assert_eq!(Caps::parse(&caps.text()).unwrap(), caps);
        }
        assert!(Caps::parse("dm,teleport").is_err());
        assert_eq!(Caps::parse("").unwrap(), Caps::NONE);
    }
}
