-- Meshes, their members (with one ed25519 public key per machine), invites.

CREATE TABLE meshes (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    archived_at BIGINT
);
-- Slugs are unique among live meshes; an archived mesh frees its slug.
CREATE UNIQUE INDEX meshes_live_slug_idx ON meshes(slug) WHERE archived_at IS NULL;

CREATE TABLE mesh_members (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    joined_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX mesh_members_live_idx ON mesh_members(mesh_id, user_id) WHERE revoked_at IS NULL;
CREATE INDEX mesh_members_user_idx ON mesh_members(user_id);

-- The secret halves never leave the members' machines.
CREATE TABLE mesh_member_keys (
    member_id TEXT NOT NULL REFERENCES mesh_members(id) ON DELETE CASCADE,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, public_key)
);

CREATE TABLE mesh_invites (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    code TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    email TEXT,
    max_uses BIGINT NOT NULL,
    uses BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX mesh_invites_mesh_idx ON mesh_invites(mesh_id, created_at);
