-- Tracked activity (SPEC 3, 4): pageviews, custom events and the visits (sessions) that group them.
--
-- Sized for hundreds of millions of rows: every website gets a small number (`sites.num`), every
-- repeated string (path, hostname, referrer host, UTM value, browser, event name...) is stored
-- once in `strings` and referred to by its number, and pageviews and events are clustered by
-- site and time (WITHOUT ROWID), which is the order every statistic reads them in.
-- Heartbeats are not stored as rows: they only move their visit's `last_at`.

-- A website's number. Never reused (AUTOINCREMENT), so a stale number cannot reach another site.
CREATE TABLE sites (
    num        INTEGER PRIMARY KEY AUTOINCREMENT,
    website_id TEXT NOT NULL UNIQUE REFERENCES websites(id) ON DELETE CASCADE
);
INSERT INTO sites (website_id) SELECT id FROM websites ORDER BY created_at, id;
CREATE TRIGGER websites_site AFTER INSERT ON websites
BEGIN
    INSERT INTO sites (website_id) VALUES (NEW.id);
END;

-- Every distinct string value of the columns marked "string" below.
CREATE TABLE strings (
    id    INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);

-- One row per visit: a session of SPEC 4 (the table `sessions` holds the dashboard's logins).
-- Times are UTC milliseconds. The attributes are those of the visit's first pageview (of its
-- first activity while it has none); `exit` is the path of its last pageview.
CREATE TABLE visits (
    id           INTEGER PRIMARY KEY,
    site         INTEGER NOT NULL REFERENCES sites(num) ON DELETE CASCADE,
    visitor      INTEGER NOT NULL,                  -- 8 bytes of the visitor hash (SPEC 3.4)
    first_at     INTEGER NOT NULL,                  -- first activity (pageview, event, heartbeat)
    last_at      INTEGER NOT NULL,                  -- last activity
    pv_first_at  INTEGER,                           -- first pageview: the visit's time; NULL = none
    pv_last_at   INTEGER,                           -- last pageview
    pageviews    INTEGER NOT NULL DEFAULT 0,
    events       INTEGER NOT NULL DEFAULT 0,
    entry        INTEGER,                           -- string: path of the first pageview
    exit         INTEGER,                           -- string: path of the last pageview
    hostname     INTEGER,                           -- string
    referrer     INTEGER,                           -- string: referrer host; NULL = direct
    utm_source   INTEGER,                           -- string
    utm_medium   INTEGER,                           -- string
    utm_campaign INTEGER,                           -- string
    utm_term     INTEGER,                           -- string
    utm_content  INTEGER,                           -- string
    country      TEXT,                              -- ISO 3166-1 alpha-2
    browser      INTEGER,                           -- string
    os           INTEGER,                           -- string
    device       INTEGER,                           -- string: desktop, mobile, tablet
    language     INTEGER,                           -- string
    screen       INTEGER                            -- string: xs, sm, md, lg, xl
);
-- Which visit an activity belongs to: the visitor's visits near its time. A visitor's visits
-- never overlap, so ordered by `first_at` they are ordered by `last_at` too; keying on the
-- start (which a later activity does not move) keeps the index out of most updates.
CREATE INDEX visits_visitor ON visits (site, visitor, first_at);
-- Visits by their time, for statistics.
CREATE INDEX visits_time ON visits (site, pv_first_at) WHERE pv_first_at IS NOT NULL;

-- `seq` tells apart activities of one site in the same millisecond (almost always 0, which
-- SQLite stores in no bytes at all).
CREATE TABLE pageviews (
    site     INTEGER NOT NULL REFERENCES sites(num) ON DELETE CASCADE,
    at       INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    visit    INTEGER NOT NULL,                      -- visits.id
    hostname INTEGER NOT NULL,                      -- string
    path     INTEGER NOT NULL,                      -- string
    PRIMARY KEY (site, at, seq)
) WITHOUT ROWID;

CREATE TABLE events (
    site    INTEGER NOT NULL REFERENCES sites(num) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    visit   INTEGER NOT NULL,                       -- visits.id
    name    INTEGER NOT NULL,                       -- string
    props   TEXT,                                   -- JSON object of strings; NULL = none
    PRIMARY KEY (site, at, seq)
) WITHOUT ROWID;

-- Answers of `POST /websites/{id}/events` by `Idempotency-Key`, kept 24 hours (SPEC 3.5).
CREATE TABLE idempotency (
    site       INTEGER NOT NULL REFERENCES sites(num) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    body_hash  BLOB NOT NULL,                       -- SHA-256 of the first request's body
    answer     TEXT NOT NULL,                       -- the JSON data of the first answer
    PRIMARY KEY (site, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_age ON idempotency (created_at);
