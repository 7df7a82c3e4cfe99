//! The oracle test of the statistics API (SPEC 2.6, 4): a seeded random trace of thousands of
//! activities goes into the real server, through `POST /api/v1/websites/{id}/events` in
//! shuffled chunks and, for a small live part, through `POST /api/collect`; this file then
//! works out every figure of SPEC 4 from the events it sent, in plain code (sessions by the
//! 30-minute rule, attributes of the first pageview, filters, rounding as the API contract
//! fixes it), and compares them with every statistics endpoint (main with and without
//! `compare=previous`, timeseries in every interval, every breakdown, event-props,
//! active-users, realtime) over several ranges, filters and time zones, answers whole and
//! exactly.
//!
//! Three rounds: first with part of the trace held back; then after the held-back activities
//! came late (among them ones that join two stored sessions into one); then after
//! `jetrack rebuild-aggregates` ran beside the server, which must change no figure.
//!
//! The trace: ~90 visitors with pageviews, ~10 with server-side events only; bursts of
//! activity at random times 10 to 40 days ago, near local midnights of UTC, New York, Kolkata
//! and Berlin, and around the 2025 daylight-saving days of New York and Berlin; gaps of
//! seconds to hours including exactly 29:59, 29:59.999, 30:00 and 30:00.001; pageviews,
//! heartbeats and custom events with props; attributes given directly on every activity
//! (country, browser, OS, device, screen class or width, language), referrers (also direct,
//! empty and self-referrals), UTM parameters in the URL, hosts on subdomains and a `hostname`
//! given apart from the URL. Website A (UTC) and website B (Europe/Berlin) get the same trace;
//! website A also the live part (its times read back from the database, as the server's clock
//! gives them) and a few activities a little in the future or past for `realtime`.

mod common;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::ingest::{collect, db, dropped, website};
use common::{Sandbox, Server, api_key, client, envelope};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

const SECOND: i64 = 1_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

const DOMAIN_A: &str = "oracle.example";
const DOMAIN_B: &str = "zoned.example";
const ZONE_A: &str = "UTC";
const ZONE_B: &str = "Europe/Berlin";
const NEW_YORK: &str = "America/New_York";
const KOLKATA: &str = "Asia/Kolkata";

const REGULAR_VISITORS: usize = 90;
const SERVER_VISITORS: usize = 10;
const LIVE_VISITORS: usize = 12;

// ---------------------------------------------------------------------------------------------
// Values the trace draws from

const PATHS: [&str; 8] = [
    "/",
    "/pricing",
    "/blog/a",
    "/blog/b",
    "/docs",
    "/docs/install",
    "/about",
    "/signup",
];
/// URL host prefixes on the site's domain.
const HOSTS: [&str; 4] = ["", "www.", "blog.", "shop."];
/// (referrer as sent, `{D}` = the site's domain; the stored referrer host). Index 0: no
/// referrer field at all.
const REFERRERS: [(&str, Option<&str>); 9] = [
    ("", None),
    (
        "https://www.google.com/search?q=jetrack",
        Some("google.com"),
    ),
    (
        "https://news.example.org/item?id=7",
        Some("news.example.org"),
    ),
    ("https://t.co/x1", Some("t.co")),
    ("https://www.bing.com/", Some("bing.com")),
    ("https://DuckDuckGo.com/", Some("duckduckgo.com")),
    ("https://blog.{D}/post", None),
    ("https://{D}/", None),
    ("", None),
];
const UTM_VALUES: [[&str; 3]; 5] = [
    ["newsletter", "google", "twitter"],
    ["email", "cpc", "social"],
    ["fall", "launch", "spring"],
    ["shoes", "hats", "coats"],
    ["a", "b", "c"],
];
const UTM_KEYS: [&str; 5] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
];
const COUNTRIES: [&str; 6] = ["US", "DE", "FR", "IN", "JP", "BR"];
const BROWSERS: [&str; 4] = ["Chrome", "Firefox", "Safari", "Edge"];
const OSES: [&str; 5] = ["Windows", "macOS", "Linux", "iOS", "Android"];
const DEVICES: [&str; 3] = ["desktop", "mobile", "tablet"];
const LANGUAGES: [&str; 5] = ["en-US", "de-DE", "fr-FR", "hi-IN", "ja-JP"];
const SCREEN_CLASSES: [&str; 5] = ["xs", "sm", "md", "lg", "xl"];
const WIDTHS: [i64; 10] = [375, 575, 576, 767, 768, 991, 992, 1439, 1440, 2560];
const EVENT_NAMES: [&str; 4] = ["Signup", "Purchase", "Download", "Outbound Link"];

/// The 2025 daylight-saving days: (local date, zone).
const DST_DAYS: [(&str, &str); 4] = [
    ("2025-03-09", NEW_YORK),
    ("2025-11-02", NEW_YORK),
    ("2025-03-30", ZONE_B),
    ("2025-10-26", ZONE_B),
];

fn screen_class(width: i64) -> &'static str {
    match width {
        ..=575 => "xs",
        576..=767 => "sm",
        768..=991 => "md",
        992..=1439 => "lg",
        _ => "xl",
    }
}

