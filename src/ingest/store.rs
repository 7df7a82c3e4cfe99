//! Writing activity on the writer thread: each pageview, event or heartbeat joins the visit
//! (session, SPEC 4) of its visitor that it continues, or starts one; an activity that bridges
//! two stored visits merges them, so the visits come out the same whatever order the
//! activities arrive in.
//!
//! Strings are stored once in `strings` (migrations/0004_events.sql); a cache of their numbers
//! lives with the writer and is dropped whenever a write it may have seen is rolled back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, ToSql, params, params_from_iter};

use crate::db::writer;
use crate::error::Result;
use crate::stats::blocks::{self, bucket_of};
use crate::stats::realtime::Recent;
use crate::time::now_ms;
use crate::websites::SiteNum;

/// Activities of one visitor closer than this belong to one visit (a gap of exactly 30:00
/// starts a new one).
pub const VISIT_GAP_MS: i64 = 30 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Pageview,
    Event,
    Heartbeat,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Pageview, Kind::Event, Kind::Heartbeat];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pageview => "pageview",
            Kind::Event => "event",
            Kind::Heartbeat => "heartbeat",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "pageview" => Some(Kind::Pageview),
            "event" => Some(Kind::Event),
            "heartbeat" => Some(Kind::Heartbeat),
            _ => None,
        }
    }
}

/// What a visit keeps of its first pageview.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub hostname: Option<String>,
    pub referrer: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub country: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device: Option<String>,
    pub language: Option<String>,
    pub screen: Option<String>,
}

/// One validated, enriched activity, ready to store.
#[derive(Clone, Debug)]
pub struct Activity {
    pub site: SiteNum,
    /// UTC milliseconds.
    pub at: i64,
    pub kind: Kind,
    /// The visitor id; for a cookieless live event also the id under the previous local
    /// date's salt, so that a visit running over midnight continues.
    pub visitor: i64,
    pub previous_visitor: Option<i64>,
    pub hostname: String,
    pub path: String,
    pub attrs: Attrs,
    /// Events only: the name and the props as a JSON object text.
    pub name: Option<String>,
    pub props: Option<String>,
}

/// The writer's cache of string numbers. Share one per database (behind the mutex; only the
/// writer thread takes it, so it is never contended).
#[derive(Default)]
pub struct Store {
    state: Mutex<State>,
    /// Who was active lately, for `realtime`: told of every activity stored.
    pub recent: Arc<Recent>,
}

#[derive(Default)]
struct State {
    strings: HashMap<Box<str>, i64>,
    /// [`writer::rollbacks`] when the cache was last known good.
    rollbacks: u64,
}

const STRING_CACHE: usize = 100_000;

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Stores `activities` in order, in the caller's transaction.
    pub fn record(&self, conn: &Connection, activities: &[Activity]) -> Result<()> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rollbacks = writer::rollbacks();
        if state.rollbacks != rollbacks {
            state.strings.clear();
            state.rollbacks = rollbacks;
        }
        let now = now_ms();
        let mut changed = Vec::new();
        let outcome = activities
            .iter()
            .try_for_each(|a| {
                let visitor = record_one(conn, &mut state, a, &mut changed)?;
                self.recent.note(a.site, visitor, a.at, now);
                Ok(())
            })
            .and_then(|()| {
                changed.sort_unstable();
                changed.dedup();
                changed
                    .iter()
                    .try_for_each(|&(site, bucket)| blocks::mark(conn, site, [bucket]))
            });
        if outcome.is_err() {
            // The caller rolls this job back: forget numbers of strings it inserted.
            state.strings.clear();
        }
        outcome
    }
}

impl State {
    fn string(&mut self, conn: &Connection, value: &str) -> Result<i64> {
        if let Some(id) = self.strings.get(value) {
            return Ok(*id);
        }
        let found: Option<i64> = conn
            .prepare_cached("SELECT id FROM strings WHERE value = ?1")?
            .query_row([value], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                conn.prepare_cached("INSERT INTO strings (value) VALUES (?1)")?
                    .execute([value])?;
                conn.last_insert_rowid()
            }
        };
        if self.strings.len() >= STRING_CACHE {
            self.strings.clear();
        }
        self.strings.insert(value.into(), id);
        Ok(id)
    }

    fn opt(&mut self, conn: &Connection, value: Option<&str>) -> Result<Option<i64>> {
        value.map(|v| self.string(conn, v)).transpose()
    }
}

