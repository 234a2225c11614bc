-- The broker: live sessions (presence, shared by every instance), messages
-- (ciphertext only: the server never holds a readable message) and one
-- delivery row per recipient key.

-- Instances beat here; sessions of an instance that stops beating are gone.
CREATE TABLE broker_instances (
    id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);

CREATE TABLE broker_sessions (
    session_key TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES mesh_members(id) ON DELETE CASCADE,
    member_key TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    -- JSON array of group names.
    groups TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('idle', 'working', 'dnd')),
    summary TEXT NOT NULL,
    connected_at BIGINT NOT NULL,
    instance_id TEXT NOT NULL,
    -- Which connection holds the session (a reconnect takes it over).
    conn_id TEXT NOT NULL
);
CREATE INDEX broker_sessions_mesh_idx ON broker_sessions(mesh_id);
CREATE INDEX broker_sessions_member_idx ON broker_sessions(member_id);
CREATE INDEX broker_sessions_instance_idx ON broker_sessions(instance_id);

CREATE TABLE broker_messages (
    id TEXT PRIMARY KEY,
    mesh_id TEXT NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    sender_member_id TEXT NOT NULL,
    sender_session_key TEXT NOT NULL,
    sender_member_key TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    attestation_expires_at BIGINT NOT NULL,
    attestation_signature TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('direct', 'group', 'broadcast')),
    group_name TEXT,
    priority TEXT NOT NULL CHECK (priority IN ('now', 'next', 'low')),
    body_nonce TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX broker_messages_expiry_idx ON broker_messages(expires_at);

CREATE TABLE broker_deliveries (
    message_id TEXT NOT NULL REFERENCES broker_messages(id) ON DELETE CASCADE,
    -- A session key, or a member's machine key for a member who was offline.
    recipient_key TEXT NOT NULL,
    recipient_member_id TEXT NOT NULL,
    key_nonce TEXT NOT NULL,
    key_box TEXT NOT NULL,
    delivered_at BIGINT,
    PRIMARY KEY (recipient_key, message_id)
);
CREATE INDEX broker_deliveries_message_idx ON broker_deliveries(message_id);
