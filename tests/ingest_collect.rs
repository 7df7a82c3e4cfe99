//! `POST /api/collect` and `GET /js/jetrack.js` from the outside (SPEC 3.1, 3.2, 3.3, 7.3):
//! the real server on `127.0.0.1:0`, what it answers, and what the database then holds. Every
//! request that is refused or dropped is shown to store nothing.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::ingest::{
    CHROME, collect, collect_raw, collector, count, dropped, events, metric, metrics_url, pageview,
    pageviews, visits, website,
};
use common::{Sandbox, Server, envelope};
use reqwest::blocking::Response;
use serde_json::{Map, Value, json};

const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
const SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15";

/// A server with an account and one website on `example.com`. The server is declared first so
/// that it stops before its sandbox is removed.
struct Tracked {
    server: Server,
    sb: Sandbox,
    site: String,
}

fn tracked(args: &[&str]) -> Tracked {
    let sb = Sandbox::new();
    let server = Server::start(&sb, args);
    let session = server.setup("owner@example.com");
    let site = website(&server, &session, "example.com", "UTC");
    Tracked { server, sb, site }
}

/// A client address no other request of this test process uses, so that the per-visitor limit
/// (20 a second per address and User-Agent) never meets requests it is not about.
fn fresh_ip() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("31.{}.{}.{}", n / 62_500, n / 250 % 250, n % 250 + 1)
}

/// What the tracked-activity tables hold: pageviews, events, visits, distinct strings.
fn totals(sb: &Sandbox) -> [i64; 4] {
    ["pageviews", "events", "visits", "strings"].map(|t| count(sb, t))
}

/// A 202 that was stored: no drop header, an empty body, CORS open.
fn assert_stored(resp: Response, what: &str) {
    assert_eq!(resp.status(), 202, "{what}");
    assert_eq!(dropped(&resp), None, "{what}");
    assert_eq!(cors(&resp), Some("*"), "{what}");
    assert!(
        resp.bytes().unwrap().is_empty(),
        "{what}: the body is empty"
    );
}

/// A 202 deliberately dropped for `reason`, with an empty body.
fn assert_dropped(resp: Response, reason: &str, what: &str) {
    assert_eq!(resp.status(), 202, "{what}");
    assert_eq!(dropped(&resp).as_deref(), Some(reason), "{what}");
    assert_eq!(cors(&resp), Some("*"), "{what}");
    assert!(
        resp.bytes().unwrap().is_empty(),
        "{what}: the body is empty"
    );
}

/// A 400 envelope whose `meta.errors` are exactly `want`.
fn assert_invalid(resp: Response, want: &[&str], what: &str) {
    assert_eq!(cors(&resp), Some("*"), "{what}");
    let (status, body) = envelope(resp);
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["meta"]["errors"], json!(want), "{what}: {body}");
}

fn cors(resp: &Response) -> Option<&str> {
    resp.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap())
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().unwrap())
}

