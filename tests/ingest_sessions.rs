//! Sessions formed by ingestion (SPEC 4) and the import endpoint
//! `POST /api/v1/websites/{id}/events` (SPEC 3.5), black-box against the real server: a
//! hand-worked fixture of timed events (also across a restart), a shuffled multi-day trace,
//! `Idempotency-Key`, who may import, per-event validation, visitors from ip + User-Agent, and
//! `X-Forwarded-For` from a peer outside `--trusted-proxy` (SPEC 3.3).

mod common;

use std::collections::HashMap;

use common::ingest::{
    CHROME, StoredEvent, StoredPageview, StoredVisit, collect, collector, count, db, events,
    pageview, pageviews, visits, website,
};
use common::{PASSWORD, Sandbox, Server, Session, api_key, client, create_api_key, envelope};
use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIN: i64 = 60_000;
const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";

// ---------------------------------------------------------------------------------------------
// Helpers

/// A server with its first account, a full API key and one website.
fn started(sb: &Sandbox, args: &[&str], domain: &str) -> (Server, Session, String, String) {
    let server = Server::start(sb, args);
    let session = server.setup("owner@example.com");
    let key = api_key(&server, &session);
    let site = website(&server, &session, domain, "UTC");
    (server, session, key, site)
}

fn events_url(server: &Server, site: &str) -> String {
    server.api(&format!("/websites/{site}/events"))
}

/// `POST /websites/{site}/events` with `X-API-Key`.
fn import(server: &Server, key: &str, site: &str, body: &Value) -> (u16, Value) {
    import_raw(server, key, site, body.to_string(), None)
}

/// The same with a body that need not be JSON and an optional `Idempotency-Key`.
fn import_raw(
    server: &Server,
    key: &str,
    site: &str,
    body: impl Into<reqwest::blocking::Body>,
    idempotency_key: Option<&str>,
) -> (u16, Value) {
    let mut req = client()
        .post(events_url(server, site))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body);
    if let Some(k) = idempotency_key {
        req = req.header("idempotency-key", k);
    }
    envelope(req.send().expect("import"))
}

/// Imports `events` and checks that all of them were accepted.
fn import_all(server: &Server, key: &str, site: &str, events: &[Value]) {
    let (status, body) = import(server, key, site, &json!({ "events": events }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"accepted": events.len(), "dropped": []}),
        "every event accepted"
    );
}

/// UTC milliseconds of an ISO-8601 timestamp.
fn ms(iso: &str) -> i64 {
    iso.parse::<Timestamp>()
        .unwrap_or_else(|e| panic!("{iso}: {e}"))
        .as_millisecond()
}

/// ISO-8601 with milliseconds and `Z`, as the API writes times.
fn iso(ms: i64) -> String {
    let t = Timestamp::from_millisecond(ms).expect("a time in range");
    format!("{t:.3}")
}

/// The visitor id SPEC 3.5 gives an imported `visitorId`: the first 8 bytes of
/// SHA-256(website id ‖ visitorId), read big-endian.
fn import_visitor(site: &str, visitor_id: &str) -> i64 {
    let digest = Sha256::digest(format!("{site}{visitor_id}").as_bytes());
    i64::from_be_bytes(digest[..8].try_into().unwrap())
}

/// The website's number in the tracked-activity tables.
fn site_num(sb: &Sandbox, site: &str) -> i64 {
    db(sb)
        .query_row("SELECT num FROM sites WHERE website_id = ?1", [site], |r| {
            r.get(0)
        })
        .expect("the site's number")
}

/// Every stored row that is there to be compared before and after a request.
fn snapshot(sb: &Sandbox) -> (Vec<StoredPageview>, Vec<StoredEvent>, Vec<StoredVisit>) {
    (pageviews(sb), events(sb), visits(sb))
}

