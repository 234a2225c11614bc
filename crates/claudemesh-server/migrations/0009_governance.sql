-- Governance (issue 17): archived meshes keep their slug (only a deleted
-- mesh frees it), what each member allows each other member, and when each
-- member was last connected.

DROP INDEX meshes_live_slug_idx;
CREATE UNIQUE INDEX meshes_slug_idx ON meshes(slug);

-- What a new member allows the others until they say otherwise: a comma-
-- separated list of capabilities (`dm`, `group`, `presence`). Set by admins.
ALTER TABLE meshes ADD COLUMN default_caps TEXT NOT NULL DEFAULT 'dm,group,presence';
-- The member's own default towards peers with no row in mesh_grants, taken
-- from the mesh's default when they joined (NULL: every capability).
ALTER TABLE mesh_members ADD COLUMN default_caps TEXT;

-- What `member_id` allows `peer_member_id` to do to them. No row: the
-- member's default.
CREATE TABLE mesh_grants (
    mesh_id TEXT NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES mesh_members(id) ON DELETE CASCADE,
    peer_member_id TEXT NOT NULL REFERENCES mesh_members(id) ON DELETE CASCADE,
    caps TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, peer_member_id)
);
CREATE INDEX mesh_grants_mesh_idx ON mesh_grants(mesh_id);

-- When a member's last session ended, or the latest one connected (the
-- broker's to write).
CREATE TABLE broker_last_seen (
    member_id TEXT PRIMARY KEY REFERENCES mesh_members(id) ON DELETE CASCADE,
    seen_at BIGINT NOT NULL
);

-- The rights a sender's session was limited to (`launch --caps`), signed in
-- its attestation: recipients check the signature over them. NULL: the
-- attestation carried none (all of its member's rights).
ALTER TABLE broker_messages ADD COLUMN attestation_rights TEXT;
