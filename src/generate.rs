//! A realistic trace of one website's traffic, written straight into the row tables
//! (migrations/0004_events.sql) as the ingestion writer (`crate::ingest::store`) would have
//! stored the same activities: for the statistics benchmark (`benches/stats.rs`) and for
//! trying the dashboard on a full database without sending millions of requests.
//!
//! The trace: ~2,000 paths on three hostnames and ~300 referrer hosts, both of Zipf-like
//! popularity, about 40% of visits direct and some with UTM tags; a daily cycle in each
//! visitor's local time, a weekly one, slow growth, day-to-day noise and a few launch-day
//! spikes; 45% one-page visits and a tail of deep ones running over an hour; heartbeats every
//! 15 s while a page is read (about two per pageview: they are not rows, they only move a
//! visit's `last_at`); custom events on ~5% of pageviews; ~60 countries, devices, systems,
//! browsers, languages and screens; regular visitors who come back. Visitor ids are cookieless:
//! a new id per person and UTC date.
//!
//! The writer's invariants hold: the activities of a visit follow each other by less than
//! [`VISIT_GAP_MS`], one visitor's visits are at least that far apart, a visit's columns are
//! those of its first pageview and its counters match its rows, and every 15-minute bucket
//! written to is marked for the statistics (`crate::stats::blocks`).

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::ingest::store::VISIT_GAP_MS;
use crate::stats::blocks::{self, bucket_of};

const DAY_MS: i64 = 24 * 3_600_000;
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;
/// The tracker's heartbeat period while a page is visible (SPEC 3.1).
pub const HEARTBEAT_MS: i64 = 15_000;

/// Share of visits with exactly one pageview.
const BOUNCE_SHARE: f64 = 0.45;
/// Share of visits that go on for 20 to 150 pages (the long tail of sessions over an hour).
const DEEP_SHARE: f64 = 0.01;
/// Pageviews that come with a custom event.
const EVENT_SHARE: f64 = 0.05;
/// Visits by a regular visitor (the rest are people seen once).
const REGULAR_SHARE: f64 = 0.35;
/// Regular visitors per this many pageviews asked for.
const PAGEVIEWS_PER_REGULAR: u64 = 300;
/// Visits of people seen once that come from a tagged campaign.
const CAMPAIGN_SHARE: f64 = 0.07;
/// Transactions are committed after about this many rows.
const COMMIT_ROWS: u64 = 2_000_000;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Options {
    /// Rows of `pageviews` in all: exactly this many.
    pub pageviews: u64,
    /// Days of traffic: the UTC dates up to the one of `end_ms` (which is covered up to
    /// `end_ms` only).
    pub days: u32,
    /// Every activity is before this time (UTC milliseconds).
    pub end_ms: i64,
    /// The same seed and options give the same trace.
    pub seed: u64,
    /// The website's domain: pages are on its `www`, `blog` and `docs` subdomains.
    pub domain: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            pageviews: 10_000_000,
            days: 365,
            end_ms: crate::time::now_ms(),
            seed: 1,
            domain: "example.com".into(),
        }
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub pageviews: u64,
    pub visits: u64,
    /// Visits with exactly one pageview.
    pub bounces: u64,
    pub events: u64,
    /// Heartbeats the trace implies (not stored: they only move visits' `last_at`).
    pub heartbeats: u64,
    /// Distinct visitor ids.
    pub visitors: u64,
    /// Visits whose referrer is direct.
    pub direct: u64,
    /// The period covered: `[start_ms, end_ms)`.
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Writes the trace `opts` describes for the website numbered `site` (`sites.num`), in its own
/// transactions (the caller must not hold one), and answers what it wrote. Meant for a
/// database no server is writing to at the same time.
pub fn generate(conn: &Connection, site: i64, opts: &Options) -> Result<Summary> {
    if opts.days == 0 {
        return Err(Error::invalid("days: must be at least 1"));
    }
    let known = conn
        .query_row("SELECT 1 FROM sites WHERE num = ?1", [site], |_| Ok(()))
        .optional()?;
    if known.is_none() {
        return Err(Error::NotFound(format!("no site number {site}")));
    }
    let mut trace = Trace::new(opts);
    let days = trace.day_plans(opts);
    let mut summary = Summary {
        start_ms: days.first().map_or(opts.end_ms, |d| d.start),
        end_ms: opts.end_ms,
        ..Summary::default()
    };

    let _cache = LargeCache::set(conn)?;
    let mut tx = conn.unchecked_transaction()?;
    let mut writer = Writer::new(conn, site, &trace.catalog)?;
    for day in &days {
        for visit in trace.day(day, &mut summary) {
            writer.visit(&trace.catalog, &visit)?;
            summary.count(&visit);
        }
        // Later days' visits start at or after this day's end.
        writer.flush(day.end)?;
        if writer.unsaved >= COMMIT_ROWS {
            tx.commit()?;
            tx = conn.unchecked_transaction()?;
            writer.unsaved = 0;
        }
    }
    writer.flush(i64::MAX)?;
    tx.commit()?;
    Ok(summary)
}

impl Summary {
    fn count(&mut self, visit: &Visit) {
        self.pageviews += visit.steps.len() as u64;
        self.visits += 1;
        self.bounces += u64::from(visit.steps.len() == 1);
        self.events += visit.events.len() as u64;
        self.heartbeats += visit.steps.iter().map(|s| u64::from(s.beats)).sum::<u64>();
        self.direct += u64::from(visit.source.referrer.is_none());
    }
}

/// A larger page cache while generating (the index of visits by visitor takes inserts all
/// over), back to the connection's own afterwards.
struct LargeCache<'c> {
    conn: &'c Connection,
    before: i64,
}

impl<'c> LargeCache<'c> {
    fn set(conn: &'c Connection) -> Result<Self> {
        let before: i64 = conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
        conn.pragma_update(None, "cache_size", -512 * 1024)?;
        Ok(LargeCache { conn, before })
    }
}

impl Drop for LargeCache<'_> {
    fn drop(&mut self) {
        let _ = self.conn.pragma_update(None, "cache_size", self.before);
    }
}

// ===== Writing =====

/// A pageview row waiting for the rows before it: pageviews and events are clustered by time,
/// and inserting them in time order keeps their B-trees appending.
struct PendingPageview {
    at: i64,
    visit: i64,
    hostname: i64,
    path: i64,
}

struct PendingEvent {
    at: i64,
    visit: i64,
    /// An index into `Writer::event_kinds`.
    kind: u16,
}

struct Writer<'c> {
    conn: &'c Connection,
    site: i64,
    /// The `strings.id` of every [`Sym`].
    ids: Vec<i64>,
    /// `Catalog::events` as stored: name id and props.
    event_kinds: Vec<(i64, Option<String>)>,
    pageviews: Vec<PendingPageview>,
    events: Vec<PendingEvent>,
    /// Rows written since the last commit.
    unsaved: u64,
}

impl<'c> Writer<'c> {
    fn new(conn: &'c Connection, site: i64, catalog: &Catalog) -> Result<Self> {
        let mut insert =
            conn.prepare_cached("INSERT OR IGNORE INTO strings (value) VALUES (?1)")?;
        let mut select = conn.prepare_cached("SELECT id FROM strings WHERE value = ?1")?;
        let mut ids = Vec::with_capacity(catalog.strings.values.len());
        for value in &catalog.strings.values {
            insert.execute([value])?;
            ids.push(select.query_row([value], |r| r.get(0))?);
        }
        let event_kinds = catalog
            .events
            .iter()
            .map(|e| (ids[e.name.0 as usize], e.props.clone()))
            .collect();
        Ok(Writer {
            conn,
            site,
            ids,
            event_kinds,
            pageviews: Vec::new(),
            events: Vec::new(),
            unsaved: 0,
        })
    }