/// One line of a User-Agent fixture file per entry, blank lines left out.
fn fixture_lines(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tracker (SPEC 3.1)

#[test]
fn the_tracker_is_served_gzipped_under_2_kb_with_an_etag_and_a_day_of_caching() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    // reqwest is built here without its gzip feature: the bytes read are the bytes served.
    let client = collector();
    let get = |encoding: Option<&str>, etag: Option<&str>| {
        let mut req = client.get(server.url("/js/jetrack.js"));
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        if let Some(t) = etag {
            req = req.header("if-none-match", t);
        }
        req.send().expect("GET /js/jetrack.js")
    };

    let resp = get(Some("gzip, deflate, br"), None);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-encoding"), Some("gzip"));
    assert_eq!(
        header(&resp, "cache-control"),
        Some("public, max-age=86400")
    );
    assert!(
        header(&resp, "content-type").is_some_and(|t| t.contains("javascript")),
        "{:?}",
        resp.headers()
    );
    assert!(
        header(&resp, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
        "a cache must keep the two forms apart: {:?}",
        resp.headers()
    );
    let gz_etag = header(&resp, "etag").expect("an ETag").to_string();
    let gzipped = resp.bytes().unwrap();
    assert_eq!(&gzipped[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(
        gzipped.len() <= 2048,
        "the tracker is {} bytes gzipped; at most 2048",
        gzipped.len()
    );

    let resp = get(None, None);
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(
        header(&resp, "cache-control"),
        Some("public, max-age=86400")
    );
    let plain_etag = header(&resp, "etag").expect("an ETag").to_string();
    assert_ne!(plain_etag, gz_etag, "the two forms have their own ETag");
    let plain = resp.text().unwrap();
    assert!(plain.contains("sendBeacon"), "{plain}");
    assert!(plain.len() > gzipped.len());
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gzipped[..])
        .read_to_string(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, plain, "the gzip form is the same script");

    for (encoding, etag) in [(Some("gzip"), &gz_etag), (None, &plain_etag)] {
        let resp = get(encoding, Some(etag));
        assert_eq!(resp.status(), 304, "{encoding:?} {etag}");
        assert_eq!(header(&resp, "etag"), Some(etag.as_str()));
        assert!(resp.bytes().unwrap().is_empty());
    }
    // A stale tag gets the script again.
    let resp = get(Some("gzip"), Some("\"stale\""));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap(), gzipped);
}

// ---------------------------------------------------------------------------------------------
// CORS, methods and content types (SPEC 3.2)

#[test]
fn collect_is_open_to_every_origin_takes_both_content_types_and_refuses_get() {
    let t = tracked(&[]);
    let client = collector();

    let resp = client
        .request(reqwest::Method::OPTIONS, t.server.url("/api/collect"))
        .header("origin", "https://example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(cors(&resp), Some("*"));
    let methods = header(&resp, "access-control-allow-methods").expect("allowed methods");
    assert!(methods.split(',').any(|m| m.trim() == "POST"), "{methods}");
    let headers = header(&resp, "access-control-allow-headers").unwrap_or_default();
    assert!(
        headers.to_ascii_lowercase().contains("content-type"),
        "a JSON POST from another origin needs Content-Type allowed: {headers:?}"
    );
    assert_eq!(
        header(&resp, "access-control-allow-credentials"),
        None,
        "without credentials"
    );
    assert!(resp.bytes().unwrap().is_empty());

    // sendBeacon's text/plain, and application/json as fetch would send it.
    let before = totals(&t.sb);
    let ip = fresh_ip();
    assert_stored(
        collect(
            &t.server,
            &pageview(&t.site, "https://example.com/plain"),
            &ip,
            CHROME,
        ),
        "text/plain",
    );
    let resp = client
        .post(t.server.url("/api/collect"))
        .header("origin", "https://example.com")
        .header("x-forwarded-for", &ip)
        .header("user-agent", CHROME)
        .json(&pageview(&t.site, "https://example.com/json"))
        .send()
        .unwrap();
    assert_eq!(header(&resp, "access-control-allow-credentials"), None);
    assert_stored(resp, "application/json");
    let paths: Vec<String> = pageviews(&t.sb).into_iter().map(|p| p.path).collect();
    assert_eq!(paths, ["/plain", "/json"]);
    assert_eq!(count(&t.sb, "pageviews"), before[0] + 2);

    // A refused POST is readable from the page too.
    let resp = collect_raw(&t.server, "{}", &fresh_ip(), CHROME);
    assert_eq!(cors(&resp), Some("*"));
    assert_eq!(resp.status(), 400);

    let before = totals(&t.sb);
    let resp = client.get(t.server.url("/api/collect")).send().unwrap();
    let allow = header(&resp, "allow").unwrap_or_default().to_string();
    let (status, body) = envelope(resp);
    assert_eq!(status, 405, "{body}");
    assert!(allow.contains("POST"), "{allow:?}");
    assert_eq!(totals(&t.sb), before);
}

// ---------------------------------------------------------------------------------------------
// Bad input and deliberate drops (SPEC 3.2)

#[test]
fn every_malformed_body_is_refused_with_the_field_named_and_nothing_stored() {
    let t = tracked(&[]);
    let site = t.site.as_str();
    let url = "https://example.com/";
    let many_props: Map<String, Value> = (0..31).map(|i| (format!("k{i}"), json!("v"))).collect();
    let long_url = format!("https://example.com/{}", "a".repeat(2_000 - 20 + 1));
    assert_eq!(long_url.chars().count(), 2_001);
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "missing type",
            json!({"websiteId": site, "url": url}),
            vec!["type: is required"],
        ),
        (
            "missing websiteId",
            json!({"type": "pageview", "url": url}),
            vec!["websiteId: is required"],
        ),
        (
            "missing url",
            json!({"type": "pageview", "websiteId": site}),
            vec!["url: is required"],
        ),
        (
            "all three missing",
            json!({"screenWidth": 1440}),
            vec![
                "type: is required",
                "url: is required",
                "websiteId: is required",
            ],
        ),
        (
            "unknown type",
            json!({"type": "click", "websiteId": site, "url": url}),
            vec!["type: must be pageview, event or heartbeat"],
        ),
        (
            "type not a string",
            json!({"type": 1, "websiteId": site, "url": url}),
            vec!["type: must be a string"],
        ),
        (
            "websiteId not a UUID",
            json!({"type": "pageview", "websiteId": "example.com", "url": url}),
            vec!["websiteId: must be a UUID"],
        ),
        (
            "ftp url",
            json!({"type": "pageview", "websiteId": site, "url": "ftp://example.com/file"}),
            vec!["url: must be an http or https URL"],
        ),
        (
            "javascript: url",
            json!({"type": "pageview", "websiteId": site, "url": "javascript:alert(1)"}),
            vec!["url: must be an http or https URL"],
        ),
        (
            "relative url",
            json!({"type": "pageview", "websiteId": site, "url": "/a"}),
            vec!["url: must be an absolute http(s) URL"],
        ),
        (
            "url over 2,000 characters",
            json!({"type": "pageview", "websiteId": site, "url": long_url}),
            vec!["url: must be at most 2000 characters"],
        ),
        (
            "event without name",
            json!({"type": "event", "websiteId": site, "url": url}),
            vec!["name: is required for an event"],
        ),
        (
            "event with an empty name",
            json!({"type": "event", "websiteId": site, "url": url, "name": "  "}),
            vec!["name: must not be empty"],
        ),
        (
            "name over 120 characters",
            json!({"type": "event", "websiteId": site, "url": url, "name": "n".repeat(121)}),
            vec!["name: must be at most 120 characters"],
        ),
        (
            "31 props",
            json!({"type": "event", "websiteId": site, "url": url, "name": "x", "props": many_props}),
            vec!["props: must have at most 30 pairs"],
        ),
        (
            "props key over 300 characters",
            json!({"type": "event", "websiteId": site, "url": url, "name": "x",
                   "props": {"k".repeat(301): "v"}}),
            vec!["props: keys must be 1 to 300 characters"],
        ),
        (
            "prop value over 2,000 characters",
            json!({"type": "event", "websiteId": site, "url": url, "name": "x",
                   "props": {"plan": "v".repeat(2_001)}}),
            vec!["props.plan: must be at most 2000 characters"],
        ),
        (
            "prop value an object",
            json!({"type": "event", "websiteId": site, "url": url, "name": "x",
                   "props": {"plan": {"tier": "pro"}}}),
            vec!["props.plan: must be a string, number or boolean"],
        ),
        (
            "props not an object",
            json!({"type": "event", "websiteId": site, "url": url, "name": "x", "props": ["pro"]}),
            vec!["props: must be an object"],
        ),
        (
            "props a string",
            json!({"type": "event", "websiteId": site, "url": url, "name": "x", "props": "plan=pro"}),
            vec!["props: must be an object"],
        ),
        (
            "screenWidth not a number",
            json!({"type": "pageview", "websiteId": site, "url": url, "screenWidth": "wide"}),
            vec!["screenWidth: must be a number"],
        ),
        (
            "JSON array",
            json!([{"type": "pageview", "websiteId": site, "url": url}]),
            vec!["body: must be a JSON object"],
        ),
        (
            "JSON string",
            json!("pageview"),
            vec!["body: must be a JSON object"],
        ),
        (
            "JSON null",
            Value::Null,
            vec!["body: must be a JSON object"],
        ),
    ];
    let before = totals(&t.sb);
    for (what, body, want) in &cases {
        let resp = collect(&t.server, body, &fresh_ip(), CHROME);
        assert_invalid(resp, want, what);
        assert_eq!(totals(&t.sb), before, "{what}: nothing stored");
    }

    // Bodies that are not JSON at all: the problem is the body's.
    for (what, raw) in [
        ("invalid JSON", "{\"type\": \"pageview\","),
        ("not JSON", "type=pageview"),
        ("empty body", ""),
    ] {
        let resp = collect_raw(&t.server, raw, &fresh_ip(), CHROME);
        assert_eq!(cors(&resp), Some("*"), "{what}");
        let (status, body) = envelope(resp);
        assert_eq!(status, 400, "{what}: {body}");
        let errors = body["meta"]["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{what}: {body}");
        assert!(
            errors[0]
                .as_str()
                .unwrap()
                .starts_with("body: malformed JSON"),
            "{what}: {body}"
        );
        assert_eq!(totals(&t.sb), before, "{what}: nothing stored");
    }

    // The limits themselves are allowed.
    let thirty: Map<String, Value> = (0..30).map(|i| (format!("k{i}"), json!("v"))).collect();
    let at_limit_url = &long_url[..2_000];
    for (what, body) in [
        ("url of 2,000 characters", pageview(site, at_limit_url)),
        (
            "30 props and a 120-character name",
            json!({"type": "event", "websiteId": site, "url": url, "name": "n".repeat(120),
                   "props": thirty}),
        ),
        (
            "a 300-character key and a 2,000-character value",
            json!({"type": "event", "websiteId": site, "url": url, "name": "x",
                   "props": {"k".repeat(300): "v".repeat(2_000)}}),
        ),
    ] {
        assert_stored(collect(&t.server, &body, &fresh_ip(), CHROME), what);
    }
    let pv = pageviews(&t.sb);
    assert_eq!(pv.len() as i64, before[0] + 1);
    assert_eq!(pv[0].path, at_limit_url["https://example.com".len()..]);
    let stored = events(&t.sb);
    assert_eq!(stored.len() as i64, before[1] + 2);
    assert_eq!(stored[0].name, "n".repeat(120));
    assert_eq!(stored[0].props.as_object().unwrap().len(), 30);
    assert_eq!(stored[1].props, json!({"k".repeat(300): "v".repeat(2_000)}));
}

