//! The statistics' copy of the activity: one block per website and 15-minute UTC bucket
//! (migrations/0005_stats.sql).
//!
//! A block holds the sessions whose first pageview is in its bucket and the pageviews and
//! events in it, each with the visitor's number: the smallest id among the visitor's visits,
//! which a new visit (a larger id) or a merge (the smaller id survives) never changes. Numbers
//! instead of 8-byte hashes make distinct counting a bit set, and the encoding (varints,
//! times relative to the bucket or to the previous record) makes a block a few bytes per
//! record, read in one B-tree lookup instead of one row per record.
//!
//! The writer marks every bucket an activity changes (`mark`). A reader builds a marked
//! bucket from the row tables itself (`build`), so figures are exact the moment an event is
//! acknowledged; `refresh` rewrites marked blocks in the background and clears the marks.

use std::collections::{HashMap, HashSet};

use integer_encoding::VarInt;
use rusqlite::types::FromSql;
use rusqlite::{Connection, OptionalExtension, params};

use super::dimension::SESSION_ATTRS;
use super::record::{Event, Pageview, SESSION_COLUMNS, Session, session_from_row};
use crate::error::{Error, Result};

/// Length of a bucket: 15 minutes, the greatest common divisor of the UTC offsets in use.
pub const BUCKET_MS: i64 = 15 * 60 * 1000;

/// The bucket that holds `at` (UTC milliseconds).
pub fn bucket_of(at: i64) -> i64 {
    at.div_euclid(BUCKET_MS)
}

/// The same as [`bucket_of`] in SQL, for a column `col`.
fn sql_bucket(col: &str) -> String {
    format!("(({col} - ((({col} % {BUCKET_MS}) + {BUCKET_MS}) % {BUCKET_MS})) / {BUCKET_MS})")
}

/// What one bucket holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Block {
    /// `(visit id, session)`, sessions whose first pageview is in the bucket.
    pub sessions: Vec<(i64, Session)>,
    pub pageviews: Vec<Pageview>,
    pub events: Vec<Event>,
}

impl Block {
    fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.pageviews.is_empty() && self.events.is_empty()
    }
}

/// Marks the buckets `buckets` of `site` for rebuilding, in the caller's transaction.
pub fn mark(conn: &Connection, site: i64, buckets: impl IntoIterator<Item = i64>) -> Result<()> {
    let mut stmt =
        conn.prepare_cached("INSERT OR IGNORE INTO stats_dirty (site, bucket) VALUES (?1, ?2)")?;
    for bucket in buckets {
        stmt.execute(params![site, bucket])?;
    }
    Ok(())
}

/// Numbers of visitors (the smallest id among each one's visits), cached for one build.
struct Numbers<'c> {
    conn: &'c Connection,
    site: i64,
    known: HashMap<i64, i64>,
}

impl Numbers<'_> {
    fn of(&mut self, visitor: i64) -> Result<i64> {
        if let Some(n) = self.known.get(&visitor) {
            return Ok(*n);
        }
        let n: i64 = self
            .conn
            .prepare_cached("SELECT min(id) FROM visits WHERE site = ?1 AND visitor = ?2")?
            .query_row(params![self.site, visitor], |r| r.get(0))?;
        self.known.insert(visitor, n);
        Ok(n)
    }
}

/// A pageview's or an event's time, visit, visitor hash and two more columns.
type Activity<A, B> = (i64, i64, i64, A, B);