    fn id(&self, sym: Sym) -> i64 {
        self.ids[sym.0 as usize]
    }

    fn opt(&self, sym: Option<Sym>) -> Option<i64> {
        sym.map(|s| self.id(s))
    }

    /// Inserts the visit's row and queues its pageviews and events.
    fn visit(&mut self, catalog: &Catalog, v: &Visit) -> Result<()> {
        let (first, last) = (&v.steps[0], &v.steps[v.steps.len() - 1]);
        let entry = &catalog.site.pages[first.page as usize];
        let exit = &catalog.site.pages[last.page as usize];
        let (p, s) = (&v.profile, &v.source);
        self.conn
            .prepare_cached(
                "INSERT INTO visits (site, visitor, first_at, last_at, pv_first_at, pv_last_at,
                     pageviews, events, entry, exit, hostname, referrer, utm_source, utm_medium,
                     utm_campaign, utm_term, utm_content, country, browser, os, device,
                     language, screen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
            )?
            .execute(params![
                self.site,
                v.visitor,
                v.start,
                v.start + v.span,
                v.start,
                v.start + last.offset,
                v.steps.len() as i64,
                v.events.len() as i64,
                self.id(entry.path),
                self.id(exit.path),
                self.id(entry.hostname),
                self.opt(s.referrer),
                self.opt(s.utm[0]),
                self.opt(s.utm[1]),
                self.opt(s.utm[2]),
                self.opt(s.utm[3]),
                self.opt(s.utm[4]),
                p.country.map(|c| COUNTRIES[c].code),
                self.id(p.platform.browser),
                self.id(p.platform.os),
                self.id(p.platform.device),
                self.opt(p.language),
                self.id(p.screen),
            ])?;
        let id = self.conn.last_insert_rowid();
        for step in &v.steps {
            let page = &catalog.site.pages[step.page as usize];
            self.pageviews.push(PendingPageview {
                at: v.start + step.offset,
                visit: id,
                hostname: self.id(page.hostname),
                path: self.id(page.path),
            });
        }
        for &(offset, kind) in &v.events {
            self.events.push(PendingEvent {
                at: v.start + offset,
                visit: id,
                kind,
            });
        }
        self.unsaved += 1 + (v.steps.len() + v.events.len()) as u64;
        Ok(())
    }

    /// Inserts the queued rows before `before`, in time order, and marks their buckets.
    fn flush(&mut self, before: i64) -> Result<()> {
        let pageviews = due(&mut self.pageviews, before, |r| (r.at, r.visit));
        let events = due(&mut self.events, before, |r| (r.at, r.visit));
        // `seq` as the writer gives it: the next free one in the millisecond.
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO pageviews (site, at, seq, visit, hostname, path)
             VALUES (?1, ?2, (SELECT coalesce(max(seq) + 1, 0) FROM pageviews
                              WHERE site = ?1 AND at = ?2), ?3, ?4, ?5)",
        )?;
        for r in &pageviews {
            insert.execute(params![self.site, r.at, r.visit, r.hostname, r.path])?;
        }
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO events (site, at, seq, visit, name, props)
             VALUES (?1, ?2, (SELECT coalesce(max(seq) + 1, 0) FROM events
                              WHERE site = ?1 AND at = ?2), ?3, ?4, ?5)",
        )?;
        for r in &events {
            let (name, props) = &self.event_kinds[usize::from(r.kind)];
            insert.execute(params![self.site, r.at, r.visit, name, props])?;
        }
        let mut buckets: Vec<i64> = pageviews
            .iter()
            .map(|r| bucket_of(r.at))
            .chain(events.iter().map(|r| bucket_of(r.at)))
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        blocks::mark(self.conn, self.site, buckets)
    }
}

/// Takes out of `queue` the rows whose time is before `before`, sorted by `(time, visit)`.
fn due<T>(queue: &mut Vec<T>, before: i64, key: impl Fn(&T) -> (i64, i64)) -> Vec<T> {
    queue.sort_unstable_by_key(&key);
    let n = queue.partition_point(|r| key(r).0 < before);
    queue.drain(..n).collect()
}

// ===== The trace =====

/// One visit: its first activity is its first pageview, at `start`.
struct Visit {
    visitor: i64,
    start: i64,
    profile: Profile,
    source: Source,
    /// The pageviews, from offset 0, strictly later each.
    steps: Vec<Step>,
    /// `(offset, kind)`: custom events, `kind` an index into `Catalog::events`.
    events: Vec<(i64, u16)>,
    /// Offset of the last activity (pageview, event or heartbeat).
    span: i64,
    /// The regular visitor it belongs to; `None`: someone seen once.
    regular: Option<u32>,
}

/// A pageview and the heartbeats sent while it was read, every [`HEARTBEAT_MS`] after it.
struct Step {
    offset: i64,
    /// An index into `Catalog::pages`.
    page: u32,
    beats: u32,
}

/// What a visitor keeps from visit to visit.
#[derive(Clone, Copy)]
struct Profile {
    /// An index into [`COUNTRIES`]; `None`: unknown.
    country: Option<usize>,
    language: Option<Sym>,
    platform: Platform,
    screen: Sym,
}

/// Where a visit comes from.
#[derive(Clone, Copy, Default)]
struct Source {
    /// `None`: direct.
    referrer: Option<Sym>,
    /// source, medium, campaign, term, content.
    utm: [Option<Sym>; 5],
}

struct Regular {
    profile: Profile,
    /// When their latest visit ended, and its UTC date.
    last_end: i64,
    last_day: i64,
}

/// One UTC date of the trace: `[start, end)` (the last one ends at `Options::end_ms`).
struct DayPlan {
    number: i64,
    start: i64,
    end: i64,
    pageviews: u64,
    spike: Option<Spike>,
}

/// A day on which one link sends a crowd to one page.
#[derive(Clone, Copy)]
struct Spike {
    referrer: Sym,
    page: u32,
    /// Share of the day's visits it brings.
    share: f64,
}

struct Trace {
    catalog: Catalog,
    rng: StdRng,
    seed: u64,
    end_ms: i64,
    regulars: Vec<Regular>,
    pick_regular: Weighted<u32>,
}

impl Trace {
    fn new(opts: &Options) -> Trace {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let catalog = Catalog::new(&opts.domain, &mut rng);
        let count = (opts.pageviews / PAGEVIEWS_PER_REGULAR).clamp(50, 1_000_000) as u32;
        let regulars = (0..count)
            .map(|_| Regular {
                profile: catalog.profile(&mut rng),
                last_end: i64::MIN / 2,
                last_day: i64::MIN,
            })
            .collect();
        Trace {
            catalog,
            rng,
            seed: opts.seed,
            end_ms: opts.end_ms,
            regulars,
            // A few come every day, most now and then.
            pick_regular: Weighted::zipf(0..count, 1.0, 50.0),
        }
    }

