//! The figures of SPEC 4, computed from the stored sessions, pageviews and events.
//!
//! A query streams the blocks of its period (`super::blocks`), selects sessions by the
//! filters with bit sets over visit ids, and counts as it goes (`count`); distinct visitors
//! are counted exactly, with bit sets over visitor numbers. Without filters, `main` and
//! `timeseries` read only the blocks' totals.

use std::collections::HashMap;

use rusqlite::Connection;

use super::blocks;
use super::dimension::SessionAttr;
use super::period::{Period, bucket_of};
pub use super::record::{Event, Pageview, Session, country_number};
use super::record::{SESSION_COLUMNS, country_code, session_from_row};
use crate::error::Result;

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
    pub attrs: Vec<(SessionAttr, Want)>,
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

/// Sessions by visit id, straight from `visits` (those that started outside a period but
/// have activity in it). Their visitor numbers are not needed and left 0.
fn sessions_by_id(conn: &Connection, ids: &[i64]) -> Result<Vec<(i64, Session)>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM visits WHERE id = ?1",
        SESSION_COLUMNS = *SESSION_COLUMNS
    ))?;
    for &id in ids {
        match stmt.query_row([id], |r| session_from_row(r, 0)) {
            Ok(session) => out.push((id, session)),
            Err(rusqlite::Error::QueryReturnedNoRows) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// What a query does with what counts: the tallies of `main`, `timeseries` and the
/// breakdowns.
trait Sink {
    fn pageview(&mut self, p: &Pageview);
    fn session(&mut self, s: &Session);
    fn event(&mut self, _e: &Event) {}
}

/// Which sessions the filters select (SPEC 4 "Selection"), by visit id.
struct Selection<'f> {
    filters: &'f Filters,
    /// Sessions whose own attributes are known.
    seen: Bits,
    /// Sessions with pageviews whose attributes match (and without events when asked).
    matching: Bits,
    /// Sessions with a pageview of the wanted path, hostname, an event of the wanted name
    /// (when filtered by them), anywhere in the session, also outside the period.
    with_path: Option<Bits>,
    with_hostname: Option<Bits>,
    with_event: Option<Bits>,
    /// From the earliest start to the latest end of the sessions seen.
    window: (i64, i64),
}

impl<'f> Selection<'f> {
    fn new(filters: &'f Filters, start: i64, end: i64) -> Selection<'f> {
        let some_if = |yes: bool| yes.then(Bits::default);
        Selection {
            filters,
            seen: Bits::default(),
            matching: Bits::default(),
            with_path: some_if(filters.path.is_some()),
            with_hostname: some_if(filters.hostname.is_some()),
            with_event: some_if(matches!(filters.event, Some(Want::Value(_)))),
            window: (start, end),
        }
    }

    /// Whether the selection depends on what sessions contain, not only on their attributes.
    fn on_contents(&self) -> bool {
        self.with_path.is_some() || self.with_hostname.is_some() || self.with_event.is_some()
    }

    fn see(&mut self, id: i64, s: &Session) {
        self.seen.insert(id);
        let f = self.filters;
        if s.pageviews > 0
            && f.attrs
                .iter()
                .all(|(attr, want)| want.matches(s.attr(*attr)))
            && (f.event != Some(Want::Empty) || s.events == 0)
        {
            self.matching.insert(id);
            self.window = (
                self.window.0.min(s.first_at),
                self.window.1.max(s.last_at + 1),
            );
        }
    }

    /// Notes what a pageview or an event tells about its session's contents.
    fn contents(&mut self, pageviews: &[Pageview], events: &[Event]) {
        let f = self.filters;
        for (bits, want, field) in [
            (
                &mut self.with_path,
                &f.path,
                (|p: &Pageview| p.path) as fn(&Pageview) -> i64,
            ),
            (&mut self.with_hostname, &f.hostname, |p: &Pageview| {
                p.hostname
            }),
        ] {
            // No pageview has an empty path or hostname.
            if let (Some(bits), Some(Want::Value(Some(v)))) = (bits, want) {
                pageviews
                    .iter()
                    .filter(|p| field(p) == *v)
                    .for_each(|p| bits.insert(p.visit));
            }
        }
        if let (Some(bits), Some(Want::Value(Some(name)))) = (&mut self.with_event, &f.event) {
            events
                .iter()
                .filter(|e| e.name == *name)
                .for_each(|e| bits.insert(e.visit));
        }
    }

    /// Whether the filters select the session of visit `id` (known once it is seen).
    fn selects(&self, id: i64) -> bool {
        self.matching.contains(id)
            && [&self.with_path, &self.with_hostname, &self.with_event]
                .into_iter()
                .all(|bits| bits.as_ref().is_none_or(|b| b.contains(id)))
    }

    /// Whether a pageview of a selected session counts: of the wanted path and hostname.
    fn counts(&self, p: &Pageview) -> bool {
        let f = self.filters;
        f.path.as_ref().is_none_or(|w| w.matches(Some(p.path)))
            && f.hostname
                .as_ref()
                .is_none_or(|w| w.matches(Some(p.hostname)))
    }

    /// Sees the sessions among `ids` not seen yet, from the row table.
    fn see_missing(&mut self, conn: &Connection, ids: impl Iterator<Item = i64>) -> Result<()> {
        let mut missing: Vec<i64> = ids.filter(|&id| !self.seen.contains(id)).collect();
        missing.sort_unstable();
        missing.dedup();
        for (id, s) in sessions_by_id(conn, &missing)? {
            self.see(id, &s);
        }
        Ok(())
    }
}

/// Hands `sink` what counts in `period` under `filters`: the pageviews, the sessions
/// whose time is in the range, and (`with_events`) the events, block by block, never
/// holding the range in memory.
///
/// Without filters everything counts. Filters on session attributes are decided by a
/// session's own record, which comes in the block of its first pageview, so one pass does:
/// what arrives before its session's record (a session that started before `start`, a
/// block built from the rows after the stored ones) waits for the end. Filters on what a
/// session contains need a first pass over the range (and past its ends, as far as its
/// sessions reach) to select, then a second to count.
fn count(
    conn: &Connection,
    site: i64,
    period: &Period,
    filters: &Filters,
    with_events: bool,
    sink: &mut impl Sink,
) -> Result<()> {
    let (start, end) = (period.start, period.end);
    if filters.is_empty() {
        return blocks::each(conn, site, start, end, |block| {
            block.pageviews.iter().for_each(|p| sink.pageview(p));
            block
                .sessions
                .iter()
                .filter(|(_, s)| s.pageviews > 0)
                .for_each(|(_, s)| sink.session(s));
            if with_events {
                block.events.iter().for_each(|e| sink.event(e));
            }
            Ok(())
        });
    }
    let mut sel = Selection::new(filters, start, end);
    if !sel.on_contents() {
        let (mut pageviews, mut events) = (Vec::new(), Vec::new());
        blocks::each(conn, site, start, end, |block| {
            for (id, s) in &block.sessions {
                sel.see(*id, s);
                if sel.selects(*id) {
                    sink.session(s);
                }
            }
            for p in block.pageviews {
                match sel.seen.contains(p.visit) {
                    true if sel.selects(p.visit) => sink.pageview(&p),
                    true => {}
                    false => pageviews.push(p),
                }
            }
            for e in block.events.into_iter().filter(|_| with_events) {
                match sel.seen.contains(e.visit) {
                    true if sel.selects(e.visit) => sink.event(&e),
                    true => {}
                    false => events.push(e),
                }
            }
            Ok(())
        })?;
        let waiting = pageviews.iter().map(|p| p.visit);
        sel.see_missing(conn, waiting.chain(events.iter().map(|e| e.visit)))?;
        pageviews
            .iter()
            .filter(|p| sel.selects(p.visit))
            .for_each(|p| sink.pageview(p));
        events
            .iter()
            .filter(|e| sel.selects(e.visit))
            .for_each(|e| sink.event(e));
        return Ok(());
    }
    let mut referenced = Bits::default();
    blocks::each(conn, site, start, end, |block| {
        for (id, s) in &block.sessions {
            sel.see(*id, s);
        }
        block
            .pageviews
            .iter()
            .for_each(|p| referenced.insert(p.visit));
        if with_events {
            block.events.iter().for_each(|e| referenced.insert(e.visit));
        }
        sel.contents(&block.pageviews, &block.events);
        Ok(())
    })?;
    sel.see_missing(conn, referenced.iter())?;
    let (first, last) = sel.window;
    for (a, b) in [(first, start), (end, last)] {
        blocks::each(conn, site, a, b, |block| {
            sel.contents(&block.pageviews, &block.events);
            Ok(())
        })?;
    }
    blocks::each(conn, site, start, end, |block| {
        for (id, s) in &block.sessions {
            if sel.selects(*id) {
                sink.session(s);
            }
        }
        for p in &block.pageviews {
            if sel.selects(p.visit) && sel.counts(p) {
                sink.pageview(p);
            }
        }
        for e in block.events.iter().filter(|_| with_events) {
            if sel.selects(e.visit) {
                sink.event(e);
            }
        }
        Ok(())
    })
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
        let facts = s.facts();
        self.sessions += 1;
        self.bounces += u64::from(facts.bounce);
        self.duration_ms += facts.duration_ms;
        self.views += facts.views;
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

/// A set of visitor numbers or visit ids (small, non-negative): one bit each.
#[derive(Default)]
struct Bits {
    words: Vec<u64>,
}

impl Bits {
    fn insert(&mut self, n: i64) {
        let i = usize::try_from(n).unwrap_or(0);
        if i / 64 >= self.words.len() {
            self.words.resize(i / 64 + 1, 0);
        }
        self.words[i / 64] |= 1 << (i % 64);
    }

    fn contains(&self, n: i64) -> bool {
        let i = usize::try_from(n).unwrap_or(0);
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| (i * 64 + b) as i64)
        })
    }
}

