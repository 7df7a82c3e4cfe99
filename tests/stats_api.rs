//! The statistics API (SPEC 2.3, 2.6, 4), black-box against the real server: local days and
//! hours across the 2025 daylight-saving changes of America/New_York and in Asia/Kolkata
//! (+05:30), the `timezone=` override, week and month buckets, `from`/`to` boundaries to the
//! millisecond, validation that names every bad parameter and changes nothing, `realtime`'s
//! 30-second window, who may read statistics, breakdown pagination and `meta`, and the
//! definitions in the OpenAPI document.
//!
//! All tests that run at the same time share one server (each with its own websites); the
//! last one to finish stops it.

mod common;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use common::ingest::website;
use common::{PASSWORD, Sandbox, Server, Session, api_key, client, create_api_key, envelope};
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The shared server

struct Env {
    // Dropped before the sandbox that holds its data directory.
    server: Server,
    session: Session,
    /// A full API key of the account.
    key: String,
    http: reqwest::blocking::Client,
    _sb: Sandbox,
}

static SHARED: Mutex<Weak<Env>> = Mutex::new(Weak::new());

/// The server of the tests running now, started by the first of them.
fn env() -> Arc<Env> {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(env) = shared.upgrade() {
        return env;
    }
    let sb = Sandbox::new();
    // Many requests per test: the per-key rate limit must not get in the way.
    let server = Server::start(
        &sb,
        &["--api-rate-limit", "1000000", "--api-rate-burst", "1000000"],
    );
    let session = server.setup("owner@example.com");
    let key = api_key(&server, &session);
    let env = Arc::new(Env {
        server,
        session,
        key,
        http: client(),
        _sb: sb,
    });
    *shared = Arc::downgrade(&env);
    env
}

impl Env {
    /// A new website of the account in `timezone`; returns its id.
    fn site(&self, domain: &str, timezone: &str) -> String {
        website(&self.server, &self.session, domain, timezone)
    }

    /// `GET /websites/{site}/stats/{route}?{query}` with the full key.
    fn stats(&self, site: &str, route: &str, query: &str) -> (u16, Value) {
        self.stats_as(Some(&self.key), site, route, query)
    }

    fn stats_as(&self, key: Option<&str>, site: &str, route: &str, query: &str) -> (u16, Value) {
        let mut url = self.server.api(&format!("/websites/{site}/stats/{route}"));
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        let mut req = self.http.get(&url);
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        envelope(req.send().unwrap_or_else(|e| panic!("GET {url}: {e}")))
    }

    /// The same, which must answer 200; returns the whole body.
    #[track_caller]
    fn ok(&self, site: &str, route: &str, query: &str) -> Value {
        let (status, body) = self.stats(site, route, query);
        assert_eq!(status, 200, "{route}?{query}: {body}");
        body
    }