    /// The dates and how many pageviews each gets: the weekly cycle, growth over the period,
    /// noise, spikes, and for a partly covered last date the share of its daily cycle covered.
    fn day_plans(&mut self, opts: &Options) -> Vec<DayPlan> {
        let last = (opts.end_ms - 1).div_euclid(DAY_MS);
        let first = last - i64::from(opts.days) + 1;
        let n = opts.days as usize;
        let spikes: Vec<usize> = (0..n / 120)
            .map(|_| self.rng.random_range(0..n.saturating_sub(1).max(1)))
            .collect();
        let utc_cycle = self.catalog.utc_cycle();
        let whole: f64 = utc_cycle.iter().sum();
        let mut weights = Vec::with_capacity(n);
        let mut plans = Vec::with_capacity(n);
        for (i, number) in (first..=last).enumerate() {
            let start = number * DAY_MS;
            let end = (start + DAY_MS).min(opts.end_ms);
            let covered_minutes = ((end - start) / MINUTE_MS) as usize;
            let covered = utc_cycle[..covered_minutes].iter().sum::<f64>() / whole;
            let weekday = WEEKDAYS[(number + 3).rem_euclid(7) as usize];
            let growth = 0.75 + 0.5 * i as f64 / n.max(2) as f64;
            let noise = self.rng.random_range(0.9..1.1);
            let spike = spikes.contains(&i).then(|| Spike {
                referrer: *self.catalog.spike_referrers.pick(&mut self.rng),
                page: self.catalog.blog_post(&mut self.rng),
                share: self.rng.random_range(0.55..0.75),
            });
            let boost = spike.map_or(1.0, |s| 1.0 / (1.0 - s.share));
            weights.push(weekday * growth * noise * boost * covered);
            plans.push(DayPlan {
                number,
                start,
                end,
                pageviews: 0,
                spike,
            });
        }
        for (plan, quota) in plans.iter_mut().zip(apportion(opts.pageviews, &weights)) {
            plan.pageviews = quota;
        }
        plans
    }

    /// The visits that start on `day`, in time order, with their visitor ids.
    fn day(&mut self, day: &DayPlan, summary: &mut Summary) -> Vec<Visit> {
        let mut visits = Vec::new();
        let mut left = day.pageviews;
        while left > 0 {
            let visit = self.visit(day, left);
            left -= visit.steps.len() as u64;
            visits.push(visit);
        }
        visits.sort_by_key(|v| v.start);
        for visit in &mut visits {
            self.assign(visit, day.number, summary);
        }
        visits
    }

    /// Gives the visit its visitor id: the regular's id of the date, unless the regular's
    /// previous visit ended less than [`VISIT_GAP_MS`] before (it would be the same visit),
    /// in which case it is someone else's with the same profile.
    fn assign(&mut self, visit: &mut Visit, day: i64, summary: &mut Summary) {
        let regular = visit
            .regular
            .filter(|&r| visit.start - self.regulars[r as usize].last_end >= VISIT_GAP_MS);
        match regular {
            Some(r) => {
                let person = &mut self.regulars[r as usize];
                person.last_end = visit.start + visit.span;
                if person.last_day != day {
                    person.last_day = day;
                    summary.visitors += 1;
                }
                visit.visitor = mix(self.seed ^ mix((u64::from(r) << 32) ^ day as u64)) as i64;
            }
            None => {
                visit.regular = None;
                visit.visitor = self.rng.random();
                summary.visitors += 1;
            }
        }
    }

    /// A visit starting on `day`, of at most `most` pageviews.
    fn visit(&mut self, day: &DayPlan, most: u64) -> Visit {
        let spike = day.spike.filter(|s| self.rng.random_bool(s.share));
        let regular = (spike.is_none() && self.rng.random_bool(REGULAR_SHARE))
            .then(|| *self.pick_regular.pick(&mut self.rng));
        let profile = match regular {
            Some(r) => self.regulars[r as usize].profile,
            None => self.catalog.profile(&mut self.rng),
        };
        let (source, entry) = match spike {
            Some(s) => (
                Source {
                    referrer: Some(s.referrer),
                    ..Source::default()
                },
                s.page,
            ),
            None => {
                let source = self.catalog.source(&mut self.rng, regular.is_some());
                let entry = self.catalog.entry(&mut self.rng, source.referrer.is_none());
                (source, entry)
            }
        };
        let start = self.start_time(day, &profile);
        let mut visit = Visit {
            visitor: 0,
            start,
            profile,
            source,
            steps: Vec::new(),
            events: Vec::new(),
            span: 0,
            regular,
        };
        self.walk(&mut visit, entry, most);
        if visit.start + visit.span >= self.end_ms {
            // Too long to end before the trace does: a glance instead.
            visit.steps.truncate(1);
            visit.steps[0].beats = 0;
            visit.events.clear();
            visit.span = 0;
        }
        visit
    }

    /// A time on `day` by the daily cycle in the visitor's local time.
    fn start_time(&mut self, day: &DayPlan, profile: &Profile) -> i64 {
        let offset = profile
            .country
            .map_or(0, |c| COUNTRIES[c].utc_offset_minutes * MINUTE_MS);
        for _ in 0..10_000 {
            let local = *self.catalog.hours.pick(&mut self.rng) * HOUR_MS
                + self.rng.random_range(0..HOUR_MS);
            let at = day.number * DAY_MS + (local - offset).rem_euclid(DAY_MS);
            if (day.start..day.end).contains(&at) {
                return at;
            }
        }
        day.start
    }

    /// The visit's pageviews, heartbeats and events from its entry page.
    fn walk(&mut self, visit: &mut Visit, entry: u32, most: u64) {
        let rng = &mut self.rng;
        let pages = page_count(rng).min(most).max(1);
        let mut offset = 0;
        let mut page = entry;
        for i in 0..pages {
            let beats = heartbeats(rng);
            visit.steps.push(Step {
                offset,
                page,
                beats,
            });
            let read = i64::from(beats) * HEARTBEAT_MS;
            visit.span = visit.span.max(offset + read);
            if rng.random_bool(EVENT_SHARE) {
                let at = offset + rng.random_range(0..=read + 1_000);
                visit.events.push((at, *self.catalog.pick_event.pick(rng)));
                visit.span = visit.span.max(at);
            }
            if i + 1 == pages {
                break;
            }
            // The next page comes before the next heartbeat would have; now and then after
            // the tab was hidden a while (no heartbeats), still within the visit.
            offset += read + rng.random_range(1_000..HEARTBEAT_MS);
            if rng.random_bool(0.05) {
                offset += rng.random_range(MINUTE_MS..25 * MINUTE_MS);
            }
            page = self.catalog.next_page(rng);
        }
    }
}

/// Pageviews of a visit: 45% one, most a few, 1% twenty to 150.
fn page_count(rng: &mut StdRng) -> u64 {
    let x: f64 = rng.random();
    if x < BOUNCE_SHARE {
        1
    } else if x < 1.0 - DEEP_SHARE {
        2 + geometric(rng, 1.5)
    } else {
        rng.random_range(20..=150)
    }
}

/// Heartbeats while one page is read: none for a third, a few mostly, 1% long reads of 5 to
/// 30 minutes. About two on average.
fn heartbeats(rng: &mut StdRng) -> u32 {
    let x: f64 = rng.random();
    if x < 0.35 {
        0
    } else if x < 0.99 {
        1 + geometric(rng, 1.3) as u32
    } else {
        rng.random_range(20..=120)
    }
}

/// A geometric count (0, 1, 2, ...) with the given mean.
fn geometric(rng: &mut StdRng, mean: f64) -> u64 {
    let stay = mean / (1.0 + mean);
    let u = 1.0 - rng.random::<f64>(); // (0, 1]
    (u.ln() / stay.ln()).floor() as u64
}

/// SplitMix64's finaliser: a well-spread 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Splits `total` in whole parts proportional to `weights` (largest remainders first), so
/// that they add up to exactly `total`; a weight of 0 gets 0.
fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut parts: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut order: Vec<usize> = (0..weights.len()).filter(|&i| weights[i] > 0.0).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.total_cmp(&fa)
    });
    let mut left = total - parts.iter().sum::<u64>();
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

// ===== What the trace is made of =====

/// Items drawn with probability proportional to their weights.
struct Weighted<T> {
    items: Vec<T>,
    cumulative: Vec<f64>,
}

