//! The figures of SPEC 4, computed from the stored sessions, pageviews and events.
//!
//! A query loads what its period holds (the sessions whose time is in it, the pageviews and
//! events in it, and with filters every session those belong to), selects sessions by the
//! filters, and counts in memory. Distinct visitors are counted exactly, with sets.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, params};

use super::period::{Period, bucket_of};
use crate::error::Result;

/// The session attributes a filter or a breakdown can name, in [`Session::attrs`] order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Entry,
    Exit,
    Hostname,
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    Country,
    Browser,
    Os,
    Device,
    Language,
    Screen,
}

const DIMS: usize = 15;

/// The columns of `visits` behind each [`Dim`], in order.
const DIM_COLUMNS: &str = "entry, exit, hostname, referrer, utm_source, utm_medium, utm_campaign, \
     utm_term, utm_content, country, browser, os, device, language, screen";

/// A filter's wanted value: the empty value (`(none)`), or a string's number (`None` inside
/// when the string was never stored, so nothing matches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    Empty,
    Value(Option<i64>),
}

impl Want {
    fn matches(&self, value: Option<i64>) -> bool {
        match self {
            Want::Empty => value.is_none(),
            Want::Value(want) => want.is_some() && *want == value,
        }
    }
}

/// The filters of a query, resolved to string numbers (SPEC 4 "Selection").
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub attrs: Vec<(Dim, Want)>,
    pub path: Option<Want>,
    pub hostname: Option<Want>,
    pub event: Option<Want>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
            && self.path.is_none()
            && self.hostname.is_none()
            && self.event.is_none()
    }
}

/// A country code as a number, so that it sits among the string numbers: its two letters.
pub fn country_number(code: &str) -> Option<i64> {
    let b = code.as_bytes();
    (b.len() == 2).then(|| -(i64::from(b[0]) << 8 | i64::from(b[1])))
}

fn country_code(number: i64) -> String {
    let n = -number;
    String::from_utf8_lossy(&[(n >> 8) as u8, (n & 0xff) as u8]).into_owned()
}

#[derive(Clone, Debug)]
struct Session {
    visitor: i64,
    first_at: i64,
    last_at: i64,
    /// Its first pageview; `None` for a session without one (never counted).
    at: Option<i64>,
    pageviews: i64,
    events: i64,
    attrs: [Option<i64>; DIMS],
}

impl Session {
    fn duration_ms(&self) -> i64 {
        self.last_at - self.first_at
    }
}

struct Pageview {
    at: i64,
    visit: i64,
    visitor: i64,
    hostname: i64,
    path: i64,
}

struct Event {
    visit: i64,
    visitor: i64,
    name: i64,
    props: Option<String>,
}

/// What one period holds, with the selection of its filters.
struct Loaded<'f> {
    filters: &'f Filters,
    start: i64,
    end: i64,
    sessions: HashMap<i64, Session>,
    pageviews: Vec<Pageview>,
    events: Vec<Event>,
    with_path: Option<HashSet<i64>>,
    with_hostname: Option<HashSet<i64>>,
    with_event: Option<HashSet<i64>>,
}

const SESSION_COLUMNS: &str = "id, visitor, first_at, last_at, pv_first_at, pageviews, events";

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Session)> {
    let mut attrs = [None; DIMS];
    for (i, slot) in attrs.iter_mut().enumerate() {
        *slot = if i == Dim::Country as usize {
            r.get::<_, Option<String>>(7 + i)?
                .and_then(|c| country_number(&c))
        } else {
            r.get(7 + i)?
        };
    }
    Ok((
        r.get(0)?,
        Session {
            visitor: r.get(1)?,
            first_at: r.get(2)?,
            last_at: r.get(3)?,
            at: r.get(4)?,
            pageviews: r.get(5)?,
            events: r.get(6)?,
            attrs,
        },
    ))
}

