//! Helpers for the ingestion tests: a website to track, collect requests, and what the
//! database holds afterwards (read-only, beside the running server).

use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde_json::{Value, json};

use super::{Sandbox, Server, Session, envelope};

/// A desktop Chrome on Linux: parsed as Chrome, Linux, desktop; not a bot.
pub const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Creates a website through the API with the dashboard session; returns its id.
pub fn website(server: &Server, session: &Session, domain: &str, timezone: &str) -> String {
    website_with(
        server,
        session,
        json!({"name": domain, "domain": domain, "timezone": timezone}),
    )
}

/// Creates a website from a full `POST /websites` body; returns its id.
pub fn website_with(server: &Server, session: &Session, body: Value) -> String {
    let resp = session
        .client
        .post(server.api("/websites"))
        .header("x-csrf-token", &session.csrf)
        .json(&body)
        .send()
        .expect("create a website");
    let (status, body) = envelope(resp);
    assert_eq!(status, 201, "creating a website: {body}");
    body["data"]["id"].as_str().unwrap().to_string()
}

/// A plain client for the public collect endpoint (no cookies).
pub fn collector() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// `POST /api/collect` with `body` as `text/plain` (as sendBeacon sends it), from client
/// address `ip` (through `X-Forwarded-For`, which the server believes from loopback) and
/// User-Agent `ua`.
pub fn collect(server: &Server, body: &Value, ip: &str, ua: &str) -> reqwest::blocking::Response {
    collect_raw(server, body.to_string(), ip, ua)
}

/// [`collect`] with a body that need not be JSON.
pub fn collect_raw(
    server: &Server,
    body: impl Into<reqwest::blocking::Body>,
    ip: &str,
    ua: &str,
) -> reqwest::blocking::Response {
    collector()
        .post(server.url("/api/collect"))
        .header("content-type", "text/plain;charset=UTF-8")
        .header("x-forwarded-for", ip)
        .header("user-agent", ua)
        .body(body)
        .send()
        .expect("collect")
}

/// A pageview of `url` on website `site`.
pub fn pageview(site: &str, url: &str) -> Value {
    json!({"type": "pageview", "websiteId": site, "url": url})
}

/// The `X-Jetrack-Dropped` header of an answer, if any.
pub fn dropped(resp: &reqwest::blocking::Response) -> Option<String> {
    resp.headers()
        .get("x-jetrack-dropped")
        .map(|v| v.to_str().unwrap().to_string())
}

/// Opens the sandbox's database read-only while the server may still run.
pub fn db(sb: &Sandbox) -> Connection {
    let conn = Connection::open_with_flags(
        sb.db_path(),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the database");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// `SELECT count(*) FROM table`.
pub fn count(sb: &Sandbox, table: &str) -> i64 {
    db(sb)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// One stored pageview, its strings resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPageview {
    pub at: i64,
    pub visit: i64,
    pub hostname: String,
    pub path: String,
}

/// Every stored pageview in time order.
pub fn pageviews(sb: &Sandbox) -> Vec<StoredPageview> {
    let conn = db(sb);
    let mut stmt = conn
        .prepare(
            "SELECT p.at, p.visit, h.value, s.value FROM pageviews p
             JOIN strings h ON h.id = p.hostname JOIN strings s ON s.id = p.path
             ORDER BY p.site, p.at, p.seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(StoredPageview {
            at: r.get(0)?,
            visit: r.get(1)?,
            hostname: r.get(2)?,
            path: r.get(3)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// One stored custom event, its strings resolved; `props` as stored (a JSON object or null).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub at: i64,
    pub visit: i64,
    pub name: String,
    pub props: Value,
}

/// Every stored custom event in time order.
pub fn events(sb: &Sandbox) -> Vec<StoredEvent> {
    let conn = db(sb);
    let mut stmt = conn
        .prepare(
            "SELECT e.at, e.visit, n.value, e.props FROM events e
             JOIN strings n ON n.id = e.name ORDER BY e.site, e.at, e.seq",
        )
        .unwrap();
    stmt.query_map([], |r| {
        let props: Option<String> = r.get(3)?;
        Ok(StoredEvent {
            at: r.get(0)?,
            visit: r.get(1)?,
            name: r.get(2)?,
            props: props.map_or(Value::Null, |p| serde_json::from_str(&p).unwrap()),
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// One stored visit (a session of SPEC 4), its strings resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredVisit {
    pub id: i64,
    pub visitor: i64,
    pub first_at: i64,
    pub last_at: i64,
    pub pv_first_at: Option<i64>,
    pub pv_last_at: Option<i64>,
    pub pageviews: i64,
    pub events: i64,
    pub entry: Option<String>,
    pub exit: Option<String>,
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

/// Every stored visit ordered by first activity.
pub fn visits(sb: &Sandbox) -> Vec<StoredVisit> {
    let conn = db(sb);
    let s = |col: &str| format!("(SELECT value FROM strings WHERE id = v.{col})");
    let sql = format!(
        "SELECT v.id, v.visitor, v.first_at, v.last_at, v.pv_first_at, v.pv_last_at, v.pageviews,
                v.events, {}, {}, {}, {}, {}, {}, {}, {}, {}, v.country, {}, {}, {}, {}, {}
         FROM visits v ORDER BY v.site, v.first_at, v.id",
        s("entry"),
        s("exit"),
        s("hostname"),
        s("referrer"),
        s("utm_source"),
        s("utm_medium"),
        s("utm_campaign"),
        s("utm_term"),
        s("utm_content"),
        s("browser"),
        s("os"),
        s("device"),
        s("language"),
        s("screen"),
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    stmt.query_map([], |r| {
        Ok(StoredVisit {
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
            hostname: r.get(10)?,
            referrer: r.get(11)?,
            utm_source: r.get(12)?,
            utm_medium: r.get(13)?,
            utm_campaign: r.get(14)?,
            utm_term: r.get(15)?,
            utm_content: r.get(16)?,
            country: r.get(17)?,
            browser: r.get(18)?,
            os: r.get(19)?,
            device: r.get(20)?,
            language: r.get(21)?,
            screen: r.get(22)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The `/metrics` address printed by `serve --metrics-listen 127.0.0.1:0`.
pub fn metrics_url(server: &Server) -> String {
    let out = server.stdout();
    let i = out
        .find("metrics on http://")
        .expect("serve printed its metrics address");
    let rest = &out[i + "metrics on ".len()..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    rest[..end].to_string()
}

/// A sample's value in the Prometheus text at `metrics_url` (0 when absent), e.g.
/// `metric(&text, "jetrack_ingest_dropped_total{reason=\"bot\"}")`.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}