/// A valid pageview padded with trailing whitespace (still valid JSON) to exactly `len` bytes.
fn padded_pageview(site: &str, len: usize) -> String {
    let mut body = pageview(site, "https://example.com/padded").to_string();
    assert!(body.len() <= len);
    body.push_str(&" ".repeat(len - body.len()));
    body
}

#[test]
fn a_body_over_8_kib_is_refused_with_413_and_8_kib_is_taken() {
    let t = tracked(&[]);
    let before = totals(&t.sb);
    let resp = collect_raw(
        &t.server,
        padded_pageview(&t.site, 8193),
        &fresh_ip(),
        CHROME,
    );
    assert_eq!(cors(&resp), Some("*"));
    let (status, body) = envelope(resp);
    assert_eq!(status, 413, "{body}");
    assert_eq!(totals(&t.sb), before, "nothing stored");

    // Without a Content-Length (chunked), the limit holds while reading.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(
        padded_pageview(&t.site, 8193).into_bytes(),
    ));
    let resp = collect_raw(&t.server, chunked, &fresh_ip(), CHROME);
    let (status, body) = envelope(resp);
    assert_eq!(status, 413, "chunked: {body}");
    assert_eq!(totals(&t.sb), before, "nothing stored");

    assert_stored(
        collect_raw(
            &t.server,
            padded_pageview(&t.site, 8192),
            &fresh_ip(),
            CHROME,
        ),
        "exactly 8 KiB",
    );
    assert_eq!(count(&t.sb, "pageviews"), before[0] + 1);
}