/// A stored visit; string columns as their numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Visit {
    id: i64,
    visitor: i64,
    first_at: i64,
    last_at: i64,
    pv_first_at: Option<i64>,
    pv_last_at: Option<i64>,
    pageviews: i64,
    events: i64,
    entry: Option<i64>,
    exit: Option<i64>,
    attrs: AttrIds,
}

/// What describes a visit (strings as their numbers), as `visits` stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AttrIds {
    pub hostname: Option<i64>,
    pub referrer: Option<i64>,
    pub utm: [Option<i64>; 5],
    pub country: Option<String>,
    pub browser: Option<i64>,
    pub os: Option<i64>,
    pub device: Option<i64>,
    pub language: Option<i64>,
    pub screen: Option<i64>,
}

impl AttrIds {
    /// Reads `hostname, referrer, utm_source, utm_medium, utm_campaign, utm_term,
    /// utm_content, country, browser, os, device, language, screen` from column `first` on.
    pub(crate) fn from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<AttrIds> {
        Ok(AttrIds {
            hostname: r.get(first)?,
            referrer: r.get(first + 1)?,
            utm: [
                r.get(first + 2)?,
                r.get(first + 3)?,
                r.get(first + 4)?,
                r.get(first + 5)?,
                r.get(first + 6)?,
            ],
            country: r.get(first + 7)?,
            browser: r.get(first + 8)?,
            os: r.get(first + 9)?,
            device: r.get(first + 10)?,
            language: r.get(first + 11)?,
            screen: r.get(first + 12)?,
        })
    }
}

const VISIT_COLUMNS: &str = "id, visitor, first_at, last_at, pv_first_at, pv_last_at, pageviews, events, \
     entry, exit, hostname, referrer, utm_source, utm_medium, utm_campaign, utm_term, utm_content, \
     country, browser, os, device, language, screen";

fn visit_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Visit> {
    Ok(Visit {
        id: r.get(0)?,
        visitor: r.get(1)?,
        first_at: r.get(2)?,
        last_at: r.get(3)?,
        pv_first_at: r.get(4)?,
        pv_last_at: r.get(5)?,
        pageviews: r.get(6)?,
        events: r.get(7)?,
        entry: r.get(8)?,
        exit: r.get(9)?,
        attrs: AttrIds::from_row(r, 10)?,
    })
}

/// The visits of `visitor` on `site` that an activity at `at` continues, earliest first.
///
/// A visitor's visits are separated by gaps of at least [`VISIT_GAP_MS`], so at most two of
/// them come within that distance of one time (the one before it and the one after it), and
/// they are the last two to start before `at + gap`.
fn visits_near(conn: &Connection, site: i64, visitor: i64, at: i64) -> Result<Vec<Visit>> {
    let sql = format!(
        "SELECT {VISIT_COLUMNS} FROM visits
         WHERE site = ?1 AND visitor = ?2 AND first_at < ?3
         ORDER BY first_at DESC LIMIT 2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![site, visitor, at + VISIT_GAP_MS], visit_from_row)?;
    let mut near = Vec::with_capacity(2);
    for visit in rows {
        let visit = visit?;
        if visit.last_at > at - VISIT_GAP_MS {
            near.push(visit);
        }
    }
    near.reverse();
    Ok(near)
}

