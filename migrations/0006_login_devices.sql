-- Browsers that logged in to an account before (device cookies, docs/architecture.md
-- "Sessions and security"): such a browser is not held back by the wait that failed logins
-- put on an email, so an attacker guessing one email cannot lock its owner out.
-- Only the SHA-256 of a device token is kept.
CREATE TABLE login_devices (
    token_hash BLOB PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX login_devices_account ON login_devices(account_id, created_at);
