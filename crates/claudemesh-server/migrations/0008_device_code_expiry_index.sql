-- Device codes past their retention are deleted by `expires_at` alone
-- (device_codes::start, a bounded batch per new code). The index on
-- (status, expires_at) could not serve that condition, so every new code
-- scanned the whole table; and no query filters on status without the
-- primary key or the user code, so that index goes.
CREATE INDEX cli_device_codes_expires_idx ON cli_device_codes(expires_at);
DROP INDEX cli_device_codes_status_expires_idx;
