-- Websites and API keys.

CREATE TABLE websites (
    id             TEXT PRIMARY KEY,                     -- UUID v4, public (in the snippet)
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    domain         TEXT NOT NULL,                        -- lowercase host, no leading www.
    timezone       TEXT NOT NULL DEFAULT 'UTC',
    cookie_mode    INTEGER NOT NULL DEFAULT 0,
    retention_days INTEGER,                              -- NULL = keep forever
    created_at     INTEGER NOT NULL,
    UNIQUE (account_id, domain)
);
CREATE INDEX websites_account ON websites(account_id, created_at);

-- Only the SHA-256 of a key is kept. While a `keys rotate --grace` window is open, the
-- previous secret's hash is kept beside the new one until `previous_valid_until`.
CREATE TABLE api_keys (
    id                   TEXT PRIMARY KEY,
    account_id           TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name                 TEXT,
    prefix               TEXT NOT NULL,
    key_hash             BLOB NOT NULL UNIQUE,
    scope                TEXT NOT NULL CHECK (scope IN ('full', 'read')),
    created_at           INTEGER NOT NULL,
    last_used_at         INTEGER,
    expires_at           INTEGER,
    previous_hash        BLOB,
    previous_valid_until INTEGER
);
CREATE INDEX api_keys_account ON api_keys(account_id, created_at);
CREATE INDEX api_keys_previous ON api_keys(previous_hash) WHERE previous_hash IS NOT NULL;
