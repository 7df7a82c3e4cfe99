//! Retention (SPEC 1, 2.5 `retentionDays`): the job `serve` runs at start and then daily
//! deletes a website's sessions older than its kept days, with their rows and statistics
//! blocks, and every figure of the kept days stays as it was: also for a session that runs
//! over the cutoff, and for visitors whose oldest sessions (their number in the blocks) go.

mod common;

use std::time::{Duration, Instant};

use common::ingest::{db, website};
use common::{Sandbox, Server, api_key, client, envelope};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Value, json};

const ZONE: &str = "Asia/Kolkata";
const RETENTION: i64 = 3;
const MIN: i64 = 60_000;
const UNLIMITED: &[&str] = &["--api-rate-limit", "1000000", "--api-rate-burst", "1000000"];

fn tz() -> TimeZone {
    TimeZone::get(ZONE).unwrap()
}

fn today() -> Date {
    jetrack::stats::period::today(&tz(), jetrack::time::now_ms())
}

fn day(days_ago: i64) -> Date {
    today()
        .checked_sub(jiff::Span::new().days(days_ago))
        .unwrap()
}

/// Local time `hh:mm` of the date `days_ago` days before today, in UTC milliseconds.
fn at(days_ago: i64, hh: i8, mm: i8) -> i64 {
    day(days_ago)
        .at(hh, mm, 0, 0)
        .to_zoned(tz())
        .unwrap()
        .timestamp()
        .as_millisecond()
}

fn ev(kind: &str, ms: i64, visitor: &str, path: &str, referrer: Option<&str>) -> Value {
    let mut e = json!({
        "type": kind,
        "url": format!("https://keep.example{path}"),
        "timestamp": jetrack::time::iso_ms(ms),
        "visitorId": visitor,
        "referrer": referrer,
        "country": if visitor.starts_with('r') { "DE" } else { "IN" },
    });
    if kind == "event" {
        e["name"] = json!("Signup");
        e["props"] = json!({"plan": if visitor.ends_with('1') { "pro" } else { "free" }});
    }
    e
}

/// A session of `visitor` from `start`: pageviews a few minutes apart, an event, and a
/// heartbeat after the last pageview.
fn session(out: &mut Vec<Value>, visitor: &str, start: i64, pages: i64, referrer: &str) {
    for i in 0..pages {
        let t = start + i * 4 * MIN;
        out.push(ev(
            "pageview",
            t,
            visitor,
            &format!("/p{}", i % 3),
            (i == 0).then_some(referrer),
        ));
    }
    out.push(ev("event", start + MIN, visitor, "/", None));
    out.push(ev("heartbeat", start + pages * 4 * MIN, visitor, "/", None));
}

fn trace() -> Vec<Value> {
    let mut out = Vec::new();
    for r in 0..8 {
        let v = format!("r{r}");
        // Old sessions first (the smallest ids: the visitor's number), then kept ones.
        session(&mut out, &v, at(6, 10, r), 2, "https://old.example/");
        session(&mut out, &v, at(5, 14, r), 3, "https://old.example/");
        session(&mut out, &v, at(2, 9, r), 2, "https://www.google.com/");
        session(&mut out, &v, at(1, 18, r), 4, "https://news.example/");
    }
    for o in 0..6 {
        session(
            &mut out,
            &format!("o{o}"),
            at(7, 12, o),
            3,
            "https://old.example/",
        );
    }
    for k in 0..6 {
        session(
            &mut out,
            &format!("k{k}"),
            at(1, 11, k),
            1 + k as i64 % 3,
            "",
        );
    }
    // A session from 23:50 on the last deleted day to 00:15 on the first kept one.
    let cutoff = at(RETENTION, 0, 0);
    for (i, t) in [cutoff - 10 * MIN, cutoff + 5 * MIN, cutoff + 15 * MIN]
        .into_iter()
        .enumerate()
    {
        let referrer = (i == 0).then_some("https://straddle.example/");
        out.push(ev("pageview", t, "s", &format!("/s{i}"), referrer));
    }
    out.push(ev("event", cutoff + 10 * MIN, "s", "/", None));
    // Server-side events of a visitor without pageviews, on both sides.
    out.push(ev("event", at(6, 8, 0), "backend", "/", None));
    out.push(ev("event", at(2, 8, 0), "backend", "/", None));
    out
}