#[test]
fn unknown_websites_foreign_hosts_and_referrer_spam_are_dropped_and_not_stored() {
    let t = tracked(&[]);
    let site = t.site.as_str();
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "a website that does not exist",
            pageview(&unknown, "https://example.com/"),
            "unknown-website",
        ),
        (
            "an event of a website that does not exist",
            json!({"type": "event", "websiteId": unknown, "url": "https://example.com/", "name": "Signup"}),
            "unknown-website",
        ),
        (
            "a foreign host",
            pageview(site, "https://evil.test/copied-snippet"),
            "hostname",
        ),
        (
            "a host that only ends like the domain",
            pageview(site, "https://notexample.com/"),
            "hostname",
        ),
        (
            "the domain as a subdomain of a foreign host",
            pageview(site, "https://example.com.evil.test/"),
            "hostname",
        ),
        (
            "an event on a foreign host",
            json!({"type": "event", "websiteId": site, "url": "https://evil.test/", "name": "Signup"}),
            "hostname",
        ),
        (
            "a heartbeat on a foreign host",
            json!({"type": "heartbeat", "websiteId": site, "url": "https://evil.test/"}),
            "hostname",
        ),
        (
            "a spam referrer",
            json!({"type": "pageview", "websiteId": site, "url": "https://example.com/",
                   "referrer": "https://semalt.com/crawler"}),
            "spam",
        ),
        (
            "a subdomain of a spam referrer",
            json!({"type": "pageview", "websiteId": site, "url": "https://example.com/",
                   "referrer": "http://www.darodar.com/"}),
            "spam",
        ),
    ];
    let before = totals(&t.sb);
    for (what, body, reason) in &cases {
        assert_dropped(collect(&t.server, body, &fresh_ip(), CHROME), reason, what);
        assert_eq!(totals(&t.sb), before, "{what}: nothing stored");
    }

    // The domain itself, `www.` and other subdomains are the site's.
    for url in [
        "https://example.com/",
        "http://www.example.com/a",
        "https://blog.example.com/b",
        "https://EXAMPLE.com./c",
    ] {
        assert_stored(
            collect(&t.server, &pageview(site, url), &fresh_ip(), CHROME),
            url,
        );
    }
    let hosts: Vec<(String, String)> = pageviews(&t.sb)
        .into_iter()
        .map(|p| (p.hostname, p.path))
        .collect();
    assert_eq!(
        hosts,
        [
            ("example.com".into(), "/".into()),
            ("www.example.com".into(), "/a".into()),
            ("blog.example.com".into(), "/b".into()),
            ("example.com".into(), "/c".into()),
        ]
    );
}