/// Each visit's pageview and event counters agree with the rows that point at it, and every
/// row points at a stored visit.
fn assert_rows_match_visits(sb: &Sandbox) {
    let stored = visits(sb);
    let by_id: HashMap<i64, &StoredVisit> = stored.iter().map(|v| (v.id, v)).collect();
    let mut pv: HashMap<i64, i64> = HashMap::new();
    for p in pageviews(sb) {
        assert!(
            by_id.contains_key(&p.visit),
            "pageview of a missing visit: {p:?}"
        );
        *pv.entry(p.visit).or_default() += 1;
    }
    let mut ev: HashMap<i64, i64> = HashMap::new();
    for e in events(sb) {
        assert!(
            by_id.contains_key(&e.visit),
            "event of a missing visit: {e:?}"
        );
        *ev.entry(e.visit).or_default() += 1;
    }
    for v in &stored {
        assert_eq!(pv.get(&v.id).copied().unwrap_or(0), v.pageviews, "{v:?}");
        assert_eq!(ev.get(&v.id).copied().unwrap_or(0), v.events, "{v:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 1. A hand-worked fixture, also across a restart

/// All fixture times are on 2025-01-15 (UTC).
fn t(time: &str) -> String {
    format!("2025-01-15T{time}Z")
}

fn fx(kind: &str, who: &str, time: &str, path: &str) -> Value {
    json!({"type": kind, "url": format!("https://shop.example{path}"), "timestamp": t(time),
           "visitorId": who})
}

fn fx_pv(who: &str, time: &str, path: &str) -> Value {
    fx("pageview", who, time, path)
}

fn fx_hb(who: &str, time: &str, path: &str) -> Value {
    fx("heartbeat", who, time, path)
}

fn fx_ev(who: &str, time: &str, path: &str, name: &str) -> Value {
    let mut e = fx("event", who, time, path);
    e["name"] = json!(name);
    e
}

/// A visit as the fixture states it: who, first activity, last activity, first pageview,
/// pageviews, events, entry page, exit page (times of 2025-01-15, `HH:MM:SS.mmm`).
type Want<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    i64,
    i64,
    Option<&'a str>,
    Option<&'a str>,
);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Visit {
    first_at: String,
    who: String,
    last_at: String,
    pv_first_at: Option<String>,
    pageviews: i64,
    events: i64,
    entry: Option<String>,
    exit: Option<String>,
}

fn wanted(rows: &[Want<'_>]) -> Vec<Visit> {
    let mut v: Vec<Visit> = rows
        .iter()
        .map(
            |&(who, first, last, pv_first, pageviews, events, entry, exit)| Visit {
                first_at: t(first),
                who: who.to_string(),
                last_at: t(last),
                pv_first_at: pv_first.map(t),
                pageviews,
                events,
                entry: entry.map(str::to_string),
                exit: exit.map(str::to_string),
            },
        )
        .collect();
    v.sort();
    v
}

/// The stored visits, each visitor id named by the `visitorId` it was made from.
fn stored_visits(sb: &Sandbox, site: &str, names: &[&str]) -> Vec<Visit> {
    let names: HashMap<i64, &str> = names
        .iter()
        .map(|n| (import_visitor(site, n), *n))
        .collect();
    let mut v: Vec<Visit> = visits(sb)
        .into_iter()
        .map(|v| Visit {
            first_at: iso(v.first_at),
            who: names.get(&v.visitor).map_or_else(
                || format!("unknown visitor {}", v.visitor),
                |n| n.to_string(),
            ),
            last_at: iso(v.last_at),
            pv_first_at: v.pv_first_at.map(iso),
            pageviews: v.pageviews,
            events: v.events,
            entry: v.entry,
            exit: v.exit,
        })
        .collect();
    v.sort();
    v
}

const FIXTURE_VISITORS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

#[test]
fn a_hand_worked_fixture_gives_its_sessions_also_across_a_restart() {
    let sb = Sandbox::new();
    let (server, _session, key, site) = started(&sb, &[], "shop.example");

    let first_half = vec![
        // alice: heartbeats extend, a gap of 29:59 continues, one of 30:00 starts anew.
        fx_pv("alice", "10:00:00.000", "/home"),
        fx_hb("alice", "10:00:15.000", "/home"),
        fx_hb("alice", "10:00:30.000", "/home"),
        fx_pv("alice", "10:05:00.000", "/pricing"),
        fx_ev("alice", "10:06:00.000", "/pricing", "Signup"),
        fx_hb("alice", "10:35:59.000", "/pricing"), // 29:59 after the event
        fx_pv("alice", "10:40:00.000", "/docs"),
        fx_hb("alice", "10:40:45.000", "/docs"),
        fx_pv("alice", "11:10:45.000", "/blog"), // 30:00 after the heartbeat
        fx_hb("alice", "11:11:15.000", "/blog"),
        // dave: the same millisecond as alice, another visitor; 29:59 then 30:00 between pages.
        fx_pv("dave", "10:00:00.000", "/home"),
        fx_pv("dave", "10:29:59.000", "/about"),
        fx_pv("dave", "10:59:59.000", "/contact"),
        // bob: server-side events only, no pageview.
        fx_ev("bob", "10:20:00.000", "/api/ping", "Server Ping"),
        fx_ev("bob", "10:25:00.000", "/api/ping", "Server Ping"),
        // carol: gaps of 29:59.999 continue, 30:00.000 does not.
        fx_pv("carol", "12:00:00.000", "/a"),
        fx_pv("carol", "12:29:59.999", "/b"),
        fx_hb("carol", "12:59:59.998", "/b"),
        fx_pv("carol", "13:29:59.998", "/c"),
        // erin: an event before the first pageview; the entry page is the pageview's.
        fx_ev("erin", "14:00:00.000", "/x", "Newsletter"),
        fx_pv("erin", "14:01:00.000", "/landing"),
        fx_pv("erin", "14:02:00.000", "/checkout"),
        fx_hb("erin", "14:03:00.000", "/checkout"),
    ];
    import_all(&server, &key, &site, &first_half);

    #[rustfmt::skip]
    let expected = wanted(&[
        ("alice", "10:00:00.000", "10:40:45.000", Some("10:00:00.000"), 3, 1, Some("/home"), Some("/docs")),
        ("alice", "11:10:45.000", "11:11:15.000", Some("11:10:45.000"), 1, 0, Some("/blog"), Some("/blog")),
        ("dave", "10:00:00.000", "10:29:59.000", Some("10:00:00.000"), 2, 0, Some("/home"), Some("/about")),
        ("dave", "10:59:59.000", "10:59:59.000", Some("10:59:59.000"), 1, 0, Some("/contact"), Some("/contact")),
        ("bob", "10:20:00.000", "10:25:00.000", None, 0, 2, None, None),
        ("carol", "12:00:00.000", "12:59:59.998", Some("12:00:00.000"), 2, 0, Some("/a"), Some("/b")),
        ("carol", "13:29:59.998", "13:29:59.998", Some("13:29:59.998"), 1, 0, Some("/c"), Some("/c")),
        ("erin", "14:00:00.000", "14:03:00.000", Some("14:01:00.000"), 2, 1, Some("/landing"), Some("/checkout")),
    ]);
    assert_eq!(stored_visits(&sb, &site, &FIXTURE_VISITORS), expected);
    // Heartbeats are activity only: no row of their own.
    assert_eq!(count(&sb, "pageviews"), 12);
    assert_eq!(count(&sb, "events"), 4);
    assert_rows_match_visits(&sb);

    // SIGTERM, then the same data directory again.
    assert!(server.stop().success());
    let server = Server::start(&sb, &[]);

    let second_half = vec![
        // Continues alice's 11:10:45 visit (9:30 after its last heartbeat).
        fx_ev("alice", "11:20:00.000", "/blog", "Purchase"),
        // 15:00.002 after carol's first visit and 14:59.998 before her second: merges them.
        fx_pv("carol", "13:15:00.000", "/bridge"),
        // A heartbeat 15:00 after dave's first visit and 15:00 before his second merges them.
        fx_hb("dave", "10:44:59.000", "/about"),
        // An earlier pageview gives bob's event-only visit its time and entry page.
        fx_pv("bob", "10:15:00.000", "/landing"),
        // 29:59.999 after erin's last heartbeat: her visit goes on, with a new exit page.
        fx_pv("erin", "14:32:59.999", "/thanks"),
    ];
    // Not in time order.
    let mut shuffled = second_half.clone();
    shuffled.reverse();
    import_all(&server, &key, &site, &shuffled);

    #[rustfmt::skip]
    let expected = wanted(&[
        ("alice", "10:00:00.000", "10:40:45.000", Some("10:00:00.000"), 3, 1, Some("/home"), Some("/docs")),
        ("alice", "11:10:45.000", "11:20:00.000", Some("11:10:45.000"), 1, 1, Some("/blog"), Some("/blog")),
        ("dave", "10:00:00.000", "10:59:59.000", Some("10:00:00.000"), 3, 0, Some("/home"), Some("/contact")),
        ("bob", "10:15:00.000", "10:25:00.000", Some("10:15:00.000"), 1, 2, Some("/landing"), Some("/landing")),
        ("carol", "12:00:00.000", "13:29:59.998", Some("12:00:00.000"), 4, 0, Some("/a"), Some("/c")),
        ("erin", "14:00:00.000", "14:32:59.999", Some("14:01:00.000"), 3, 1, Some("/landing"), Some("/thanks")),
    ]);
    assert_eq!(stored_visits(&sb, &site, &FIXTURE_VISITORS), expected);
    assert_eq!(count(&sb, "pageviews"), 15);
    assert_eq!(count(&sb, "events"), 5);
    assert_rows_match_visits(&sb);
    assert!(server.stop().success());
}

// ---------------------------------------------------------------------------------------------
// 2. A shuffled trace over several days gives the same sessions as the trace in time order

#[derive(Clone, Debug)]
struct Act {
    who: usize,
    at: i64,
    kind: &'static str,
    path: String,
    /// Tells the pages' referrer and UTM source apart, so that a visit described by the wrong
    /// page shows.
    src: usize,
    language: &'static str,
    width: i64,
    name: Option<String>,
}

const LANGUAGES: [&str; 4] = ["en-US", "de-DE", "fr-FR", "ja-JP"];
const WIDTHS: [(i64, &str); 5] = [
    (375, "xs"),
    (700, "sm"),
    (800, "md"),
    (1200, "lg"),
    (1920, "xl"),
];
const TRACE_VISITORS: usize = 40;

fn label(who: usize) -> String {
    format!("visitor-{who}")
}

/// Visitors active over four days, with gaps of exactly 30:00.000 and 29:59.999, gaps
/// anywhere between 29 and 31 minutes, hours and days; no visitor has two activities in the
/// same millisecond (which would leave entry and exit pages to chance).
fn trace(rng: &mut StdRng) -> Vec<Act> {
    let start = ms("2025-03-01T00:00:00.000Z");
    let mut acts = Vec::new();
    for who in 0..TRACE_VISITORS {
        let mut at = start + rng.random_range(0..4 * 24 * 60) * MIN + rng.random_range(0..MIN);
        for _ in 0..rng.random_range(20..120) {
            let kind = match rng.random_range(0..10) {
                0..=5 => "pageview",
                6..=7 => "heartbeat",
                _ => "event",
            };
            let (width, _) = WIDTHS[rng.random_range(0..WIDTHS.len())];
            acts.push(Act {
                who,
                at,
                kind,
                path: format!("/p{}", rng.random_range(0..8)),
                src: rng.random_range(0..1000),
                language: LANGUAGES[rng.random_range(0..LANGUAGES.len())],
                width,
                name: (kind == "event").then(|| format!("E{}", rng.random_range(0..3))),
            });
            at += match rng.random_range(0..20) {
                0..=1 => 30 * MIN,
                2..=3 => 30 * MIN - 1,
                4..=6 => 29 * MIN + rng.random_range(0..2 * MIN),
                7..=8 => rng.random_range(1..40) * 60 * MIN,
                _ => rng.random_range(1_000..5 * MIN),
            };
        }
    }
    acts
}

fn trace_event(a: &Act, domain: &str) -> Value {
    json!({"type": a.kind, "url": format!("https://{domain}{}?utm_source=s{}", a.path, a.src),
           "timestamp": iso(a.at), "visitorId": label(a.who),
           "referrer": format!("https://r{}.referrers.test/", a.src),
           "language": a.language, "screenWidth": a.width, "name": a.name})
}

fn screen_class(width: i64) -> &'static str {
    WIDTHS
        .iter()
        .find(|(w, _)| *w == width)
        .expect("a fixture width")
        .1
}

/// The sessions of SPEC 4 worked out from the trace itself, as [`normalised`] visits, and
/// each pageview's and event's (time, visitor, its session's first activity).
fn oracle(trace: &[Act]) -> (Vec<StoredVisit>, Vec<(i64, i64, i64)>) {
    let mut by_visitor: HashMap<usize, Vec<&Act>> = HashMap::new();
    for a in trace {
        by_visitor.entry(a.who).or_default().push(a);
    }
    let mut sessions = Vec::new();
    let mut grouping = Vec::new();
    for (who, mut acts) in by_visitor {
        acts.sort_by_key(|a| a.at);
        let mut groups: Vec<Vec<&Act>> = Vec::new();
        for a in acts {
            match groups.last_mut() {
                Some(g) if a.at - g.last().unwrap().at < 30 * MIN => g.push(a),
                _ => groups.push(vec![a]),
            }
        }
        for g in groups {
            let pvs: Vec<&&Act> = g.iter().filter(|a| a.kind == "pageview").collect();
            let describes = pvs.first().copied().unwrap_or(&g[0]);
            sessions.push(StoredVisit {
                visitor: who as i64,
                first_at: g[0].at,
                last_at: g.last().unwrap().at,
                pv_first_at: pvs.first().map(|a| a.at),
                pv_last_at: pvs.last().map(|a| a.at),
                pageviews: pvs.len() as i64,
                events: g.iter().filter(|a| a.kind == "event").count() as i64,
                entry: pvs.first().map(|a| a.path.clone()),
                exit: pvs.last().map(|a| a.path.clone()),
                hostname: Some("SITE".into()),
                referrer: Some(format!("r{}.referrers.test", describes.src)),
                utm_source: Some(format!("s{}", describes.src)),
                language: Some(describes.language.to_string()),
                screen: Some(screen_class(describes.width).to_string()),
                ..StoredVisit::default()
            });
            for a in g.iter().filter(|a| a.kind != "heartbeat") {
                grouping.push((a.at, who as i64, g[0].at));
            }
        }
    }
    sessions.sort_by_key(|v| (v.first_at, v.visitor));
    grouping.sort_unstable();
    (sessions, grouping)
}

/// The visits of one website without ids: the visitor as the trace's number, the website's
/// domain as `SITE`; ordered by first activity and visitor.
fn normalised(sb: &Sandbox, site: &str, domain: &str) -> Vec<StoredVisit> {
    let who: HashMap<i64, i64> = (0..TRACE_VISITORS)
        .map(|w| (import_visitor(site, &label(w)), w as i64))
        .collect();
    let mut v: Vec<StoredVisit> = visits(sb)
        .into_iter()
        .filter_map(|v| {
            let visitor = *who.get(&v.visitor)?;
            assert_eq!(v.hostname.as_deref(), Some(domain), "{v:?}");
            Some(StoredVisit {
                id: 0,
                visitor,
                hostname: Some("SITE".into()),
                ..v
            })
        })
        .collect();
    v.sort_by_key(|v| (v.first_at, v.visitor));
    v
}

/// Each stored pageview's and event's (time, visitor number, its visit's first activity).
fn grouping(sb: &Sandbox, site: &str) -> Vec<(i64, i64, i64)> {
    let who: HashMap<i64, i64> = (0..TRACE_VISITORS)
        .map(|w| (import_visitor(site, &label(w)), w as i64))
        .collect();
    let conn = db(sb);
    let mut stmt = conn
        .prepare(
            "SELECT a.at, v.visitor, v.first_at
             FROM (SELECT site, at, visit FROM pageviews UNION ALL
                   SELECT site, at, visit FROM events) a
             JOIN visits v ON v.id = a.visit WHERE a.site = ?1",
        )
        .unwrap();
    let mut rows: Vec<(i64, i64, i64)> = stmt
        .query_map([site_num(sb, site)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap()
        .map(|r| {
            let (at, visitor, first_at): (i64, i64, i64) = r.unwrap();
            (at, who[&visitor], first_at)
        })
        .collect();
    rows.sort_unstable();
    rows
}

#[test]
fn a_shuffled_trace_over_several_days_gives_the_same_sessions_as_in_time_order() {
    let sb = Sandbox::new();
    let (server, session, key, in_order) = started(&sb, &[], "alpha.example");
    let shuffled_site = website(&server, &session, "beta.example", "UTC");

    let mut rng = StdRng::seed_from_u64(0x5e55_1025);
    let mut acts = trace(&mut rng);
    acts.sort_by_key(|a| (a.at, a.who));
    let non_heartbeats = acts.iter().filter(|a| a.kind != "heartbeat").count();

    let ordered: Vec<Value> = acts
        .iter()
        .map(|a| trace_event(a, "alpha.example"))
        .collect();
    for chunk in ordered.chunks(1000) {
        import_all(&server, &key, &in_order, chunk);
    }

    let mut shuffled: Vec<Value> = acts
        .iter()
        .map(|a| trace_event(a, "beta.example"))
        .collect();
    shuffled.shuffle(&mut rng);
    let mut rest = &shuffled[..];
    let mut requests = 0;
    while !rest.is_empty() {
        let n = rng.random_range(150..=1000).min(rest.len());
        import_all(&server, &key, &shuffled_site, &rest[..n]);
        rest = &rest[n..];
        requests += 1;
    }
    assert!(requests >= 3, "the shuffled trace went in several requests");

    let (want_visits, want_grouping) = oracle(&acts);
    assert!(
        want_visits.len() > 3 * TRACE_VISITORS,
        "the trace has several sessions per visitor: {}",
        want_visits.len()
    );
    assert_eq!(want_grouping.len(), non_heartbeats);

    let got_in_order = normalised(&sb, &in_order, "alpha.example");
    let got_shuffled = normalised(&sb, &shuffled_site, "beta.example");
    assert_eq!(got_in_order.len() + got_shuffled.len(), visits(&sb).len());
    assert_eq!(got_in_order, want_visits, "in time order");
    assert_eq!(got_shuffled, want_visits, "shuffled");
    assert_eq!(grouping(&sb, &in_order), want_grouping, "in time order");
    assert_eq!(grouping(&sb, &shuffled_site), want_grouping, "shuffled");
    assert_rows_match_visits(&sb);
}

// ---------------------------------------------------------------------------------------------
// 3. Idempotency-Key

fn three_events(domain: &str) -> String {
    json!({"events": [
        {"type": "pageview", "url": format!("https://{domain}/a"), "timestamp": "2025-01-15T10:00:00.000Z", "visitorId": "v1"},
        {"type": "pageview", "url": format!("https://{domain}/b"), "timestamp": "2025-01-15T10:01:00.000Z", "visitorId": "v1"},
        {"type": "event", "url": format!("https://{domain}/b"), "timestamp": "2025-01-15T10:02:00.000Z", "visitorId": "v1", "name": "Signup"},
        {"type": "pageview", "url": "https://elsewhere.example/", "timestamp": "2025-01-15T10:03:00.000Z", "visitorId": "v1"},
    ]})
    .to_string()
}

#[test]
fn a_repeated_idempotency_key_returns_the_first_answer_and_stores_nothing_more() {
    let sb = Sandbox::new();
    let (server, session, key, site) = started(&sb, &[], "one.example");
    let other_site = website(&server, &session, "two.example", "UTC");
    let first_answer = json!({"accepted": 3, "dropped": [{"index": 3, "reason": "hostname"}]});

    let (status, first) = import_raw(
        &server,
        &key,
        &site,
        three_events("one.example"),
        Some("order-42"),
    );
    assert_eq!((status, &first["data"]), (200, &first_answer), "{first}");
    let before = snapshot(&sb);
    assert_eq!((before.0.len(), before.1.len(), before.2.len()), (2, 1, 1));

    let (status, again) = import_raw(
        &server,
        &key,
        &site,
        three_events("one.example"),
        Some("order-42"),
    );
    assert_eq!(status, 200);
    assert_eq!(again["data"], first["data"], "the first answer again");
    assert_eq!(snapshot(&sb), before, "nothing more stored");

    // Another key is another request: stored again (the same visit, twice the rows).
    let (status, other_key) = import_raw(
        &server,
        &key,
        &site,
        three_events("one.example"),
        Some("order-43"),
    );
    assert_eq!((status, &other_key["data"]), (200, &first_answer));
    let after = snapshot(&sb);
    assert_eq!((after.0.len(), after.1.len(), after.2.len()), (4, 2, 1));
    assert_eq!((after.2[0].pageviews, after.2[0].events), (4, 2));

    // Keys are per website: the same key on another website of the account is a new request.
    let (status, elsewhere) = import_raw(
        &server,
        &key,
        &other_site,
        three_events("two.example"),
        Some("order-42"),
    );
    assert_eq!(
        (status, &elsewhere["data"]),
        (200, &first_answer),
        "{elsewhere}"
    );
    let hosts: Vec<String> = pageviews(&sb).into_iter().map(|p| p.hostname).collect();
    assert_eq!(
        hosts.iter().filter(|h| *h == "two.example").count(),
        2,
        "{hosts:?}"
    );
    assert_eq!(count(&sb, "visits"), 2);
    // …and its answer was remembered under that website: a replay there stores nothing more.
    let before = snapshot(&sb);
    let (status, replay) = import_raw(
        &server,
        &key,
        &other_site,
        three_events("two.example"),
        Some("order-42"),
    );
    assert_eq!((status, &replay["data"]), (200, &first_answer));
    assert_eq!(snapshot(&sb), before);

    // The key with another body: 409, and nothing stored (a reused key must not silently
    // swallow other events).
    let before = snapshot(&sb);
    let (status, conflict) = import_raw(
        &server,
        &key,
        &site,
        three_events("one.example").replace("/a\"", "/other\""),
        Some("order-42"),
    );
    assert_eq!(status, 409, "{conflict}");
    assert!(
        conflict["meta"]["message"]
            .as_str()
            .unwrap()
            .contains("different body"),
        "{conflict}"
    );
    assert_eq!(snapshot(&sb), before);

    // A wholly malformed request is not remembered: the key still works for a good body.
    let (status, bad) = import_raw(&server, &key, &site, "{\"events\": []}", Some("order-44"));
    assert_eq!(status, 400, "{bad}");
    let (status, good) = import_raw(
        &server,
        &key,
        &site,
        three_events("one.example"),
        Some("order-44"),
    );
    assert_eq!((status, &good["data"]), (200, &first_answer));
    assert_eq!(count(&sb, "pageviews"), 8);

    // Twins sent at once: one of them stores, all get its answer.
    let before = count(&sb, "pageviews");
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let twins: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    import_raw(
                        &server,
                        &key,
                        &site,
                        three_events("one.example"),
                        Some("order-45"),
                    )
                })
            })
            .collect();
        twins.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (status, body) in &answers {
        assert_eq!((*status, &body["data"]), (200, &first_answer), "{body}");
    }
    assert_eq!(count(&sb, "pageviews"), before + 2, "stored once");

    // A key that cannot be one.
    let long = "k".repeat(201);
    let before = snapshot(&sb);
    for bad_key in ["", "  ", long.as_str()] {
        let (status, body) = import_raw(
            &server,
            &key,
            &site,
            three_events("one.example"),
            Some(bad_key),
        );
        assert_eq!(status, 400, "{bad_key:?}: {body}");
        assert_eq!(
            body["meta"]["errors"],
            json!(["Idempotency-Key: must be 1 to 200 visible ASCII characters"])
        );
    }
    let (status, _) = import_raw(
        &server,
        &key,
        &site,
        three_events("one.example"),
        Some("k".repeat(200).as_str()),
    );
    assert_eq!(status, 200, "200 characters are a key");
    assert_eq!(count(&sb, "pageviews"), before.0.len() as i64 + 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Who may import

fn one_pageview(domain: &str) -> Value {
    json!({"events": [{"type": "pageview", "url": format!("https://{domain}/"),
                        "timestamp": "2025-01-15T10:00:00.000Z", "visitorId": "v"}]})
}

#[test]
fn importing_needs_a_full_key_or_a_session_with_csrf_on_an_own_website() {
    let sb = Sandbox::new();
    let (server, session, key, site) = started(&sb, &[], "shop.example");
    let body = one_pageview("shop.example");
    let nothing_stored = |sb: &Sandbox| {
        assert_eq!(
            (count(sb, "pageviews"), count(sb, "visits")),
            (0, 0),
            "nothing stored"
        );
    };

    // A read key: 403.
    let read_key = create_api_key(&server, &session, json!({"scope": "read"}))["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, resp) = import(&server, &read_key, &site, &body);
    assert_eq!(status, 403, "{resp}");
    assert_eq!(resp["meta"]["message"], "This API key is read-only");
    nothing_stored(&sb);

    // No credential: 401 with the challenge.
    let resp = client()
        .post(events_url(&server, &site))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"jetrack\""
    );
    let (status, _) = envelope(resp);
    assert_eq!(status, 401);
    nothing_stored(&sb);

    // Another account's website: 403, as for every website endpoint; an unknown one: 404.
    let out = common::cli::run_stdin(
        &sb,
        &[
            "users",
            "add",
            "--email",
            "other@example.com",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    common::cli::assert_success(&out);
    let other = server.login("other@example.com", PASSWORD);
    let theirs = website(&server, &other, "theirs.example", "UTC");
    let (status, resp) = import(&server, &key, &theirs, &one_pageview("theirs.example"));
    assert_eq!(status, 403, "{resp}");
    assert_eq!(
        resp["meta"]["message"],
        "You do not have access to this website"
    );
    let (status, resp) = import(&server, &key, &uuid::Uuid::new_v4().to_string(), &body);
    assert_eq!(status, 404, "{resp}");
    nothing_stored(&sb);

    // A session without its CSRF token: 403.
    let resp = session
        .client
        .post(events_url(&server, &site))
        .json(&body)
        .send()
        .unwrap();
    let (status, resp) = envelope(resp);
    assert_eq!(status, 403, "{resp}");
    assert_eq!(
        resp["meta"]["message"],
        "Missing or invalid CSRF token (send the X-CSRF-Token header)"
    );
    nothing_stored(&sb);

    // A session with it: stored.
    let resp = session
        .client
        .post(events_url(&server, &site))
        .header("x-csrf-token", &session.csrf)
        .json(&body)
        .send()
        .unwrap();
    let (status, resp) = envelope(resp);
    assert_eq!(
        (status, &resp["data"]),
        (200, &json!({"accepted": 1, "dropped": []}))
    );
    assert_eq!(count(&sb, "pageviews"), 1);

    // A full key as a bearer token: stored.
    let resp = client()
        .post(events_url(&server, &site))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .unwrap();
    let (status, resp) = envelope(resp);
    assert_eq!(
        (status, &resp["data"]),
        (200, &json!({"accepted": 1, "dropped": []}))
    );
    assert_eq!(count(&sb, "pageviews"), 2);
}

// ---------------------------------------------------------------------------------------------
// 5. Validation per event and of the whole body

/// Nothing a web analytics tool could have seen is older than 2000: earlier timestamps (a
/// year 0000 is a typo) are dropped with the reason, the rest of the request stored.
#[test]
fn timestamps_before_2000_are_dropped_with_a_reason() {
    let sb = Sandbox::new();
    let (server, _session, key, site) = started(&sb, &[], "shop.example");
    let at = |t: &str| {
        json!({"type": "pageview", "url": "https://shop.example/", "timestamp": t,
               "visitorId": "v"})
    };
    let events = [
        at("0000-01-01T00:00:00.000Z"),
        at("1999-12-31T23:59:59.999Z"),
        at("2000-01-01T00:00:00.000Z"),
    ];
    let (status, body) = import(&server, &key, &site, &json!({ "events": events }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"accepted": 1, "dropped": [
            {"index": 0, "reason": "events[0].timestamp: must not be before 2000-01-01"},
            {"index": 1, "reason": "events[1].timestamp: must not be before 2000-01-01"},
        ]})
    );
    let stored: Vec<i64> = pageviews(&sb).into_iter().map(|p| p.at).collect();
    assert_eq!(stored, [ms("2000-01-01T00:00:00.000Z")]);
}

/// A hostname an importer sets must be a host name: a path, a space or a query in it is
/// refused for that event, not stored.
#[test]
fn an_imported_hostname_must_be_a_host_name() {
    let sb = Sandbox::new();
    let (server, _session, key, site) = started(&sb, &[], "shop.example");
    let with_host = |h: &str| {
        json!({"type": "pageview", "url": "https://shop.example/", "visitorId": "v",
               "timestamp": "2025-01-15T10:00:00.000Z", "hostname": h})
    };
    let events = [
        with_host("A B/\u{1}?x.shop.example"),
        with_host("blog.shop.example/path"),
        with_host("Blog.Shop.Example"),
    ];
    let (status, body) = import(&server, &key, &site, &json!({ "events": events }));
    assert_eq!(status, 200, "{body}");
    let reason =
        |i: usize| format!("events[{i}].hostname: must be a host name such as blog.example.com");
    assert_eq!(
        body["data"],
        json!({"accepted": 1, "dropped": [
            {"index": 0, "reason": reason(0)},
            {"index": 1, "reason": reason(1)},
        ]})
    );
    let hosts: Vec<String> = pageviews(&sb).into_iter().map(|p| p.hostname).collect();
    assert_eq!(hosts, ["blog.shop.example"]);
}

#[test]
fn each_invalid_event_is_reported_with_its_index_and_the_valid_ones_are_stored() {
    let sb = Sandbox::new();
    let (server, _session, key, site) = started(&sb, &[], "shop.example");
    let now = Timestamp::now().as_millisecond();
    let ok = |path: &str, at: &str| {
        json!({"type": "pageview", "url": format!("https://shop.example{path}"),
               "timestamp": at, "visitorId": "v"})
    };
    let with = |mut e: Value, field: &str, value: Value| {
        e[field] = value;
        e
    };
    let without = |mut e: Value, field: &str| {
        e.as_object_mut().unwrap().remove(field);
        e
    };
    let at = "2025-01-15T10:00:00.000Z";
    let events = vec![
        /* 0 */ ok("/valid", at),
        /* 1 */ without(ok("/x", at), "timestamp"),
        /* 2 */ ok("/x", &iso(now + 10 * MIN)),
        /* 3 */ with(ok("/x", at), "url", json!("not a url")),
        /* 4 */ with(ok("/x", at), "type", json!("event")),
        /* 5 */
        with(
            with(
                ok("/signup", "2025-01-15T10:01:00.000Z"),
                "type",
                json!("event"),
            ),
            "name",
            json!("Signup"),
        ),
        /* 6 */ with(without(ok("/x", at), "visitorId"), "ip", json!("8.8.8.8")),
        /* 7 */
        with(
            with(without(ok("/x", at), "visitorId"), "ip", json!("8.8.8.8")),
            "userAgent",
            json!("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
        ),
        /* 8 */ with(ok("/x", at), "url", json!("https://elsewhere.example/x")),
        /* 9 */ with(ok("/x", at), "country", json!("ZZZ")),
        /* 10 */ with(ok("/x", at), "device", json!("phone")),
        /* 11 */ with(ok("/x", at), "screen", json!("huge")),
        /* 12 */
        with(
            ok("/valid", "2025-01-15T10:02:00.000Z"),
            "type",
            json!("heartbeat"),
        ),
        /* 13: within the 5 minutes a clock may be ahead */
        ok("/soon", &iso(now + 4 * MIN)),
        /* 14: a typo is reported, not ignored */
        with(ok("/x", at), "tyep", json!("pageview")),
        /* 15: a given hostname must be the site's too */
        with(ok("/x", at), "hostname", json!("evil.other")),
    ];
    let (status, body) = import(&server, &key, &site, &json!({ "events": events }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"accepted": 4, "dropped": [
            {"index": 1, "reason": "events[1].timestamp: is required"},
            {"index": 2, "reason": "events[2].timestamp: must not be more than 5 minutes in the future"},
            {"index": 3, "reason": "events[3].url: must be an absolute http(s) URL"},
            {"index": 4, "reason": "events[4].name: is required for an event"},
            {"index": 6, "reason": "events[6].visitorId: is required unless both ip and userAgent are given"},
            {"index": 7, "reason": "bot"},
            {"index": 8, "reason": "hostname"},
            {"index": 9, "reason": "events[9].country: must be an ISO 3166-1 alpha-2 code"},
            {"index": 10, "reason": "events[10].device: must be desktop, mobile or tablet"},
            {"index": 11, "reason": "events[11].screen: must be xs, sm, md, lg or xl"},
            {"index": 14, "reason": "events[14].tyep: unknown field"},
            {"index": 15, "reason": "hostname"},
        ]})
    );
    let paths: Vec<(i64, String)> = pageviews(&sb).into_iter().map(|p| (p.at, p.path)).collect();
    let soon = ms(events[13]["timestamp"].as_str().unwrap());
    assert_eq!(
        paths,
        [(ms(at), "/valid".to_string()), (soon, "/soon".to_string())]
    );
    let names: Vec<(i64, String)> = common::ingest::events(&sb)
        .into_iter()
        .map(|e| (e.at, e.name))
        .collect();
    assert_eq!(
        names,
        [(ms("2025-01-15T10:01:00.000Z"), "Signup".to_string())]
    );
    // The heartbeat is stored as activity: the first visit lasts until it.
    let v = visits(&sb);
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(
        (v[0].first_at, v[0].last_at),
        (ms(at), ms("2025-01-15T10:02:00.000Z"))
    );
}

#[test]
fn a_wholly_malformed_body_is_400_and_an_oversized_one_413() {
    let sb = Sandbox::new();
    let (server, _session, key, site) = started(&sb, &[], "shop.example");
    let event = json!({"type": "pageview", "url": "https://shop.example/", "visitorId": "v",
                       "timestamp": "2025-01-15T10:00:00.000Z"});
    let too_many = json!({"events": vec![event.clone(); 1001]});
    let cases: Vec<(String, &str)> = vec![
        (
            "{\"events\": [".into(),
            "body: malformed JSON at line 1 column 12",
        ),
        ("not json".into(), "body: malformed JSON at line 1 column 2"),
        ("[]".into(), "body: must be a JSON object"),
        ("{}".into(), "events: is required"),
        (
            json!({"events": "x"}).to_string(),
            "events: must be an array",
        ),
        (
            json!({"events": []}).to_string(),
            "events: must not be empty",
        ),
        (too_many.to_string(), "events: at most 1000 per request"),
        (
            json!({"events": [event.clone()], "source": "plausible"}).to_string(),
            "source: unknown field",
        ),
    ];
    for (body, error) in cases {
        let shown: String = body.chars().take(40).collect();
        let (status, resp) = import_raw(&server, &key, &site, body, None);
        assert_eq!(status, 400, "{shown}: {resp}");
        assert_eq!(
            resp["meta"]["message"], "The request has an invalid value",
            "{shown}"
        );
        assert_eq!(resp["meta"]["errors"], json!([error]), "{shown}");
    }
    assert_eq!(count(&sb, "pageviews"), 0);

    // 1 MiB exactly, with 1,000 events, is taken; one byte more is 413.
    const MIB: usize = 1024 * 1024;
    let padded = json!({"type": "pageview", "url": "https://shop.example/", "visitorId": "v",
                        "timestamp": "2025-01-15T10:00:00.000Z", "props": {"pad": "x".repeat(900)}});
    let mut body = json!({"events": vec![padded; 1000]}).to_string();
    assert!(
        body.len() <= MIB && body.len() > 64 * 1024,
        "{}",
        body.len()
    );
    body.push_str(&" ".repeat(MIB - body.len()));
    let (status, resp) = import_raw(&server, &key, &site, body.clone(), None);
    assert_eq!(
        (status, &resp["data"]["accepted"]),
        (200, &json!(1000)),
        "{}",
        resp["meta"]
    );
    assert_eq!(count(&sb, "pageviews"), 1000);
    body.push(' ');
    let (status, resp) = import_raw(&server, &key, &site, body.clone(), None);
    assert_eq!(status, 413, "{resp}");
    assert_eq!(
        resp["meta"]["message"],
        "Request body too large (limit 1048576 bytes)"
    );
    assert_eq!(count(&sb, "pageviews"), 1000, "nothing more stored");

    // The same limit for a body without Content-Length (chunked).
    let chunked = |body: String| reqwest::blocking::Body::new(std::io::Cursor::new(body));
    let (status, resp) = import_raw(&server, &key, &site, chunked(body.clone()), None);
    assert_eq!(status, 413, "chunked: {resp}");
    body.pop();
    let (status, resp) = import_raw(&server, &key, &site, chunked(body), None);
    assert_eq!(
        (status, &resp["data"]["accepted"]),
        (200, &json!(1000)),
        "chunked: {}",
        resp["meta"]
    );
    assert_eq!(count(&sb, "pageviews"), 2000);
}

// ---------------------------------------------------------------------------------------------
// 6. Visitors from ip + User-Agent, and attributes worked out or given

#[test]
fn ip_and_user_agent_events_get_visitors_and_attributes_given_ones_are_kept() {
    let sb = Sandbox::new();
    let (server, _session, key, site) = started(&sb, &[], "shop.example");
    let by_ip = |path: &str, at: &str, ip: &str, ua: &str| {
        json!({"type": "pageview", "url": format!("https://shop.example{path}"), "timestamp": at,
               "ip": ip, "userAgent": ua, "screenWidth": 1440})
    };
    import_all(
        &server,
        &key,
        &site,
        &[
            by_ip("/a", "2025-01-15T10:00:00.000Z", "8.8.8.8", CHROME),
            by_ip("/b", "2025-01-15T10:10:00.000Z", "8.8.8.8", CHROME),
            by_ip("/c", "2025-01-15T10:05:00.000Z", "8.8.8.8", FIREFOX),
            // The next day: another visitor (SPEC 3.4: the id changes at local midnight).
            by_ip("/d", "2025-01-16T10:00:00.000Z", "8.8.8.8", CHROME),
            // Given attributes win over what ip and User-Agent say.
            json!({"type": "pageview", "url": "https://shop.example/e",
                   "timestamp": "2025-01-15T11:00:00.000Z", "ip": "80.156.0.1", "userAgent": CHROME,
                   "country": "jp", "browser": "Firefox", "os": "iOS", "device": "mobile",
                   "screen": "sm", "hostname": "m.shop.example"}),
            // And with a visitorId: no ip, no User-Agent, only what is given.
            json!({"type": "pageview", "url": "https://shop.example/f",
                   "timestamp": "2025-01-15T12:00:00.000Z", "visitorId": "crm-17",
                   "country": "JP", "browser": "Firefox", "device": "tablet", "screen": "xs"}),
        ],
    );
    // The same ip and User-Agent in a later request, for an old date whose salt is gone: a
    // salt made for that request, so another visitor (SPEC 3.5).
    import_all(
        &server,
        &key,
        &site,
        &[by_ip("/g", "2025-01-15T10:20:00.000Z", "8.8.8.8", CHROME)],
    );

    let v = visits(&sb);
    let by_entry: HashMap<&str, &StoredVisit> =
        v.iter().map(|v| (v.entry.as_deref().unwrap(), v)).collect();
    let mut entries: Vec<&str> = by_entry.keys().copied().collect();
    entries.sort_unstable();
    assert_eq!(entries, ["/a", "/c", "/d", "/e", "/f", "/g"], "{v:#?}");
    let a = by_entry["/a"];
    assert_eq!(
        (a.pageviews, a.exit.as_deref()),
        (2, Some("/b")),
        "same ip and User-Agent on one day: one visit"
    );
    let mut visitors: Vec<i64> = v.iter().map(|v| v.visitor).collect();
    visitors.sort_unstable();
    visitors.dedup();
    assert_eq!(
        visitors.len(),
        6,
        "every other visit is another visitor: {v:#?}"
    );

    let described = |v: &StoredVisit| {
        (
            v.country.clone(),
            v.browser.clone(),
            v.os.clone(),
            v.device.clone(),
            v.screen.clone(),
            v.hostname.clone(),
        )
    };
    let s = |x: &str| Some(x.to_string());
    let chrome_us = (
        s("US"),
        s("Chrome"),
        s("Linux"),
        s("desktop"),
        s("xl"),
        s("shop.example"),
    );
    assert_eq!(described(a), chrome_us);
    assert_eq!(described(by_entry["/d"]), chrome_us);
    assert_eq!(described(by_entry["/g"]), chrome_us);
    assert_eq!(
        described(by_entry["/c"]),
        (
            s("US"),
            s("Firefox"),
            s("Windows"),
            s("desktop"),
            s("xl"),
            s("shop.example")
        )
    );
    assert_eq!(
        described(by_entry["/e"]),
        (
            s("JP"),
            s("Firefox"),
            s("iOS"),
            s("mobile"),
            s("sm"),
            s("m.shop.example")
        )
    );
    assert_eq!(
        described(by_entry["/f"]),
        (
            s("JP"),
            s("Firefox"),
            None,
            s("tablet"),
            s("xs"),
            s("shop.example")
        )
    );
    assert_eq!(by_entry["/f"].visitor, import_visitor(&site, "crm-17"));
    let hosts: HashMap<String, String> = pageviews(&sb)
        .into_iter()
        .map(|p| (p.path, p.hostname))
        .collect();
    assert_eq!(
        hosts["/e"], "m.shop.example",
        "the given hostname on the pageview too"
    );
}

#[test]
fn recent_ip_and_user_agent_events_join_live_traffic_across_requests() {
    // While the salt of the event's date is kept, an imported ip + User-Agent is the visitor
    // the tracker sees (SPEC 3.5 → 3.4), whichever request it comes in.
    let sb = Sandbox::new();
    let (server, _session, key, site) = started(&sb, &[], "shop.example");
    let now = Timestamp::now().as_millisecond();
    for (path, ago) in [("/r1", 2 * MIN), ("/r2", MIN)] {
        import_all(
            &server,
            &key,
            &site,
            &[
                json!({"type": "pageview", "url": format!("https://shop.example{path}"),
                     "timestamp": iso(now - ago), "ip": "8.8.8.8", "userAgent": CHROME}),
            ],
        );
    }
    let resp = collect(
        &server,
        &pageview(&site, "https://shop.example/r3"),
        "8.8.8.8",
        CHROME,
    );
    assert_eq!(
        (resp.status().as_u16(), common::ingest::dropped(&resp)),
        (202u16, None)
    );
    let v = visits(&sb);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(
        (v[0].pageviews, v[0].entry.as_deref(), v[0].exit.as_deref()),
        (3, Some("/r1"), Some("/r3"))
    );
    assert_eq!(v[0].country.as_deref(), Some("US"));
}

// ---------------------------------------------------------------------------------------------
// 7. X-Forwarded-For only from a trusted proxy (SPEC 3.3)

#[test]
fn forwarded_addresses_from_a_peer_outside_trusted_proxy_are_ignored() {
    // Loopback is not a trusted proxy here: the client is 127.0.0.1 whatever it claims.
    let sb = Sandbox::new();
    let (server, _session, _key, site) =
        started(&sb, &["--trusted-proxy", "10.0.0.0/8"], "shop.example");
    for (ip, path) in [("8.8.8.8", "/a"), ("9.9.9.9", "/b")] {
        let resp = collect(
            &server,
            &pageview(&site, &format!("https://shop.example{path}")),
            ip,
            CHROME,
        );
        assert_eq!(resp.status(), 202);
        assert_eq!(common::ingest::dropped(&resp), None);
    }
    let resp = collector()
        .post(server.url("/api/collect"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("x-real-ip", "80.156.0.1")
        .header("user-agent", CHROME)
        .body(pageview(&site, "https://shop.example/c").to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);
    let v = visits(&sb);
    assert_eq!(v.len(), 1, "one visitor, one visit: {v:#?}");
    assert_eq!(
        (v[0].pageviews, v[0].entry.as_deref(), v[0].exit.as_deref()),
        (3, Some("/a"), Some("/c"))
    );
    assert_eq!(v[0].country, None, "no country from the claimed addresses");
    assert!(server.stop().success());

    // With the default (loopback trusted) the same two requests are two visitors.
    let sb = Sandbox::new();
    let (server, _session, _key, site) = started(&sb, &[], "shop.example");
    for (ip, path) in [("8.8.8.8", "/a"), ("9.9.9.9", "/b")] {
        let resp = collect(
            &server,
            &pageview(&site, &format!("https://shop.example{path}")),
            ip,
            CHROME,
        );
        assert_eq!(resp.status(), 202);
    }
    let v = visits(&sb);
    assert_eq!(v.len(), 2, "{v:#?}");
    assert_ne!(v[0].visitor, v[1].visitor);
    assert_eq!(v[0].country.as_deref(), Some("US"));
    assert!(server.stop().success());
}