/// Distinct visitors per group: each group's visitor numbers, sorted and counted once at the
/// end. A sort per group stays in cache where one sort of every (group, visitor) pair did not.
#[derive(Default)]
struct PerGroup {
    groups: Vec<Vec<u64>>,
}

impl PerGroup {
    fn insert(&mut self, group: u32, visitor: i64) {
        let group = group as usize;
        if group >= self.groups.len() {
            self.groups.resize_with(group + 1, Vec::new);
        }
        self.groups[group].push(u64::try_from(visitor).unwrap_or(0));
    }

    /// The number of distinct visitors of each of `groups` groups.
    fn counts(mut self, groups: usize) -> Vec<u64> {
        self.groups.resize_with(groups, Vec::new);
        self.groups
            .into_iter()
            .map(|mut visitors| {
                // A radix sort pays a fixed cost per call that small groups do not repay.
                if visitors.len() < 1024 {
                    visitors.sort_unstable();
                } else {
                    radsort::sort(&mut visitors);
                }
                visitors.dedup();
                visitors.len() as u64
            })
            .collect()
    }
}

/// Whether every boundary falls on a bucket's, so that whole buckets' totals compose them.
fn aligned(bounds: impl IntoIterator<Item = i64>) -> bool {
    bounds
        .into_iter()
        .all(|b| b.rem_euclid(blocks::BUCKET_MS) == 0)
}

