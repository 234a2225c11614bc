-- The mesh log: one append-only, hash-chained log per mesh of who joined,
-- left, was removed, connected, and which messages went where (metadata
-- only: never a body, never a token). See claudemesh_api::mesh_log.

CREATE TABLE mesh_log (
    mesh_id TEXT NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    -- A JSON object of text values.
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (mesh_id, seq)
);
CREATE INDEX mesh_log_at_idx ON mesh_log(at);

-- The head of each chain: appends lock this row, so one mesh's entries are
-- numbered one after another on every instance; it also lets a verifier see
-- entries deleted at the end. `first_seq` moves forward with retention.
CREATE TABLE mesh_log_heads (
    mesh_id TEXT PRIMARY KEY REFERENCES meshes(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    first_seq BIGINT NOT NULL
);
