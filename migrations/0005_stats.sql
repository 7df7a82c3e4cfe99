-- Statistics (SPEC 2.6, 4) read a compact copy of the activity instead of the row tables.
--
-- Time is cut into 15-minute UTC buckets, which compose into the local hours and days of
-- every time zone in use. `stats_blocks` holds, per website and bucket, the sessions whose
-- first pageview is in the bucket and the pageviews and events in it, encoded as varints
-- (src/stats/blocks.rs). The writer marks in `stats_dirty` every bucket an activity changes; a
-- query builds a dirty bucket from the row tables itself, and a background job rewrites its
-- block and clears the mark. `jetrack rebuild-aggregates` rewrites every block from the rows.

-- Part 0 of a block is its totals (sessions, bounces, durations, pageviews and the distinct
-- visitors of its pageviews), all that `main` and `timeseries` without filters need; part 1 is
-- every record. Keyed by part before bucket, so a period's rows of one part are contiguous.
CREATE TABLE stats_blocks (
    site   INTEGER NOT NULL REFERENCES sites(num) ON DELETE CASCADE,
    part   INTEGER NOT NULL,
    bucket INTEGER NOT NULL,                 -- UTC milliseconds / 900,000
    data   BLOB NOT NULL,
    PRIMARY KEY (site, part, bucket)
) WITHOUT ROWID;

CREATE TABLE stats_dirty (
    site   INTEGER NOT NULL REFERENCES sites(num) ON DELETE CASCADE,
    bucket INTEGER NOT NULL,
    PRIMARY KEY (site, bucket)
) WITHOUT ROWID;

-- Every bucket that holds activity starts dirty.
-- (The bucket is floor(at / 900000), written so for times before 1970 too.)
INSERT OR IGNORE INTO stats_dirty (site, bucket)
    SELECT site, (at - (((at % 900000) + 900000) % 900000)) / 900000 FROM pageviews;
INSERT OR IGNORE INTO stats_dirty (site, bucket)
    SELECT site, (at - (((at % 900000) + 900000) % 900000)) / 900000 FROM events;

-- Statistics find a period's sessions through its blocks, not by time in `visits`.
DROP INDEX visits_time;
