//! The figures of SPEC 4, computed from the stored sessions, pageviews and events.
//!
//! A query loads what its period holds (the sessions whose time is in it, the pageviews and
//! events in it, and with filters every session those belong to), selects sessions by the
//! filters, and counts in memory. Distinct visitors are counted exactly, with sets.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;

use super::blocks::{self, Block};
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

pub(crate) const DIMS: usize = 15;

/// The columns of `visits` behind each [`Dim`], in order.
pub(crate) const DIM_COLUMNS: &str = "entry, exit, hostname, referrer, utm_source, utm_medium, utm_campaign, \
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

/// A session as the statistics see it. `visitor` is the visitor's number (see
/// `super::blocks`).
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub visitor: i64,
    pub first_at: i64,
    pub last_at: i64,
    /// Its first pageview; `None` for a session without one (never counted).
    pub at: Option<i64>,
    pub pageviews: i64,
    pub events: i64,
    pub attrs: [Option<i64>; DIMS],
}

impl Session {
    fn duration_ms(&self) -> i64 {
        self.last_at - self.first_at
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pageview {
    pub at: i64,
    pub visit: i64,
    pub visitor: i64,
    pub hostname: i64,
    pub path: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub at: i64,
    pub visit: i64,
    pub visitor: i64,
    pub name: i64,
    pub props: Option<String>,
}

/// What one period holds, with the selection of its filters.
struct Loaded<'f> {
    filters: &'f Filters,
    start: i64,
    end: i64,
    /// The sessions whose time is in the period, then (with filters) those that started
    /// outside it but have counted activity in it.
    sessions: Vec<(i64, Session)>,
    /// With filters: whether the filters select each session (by position), and where each
    /// visit id is.
    selection: Vec<bool>,
    index: HashMap<i64, usize>,
    pageviews: Vec<Pageview>,
    events: Vec<Event>,
}

/// Sessions by visit id, straight from `visits` (those that started outside a period but
/// have activity in it). Their visitor numbers are not needed and left 0.
fn sessions_by_id(conn: &Connection, ids: &[i64]) -> Result<Vec<(i64, Session)>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT first_at, last_at, pv_first_at, pageviews, events, {DIM_COLUMNS}
         FROM visits WHERE id = ?1"
    ))?;
    for &id in ids {
        let row = stmt.query_row([id], |r| {
            let mut attrs = [None; DIMS];
            for (i, slot) in attrs.iter_mut().enumerate() {
                *slot = if i == Dim::Country as usize {
                    r.get::<_, Option<String>>(5 + i)?
                        .and_then(|c| country_number(&c))
                } else {
                    r.get(5 + i)?
                };
            }
            Ok(Session {
                visitor: 0,
                first_at: r.get(0)?,
                last_at: r.get(1)?,
                at: r.get(2)?,
                pageviews: r.get(3)?,
                events: r.get(4)?,
                attrs,
            })
        });
        match row {
            Ok(session) => out.push((id, session)),
            Err(rusqlite::Error::QueryReturnedNoRows) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
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
        let block = blocks::load(conn, site, start, end)?;
        let mut loaded = Loaded {
            filters,
            start,
            end,
            sessions: block.sessions,
            selection: Vec::new(),
            index: HashMap::new(),
            pageviews: block.pageviews,
            events: if with_events || filters.event.is_some() {
                block.events
            } else {
                Vec::new()
            },
        };
        if !filters.is_empty() {
            let mut sessions: HashMap<i64, Session> =
                std::mem::take(&mut loaded.sessions).into_iter().collect();
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
            sessions.extend(sessions_by_id(conn, &missing)?);
            // Filters on what a session contains look at all of its activity, also outside
            // the period.
            let window = sessions
                .values()
                .filter(|s| s.pageviews > 0)
                .fold((start, end), |(a, b), s| {
                    (a.min(s.first_at), b.max(s.last_at + 1))
                });
            let mut before = Block::default();
            let mut after = Block::default();
            if filters.path.is_some() || filters.hostname.is_some() || filters.event.is_some() {
                before = blocks::load(conn, site, window.0, start)?;
                after = blocks::load(conn, site, end, window.1)?;
            }
            let pageviews = || {
                before
                    .pageviews
                    .iter()
                    .chain(&loaded.pageviews)
                    .chain(&after.pageviews)
            };
            let containing = |want: &Option<Want>, field: fn(&Pageview) -> i64| {
                want.as_ref().map(|want| match want {
                    Want::Value(Some(v)) => pageviews()
                        .filter(|p| field(p) == *v)
                        .map(|p| p.visit)
                        .collect(),
                    // No pageview has an empty path or hostname.
                    Want::Value(None) | Want::Empty => HashSet::new(),
                })
            };
            let with_path: Option<HashSet<i64>> = containing(&filters.path, |p| p.path);
            let with_hostname: Option<HashSet<i64>> = containing(&filters.hostname, |p| p.hostname);
            let with_event: Option<HashSet<i64>> = match &filters.event {
                Some(Want::Value(name)) => Some(
                    before
                        .events
                        .iter()
                        .chain(&loaded.events)
                        .chain(&after.events)
                        .filter(|e| Some(e.name) == *name)
                        .map(|e| e.visit)
                        .collect(),
                ),
                _ => None,
            };
            // SPEC 4 "Selection".
            let selected = |id: i64, s: &Session| {
                s.pageviews > 0
                    && filters
                        .attrs
                        .iter()
                        .all(|(dim, want)| want.matches(s.attrs[*dim as usize]))
                    && with_path.as_ref().is_none_or(|set| set.contains(&id))
                    && with_hostname.as_ref().is_none_or(|set| set.contains(&id))
                    && match &filters.event {
                        None => true,
                        Some(Want::Empty) => s.events == 0,
                        Some(Want::Value(_)) => {
                            with_event.as_ref().is_some_and(|set| set.contains(&id))
                        }
                    }
            };
            loaded.sessions = sessions.into_iter().collect();
            loaded.selection = loaded
                .sessions
                .iter()
                .map(|(id, s)| selected(*id, s))
                .collect();
            loaded.index = loaded
                .sessions
                .iter()
                .enumerate()
                .map(|(i, (id, _))| (*id, i))
                .collect();
        }
        Ok(loaded)
    }

    /// Whether the filters select the session of visit `id`.
    fn selected(&self, id: i64) -> bool {
        self.index.get(&id).is_some_and(|&i| self.selection[i])
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
    fn counted_sessions(&self) -> impl Iterator<Item = &Session> {
        let all = self.filters.is_empty();
        self.sessions
            .iter()
            .enumerate()
            .filter(move |(i, (_, s))| {
                s.at.is_some_and(|at| at >= self.start && at < self.end)
                    && if all {
                        s.pageviews > 0
                    } else {
                        self.selection[*i]
                    }
            })
            .map(|(_, (_, s))| s)
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
    pub visitors: u64,
    pub pageviews: u64,
    pub sessions: u64,
    pub bounces: u64,
    pub duration_ms: i64,
    pub views: i64,
}

impl Tally {
    fn add_totals(&mut self, t: &blocks::Totals) {
        self.pageviews += t.pageviews;
        self.sessions += t.sessions;
        self.bounces += t.bounces;
        self.duration_ms += t.duration_ms;
        self.views += t.views;
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

/// A set of visitor numbers: one bit each.
#[derive(Default)]
struct Visitors {
    words: Vec<u64>,
}

impl Visitors {
    fn insert(&mut self, visitor: i64) {
        let i = usize::try_from(visitor).unwrap_or(0);
        if i / 64 >= self.words.len() {
            self.words.resize(i / 64 + 1, 0);
        }
        self.words[i / 64] |= 1 << (i % 64);
    }

    fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// Distinct visitors per group: `(group, visitor)` pairs, sorted and counted once.
#[derive(Default)]
struct PerGroup {
    pairs: Vec<u64>,
}

/// Visitor numbers are visit ids, far below 2⁴⁰; groups are below 2²⁴.
const VISITOR_BITS: u32 = 40;

impl PerGroup {
    fn insert(&mut self, group: u32, visitor: i64) {
        let visitor = u64::try_from(visitor).unwrap_or(0) & ((1 << VISITOR_BITS) - 1);
        self.pairs.push(u64::from(group) << VISITOR_BITS | visitor);
    }

    /// The number of distinct visitors of each of `groups` groups.
    fn counts(mut self, groups: usize) -> Vec<u64> {
        radsort::sort(&mut self.pairs);
        let mut counts = vec![0; groups];
        let mut last = None;
        for pair in self.pairs {
            if last != Some(pair) {
                counts[(pair >> VISITOR_BITS) as usize] += 1;
                last = Some(pair);
            }
        }
        counts
    }
}

/// Whether every boundary falls on a bucket's, so that whole buckets' totals compose them.
fn aligned(bounds: impl IntoIterator<Item = i64>) -> bool {
    bounds
        .into_iter()
        .all(|b| b.rem_euclid(blocks::BUCKET_MS) == 0)
}

/// The buckets from the one holding `start` to the one holding `end - 1`.
fn bucket_range(start: i64, end: i64) -> (i64, i64) {
    (blocks::bucket_of(start), blocks::bucket_of(end - 1))
}

/// The totals of `main` over `period`.
pub fn main(conn: &Connection, site: i64, period: &Period, filters: &Filters) -> Result<Tally> {
    if filters.is_empty() && aligned([period.start, period.end]) {
        // Whole buckets: their totals are enough.
        let mut tally = Tally::default();
        let mut visitors = Visitors::default();
        if period.start < period.end {
            blocks::each_totals(
                conn,
                site,
                bucket_range(period.start, period.end),
                |_, t| {
                    tally.add_totals(&t);
                    t.visitors.iter().for_each(|&v| visitors.insert(v));
                    Ok(())
                },
            )?;
        }
        tally.visitors = visitors.len();
        return Ok(tally);
    }
    let loaded = Loaded::load(conn, site, period.start, period.end, filters, false)?;
    let mut tally = Tally::default();
    let mut visitors = Visitors::default();
    for p in loaded.counted_pageviews() {
        tally.pageviews += 1;
        visitors.insert(p.visitor);
    }
    tally.visitors = visitors.len();
    for s in loaded.counted_sessions() {
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
    let mut tallies = vec![Tally::default(); starts.len()];
    if period.start >= period.end {
        return Ok(tallies);
    }
    if filters.is_empty() && aligned(starts.iter().copied().chain([period.end])) {
        let mut visitors = PerGroup::default();
        blocks::each_totals(
            conn,
            site,
            bucket_range(period.start, period.end),
            |bucket, t| {
                if let Some(i) = bucket_of(starts, bucket * blocks::BUCKET_MS) {
                    tallies[i].add_totals(&t);
                    t.visitors
                        .iter()
                        .for_each(|&v| visitors.insert(i as u32, v));
                }
                Ok(())
            },
        )?;
        for (tally, n) in tallies.iter_mut().zip(visitors.counts(starts.len())) {
            tally.visitors = n;
        }
        return Ok(tallies);
    }
    let loaded = Loaded::load(conn, site, period.start, period.end, filters, false)?;
    let mut visitors = PerGroup::default();
    for p in loaded.counted_pageviews() {
        if let Some(i) = bucket_of(starts, p.at) {
            tallies[i].pageviews += 1;
            visitors.insert(i as u32, p.visitor);
        }
    }
    for (tally, n) in tallies.iter_mut().zip(visitors.counts(starts.len())) {
        tally.visitors = n;
    }
    for s in loaded.counted_sessions() {
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

/// Numbers of the rows of a breakdown, by key: a table for string and country numbers (small
/// and dense), a map for the rest.
#[derive(Default)]
struct Rows {
    table: Vec<u32>,
    other: HashMap<Key, u32>,
    keys: Vec<Key>,
    counts: Vec<u64>,
    bounces: Vec<u64>,
    visitors: PerGroup,
}

/// Country numbers are above -2¹⁶; string numbers in the table below 2²².
const TABLE_OFFSET: i64 = 1 << 16;
const TABLE_MAX: i64 = 1 << 22;

impl Rows {
    fn row(&mut self, key: Key) -> u32 {
        let slot = match key {
            Key::Number(n) if (-TABLE_OFFSET..TABLE_MAX).contains(&n) => {
                Some((n + TABLE_OFFSET) as usize)
            }
            _ => None,
        };
        if let Some(slot) = slot
            && let Some(&row) = self.table.get(slot)
            && row != 0
        {
            return row - 1;
        }
        if slot.is_none()
            && let Some(&row) = self.other.get(&key)
        {
            return row;
        }
        let row = self.keys.len() as u32;
        match slot {
            Some(slot) => {
                if slot >= self.table.len() {
                    self.table.resize(slot + 1, 0);
                }
                self.table[slot] = row + 1;
            }
            None => {
                self.other.insert(key.clone(), row);
            }
        }
        self.keys.push(key);
        self.counts.push(0);
        self.bounces.push(0);
        row
    }

    fn add(&mut self, key: Key, visitor: i64, bounce: bool) {
        let row = self.row(key);
        self.counts[row as usize] += 1;
        self.bounces[row as usize] += u64::from(bounce);
        self.visitors.insert(row, visitor);
    }

    fn into_rows(self) -> Vec<Row> {
        let visitors = self.visitors.counts(self.keys.len());
        self.keys
            .into_iter()
            .zip(self.counts)
            .zip(self.bounces)
            .zip(visitors)
            .map(|(((key, count), bounces), visitors)| Row {
                key,
                visitors,
                count,
                bounces,
            })
            .collect()
    }
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
    let mut all_visitors = Visitors::default();
    let mut rows = Rows::default();
    if filters.is_empty() {
        // Everything counts: one block at a time, nothing kept but the rows.
        blocks::each(conn, site, period.start, period.end, |block| {
            block
                .pageviews
                .iter()
                .for_each(|p| all_visitors.insert(p.visitor));
            let sessions = block.sessions.iter().map(|(_, s)| s);
            rows.add_all(
                group,
                block.pageviews.iter(),
                sessions.filter(|s| s.pageviews > 0),
                block.events.iter(),
            );
            Ok(())
        })?;
        return Ok((rows.into_rows(), all_visitors.len()));
    }
    let loaded = Loaded::load(conn, site, period.start, period.end, filters, with_events)?;
    for p in loaded.counted_pageviews() {
        all_visitors.insert(p.visitor);
    }
    rows.add_all(
        group,
        loaded.counted_pageviews(),
        loaded.counted_sessions(),
        loaded.counted_events(),
    );
    Ok((rows.into_rows(), all_visitors.len()))
}

impl Rows {
    /// Adds what `group` groups of these counted pageviews, sessions and events.
    fn add_all<'a>(
        &mut self,
        group: &Group,
        pageviews: impl Iterator<Item = &'a Pageview>,
        sessions: impl Iterator<Item = &'a Session>,
        events: impl Iterator<Item = &'a Event>,
    ) {
        match group {
            Group::Pages | Group::Hostnames => {
                for p in pageviews {
                    let value = if *group == Group::Pages {
                        p.path
                    } else {
                        p.hostname
                    };
                    self.add(Key::Number(value), p.visitor, false);
                }
            }
            Group::Sessions(dim) => {
                for s in sessions {
                    let key = s.attrs[*dim as usize].map_or(Key::Empty, Key::Number);
                    self.add(key, s.visitor, s.pageviews == 1);
                }
            }
            Group::Events => {
                for e in events {
                    self.add(Key::Number(e.name), e.visitor, false);
                }
            }
            Group::EventProp { name, prop } => {
                for e in events {
                    if Some(e.name) != *name {
                        continue;
                    }
                    let value = e
                        .props
                        .as_deref()
                        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                        .and_then(|props| props.get(prop).map(prop_text));
                    self.add(value.map_or(Key::Empty, Key::Text), e.visitor, false);
                }
            }
        }
    }
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
