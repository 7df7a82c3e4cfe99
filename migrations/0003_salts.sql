-- Daily salts of the cookieless visitor id (SPEC 3.4).
-- One row per calendar date `YYYY-MM-DD`: 32 random bytes. A row may only be created while its
-- date is current somewhere on Earth (UTC-12 to UTC+14) and is deleted 72 hours after the date
-- began at UTC+14, so no salt outlives the time it is needed (src/ingest/visitor.rs).

CREATE TABLE salts (
    day  TEXT PRIMARY KEY,                               -- YYYY-MM-DD
    salt BLOB NOT NULL                                   -- 32 bytes from the CSPRNG
) WITHOUT ROWID;
