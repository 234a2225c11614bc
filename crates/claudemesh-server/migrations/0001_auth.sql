-- Accounts, browser sessions, API tokens, device codes, guessing counters, audit.
-- Times are integer milliseconds since the Unix epoch (same on both engines).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    password_changed_at BIGINT NOT NULL
);

-- A signed-in browser. Only the SHA-256 of the cookie value is stored.
CREATE TABLE browser_sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX browser_sessions_user_idx ON browser_sessions(user_id);

-- CLI session tokens and personal access tokens. Only the SHA-256 is stored.
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('session', 'pat')),
    token_hash TEXT NOT NULL UNIQUE,
    display_prefix TEXT NOT NULL,
    name TEXT NOT NULL,
    device_name TEXT,
    device_os TEXT,
    device_arch TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_user_idx ON api_tokens(user_id, kind);

-- RFC 8628 device authorizations. The device code is stored only as its hash.
CREATE TABLE cli_device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'claimed')),
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    api_token_id TEXT REFERENCES api_tokens(id) ON DELETE SET NULL,
    device_name TEXT NOT NULL,
    device_os TEXT NOT NULL,
    device_arch TEXT NOT NULL,
    ip_address TEXT,
    user_agent TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    claimed_at BIGINT,
    last_poll_at BIGINT
);
CREATE INDEX cli_device_codes_status_expires_idx ON cli_device_codes(status, expires_at);

-- Failed user-code look-ups, per account ("user:<id>") and per IP ("ip:<addr>").
CREATE TABLE code_lookup_failures (
    subject TEXT NOT NULL,
    failed_at BIGINT NOT NULL
);
CREATE INDEX code_lookup_failures_idx ON code_lookup_failures(subject, failed_at);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    user_id TEXT,
    ip_address TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_user_idx ON audit_log(user_id, at);