// ---------------------------------------------------------------------------------------------
// Time helpers (jiff's tz database)

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn date(s: &str) -> Date {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn add_days(d: Date, n: i64) -> Date {
    d.checked_add(Span::new().days(n)).unwrap()
}

/// UTC milliseconds of local midnight starting `d` in `zone`.
fn midnight(d: Date, zone: &TimeZone) -> i64 {
    d.to_zoned(zone.clone())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn local_date(ms: i64, zone: &TimeZone) -> Date {
    Timestamp::from_millisecond(ms)
        .unwrap()
        .to_zoned(zone.clone())
        .date()
}

fn iso(ms: i64) -> String {
    format!("{:.3}", Timestamp::from_millisecond(ms).unwrap())
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

// ---------------------------------------------------------------------------------------------
// The trace

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pageview,
    Event,
    Heartbeat,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Pageview => "pageview",
            Kind::Event => "event",
            Kind::Heartbeat => "heartbeat",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Screen {
    None,
    Class(&'static str),
    Width(i64),
}

#[derive(Clone, Copy, Debug)]
enum Prop {
    S(&'static str),
    N(i64),
    B(bool),
}

impl Prop {
    fn json(self) -> Value {
        match self {
            Prop::S(s) => json!(s),
            Prop::N(n) => json!(n),
            Prop::B(b) => json!(b),
        }
    }

    /// As stored: text.
    fn text(self) -> String {
        match self {
            Prop::S(s) => s.to_string(),
            Prop::N(n) => n.to_string(),
            Prop::B(b) => b.to_string(),
        }
    }
}

/// One generated activity, independent of the website it goes to.
#[derive(Clone, Debug)]
struct Gen {
    who: usize,
    at: i64,
    kind: Kind,
    host: &'static str,
    /// A `hostname` field given apart from the URL (a prefix on the domain).
    host_field: Option<&'static str>,
    path: &'static str,
    extra_query: bool,
    fragment: bool,
    referrer: usize,
    utm: [Option<&'static str>; 5],
    country: Option<&'static str>,
    browser: Option<&'static str>,
    os: Option<&'static str>,
    device: Option<&'static str>,
    screen: Screen,
    language: Option<&'static str>,
    name: Option<&'static str>,
    props: Vec<(&'static str, Prop)>,
}

/// The attributes a pageview describes a session with, as stored.
#[derive(Clone, Debug, Default)]
struct Attrs {
    referrer: Option<String>,
    utm: [Option<String>; 5],
    country: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device: Option<String>,
    language: Option<String>,
    screen: Option<String>,
}

/// One activity as the server stores it.
#[derive(Clone, Debug)]
struct Act {
    vis: usize,
    at: i64,
    kind: Kind,
    host: String,
    path: String,
    attrs: Attrs,
    name: Option<String>,
    props: BTreeMap<String, String>,
}

fn label(who: usize) -> String {
    if who < REGULAR_VISITORS {
        format!("visitor-{who:03}")
    } else {
        format!("server-{:02}", who - REGULAR_VISITORS)
    }
}

fn maybe<T: Copy>(rng: &mut StdRng, none: f64, from: &[T]) -> Option<T> {
    if rng.random_bool(none) {
        None
    } else {
        Some(*from.choose(rng).unwrap())
    }
}

/// A visitor's usual setup; each activity keeps each part of it with probability 0.8.
#[derive(Clone, Copy)]
struct Profile {
    country: Option<&'static str>,
    browser: Option<&'static str>,
    os: Option<&'static str>,
    device: Option<&'static str>,
    screen: Screen,
    language: Option<&'static str>,
}

fn random_screen(rng: &mut StdRng) -> Screen {
    match rng.random_range(0..10) {
        0..=3 => Screen::Class(SCREEN_CLASSES.choose(rng).unwrap()),
        4..=7 => Screen::Width(*WIDTHS.choose(rng).unwrap()),
        _ => Screen::None,
    }
}

fn profile(rng: &mut StdRng) -> Profile {
    Profile {
        country: maybe(rng, 0.2, &COUNTRIES),
        browser: maybe(rng, 0.15, &BROWSERS),
        os: maybe(rng, 0.15, &OSES),
        device: maybe(rng, 0.15, &DEVICES),
        screen: random_screen(rng),
        language: maybe(rng, 0.2, &LANGUAGES),
    }
}

fn props_of(rng: &mut StdRng, name: &str) -> Vec<(&'static str, Prop)> {
    let mut props = Vec::new();
    match name {
        "Signup" => {
            if rng.random_bool(0.7) {
                props.push((
                    "plan",
                    Prop::S(["free", "pro", "team"].choose(rng).unwrap()),
                ));
            }
            if rng.random_bool(0.4) {
                props.push(("trial", Prop::B(rng.random_bool(0.5))));
            }
        }
        "Purchase" => {
            if rng.random_bool(0.8) {
                props.push(("seats", Prop::N(rng.random_range(1..5))));
            }
            props.push(("plan", Prop::S(["pro", "team"].choose(rng).unwrap())));
        }
        "Download" => {
            if rng.random_bool(0.6) {
                props.push((
                    "file",
                    Prop::S(["guide.pdf", "app.zip"].choose(rng).unwrap()),
                ));
            }
        }
        _ => props.push((
            "url",
            Prop::S(
                ["https://github.com/jetrack", "https://docs.rs/jiff"]
                    .choose(rng)
                    .unwrap(),
            ),
        )),
    }
    props
}

/// One activity of `who` at `at`; `landing` gives a pageview the referrer and UTM of a visit's
/// start, otherwise they are mostly those of an inner page.
fn activity(rng: &mut StdRng, who: usize, at: i64, kind: Kind, p: &Profile, landing: bool) -> Gen {
    let keep = |rng: &mut StdRng| rng.random_bool(0.8);
    let referrer = if landing || rng.random_bool(0.2) {
        rng.random_range(0..REFERRERS.len())
    } else {
        *[0, 6, 7].choose(rng).unwrap()
    };
    let mut utm = [None; 5];
    if landing || rng.random_bool(0.15) {
        for (i, slot) in utm.iter_mut().enumerate() {
            if rng.random_bool(0.4) {
                *slot = Some(*UTM_VALUES[i].choose(rng).unwrap());
            }
        }
    }
    let name = (kind == Kind::Event).then(|| *EVENT_NAMES.choose(rng).unwrap());
    Gen {
        who,
        at,
        kind,
        host: HOSTS.choose(rng).unwrap(),
        host_field: rng.random_bool(0.1).then_some("m."),
        path: PATHS.choose(rng).unwrap(),
        extra_query: rng.random_bool(0.2),
        fragment: rng.random_bool(0.1),
        referrer,
        utm,
        country: if keep(rng) {
            p.country
        } else {
            maybe(rng, 0.3, &COUNTRIES)
        },
        browser: if keep(rng) {
            p.browser
        } else {
            maybe(rng, 0.3, &BROWSERS)
        },
        os: if keep(rng) {
            p.os
        } else {
            maybe(rng, 0.3, &OSES)
        },
        device: if keep(rng) {
            p.device
        } else {
            maybe(rng, 0.3, &DEVICES)
        },
        screen: if keep(rng) {
            p.screen
        } else {
            random_screen(rng)
        },
        language: if keep(rng) {
            p.language
        } else {
            maybe(rng, 0.3, &LANGUAGES)
        },
        name,
        props: name.map(|n| props_of(rng, n)).unwrap_or_default(),
    }
}

/// The gap to the next activity of a burst.
fn gap(rng: &mut StdRng) -> i64 {
    match rng.random_range(0..100) {
        0..=4 => 29 * MIN + 59 * SECOND,
        5..=7 => 30 * MIN - 1,
        8..=12 => 30 * MIN,
        13..=14 => 30 * MIN + 1,
        15..=24 => rng.random_range(3 * MIN..25 * MIN),
        25..=29 => rng.random_range(30 * MIN..2 * HOUR),
        _ => rng.random_range(SECOND..3 * MIN),
    }
}

/// Where a burst of activity starts: anywhere in the window, near a local midnight or an
/// hour, or around one of the daylight-saving days.
fn burst_start(rng: &mut StdRng, window: (Date, Date), zones: &[TimeZone]) -> i64 {
    let days = (window.1 - window.0).get_days() as i64;
    let day = add_days(window.0, rng.random_range(0..days));
    match rng.random_range(0..100) {
        0..=49 => midnight(day, &zones[0]) + rng.random_range(0..24 * HOUR),
        50..=84 => {
            let edge = match rng.random_range(0..5) {
                4 => midnight(day, &zones[0]) + rng.random_range(0..24) * HOUR,
                z => midnight(day, &zones[z]),
            };
            edge + rng.random_range(-45 * MIN..45 * MIN)
        }
        _ => {
            let (d, zone) = DST_DAYS.choose(rng).unwrap();
            midnight(date(d), &tz(zone)) + rng.random_range(-6 * HOUR..30 * HOUR)
        }
    }
}

/// The whole imported trace, in time order per visitor with no two activities of a visitor
/// in the same millisecond (which would leave entry and exit pages to chance).
fn trace(rng: &mut StdRng, window: (Date, Date)) -> Vec<Gen> {
    let zones = [tz("UTC"), tz(NEW_YORK), tz(KOLKATA), tz(ZONE_B), tz("UTC")];
    let mut all = Vec::new();
    for who in 0..REGULAR_VISITORS + SERVER_VISITORS {
        let server_side = who >= REGULAR_VISITORS;
        let p = profile(rng);
        let mut acts: Vec<Gen> = Vec::new();
        for _ in 0..rng.random_range(2..=9) {
            let mut at = burst_start(rng, window, &zones);
            let marathon = !server_side && rng.random_bool(0.04);
            let len = if marathon {
                rng.random_range(30..60)
            } else if server_side {
                rng.random_range(1..=5)
            } else {
                rng.random_range(1..=12)
            };
            let mut landing = true;
            for i in 0..len {
                let kind = if server_side {
                    Kind::Event
                } else if i == 0 {
                    match rng.random_range(0..100) {
                        0..=74 => Kind::Pageview,
                        75..=89 => Kind::Event,
                        _ => Kind::Heartbeat,
                    }
                } else {
                    match rng.random_range(0..100) {
                        0..=49 => Kind::Pageview,
                        50..=79 => Kind::Heartbeat,
                        _ => Kind::Event,
                    }
                };
                let g = activity(rng, who, at, kind, &p, landing && kind == Kind::Pageview);
                if kind == Kind::Pageview {
                    landing = false;
                }
                acts.push(g);
                at += if marathon {
                    rng.random_range(15 * MIN..30 * MIN - 1)
                } else {
                    gap(rng)
                };
            }
        }
        acts.sort_by_key(|g| g.at);
        for i in 1..acts.len() {
            if acts[i].at <= acts[i - 1].at {
                acts[i].at = acts[i - 1].at + 1;
            }
        }
        all.extend(acts);
    }
    all
}

/// Which activities are sent only after the first round of comparisons: 30 % of those whose
/// absence splits a session in two (so that they merge two stored sessions when they come),
/// and a few others.
fn held_back(gens: &[Gen], rng: &mut StdRng) -> Vec<bool> {
    (0..gens.len())
        .map(|i| {
            let bridge = i > 0
                && i + 1 < gens.len()
                && gens[i - 1].who == gens[i].who
                && gens[i + 1].who == gens[i].who
                && gens[i].at - gens[i - 1].at < 30 * MIN
                && gens[i + 1].at - gens[i].at < 30 * MIN
                && gens[i + 1].at - gens[i - 1].at >= 30 * MIN;
            rng.random_bool(if bridge { 0.3 } else { 0.01 })
        })
        .collect()
}

/// The import body entry of `g` on website `domain`.
fn render(g: &Gen, domain: &str) -> Value {
    let mut query: Vec<String> = g
        .utm
        .iter()
        .zip(UTM_KEYS)
        .filter_map(|(v, k)| v.map(|v| format!("{k}={v}")))
        .collect();
    if g.extra_query {
        query.insert(0, "page=2".into());
    }
    let url = format!(
        "https://{}{domain}{}{}{}",
        g.host,
        g.path,
        if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        },
        if g.fragment { "#top" } else { "" }
    );
    let mut e = json!({"type": g.kind.as_str(), "url": url, "timestamp": iso(g.at),
                       "visitorId": label(g.who)});
    let o = e.as_object_mut().unwrap();
    if g.referrer != 0 {
        o.insert(
            "referrer".into(),
            json!(REFERRERS[g.referrer].0.replace("{D}", domain)),
        );
    }
    if let Some(h) = g.host_field {
        o.insert("hostname".into(), json!(format!("{h}{domain}")));
    }
    for (field, value) in [
        ("country", g.country),
        ("browser", g.browser),
        ("os", g.os),
        ("device", g.device),
        ("language", g.language),
        ("name", g.name),
    ] {
        if let Some(v) = value {
            o.insert(field.into(), json!(v));
        }
    }
    match g.screen {
        Screen::None => {}
        Screen::Class(c) => {
            o.insert("screen".into(), json!(c));
        }
        Screen::Width(w) => {
            o.insert("screenWidth".into(), json!(w));
        }
    }
    if !g.props.is_empty() {
        let props: Map<String, Value> = g
            .props
            .iter()
            .map(|(k, v)| (k.to_string(), v.json()))
            .collect();
        o.insert("props".into(), Value::Object(props));
    }
    e
}

/// What the server keeps of `g` on website `domain`.
fn stored(g: &Gen, domain: &str) -> Act {
    Act {
        vis: g.who,
        at: g.at,
        kind: g.kind,
        host: format!("{}{domain}", g.host_field.unwrap_or(g.host)),
        path: g.path.to_string(),
        attrs: Attrs {
            referrer: REFERRERS[g.referrer].1.map(str::to_string),
            utm: g.utm.map(|u| u.map(str::to_string)),
            country: g.country.map(str::to_string),
            browser: g.browser.map(str::to_string),
            os: g.os.map(str::to_string),
            device: g.device.map(str::to_string),
            language: g.language.map(str::to_string),
            screen: match g.screen {
                Screen::None => None,
                Screen::Class(c) => Some(c.to_string()),
                Screen::Width(w) => Some(screen_class(w).to_string()),
            },
        },
        name: g.name.map(str::to_string),
        props: g
            .props
            .iter()
            .map(|(k, v)| (k.to_string(), v.text()))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle: sessions and every figure of SPEC 4

#[derive(Debug)]
struct Sess {
    vis: usize,
    first_at: i64,
    last_at: i64,
    /// Pageviews and events (indices into `Data::acts`), in time order.
    pvs: Vec<usize>,
    evs: Vec<usize>,
}

struct Data {
    id: String,
    domain: &'static str,
    zone: &'static str,
    acts: Vec<Act>,
    sess: Vec<Sess>,
    sess_of: Vec<usize>,
}

impl Data {
    fn new(id: String, domain: &'static str, zone: &'static str, acts: Vec<Act>) -> Data {
        let mut by_vis: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, a) in acts.iter().enumerate() {
            by_vis.entry(a.vis).or_default().push(i);
        }
        let mut sess: Vec<Sess> = Vec::new();
        let mut sess_of = vec![usize::MAX; acts.len()];
        for (vis, mut idx) in by_vis {
            idx.sort_by_key(|&i| acts[i].at);
            for w in idx.windows(2) {
                assert!(
                    acts[w[0]].at < acts[w[1]].at
                        || (acts[w[0]].kind == Kind::Heartbeat
                            || acts[w[1]].kind == Kind::Heartbeat),
                    "two stored activities of a visitor in one millisecond"
                );
            }
            let mut last: Option<i64> = None;
            for i in idx {
                let a = &acts[i];
                if last.is_none_or(|last| a.at - last >= 30 * MIN) {
                    sess.push(Sess {
                        vis,
                        first_at: a.at,
                        last_at: a.at,
                        pvs: Vec::new(),
                        evs: Vec::new(),
                    });
                }
                let s = sess.last_mut().unwrap();
                s.last_at = a.at;
                match a.kind {
                    Kind::Pageview => s.pvs.push(i),
                    Kind::Event => s.evs.push(i),
                    Kind::Heartbeat => {}
                }
                sess_of[i] = sess.len() - 1;
                last = Some(a.at);
            }
        }
        Data {
            id,
            domain,
            zone,
            acts,
            sess,
            sess_of,
        }
    }

    fn time(&self, s: &Sess) -> i64 {
        self.acts[s.pvs[0]].at
    }

    /// A session attribute by filter name: those of the first pageview, the exit page of the
    /// last one.
    fn attr(&self, s: &Sess, name: &str) -> Option<&str> {
        let first = &self.acts[s.pvs[0]];
        let a = &first.attrs;
        match name {
            "entryPage" => Some(&first.path),
            "exitPage" => Some(&self.acts[*s.pvs.last().unwrap()].path),
            "referrer" => a.referrer.as_deref(),
            "utmSource" => a.utm[0].as_deref(),
            "utmMedium" => a.utm[1].as_deref(),
            "utmCampaign" => a.utm[2].as_deref(),
            "utmTerm" => a.utm[3].as_deref(),
            "utmContent" => a.utm[4].as_deref(),
            "country" => a.country.as_deref(),
            "browser" => a.browser.as_deref(),
            "os" => a.os.as_deref(),
            "device" => a.device.as_deref(),
            "language" => a.language.as_deref(),
            "screen" => a.screen.as_deref(),
            other => panic!("no session attribute {other}"),
        }
    }

    /// Which sessions the filters select (only sessions with a pageview, whatever the range).
    fn selected(&self, filters: &[(String, String)]) -> Vec<bool> {
        self.sess
            .iter()
            .map(|s| {
                !s.pvs.is_empty()
                    && filters.iter().all(|(k, v)| match k.as_str() {
                        "path" => s.pvs.iter().any(|&i| self.acts[i].path == *v),
                        "hostname" => s.pvs.iter().any(|&i| self.acts[i].host == *v),
                        "event" if v == "(none)" => s.evs.is_empty(),
                        "event" => s
                            .evs
                            .iter()
                            .any(|&i| self.acts[i].name.as_deref() == Some(v)),
                        attr => matches(self.attr(s, attr), v),
                    })
            })
            .collect()
    }

    /// The pageviews counted by SPEC 4: in the range, of a selected session, and of the path
    /// and hostname a filter names.
    fn counted(&self, sel: &[bool], filters: &[(String, String)], r: (i64, i64)) -> Vec<usize> {
        (0..self.acts.len())
            .filter(|&i| {
                let a = &self.acts[i];
                a.kind == Kind::Pageview
                    && r.0 <= a.at
                    && a.at < r.1
                    && sel[self.sess_of[i]]
                    && filters.iter().all(|(k, v)| match k.as_str() {
                        "path" => a.path == *v,
                        "hostname" => a.host == *v,
                        _ => true,
                    })
            })
            .collect()
    }

    /// Selected sessions whose time is in the range.
    fn sessions_in(&self, sel: &[bool], r: (i64, i64)) -> Vec<usize> {
        (0..self.sess.len())
            .filter(|&s| {
                sel[s] && {
                    let t = self.time(&self.sess[s]);
                    r.0 <= t && t < r.1
                }
            })
            .collect()
    }

    /// The events of the `events` and `event-props` breakdowns: in the range; all of them
    /// without filters, those of selected sessions with filters.
    fn counted_events(&self, sel: &[bool], filtered: bool, r: (i64, i64)) -> Vec<usize> {
        (0..self.acts.len())
            .filter(|&i| {
                let a = &self.acts[i];
                a.kind == Kind::Event
                    && r.0 <= a.at
                    && a.at < r.1
                    && (!filtered || sel[self.sess_of[i]])
            })
            .collect()
    }

    fn main(&self, filters: &[(String, String)], r: (i64, i64)) -> Totals {
        let sel = self.selected(filters);
        let mut t = Totals::default();
        for i in self.counted(&sel, filters, r) {
            t.pageviews += 1;
            t.visitors.insert(self.acts[i].vis);
        }
        for s in self.sessions_in(&sel, r) {
            t.add_session(&self.sess[s]);
        }
        t
    }
}

fn matches(value: Option<&str>, want: &str) -> bool {
    if want == "(none)" {
        value.is_none()
    } else {
        value == Some(want)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn percent(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        round2(n as f64 * 100.0 / of as f64)
    }
}

#[derive(Default, Clone)]
struct Totals {
    pageviews: u64,
    visitors: BTreeSet<usize>,
    sessions: u64,
    bounces: u64,
    duration_ms: i64,
    session_pageviews: u64,
}

impl Totals {
    fn add_session(&mut self, s: &Sess) {
        self.sessions += 1;
        self.bounces += u64::from(s.pvs.len() == 1);
        self.duration_ms += s.last_at - s.first_at;
        self.session_pageviews += s.pvs.len() as u64;
    }

    fn bounce_rate(&self) -> f64 {
        percent(self.bounces as usize, self.sessions as usize)
    }

    fn avg_duration(&self) -> f64 {
        if self.sessions == 0 {
            0.0
        } else {
            round1(self.duration_ms as f64 / 1000.0 / self.sessions as f64)
        }
    }

    fn views_per_session(&self) -> f64 {
        if self.sessions == 0 {
            0.0
        } else {
            round2(self.session_pageviews as f64 / self.sessions as f64)
        }
    }

    fn main_json(&self) -> Value {
        json!({"uniqueVisitors": self.visitors.len(), "totalPageviews": self.pageviews,
               "totalSessions": self.sessions, "bounceRate": self.bounce_rate(),
               "avgSessionDuration": self.avg_duration(),
               "viewsPerSession": self.views_per_session()})
    }

    fn bucket_json(&self, date: &str) -> Value {
        json!({"date": date, "uniqueVisitors": self.visitors.len(),
               "totalPageviews": self.pageviews, "totalSessions": self.sessions,
               "bounceRate": self.bounce_rate(), "avgSessionDuration": self.avg_duration()})
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and what they must answer

/// One set of statistics requests: a website, a time zone override, a range and filters.
#[derive(Clone)]
struct Run {
    site: usize,
    zone: Option<&'static str>,
    from: Date,
    to: Date,
    filters: Vec<(String, String)>,
    /// Every interval and more event-props; else the default and `day`, and three.
    full: bool,
    /// Also the default page of some lists and `limit=2&page=2`.
    paged: bool,
}

/// One request and its expected answer.
#[derive(Clone)]
struct Probe {
    site: usize,
    route: String,
    params: Vec<(String, String)>,
    data: Value,
    meta: Value,
}

const SESSION_BREAKDOWNS: [(&str, &str); 14] = [
    ("entry-pages", "entryPage"),
    ("exit-pages", "exitPage"),
    ("referrers", "referrer"),
    ("utm-sources", "utmSource"),
    ("utm-mediums", "utmMedium"),
    ("utm-campaigns", "utmCampaign"),
    ("utm-terms", "utmTerm"),
    ("utm-contents", "utmContent"),
    ("countries", "country"),
    ("browsers", "browser"),
    ("os", "os"),
    ("devices", "device"),
    ("languages", "language"),
    ("screens", "screen"),
];

const EVENT_PROPS: [(&str, &str); 6] = [
    ("Signup", "plan"),
    ("Signup", "trial"),
    ("Purchase", "seats"),
    ("Outbound Link", "url"),
    ("Download", "file"),
    ("Download", "colour"),
];

/// Rows sorted as the API sorts them (uniqueVisitors descending, then value ascending with
/// null first), as JSON.
fn sorted_rows(mut rows: Vec<(Option<String>, usize, Value)>) -> Vec<Value> {
    rows.sort_by(|a, b| (Reverse(a.1), &a.0).cmp(&(Reverse(b.1), &b.0)));
    rows.into_iter().map(|r| r.2).collect()
}

struct Oracle<'a> {
    sites: &'a [Data],
}

impl Oracle<'_> {
    fn zone(&self, run: &Run) -> (&'static str, TimeZone) {
        let name = run.zone.unwrap_or(self.sites[run.site].zone);
        (name, tz(name))
    }

    fn range(&self, run: &Run) -> (i64, i64) {
        let (_, zone) = self.zone(run);
        (
            midnight(run.from, &zone),
            midnight(add_days(run.to, 1), &zone),
        )
    }

    fn base_params(&self, run: &Run) -> Vec<(String, String)> {
        let mut p = vec![
            ("from".to_string(), run.from.to_string()),
            ("to".to_string(), run.to.to_string()),
        ];
        if let Some(z) = run.zone {
            p.push(("timezone".into(), z.into()));
        }
        p.extend(run.filters.iter().cloned());
        p
    }

    fn base_meta(&self, run: &Run) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("status".into(), json!(200));
        m.insert("from".into(), json!(run.from.to_string()));
        m.insert("to".into(), json!(run.to.to_string()));
        m.insert("timezone".into(), json!(self.zone(run).0));
        m.insert("filters".into(), filters_json(&run.filters));
        m
    }

    fn probe(
        &self,
        run: &Run,
        route: &str,
        extra: &[(&str, String)],
        data: Value,
        meta_extra: &[(&str, Value)],
    ) -> Probe {
        let mut params = self.base_params(run);
        params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mut meta = self.base_meta(run);
        for (k, v) in meta_extra {
            meta.insert(k.to_string(), v.clone());
        }
        Probe {
            site: run.site,
            route: route.into(),
            params,
            data,
            meta: Value::Object(meta),
        }
    }

    /// Every probe of a run.
    fn probes(&self, run: &Run, out: &mut Vec<Probe>) {
        let d = &self.sites[run.site];
        let r = self.range(run);
        let (_, zone) = self.zone(run);
        let days = (run.to - run.from).get_days() as i64 + 1;

        // main, and with the period before.
        let main = d.main(&run.filters, r);
        out.push(self.probe(run, "main", &[], main.main_json(), &[]));
        let prev = Run {
            from: add_days(run.from, -days),
            to: add_days(run.from, -1),
            ..run.clone()
        };
        let mut with_prev = main.main_json();
        with_prev["previous"] = d.main(&run.filters, self.range(&prev)).main_json();
        out.push(self.probe(
            run,
            "main",
            &[("compare", "previous".into())],
            with_prev,
            &[],
        ));

        // timeseries: the default interval, then each one allowed.
        let default = if days <= 2 { "hour" } else { "day" };
        let mut intervals = vec![(None, default)];
        if run.full {
            for i in ["hour", "day", "week", "month"] {
                if i != "hour" || days <= 31 {
                    intervals.push((Some(i), i));
                }
            }
        } else {
            intervals.push((Some("day"), "day"));
        }
        for (given, interval) in intervals {
            let buckets = buckets(interval, run.from, run.to, &zone, r);
            let data = timeseries(d, &run.filters, &buckets);
            let extra: Vec<(&str, String)> = given
                .map(|i| vec![("interval", i.to_string())])
                .unwrap_or_default();
            out.push(self.probe(
                run,
                "timeseries",
                &extra,
                data,
                &[("interval", json!(interval))],
            ));
        }

        // breakdowns, whole lists.
        let uv = main.visitors.len();
        let sel = d.selected(&run.filters);
        let mut lists: Vec<(String, Vec<Value>)> = Vec::new();
        for (route, by_host) in [("pages", false), ("hostnames", true)] {
            let mut groups: BTreeMap<String, (BTreeSet<usize>, u64)> = BTreeMap::new();
            for i in d.counted(&sel, &run.filters, r) {
                let a = &d.acts[i];
                let key = if by_host { &a.host } else { &a.path };
                let g = groups.entry(key.clone()).or_default();
                g.0.insert(a.vis);
                g.1 += 1;
            }
            let rows = groups
                .into_iter()
                .map(|(k, (vis, n))| {
                    let row = json!({"value": k, "uniqueVisitors": vis.len(),
                                     "totalPageviews": n, "percentage": percent(vis.len(), uv)});
                    (Some(k), vis.len(), row)
                })
                .collect();
            lists.push((route.into(), sorted_rows(rows)));
        }
        let in_range = d.sessions_in(&sel, r);
        for (route, attr) in SESSION_BREAKDOWNS {
            let mut groups: BTreeMap<Option<String>, (BTreeSet<usize>, Totals)> = BTreeMap::new();
            for &s in &in_range {
                let s = &d.sess[s];
                let g = groups
                    .entry(d.attr(s, attr).map(str::to_string))
                    .or_default();
                g.0.insert(s.vis);
                g.1.add_session(s);
            }
            let rows = groups
                .into_iter()
                .map(|(k, (vis, t))| {
                    let row = json!({"value": k, "uniqueVisitors": vis.len(),
                                     "totalSessions": t.sessions, "bounceRate": t.bounce_rate(),
                                     "percentage": percent(vis.len(), uv)});
                    (k, vis.len(), row)
                })
                .collect();
            lists.push((route.into(), sorted_rows(rows)));
        }
        let events = d.counted_events(&sel, !run.filters.is_empty(), r);
        let mut groups: BTreeMap<String, (BTreeSet<usize>, u64)> = BTreeMap::new();
        for &i in &events {
            let a = &d.acts[i];
            let g = groups.entry(a.name.clone().unwrap()).or_default();
            g.0.insert(a.vis);
            g.1 += 1;
        }
        let rows = groups
            .into_iter()
            .map(|(k, (vis, n))| {
                let row = json!({"value": k, "totalEvents": n, "uniqueVisitors": vis.len(),
                                 "percentage": percent(vis.len(), uv)});
                (Some(k), vis.len(), row)
            })
            .collect();
        lists.push(("events".into(), sorted_rows(rows)));

        for (route, rows) in &lists {
            out.push(self.probe(
                run,
                route,
                &[("limit", "1000".into())],
                json!(rows),
                &[(
                    "pagination",
                    json!({"page": 1, "limit": 1000, "hasMore": false}),
                )],
            ));
        }

        // event-props: `event` names the event here, so only runs without an event filter.
        if !run.filters.iter().any(|(k, _)| k == "event") {
            let props: &[(&str, &str)] = if run.paged {
                &EVENT_PROPS
            } else if run.full {
                &EVENT_PROPS[..4]
            } else {
                &EVENT_PROPS[..3]
            };
            for (event, prop) in props {
                let mut groups: BTreeMap<Option<String>, (BTreeSet<usize>, u64)> = BTreeMap::new();
                for &i in &events {
                    let a = &d.acts[i];
                    if a.name.as_deref() != Some(*event) {
                        continue;
                    }
                    let g = groups.entry(a.props.get(*prop).cloned()).or_default();
                    g.0.insert(a.vis);
                    g.1 += 1;
                }
                let rows = groups
                    .into_iter()
                    .map(|(k, (vis, n))| {
                        let row = json!({"value": k, "totalEvents": n,
                                         "uniqueVisitors": vis.len(),
                                         "percentage": percent(vis.len(), uv)});
                        (k, vis.len(), row)
                    })
                    .collect();
                out.push(self.probe(
                    run,
                    "event-props",
                    &[
                        ("event", event.to_string()),
                        ("prop", prop.to_string()),
                        ("limit", "1000".into()),
                    ],
                    json!(sorted_rows(rows)),
                    &[(
                        "pagination",
                        json!({"page": 1, "limit": 1000, "hasMore": false}),
                    )],
                ));
            }
        }

        // Pages of a list: the default (10 a page), and limit=2&page=2.
        if run.paged {
            for (route, rows) in &lists {
                if !["pages", "countries", "events", "referrers"].contains(&route.as_str()) {
                    continue;
                }
                out.push(self.probe(
                    run,
                    route,
                    &[],
                    json!(rows.iter().take(10).collect::<Vec<_>>()),
                    &[(
                        "pagination",
                        json!({"page": 1, "limit": 10, "hasMore": rows.len() > 10}),
                    )],
                ));
                out.push(self.probe(
                    run,
                    route,
                    &[("limit", "2".into()), ("page", "2".into())],
                    json!(rows.iter().skip(2).take(2).collect::<Vec<_>>()),
                    &[(
                        "pagination",
                        json!({"page": 2, "limit": 2, "hasMore": rows.len() > 4}),
                    )],
                ));
            }
        }
    }

    /// `active-users` on `date`: main's uniqueVisitors over 1, 7 and 30 days ending then.
    fn active_users(
        &self,
        site: usize,
        zone_override: Option<&'static str>,
        on: Date,
        filters: &[(String, String)],
    ) -> Probe {
        let d = &self.sites[site];
        let name = zone_override.unwrap_or(d.zone);
        let zone = tz(name);
        let uv = |days: i64| {
            let r = (
                midnight(add_days(on, 1 - days), &zone),
                midnight(add_days(on, 1), &zone),
            );
            d.main(filters, r).visitors.len()
        };
        let mut params = vec![("date".to_string(), on.to_string())];
        if let Some(z) = zone_override {
            params.push(("timezone".into(), z.into()));
        }
        params.extend(filters.iter().cloned());
        Probe {
            site,
            route: "active-users".into(),
            params,
            data: json!({"date": on.to_string(), "dau": uv(1), "wau": uv(7), "mau": uv(30)}),
            meta: json!({"status": 200, "date": on.to_string(), "timezone": name,
                         "filters": filters_json(filters)}),
        }
    }
}

fn filters_json(filters: &[(String, String)]) -> Value {
    Value::Object(filters.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// The buckets of a timeseries: (date label, start, end), clipped to the range.
fn buckets(
    interval: &str,
    from: Date,
    to: Date,
    zone: &TimeZone,
    r: (i64, i64),
) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    match interval {
        "hour" => {
            let mut t = r.0;
            while t < r.1 {
                let label = Timestamp::from_millisecond(t)
                    .unwrap()
                    .to_zoned(zone.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string();
                out.push((label, t, t + HOUR));
                t += HOUR;
            }
        }
        "day" => {
            let mut d = from;
            while d <= to {
                out.push((
                    d.to_string(),
                    midnight(d, zone),
                    midnight(add_days(d, 1), zone),
                ));
                d = add_days(d, 1);
            }
        }
        "week" => {
            let mut d = add_days(from, -(from.weekday().to_monday_zero_offset() as i64));
            while d <= to {
                let next = add_days(d, 7);
                out.push((
                    d.to_string(),
                    midnight(d, zone).max(r.0),
                    midnight(next, zone).min(r.1),
                ));
                d = next;
            }
        }
        "month" => {
            let mut d = from.first_of_month();
            while d <= to {
                let next = d.checked_add(Span::new().months(1)).unwrap();
                out.push((
                    d.to_string(),
                    midnight(d, zone).max(r.0),
                    midnight(next, zone).min(r.1),
                ));
                d = next;
            }
        }
        other => panic!("interval {other}"),
    }
    out
}

/// The timeseries over `buckets`: pageviews by their time, sessions by their first pageview's.
fn timeseries(d: &Data, filters: &[(String, String)], buckets: &[(String, i64, i64)]) -> Value {
    let r = (buckets[0].1, buckets.last().unwrap().2);
    let sel = d.selected(filters);
    let mut acc = vec![Totals::default(); buckets.len()];
    let find = |t: i64| {
        let i = buckets.partition_point(|b| b.2 <= t);
        assert!(buckets[i].1 <= t && t < buckets[i].2);
        i
    };
    for i in d.counted(&sel, filters, r) {
        let b = find(d.acts[i].at);
        acc[b].pageviews += 1;
        acc[b].visitors.insert(d.acts[i].vis);
    }
    for s in d.sessions_in(&sel, r) {
        let s = &d.sess[s];
        acc[find(d.time(s))].add_session(s);
    }
    Value::Array(
        buckets
            .iter()
            .zip(&acc)
            .map(|(b, t)| t.bucket_json(&b.0))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Comparing answers

/// Every difference between `want` and `got` under `path`: integers must be integers of the
/// same value, other numbers equal as f64, objects the same keys.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Number(w), Value::Number(g)) => {
            let same = if w.is_f64() {
                w.as_f64() == g.as_f64()
            } else {
                !g.is_f64() && w.as_i64() == g.as_i64()
            };
            if !same {
                out.push(format!("{path}: expected {w}, got {g}"));
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => diff(&format!("{path}.{k}"), wv, gv, out),
                    None => out.push(format!("{path}.{k}: expected {wv}, missing")),
                }
            }
            for (k, gv) in g {
                if !w.contains_key(k) {
                    out.push(format!("{path}.{k}: not expected, got {gv}"));
                }
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                out.push(format!(
                    "{path}: expected {} items, got {}",
                    w.len(),
                    g.len()
                ));
            }
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff(&format!("{path}[{i}]"), wv, gv, out);
            }
        }
        _ => {
            if want != got {
                out.push(format!("{path}: expected {want}, got {got}"));
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 700 {
        format!("{}…", s.chars().take(700).collect::<String>())
    } else {
        s
    }
}

fn query_string(params: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Sends probes and compares the answers.
struct Checker {
    /// `http://127.0.0.1:PORT/api/v1`.
    api: String,
    http: reqwest::blocking::Client,
    key: String,
    sites: Vec<(String, &'static str)>,
}

impl Checker {
    fn get(&self, site: usize, route: &str, query: &str) -> (u16, Value) {
        let url = format!(
            "{}/websites/{}/stats/{route}?{query}",
            self.api, self.sites[site].0
        );
        let resp = self
            .http
            .get(&url)
            .header("x-api-key", &self.key)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        envelope(resp)
    }

    /// What differs between the probe's expected answer and the server's, if anything.
    fn check(&self, p: &Probe, round: &str) -> Option<String> {
        let query = query_string(&p.params);
        let (status, body) = self.get(p.site, &p.route, &query);
        let what = format!("[{round}] {} {}?{query}", self.sites[p.site].1, p.route);
        if status != 200 {
            return Some(format!("{what}: HTTP {status}: {}", short(&body["meta"])));
        }
        let mut diffs = Vec::new();
        diff("data", &p.data, &body["data"], &mut diffs);
        let mut meta = body["meta"].clone();
        if p.route == "event-props" {
            // `event` names the event to break down: echoed among the filters or not.
            if let Some(f) = meta["filters"].as_object_mut() {
                f.remove("event");
            }
        }
        diff("meta", &p.meta, &meta, &mut diffs);
        if diffs.is_empty() {
            return None;
        }
        let n = diffs.len();
        diffs.truncate(4);
        Some(format!(
            "{what}: {n} difference(s): {}\n    expected data: {}\n    actual data:   {}",
            diffs.join("; "),
            short(&p.data),
            short(&body["data"])
        ))
    }

    /// Every probe, three requests at a time; the mismatches in the probes' order.
    fn check_all(&self, probes: &[Probe], round: &str) -> Vec<String> {
        let next = AtomicUsize::new(0);
        let found = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = probes.get(i) else { break };
                        if let Some(m) = self.check(p, round) {
                            found.lock().unwrap().push((i, m));
                        }
                    }
                });
            }
        });
        let mut found = found.into_inner().unwrap();
        found.sort();
        found.into_iter().map(|(_, m)| m).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The live part through /api/collect

const LIVE_IP: &str = "8.8.8.8";

fn live_ua(i: usize) -> (String, &'static str, &'static str) {
    let v = 100 + i;
    if i.is_multiple_of(2) {
        (
            format!(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"
            ),
            "Chrome",
            "Linux",
        )
    } else {
        (
            format!(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"
            ),
            "Firefox",
            "Windows",
        )
    }
}

/// One live activity as sent, and as stored (its time filled in from the database).
struct Live {
    act: Act,
    body: Value,
    ua: String,
}

fn live_part(rng: &mut StdRng, site: &str, first_vis: usize) -> Vec<Live> {
    let mut per_visitor: Vec<Vec<Live>> = Vec::new();
    for i in 0..LIVE_VISITORS {
        let (ua, browser, os) = live_ua(i);
        let language = *LANGUAGES.choose(rng).unwrap();
        let width = *WIDTHS.choose(rng).unwrap();
        let mut kinds = Vec::new();
        if rng.random_bool(0.2) {
            kinds.push(Kind::Event);
        }
        for _ in 0..rng.random_range(1..=4) {
            kinds.push(Kind::Pageview);
            if rng.random_bool(0.5) {
                kinds.push(Kind::Heartbeat);
            }
            if rng.random_bool(0.3) {
                kinds.push(Kind::Event);
            }
        }
        // Heartbeats only between stored activities, so that the stored times bound the visit.
        while kinds.last() == Some(&Kind::Heartbeat) {
            kinds.pop();
        }
        let mut acts = Vec::new();
        for (n, kind) in kinds.into_iter().enumerate() {
            let path = *PATHS.choose(rng).unwrap();
            let host = *HOSTS.choose(rng).unwrap();
            let referrer = if n == 0 {
                rng.random_range(0..REFERRERS.len())
            } else {
                7
            };
            let mut utm = [None; 5];
            if n == 0 {
                for (k, slot) in utm.iter_mut().enumerate() {
                    if rng.random_bool(0.4) {
                        *slot = Some(*UTM_VALUES[k].choose(rng).unwrap());
                    }
                }
            }
            let query: Vec<String> = utm
                .iter()
                .zip(UTM_KEYS)
                .filter_map(|(v, k)| v.map(|v| format!("{k}={v}")))
                .collect();
            let url = format!(
                "https://{host}{DOMAIN_A}{path}{}",
                if query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", query.join("&"))
                }
            );
            let name = (kind == Kind::Event).then(|| *EVENT_NAMES.choose(rng).unwrap());
            let props = name.map(|n| props_of(rng, n)).unwrap_or_default();
            let mut body = json!({"type": kind.as_str(), "websiteId": site, "url": url,
                                  "screenWidth": width, "language": language});
            if referrer != 0 {
                body["referrer"] = json!(REFERRERS[referrer].0.replace("{D}", DOMAIN_A));
            }
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            if !props.is_empty() {
                body["props"] = Value::Object(
                    props
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.json()))
                        .collect(),
                );
            }
            acts.push(Live {
                act: Act {
                    vis: first_vis + i,
                    at: 0,
                    kind,
                    host: format!("{host}{DOMAIN_A}"),
                    path: path.into(),
                    attrs: Attrs {
                        referrer: REFERRERS[referrer].1.map(str::to_string),
                        utm: utm.map(|u| u.map(str::to_string)),
                        country: Some("US".into()),
                        browser: Some(browser.into()),
                        os: Some(os.into()),
                        device: Some("desktop".into()),
                        language: Some(language.into()),
                        screen: Some(screen_class(width).into()),
                    },
                    name: name.map(str::to_string),
                    props: props
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.text()))
                        .collect(),
                },
                body,
                ua: ua.clone(),
            });
        }
        per_visitor.push(acts);
    }
    // Interleaved at random, each visitor's own order kept.
    let mut order: Vec<usize> = per_visitor
        .iter()
        .enumerate()
        .flat_map(|(i, a)| std::iter::repeat_n(i, a.len()))
        .collect();
    order.shuffle(rng);
    let mut queues: Vec<std::collections::VecDeque<Live>> =
        per_visitor.into_iter().map(Into::into).collect();
    order
        .into_iter()
        .map(|i| queues[i].pop_front().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The test

fn import_chunked(
    server: &Server,
    key: &str,
    site: &str,
    events: &[Value],
    rng: &mut StdRng,
) -> usize {
    let http = client();
    let mut rest = events;
    let mut requests = 0;
    while !rest.is_empty() {
        let n = rng.random_range(300..=1000).min(rest.len());
        let resp = http
            .post(server.api(&format!("/websites/{site}/events")))
            .header("x-api-key", key)
            .json(&json!({"events": &rest[..n]}))
            .send()
            .expect("import");
        let (status, body) = envelope(resp);
        assert_eq!(status, 200, "import: {body}");
        assert_eq!(
            body["data"],
            json!({"accepted": n, "dropped": []}),
            "every event accepted"
        );
        rest = &rest[n..];
        requests += 1;
    }
    requests
}

/// Every probe of the runs and some `active-users` requests, from what `sites` hold.
fn probes(sites: &[Data], runs: &[Run], today: Date) -> Vec<Probe> {
    let day = |n: i64| add_days(today, n);
    let oracle = Oracle { sites };
    let mut probes = Vec::new();
    for run in runs {
        oracle.probes(run, &mut probes);
    }
    let no_filter: Vec<(String, String)> = Vec::new();
    for (site, zone) in [
        (0, None),
        (0, Some(NEW_YORK)),
        (0, Some(KOLKATA)),
        (1, None),
    ] {
        for on in [day(-40), day(-25), day(-12), day(-3), day(0)] {
            probes.push(oracle.active_users(site, zone, on, &no_filter));
        }
    }
    for (site, zone, on, filters) in [
        (0, None, day(-20), vec![("country", "DE")]),
        (0, Some(KOLKATA), day(-15), vec![("event", "Signup")]),
        (
            1,
            None,
            day(-18),
            vec![("referrer", "(none)"), ("device", "mobile")],
        ),
        (1, Some("UTC"), day(-11), vec![("path", "/docs")]),
        (0, None, day(0), vec![("browser", "Firefox")]),
        (1, None, date("2025-11-03"), vec![("event", "(none)")]),
    ] {
        let filters: Vec<(String, String)> = filters
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        probes.push(oracle.active_users(site, zone, on, &filters));
    }
    probes
}

#[test]
fn every_figure_equals_the_one_worked_out_from_the_events_sent() {
    let started = Instant::now();
    // Cookieless visitors change at the site's midnight: keep the live part off it.
    loop {
        let since_midnight = now_ms().rem_euclid(24 * HOUR);
        if since_midnight > 2 * MIN && since_midnight < 24 * HOUR - 2 * MIN {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    let today = local_date(now_ms(), &tz("UTC"));
    let window = (add_days(today, -40), add_days(today, -10));

    let sb = Sandbox::new();
    let server = Server::start(
        &sb,
        &["--api-rate-limit", "1000000", "--api-rate-burst", "1000000"],
    );
    let session = server.setup("owner@example.com");
    let key = api_key(&server, &session);
    let site_a = website(&server, &session, DOMAIN_A, ZONE_A);
    let site_b = website(&server, &session, DOMAIN_B, ZONE_B);

    // The trace, in shuffled chunks, to both websites.
    let mut rng = StdRng::seed_from_u64(0x0007_ac1e_2026);
    let gens = trace(&mut rng, window);
    let late = held_back(&gens, &mut rng);
    let part = |is_late: bool, domain: &str| -> Vec<Value> {
        gens.iter()
            .zip(&late)
            .filter(|(_, l)| **l == is_late)
            .map(|(g, _)| render(g, domain))
            .collect()
    };
    let mut requests = 0;
    for (site, domain) in [(&site_a, DOMAIN_A), (&site_b, DOMAIN_B)] {
        let mut events = part(false, domain);
        events.shuffle(&mut rng);
        requests += import_chunked(&server, &key, site, &events, &mut rng);
    }
    let imported = started.elapsed();

    // The live part: sent one by one; the server's clock gives the times, read back from the
    // database in the order sent.
    let live_vis = REGULAR_VISITORS + SERVER_VISITORS;
    let live = live_part(&mut rng, &site_a, live_vis);
    let live_start = now_ms();
    for l in &live {
        let resp = collect(&server, &l.body, LIVE_IP, &l.ua);
        assert_eq!(resp.status(), 202, "{}", l.body);
        assert_eq!(dropped(&resp), None, "{}", l.body);
    }
    let conn = db(&sb);
    let num: i64 = conn
        .query_row(
            "SELECT num FROM sites WHERE website_id = ?1",
            [&site_a],
            |r| r.get(0),
        )
        .unwrap();
    let read = |sql: &str| -> Vec<(i64, String)> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map(rusqlite::params![num, live_start - 1000], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let stored_pvs = read(
        "SELECT p.at, s.value FROM pageviews p JOIN strings s ON s.id = p.path
         WHERE p.site = ?1 AND p.at >= ?2 ORDER BY p.at, p.seq",
    );
    let stored_evs = read(
        "SELECT e.at, n.value FROM events e JOIN strings n ON n.id = e.name
         WHERE e.site = ?1 AND e.at >= ?2 ORDER BY e.at, e.seq",
    );
    drop(conn);
    let (mut pvs, mut evs) = (stored_pvs.into_iter(), stored_evs.into_iter());
    let mut last_at: HashMap<usize, i64> = HashMap::new();
    // Website A's activities beyond the trace: the live part and the realtime ones.
    let mut extra_a: Vec<Act> = Vec::new();
    for l in &live {
        let mut act = l.act.clone();
        act.at = match act.kind {
            Kind::Pageview => {
                let (at, path) = pvs.next().expect("a stored live pageview");
                assert_eq!(path, act.path, "live pageviews stored in the order sent");
                at
            }
            Kind::Event => {
                let (at, name) = evs.next().expect("a stored live event");
                assert_eq!(Some(name), act.name, "live events stored in the order sent");
                at
            }
            // Between two stored activities of its visitor: any time between them will do.
            Kind::Heartbeat => last_at[&act.vis],
        };
        last_at.insert(act.vis, act.at);
        extra_a.push(act);
    }
    assert!(
        pvs.next().is_none() && evs.next().is_none(),
        "nothing more stored"
    );

    // Realtime: a heartbeat and a pageview a little in the future count, one 45 s old does
    // not; the live visitors were all active within the last seconds.
    let now = now_ms();
    let rt = [
        (
            "rt-future-hb",
            Kind::Heartbeat,
            now + 120 * SECOND,
            "/later",
        ),
        ("rt-future-pv", Kind::Pageview, now + 60 * SECOND, "/future"),
        ("rt-past-hb", Kind::Heartbeat, now - 45 * SECOND, "/gone"),
    ];
    let rt_events: Vec<Value> = rt
        .iter()
        .map(|(who, kind, at, path)| {
            json!({"type": kind.as_str(), "url": format!("https://{DOMAIN_A}{path}"),
                   "timestamp": iso(*at), "visitorId": who})
        })
        .collect();
    import_chunked(&server, &key, &site_a, &rt_events, &mut rng);
    for (n, (_, kind, at, path)) in rt.iter().enumerate() {
        extra_a.push(Act {
            vis: live_vis + LIVE_VISITORS + n,
            at: *at,
            kind: *kind,
            host: DOMAIN_A.into(),
            path: path.to_string(),
            attrs: Attrs::default(),
            name: None,
            props: BTreeMap::new(),
        });
    }

    // What the websites hold before and after the late events.
    let build = |with_late: bool| -> [Data; 2] {
        let pick = |domain: &str| -> Vec<Act> {
            gens.iter()
                .zip(&late)
                .filter(|(_, l)| with_late || !**l)
                .map(|(g, _)| stored(g, domain))
                .collect()
        };
        let mut acts_a = pick(DOMAIN_A);
        acts_a.extend(extra_a.iter().cloned());
        [
            Data::new(site_a.clone(), DOMAIN_A, ZONE_A, acts_a),
            Data::new(site_b.clone(), DOMAIN_B, ZONE_B, pick(DOMAIN_B)),
        ]
    };
    let early = build(false);
    let sites = build(true);
    let checker = Checker {
        api: server.api(""),
        http: client(),
        key: key.clone(),
        sites: sites.iter().map(|d| (d.id.clone(), d.domain)).collect(),
    };
    let mut compared = 0;
    let mut mismatches: Vec<String> = Vec::new();

    let q0 = now_ms();
    let (status, body) = checker.get(0, "realtime", "");
    let q1 = now_ms();
    {
        let d = &early[0];
        let mut latest: BTreeMap<usize, i64> = BTreeMap::new();
        for a in &d.acts {
            let l = latest.entry(a.vis).or_insert(i64::MIN);
            *l = (*l).max(a.at);
        }
        let surely = latest
            .values()
            .all(|&t| t >= q1 - 30_000 || t < q0 - 30_000);
        if surely {
            let active: Vec<usize> = latest
                .iter()
                .filter(|(_, t)| **t >= q1 - 30_000)
                .map(|(v, _)| *v)
                .collect();
            let mut pages: BTreeMap<String, usize> = BTreeMap::new();
            for v in &active {
                // The active session is the visitor's last; its latest pageview's path.
                let s = d.sess.iter().rev().find(|s| s.vis == *v).unwrap();
                if let Some(&i) = s.pvs.last() {
                    *pages.entry(d.acts[i].path.clone()).or_default() += 1;
                }
            }
            let mut pages: Vec<(String, usize)> = pages.into_iter().collect();
            pages.sort_by(|a, b| (Reverse(a.1), &a.0).cmp(&(Reverse(b.1), &b.0)));
            pages.truncate(10);
            let want = json!({"activeVisitors": active.len(),
                              "pages": pages.iter().map(|(p, n)| json!({"value": p, "activeVisitors": n}))
                                  .collect::<Vec<_>>()});
            if active.len() < LIVE_VISITORS + 2 {
                eprintln!(
                    "realtime: only {} of the live visitors were still active",
                    active.len() - 2
                );
            }
            compared += 1;
            let mut diffs = Vec::new();
            if status != 200 {
                diffs.push(format!("HTTP {status}"));
            } else {
                diff("data", &want, &body["data"], &mut diffs);
                diff("meta", &json!({"status": 200}), &body["meta"], &mut diffs);
            }
            if !diffs.is_empty() {
                mismatches.push(format!(
                    "[first] {DOMAIN_A} realtime: {}\n    expected: {want}\n    actual: {}",
                    diffs.join("; "),
                    short(&body)
                ));
            }
        } else {
            eprintln!(
                "realtime not compared: the live part took too long ({} ms)",
                q0 - live_start
            );
        }
    }

    // What the trace holds, so that a change of it that loses a case shows.
    {
        let d = &sites[0];
        let gaps: Vec<i64> = d
            .sess
            .iter()
            .zip(d.sess.iter().skip(1))
            .filter(|(a, b)| a.vis == b.vis)
            .map(|(a, b)| b.first_at - a.last_at)
            .collect();
        assert!(gaps.contains(&(30 * MIN)), "a gap of exactly 30:00 splits");
        let inner_max = d
            .sess
            .iter()
            .flat_map(|s| {
                let mut times: Vec<i64> = d
                    .acts
                    .iter()
                    .filter(|a| a.vis == s.vis && a.at >= s.first_at && a.at <= s.last_at)
                    .map(|a| a.at)
                    .collect();
                times.sort_unstable();
                times.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
            })
            .max()
            .unwrap();
        assert_eq!(
            inner_max,
            30 * MIN - 1,
            "gaps of 29:59.999 continue a session"
        );
        let with_pv = d.sess.iter().filter(|s| !s.pvs.is_empty()).count();
        let without_pv = d.sess.len() - with_pv;
        let events_before_pv = d
            .sess
            .iter()
            .filter(|s| !s.pvs.is_empty() && d.acts[s.pvs[0]].at > s.first_at)
            .count();
        eprintln!(
            "trace: {} activities ({} pageviews, {} events) per website, {} sessions with a \
             pageview, {without_pv} without, {events_before_pv} starting before their first \
             pageview; live: {} collect requests",
            gens.len(),
            gens.iter().filter(|g| g.kind == Kind::Pageview).count(),
            gens.iter().filter(|g| g.kind == Kind::Event).count(),
            with_pv,
            live.len()
        );
        assert!(gens.len() > 3000 && without_pv > 20 && events_before_pv > 10);
    }

    // The runs.
    let day = |n: i64| add_days(today, n);
    let ranges = [
        (day(-45), day(-5)),
        (day(-30), day(-20)),
        (day(-25), day(-25)),
        (day(-33), day(-32)),
        (day(-14), day(-8)),
        (day(-6), day(0)),
        (day(0), day(0)),
    ];
    let mut runs: Vec<Run> = Vec::new();
    let unfiltered = |site, zone, range: (Date, Date)| Run {
        site,
        zone,
        from: range.0,
        to: range.1,
        filters: Vec::new(),
        full: true,
        paged: false,
    };
    for (site, zone, which) in [
        (0, None, &[0, 1, 2, 3, 4, 5, 6][..]),
        (0, Some("UTC"), &[2][..]),
        (0, Some(NEW_YORK), &[0, 3, 5][..]),
        (0, Some(KOLKATA), &[2, 4][..]),
        (1, None, &[0, 1, 2, 3][..]),
        (1, Some(KOLKATA), &[3][..]),
        (1, Some(NEW_YORK), &[2][..]),
    ] {
        for &i in which {
            runs.push(unfiltered(site, zone, ranges[i]));
        }
    }
    for (site, zone, from, to) in [
        (0, Some(NEW_YORK), "2025-03-09", "2025-03-09"),
        (0, Some(NEW_YORK), "2025-11-02", "2025-11-02"),
        (0, Some(NEW_YORK), "2025-10-27", "2025-11-09"),
        (1, None, "2025-03-30", "2025-03-30"),
        (1, None, "2025-10-26", "2025-10-26"),
        (1, None, "2025-03-24", "2025-04-06"),
        (1, Some(KOLKATA), "2025-10-25", "2025-10-26"),
        (0, None, "2025-02-20", "2025-11-20"),
    ] {
        runs.push(unfiltered(site, zone, (date(from), date(to))));
    }
    let filter_sets: Vec<Vec<(&str, &str)>> = vec![
        vec![("path", "/pricing")],
        vec![("path", "/blog/a"), ("country", "US")],
        vec![("hostname", "blog.{D}")],
        vec![("hostname", "m.{D}"), ("referrer", "(none)")],
        vec![("entryPage", "/")],
        vec![("exitPage", "/docs")],
        vec![("referrer", "google.com")],
        vec![("referrer", "(none)")],
        vec![("utmSource", "newsletter")],
        vec![("utmMedium", "(none)")],
        vec![("utmCampaign", "fall")],
        vec![("utmTerm", "shoes")],
        vec![("utmContent", "b")],
        vec![("country", "DE")],
        vec![("country", "(none)")],
        vec![("browser", "Firefox")],
        vec![("browser", "(none)")],
        vec![("os", "iOS")],
        vec![("device", "mobile")],
        vec![("device", "(none)")],
        vec![("language", "de-DE")],
        vec![("language", "(none)")],
        vec![("screen", "xl")],
        vec![("screen", "(none)")],
        vec![("event", "Signup")],
        vec![("event", "(none)")],
        vec![("event", "Purchase"), ("device", "desktop")],
        vec![("path", "(none)")],
        vec![("hostname", "{D}")],
        vec![("entryPage", "/pricing"), ("exitPage", "/signup")],
        vec![
            ("utmSource", "(none)"),
            ("browser", "Chrome"),
            ("os", "Windows"),
        ],
        vec![("utmContent", "(none)"), ("path", "/docs")],
        vec![("country", "US"), ("event", "(none)")],
        vec![("browser", "Chrome")],
    ];
    let contexts = [
        (0, None, ranges[1]),
        (0, Some(NEW_YORK), ranges[0]),
        (1, None, ranges[1]),
        (0, Some(KOLKATA), ranges[2]),
        (1, Some(KOLKATA), ranges[3]),
        (0, Some("UTC"), ranges[5]),
        (1, None, ranges[0]),
        (0, Some(NEW_YORK), (date("2025-11-01"), date("2025-11-02"))),
    ];
    for (n, set) in filter_sets.iter().enumerate() {
        let (site, zone, range) = contexts[n % contexts.len()];
        let domain = sites[site].domain;
        runs.push(Run {
            site,
            zone,
            from: range.0,
            to: range.1,
            filters: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.replace("{D}", domain)))
                .collect(),
            full: false,
            paged: false,
        });
    }
    // Pages of lists on website A in its own zone (11 days and 1 day) and on website B.
    for (site, range) in [(0, ranges[1]), (0, ranges[2]), (1, ranges[1])] {
        let run = runs
            .iter_mut()
            .find(|r| r.site == site && r.zone.is_none() && (r.from, r.to) == range)
            .unwrap();
        run.paged = true;
    }

    let early_probes = probes(&early, &runs, today);
    let probes = probes(&sites, &runs, today);
    let worked_out = started.elapsed();

    mismatches.extend(checker.check_all(&early_probes, "first"));
    compared += early_probes.len();
    let first_round = started.elapsed();

    // The late events, among them activities that join two sessions into one.
    let merged = early[0].sess.len() - sites[0].sess.len();
    for (site, domain) in [(&site_a, DOMAIN_A), (&site_b, DOMAIN_B)] {
        let mut events = part(true, domain);
        events.shuffle(&mut rng);
        requests += import_chunked(&server, &key, site, &events, &mut rng);
    }
    // Every second probe here (for the time the test takes), all of them again below.
    let half: Vec<Probe> = probes.iter().step_by(2).cloned().collect();
    mismatches.extend(checker.check_all(&half, "after the late events"));
    compared += half.len();
    let late_round = started.elapsed();
    assert!(merged >= 10, "the late events merge sessions: {merged}");

    // rebuild-aggregates beside the running server changes no figure.
    for args in [
        &["rebuild-aggregates", "--website", site_b.as_str()][..],
        &["rebuild-aggregates"][..],
    ] {
        let out = common::cli::run(&sb, args);
        assert_eq!(out.code, 0, "{args:?}: {out:#?}");
    }
    mismatches.extend(checker.check_all(&probes, "after rebuild-aggregates"));
    compared += probes.len();

    eprintln!(
        "{} runs, {compared} comparisons: {} before the {} late events (which merge {merged} \
         sessions), {} after them, {} after rebuild-aggregates, realtime once; {requests} \
         import requests. Imported by {imported:?}, worked out by {worked_out:?}, first round \
         by {first_round:?}, second by {late_round:?}, all by {:?}",
        runs.len(),
        early_probes.len(),
        late.iter().filter(|l| **l).count(),
        half.len(),
        probes.len(),
        started.elapsed()
    );
    let n = mismatches.len();
    for m in mismatches.iter().take(30) {
        eprintln!("MISMATCH {m}");
    }
    assert_eq!(n, 0, "{n} of {compared} comparisons differ");
    assert!(server.stop().success());
}