struct Site<'a> {
    server: &'a Server,
    key: String,
    id: String,
}

impl Site<'_> {
    fn data(&self, route: &str, query: &str) -> Value {
        let resp = client()
            .get(
                self.server
                    .api(&format!("/websites/{}/stats/{route}?{query}", self.id)),
            )
            .header("x-api-key", &self.key)
            .send()
            .unwrap();
        let (status, body) = envelope(resp);
        assert_eq!(status, 200, "{route}?{query}: {body}");
        body["data"].clone()
    }

    fn import(&self, events: &[Value]) {
        let resp = client()
            .post(self.server.api(&format!("/websites/{}/events", self.id)))
            .header("x-api-key", &self.key)
            .json(&json!({ "events": events }))
            .send()
            .unwrap();
        let (status, body) = envelope(resp);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["dropped"], json!([]), "{body}");
    }

    /// Every figure of the kept days `[today - RETENTION, today]` the test compares.
    fn kept_figures(&self) -> Vec<(String, Value)> {
        let range = format!("from={}&to={}", day(RETENTION), day(0));
        let first = format!("from={0}&to={0}", day(RETENTION));
        let mut queries = vec![
            ("main", range.clone()),
            ("main", format!("{range}&referrer=straddle.example")),
            ("main", format!("{range}&country=DE")),
            ("main", format!("{range}&path=/p1")),
            ("main", format!("{range}&event=Signup")),
            ("main", format!("{range}&entryPage=/s0")),
            ("timeseries", format!("{range}&interval=day")),
            ("timeseries", format!("{first}&interval=hour")),
            ("event-props", format!("{range}&event=Signup&prop=plan")),
            ("active-users", format!("date={}", day(0))),
        ];
        for route in [
            "pages",
            "referrers",
            "entry-pages",
            "exit-pages",
            "countries",
            "events",
        ] {
            queries.push((route, format!("{range}&limit=100")));
        }
        // `active-users` looks 30 days back: only its dau is a kept day's figure.
        queries
            .into_iter()
            .map(|(route, q)| {
                let mut data = self.data(route, &q);
                if route == "active-users" {
                    data = data["dau"].clone();
                }
                (format!("{route}?{q}"), data)
            })
            .collect()
    }
}

