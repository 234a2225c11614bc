-- The guessing counters now count failed sign-ins too, not only user-code
-- look-ups; each kind keeps its own subjects ("code:who:<account>",
-- "password:who:<email>", "password:ip:<addr>", …).
DROP INDEX code_lookup_failures_idx;
ALTER TABLE code_lookup_failures RENAME TO failed_attempts;
CREATE INDEX failed_attempts_idx ON failed_attempts(subject, failed_at);