/// Stores one activity; answers the visitor id of the visit it joined, and adds to `changed`
/// the statistics buckets `(site, bucket)` whose blocks it changes.
fn record_one(
    conn: &Connection,
    state: &mut State,
    a: &Activity,
    changed: &mut Vec<(i64, i64)>,
) -> Result<i64> {
    // The current id first; the previous date's id only continues a visit, never starts one.
    let mut visitor = a.visitor;
    let mut near = visits_near(conn, a.site.0, a.visitor, a.at)?;
    if near.is_empty()
        && let Some(previous) = a.previous_visitor
    {
        let earlier = visits_near(conn, a.site.0, previous, a.at)?;
        if !earlier.is_empty() {
            visitor = previous;
            near = earlier;
        }
    }
    // Only a pageview's path is stored (heartbeats and events name the visit, not a page).
    let path = match a.kind {
        Kind::Pageview => state.string(conn, &a.path)?,
        Kind::Event | Kind::Heartbeat => 0,
    };

    let mut iter = near.into_iter();
    let (mut visit, is_new) = match iter.next() {
        Some(first) => (first, false),
        None => (
            Visit {
                id: 0,
                visitor,
                first_at: a.at,
                last_at: a.at,
                ..Visit::default()
            },
            true,
        ),
    };
    let before = visit.clone();
    for other in iter {
        // Every record of both visits may name the other id now.
        let (from, to) = (
            visit.first_at.min(other.first_at),
            visit.last_at.max(other.last_at),
        );
        changed.extend((bucket_of(from)..=bucket_of(to)).map(|b| (a.site.0, b)));
        merge(conn, a.site.0, &mut visit, other)?;
    }
    // The attributes' string numbers, only when this activity describes the visit.
    let describes = match a.kind {
        Kind::Pageview => visit.pv_first_at.is_none_or(|t| a.at < t),
        Kind::Event | Kind::Heartbeat => {
            visit.pv_first_at.is_none() && (is_new || a.at < visit.first_at)
        }
    };
    let ids = if describes {
        Some(attr_ids(conn, state, &a.attrs)?)
    } else {
        None
    };
    apply(&mut visit, a, path, ids);

    if is_new {
        insert_visit(conn, a.site.0, &mut visit)?;
    } else {
        update_visit(conn, &before, &visit)?;
    }

    // The block of the session's time holds the session; the activity's, the pageview or event.
    changed.extend(
        [before.pv_first_at.filter(|_| !is_new), visit.pv_first_at]
            .into_iter()
            .flatten()
            .chain((a.kind != Kind::Heartbeat).then_some(a.at))
            .map(|at| (a.site.0, bucket_of(at))),
    );
    match a.kind {
        Kind::Pageview => {
            let hostname = state.string(conn, &a.hostname)?;
            conn.prepare_cached(
                "INSERT INTO pageviews (site, at, seq, visit, hostname, path)
                 VALUES (?1, ?2, (SELECT coalesce(max(seq) + 1, 0) FROM pageviews
                                  WHERE site = ?1 AND at = ?2), ?3, ?4, ?5)",
            )?
            .execute(params![a.site.0, a.at, visit.id, hostname, path])?;
        }
        Kind::Event => {
            let name = state.string(conn, a.name.as_deref().unwrap_or_default())?;
            conn.prepare_cached(
                "INSERT INTO events (site, at, seq, visit, name, props)
                 VALUES (?1, ?2, (SELECT coalesce(max(seq) + 1, 0) FROM events
                                  WHERE site = ?1 AND at = ?2), ?3, ?4, ?5)",
            )?
            .execute(params![a.site.0, a.at, visit.id, name, a.props])?;
        }
        Kind::Heartbeat => {}
    }
    Ok(visit.visitor)
}

fn attr_ids(conn: &Connection, state: &mut State, attrs: &Attrs) -> Result<AttrIds> {
    Ok(AttrIds {
        hostname: state.opt(conn, attrs.hostname.as_deref())?,
        referrer: state.opt(conn, attrs.referrer.as_deref())?,
        utm: [
            state.opt(conn, attrs.utm_source.as_deref())?,
            state.opt(conn, attrs.utm_medium.as_deref())?,
            state.opt(conn, attrs.utm_campaign.as_deref())?,
            state.opt(conn, attrs.utm_term.as_deref())?,
            state.opt(conn, attrs.utm_content.as_deref())?,
        ],
        country: attrs.country.clone(),
        browser: state.opt(conn, attrs.browser.as_deref())?,
        os: state.opt(conn, attrs.os.as_deref())?,
        device: state.opt(conn, attrs.device.as_deref())?,
        language: state.opt(conn, attrs.language.as_deref())?,
        screen: state.opt(conn, attrs.screen.as_deref())?,
    })
}