impl<T> Weighted<T> {
    fn new(pairs: impl IntoIterator<Item = (T, f64)>) -> Self {
        let (mut items, mut cumulative, mut total) = (Vec::new(), Vec::new(), 0.0);
        for (item, weight) in pairs {
            total += weight;
            items.push(item);
            cumulative.push(total);
        }
        assert!(total > 0.0, "a table of weights needs one above 0");
        Weighted { items, cumulative }
    }

    /// Zipf-like: the item of rank `r` (from 0) weighs `1 / (r + 1 + shift)^exponent`.
    fn zipf(items: impl IntoIterator<Item = T>, exponent: f64, shift: f64) -> Self {
        Self::new(
            items
                .into_iter()
                .enumerate()
                .map(|(r, item)| (item, (r as f64 + 1.0 + shift).powf(-exponent))),
        )
    }

    fn pick(&self, rng: &mut StdRng) -> &T {
        let total = self.cumulative[self.cumulative.len() - 1];
        let x = rng.random::<f64>() * total;
        let i = self.cumulative.partition_point(|&c| c <= x);
        &self.items[i.min(self.items.len() - 1)]
    }
}

/// A string of the trace: its place in `Catalog::strings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Sym(u32);

/// Every string value the trace uses, each once.
#[derive(Default)]
struct Strings {
    values: Vec<String>,
    index: HashMap<String, Sym>,
}

impl Strings {
    fn sym(&mut self, value: &str) -> Sym {
        if let Some(&sym) = self.index.get(value) {
            return sym;
        }
        let sym = Sym(self.values.len() as u32);
        self.values.push(value.to_string());
        self.index.insert(value.to_string(), sym);
        sym
    }

    #[cfg(test)]
    fn get(&self, sym: Sym) -> &str {
        &self.values[sym.0 as usize]
    }
}

struct Page {
    path: Sym,
    hostname: Sym,
}

#[derive(Clone, Copy)]
struct Platform {
    device: Sym,
    /// An index into [`SCREENS`].
    class: usize,
    os: Sym,
    browser: Sym,
}

/// A custom event as sent: its name and its props as the JSON text the ingestion stores.
struct EventKind {
    name: Sym,
    props: Option<String>,
}

/// The site's pages and how people find them.
struct SitePages {
    pages: Vec<Page>,
    /// Indexes into `pages` by popularity: the pages people reach from a link.
    popular: Weighted<u32>,
    /// The pages people go to from the navigation.
    hubs: Weighted<u32>,
    /// The first of the blog posts in `pages`, and how many there are.
    blog: (u32, u32),
}

/// The home page's index in `SitePages::pages`.
const HOME: u32 = 0;

impl SitePages {
    /// [`FIXED_PAGES`] first (the home page is 0), then integrations and docs, then blog posts
    /// up to [`PATHS`]; popularity ranks the fixed pages first and the others in random order.
    fn new(domain: &str, strings: &mut Strings, rng: &mut StdRng) -> SitePages {
        let www = strings.sym(&format!("www.{domain}"));
        let blog_host = strings.sym(&format!("blog.{domain}"));
        let docs_host = strings.sym(&format!("docs.{domain}"));
        let mut paths: Vec<(String, Sym)> =
            FIXED_PAGES.iter().map(|p| (p.to_string(), www)).collect();
        paths.extend(
            INTEGRATIONS
                .iter()
                .map(|n| (format!("/integrations/{n}"), www)),
        );
        for section in DOC_SECTIONS {
            paths.extend(
                WORDS
                    .iter()
                    .map(|w| (format!("/docs/{section}/{w}"), docs_host)),
            );
        }
        let mut slugs: Vec<String> = WORDS
            .iter()
            .flat_map(|a| {
                WORDS
                    .iter()
                    .filter(move |b| *b != a)
                    .map(move |b| format!("{a}-{b}"))
            })
            .collect();
        slugs.shuffle(rng);
        let blog = (paths.len() as u32, PATHS.saturating_sub(paths.len()) as u32);
        paths.extend(
            slugs
                .iter()
                .take(blog.1 as usize)
                .map(|s| (format!("/blog/{s}"), blog_host)),
        );
        let pages: Vec<Page> = paths
            .iter()
            .map(|(path, hostname)| Page {
                path: strings.sym(path),
                hostname: *hostname,
            })
            .collect();

        let fixed = FIXED_PAGES.len() as u32;
        let mut others: Vec<u32> = (fixed..pages.len() as u32).collect();
        others.shuffle(rng);
        let popular = Weighted::zipf((0..fixed).chain(others), 1.0, 1.0);
        let place = |path: &str| FIXED_PAGES.iter().position(|p| *p == path).unwrap_or(0) as u32;
        let hubs = Weighted::new(HUBS.iter().map(|&(path, w)| (place(path), w)));
        SitePages {
            pages,
            popular,
            hubs,
            blog,
        }
    }
}

/// Everything the trace picks from, with how often.
struct Catalog {
    strings: Strings,
    site: SitePages,
    referrers: Weighted<Sym>,
    spike_referrers: Weighted<Sym>,
    campaigns: Weighted<Source>,
    /// Indexes into [`COUNTRIES`]; `None`: unknown.
    countries: Weighted<Option<usize>>,
    languages: Vec<Sym>,
    english: Sym,
    platforms: Weighted<Platform>,
    screens: Vec<Weighted<Sym>>,
    events: Vec<EventKind>,
    pick_event: Weighted<u16>,
    /// The daily cycle: local hours by how many visits start in them.
    hours: Weighted<i64>,
}

impl Catalog {
    fn new(domain: &str, rng: &mut StdRng) -> Catalog {
        let mut strings = Strings::default();
        let site = SitePages::new(domain, &mut strings, rng);

        let mut hosts: Vec<String> = REFERRER_PREFIXES
            .iter()
            .flat_map(|p| REFERRER_SUFFIXES.iter().map(move |s| format!("{p}{s}")))
            .flat_map(|name| TLDS.iter().map(move |t| format!("{name}.{t}")))
            .collect();
        hosts.shuffle(rng);
        let named = REFERRERS.iter().map(|h| h.to_string());
        let referrers = Weighted::zipf(
            named
                .chain(hosts.into_iter().take(REFERRER_HOSTS - REFERRERS.len()))
                .map(|h| strings.sym(&h))
                .collect::<Vec<_>>(),
            1.3,
            0.3,
        );
        let spike_referrers = Weighted::new(
            [
                "news.ycombinator.com",
                "reddit.com",
                "producthunt.com",
                "lobste.rs",
            ]
            .map(|h| (strings.sym(h), 1.0)),
        );
        let campaigns = Weighted::new(CAMPAIGNS.iter().map(|&(utm, referrer, weight)| {
            let mut set = |v: &str| (!v.is_empty()).then(|| strings.sym(v));
            let source = Source {
                referrer: set(referrer),
                utm: utm.map(&mut set),
            };
            (source, weight)
        }));

        let countries = Weighted::new(
            COUNTRIES
                .iter()
                .enumerate()
                .map(|(i, c)| (Some(i), c.weight))
                .chain([(None, 1.0)]),
        );
        let languages = COUNTRIES.iter().map(|c| strings.sym(c.language)).collect();
        let english = strings.sym("en-US");
        let platforms = Weighted::new(PLATFORMS.iter().map(|&(device, os, browser, w)| {
            let platform = Platform {
                device: strings.sym(device),
                class: SCREENS.iter().position(|s| s.0 == device).unwrap_or(0),
                os: strings.sym(os),
                browser: strings.sym(browser),
            };
            (platform, w)
        }));
        let screens = SCREENS
            .iter()
            .map(|(_, classes)| Weighted::new(classes.iter().map(|&(c, w)| (strings.sym(c), w))))
            .collect();

        let mut events = Vec::new();
        let mut event_weights = Vec::new();
        for &(name, weight, variants) in EVENTS {
            let name = strings.sym(name);
            let total: f64 = variants.iter().map(|v| v.1).sum();
            for &(props, w) in variants {
                event_weights.push((events.len() as u16, weight * w / total));
                events.push(EventKind {
                    name,
                    props: props_json(props),
                });
            }
        }
        let hours = Weighted::new(DAILY_CYCLE.iter().enumerate().map(|(h, &w)| (h as i64, w)));
        Catalog {
            strings,
            site,
            referrers,
            spike_referrers,
            campaigns,
            countries,
            languages,
            english,
            platforms,
            screens,
            events,
            pick_event: Weighted::new(event_weights),
            hours,
        }
    }