    /// Imports `events` through `POST /websites/{site}/events`; every one must be accepted.
    #[track_caller]
    fn import(&self, site: &str, events: &[Value]) {
        for chunk in events.chunks(1000) {
            let resp = self
                .http
                .post(self.server.api(&format!("/websites/{site}/events")))
                .header("x-api-key", &self.key)
                .json(&json!({ "events": chunk }))
                .send()
                .expect("import");
            let (status, body) = envelope(resp);
            assert_eq!(status, 200, "import: {body}");
            assert_eq!(
                body["data"],
                json!({"accepted": chunk.len(), "dropped": []}),
                "every event accepted"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// An imported activity of `visitor` on `https://{domain}{path}` at `timestamp` (ISO, `Z`).
fn activity(kind: &str, domain: &str, path: &str, timestamp: &str, visitor: &str) -> Value {
    json!({"type": kind, "url": format!("https://{domain}{path}"), "timestamp": timestamp,
           "visitorId": visitor})
}

fn pageview(domain: &str, path: &str, timestamp: &str, visitor: &str) -> Value {
    activity("pageview", domain, path, timestamp, visitor)
}

/// One pageview per instant, each of its own visitor (so each is one bounced session).
fn lone_pageviews(domain: &str, instants: &[&str]) -> Vec<Value> {
    instants
        .iter()
        .enumerate()
        .map(|(i, at)| pageview(domain, "/", at, &format!("lone-{i}-{at}")))
        .collect()
}

/// Checks a hand-worked UTC instant against its local time in `zone` (jiff's tz database,
/// so a slip in the test data shows here and not as a server bug).
#[track_caller]
fn assert_local(utc: &str, zone: &str, local: &str) {
    let t: Timestamp = utc.parse().unwrap_or_else(|e| panic!("{utc}: {e}"));
    let z = t.to_zoned(jiff::tz::TimeZone::get(zone).unwrap());
    assert_eq!(
        z.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        local,
        "{utc} in {zone}"
    );
}

/// ISO-8601 with milliseconds and `Z`.
fn iso(ms: i64) -> String {
    format!("{:.3}", Timestamp::from_millisecond(ms).unwrap())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A JSON number as f64 (so that 100 and 100.0 compare equal).
#[track_caller]
fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

/// The `(date, totalPageviews)` of every bucket of a time series answer.
fn buckets(body: &Value) -> Vec<(String, u64)> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("data is an array: {body}"))
        .iter()
        .map(|b| {
            (
                b["date"].as_str().expect("date").to_string(),
                b["totalPageviews"].as_u64().expect("totalPageviews"),
            )
        })
        .collect()
}

/// Every bucket of a series made by [`lone_pageviews`]: as many visitors and sessions as
/// pageviews, each session bounced and of duration 0.
#[track_caller]
fn assert_lone_figures(body: &Value) {
    for b in body["data"].as_array().unwrap() {
        let n = b["totalPageviews"].as_u64().unwrap();
        assert_eq!(b["uniqueVisitors"], n, "{b}");
        assert_eq!(b["totalSessions"], n, "{b}");
        assert_eq!(
            num(&b["bounceRate"]),
            if n > 0 { 100.0 } else { 0.0 },
            "{b}"
        );
        assert_eq!(num(&b["avgSessionDuration"]), 0.0, "{b}");
    }
}

/// `(date, count)` pairs from the dates and the counts at some indexes (0 elsewhere).
fn expected(dates: &[String], counts: &[(usize, u64)]) -> Vec<(String, u64)> {
    dates
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let n = counts.iter().find(|(j, _)| *j == i).map_or(0, |(_, n)| *n);
            (d.clone(), n)
        })
        .collect()
}

#[track_caller]
fn total_pageviews(env: &Env, site: &str, query: &str) -> u64 {
    let body = env.ok(site, "main", query);
    body["data"]["totalPageviews"]
        .as_u64()
        .unwrap_or_else(|| panic!("totalPageviews: {body}"))
}

/// A 400 answer whose `meta.errors` has exactly one entry per name in `names`, in any order,
/// each starting with `NAME:`.
#[track_caller]
fn assert_bad(env: &Env, site: &str, route: &str, query: &str, names: &[&str]) -> Vec<String> {
    let (status, body) = env.stats(site, route, query);
    assert_eq!(status, 400, "{route}?{query}: {body}");
    let errors: Vec<String> = body["meta"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().expect("an error is a string").to_string())
        .collect();
    for name in names {
        let prefix = format!("{name}:");
        assert!(
            errors.iter().any(|e| e.starts_with(&prefix)),
            "{route}?{query}: no entry starting with {prefix:?} in {errors:?}"
        );
    }
    assert_eq!(
        errors.len(),
        names.len(),
        "{route}?{query}: one entry per bad parameter {names:?}: {errors:?}"
    );
    errors
}

// ---------------------------------------------------------------------------------------------
// 1. America/New_York across the daylight-saving changes of 2025

/// The pageviews of the New York trace (UTC instants worked out by hand; EST = UTC−5 until
/// 2025-03-09 02:00 local, EDT = UTC−4 until 2025-11-02 02:00 local, EST again after).
const NY_TRACE: [&str; 14] = [
    // 0: 2025-03-08 23:59:59.999 EST (the day before the 23-hour day)
    "2025-03-09T04:59:59.999Z",
    // 1: 2025-03-09 00:00:00.000 EST, hour bucket 0 ("00:00-05:00")
    "2025-03-09T05:00:00.000Z",
    // 2: 2025-03-09 01:59:59.999 EST, hour bucket 1 ("01:00-05:00"), the last before the jump
    "2025-03-09T06:59:59.999Z",
    // 3: 2025-03-09 03:00:00.000 EDT (02:00 EST became 03:00 EDT), hour bucket 2
    "2025-03-09T07:00:00.000Z",
    // 4: 2025-03-09 23:59:59.999 EDT, hour bucket 22 ("23:00-04:00")
    "2025-03-10T03:59:59.999Z",
    // 5: 2025-03-10 00:00:00.000 EDT
    "2025-03-10T04:00:00.000Z",
    // 6: 2025-11-01 23:59:59.999 EDT (the day before the 25-hour day)
    "2025-11-02T03:59:59.999Z",
    // 7: 2025-11-02 00:00:00.000 EDT, hour bucket 0 ("00:00-04:00")
    "2025-11-02T04:00:00.000Z",
    // 8: 2025-11-02 01:30 EDT, hour bucket 1 ("01:00-04:00", the first 01:00)
    "2025-11-02T05:30:00.000Z",
    // 9, 10: 2025-11-02 01:30 EST, hour bucket 2 ("01:00-05:00", the repeated hour)
    "2025-11-02T06:30:00.000Z",
    "2025-11-02T06:45:00.000Z",
    // 11: 2025-11-02 02:00:00.000 EST, hour bucket 3 ("02:00-05:00")
    "2025-11-02T07:00:00.000Z",
    // 12: 2025-11-02 23:59:59.999 EST, hour bucket 24 ("23:00-05:00")
    "2025-11-03T04:59:59.999Z",
    // 13: 2025-11-03 00:00:00.000 EST
    "2025-11-03T05:00:00.000Z",
];

/// [`NY_TRACE`] in local time, as the comments say.
const NY_LOCAL: [&str; 14] = [
    "2025-03-08T23:59:59.999-05:00",
    "2025-03-09T00:00:00.000-05:00",
    "2025-03-09T01:59:59.999-05:00",
    "2025-03-09T03:00:00.000-04:00",
    "2025-03-09T23:59:59.999-04:00",
    "2025-03-10T00:00:00.000-04:00",
    "2025-11-01T23:59:59.999-04:00",
    "2025-11-02T00:00:00.000-04:00",
    "2025-11-02T01:30:00.000-04:00",
    "2025-11-02T01:30:00.000-05:00",
    "2025-11-02T01:45:00.000-05:00",
    "2025-11-02T02:00:00.000-05:00",
    "2025-11-02T23:59:59.999-05:00",
    "2025-11-03T00:00:00.000-05:00",
];

/// The 23 hour labels of 2025-03-09 in New York: 00 and 01 at −05:00, then 03..23 at −04:00.
fn spring_hours() -> Vec<String> {
    let mut v = vec![
        "2025-03-09T00:00:00-05:00".to_string(),
        "2025-03-09T01:00:00-05:00".to_string(),
    ];
    v.extend((3..24).map(|h| format!("2025-03-09T{h:02}:00:00-04:00")));
    v
}

/// The 25 hour labels of 2025-11-02 in New York: 00 and 01 at −04:00, 01 again and 02..23 at
/// −05:00.
fn autumn_hours() -> Vec<String> {
    let mut v = vec![
        "2025-11-02T00:00:00-04:00".to_string(),
        "2025-11-02T01:00:00-04:00".to_string(),
    ];
    v.extend((1..24).map(|h| format!("2025-11-02T{h:02}:00:00-05:00")));
    v
}

/// The queries whose answers the `timezone=` override must reproduce.
const NY_QUERIES: [(&str, &str); 7] = [
    ("timeseries", "from=2025-03-08&to=2025-03-10&interval=day"),
    ("timeseries", "from=2025-11-01&to=2025-11-03&interval=day"),
    ("timeseries", "from=2025-03-09&to=2025-03-09&interval=hour"),
    ("timeseries", "from=2025-11-02&to=2025-11-02&interval=hour"),
    ("timeseries", "from=2025-03-09&to=2025-03-09"),
    ("main", "from=2025-03-09&to=2025-03-09"),
    ("main", "from=2025-03-09&to=2025-11-02"),
];

#[test]
fn new_york_days_and_hours_follow_local_midnight_across_daylight_saving() {
    for (utc, local) in NY_TRACE.iter().zip(NY_LOCAL) {
        assert_local(utc, "America/New_York", local);
    }
    let env = env();
    let ny = env.site("ny.example", "America/New_York");
    env.import(&ny, &lone_pageviews("ny.example", &NY_TRACE));

    // Days follow local midnight: 03-09 holds #1–#4 (#0 and #5 are on the days around it).
    let body = env.ok(
        &ny,
        "timeseries",
        "from=2025-03-08&to=2025-03-10&interval=day",
    );
    assert_eq!(body["meta"]["interval"], "day", "{body}");
    assert_eq!(
        buckets(&body),
        [
            ("2025-03-08".to_string(), 1),
            ("2025-03-09".to_string(), 4),
            ("2025-03-10".to_string(), 1)
        ]
    );
    assert_lone_figures(&body);
    let body = env.ok(
        &ny,
        "timeseries",
        "from=2025-11-01&to=2025-11-03&interval=day",
    );
    assert_eq!(
        buckets(&body),
        [
            ("2025-11-01".to_string(), 1),
            ("2025-11-02".to_string(), 6),
            ("2025-11-03".to_string(), 1)
        ]
    );
    assert_lone_figures(&body);

    // The 23-hour day: 02:00 local does not exist.
    let body = env.ok(
        &ny,
        "timeseries",
        "from=2025-03-09&to=2025-03-09&interval=hour",
    );
    assert_eq!(body["meta"]["interval"], "hour", "{body}");
    let got = buckets(&body);
    assert_eq!(got.len(), 23, "{got:?}");
    assert_eq!(
        got,
        expected(&spring_hours(), &[(0, 1), (1, 1), (2, 1), (22, 1)])
    );
    assert_lone_figures(&body);
    // One day → hours by default.
    let default = env.ok(&ny, "timeseries", "from=2025-03-09&to=2025-03-09");
    assert_eq!(default["meta"]["interval"], "hour", "{default}");
    assert_eq!(default["data"], body["data"]);

    // The 25-hour day: 01:00 twice, first at −04:00 then at −05:00.
    let body = env.ok(
        &ny,
        "timeseries",
        "from=2025-11-02&to=2025-11-02&interval=hour",
    );
    let got = buckets(&body);
    assert_eq!(got.len(), 25, "{got:?}");
    assert_eq!(
        got,
        expected(&autumn_hours(), &[(0, 1), (1, 1), (2, 2), (3, 1), (24, 1)])
    );
    assert_lone_figures(&body);

    // from/to boundaries to the millisecond: 00:00:00.000 of `from` and 23:59:59.999 of `to`
    // count, 23:59:59.999 of the day before and 00:00:00.000 of the day after do not.
    assert_eq!(
        total_pageviews(&env, &ny, "from=2025-03-09&to=2025-03-09"),
        4
    );
    assert_eq!(
        total_pageviews(&env, &ny, "from=2025-11-02&to=2025-11-02"),
        6
    );
    assert_eq!(
        total_pageviews(&env, &ny, "from=2025-03-09&to=2025-11-02"),
        12
    );
    assert_eq!(
        total_pageviews(&env, &ny, "from=2025-03-10&to=2025-11-01"),
        2
    );
    assert_eq!(
        total_pageviews(&env, &ny, "from=2025-03-08&to=2025-11-03"),
        14
    );

    // A UTC site with the same pageviews: its own days differ (03-09 holds #0–#3, 03-10 holds
    // #4 and #5), and with `timezone=America/New_York` it answers exactly as the New York site.
    let utc = env.site("utc-ny.example", "UTC");
    env.import(&utc, &lone_pageviews("utc-ny.example", &NY_TRACE));
    let body = env.ok(
        &utc,
        "timeseries",
        "from=2025-03-08&to=2025-03-10&interval=day",
    );
    assert_eq!(body["meta"]["timezone"], "UTC", "{body}");
    assert_eq!(
        buckets(&body),
        [
            ("2025-03-08".to_string(), 0),
            ("2025-03-09".to_string(), 4),
            ("2025-03-10".to_string(), 2)
        ]
    );
    let body = env.ok(
        &utc,
        "timeseries",
        "from=2025-03-09&to=2025-03-09&interval=hour",
    );
    let utc_hours: Vec<String> = (0..24)
        .map(|h| format!("2025-03-09T{h:02}:00:00+00:00"))
        .collect();
    assert_eq!(
        buckets(&body),
        expected(&utc_hours, &[(4, 1), (5, 1), (6, 1), (7, 1)])
    );
    for (route, query) in NY_QUERIES {
        let zoned = env.ok(&ny, route, query);
        let overridden = env.ok(&utc, route, &format!("{query}&timezone=America/New_York"));
        assert_eq!(overridden["meta"]["timezone"], "America/New_York");
        assert_eq!(overridden, zoned, "{route}?{query}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Asia/Kolkata (+05:30, no daylight saving): days and hours start at :30 UTC

/// The pageviews of the Kolkata trace (IST = UTC+05:30; instants worked out by hand).
const KOLKATA_TRACE: [&str; 20] = [
    // 0: 2025-05-31 23:59:59.999 IST
    "2025-05-31T18:29:59.999Z",
    // 1: 2025-06-01 00:00:00.000 IST, hour bucket 0
    "2025-05-31T18:30:00.000Z",
    // 2: 2025-06-01 00:59:59.999 IST, hour bucket 0
    "2025-05-31T19:29:59.999Z",
    // 3: 2025-06-01 01:00:00.000 IST, hour bucket 1
    "2025-05-31T19:30:00.000Z",
    // 4: 2025-06-01 17:30 IST, hour bucket 17
    "2025-06-01T12:00:00.000Z",
    // 5: 2025-06-02 23:59:59.999 IST (Monday), hour bucket 47 of 06-01..06-02
    "2025-06-02T18:29:59.999Z",
    // 6: 2025-06-03 00:00:00.000 IST (Tuesday)
    "2025-06-02T18:30:00.000Z",
    // 7: 2025-06-03 12:00 IST (Tuesday: in the week of 06-02 but before from=06-04)
    "2025-06-03T06:30:00.000Z",
    // 8: 2025-06-04 00:00:00.000 IST (Wednesday)
    "2025-06-03T18:30:00.000Z",
    // 9: 2025-06-08 23:59:59.999 IST (Sunday, the last instant of the week of 06-02)
    "2025-06-08T18:29:59.999Z",
    // 10: 2025-06-09 00:00:00.000 IST (Monday, the first instant of the week of 06-09)
    "2025-06-08T18:30:00.000Z",
    // 11: 2025-06-20 23:59:59.999 IST (Friday)
    "2025-06-20T18:29:59.999Z",
    // 12: 2025-06-21 00:00:00.000 IST (Saturday)
    "2025-06-20T18:30:00.000Z",
    // 13: 2025-06-30 23:59:59.999 IST
    "2025-06-30T18:29:59.999Z",
    // 14: 2025-07-01 00:00:00.000 IST
    "2025-06-30T18:30:00.000Z",
    // 15: 2025-05-14 23:59:59.999 IST
    "2025-05-14T18:29:59.999Z",
    // 16: 2025-05-15 00:00:00.000 IST
    "2025-05-14T18:30:00.000Z",
    // 17: 2025-07-10 23:59:59.999 IST
    "2025-07-10T18:29:59.999Z",
    // 18: 2025-07-11 00:00:00.000 IST
    "2025-07-10T18:30:00.000Z",
    // 19: 2025-06-01 05:29:59.999 UTC = 10:59:59.999 IST, hour bucket 10
    "2025-06-01T05:29:59.999Z",
];

/// [`KOLKATA_TRACE`] in local time, as the comments say.
const KOLKATA_LOCAL: [&str; 20] = [
    "2025-05-31T23:59:59.999+05:30",
    "2025-06-01T00:00:00.000+05:30",
    "2025-06-01T00:59:59.999+05:30",
    "2025-06-01T01:00:00.000+05:30",
    "2025-06-01T17:30:00.000+05:30",
    "2025-06-02T23:59:59.999+05:30",
    "2025-06-03T00:00:00.000+05:30",
    "2025-06-03T12:00:00.000+05:30",
    "2025-06-04T00:00:00.000+05:30",
    "2025-06-08T23:59:59.999+05:30",
    "2025-06-09T00:00:00.000+05:30",
    "2025-06-20T23:59:59.999+05:30",
    "2025-06-21T00:00:00.000+05:30",
    "2025-06-30T23:59:59.999+05:30",
    "2025-07-01T00:00:00.000+05:30",
    "2025-05-14T23:59:59.999+05:30",
    "2025-05-15T00:00:00.000+05:30",
    "2025-07-10T23:59:59.999+05:30",
    "2025-07-11T00:00:00.000+05:30",
    "2025-06-01T10:59:59.999+05:30",
];

#[test]
fn kolkata_days_weeks_months_and_hours_start_at_local_midnight() {
    for (utc, local) in KOLKATA_TRACE.iter().zip(KOLKATA_LOCAL) {
        assert_local(utc, "Asia/Kolkata", local);
    }
    let env = env();
    let site = env.site("kolkata.example", "Asia/Kolkata");
    env.import(&site, &lone_pageviews("kolkata.example", &KOLKATA_TRACE));

    // Days: 06-01 IST = [05-31 18:30Z, 06-01 18:30Z).
    let body = env.ok(
        &site,
        "timeseries",
        "from=2025-05-31&to=2025-06-03&interval=day",
    );
    assert_eq!(
        buckets(&body),
        [
            ("2025-05-31".to_string(), 1), // #0
            ("2025-06-01".to_string(), 5), // #1 #2 #3 #4 #19
            ("2025-06-02".to_string(), 1), // #5
            ("2025-06-03".to_string(), 2), // #6 #7
        ]
    );
    assert_lone_figures(&body);

    // Hours start at :00 local = :30 UTC.
    let body = env.ok(
        &site,
        "timeseries",
        "from=2025-06-01&to=2025-06-01&interval=hour",
    );
    let hours: Vec<String> = (0..24)
        .map(|h| format!("2025-06-01T{h:02}:00:00+05:30"))
        .collect();
    assert_eq!(
        buckets(&body),
        expected(&hours, &[(0, 2), (1, 1), (10, 1), (17, 1)])
    );
    assert_lone_figures(&body);
    // Two days → hours by default, 48 of them.
    let body = env.ok(&site, "timeseries", "from=2025-06-01&to=2025-06-02");
    assert_eq!(body["meta"]["interval"], "hour", "{body}");
    let mut hours2 = hours.clone();
    hours2.extend((0..24).map(|h| format!("2025-06-02T{h:02}:00:00+05:30")));
    assert_eq!(
        buckets(&body),
        expected(&hours2, &[(0, 2), (1, 1), (10, 1), (17, 1), (47, 1)])
    );
    // Three days → days by default.
    let body = env.ok(&site, "timeseries", "from=2025-06-01&to=2025-06-03");
    assert_eq!(body["meta"]["interval"], "day", "{body}");
    assert_eq!(buckets(&body).len(), 3);

    // from/to boundaries to the millisecond.
    assert_eq!(
        total_pageviews(&env, &site, "from=2025-06-01&to=2025-06-01"),
        5
    );
    assert_eq!(
        total_pageviews(&env, &site, "from=2025-06-01&to=2025-06-02"),
        6
    );
    assert_eq!(
        total_pageviews(&env, &site, "from=2025-06-04&to=2025-06-20"),
        4
    );
    assert_eq!(
        total_pageviews(&env, &site, "from=2025-05-15&to=2025-07-10"),
        18
    );

    // Weeks: labelled with their Monday; the first (06-02) starts before from=06-04 (a
    // Wednesday) but holds only what is in the range: #8 and #9, not #5 #6 #7.
    let body = env.ok(
        &site,
        "timeseries",
        "from=2025-06-04&to=2025-06-20&interval=week",
    );
    assert_eq!(body["meta"]["interval"], "week", "{body}");
    assert_eq!(
        buckets(&body),
        [
            ("2025-06-02".to_string(), 2), // #8 #9
            ("2025-06-09".to_string(), 1), // #10
            ("2025-06-16".to_string(), 1), // #11 (#12 is after to)
        ]
    );
    assert_lone_figures(&body);

    // Months: labelled with the 1st; the range 05-15..07-10 leaves out #15 and #18.
    let body = env.ok(
        &site,
        "timeseries",
        "from=2025-05-15&to=2025-07-10&interval=month",
    );
    assert_eq!(body["meta"]["interval"], "month", "{body}");
    assert_eq!(
        buckets(&body),
        [
            ("2025-05-01".to_string(), 2),  // #0 #16
            ("2025-06-01".to_string(), 14), // #1–#13 and #19
            ("2025-07-01".to_string(), 2),  // #14 #17
        ]
    );
    assert_lone_figures(&body);
}

// ---------------------------------------------------------------------------------------------
// 3. Bad input

#[test]
fn bad_parameters_are_each_named_and_change_nothing() {
    let env = env();
    let site = env.site("bad.example", "UTC");
    let d = "bad.example";
    env.import(
        &site,
        &[
            pageview(d, "/a", "2025-01-10T10:00:00.000Z", "v1"),
            pageview(d, "/b", "2025-01-10T10:01:00.000Z", "v1"),
            pageview(d, "/a", "2025-01-11T09:00:00.000Z", "v2"),
        ],
    );
    let main_q = "from=2025-01-01&to=2025-01-31";
    let before = env.ok(&site, "main", main_q);
    let pages_before = env.ok(&site, "pages", main_q);
    assert_eq!(before["data"]["totalPageviews"], 3, "{before}");

    // Dates.
    assert_bad(
        &env,
        &site,
        "main",
        "from=2025-13-01&to=2025-12-31",
        &["from"],
    );
    assert_bad(&env, &site, "main", "from=2025-01-01&to=yesterday", &["to"]);
    assert_bad(
        &env,
        &site,
        "main",
        "from=2025-1-1&to=2025-01-31",
        &["from"],
    );
    assert_bad(
        &env,
        &site,
        "timeseries",
        "from=2025-02-30&to=2025-03-01",
        &["from"],
    );
    assert_bad(&env, &site, "active-users", "date=2025-02-30", &["date"]);
    assert_bad(&env, &site, "active-users", "date=today", &["date"]);
    let errors = assert_bad(
        &env,
        &site,
        "main",
        "from=2025-03-02&to=2025-03-01",
        &["to"],
    );
    assert_eq!(errors, ["to: must not be before from"]);

    // The span: 2015-01-11..2025-01-17 is exactly 3,660 days (and holds the pageviews).
    let from = Date::new(2015, 1, 11).unwrap();
    let last = from.checked_add(jiff::Span::new().days(3659)).unwrap();
    assert_eq!(last.to_string(), "2025-01-17");
    let body = env.ok(&site, "main", "from=2015-01-11&to=2025-01-17");
    assert_eq!(body["data"]["totalPageviews"], 3, "{body}");
    let body = env.ok(
        &site,
        "timeseries",
        "from=2015-01-11&to=2025-01-17&interval=month",
    );
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        121,
        "2015-01..2025-01"
    );
    let errors = assert_bad(
        &env,
        &site,
        "main",
        "from=2015-01-11&to=2025-01-18",
        &["from"],
    );
    assert_eq!(errors, ["from: the range may span at most 3660 days"]);
    assert_bad(
        &env,
        &site,
        "pages",
        "from=2015-01-11&to=2025-01-18",
        &["from"],
    );

    // Intervals.
    assert_bad(&env, &site, "timeseries", "interval=minute", &["interval"]);
    assert_bad(&env, &site, "timeseries", "interval=", &["interval"]);
    assert_bad(
        &env,
        &site,
        "timeseries",
        "from=2025-01-01&to=2025-02-01&interval=hour",
        &["interval"],
    );
    let body = env.ok(
        &site,
        "timeseries",
        "from=2025-01-01&to=2025-01-31&interval=hour",
    );
    assert_eq!(body["data"].as_array().unwrap().len(), 31 * 24);
    // `interval` is not a parameter of main.
    assert_bad(&env, &site, "main", "interval=day", &["interval"]);

    // Unknown filters and parameters, unknown zones.
    assert_bad(&env, &site, "main", "foo=bar", &["foo"]);
    assert_bad(&env, &site, "pages", "foo=bar", &["foo"]);
    assert_bad(&env, &site, "active-users", "from=2025-01-01", &["from"]);
    assert_bad(
        &env,
        &site,
        "main",
        "timezone=Mars/Olympus_Mons",
        &["timezone"],
    );
    assert_bad(&env, &site, "timeseries", "timezone=", &["timezone"]);
    assert_bad(&env, &site, "main", "path=", &["path"]);

    // Pagination.
    assert_bad(&env, &site, "pages", "limit=0", &["limit"]);
    assert_bad(&env, &site, "pages", "limit=1001", &["limit"]);
    assert_bad(&env, &site, "pages", "limit=abc", &["limit"]);
    assert_bad(&env, &site, "pages", "page=0", &["page"]);
    assert_bad(&env, &site, "referrers", "page=-1", &["page"]);
    let body = env.ok(&site, "pages", "limit=1000&page=1");
    assert_eq!(body["meta"]["pagination"]["limit"], 1000, "{body}");
    assert_bad(&env, &site, "main", "limit=5", &["limit"]);

    // compare.
    assert_bad(&env, &site, "main", "compare=next", &["compare"]);
    let body = env.ok(&site, "main", &format!("{main_q}&compare=previous"));
    assert!(body["data"]["previous"].is_object(), "{body}");

    // event-props needs both `event` and `prop`, named at once.
    let errors = assert_bad(&env, &site, "event-props", "", &["event", "prop"]);
    assert!(
        errors.contains(&"event: is required".to_string()),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"prop: is required".to_string()),
        "{errors:?}"
    );
    assert_bad(&env, &site, "event-props", "event=Signup", &["prop"]);
    assert_bad(&env, &site, "event-props", "prop=plan", &["event"]);

    // The wording the contract fixes.
    for (route, query, message) in [
        ("main", "from=2025-13-01", "from: must be a date YYYY-MM-DD"),
        ("main", "to=x", "to: must be a date YYYY-MM-DD"),
        ("active-users", "date=x", "date: must be a date YYYY-MM-DD"),
        (
            "timeseries",
            "interval=minute",
            "interval: must be one of hour, day, week, month",
        ),
        (
            "timeseries",
            "from=2025-01-01&to=2025-02-01&interval=hour",
            "interval: hour needs a range of at most 31 days",
        ),
        ("main", "timezone=Mars/X", "timezone: unknown time zone"),
        (
            "pages",
            "limit=0",
            "limit: must be an integer between 1 and 1000",
        ),
        (
            "pages",
            "page=0",
            "page: must be an integer between 1 and 1000000",
        ),
        ("main", "compare=next", "compare: must be \"previous\""),
        ("main", "path=", "path: must not be empty"),
    ] {
        let name = message.split(':').next().unwrap();
        let errors = assert_bad(&env, &site, route, query, &[name]);
        assert_eq!(errors, [message], "{route}?{query}");
    }

    // Several bad values at once: every one listed.
    assert_bad(
        &env,
        &site,
        "pages",
        "from=2025-13-01&to=nope&timezone=Nowhere/City&limit=0&page=0&country=",
        &["from", "to", "timezone", "limit", "page", "country"],
    );
    assert_bad(
        &env,
        &site,
        "timeseries",
        "from=2025-02-01&to=2025-01-01&interval=fortnight&timezone=Bad/Zone",
        &["to", "interval", "timezone"],
    );
    assert_bad(
        &env,
        &site,
        "event-props",
        "limit=abc&timezone=X/Y",
        &["event", "prop", "limit", "timezone"],
    );
    assert_bad(&env, &site, "main", "foo=1&bar=2", &["foo", "bar"]);

    // Nothing changed.
    assert_eq!(env.ok(&site, "main", main_q), before);
    assert_eq!(env.ok(&site, "pages", main_q), pages_before);
}

/// SPEC 2: `meta.errors` lists every problem, not only the first: an unknown parameter is
/// listed together with the bad values of known ones.
#[test]
fn unknown_parameters_are_listed_with_the_other_problems() {
    let env = env();
    let site = env.site("bad-mixed.example", "UTC");
    assert_bad(
        &env,
        &site,
        "main",
        "foo=1&from=2025-13-01&compare=next",
        &["foo", "from", "compare"],
    );
    assert_bad(
        &env,
        &site,
        "pages",
        "foo=bar&limit=0&timezone=Nowhere/City",
        &["foo", "limit", "timezone"],
    );
    assert_bad(
        &env,
        &site,
        "event-props",
        "foo=bar",
        &["foo", "event", "prop"],
    );
}

/// Which of two values counts must never depend on their order: a parameter given twice is
/// refused, named with the other problems.
#[test]
fn a_parameter_given_twice_is_refused() {
    let env = env();
    let site = env.site("twice.example", "UTC");
    let errors = assert_bad(
        &env,
        &site,
        "main",
        "from=2025-01-01&to=2025-01-31&from=2025-01-02&country=DE&country=US&foo=1",
        &["from", "country", "foo"],
    );
    assert!(
        errors.contains(&"from: given more than once".to_string()),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"country: given more than once".to_string()),
        "{errors:?}"
    );
    assert_bad(&env, &site, "pages", "limit=5&limit=6", &["limit"]);
}

/// The last day a date can name still has its 24 hours, zero-filled, and the first ones too.
#[test]
fn the_ends_of_the_calendar_have_every_bucket() {
    let env = env();
    let site = env.site("edges.example", "UTC");
    for (from, to, interval, n) in [
        ("9999-12-31", "9999-12-31", "hour", 24),
        ("9999-12-01", "9999-12-31", "day", 31),
        ("9999-12-31", "9999-12-31", "day", 1),
        ("9999-11-01", "9999-12-31", "month", 2),
        ("9999-12-20", "9999-12-31", "week", 2),
        ("0001-01-01", "0001-01-01", "hour", 24),
    ] {
        let body = env.ok(
            &site,
            "timeseries",
            &format!("from={from}&to={to}&interval={interval}"),
        );
        let rows = body["data"].as_array().unwrap();
        assert_eq!(rows.len(), n, "{from}..{to} by {interval}: {body}");
        assert!(rows.iter().all(|r| r["totalPageviews"] == 0), "{body}");
    }
    let main = env.ok(&site, "main", "from=9999-12-31&to=9999-12-31");
    assert_eq!(main["data"]["totalPageviews"], 0, "{main}");
    let pages = env.ok(&site, "pages", "from=9999-12-31&to=9999-12-31");
    assert_eq!(pages["data"], json!([]), "{pages}");
}

// ---------------------------------------------------------------------------------------------
// 4. realtime

#[test]
fn realtime_counts_activity_of_the_last_30_seconds() {
    let env = env();
    // A's pageview is 29 s old when imported; the check holds only when the answer comes
    // within a second, so a slow round is repeated on a new website.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let domain = format!("live{attempt}.example");
        let site = env.site(&domain, "UTC");
        let start = Instant::now();
        let now = now_ms();
        env.import(
            &site,
            &[
                pageview(&domain, "/now-reading", &iso(now - 29_000), "visitor-a"),
                pageview(&domain, "/gone", &iso(now - 31_000), "visitor-b"),
            ],
        );
        let (status, body) = env.stats(&site, "realtime", "");
        if start.elapsed().as_millis() >= 900 && attempt < 4 {
            eprintln!("realtime round {attempt} took {:?}; again", start.elapsed());
            continue;
        }
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["data"],
            json!({"activeVisitors": 1, "pages": [{"value": "/now-reading", "activeVisitors": 1}]}),
            "A (29 s ago) is active, B (31 s ago) is not"
        );
        assert_eq!(body["meta"], json!({"status": 200}), "realtime meta");
        break;
    }

    // A heartbeat 5 s ago keeps a visitor active whose last pageview was 10 minutes earlier,
    // under that pageview's path.
    let domain = "reader.example";
    let site = env.site(domain, "UTC");
    let now = now_ms();
    env.import(
        &site,
        &[
            pageview(domain, "/long-read", &iso(now - 10 * 60_000), "visitor-c"),
            activity(
                "heartbeat",
                domain,
                "/long-read",
                &iso(now - 5_000),
                "visitor-c",
            ),
            // A pageview 20 minutes ago and nothing since: not active.
            pageview(domain, "/old", &iso(now - 20 * 60_000), "visitor-d"),
        ],
    );
    let body = env.ok(&site, "realtime", "");
    assert_eq!(
        body["data"],
        json!({"activeVisitors": 1, "pages": [{"value": "/long-read", "activeVisitors": 1}]})
    );
    // Dates are validated and ignored.
    let body = env.ok(
        &site,
        "realtime",
        "from=2020-01-01&to=2020-01-02&timezone=Asia/Tokyo",
    );
    assert_eq!(body["data"]["activeVisitors"], 1, "{body}");
    assert_bad(&env, &site, "realtime", "from=2025-13-01", &["from"]);

    // No filters on realtime.
    assert_bad(&env, &site, "realtime", "path=/long-read", &["path"]);
    assert_bad(&env, &site, "realtime", "country=DE", &["country"]);
    assert_bad(&env, &site, "realtime", "limit=5", &["limit"]);
}