/// Adds one activity to a visit in memory; `describing`: the activity's attributes when it
/// becomes the one the visit describes (its first pageview, or its first activity while it
/// has no pageview).
fn apply(visit: &mut Visit, a: &Activity, path: i64, describing: Option<AttrIds>) {
    visit.first_at = visit.first_at.min(a.at);
    visit.last_at = visit.last_at.max(a.at);
    if let Some(ids) = describing {
        visit.attrs = ids;
    }
    match a.kind {
        Kind::Pageview => {
            visit.pageviews += 1;
            if visit.pv_first_at.is_none_or(|t| a.at < t) {
                visit.pv_first_at = Some(a.at);
                visit.entry = Some(path);
            }
            if visit.pv_last_at.is_none_or(|t| a.at >= t) {
                visit.pv_last_at = Some(a.at);
                visit.exit = Some(path);
            }
        }
        Kind::Event => visit.events += 1,
        Kind::Heartbeat => {}
    }
}

/// Folds the later visit `other` into `visit` and deletes it.
///
/// The smaller of the two ids survives, so that a visitor's smallest visit id (their number in
/// the statistics, `crate::stats::blocks`) never changes.
fn merge(conn: &Connection, site: i64, visit: &mut Visit, other: Visit) -> Result<()> {
    let (keep, drop, span) = if other.id < visit.id {
        (other.id, visit.id, (visit.first_at, visit.last_at))
    } else {
        (visit.id, other.id, (other.first_at, other.last_at))
    };
    for table in ["pageviews", "events"] {
        conn.prepare_cached(&format!(
            "UPDATE {table} SET visit = ?1
             WHERE site = ?2 AND at BETWEEN ?3 AND ?4 AND visit = ?5"
        ))?
        .execute(params![keep, site, span.0, span.1, drop])?;
    }
    conn.prepare_cached("DELETE FROM visits WHERE id = ?1")?
        .execute([drop])?;
    visit.id = keep;

    let other_describes = match (visit.pv_first_at, other.pv_first_at) {
        (None, Some(_)) => true,
        (Some(mine), Some(theirs)) => theirs < mine,
        (None, None) => other.first_at < visit.first_at,
        (Some(_), None) => false,
    };
    if other_describes {
        visit.pv_first_at = other.pv_first_at;
        visit.entry = other.entry;
        visit.attrs = other.attrs.clone();
    }
    if other.pv_last_at.is_some()
        && (visit.pv_last_at.is_none() || other.pv_last_at >= visit.pv_last_at)
    {
        visit.pv_last_at = other.pv_last_at;
        visit.exit = other.exit;
    }
    visit.first_at = visit.first_at.min(other.first_at);
    visit.last_at = visit.last_at.max(other.last_at);
    visit.pageviews += other.pageviews;
    visit.events += other.events;
    Ok(())
}

fn insert_visit(conn: &Connection, site: i64, v: &mut Visit) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO visits (site, visitor, first_at, last_at, pv_first_at, pv_last_at, pageviews,
             events, entry, exit, hostname, referrer, utm_source, utm_medium, utm_campaign,
             utm_term, utm_content, country, browser, os, device, language, screen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21, ?22, ?23)",
    )?
    .execute(params_from_iter(
        [&site as &dyn ToSql, &v.visitor]
            .into_iter()
            .chain(row_values(v)),
    ))?;
    v.id = conn.last_insert_rowid();
    Ok(())
}

/// The values of the columns `first_at` to `screen`, in the table's order.
fn row_values(v: &Visit) -> [&dyn ToSql; 21] {
    let a = &v.attrs;
    [
        &v.first_at,
        &v.last_at,
        &v.pv_first_at,
        &v.pv_last_at,
        &v.pageviews,
        &v.events,
        &v.entry,
        &v.exit,
        &a.hostname,
        &a.referrer,
        &a.utm[0],
        &a.utm[1],
        &a.utm[2],
        &a.utm[3],
        &a.utm[4],
        &a.country,
        &a.browser,
        &a.os,
        &a.device,
        &a.language,
        &a.screen,
    ]
}