    fn profile(&self, rng: &mut StdRng) -> Profile {
        let country = *self.countries.pick(rng);
        let language = match rng.random_range(0..100) {
            0 => None,
            1..=20 => Some(self.english),
            _ => Some(country.map_or(self.english, |c| self.languages[c])),
        };
        let platform = *self.platforms.pick(rng);
        Profile {
            country,
            language,
            platform,
            screen: *self.screens[platform.class].pick(rng),
        }
    }

    fn source(&self, rng: &mut StdRng, regular: bool) -> Source {
        if !regular && rng.random_bool(CAMPAIGN_SHARE) {
            return *self.campaigns.pick(rng);
        }
        let direct = if regular { 0.6 } else { 0.32 };
        Source {
            referrer: (!rng.random_bool(direct)).then(|| *self.referrers.pick(rng)),
            ..Source::default()
        }
    }

    /// The first page: people who type the address land on the home page more often.
    fn entry(&self, rng: &mut StdRng, direct: bool) -> u32 {
        if direct && rng.random_bool(0.4) {
            HOME
        } else {
            *self.site.popular.pick(rng)
        }
    }

    fn next_page(&self, rng: &mut StdRng) -> u32 {
        if rng.random_bool(0.25) {
            *self.site.hubs.pick(rng)
        } else {
            *self.site.popular.pick(rng)
        }
    }

    fn blog_post(&self, rng: &mut StdRng) -> u32 {
        self.site.blog.0 + rng.random_range(0..self.site.blog.1.max(1))
    }

    /// The daily cycle in UTC minutes, all countries mixed.
    fn utc_cycle(&self) -> Vec<f64> {
        let mut minutes = vec![0.0; (DAY_MS / MINUTE_MS) as usize];
        let mut add = |offset_minutes: i64, weight: f64| {
            for (m, slot) in minutes.iter_mut().enumerate() {
                let local = (m as i64 + offset_minutes).rem_euclid(24 * 60);
                *slot += weight * DAILY_CYCLE[(local / 60) as usize];
            }
        };
        for c in &COUNTRIES {
            add(c.utc_offset_minutes, c.weight);
        }
        add(0, 1.0);
        minutes
    }
}

/// Props as the ingestion keeps them: a JSON object of strings.
fn props_json(pairs: &[(&str, &str)]) -> Option<String> {
    if pairs.is_empty() {
        return None;
    }
    let map: Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
        .collect();
    Some(Value::Object(map).to_string())
}

// ===== The tables =====

/// How many distinct paths the site has.
const PATHS: usize = 2_000;
/// How many distinct referrer hosts.
const REFERRER_HOSTS: usize = 300;

/// Visits starting in each local hour, relative: quiet at night, busiest in the afternoon.
#[rustfmt::skip]
const DAILY_CYCLE: [f64; 24] = [
    0.22, 0.14, 0.09, 0.07, 0.06, 0.08, 0.16, 0.35, 0.62, 0.85, 0.95, 0.97,
    0.92, 0.96, 1.00, 1.00, 0.95, 0.85, 0.74, 0.70, 0.68, 0.62, 0.50, 0.35,
];
/// Monday first: weekends are quieter.
const WEEKDAYS: [f64; 7] = [1.0, 1.05, 1.05, 1.0, 0.9, 0.6, 0.65];

/// The site's own pages, most visited first.
#[rustfmt::skip]
const FIXED_PAGES: [&str; 20] = [
    "/", "/pricing", "/blog", "/docs", "/features", "/signup", "/login", "/about", "/integrations",
    "/changelog", "/customers", "/contact", "/security", "/privacy", "/terms", "/careers",
    "/status", "/download", "/compare", "/roadmap",
];
const HUBS: [(&str, f64); 6] = [
    ("/", 30.0),
    ("/pricing", 20.0),
    ("/docs", 15.0),
    ("/blog", 15.0),
    ("/features", 10.0),
    ("/signup", 10.0),
];
#[rustfmt::skip]
const INTEGRATIONS: [&str; 40] = [
    "wordpress", "shopify", "webflow", "ghost", "hugo", "jekyll", "gatsby", "nextjs", "nuxt",
    "astro", "remix", "sveltekit", "django", "rails", "laravel", "express", "vercel", "netlify",
    "cloudflare", "squarespace", "wix", "framer", "docusaurus", "mkdocs", "hexo", "eleventy",
    "angular", "react", "vue", "svelte", "ember", "drupal", "joomla", "magento", "bigcommerce",
    "notion", "carrd", "bubble", "gitbook", "zola",
];
#[rustfmt::skip]
const DOC_SECTIONS: [&str; 12] = [
    "getting-started", "installation", "configuration", "tracking", "api", "dashboard", "reports",
    "integrations", "self-hosting", "privacy", "troubleshooting", "reference",
];
/// Words for docs pages and blog posts.
#[rustfmt::skip]
const WORDS: [&str; 60] = [
    "analytics", "privacy", "dashboard", "metrics", "tracking", "cookies", "gdpr", "events",
    "funnels", "goals", "retention", "sessions", "referrers", "campaigns", "performance", "scaling",
    "sqlite", "rust", "deploy", "docker", "nginx", "api", "webhooks", "exports", "imports", "teams",
    "billing", "security", "backups", "alerts", "reports", "segments", "filters", "realtime",
    "heatmaps", "conversions", "bounce", "pageviews", "visitors", "devices", "browsers",
    "countries", "languages", "screens", "timezones", "migration", "setup", "install", "upgrade",
    "release", "roadmap", "pricing", "open-source", "self-hosting", "benchmarks", "caching",
    "indexes", "queries", "schema", "storage",
];

/// Referrer hosts that exist, most frequent first; made-up ones fill the long tail.
#[rustfmt::skip]
const REFERRERS: [&str; 45] = [
    "google.com", "bing.com", "duckduckgo.com", "news.ycombinator.com", "reddit.com", "github.com",
    "t.co", "linkedin.com", "facebook.com", "google.de", "yandex.ru", "stackoverflow.com",
    "google.co.uk", "producthunt.com", "dev.to", "medium.com", "ecosia.org", "search.brave.com",
    "youtube.com", "google.fr", "baidu.com", "lobste.rs", "indiehackers.com", "chatgpt.com",
    "perplexity.ai", "mastodon.social", "bsky.app", "yahoo.com", "qwant.com", "startpage.com",
    "kagi.com", "en.wikipedia.org", "alternativeto.net", "hashnode.com", "substack.com",
    "discord.com", "slack.com", "teams.microsoft.com", "instagram.com", "pinterest.com",
    "news.google.com", "g2.com", "capterra.com", "x.com", "google.com.br",
];
const REFERRER_PREFIXES: [&str; 15] = [
    "tech", "code", "dev", "data", "cloud", "open", "web", "daily", "indie", "micro", "pixel",
    "byte", "stack", "green", "smart",
];
const REFERRER_SUFFIXES: [&str; 12] = [
    "blog", "weekly", "notes", "hub", "labs", "digest", "journal", "zone", "corner", "radar",
    "times", "forge",
];
const TLDS: [&str; 6] = ["com", "io", "dev", "net", "org", "co"];

