-- A mail for each new credential (CLI session, personal access token).
-- 1: the account gets them (the default); 0: turned off on the CLI tokens page.
ALTER TABLE users ADD COLUMN credential_mail INTEGER NOT NULL DEFAULT 1;
-- The language of the page where the code was approved: the session's mail is
-- sent when the CLI claims the token, after that page is gone.
ALTER TABLE cli_device_codes ADD COLUMN approver_lang TEXT;