// ---------------------------------------------------------------------------------------------
// 5. Who may read statistics

const SOME_ROUTES: [(&str, &str); 6] = [
    ("main", ""),
    ("timeseries", ""),
    ("pages", ""),
    ("event-props", "event=Signup&prop=plan"),
    ("realtime", ""),
    ("active-users", ""),
];

#[test]
fn a_read_key_may_read_statistics_of_its_own_websites_only() {
    let env = env();
    let site = env.site("access.example", "UTC");
    let read_key = create_api_key(&env.server, &env.session, json!({"scope": "read"}))["key"]
        .as_str()
        .unwrap()
        .to_string();

    // Another account and its website.
    let out = common::cli::run_stdin(
        &env._sb,
        &[
            "users",
            "add",
            "--email",
            "stats-other@example.com",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    common::cli::assert_success(&out);
    let other = env.server.login("stats-other@example.com", PASSWORD);
    let theirs = website(&env.server, &other, "theirs.example", "UTC");
    let missing = uuid::Uuid::new_v4().to_string();

    for (route, query) in SOME_ROUTES {
        for key in [&env.key, &read_key] {
            let (status, body) = env.stats_as(Some(key), &site, route, query);
            assert_eq!(status, 200, "{route} with a key: {body}");
        }
        // Also with Authorization: Bearer.
        let resp = env
            .http
            .get(
                env.server
                    .api(&format!("/websites/{site}/stats/{route}?{query}")),
            )
            .header("authorization", format!("Bearer {read_key}"))
            .send()
            .unwrap();
        let (status, body) = envelope(resp);
        assert_eq!(status, 200, "{route} with a Bearer read key: {body}");

        let (status, body) = env.stats_as(None, &site, route, query);
        assert_eq!(status, 401, "{route} without a key: {body}");

        let (status, body) = env.stats_as(Some(&read_key), &theirs, route, query);
        assert_eq!(status, 403, "{route} of another account's website: {body}");
        assert_eq!(
            body["meta"]["message"], "You do not have access to this website",
            "{route}"
        );

        let (status, body) = env.stats_as(Some(&read_key), &missing, route, query);
        assert_eq!(status, 404, "{route} of an unknown website: {body}");
    }

    // The dashboard session reads statistics too.
    let resp = env
        .session
        .client
        .get(env.server.api(&format!("/websites/{site}/stats/main")))
        .send()
        .unwrap();
    let (status, body) = envelope(resp);
    assert_eq!(status, 200, "{body}");
}

// ---------------------------------------------------------------------------------------------
// 6. Breakdown order, pagination and meta

#[test]
fn breakdowns_sort_paginate_and_echo_the_request() {
    let env = env();
    let d = "pages.example";
    let site = env.site(d, "UTC");
    // Visitors per path: /alpha 5, /beta 4, /delta 2, /gamma 2 (tie: value ascending),
    // /epsilon 1; five visitors in all. v1 sees /alpha twice.
    let plan: [(&str, &[&str]); 5] = [
        ("/alpha", &["v1", "v1", "v2", "v3", "v4", "v5"]),
        ("/beta", &["v1", "v2", "v3", "v4"]),
        ("/gamma", &["v1", "v2"]),
        ("/delta", &["v3", "v4"]),
        ("/epsilon", &["v5"]),
    ];
    let mut events = Vec::new();
    let mut minute = 0;
    for (path, visitors) in plan {
        for v in visitors {
            minute += 1;
            let at = format!("2025-02-10T10:{minute:02}:00.000Z");
            events.push(pageview(d, path, &at, v));
        }
    }
    env.import(&site, &events);

    let row =
        |path: &str, visitors: u64, views: u64, pct: f64| (path.to_string(), visitors, views, pct);
    let all = [
        row("/alpha", 5, 6, 100.0),
        row("/beta", 4, 4, 80.0),
        row("/delta", 2, 2, 40.0),
        row("/gamma", 2, 2, 40.0),
        row("/epsilon", 1, 1, 20.0),
    ];
    let rows = |body: &Value| -> Vec<(String, u64, u64, f64)> {
        body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("data: {body}"))
            .iter()
            .map(|r| {
                (
                    r["value"].as_str().unwrap().to_string(),
                    r["uniqueVisitors"].as_u64().unwrap(),
                    r["totalPageviews"].as_u64().unwrap(),
                    num(&r["percentage"]),
                )
            })
            .collect()
    };

    let range = "from=2025-02-01&to=2025-02-28";
    let body = env.ok(&site, "pages", range);
    assert_eq!(rows(&body), all);
    assert_eq!(
        body["meta"]["pagination"],
        json!({"page": 1, "limit": 10, "hasMore": false})
    );
    assert_eq!(body["meta"]["from"], "2025-02-01");
    assert_eq!(body["meta"]["to"], "2025-02-28");
    assert_eq!(body["meta"]["timezone"], "UTC");
    assert_eq!(body["meta"]["filters"], json!({}));
    assert_eq!(body["meta"]["status"], 200);

    for (page, slice, more) in [
        (1, &all[0..2], true),
        (2, &all[2..4], true),
        (3, &all[4..5], false),
    ] {
        let body = env.ok(&site, "pages", &format!("{range}&limit=2&page={page}"));
        assert_eq!(rows(&body), slice, "page {page}");
        assert_eq!(
            body["meta"]["pagination"],
            json!({"page": page, "limit": 2, "hasMore": more}),
            "page {page}"
        );
    }
    let body = env.ok(&site, "pages", &format!("{range}&limit=2&page=4"));
    assert_eq!(body["data"], json!([]));
    assert_eq!(
        body["meta"]["pagination"],
        json!({"page": 4, "limit": 2, "hasMore": false})
    );
    let body = env.ok(&site, "pages", &format!("{range}&limit=5"));
    assert_eq!(rows(&body), all);
    assert_eq!(body["meta"]["pagination"]["hasMore"], false);
    let body = env.ok(&site, "pages", &format!("{range}&limit=4"));
    assert_eq!(rows(&body), &all[0..4]);
    assert_eq!(body["meta"]["pagination"]["hasMore"], true);

    // Filters are echoed as given; a path filter leaves that path's row only.
    let body = env.ok(
        &site,
        "pages",
        &format!("{range}&path=/gamma&hostname=pages.example&timezone=Europe/Paris"),
    );
    assert_eq!(
        body["meta"]["filters"],
        json!({"path": "/gamma", "hostname": "pages.example"})
    );
    assert_eq!(body["meta"]["timezone"], "Europe/Paris");
    assert_eq!(rows(&body), [row("/gamma", 2, 2, 100.0)]);
    // Same on main and timeseries (which also echoes its interval).
    let body = env.ok(&site, "main", &format!("{range}&entryPage=/alpha"));
    assert_eq!(body["meta"]["filters"], json!({"entryPage": "/alpha"}));
    assert_eq!(body["meta"]["from"], "2025-02-01");
    assert!(body["meta"].get("pagination").is_none(), "{body}");
    let body = env.ok(&site, "timeseries", &format!("{range}&country=(none)"));
    assert_eq!(body["meta"]["filters"], json!({"country": "(none)"}));
    assert_eq!(body["meta"]["interval"], "day");
    assert_eq!(body["data"].as_array().unwrap().len(), 28);

    // The default range: the 30 days ending today in the site's zone.
    let today_before = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let body = env.ok(&site, "pages", "");
    let today_after = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let to = body["meta"]["to"].as_str().unwrap().to_string();
    assert!(
        to == today_before.to_string() || to == today_after.to_string(),
        "{body}"
    );
    let to: Date = to.parse().unwrap();
    let from = to.checked_sub(jiff::Span::new().days(29)).unwrap();
    assert_eq!(body["meta"]["from"], from.to_string(), "{body}");
}

// ---------------------------------------------------------------------------------------------
// 7. The OpenAPI document

const STATS_ROUTES: [&str; 22] = [
    "main",
    "timeseries",
    "pages",
    "hostnames",
    "entry-pages",
    "exit-pages",
    "referrers",
    "utm-sources",
    "utm-mediums",
    "utm-campaigns",
    "utm-terms",
    "utm-contents",
    "countries",
    "browsers",
    "os",
    "devices",
    "languages",
    "screens",
    "events",
    "event-props",
    "realtime",
    "active-users",
];

#[test]
fn the_openapi_document_lists_every_statistics_route_with_its_definitions() {
    let env = env();
    let resp = client()
        .get(env.server.api("/openapi.json"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    let get_op = |route: &str| -> &Value {
        let suffix = format!("/stats/{route}");
        let (path, item) = paths
            .iter()
            .find(|(p, _)| p.ends_with(&suffix) && p.contains("/websites/{"))
            .unwrap_or_else(|| panic!("{suffix} is not in the document"));
        item.get("get")
            .unwrap_or_else(|| panic!("{path} has no GET operation"))
    };
    for route in STATS_ROUTES {
        get_op(route);
    }
    for route in ["main", "timeseries"] {
        let op = get_op(route);
        let text = format!(
            "{} {}",
            op["summary"].as_str().unwrap_or_default(),
            op["description"].as_str().unwrap_or_default()
        );
        let lower = text.to_lowercase();
        // main names and defines each figure; timeseries refers to main's figures and says
        // by which time each one is bucketed.
        let words: &[&str] = if route == "main" {
            &[
                "uniquevisitors",
                "totalpageviews",
                "totalsessions",
                "bouncerate",
                "avgsessionduration",
                "viewspersession",
            ]
        } else {
            &["pageview", "visitor", "session", "bounce", "duration"]
        };
        for word in words {
            assert!(
                lower.contains(word),
                "{route}: {word} is not defined in {text:?}"
            );
        }
        assert!(
            lower.contains("30 minutes") || lower.contains("session"),
            "{route}: no session definition in {text:?}"
        );
        assert!(lower.contains("bounce"), "{route}: {text:?}");
    }
}
