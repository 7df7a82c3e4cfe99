//! The daily retention job (SPEC 1, 2.5 `retentionDays`): for each website with a retention,
//! deletes its sessions that ended before the oldest kept day, with their pageviews and
//! events, and their statistics blocks, without changing any figure of the kept days.
//!
//! - The kept days are the last `retentionDays` local dates before today, and today: whole
//!   days in the site's zone, so a kept day is never cut in two.
//! - A session is deleted whole, or kept whole: one that runs over the cutoff (it began on the
//!   last deleted day and went on past midnight) stays until the next run finds it entirely
//!   old, so the kept days still see its attributes and its length.
//! - Statistics blocks name each visitor by the smallest id among their sessions
//!   (`crate::stats::blocks`). When that session is deleted, the visitor's number changes, so
//!   every bucket of their kept sessions is marked to be built again; the buckets of deleted
//!   sessions are marked too and rewritten at the end (an empty one loses its block).
//! - Candidates are found on a reader; each batch is a short job on the single writer, checked
//!   there again, so ingestion waits at most one small batch.

use std::collections::HashMap;

use jiff::ToSpan;
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{Db, Durability};
use crate::error::Result;
use crate::stats::blocks::{self, bucket_of};
use crate::stats::period;

/// Sessions deleted per writer job.
const BATCH: i64 = 200;
/// Blocks rewritten per writer job.
const REWRITE_BATCH: usize = 100;

/// What a run deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub websites: usize,
    pub visits: u64,
    pub pageviews: u64,
    pub events: u64,
}

/// The first millisecond kept: local midnight starting the date `retention_days` before today,
/// so that what goes is at least `retention_days` local days old and no kept day is cut.
pub fn cutoff(retention_days: i64, tz: &TimeZone, now_ms: i64) -> i64 {
    let today = period::today(tz, now_ms);
    let days = i32::try_from(retention_days).unwrap_or(i32::MAX);
    let first_kept = today
        .checked_sub(days.days())
        .unwrap_or(jiff::civil::Date::MIN);
    period::day_start(first_kept, tz)
}

/// A website with a retention: its number and cutoff.
struct Due {
    site: i64,
    cutoff: i64,
}

fn due(conn: &Connection, now_ms: i64) -> Result<Vec<Due>> {
    let mut stmt = conn.prepare(
        "SELECT s.num, w.timezone, w.retention_days FROM websites w
         JOIN sites s ON s.website_id = w.id WHERE w.retention_days IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (site, zone, days) = row?;
        let tz = TimeZone::get(&zone).unwrap_or(TimeZone::UTC);
        out.push(Due {
            site,
            cutoff: cutoff(days, &tz, now_ms),
        });
    }
    Ok(out)
}