/// The rows of `table` (pageviews or events) of `site` in `[start, end)` in time order: time,
/// visit, the visit's visitor hash, and two more `columns` (of `x`, the table).
fn activity<A: FromSql, B: FromSql>(
    conn: &Connection,
    table: &str,
    columns: &str,
    site: i64,
    start: i64,
    end: i64,
) -> Result<Vec<Activity<A, B>>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT x.at, x.visit, v.visitor, {columns} FROM {table} x JOIN visits v ON v.id = x.visit
         WHERE x.site = ?1 AND x.at >= ?2 AND x.at < ?3 ORDER BY x.at, x.seq"
    ))?;
    let rows = stmt.query_map(params![site, start, end], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Builds the block of `bucket` from the row tables.
pub fn build(conn: &Connection, site: i64, bucket: i64) -> Result<Block> {
    let (start, end) = (bucket * BUCKET_MS, (bucket + 1) * BUCKET_MS);
    let mut numbers = Numbers {
        conn,
        site,
        known: HashMap::new(),
    };
    let mut block = Block::default();

    let mut visits = Vec::new();
    for (at, visit, visitor, hostname, path) in
        activity(conn, "pageviews", "x.hostname, x.path", site, start, end)?
    {
        visits.push(visit);
        block.pageviews.push(Pageview {
            at,
            visit,
            visitor: numbers.of(visitor)?,
            hostname,
            path,
        });
    }
    for (at, visit, visitor, name, props) in
        activity(conn, "events", "x.name, x.props", site, start, end)?
    {
        block.events.push(Event {
            at,
            visit,
            visitor: numbers.of(visitor)?,
            name,
            props,
        });
    }

    // A session's first pageview is one of the bucket's pageviews.
    visits.sort_unstable();
    visits.dedup();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT visitor, {SESSION_COLUMNS}
         FROM visits WHERE id = ?1 AND pv_first_at >= ?2 AND pv_first_at < ?3",
        SESSION_COLUMNS = *SESSION_COLUMNS
    ))?;
    for id in visits {
        let row = stmt
            .query_row(params![id, start, end], |r| {
                Ok((r.get::<_, i64>(0)?, session_from_row(r, 1)?))
            })
            .optional()?;
        if let Some((visitor, mut session)) = row {
            session.visitor = numbers.of(visitor)?;
            block.sessions.push((id, session));
        }
    }
    block.sessions.sort_by_key(|(id, s)| (s.at, *id));
    Ok(block)
}