impl<'f> Loaded<'f> {
    fn load(
        conn: &Connection,
        site: i64,
        start: i64,
        end: i64,
        filters: &'f Filters,
        with_events: bool,
    ) -> Result<Loaded<'f>> {
        let mut stmt = conn.prepare_cached(
            "SELECT p.at, p.visit, v.visitor, p.hostname, p.path
             FROM pageviews p JOIN visits v ON v.id = p.visit
             WHERE p.site = ?1 AND p.at >= ?2 AND p.at < ?3",
        )?;
        let pageviews = stmt
            .query_map(params![site, start, end], |r| {
                Ok(Pageview {
                    at: r.get(0)?,
                    visit: r.get(1)?,
                    visitor: r.get(2)?,
                    hostname: r.get(3)?,
                    path: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let events = if with_events {
            let mut stmt = conn.prepare_cached(
                "SELECT e.visit, v.visitor, e.name, e.props
                 FROM events e JOIN visits v ON v.id = e.visit
                 WHERE e.site = ?1 AND e.at >= ?2 AND e.at < ?3",
            )?;
            stmt.query_map(params![site, start, end], |r| {
                Ok(Event {
                    visit: r.get(0)?,
                    visitor: r.get(1)?,
                    name: r.get(2)?,
                    props: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS}, {DIM_COLUMNS} FROM visits
             WHERE site = ?1 AND pv_first_at >= ?2 AND pv_first_at < ?3"
        ))?;
        let mut sessions = stmt
            .query_map(params![site, start, end], session_from_row)?
            .collect::<rusqlite::Result<HashMap<_, _>>>()?;

        let mut loaded = Loaded {
            filters,
            start,
            end,
            sessions: HashMap::new(),
            pageviews,
            events,
            with_path: None,
            with_hostname: None,
            with_event: None,
        };
        if !filters.is_empty() {
            // Every session a counted pageview or event could belong to.
            let mut missing: Vec<i64> = loaded
                .pageviews
                .iter()
                .map(|p| p.visit)
                .chain(loaded.events.iter().map(|e| e.visit))
                .filter(|id| !sessions.contains_key(id))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            for chunk in missing.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let mut stmt = conn.prepare(&format!(
                    "SELECT {SESSION_COLUMNS}, {DIM_COLUMNS} FROM visits WHERE id IN ({marks})"
                ))?;
                for row in stmt.query_map(rusqlite::params_from_iter(chunk), session_from_row)? {
                    let (id, s) = row?;
                    sessions.insert(id, s);
                }
            }
            // Filters on what a session contains look at all of its activity, also outside
            // the period.
            let window = sessions.values().filter(|s| s.pageviews > 0).fold(
                None,
                |w: Option<(i64, i64)>, s| {
                    Some(w.map_or((s.first_at, s.last_at), |(a, b)| {
                        (a.min(s.first_at), b.max(s.last_at))
                    }))
                },
            );
            let containing =
                |table: &str, column: &str, want: &Option<Want>| -> Result<Option<HashSet<i64>>> {
                    let (Some(want), Some((from, to))) = (want, window) else {
                        return Ok(want.as_ref().map(|_| HashSet::new()));
                    };
                    let value = match want {
                        Want::Value(Some(v)) => *v,
                        // No stored activity has an empty path, hostname or name.
                        Want::Value(None) | Want::Empty => return Ok(Some(HashSet::new())),
                    };
                    let mut stmt = conn.prepare_cached(&format!(
                        "SELECT DISTINCT visit FROM {table}
                     WHERE site = ?1 AND at >= ?2 AND at <= ?3 AND {column} = ?4"
                    ))?;
                    let set = stmt
                        .query_map(params![site, from, to, value], |r| r.get(0))?
                        .collect::<rusqlite::Result<HashSet<i64>>>()?;
                    Ok(Some(set))
                };
            loaded.with_path = containing("pageviews", "path", &filters.path)?;
            loaded.with_hostname = containing("pageviews", "hostname", &filters.hostname)?;
            if matches!(filters.event, Some(Want::Value(_))) {
                loaded.with_event = containing("events", "name", &filters.event)?;
            }
        }
        loaded.sessions = sessions;
        Ok(loaded)
    }

    /// Whether the filters select the session `id` (SPEC 4 "Selection").
    fn selected(&self, id: i64) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        let f = self.filters;
        s.pageviews > 0
            && f.attrs
                .iter()
                .all(|(dim, want)| want.matches(s.attrs[*dim as usize]))
            && self.with_path.as_ref().is_none_or(|set| set.contains(&id))
            && self
                .with_hostname
                .as_ref()
                .is_none_or(|set| set.contains(&id))
            && match &f.event {
                None => true,
                Some(Want::Empty) => s.events == 0,
                Some(Want::Value(_)) => self
                    .with_event
                    .as_ref()
                    .is_some_and(|set| set.contains(&id)),
            }
    }

    /// The pageviews that count: in the period, of selected sessions, and of the filtered path
    /// and hostname.
    fn counted_pageviews(&self) -> impl Iterator<Item = &Pageview> {
        let f = self.filters;
        let all = f.is_empty();
        self.pageviews.iter().filter(move |p| {
            all || (self.selected(p.visit)
                && f.path.as_ref().is_none_or(|w| w.matches(Some(p.path)))
                && f.hostname
                    .as_ref()
                    .is_none_or(|w| w.matches(Some(p.hostname))))
        })
    }

    /// The sessions that count: selected, with their time in the period.
    fn counted_sessions(&self) -> impl Iterator<Item = (i64, &Session)> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.at.is_some_and(|at| at >= self.start && at < self.end))
            .filter(|(id, s)| {
                if self.filters.is_empty() {
                    s.pageviews > 0
                } else {
                    self.selected(**id)
                }
            })
            .map(|(id, s)| (*id, s))
    }

    /// The events that count: all in the period without filters, else those of selected
    /// sessions.
    fn counted_events(&self) -> impl Iterator<Item = &Event> {
        let all = self.filters.is_empty();
        self.events
            .iter()
            .filter(move |e| all || self.selected(e.visit))
    }
}

/// The totals behind `main` and one time-series bucket.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    visitors: HashSet<i64>,
    pub pageviews: u64,
    pub sessions: u64,
    pub bounces: u64,
    pub duration_ms: i64,
    pub views: i64,
}