/// Runs the job once over every website with a retention.
pub async fn run(db: &Db, now_ms: i64) -> Result<Swept> {
    let sites = db.read(move |c| due(c, now_ms)).await?;
    let mut swept = Swept {
        websites: sites.len(),
        ..Swept::default()
    };
    for Due { site, cutoff } in sites {
        let mut after = 0;
        loop {
            // Sessions that ended before the cutoff, in id order (a walk over the rowid).
            let ids: Vec<i64> = db
                .read(move |c| {
                    Ok(c.prepare_cached(
                        "SELECT id FROM visits NOT INDEXED
                         WHERE id > ?1 AND site = ?2 AND last_at < ?3 ORDER BY id LIMIT ?4",
                    )?
                    .query_map(params![after, site, cutoff, BATCH], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
                })
                .await?;
            let Some(&last) = ids.last() else { break };
            after = last;
            let done = db
                .write(Durability::Normal, move |c| {
                    delete_sessions(c, site, cutoff, &ids)
                })
                .await?;
            swept.visits += done.visits;
            swept.pageviews += done.pageviews;
            swept.events += done.events;
        }
        // Blocks of old buckets that no deleted session named (there should be none) go too.
        let first_kept = bucket_of(cutoff);
        db.write(Durability::Normal, move |c| {
            c.prepare_cached(
                "INSERT OR IGNORE INTO stats_dirty (site, bucket)
                 SELECT DISTINCT site, bucket FROM stats_blocks WHERE site = ?1 AND bucket < ?2",
            )?
            .execute(params![site, first_kept])?;
            Ok(())
        })
        .await?;
        // Every marked old bucket is rewritten now: what is left of it, or nothing.
        while db
            .write(Durability::Normal, move |c| {
                blocks::refresh(c, Some(site), first_kept + 1, REWRITE_BATCH)
            })
            .await?
            > 0
        {}
    }
    Ok(swept)
}

/// Deletes the sessions `ids` of `site` that still ended before `cutoff`, with their rows, and
/// marks the statistics buckets that change; in the writer's transaction.
pub fn delete_sessions(conn: &Connection, site: i64, cutoff: i64, ids: &[i64]) -> Result<Swept> {
    let mut swept = Swept::default();
    // Per visitor: the smallest id deleted.
    let mut visitors: HashMap<i64, i64> = HashMap::new();
    let mut buckets: Vec<i64> = Vec::new();
    for &id in ids {
        let found: Option<(i64, i64, i64)> = conn
            .prepare_cached(
                "SELECT visitor, first_at, last_at FROM visits
                 WHERE id = ?1 AND site = ?2 AND last_at < ?3",
            )?
            .query_row(params![id, site, cutoff], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        // Gone, merged or extended past the cutoff since it was found.
        let Some((visitor, first_at, last_at)) = found else {
            continue;
        };
        for (table, count) in [
            ("pageviews", &mut swept.pageviews),
            ("events", &mut swept.events),
        ] {
            *count += conn
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE site = ?1 AND at >= ?2 AND at <= ?3 AND visit = ?4"
                ))?
                .execute(params![site, first_at, last_at, id])? as u64;
        }
        conn.prepare_cached("DELETE FROM visits WHERE id = ?1")?
            .execute([id])?;
        swept.visits += 1;
        buckets.extend(bucket_of(first_at)..=bucket_of(last_at));
        let smallest = visitors.entry(visitor).or_insert(id);
        *smallest = (*smallest).min(id);
    }
    for (visitor, deleted) in visitors {
        let kept: Option<i64> = conn
            .prepare_cached("SELECT min(id) FROM visits WHERE site = ?1 AND visitor = ?2")?
            .query_row(params![site, visitor], |r| r.get(0))?;
        // The visitor's number was the deleted id: every block of theirs names it.
        if kept.is_some_and(|k| deleted < k) {
            let mut stmt = conn.prepare_cached(
                "SELECT first_at, last_at FROM visits WHERE site = ?1 AND visitor = ?2",
            )?;
            let spans = stmt.query_map(params![site, visitor], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            for span in spans {
                let (first, last) = span?;
                buckets.extend(bucket_of(first)..=bucket_of(last));
            }
        }
    }
    buckets.sort_unstable();
    buckets.dedup();
    blocks::mark(conn, site, buckets)?;
    Ok(swept)
}

/// `serve`'s job: the retention at start, then once a day.
pub fn spawn_daily(db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(24 * 3600));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match run(&db, crate::time::now_ms()).await {
                Ok(s) => tracing::info!(
                    websites = s.websites,
                    sessions = s.visits,
                    pageviews = s.pageviews,
                    events = s.events,
                    "retention job finished"
                ),
                Err(e) => tracing::warn!(error = %e, "retention job failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::store::{Activity, Attrs, Kind, Store};
    use jiff::civil::date;
    use rand::{Rng, SeedableRng};

    const MIN: i64 = 60_000;
    const DAY: i64 = 24 * 60 * MIN;
    const T0: i64 = 1_736_899_200_000; // 2025-01-15T00:00:00Z

    /// Returning visitors over ten days; the first five go. Every block left unmarked must
    /// still be what the rows say, also for visitors whose oldest session (their number) went.
    #[test]
    fn every_block_left_unmarked_still_matches_the_rows() {
        let (_dir, conn) = crate::db::test_database();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut trace = Vec::new();
        for visitor in 1..=15 {
            for _ in 0..rng.random_range(2..8) {
                let mut at = T0 + rng.random_range(0..10 * 24 * 60) * MIN;
                for _ in 0..rng.random_range(1..6) {
                    let kind = match rng.random_range(0..10) {
                        0..=6 => Kind::Pageview,
                        7 => Kind::Heartbeat,
                        _ => Kind::Event,
                    };
                    trace.push(Activity {
                        site: crate::websites::SiteNum(1),
                        at,
                        kind,
                        visitor,
                        previous_visitor: None,
                        hostname: "example.com".into(),
                        path: format!("/p{}", rng.random_range(0..4)),
                        attrs: Attrs {
                            referrer: Some(format!("r{}", rng.random_range(0..3))),
                            ..Attrs::default()
                        },
                        name: (kind == Kind::Event).then(|| "Signup".to_string()),
                        props: None,
                    });
                    at += rng.random_range(1..25) * MIN;
                }
            }
        }
        trace.sort_by_key(|a| a.at);
        let store = Store::new();
        conn.execute_batch("BEGIN").unwrap();
        store.record(&conn, &trace).unwrap();
        while blocks::refresh(&conn, None, i64::MAX, 1000).unwrap() > 0 {}
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(blocks::stale(&conn).0, Vec::new());

        let cutoff = T0 + 5 * DAY;
        let old: Vec<i64> = conn
            .prepare("SELECT id FROM visits WHERE last_at < ?1 ORDER BY id")
            .unwrap()
            .query_map([cutoff], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let renumbered: i64 = conn
            .query_row(
                "SELECT count(DISTINCT visitor) FROM visits v WHERE last_at >= ?1 AND EXISTS
                 (SELECT 1 FROM visits o WHERE o.visitor = v.visitor AND o.last_at < ?1)",
                [cutoff],
                |r| r.get(0),
            )
            .unwrap();
        assert!(
            old.len() > 20 && renumbered > 5,
            "{} {renumbered}",
            old.len()
        );
        let swept = delete_sessions(&conn, 1, cutoff, &old).unwrap();
        assert_eq!(swept.visits, old.len() as u64);
        let left: i64 = conn
            .query_row(
                "SELECT count(*) FROM visits WHERE last_at < ?1",
                [cutoff],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(left, 0);
        // Blocks of visitors that kept their number, and of buckets no deletion touched.
        let (stale, checked) = blocks::stale(&conn);
        assert!(checked > 0);
        assert_eq!(stale, Vec::new());
        while blocks::refresh(&conn, None, i64::MAX, 1000).unwrap() > 0 {}
        let (stale, _) = blocks::stale(&conn);
        assert_eq!(stale, Vec::new());
    }

    #[test]
    fn the_cutoff_is_local_midnight_retention_days_before_today() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // 2025-03-10T12:00:00Z, 13:00 in Berlin.
        let now = 1_741_608_000_000;
        let cut = cutoff(3, &tz, now);
        assert_eq!(cut, period::day_start(date(2025, 3, 7), &tz));
        assert_eq!(crate::time::iso_ms(cut), "2025-03-06T23:00:00.000Z");
        assert!(now - cut >= 3 * 24 * 3_600_000);
    }
}