/// Encodes a block: a count per list, then each record's fields as zig-zag varints, times
/// relative to the bucket's start or to the record before.
pub fn encode(block: &Block, bucket: i64) -> Vec<u8> {
    let base = bucket * BUCKET_MS;
    let mut out = Vec::with_capacity(16 + block.sessions.len() * 40 + block.pageviews.len() * 10);
    put(block.sessions.len() as i64, &mut out);
    put(block.pageviews.len() as i64, &mut out);
    put(block.events.len() as i64, &mut out);
    let mut last_id = 0;
    for (id, s) in &block.sessions {
        let at = s.at.unwrap_or(base);
        put(id - last_id, &mut out);
        last_id = *id;
        put(id - s.visitor, &mut out);
        put(at - base, &mut out);
        put(at - s.first_at, &mut out);
        put(s.last_at - s.first_at, &mut out);
        put(s.pageviews, &mut out);
        put(s.events, &mut out);
        for a in &s.attrs {
            put(a.map_or(0, |v| if v >= 0 { v + 1 } else { v }), &mut out);
        }
    }
    let (mut last_at, mut last_visit) = (base, 0);
    for p in &block.pageviews {
        put(p.at - last_at, &mut out);
        last_at = p.at;
        put(p.visit - last_visit, &mut out);
        last_visit = p.visit;
        put(p.visit - p.visitor, &mut out);
        put(p.hostname, &mut out);
        put(p.path, &mut out);
    }
    let (mut last_at, mut last_visit) = (base, 0);
    for e in &block.events {
        put(e.at - last_at, &mut out);
        last_at = e.at;
        put(e.visit - last_visit, &mut out);
        last_visit = e.visit;
        put(e.visit - e.visitor, &mut out);
        put(e.name, &mut out);
        match &e.props {
            None => put(0, &mut out),
            Some(text) => {
                put(text.len() as i64 + 1, &mut out);
                out.extend_from_slice(text.as_bytes());
            }
        }
    }
    out
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn int(&mut self) -> Result<i64> {
        let (v, n) = i64::decode_var(&self.data[self.pos..]).ok_or_else(corrupt)?;
        self.pos += n;
        Ok(v)
    }

    fn bytes(&mut self, len: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(corrupt)?;
        let slice = &self.data[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
}

fn corrupt() -> Error {
    Error::Internal("a statistics block is damaged; run `jetrack rebuild-aggregates`".into())
}

/// Decodes what [`encode`] wrote.
pub fn decode(data: &[u8], bucket: i64) -> Result<Block> {
    let base = bucket * BUCKET_MS;
    let mut r = Reader { data, pos: 0 };
    let counts = [r.int()?, r.int()?, r.int()?];
    let cap = |n: i64| usize::try_from(n).unwrap_or(0).min(data.len());
    let mut block = Block {
        sessions: Vec::with_capacity(cap(counts[0])),
        pageviews: Vec::with_capacity(cap(counts[1])),
        events: Vec::with_capacity(cap(counts[2])),
    };
    let mut id = 0;
    for _ in 0..counts[0] {
        id += r.int()?;
        let visitor = id - r.int()?;
        let at = base + r.int()?;
        let first_at = at - r.int()?;
        let last_at = first_at + r.int()?;
        let pageviews = r.int()?;
        let events = r.int()?;
        let mut attrs = [None; SESSION_ATTRS];
        for a in &mut attrs {
            let v = r.int()?;
            *a = match v {
                0 => None,
                v if v > 0 => Some(v - 1),
                v => Some(v),
            };
        }
        block.sessions.push((
            id,
            Session {
                visitor,
                first_at,
                last_at,
                at: Some(at),
                pageviews,
                events,
                attrs,
            },
        ));
    }
    let (mut at, mut visit) = (base, 0);
    for _ in 0..counts[1] {
        at += r.int()?;
        visit += r.int()?;
        let visitor = visit - r.int()?;
        block.pageviews.push(Pageview {
            at,
            visit,
            visitor,
            hostname: r.int()?,
            path: r.int()?,
        });
    }
    let (mut at, mut visit) = (base, 0);
    for _ in 0..counts[2] {
        at += r.int()?;
        visit += r.int()?;
        let visitor = visit - r.int()?;
        let name = r.int()?;
        let len = r.int()?;
        let props = if len == 0 {
            None
        } else {
            let bytes = r.bytes(usize::try_from(len - 1).map_err(|_| corrupt())?)?;
            Some(String::from_utf8(bytes.to_vec()).map_err(|_| corrupt())?)
        };
        block.events.push(Event {
            at,
            visit,
            visitor,
            name,
            props,
        });
    }
    Ok(block)
}

/// The buckets of `site` from `first` to `last` that are marked.
fn marked(conn: &Connection, site: i64, first: i64, last: i64) -> Result<HashSet<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT bucket FROM stats_dirty WHERE site = ?1 AND bucket >= ?2 AND bucket <= ?3",
        )?
        .query_map(params![site, first, last], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Calls `f` with each stored part `part` of `site`'s buckets `first..=last` that is not
/// marked, then answers the marked buckets, in order.
fn each_stored(
    conn: &Connection,
    site: i64,
    part: i64,
    (first, last): (i64, i64),
    mut f: impl FnMut(i64, &[u8]) -> Result<()>,
) -> Result<Vec<i64>> {
    let dirty = marked(conn, site, first, last)?;
    let mut stmt = conn.prepare_cached(
        "SELECT bucket, data FROM stats_blocks
         WHERE site = ?1 AND part = ?2 AND bucket >= ?3 AND bucket <= ?4",
    )?;
    let mut rows = stmt.query(params![site, part, first, last])?;
    while let Some(row) = rows.next()? {
        let bucket: i64 = row.get(0)?;
        if !dirty.contains(&bucket) {
            f(bucket, row.get_ref(1)?.as_blob().map_err(|_| corrupt())?)?;
        }
    }
    let mut dirty: Vec<i64> = dirty.into_iter().collect();
    dirty.sort_unstable();
    Ok(dirty)
}

/// Calls `f` with what each bucket of `site` holds in `[start, end)` (records outside it in
/// the edge buckets left out): stored blocks as decoded, marked buckets built from the rows.
pub fn each(
    conn: &Connection,
    site: i64,
    start: i64,
    end: i64,
    mut f: impl FnMut(Block) -> Result<()>,
) -> Result<()> {
    if start >= end {
        return Ok(());
    }
    let mut clip = |mut block: Block| {
        let aligned = start % BUCKET_MS == 0 && end % BUCKET_MS == 0;
        if !aligned {
            block
                .sessions
                .retain(|(_, s)| s.at.is_some_and(|at| at >= start && at < end));
            block.pageviews.retain(|p| p.at >= start && p.at < end);
            block.events.retain(|e| e.at >= start && e.at < end);
        }
        f(block)
    };
    let range = (bucket_of(start), bucket_of(end - 1));
    let dirty = each_stored(conn, site, RECORDS, range, |bucket, data| {
        clip(decode(data, bucket)?)
    })?;
    for bucket in dirty {
        clip(build(conn, site, bucket)?)?;
    }
    Ok(())
}

/// Everything in `[start, end)` of `site`, as [`each`] sees it, in one block.
pub fn load(conn: &Connection, site: i64, start: i64, end: i64) -> Result<Block> {
    let mut out = Block::default();
    each(conn, site, start, end, |block| {
        out.sessions.extend(block.sessions);
        out.pageviews.extend(block.pageviews);
        out.events.extend(block.events);
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f` with the totals of each bucket of `site` from `first` to `last` that holds any.
pub fn each_totals(
    conn: &Connection,
    site: i64,
    (first, last): (i64, i64),
    mut f: impl FnMut(i64, Totals) -> Result<()>,
) -> Result<()> {
    let dirty = each_stored(conn, site, TOTALS, (first, last), |bucket, data| {
        f(bucket, decode_totals(data)?)
    })?;
    for bucket in dirty {
        f(bucket, Totals::of(&build(conn, site, bucket)?))?;
    }
    Ok(())
}

/// Part numbers of a block's rows in `stats_blocks`.
const TOTALS: i64 = 0;
const RECORDS: i64 = 1;

/// What `main` and `timeseries` without filters need of a bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Sessions whose first pageview is in the bucket, and of those: with one pageview, the
    /// sum of their durations and of their pageviews.
    pub sessions: u64,
    pub bounces: u64,
    pub duration_ms: i64,
    pub views: i64,
    /// Pageviews in the bucket, and their distinct visitors, ascending.
    pub pageviews: u64,
    pub visitors: Vec<i64>,
}

impl Totals {
    pub fn of(block: &Block) -> Totals {
        let mut visitors: Vec<i64> = block.pageviews.iter().map(|p| p.visitor).collect();
        visitors.sort_unstable();
        visitors.dedup();
        let mut t = Totals {
            pageviews: block.pageviews.len() as u64,
            visitors,
            ..Totals::default()
        };
        for (_, s) in &block.sessions {
            let facts = s.facts();
            t.sessions += 1;
            t.bounces += u64::from(facts.bounce);
            t.duration_ms += facts.duration_ms;
            t.views += facts.views;
        }
        t
    }
}

fn put(v: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 10];
    let n = v.encode_var(&mut buf);
    out.extend_from_slice(&buf[..n]);
}

fn encode_totals(t: &Totals) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + t.visitors.len() * 3);
    for v in [
        t.sessions as i64,
        t.bounces as i64,
        t.duration_ms,
        t.views,
        t.pageviews as i64,
    ] {
        put(v, &mut out);
    }
    put(t.visitors.len() as i64, &mut out);
    let mut last = 0;
    for &v in &t.visitors {
        put(v - last, &mut out);
        last = v;
    }
    out
}

fn decode_totals(data: &[u8]) -> Result<Totals> {
    let mut r = Reader { data, pos: 0 };
    let mut t = Totals {
        sessions: r.int()? as u64,
        bounces: r.int()? as u64,
        duration_ms: r.int()?,
        views: r.int()?,
        pageviews: r.int()? as u64,
        visitors: Vec::new(),
    };
    let n = usize::try_from(r.int()?).unwrap_or(0).min(data.len());
    t.visitors.reserve(n);
    let mut last = 0;
    for _ in 0..n {
        last += r.int()?;
        t.visitors.push(last);
    }
    Ok(t)
}

/// Rewrites the block of one marked bucket and clears its mark, in the caller's transaction.
pub fn rewrite(conn: &Connection, site: i64, bucket: i64) -> Result<()> {
    let block = build(conn, site, bucket)?;
    if block.is_empty() {
        conn.prepare_cached("DELETE FROM stats_blocks WHERE site = ?1 AND bucket = ?2")?
            .execute(params![site, bucket])?;
    } else {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO stats_blocks (site, part, bucket, data) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (site, part, bucket) DO UPDATE SET data = excluded.data",
        )?;
        stmt.execute(params![
            site,
            TOTALS,
            bucket,
            encode_totals(&Totals::of(&block))
        ])?;
        stmt.execute(params![site, RECORDS, bucket, encode(&block, bucket)])?;
    }
    conn.prepare_cached("DELETE FROM stats_dirty WHERE site = ?1 AND bucket = ?2")?
        .execute(params![site, bucket])?;
    Ok(())
}

/// Rewrites up to `limit` marked buckets of `site` (of every site when `None`) before the
/// bucket `before`, oldest first; answers how many. The server runs this now and then through
/// the writer, leaving the buckets still being written to the readers.
pub fn refresh(conn: &Connection, site: Option<i64>, before: i64, limit: usize) -> Result<usize> {
    let marked: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT site, bucket FROM stats_dirty WHERE bucket < ?1 AND (?2 IS NULL OR site = ?2)
             ORDER BY bucket LIMIT ?3",
        )?
        .query_map(params![before, site, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for &(site, bucket) in &marked {
        rewrite(conn, site, bucket)?;
    }
    Ok(marked.len())
}

/// Marks every bucket of `site` (every site when `None`) that holds activity or a block, so
/// that all of them are built again from the rows.
pub fn mark_all(conn: &Connection, site: Option<i64>) -> Result<usize> {
    let mut total = 0;
    for (table, col) in [("pageviews", "at"), ("events", "at")] {
        total += conn.execute(
            &format!(
                "INSERT OR IGNORE INTO stats_dirty (site, bucket)
                 SELECT DISTINCT site, {} FROM {table} WHERE ?1 IS NULL OR site = ?1",
                sql_bucket(col)
            ),
            [site],
        )?;
    }
    total += conn.execute(
        "INSERT OR IGNORE INTO stats_dirty (site, bucket)
         SELECT site, bucket FROM stats_blocks WHERE ?1 IS NULL OR site = ?1",
        [site],
    )?;
    Ok(total)
}

/// For tests: the `(site, bucket)` of every stored block, among those not marked (a marked one
/// is built from the rows by every reader), that differs from the block built from the rows
/// now, and how many were compared.
#[cfg(test)]
pub(crate) fn stale(conn: &Connection) -> (Vec<(i64, i64)>, usize) {
    let marked: HashSet<(i64, i64)> = conn
        .prepare("SELECT site, bucket FROM stats_dirty")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let stored: Vec<(i64, i64, Vec<u8>)> = conn
        .prepare(&format!(
            "SELECT site, bucket, data FROM stats_blocks WHERE part = {RECORDS}"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut stale = Vec::new();
    let mut checked = 0;
    for (site, bucket, data) in stored {
        if marked.contains(&(site, bucket)) {
            continue;
        }
        checked += 1;
        if decode(&data, bucket).unwrap() != build(conn, site, bucket).unwrap() {
            stale.push((site, bucket));
        }
    }
    (stale, checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::dimension::{Attr, SessionAttr};
    use crate::stats::record::country_number;

    #[test]
    fn a_block_survives_encoding() {
        let bucket = bucket_of(1_736_935_200_000);
        let base = bucket * BUCKET_MS;
        let mut attrs = [None; SESSION_ATTRS];
        attrs[0] = Some(12);
        attrs[SessionAttr::of(Attr::Country).index()] = country_number("DE");
        let block = Block {
            sessions: vec![(
                41,
                Session {
                    visitor: 7,
                    first_at: base - 5_000,
                    last_at: base + 600_000,
                    at: Some(base + 10),
                    pageviews: 3,
                    events: 1,
                    attrs,
                },
            )],
            pageviews: vec![
                Pageview {
                    at: base + 10,
                    visit: 41,
                    visitor: 7,
                    hostname: 2,
                    path: 12,
                },
                Pageview {
                    at: base + 10,
                    visit: 3,
                    visitor: 3,
                    hostname: 2,
                    path: 0,
                },
            ],
            events: vec![Event {
                at: base + 899_999,
                visit: 41,
                visitor: 7,
                name: 5,
                props: Some(r#"{"plan":"pro"}"#.into()),
            }],
        };
        let data = encode(&block, bucket);
        assert_eq!(decode(&data, bucket).unwrap(), block);
        assert!(decode(&data[..data.len() - 3], bucket).is_err());
    }

    #[test]
    fn totals_survive_encoding() {
        let t = Totals {
            sessions: 3,
            bounces: 1,
            duration_ms: 123_456,
            views: 7,
            pageviews: 9,
            visitors: vec![3, 4, 90, 1 << 33],
        };
        assert_eq!(decode_totals(&encode_totals(&t)).unwrap(), t);
        assert_eq!(
            decode_totals(&encode_totals(&Totals::default())).unwrap(),
            Totals::default()
        );
    }

    #[test]
    fn buckets_floor_also_before_1970() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(BUCKET_MS - 1), 0);
        assert_eq!(bucket_of(-1), -1);
        let conn = Connection::open_in_memory().unwrap();
        for at in [-1, 0, BUCKET_MS - 1, BUCKET_MS, -BUCKET_MS, -BUCKET_MS - 1] {
            let sql: i64 = conn
                .query_row(&format!("SELECT {}", sql_bucket("?1")), [at], |r| r.get(0))
                .unwrap();
            assert_eq!(sql, bucket_of(at), "{at}");
        }
    }
}
