-- Usage telemetry sent by the CLI (docs/telemetry.md): one row per event,
-- one column per property (NULL where the event has no such property), so
-- the report groups in plain SQL on both engines. `id` is the CLI's own
-- random event id: a batch sent twice is stored once. Rows older than
-- --telemetry-retention-days (90 by default) are swept by `received_at`.
CREATE TABLE telemetry_events (
    id TEXT PRIMARY KEY,
    install_id TEXT NOT NULL,
    name TEXT NOT NULL,
    cli_version TEXT NOT NULL,
    os TEXT NOT NULL,
    arch TEXT NOT NULL,
    -- The CLI's clock, as sent; the report and the sweep use received_at.
    occurred_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    method TEXT,
    reason TEXT,
    user_id TEXT,
    command TEXT,
    exit_code INTEGER,
    duration_ms BIGINT,
    -- 0 or 1.
    authenticated INTEGER,
    endpoint TEXT,
    status INTEGER,
    error_code TEXT
);
CREATE INDEX telemetry_events_received_idx ON telemetry_events(received_at);
CREATE INDEX telemetry_events_name_idx ON telemetry_events(name, received_at);
