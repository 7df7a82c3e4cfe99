-- Accounts, dashboard sessions and the security audit log.
-- Times are milliseconds since the Unix epoch, UTC.

CREATE TABLE accounts (
    id                        TEXT PRIMARY KEY,          -- UUID v4
    email                     TEXT NOT NULL COLLATE NOCASE UNIQUE,
    first_name                TEXT,
    last_name                 TEXT,
    picture                   TEXT,
    password_hash             TEXT NOT NULL,             -- Argon2id PHC string
    email_verified_at         INTEGER,
    created_at                INTEGER NOT NULL,
    limit_pageviews_per_month INTEGER,                   -- NULL = unlimited
    limit_websites            INTEGER                    -- NULL = unlimited
);

-- Only the SHA-256 of a session token is kept.
CREATE TABLE sessions (
    token_hash   BLOB PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_account ON sessions(account_id);

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    action     TEXT NOT NULL,
    ip         TEXT,                                     -- truncated: IPv4 /24, IPv6 /48
    detail     TEXT
);
CREATE INDEX audit_log_account_at ON audit_log(account_id, at DESC);