/// Waits until the server has rewritten every marked block but the last few buckets', so
/// that the figures come from stored blocks.
fn wait_for_stored_blocks(sb: &Sandbox, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recent = jetrack::stats::blocks::bucket_of(jetrack::time::now_ms()) - 2;
        let marked: i64 = db(sb)
            .query_row(
                "SELECT count(*) FROM stats_dirty WHERE bucket < ?1",
                [recent],
                |r| r.get(0),
            )
            .unwrap();
        if marked == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{marked} blocks still marked: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn count(sb: &Sandbox, sql: &str, value: i64) -> i64 {
    db(sb).query_row(sql, [value], |r| r.get(0)).unwrap()
}

#[test]
fn the_daily_job_removes_old_sessions_and_their_blocks_and_keeps_every_kept_figure() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, UNLIMITED);
    let session = server.setup("owner@example.com");
    let key = api_key(&server, &session);
    let id = website(&server, &session, "keep.example", ZONE);
    let site = Site {
        server: &server,
        key: key.clone(),
        id: id.clone(),
    };
    site.import(&trace());
    wait_for_stored_blocks(&sb, &server);
    let kept = site.kept_figures();
    let old_range = format!("from={}&to={}", day(7), day(RETENTION + 1));
    let old = site.data("main", &old_range);
    assert!(old["totalPageviews"].as_u64().unwrap() > 50, "{old}");
    assert_eq!(
        kept[1].1["totalPageviews"], 2,
        "the straddling session: {:?}",
        kept[1]
    );

    let resp = client()
        .patch(server.api(&format!("/websites/{id}")))
        .header("x-api-key", &key)
        .json(&json!({ "retentionDays": RETENTION }))
        .send()
        .unwrap();
    assert_eq!(envelope(resp).0, 200);
    // `serve` runs the job at start (and then every day).
    assert!(server.stop().success());
    let server = Server::start(&sb, UNLIMITED);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.stderr().contains("retention job finished") {
        assert!(
            Instant::now() < deadline,
            "no retention run: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = server
        .stderr()
        .lines()
        .find(|l| l.contains("retention job finished"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("sessions=23"),
        "8 × 2 + 6 old sessions and one of events only: {line}"
    );
    let site = Site {
        server: &server,
        key,
        id,
    };

    // The kept days' figures, one by one.
    for ((query, before), (_, after)) in kept.iter().zip(site.kept_figures()) {
        assert_eq!(before, &after, "{query}");
    }
    // The deleted days are empty but for the straddling session's first pageview.
    let old = site.data("main", &old_range);
    assert_eq!(old["totalPageviews"], 1, "{old}");
    assert_eq!(old["totalSessions"], 1, "{old}");

    // Rows and blocks before the cutoff are gone, but the straddling session's.
    let cutoff = at(RETENTION, 0, 0);
    let first_kept = jetrack::stats::blocks::bucket_of(cutoff);
    assert_eq!(
        count(&sb, "SELECT count(*) FROM pageviews WHERE at < ?1", cutoff),
        1
    );
    assert_eq!(
        count(&sb, "SELECT count(*) FROM events WHERE at < ?1", cutoff),
        0
    );
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM visits WHERE last_at < ?1",
            cutoff
        ),
        0
    );
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM visits WHERE first_at < ?1",
            cutoff
        ),
        1,
        "only the straddling session began before the cutoff"
    );
    assert_eq!(
        count(
            &sb,
            "SELECT count(*) FROM stats_dirty WHERE bucket < ?1",
            first_kept
        ),
        0
    );
    let old_blocks: Vec<i64> = db(&sb)
        .prepare("SELECT DISTINCT bucket FROM stats_blocks WHERE bucket < ?1")
        .unwrap()
        .query_map([first_kept], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        old_blocks,
        [jetrack::stats::blocks::bucket_of(cutoff - 10 * MIN)]
    );

    // A regular visitor lost their oldest sessions, and with them their number in the blocks;
    // a new visit today must still count them once (every block of theirs was rebuilt).
    let before = &kept[0].1;
    site.import(&[ev(
        "pageview",
        jetrack::time::now_ms() - MIN,
        "r0",
        "/new",
        None,
    )]);
    let check = |main: &Value| {
        assert_eq!(main["uniqueVisitors"], before["uniqueVisitors"], "{main}");
        assert_eq!(
            main["totalPageviews"].as_u64(),
            before["totalPageviews"].as_u64().map(|n| n + 1)
        );
        assert_eq!(
            main["totalSessions"].as_u64(),
            before["totalSessions"].as_u64().map(|n| n + 1)
        );
    };
    let range = format!("from={}&to={}", day(RETENTION), day(0));
    check(&site.data("main", &range));
    wait_for_stored_blocks(&sb, &server);
    check(&site.data("main", &range));
}

#[test]
fn the_cutoff_is_whole_local_days_before_today() {
    let now = jetrack::time::now_ms();
    let cut = jetrack::retention::cutoff(RETENTION, &tz(), now);
    assert_eq!(cut, at(RETENTION, 0, 0));
    assert!(now - cut >= RETENTION * 24 * 3_600_000);
}
