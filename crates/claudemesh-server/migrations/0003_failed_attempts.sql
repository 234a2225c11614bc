-- Failed attempts at guessing, of every kind: user codes typed on the
-- approval page, and passwords. Each attempt is one row per counter it
-- counts against ("code:who:<account>", "password:who:<email>",
-- "password:ip:<addr>", …), under one attempt id, so a sign-in that turns out
-- right can take back exactly its own rows.
DROP TABLE code_lookup_failures;
CREATE TABLE failed_attempts (
    attempt_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    failed_at BIGINT NOT NULL
);
CREATE INDEX failed_attempts_subject_idx ON failed_attempts(subject, failed_at);
CREATE INDEX failed_attempts_at_idx ON failed_attempts(failed_at);
CREATE INDEX failed_attempts_attempt_idx ON failed_attempts(attempt_id);