/// The buckets from the one holding the first millisecond of `period` to the one holding its
/// last.
fn bucket_range(period: &Period) -> (i64, i64) {
    (
        blocks::bucket_of(period.start),
        blocks::bucket_of(period.end - 1),
    )
}

/// The totals of `main` over `period`.
pub fn main(conn: &Connection, site: i64, period: &Period, filters: &Filters) -> Result<Tally> {
    if filters.is_empty() && aligned([period.start, period.end]) {
        // Whole buckets: their totals are enough.
        let mut tally = Tally::default();
        let mut visitors = Bits::default();
        if period.start < period.end {
            blocks::each_totals(conn, site, bucket_range(period), |_, t| {
                tally.add_totals(&t);
                t.visitors.iter().for_each(|&v| visitors.insert(v));
                Ok(())
            })?;
        }
        tally.visitors = visitors.len();
        return Ok(tally);
    }
    struct Main {
        tally: Tally,
        visitors: Bits,
    }
    impl Sink for Main {
        fn pageview(&mut self, p: &Pageview) {
            self.tally.pageviews += 1;
            self.visitors.insert(p.visitor);
        }
        fn session(&mut self, s: &Session) {
            self.tally.add_session(s);
        }
    }
    let mut main = Main {
        tally: Tally::default(),
        visitors: Bits::default(),
    };
    count(conn, site, period, filters, false, &mut main)?;
    main.tally.visitors = main.visitors.len();
    Ok(main.tally)
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
        blocks::each_totals(conn, site, bucket_range(period), |bucket, t| {
            if let Some(i) = bucket_of(starts, bucket * blocks::BUCKET_MS) {
                tallies[i].add_totals(&t);
                t.visitors
                    .iter()
                    .for_each(|&v| visitors.insert(i as u32, v));
            }
            Ok(())
        })?;
        for (tally, n) in tallies.iter_mut().zip(visitors.counts(starts.len())) {
            tally.visitors = n;
        }
        return Ok(tallies);
    }
    struct Series<'a> {
        starts: &'a [i64],
        tallies: Vec<Tally>,
        visitors: PerGroup,
    }
    impl Sink for Series<'_> {
        fn pageview(&mut self, p: &Pageview) {
            if let Some(i) = bucket_of(self.starts, p.at) {
                self.tallies[i].pageviews += 1;
                self.visitors.insert(i as u32, p.visitor);
            }
        }
        fn session(&mut self, s: &Session) {
            if let Some(i) = s.at.and_then(|at| bucket_of(self.starts, at)) {
                self.tallies[i].add_session(s);
            }
        }
    }
    let mut series = Series {
        starts,
        tallies,
        visitors: PerGroup::default(),
    };
    count(conn, site, period, filters, false, &mut series)?;
    let mut tallies = series.tallies;
    for (tally, n) in tallies.iter_mut().zip(series.visitors.counts(starts.len())) {
        tally.visitors = n;
    }
    Ok(tallies)
}