/// source, medium, campaign, term, content ("": not set), the referrer that comes with
/// them ("": direct), weight.
type Campaign = ([&'static str; 5], &'static str, f64);
#[rustfmt::skip]
const CAMPAIGNS: [Campaign; 8] = [
    (["newsletter", "email", "weekly-digest", "", ""], "", 30.0),
    (["newsletter", "email", "product-update", "", ""], "", 10.0),
    (["twitter", "social", "launch-week", "", ""], "t.co", 12.0),
    (["linkedin", "social", "webinar", "", "banner"], "linkedin.com", 8.0),
    (["google", "cpc", "brand", "web analytics", "ad-a"], "google.com", 15.0),
    (["google", "cpc", "brand", "privacy analytics", "ad-b"], "google.com", 10.0),
    (["google", "cpc", "competitors", "google analytics alternative", "ad-a"], "google.com", 10.0),
    (["producthunt", "referral", "launch", "", ""], "producthunt.com", 5.0),
];

/// A country visitors come from: its ISO code, its share, its UTC offset in minutes (one per
/// country, roughly), and the language its browsers mostly ask for.
struct Country {
    code: &'static str,
    weight: f64,
    utc_offset_minutes: i64,
    language: &'static str,
}

const fn country(code: &'static str, weight: f64, offset: i64, language: &'static str) -> Country {
    Country {
        code,
        weight,
        utc_offset_minutes: offset,
        language,
    }
}

#[rustfmt::skip]
const COUNTRIES: [Country; 63] = [
    country("US", 22.0, -300, "en-US"),
    country("IN", 7.0, 330, "en-IN"),
    country("DE", 7.0, 60, "de-DE"),
    country("GB", 6.0, 0, "en-GB"),
    country("FR", 4.0, 60, "fr-FR"),
    country("CA", 3.5, -300, "en-CA"),
    country("BR", 3.0, -180, "pt-BR"),
    country("NL", 2.5, 60, "nl-NL"),
    country("JP", 2.5, 540, "ja-JP"),
    country("ES", 2.0, 60, "es-ES"),
    country("IT", 2.0, 60, "it-IT"),
    country("AU", 2.0, 600, "en-AU"),
    country("PL", 1.8, 60, "pl-PL"),
    country("RU", 1.5, 180, "ru-RU"),
    country("CN", 1.5, 480, "zh-CN"),
    country("SE", 1.2, 60, "sv-SE"),
    country("CH", 1.2, 60, "de-CH"),
    country("KR", 1.1, 540, "ko-KR"),
    country("MX", 1.1, -360, "es-MX"),
    country("TR", 1.0, 180, "tr-TR"),
    country("ID", 1.0, 420, "id-ID"),
    country("UA", 1.0, 120, "uk-UA"),
    country("BE", 0.9, 60, "nl-BE"),
    country("AT", 0.9, 60, "de-AT"),
    country("SG", 0.8, 480, "en-SG"),
    country("IL", 0.7, 120, "he-IL"),
    country("IE", 0.7, 0, "en-IE"),
    country("DK", 0.7, 60, "da-DK"),
    country("NO", 0.7, 60, "nb-NO"),
    country("CZ", 0.7, 60, "cs-CZ"),
    country("FI", 0.6, 120, "fi-FI"),
    country("PT", 0.6, 0, "pt-PT"),
    country("AR", 0.6, -180, "es-AR"),
    country("VN", 0.6, 420, "vi-VN"),
    country("TW", 0.6, 480, "zh-TW"),
    country("HK", 0.5, 480, "zh-HK"),
    country("RO", 0.5, 120, "ro-RO"),
    country("NZ", 0.5, 720, "en-NZ"),
    country("ZA", 0.5, 120, "en-ZA"),
    country("PH", 0.5, 480, "en-PH"),
    country("PK", 0.5, 300, "en-PK"),
    country("NG", 0.4, 60, "en-NG"),
    country("TH", 0.4, 420, "th-TH"),
    country("MY", 0.4, 480, "ms-MY"),
    country("GR", 0.4, 120, "el-GR"),
    country("HU", 0.4, 60, "hu-HU"),
    country("CO", 0.4, -300, "es-CO"),
    country("EG", 0.3, 120, "ar-EG"),
    country("CL", 0.3, -240, "es-CL"),
    country("BD", 0.3, 360, "bn-BD"),
    country("AE", 0.3, 240, "ar-AE"),
    country("SA", 0.3, 180, "ar-SA"),
    country("BG", 0.3, 120, "bg-BG"),
    country("KE", 0.2, 180, "en-KE"),
    country("HR", 0.2, 60, "hr-HR"),
    country("RS", 0.2, 60, "sr-RS"),
    country("SK", 0.2, 60, "sk-SK"),
    country("LT", 0.2, 120, "lt-LT"),
    country("PE", 0.2, -300, "es-PE"),
    country("EE", 0.15, 120, "et-EE"),
    country("LV", 0.15, 120, "lv-LV"),
    country("SI", 0.15, 60, "sl-SI"),
    country("MA", 0.15, 60, "fr-MA"),
];

/// Device, system, browser, weight (in percent of visits).
const PLATFORMS: [(&str, &str, &str, f64); 26] = [
    ("desktop", "Windows", "Chrome", 22.0),
    ("desktop", "Windows", "Edge", 7.5),
    ("desktop", "Windows", "Firefox", 3.5),
    ("desktop", "Windows", "Opera", 1.5),
    ("desktop", "macOS", "Chrome", 9.0),
    ("desktop", "macOS", "Safari", 7.0),
    ("desktop", "macOS", "Firefox", 1.3),
    ("desktop", "macOS", "Edge", 0.7),
    ("desktop", "Linux", "Chrome", 3.3),
    ("desktop", "Linux", "Firefox", 2.7),
    ("desktop", "ChromeOS", "Chrome", 1.5),
    ("mobile", "Android", "Chrome", 15.0),
    ("mobile", "Android", "Samsung Internet", 3.0),
    ("mobile", "Android", "Firefox", 0.8),
    ("mobile", "Android", "Opera", 0.6),
    ("mobile", "Android", "MIUI Browser", 0.4),
    ("mobile", "Android", "Android WebView", 0.2),
    ("mobile", "iOS", "Safari", 12.0),
    ("mobile", "iOS", "Chrome", 2.2),
    ("mobile", "iOS", "Firefox", 0.4),
    ("mobile", "iOS", "Google App", 0.2),
    ("mobile", "iOS", "iOS WebView", 0.2),
    ("tablet", "iOS", "Safari", 2.6),
    ("tablet", "iOS", "Chrome", 0.4),
    ("tablet", "Android", "Chrome", 1.6),
    ("tablet", "Android", "Samsung Internet", 0.4),
];

/// Screen classes by device.
const SCREENS: [(&str, &[(&str, f64)]); 3] = [
    ("desktop", &[("md", 5.0), ("lg", 45.0), ("xl", 50.0)]),
    ("mobile", &[("xs", 96.0), ("sm", 4.0)]),
    ("tablet", &[("sm", 5.0), ("md", 65.0), ("lg", 30.0)]),
];

/// Event name, weight, and its variants of props with their weights.
type EventSpec = (
    &'static str,
    f64,
    &'static [(&'static [(&'static str, &'static str)], f64)],
);
const EVENTS: &[EventSpec] = &[
    (
        "Signup",
        20.0,
        &[
            (&[("plan", "free")], 60.0),
            (&[("plan", "pro")], 20.0),
            (&[("billing", "yearly"), ("plan", "pro")], 10.0),
            (&[("plan", "team")], 5.0),
            (&[("billing", "yearly"), ("plan", "team")], 5.0),
        ],
    ),
    (
        "Download",
        15.0,
        &[
            (&[("file", "jetrack-linux-x86_64.tar.gz")], 50.0),
            (&[("file", "jetrack-macos.zip")], 30.0),
            (&[("file", "whitepaper.pdf")], 20.0),
        ],
    ),
    (
        "Outbound Link",
        15.0,
        &[
            (&[("url", "https://github.com/example/jetrack")], 60.0),
            (&[("url", "https://twitter.com/example")], 20.0),
            (&[("url", "https://discord.gg/example")], 20.0),
        ],
    ),
    (
        "Copy Code",
        10.0,
        &[
            (&[("language", "html")], 50.0),
            (&[("language", "js")], 30.0),
            (&[("language", "shell")], 20.0),
        ],
    ),
    ("Search", 10.0, &[(&[], 1.0)]),
    ("Newsletter Subscribe", 8.0, &[(&[], 1.0)]),
    (
        "Play Video",
        8.0,
        &[(&[("video", "intro")], 70.0), (&[("video", "demo")], 30.0)],
    ),
    (
        "Start Trial",
        6.0,
        &[
            (&[("plan", "pro"), ("source", "pricing")], 80.0),
            (&[("plan", "team"), ("source", "pricing")], 20.0),
        ],
    ),
    ("Contact", 4.0, &[(&[], 1.0)]),
    (
        "Purchase",
        4.0,
        &[
            (&[("billing", "monthly"), ("plan", "pro")], 50.0),
            (&[("billing", "yearly"), ("plan", "pro")], 35.0),
            (&[("billing", "yearly"), ("plan", "team")], 15.0),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use rusqlite::types::Value as Sql;

    use super::*;
    use crate::ingest::store::{Activity, Attrs, Kind, Store};

    const T0: i64 = 1_736_935_200_000; // 2025-01-15T10:00:00Z: the last day is partly covered

    fn options(pageviews: u64, days: u32) -> Options {
        Options {
            pageviews,
            days,
            end_ms: T0,
            seed: 7,
            ..Options::default()
        }
    }

    /// The same trace as activities sent to the ingestion, heartbeats included.
    fn activities(opts: &Options) -> Vec<Activity> {
        let mut trace = Trace::new(opts);
        let days = trace.day_plans(opts);
        let mut summary = Summary::default();
        let mut out = Vec::new();
        for day in &days {
            for visit in trace.day(day, &mut summary) {
                out.extend(visit_activities(&trace.catalog, &visit));
            }
        }
        out
    }

    fn visit_activities(catalog: &Catalog, v: &Visit) -> Vec<Activity> {
        let text = |sym: Sym| catalog.strings.get(sym).to_string();
        let opt = |sym: Option<Sym>| sym.map(text);
        let entry = &catalog.site.pages[v.steps[0].page as usize];
        let (p, s) = (&v.profile, &v.source);
        let attrs = Attrs {
            hostname: Some(text(entry.hostname)),
            referrer: opt(s.referrer),
            utm_source: opt(s.utm[0]),
            utm_medium: opt(s.utm[1]),
            utm_campaign: opt(s.utm[2]),
            utm_term: opt(s.utm[3]),
            utm_content: opt(s.utm[4]),
            country: p.country.map(|c| COUNTRIES[c].code.to_string()),
            browser: Some(text(p.platform.browser)),
            os: Some(text(p.platform.os)),
            device: Some(text(p.platform.device)),
            language: opt(p.language),
            screen: Some(text(p.screen)),
        };
        let activity = |kind, at, page: &Page| Activity {
            site: crate::websites::SiteNum(1),
            at,
            kind,
            visitor: v.visitor,
            previous_visitor: None,
            hostname: text(page.hostname),
            path: text(page.path),
            attrs: attrs.clone(),
            name: None,
            props: None,
        };
        let mut out = Vec::new();
        for step in &v.steps {
            let page = &catalog.site.pages[step.page as usize];
            let at = v.start + step.offset;
            out.push(activity(Kind::Pageview, at, page));
            for beat in 1..=i64::from(step.beats) {
                out.push(activity(Kind::Heartbeat, at + beat * HEARTBEAT_MS, page));
            }
        }
        for &(offset, kind) in &v.events {
            let event = &catalog.events[kind as usize];
            let mut a = activity(Kind::Event, v.start + offset, entry);
            a.name = Some(text(event.name));
            a.props = event.props.clone();
            out.push(a);
        }
        out
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<Vec<Sql>> {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Sql>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// Everything stored, with strings as text and visits by visitor and time (not by id).
    fn stored(conn: &Connection) -> [Vec<Vec<Sql>>; 4] {
        let s = |col: &str| format!("(SELECT value FROM strings WHERE id = {col})");
        let attrs = [
            "entry",
            "exit",
            "hostname",
            "referrer",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "browser",
            "os",
            "device",
            "language",
            "screen",
        ]
        .map(s)
        .join(", ");
        [
            rows(
                conn,
                &format!(
                    "SELECT visitor, first_at, last_at, pv_first_at, pv_last_at, pageviews,
                            events, country, {attrs}
                     FROM visits ORDER BY visitor, first_at"
                ),
            ),
            rows(
                conn,
                &format!(
                    "SELECT p.at, v.visitor, v.first_at, {}, {}
                     FROM pageviews p JOIN visits v ON v.id = p.visit ORDER BY 1, 2, 3, 4, 5",
                    s("p.hostname"),
                    s("p.path")
                ),
            ),
            rows(
                conn,
                &format!(
                    "SELECT e.at, v.visitor, v.first_at, {}, e.props
                     FROM events e JOIN visits v ON v.id = e.visit ORDER BY 1, 2, 3, 4, 5",
                    s("e.name")
                ),
            ),
            rows(conn, "SELECT site, bucket FROM stats_dirty ORDER BY 1, 2"),
        ]
    }

    #[test]
    fn the_rows_are_those_the_ingestion_writer_stores_for_the_same_activities() {
        let opts = options(3_000, 4);
        let (_d1, generated) = crate::db::test_database();
        let summary = generate(&generated, 1, &opts).unwrap();

        let (_d2, ingested) = crate::db::test_database();
        let store = Store::new();
        let mut trace = activities(&opts);
        trace.sort_by_key(|a| a.at);
        for chunk in trace.chunks(500) {
            ingested.execute_batch("BEGIN").unwrap();
            store.record(&ingested, chunk).unwrap();
            ingested.execute_batch("COMMIT").unwrap();
        }
        let heartbeats = trace.iter().filter(|a| a.kind == Kind::Heartbeat).count();
        assert_eq!(summary.heartbeats, heartbeats as u64);

        let (mine, theirs) = (stored(&generated), stored(&ingested));
        assert_eq!(mine[0].len() as u64, summary.visits);
        assert_eq!(mine[1].len(), 3_000);
        assert_eq!(mine[2].len() as u64, summary.events);
        for (table, (m, t)) in ["visits", "pageviews", "events", "stats_dirty"]
            .iter()
            .zip(mine.iter().zip(&theirs))
        {
            assert_eq!(m.len(), t.len(), "{table}");
            for (a, b) in m.iter().zip(t) {
                assert_eq!(a, b, "{table}");
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let opts = options(2_000, 3);
        let (_d1, a) = crate::db::test_database();
        let (_d2, b) = crate::db::test_database();
        assert_eq!(
            generate(&a, 1, &opts).unwrap(),
            generate(&b, 1, &opts).unwrap()
        );
        assert_eq!(stored(&a), stored(&b));
        let other = Options { seed: 8, ..opts };
        let (_d3, c) = crate::db::test_database();
        generate(&c, 1, &other).unwrap();
        assert_ne!(stored(&a)[1], stored(&c)[1]);
    }

    /// Rows of integers.
    fn numbers(conn: &Connection, sql: &str) -> Vec<Vec<i64>> {
        let integer = |v: Sql| match v {
            Sql::Integer(n) => n,
            other => panic!("not an integer: {other:?}"),
        };
        rows(conn, sql)
            .into_iter()
            .map(|row| row.into_iter().map(integer).collect())
            .collect()
    }

    #[test]
    fn visits_keep_the_writers_invariants() {
        let opts = options(30_000, 28);
        let (_dir, conn) = crate::db::test_database();
        let summary = generate(&conn, 1, &opts).unwrap();
        assert_eq!(summary.pageviews, 30_000);

        let mut pageviews: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for row in numbers(&conn, "SELECT visit, at, path FROM pageviews") {
            pageviews.entry(row[0]).or_default().push((row[1], row[2]));
        }
        assert_eq!(pageviews.values().map(Vec::len).sum::<usize>(), 30_000);
        let mut events: HashMap<i64, Vec<i64>> = HashMap::new();
        for row in numbers(&conn, "SELECT visit, at FROM events") {
            events.entry(row[0]).or_default().push(row[1]);
        }
        let visits = numbers(
            &conn,
            "SELECT id, visitor, first_at, last_at, pv_first_at, pv_last_at, pageviews, events,
                    entry, exit FROM visits ORDER BY visitor, first_at",
        );
        assert_eq!(visits.len() as u64, summary.visits);

        // Each visit's counters, times, entry and exit match its rows.
        for v in &visits {
            let &[
                id,
                _,
                first_at,
                last_at,
                pv_first,
                pv_last,
                count,
                event_count,
                entry,
                exit,
            ] = &v[..]
            else {
                unreachable!()
            };
            let mut pvs = pageviews.remove(&id).unwrap_or_default();
            pvs.sort_unstable();
            let evs = events.remove(&id).unwrap_or_default();
            assert_eq!(pvs.len() as i64, count, "visit {id}");
            assert_eq!(evs.len() as i64, event_count, "visit {id}");
            assert_eq!(pvs[0], (pv_first, entry), "visit {id}");
            assert_eq!(pvs[pvs.len() - 1], (pv_last, exit), "visit {id}");
            assert_eq!(first_at, pv_first, "a visit starts with its first pageview");
            assert!(last_at >= pv_last && evs.iter().all(|&at| at <= last_at));
            assert!(last_at < T0, "nothing after the end");
        }
        assert!(pageviews.is_empty() && events.is_empty(), "no orphan rows");

        // One visitor's visits are at least 30 minutes apart.
        let mut returning = 0;
        for pair in visits.windows(2) {
            let ([_, visitor, _, last_at, ..], [_, next_visitor, next_first_at, ..]) =
                (&pair[0][..], &pair[1][..])
            else {
                unreachable!()
            };
            if visitor == next_visitor {
                returning += 1;
                assert!(next_first_at - last_at >= VISIT_GAP_MS, "{pair:?}");
            }
        }
        assert!(
            returning > 100,
            "regulars come back the same day: {returning}"
        );
        let distinct: HashSet<i64> = visits.iter().map(|v| v[1]).collect();
        assert_eq!(distinct.len() as u64, summary.visitors);
    }

    fn share(part: u64, whole: u64) -> f64 {
        part as f64 / whole as f64
    }

    #[test]
    fn the_trace_has_the_shape_of_real_traffic() {
        let opts = options(60_000, 56);
        let (_dir, conn) = crate::db::test_database();
        let s = generate(&conn, 1, &opts).unwrap();
        let bounce = share(s.bounces, s.visits);
        assert!((0.38..0.52).contains(&bounce), "bounce share {bounce}");
        let direct = share(s.direct, s.visits);
        assert!((0.33..0.5).contains(&direct), "direct share {direct}");
        let beats = share(s.heartbeats, s.pageviews);
        assert!(
            (1.6..2.6).contains(&beats),
            "heartbeats per pageview {beats}"
        );
        let events = share(s.events, s.pageviews);
        assert!(
            (0.035..0.065).contains(&events),
            "events per pageview {events}"
        );

        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert!(count("SELECT count(*) FROM visits WHERE last_at - first_at > 3600000") > 10);
        assert!(count("SELECT count(DISTINCT country) FROM visits") >= 50);
        assert_eq!(count("SELECT count(DISTINCT device) FROM visits"), 3);
        assert_eq!(count("SELECT count(DISTINCT screen) FROM visits"), 5);
        assert!(count("SELECT count(DISTINCT path) FROM pageviews") > 1_000);
        assert!(count("SELECT count(DISTINCT referrer) FROM visits") > 150);
        assert_eq!(count("SELECT count(DISTINCT hostname) FROM pageviews"), 3);
        assert_eq!(count("SELECT count(DISTINCT name) FROM events"), 10);
        assert!(count("SELECT count(*) FROM visits WHERE utm_source IS NOT NULL") > 100);

        // The most visited path and referrer take a large share: a power law, not uniform.
        let top_path = count("SELECT max(n) FROM (SELECT count(*) n FROM pageviews GROUP BY path)");
        assert!(share(top_path as u64, s.pageviews) > 0.05);
        let top_referrer = count(
            "SELECT max(n) FROM (SELECT count(*) n FROM visits WHERE referrer IS NOT NULL
                                 GROUP BY referrer)",
        );
        assert!(share(top_referrer as u64, s.visits - s.direct) > 0.1);

        // Daily cycle: all countries mixed, the busiest UTC hour still sees twice the quietest;
        // in one country's local time (Germany, UTC+1 here) afternoons see ten times the nights.
        let hours = numbers(
            &conn,
            "SELECT (at / 3600000) % 24, count(*) FROM pageviews GROUP BY 1",
        );
        let most = hours.iter().map(|h| h[1]).max().unwrap();
        let least = hours.iter().map(|h| h[1]).min().unwrap();
        assert!(most > 2 * least, "{hours:?}");
        let local = |from: i64, to: i64| {
            count(&format!(
                "SELECT count(*) FROM visits WHERE country = 'DE'
                 AND (first_at / 3600000 + 1) % 24 BETWEEN {from} AND {to}"
            ))
        };
        assert!(
            local(13, 16) > 10 * local(2, 5),
            "{} {}",
            local(13, 16),
            local(2, 5)
        );
        // Weekly cycle: weekend days are quieter than weekdays (1970-01-01 was a Thursday).
        let by_weekday = numbers(
            &conn,
            &format!(
                "SELECT (at / 86400000 + 3) % 7, count(*) FROM pageviews
                 WHERE at < {} GROUP BY 1 ORDER BY 1",
                T0 - T0 % DAY_MS
            ),
        );
        let weekday = by_weekday[..5].iter().map(|d| d[1]).sum::<i64>() as f64 / 5.0;
        let weekend = by_weekday[5..].iter().map(|d| d[1]).sum::<i64>() as f64 / 2.0;
        assert!(weekend < 0.8 * weekday, "{by_weekday:?}");
    }

    #[test]
    fn apportioning_adds_up_and_gives_nothing_to_a_zero_weight() {
        let parts = apportion(10, &[1.0, 0.0, 1.0, 1.0]);
        assert_eq!(parts.iter().sum::<u64>(), 10);
        assert_eq!(parts[1], 0);
        assert!(parts.iter().all(|&p| p == 0 || (3..=4).contains(&p)));
        assert_eq!(apportion(7, &[0.0, 0.0]), [0, 0]);
    }

    #[test]
    fn an_unknown_site_or_no_days_is_refused() {
        let (_dir, conn) = crate::db::test_database();
        assert!(matches!(
            generate(&conn, 9, &options(10, 1)),
            Err(Error::NotFound(_))
        ));
        assert!(generate(&conn, 1, &options(10, 0)).is_err());
    }
}