impl Tally {
    pub fn unique_visitors(&self) -> u64 {
        self.visitors.len() as u64
    }

    fn add_session(&mut self, s: &Session) {
        self.sessions += 1;
        self.bounces += u64::from(s.pageviews == 1);
        self.duration_ms += s.duration_ms();
        self.views += s.pageviews;
    }

    pub fn bounce_rate(&self) -> f64 {
        percent(self.bounces, self.sessions)
    }

    pub fn avg_duration(&self) -> f64 {
        if self.sessions == 0 {
            0.0
        } else {
            round1(self.duration_ms as f64 / 1000.0 / self.sessions as f64)
        }
    }

    pub fn views_per_session(&self) -> f64 {
        if self.sessions == 0 {
            0.0
        } else {
            round2(self.views as f64 / self.sessions as f64)
        }
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `part ÷ whole × 100`, 2 decimals; 0 when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round2(part as f64 * 100.0 / whole as f64)
    }
}

/// The totals of `main` over `period`.
pub fn main(conn: &Connection, site: i64, period: &Period, filters: &Filters) -> Result<Tally> {
    let loaded = Loaded::load(conn, site, period.start, period.end, filters, false)?;
    let mut tally = Tally::default();
    for p in loaded.counted_pageviews() {
        tally.pageviews += 1;
        tally.visitors.insert(p.visitor);
    }
    for (_, s) in loaded.counted_sessions() {
        tally.add_session(s);
    }
    Ok(tally)
}

/// One tally per bucket (`starts`: ascending bucket starts, the first at `period.start`).
pub fn timeseries(
    conn: &Connection,
    site: i64,
    period: &Period,
    filters: &Filters,
    starts: &[i64],
) -> Result<Vec<Tally>> {
    let loaded = Loaded::load(conn, site, period.start, period.end, filters, false)?;
    let mut tallies = vec![Tally::default(); starts.len()];
    for p in loaded.counted_pageviews() {
        if let Some(i) = bucket_of(starts, p.at) {
            tallies[i].pageviews += 1;
            tallies[i].visitors.insert(p.visitor);
        }
    }
    for (_, s) in loaded.counted_sessions() {
        if let Some(i) = s.at.and_then(|at| bucket_of(starts, at)) {
            tallies[i].add_session(s);
        }
    }
    Ok(tallies)
}