#[test]
fn app_and_overlong_referrers_keep_the_event() {
    let t = tracked(&[]);
    let long_readable = format!("https://news.example.org/{}", "a".repeat(3_000));
    let long_unreadable = "x".repeat(3_000);
    let cases = [
        (
            "android-app://com.google.android.gm/",
            Some("com.google.android.gm"),
        ),
        (long_readable.as_str(), Some("news.example.org")),
        (long_unreadable.as_str(), None),
        ("about:blank", None),
    ];
    for (referrer, _) in &cases {
        let body = json!({"type": "pageview", "websiteId": t.site,
                          "url": "https://example.com/landing", "referrer": referrer});
        assert_stored(
            collect(&t.server, &body, &fresh_ip(), CHROME),
            &referrer[..referrer.len().min(60)],
        );
    }
    assert_eq!(count(&t.sb, "pageviews"), cases.len() as i64);
    let got: Vec<Option<String>> = visits(&t.sb).into_iter().map(|v| v.referrer).collect();
    let want: Vec<Option<String>> = cases
        .iter()
        .map(|(_, host)| host.map(str::to_string))
        .collect();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------------------------
// Bots (SPEC 3.2)

#[test]
fn crawler_user_agents_are_dropped_and_browsers_are_stored() {
    let t = tracked(&[]);
    let bots = fixture_lines(include_str!("fixtures/bot-user-agents.txt"));
    let browsers = fixture_lines(include_str!("fixtures/browser-user-agents.txt"));
    assert!(bots.len() >= 50, "{} bot User-Agents", bots.len());
    assert!(
        browsers.len() >= 50,
        "{} browser User-Agents",
        browsers.len()
    );
    let page = pageview(&t.site, "https://example.com/");

    let before = totals(&t.sb);
    for ua in &bots {
        assert_dropped(collect(&t.server, &page, &fresh_ip(), ua), "bot", ua);
    }
    assert_dropped(
        collect(&t.server, &page, &fresh_ip(), ""),
        "bot",
        "an empty User-Agent",
    );
    let resp = collector()
        .post(t.server.url("/api/collect"))
        .header("content-type", "text/plain")
        .header("x-forwarded-for", fresh_ip())
        .body(page.to_string())
        .send()
        .unwrap();
    assert_dropped(resp, "bot", "no User-Agent header");
    // A bot's event or heartbeat is dropped the same way.
    for kind in ["event", "heartbeat"] {
        let body = json!({"type": kind, "websiteId": t.site, "url": "https://example.com/",
                          "name": "Signup"});
        assert_dropped(collect(&t.server, &body, &fresh_ip(), bots[0]), "bot", kind);
    }
    assert_eq!(totals(&t.sb), before, "no bot stored anything");

    for ua in &browsers {
        assert_stored(collect(&t.server, &page, &fresh_ip(), ua), ua);
    }
    assert_eq!(count(&t.sb, "pageviews"), browsers.len() as i64);
    let stored = visits(&t.sb);
    assert_eq!(stored.len(), browsers.len(), "one visit per address");
    for (v, ua) in stored.iter().zip(&browsers) {
        assert!(v.browser.is_some() && v.os.is_some(), "{ua}: {v:?}");
        assert!(
            matches!(v.device.as_deref(), Some("desktop" | "mobile" | "tablet")),
            "{ua}: {v:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What is stored (SPEC 3.2)

#[test]
fn a_pageview_stores_its_page_source_setup_and_country() {
    let t = tracked(&[]);
    let body = json!({
        "type": "pageview",
        "websiteId": t.site,
        "url": "https://example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring&utm_term=plans&utm_content=top&plan=pro#compare",
        "referrer": "https://www.google.com/search?q=jetrack",
        "screenWidth": 1440,
        "language": "en-US",
    });
    // 81.2.69.142 (Andrews & Arnold) is GB in the embedded database (see src/ingest/geo.rs).
    assert_stored(collect(&t.server, &body, "81.2.69.142", CHROME), "pageview");
    // An event in the same visit, with props kept as text.
    let event = json!({"type": "event", "websiteId": t.site, "url": "https://example.com/pricing",
                       "name": "Signup", "props": {"plan": "pro", "seats": 3, "trial": true}});
    assert_stored(collect(&t.server, &event, "81.2.69.142", CHROME), "event");

    let pv = pageviews(&t.sb);
    assert_eq!(pv.len(), 1);
    assert_eq!(
        (pv[0].hostname.as_str(), pv[0].path.as_str()),
        ("example.com", "/pricing")
    );
    let ev = events(&t.sb);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].name, "Signup");
    assert_eq!(
        ev[0].props,
        json!({"plan": "pro", "seats": "3", "trial": "true"})
    );
    assert_eq!(ev[0].visit, pv[0].visit, "one visit");
    let v = visits(&t.sb);
    assert_eq!(v.len(), 1);
    let v = &v[0];
    assert_eq!((v.pageviews, v.events), (1, 1));
    assert_eq!(v.entry.as_deref(), Some("/pricing"));
    assert_eq!(v.exit.as_deref(), Some("/pricing"));
    assert_eq!(v.hostname.as_deref(), Some("example.com"));
    assert_eq!(v.referrer.as_deref(), Some("google.com"));
    assert_eq!(v.utm_source.as_deref(), Some("newsletter"));
    assert_eq!(v.utm_medium.as_deref(), Some("email"));
    assert_eq!(v.utm_campaign.as_deref(), Some("spring"));
    assert_eq!(v.utm_term.as_deref(), Some("plans"));
    assert_eq!(v.utm_content.as_deref(), Some("top"));
    assert_eq!(v.browser.as_deref(), Some("Chrome"));
    assert_eq!(v.os.as_deref(), Some("Linux"));
    assert_eq!(v.device.as_deref(), Some("desktop"));
    assert_eq!(v.screen.as_deref(), Some("xl"));
    assert_eq!(v.language.as_deref(), Some("en-US"));
    assert_eq!(v.country.as_deref(), Some("GB"));

    // Nothing of the query string, the full User-Agent or the address is kept as a string.
    let conn = common::ingest::db(&t.sb);
    let strings: Vec<String> = conn
        .prepare("SELECT value FROM strings")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for s in &strings {
        assert!(!s.contains('?') && !s.contains('#'), "{s}");
        assert!(!s.contains("81.2.69.142") && s != CHROME, "{s}");
    }

    // Self-referrals (the site's domain, `www.` or a subdomain) count as direct.
    for referrer in [
        "https://example.com/",
        "https://www.example.com/blog",
        "https://blog.example.com/post",
    ] {
        let body = json!({"type": "pageview", "websiteId": t.site,
                          "url": "https://example.com/next", "referrer": referrer});
        assert_stored(collect(&t.server, &body, &fresh_ip(), CHROME), referrer);
    }
    let v = visits(&t.sb);
    assert_eq!(v.len(), 4);
    for visit in &v[1..] {
        assert_eq!(visit.referrer, None, "{visit:?}");
        assert_eq!(visit.utm_source, None, "{visit:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The per-visitor limit (SPEC 3.2)

#[test]
fn the_per_visitor_limit_answers_429_with_retry_after_and_stores_what_got_202() {
    let t = tracked(&["--ingest-rate-limit", "5"]);
    let page = pageview(&t.site, "https://example.com/");
    let ip = fresh_ip();
    let (mut accepted, mut limited) = (0, 0);
    let started = Instant::now();
    for _ in 0..20 {
        let resp = collect(&t.server, &page, &ip, CHROME);
        match resp.status().as_u16() {
            202 => {
                assert_stored(resp, "within the limit");
                accepted += 1;
            }
            429 => {
                let retry = header(&resp, "retry-after")
                    .expect("Retry-After")
                    .to_string();
                assert!(
                    retry.parse::<u64>().is_ok_and(|s| s >= 1),
                    "Retry-After {retry:?}"
                );
                assert_eq!(cors(&resp), Some("*"));
                let (status, body) = envelope(resp);
                assert_eq!(status, 429, "{body}");
                limited += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    let elapsed = started.elapsed();
    // A burst of 5, then 5 a second: at most 5 + 5 per elapsed second pass.
    let allowed = 5 + (elapsed.as_secs_f64() * 5.0).ceil() as i32;
    assert!(accepted >= 5, "the first five pass: {accepted}");
    assert!(
        accepted <= allowed,
        "{accepted} accepted in {elapsed:?}, at most {allowed}"
    );
    assert!(
        limited > 0,
        "{accepted} accepted, none limited in {elapsed:?}"
    );
    assert_eq!(accepted + limited, 20);

    // The limit is per visitor, not for the endpoint: 20 addresses at once all pass.
    for _ in 0..20 {
        assert_stored(
            collect(&t.server, &page, &fresh_ip(), CHROME),
            "one request per address",
        );
        accepted += 1;
    }
    // Another address, or the same address with another browser, is another visitor.
    for (other_ip, ua) in [(fresh_ip(), CHROME), (ip.clone(), FIREFOX)] {
        for _ in 0..5 {
            assert_stored(collect(&t.server, &page, &other_ip, ua), "another visitor");
            accepted += 1;
        }
    }
    assert_eq!(count(&t.sb, "pageviews"), i64::from(accepted));
    assert_eq!(visits(&t.sb).len(), 23, "23 visitors");
}

// ---------------------------------------------------------------------------------------------
// /metrics (SPEC 7.3)

#[test]
fn metrics_count_exactly_what_was_accepted_and_dropped() {
    let t = tracked(&["--metrics-listen", "127.0.0.1:0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.server.stdout().contains("metrics on http://") {
        assert!(Instant::now() < deadline, "{}", t.server.stdout());
        std::thread::sleep(Duration::from_millis(20));
    }
    let metrics = metrics_url(&t.server);
    assert!(metrics.ends_with("/metrics"), "{metrics}");
    assert_ne!(metrics, t.server.url("/metrics"), "a listener of its own");
    let site = t.site.as_str();
    let bot = fixture_lines(include_str!("fixtures/bot-user-agents.txt"))[0];
    let unknown = uuid::Uuid::new_v4().to_string();

    let mut sent = 0;
    let mut ips = Vec::new();
    for i in 0..7 {
        let ip = fresh_ip();
        let page = pageview(site, &format!("https://example.com/p{i}"));
        assert_stored(collect(&t.server, &page, &ip, CHROME), "pageview");
        ips.push(ip);
        sent += 1;
    }
    for ip in &ips[..3] {
        let body = json!({"type": "event", "websiteId": site, "url": "https://example.com/p0",
                          "name": "Signup"});
        assert_stored(collect(&t.server, &body, ip, CHROME), "event");
        sent += 1;
    }
    for ip in &ips[..2] {
        let body = json!({"type": "heartbeat", "websiteId": site, "url": "https://example.com/p0"});
        assert_stored(collect(&t.server, &body, ip, CHROME), "heartbeat");
        sent += 1;
    }
    let drops: Vec<(Value, &str, &str)> = vec![
        (pageview(site, "https://example.com/"), bot, "bot"),
        (pageview(site, "https://example.com/"), bot, "bot"),
        (
            json!({"type": "event", "websiteId": site, "url": "https://example.com/", "name": "x"}),
            bot,
            "bot",
        ),
        (pageview(site, "https://example.com/"), "", "bot"),
        (
            pageview(&unknown, "https://example.com/"),
            CHROME,
            "unknown-website",
        ),
        (
            pageview(&unknown, "https://example.com/"),
            CHROME,
            "unknown-website",
        ),
        (pageview(site, "https://evil.test/"), CHROME, "hostname"),
        (
            json!({"type": "pageview", "websiteId": site, "url": "https://example.com/",
                   "referrer": "https://semalt.com/"}),
            CHROME,
            "spam",
        ),
    ];
    let before = totals(&t.sb);
    for (body, ua, reason) in &drops {
        assert_dropped(collect(&t.server, body, &fresh_ip(), ua), reason, reason);
        sent += 1;
    }
    assert_eq!(totals(&t.sb), before);
    // Refused requests are neither accepted nor dropped.
    let resp = collect_raw(&t.server, "{", &fresh_ip(), CHROME);
    assert_eq!(resp.status(), 400);
    let resp = collector()
        .request(reqwest::Method::OPTIONS, t.server.url("/api/collect"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(sent, 20);
    assert_eq!(count(&t.sb, "pageviews"), 7);
    assert_eq!(count(&t.sb, "events"), 3);

    let resp = collector().get(&metrics).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        header(&resp, "content-type").is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        resp.headers()
    );
    let text = resp.text().unwrap();
    for (sample, want) in [
        ("jetrack_ingest_accepted_total{type=\"pageview\"}", 7.0),
        ("jetrack_ingest_accepted_total{type=\"event\"}", 3.0),
        ("jetrack_ingest_accepted_total{type=\"heartbeat\"}", 2.0),
        ("jetrack_ingest_dropped_total{reason=\"bot\"}", 4.0),
        (
            "jetrack_ingest_dropped_total{reason=\"unknown-website\"}",
            2.0,
        ),
        ("jetrack_ingest_dropped_total{reason=\"hostname\"}", 1.0),
        ("jetrack_ingest_dropped_total{reason=\"spam\"}", 1.0),
        ("jetrack_ingest_dropped_total{reason=\"quota\"}", 0.0),
        (
            "jetrack_http_requests_total{route=\"/api/collect\",status=\"202\"}",
            20.0,
        ),
        (
            "jetrack_http_requests_total{route=\"/api/collect\",status=\"400\"}",
            1.0,
        ),
        (
            "jetrack_http_requests_total{route=\"/api/collect\",status=\"204\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric(&text, sample), want, "{sample}\n{text}");
    }
    for series in [
        "jetrack_ingest_accepted_total{type=\"pageview\"}",
        "jetrack_ingest_dropped_total{reason=\"quota\"}",
        "jetrack_ingest_queue_depth",
        "jetrack_db_size_bytes",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{series} "))),
            "{series} is rendered:\n{text}"
        );
    }
    assert!(!text.contains(site), "no per-site figures");

    // Never on the public listener.
    let resp = collector().get(t.server.url("/metrics")).send().unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        header(&resp, "content-type").is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        resp.headers()
    );
    assert!(!resp.text().unwrap().contains("jetrack_ingest"));
}

// ---------------------------------------------------------------------------------------------
// Country (SPEC 3.2, `--geoip-db`)

/// A minimal MaxMind DB writer (MaxMind DB File Format 2.0): an IPv6 search tree with 24-bit
/// records whose data are maps of maps and strings. Made-up test data, written at test time.
#[derive(Default)]
struct TestMmdb {
    nodes: Vec<[Rec; 2]>,
    data: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// A value of the data section.
enum V<'a> {
    Str(&'a str),
    U32(u32),
    Map(Vec<(&'a str, V<'a>)>),
}

fn encode(out: &mut Vec<u8>, v: &V) {
    match v {
        V::Str(s) => {
            assert!(s.len() < 29);
            out.push((2 << 5) | s.len() as u8);
            out.extend_from_slice(s.as_bytes());
        }
        V::U32(n) => {
            out.push((6 << 5) | 4);
            out.extend_from_slice(&n.to_be_bytes());
        }
        V::Map(pairs) => {
            assert!(pairs.len() < 29);
            out.push((7 << 5) | pairs.len() as u8);
            for (k, v) in pairs {
                encode(out, &V::Str(k));
                encode(out, v);
            }
        }
    }
}

impl TestMmdb {
    fn new() -> TestMmdb {
        TestMmdb {
            nodes: vec![[Rec::Empty; 2]],
            data: Vec::new(),
        }
    }

    /// `net/len` (an IPv4 network is placed at ::a.b.c.d/96+len) → `record`.
    fn insert(&mut self, net: &str, len: u32, record: V) {
        let (bits, len) = match net.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), len + 96),
            std::net::IpAddr::V6(v6) => (u128::from(v6), len),
        };
        let offset = self.data.len();
        encode(&mut self.data, &record);
        let mut node = 0;
        for depth in 0..len {
            let bit = ((bits >> (127 - depth)) & 1) as usize;
            if depth == len - 1 {
                self.nodes[node][bit] = Rec::Data(offset);
            } else {
                node = match self.nodes[node][bit] {
                    Rec::Node(next) => next,
                    Rec::Empty => {
                        self.nodes.push([Rec::Empty; 2]);
                        let next = self.nodes.len() - 1;
                        self.nodes[node][bit] = Rec::Node(next);
                        next
                    }
                    Rec::Data(_) => panic!("overlapping networks"),
                };
            }
        }
    }

    fn write(&self, path: &Path) {
        let count = self.nodes.len();
        let mut out = Vec::new();
        for node in &self.nodes {
            for rec in node {
                let value = match *rec {
                    Rec::Empty => count,
                    Rec::Node(i) => i,
                    Rec::Data(offset) => count + 16 + offset,
                };
                out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
        out.push((7 << 5) | 9); // the metadata: a map of nine pairs
        let u16 = |out: &mut Vec<u8>, k: &str, n: u16| {
            encode(out, &V::Str(k));
            out.extend_from_slice(&[(5 << 5) | 2, (n >> 8) as u8, n as u8]);
        };
        u16(&mut out, "binary_format_major_version", 2);
        u16(&mut out, "binary_format_minor_version", 0);
        u16(&mut out, "ip_version", 6);
        u16(&mut out, "record_size", 24);
        encode(&mut out, &V::Str("node_count"));
        encode(&mut out, &V::U32(count as u32));
        encode(&mut out, &V::Str("build_epoch"));
        out.extend_from_slice(&[8, 2]); // uint64 (extended type 9), eight bytes
        out.extend_from_slice(&1_750_000_000_u64.to_be_bytes());
        encode(&mut out, &V::Str("database_type"));
        encode(&mut out, &V::Str("Jetrack-Test-Country"));
        encode(&mut out, &V::Str("description"));
        encode(&mut out, &V::Map(vec![("en", V::Str("made-up test data"))]));
        encode(&mut out, &V::Str("languages"));
        out.extend_from_slice(&[1, 4]); // an array (extended type 11) of one
        encode(&mut out, &V::Str("en"));
        std::fs::write(path, out).expect("write the test database");
    }
}

/// MaxMind's record layout: `{"country": {"iso_code": …}, "registered_country": …}`.
fn maxmind_country(code: &str) -> V<'_> {
    V::Map(vec![
        ("geoname_id", V::U32(1_861_060)),
        ("iso_code", V::Str(code)),
        ("names", V::Map(vec![("en", V::Str("Made-up"))])),
    ])
}

/// The one visit made by a pageview from `ip` with `ua`, read back.
fn country_of(t: &Tracked, ip: &str, ua: &str) -> Option<String> {
    let before = visits(&t.sb).len();
    let page = pageview(&t.site, "https://example.com/where");
    assert_stored(collect(&t.server, &page, ip, ua), ip);
    let v = visits(&t.sb);
    assert_eq!(v.len(), before + 1, "{ip} with {ua} starts a visit");
    v.last().unwrap().country.clone()
}

#[test]
fn countries_come_from_the_embedded_database_or_the_one_given_with_geoip_db() {
    let mut t = tracked(&[]);
    // Checked against the embedded data in src/ingest/geo.rs.
    assert_eq!(country_of(&t, "81.2.69.142", CHROME).as_deref(), Some("GB"));
    assert_eq!(country_of(&t, "80.156.0.1", CHROME).as_deref(), Some("DE"));
    assert_eq!(country_of(&t, "2003::1", CHROME).as_deref(), Some("DE"));
    assert_eq!(country_of(&t, "192.168.1.10", CHROME), None);

    let maxmind = t.sb.dir.path().join("maxmind-layout.mmdb");
    let mut db = TestMmdb::new();
    db.insert(
        "81.2.69.0",
        24,
        V::Map(vec![
            ("continent", V::Map(vec![("code", V::Str("AS"))])),
            ("country", maxmind_country("JP")),
            ("registered_country", maxmind_country("GB")),
        ]),
    );
    db.insert(
        "2003::",
        19,
        V::Map(vec![("registered_country", maxmind_country("NZ"))]),
    );
    db.write(&maxmind);
    let country_code = t.sb.dir.path().join("country-code-layout.mmdb");
    let mut db = TestMmdb::new();
    db.insert(
        "81.2.69.0",
        24,
        V::Map(vec![("country_code", V::Str("br"))]),
    );
    db.write(&country_code);

    // The same data dir, restarted with each file; a new User-Agent each time makes a new
    // visitor, so each pageview starts a visit of its own.
    let mut uas = [FIREFOX, SAFARI].into_iter();
    for (file, want_gb, want_de) in [
        (&maxmind, Some("JP"), Some("NZ")),
        (&country_code, Some("BR"), None),
    ] {
        let status = t.server.stop();
        assert!(status.success(), "{status}");
        t.server = Server::start(&t.sb, &["--geoip-db", file.to_str().unwrap()]);
        let ua = uas.next().unwrap();
        assert_eq!(
            country_of(&t, "81.2.69.142", ua).as_deref(),
            want_gb,
            "{}",
            file.display()
        );
        assert_eq!(
            country_of(&t, "2003::1", ua).as_deref(),
            want_de,
            "{}",
            file.display()
        );
        // Replaced, not added to: what the file does not know has no country.
        assert_eq!(country_of(&t, "80.156.0.1", ua), None, "{}", file.display());
    }
}

#[test]
fn serve_refuses_a_geoip_db_it_cannot_use_in_one_line_naming_the_flag() {
    let sb = Sandbox::new();
    let not_mmdb = sb.dir.path().join("not-a-database.mmdb");
    std::fs::write(&not_mmdb, "this is not a MaxMind database\n").unwrap();
    let missing = sb.dir.path().join("no-such-dir/GeoLite2-Country.mmdb");
    for path in [&missing, &not_mmdb] {
        let mut child = sb
            .cmd()
            .args(["serve", "--listen", "127.0.0.1:0", "--geoip-db"])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start jetrack");
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve started with --geoip-db {}", path.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{}", path.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].contains("--geoip-db"), "{stderr}");
        assert!(lines[0].contains(&path.display().to_string()), "{stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening on"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