/// What a breakdown groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group {
    Pages,
    Hostnames,
    Sessions(SessionAttr),
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
    struct Breakdown<'g> {
        group: &'g Group,
        rows: Rows,
        visitors: Bits,
    }
    impl Sink for Breakdown<'_> {
        fn pageview(&mut self, p: &Pageview) {
            self.visitors.insert(p.visitor);
            match self.group {
                Group::Pages => self.rows.add(Key::Number(p.path), p.visitor, false),
                Group::Hostnames => self.rows.add(Key::Number(p.hostname), p.visitor, false),
                _ => {}
            }
        }
        fn session(&mut self, s: &Session) {
            if let Group::Sessions(dim) = self.group {
                let key = s.attr(*dim).map_or(Key::Empty, Key::Number);
                self.rows.add(key, s.visitor, s.facts().bounce);
            }
        }
        fn event(&mut self, e: &Event) {
            match self.group {
                Group::Events => self.rows.add(Key::Number(e.name), e.visitor, false),
                Group::EventProp { name, prop } if Some(e.name) == *name => {
                    let value = e
                        .props
                        .as_deref()
                        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                        .and_then(|props| props.get(prop).map(prop_text));
                    self.rows
                        .add(value.map_or(Key::Empty, Key::Text), e.visitor, false);
                }
                _ => {}
            }
        }
    }
    let with_events = matches!(group, Group::Events | Group::EventProp { .. });
    let mut breakdown = Breakdown {
        group,
        rows: Rows::default(),
        visitors: Bits::default(),
    };
    count(conn, site, period, filters, with_events, &mut breakdown)?;
    Ok((breakdown.rows.into_rows(), breakdown.visitors.len()))
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