/// What a breakdown groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group {
    Pages,
    Hostnames,
    Sessions(Dim),
    Events,
    /// The values of one prop of one event name (the name's string number, `None` when the
    /// name was never stored).
    EventProp {
        name: Option<i64>,
        prop: String,
    },
}

/// A breakdown row before its value is named.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// A string number, a country number (negative), the text of a prop, or nothing.
    pub key: Key,
    pub visitors: u64,
    /// Pageviews, sessions or events, by the group.
    pub count: u64,
    pub bounces: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Key {
    #[default]
    Empty,
    Number(i64),
    Text(String),
}

#[derive(Default)]
struct Acc {
    visitors: HashSet<i64>,
    count: u64,
    bounces: u64,
}

/// Every row of a breakdown (unsorted) and `main.uniqueVisitors` under the same filters.
pub fn breakdown(
    conn: &Connection,
    site: i64,
    period: &Period,
    filters: &Filters,
    group: &Group,
) -> Result<(Vec<Row>, u64)> {
    let with_events = matches!(group, Group::Events | Group::EventProp { .. });
    let loaded = Loaded::load(conn, site, period.start, period.end, filters, with_events)?;
    let mut all_visitors = HashSet::new();
    for p in loaded.counted_pageviews() {
        all_visitors.insert(p.visitor);
    }
    let mut groups: HashMap<Key, Acc> = HashMap::new();
    let mut add = |key: Key, visitor: i64, bounce: bool| {
        let acc = groups.entry(key).or_default();
        acc.visitors.insert(visitor);
        acc.count += 1;
        acc.bounces += u64::from(bounce);
    };
    match group {
        Group::Pages | Group::Hostnames => {
            for p in loaded.counted_pageviews() {
                let value = if *group == Group::Pages {
                    p.path
                } else {
                    p.hostname
                };
                add(Key::Number(value), p.visitor, false);
            }
        }
        Group::Sessions(dim) => {
            for (_, s) in loaded.counted_sessions() {
                let key = s.attrs[*dim as usize].map_or(Key::Empty, Key::Number);
                add(key, s.visitor, s.pageviews == 1);
            }
        }
        Group::Events => {
            for e in loaded.counted_events() {
                add(Key::Number(e.name), e.visitor, false);
            }
        }
        Group::EventProp { name, prop } => {
            for e in loaded.counted_events() {
                if Some(e.name) != *name {
                    continue;
                }
                let value = e
                    .props
                    .as_deref()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                    .and_then(|props| props.get(prop).map(prop_text));
                add(value.map_or(Key::Empty, Key::Text), e.visitor, false);
            }
        }
    }
    let rows = groups
        .into_iter()
        .map(|(key, acc)| Row {
            key,
            visitors: acc.visitors.len() as u64,
            count: acc.count,
            bounces: acc.bounces,
        })
        .collect();
    Ok((rows, all_visitors.len() as u64))
}

fn prop_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text of row keys: string numbers looked up, country numbers spelled out.
pub fn name_keys(conn: &Connection, keys: &[&Key]) -> Result<HashMap<i64, String>> {
    let mut ids: Vec<i64> = keys
        .iter()
        .filter_map(|k| match k {
            Key::Number(n) if *n >= 0 => Some(*n),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut names: HashMap<i64, String> = keys
        .iter()
        .filter_map(|k| match k {
            Key::Number(n) if *n < 0 => Some((*n, country_code(*n))),
            _ => None,
        })
        .collect();
    let mut stmt = conn.prepare_cached("SELECT value FROM strings WHERE id = ?1")?;
    for id in ids {
        let value: Option<String> =
            stmt.query_row([id], |r| r.get(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
        names.insert(id, value.unwrap_or_default());
    }
    Ok(names)
}

/// A string's number, if it was ever stored.
pub fn string_number(conn: &Connection, value: &str) -> Result<Option<i64>> {
    match conn
        .prepare_cached("SELECT id FROM strings WHERE value = ?1")?
        .query_row([value], |r| r.get(0))
    {
        Ok(id) => Ok(Some(id)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