/// Writes what changed; the common case (a later activity) touches only the counters, the
/// times and the exit page.
fn update_visit(conn: &Connection, before: &Visit, v: &Visit) -> Result<()> {
    let described = before.id == v.id
        && before.pv_first_at == v.pv_first_at
        && before.entry == v.entry
        && before.attrs == v.attrs
        && before.first_at == v.first_at;
    if described {
        conn.prepare_cached(
            "UPDATE visits SET last_at = ?2, pv_last_at = ?3, pageviews = ?4, events = ?5,
                 exit = ?6 WHERE id = ?1",
        )?
        .execute(params![
            v.id,
            v.last_at,
            v.pv_last_at,
            v.pageviews,
            v.events,
            v.exit
        ])?;
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE visits SET first_at = ?2, last_at = ?3, pv_first_at = ?4, pv_last_at = ?5,
             pageviews = ?6, events = ?7, entry = ?8, exit = ?9, hostname = ?10, referrer = ?11,
             utm_source = ?12, utm_medium = ?13, utm_campaign = ?14, utm_term = ?15,
             utm_content = ?16, country = ?17, browser = ?18, os = ?19, device = ?20,
             language = ?21, screen = ?22
         WHERE id = ?1",
    )?
    .execute(params_from_iter(
        std::iter::once(&v.id as &dyn ToSql).chain(row_values(v)),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    const MIN: i64 = 60_000;
    const T0: i64 = 1_736_935_200_000; // 2025-01-15T10:00:00Z

    fn act(kind: Kind, at: i64, visitor: i64, path: &str) -> Activity {
        Activity {
            site: crate::websites::SiteNum(1),
            at,
            kind,
            visitor,
            previous_visitor: None,
            hostname: "example.com".into(),
            path: path.into(),
            attrs: Attrs {
                hostname: Some("example.com".into()),
                referrer: Some(format!("ref-of{path}")),
                country: Some("DE".into()),
                ..Attrs::default()
            },
            name: (kind == Kind::Event).then(|| "Signup".to_string()),
            props: None,
        }
    }

    fn pv(at: i64, visitor: i64, path: &str) -> Activity {
        act(Kind::Pageview, at, visitor, path)
    }

    /// (visitor, first_at, last_at, pv_first_at, pageviews, events, entry, exit, referrer),
    /// sorted: what a visit is, whatever its id.
    type Summary = (
        i64,
        i64,
        i64,
        Option<i64>,
        i64,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
    );

    fn visits(conn: &Connection) -> Vec<Summary> {
        let mut stmt = conn
            .prepare(
                "SELECT visitor, first_at, last_at, pv_first_at, pageviews, events,
                        (SELECT value FROM strings WHERE id = entry),
                        (SELECT value FROM strings WHERE id = exit),
                        (SELECT value FROM strings WHERE id = referrer)
                 FROM visits ORDER BY visitor, first_at",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    /// Each pageview's and event's time with its visit's first activity: the grouping.
    fn grouping(conn: &Connection) -> Vec<(i64, i64)> {
        let mut stmt = conn
            .prepare(
                "SELECT a.at, v.first_at FROM (SELECT at, visit FROM pageviews
                                               UNION ALL SELECT at, visit FROM events) a
                 JOIN visits v ON v.id = a.visit ORDER BY a.at, v.first_at",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn record(conn: &Connection, store: &Store, acts: &[Activity]) {
        conn.execute_batch("BEGIN").unwrap();
        store.record(conn, acts).unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn a_gap_of_29_59_continues_and_30_00_starts_a_new_visit() {
        let (_dir, conn) = crate::db::test_database();
        let store = Store::new();
        let second = 1000;
        record(
            &conn,
            &store,
            &[
                pv(T0, 7, "/a"),
                pv(T0 + 30 * MIN - second, 7, "/b"),
                pv(T0 + 30 * MIN - second + 30 * MIN, 7, "/c"),
            ],
        );
        let v = visits(&conn);
        assert_eq!(v.len(), 2, "{v:?}");
        assert_eq!(v[0].4, 2);
        assert_eq!(
            (v[0].6.as_deref(), v[0].7.as_deref()),
            (Some("/a"), Some("/b"))
        );
        assert_eq!(v[1].4, 1);
        assert_eq!(v[1].1, T0 + 60 * MIN - second);
    }

    #[test]
    fn heartbeats_and_events_extend_the_visit_without_rows() {
        let (_dir, conn) = crate::db::test_database();
        let store = Store::new();
        let mut acts = vec![pv(T0, 7, "/a")];
        for i in 1..=8 {
            acts.push(act(Kind::Heartbeat, T0 + i * 15_000, 7, "/a"));
        }
        acts.push(act(Kind::Event, T0 + 125_000, 7, "/a"));
        acts.push(pv(T0 + 130_000, 7, "/b"));
        record(&conn, &store, &acts);
        let v = visits(&conn);
        assert_eq!(v.len(), 1);
        let (_, first, last, pv_first, pageviews, events, entry, exit, referrer) = &v[0];
        assert_eq!((*first, *last, *pv_first), (T0, T0 + 130_000, Some(T0)));
        assert_eq!((*pageviews, *events), (2, 1));
        assert_eq!(
            (entry.as_deref(), exit.as_deref()),
            (Some("/a"), Some("/b"))
        );
        assert_eq!(referrer.as_deref(), Some("ref-of/a"));
        let rows: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM pageviews) + (SELECT count(*) FROM events)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 3, "heartbeats are not stored as rows");
    }

    #[test]
    fn an_activity_bridging_two_visits_merges_them() {
        let (_dir, conn) = crate::db::test_database();
        let store = Store::new();
        record(
            &conn,
            &store,
            &[pv(T0, 7, "/a"), pv(T0 + 40 * MIN, 7, "/c")],
        );
        assert_eq!(visits(&conn).len(), 2);
        record(&conn, &store, &[act(Kind::Event, T0 + 20 * MIN, 7, "/b")]);
        let v = visits(&conn);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!((v[0].4, v[0].5), (2, 1));
        assert_eq!(
            (v[0].6.as_deref(), v[0].7.as_deref()),
            (Some("/a"), Some("/c"))
        );
        let g = grouping(&conn);
        assert!(g.iter().all(|(_, first)| *first == T0), "{g:?}");
    }

    #[test]
    fn an_earlier_pageview_becomes_the_entry_and_describes_the_visit() {
        let (_dir, conn) = crate::db::test_database();
        let store = Store::new();
        record(
            &conn,
            &store,
            &[act(Kind::Event, T0, 7, "/x"), pv(T0 + MIN, 7, "/b")],
        );
        record(&conn, &store, &[pv(T0 - MIN, 7, "/a")]);
        let v = visits(&conn);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].3, Some(T0 - MIN));
        assert_eq!(
            (v[0].6.as_deref(), v[0].7.as_deref()),
            (Some("/a"), Some("/b"))
        );
        assert_eq!(v[0].8.as_deref(), Some("ref-of/a"));
    }

    #[test]
    fn the_previous_dates_id_continues_a_visit_but_never_starts_one() {
        let (_dir, conn) = crate::db::test_database();
        let store = Store::new();
        record(&conn, &store, &[pv(T0, 100, "/a")]);
        let mut next = pv(T0 + 10 * MIN, 200, "/b");
        next.previous_visitor = Some(100);
        record(&conn, &store, &[next]);
        let v = visits(&conn);
        assert_eq!(v.len(), 1, "continued under the old id: {v:?}");
        assert_eq!((v[0].0, v[0].4), (100, 2));
        let mut later = pv(T0 + 80 * MIN, 200, "/c");
        later.previous_visitor = Some(100);
        record(&conn, &store, &[later]);
        let v = visits(&conn);
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].0, 200, "a new visit takes the current id");
    }

    #[test]
    fn any_arrival_order_gives_the_same_visits() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut trace = Vec::new();
        for visitor in 1..=12 {
            let mut at = T0 + rng.random_range(0..3 * 24 * 60) * MIN;
            for _ in 0..rng.random_range(5..40) {
                let kind = match rng.random_range(0..10) {
                    0..=5 => Kind::Pageview,
                    6..=7 => Kind::Heartbeat,
                    _ => Kind::Event,
                };
                trace.push(act(
                    kind,
                    at,
                    visitor,
                    &format!("/p{}", rng.random_range(0..6)),
                ));
                // Mostly short gaps, sometimes around and over 30 minutes, sometimes days.
                at += match rng.random_range(0..10) {
                    0 => 29 * MIN + rng.random_range(0..2 * MIN),
                    1 => rng.random_range(1..48) * 60 * MIN,
                    _ => rng.random_range(1..10 * MIN),
                };
            }
        }
        trace.sort_by_key(|a| a.at);
        let (_d1, in_order) = crate::db::test_database();
        record(&in_order, &Store::new(), &trace);
        let expected = (visits(&in_order), grouping(&in_order));
        assert!(
            expected.0.len() > 12,
            "the trace has several visits per visitor"
        );
        for round in 0..5 {
            let mut shuffled = trace.clone();
            shuffled.shuffle(&mut rng);
            let (_d2, conn) = crate::db::test_database();
            let store = Store::new();
            // In several requests, as an import would send it.
            for chunk in shuffled.chunks(37) {
                record(&conn, &store, chunk);
            }
            assert_eq!((visits(&conn), grouping(&conn)), expected, "round {round}");
        }
    }

    /// Every statistics block that is not marked equals the block built from the rows now,
    /// however the activities arrived and whenever blocks were rewritten in between.
    #[test]
    fn every_change_marks_the_blocks_it_touches() {
        use crate::stats::blocks;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut trace = Vec::new();
        for visitor in 1..=10 {
            let mut at = T0 + rng.random_range(0..24 * 60) * MIN;
            for _ in 0..rng.random_range(5..30) {
                let kind = match rng.random_range(0..10) {
                    0..=5 => Kind::Pageview,
                    6..=7 => Kind::Heartbeat,
                    _ => Kind::Event,
                };
                trace.push(act(
                    kind,
                    at,
                    visitor,
                    &format!("/p{}", rng.random_range(0..4)),
                ));
                at += match rng.random_range(0..10) {
                    0 => 29 * MIN + rng.random_range(0..2 * MIN),
                    1 => rng.random_range(1..10) * 60 * MIN,
                    _ => rng.random_range(1..10 * MIN),
                };
            }
        }
        trace.shuffle(&mut rng);
        let (_dir, conn) = crate::db::test_database();
        let store = Store::new();
        for chunk in trace.chunks(13) {
            record(&conn, &store, chunk);
            if rng.random_bool(0.5) {
                blocks::refresh(&conn, None, i64::MAX, rng.random_range(1..50)).unwrap();
            }
        }
        blocks::refresh(&conn, None, i64::MAX, 10).unwrap();
        let (stale, checked) = blocks::stale(&conn);
        assert_eq!(
            stale,
            Vec::new(),
            "every unmarked block is what the rows say"
        );
        let stored: i64 = conn
            .query_row(
                "SELECT count(*) FROM stats_blocks WHERE part = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(stored > 20, "the trace fills many blocks");
        assert!(checked > 10);
        // And once everything is rewritten, nothing is marked and every bucket with activity
        // has its block.
        while blocks::refresh(&conn, None, i64::MAX, 100).unwrap() > 0 {}
        let missing: i64 = conn
            .query_row(
                "SELECT count(*) FROM pageviews p WHERE NOT EXISTS (SELECT 1 FROM stats_blocks b
                 WHERE b.site = p.site AND b.bucket = p.at / 900000)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(missing, 0);
    }

    #[test]
    fn a_merge_keeps_the_smaller_visit_id() {
        let (_dir, conn) = crate::db::test_database();
        let store = Store::new();
        // Two visits 40 minutes apart, then a pageview between them joins them.
        record(&conn, &store, &[pv(T0 + 40 * MIN, 1, "/b")]);
        record(&conn, &store, &[pv(T0, 1, "/a")]);
        let first: i64 = conn
            .query_row("SELECT min(id) FROM visits", [], |r| r.get(0))
            .unwrap();
        record(&conn, &store, &[pv(T0 + 20 * MIN, 1, "/c")]);
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM visits")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids, [first]);
        let orphans: i64 = conn
            .query_row(
                "SELECT count(*) FROM pageviews WHERE visit <> ?1",
                [first],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0);
    }

    #[test]
    fn a_rolled_back_job_leaves_no_stale_string_numbers() {
        let (_dir, conn) = crate::db::test_database();
        let store = Store::new();
        conn.execute_batch("BEGIN").unwrap();
        store.record(&conn, &[pv(T0, 7, "/new")]).unwrap();
        conn.execute_batch("ROLLBACK").unwrap();
        // The writer counts the rollback of its batch; the next job starts over.
        writer::note_rollback();
        record(&conn, &store, &[pv(T0, 7, "/new")]);
        let path: String = conn
            .query_row(
                "SELECT s.value FROM pageviews p JOIN strings s ON s.id = p.path",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(path, "/new");
    }
}
