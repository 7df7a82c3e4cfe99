//! `/metrics` on `--metrics-listen` (SPEC 7.3) as Prometheus sees it: `promtool check metrics`
//! (Debian's `prometheus` package, installed by scripts/test.sh) accepts the text, and the
//! counters move by exactly what the test sent: requests by route template and status, their
//! latency histogram, imported events accepted and dropped by reason. The collect path's
//! counters and the 404 of `/metrics` on the public listener are in tests/ingest_collect.rs;
//! the text format itself in the unit tests of src/metrics.rs.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ingest::{CHROME, collector, metric, metrics_url, website};
use common::{Sandbox, Server, api_key, client, envelope};
use serde_json::{Value, json};

fn started() -> (Sandbox, Server, String, String, String) {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--metrics-listen", "127.0.0.1:0"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stdout().contains("metrics on http://") {
        assert!(Instant::now() < deadline, "{}", server.stdout());
        std::thread::sleep(Duration::from_millis(20));
    }
    let session = server.setup("owner@example.com");
    let key = api_key(&server, &session);
    let site = website(&server, &session, "shop.example.com", "UTC");
    let metrics = metrics_url(&server);
    (sb, server, key, site, metrics)
}

fn scrape(metrics: &str) -> String {
    let resp = collector().get(metrics).send().expect("scrape /metrics");
    assert_eq!(resp.status(), 200);
    resp.text().unwrap()
}

/// `promtool check metrics` on `text`: its exit status and what it said.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The change of every sample named in `samples` between two scrapes.
fn deltas(before: &str, after: &str, samples: &[&str]) -> Vec<(String, f64)> {
    samples
        .iter()
        .map(|s| (s.to_string(), metric(after, s) - metric(before, s)))
        .collect()
}

/// `GET /websites/{site}` with `X-API-Key: key`; the status.
fn get_website(server: &Server, key: &str, site: &str) -> u16 {
    client()
        .get(server.api(&format!("/websites/{site}")))
        .header("x-api-key", key)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn import(server: &Server, key: &str, site: &str, events: Value) -> Value {
    let resp = client()
        .post(server.api(&format!("/websites/{site}/events")))
        .header("x-api-key", key)
        .json(&json!({ "events": events }))
        .send()
        .unwrap();
    let (status, body) = envelope(resp);
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

#[test]
fn promtool_accepts_the_scrape_before_and_after_traffic() {
    let (_sb, server, key, site, metrics) = started();
    let (ok, said) = promtool(&scrape(&metrics));
    assert!(ok, "promtool check metrics on a fresh server:\n{said}");

    // Some of everything: API reads, errors, unknown routes, tracked and imported events.
    for _ in 0..3 {
        assert_eq!(get_website(&server, &key, &site), 200);
    }
    let resp = client().get(server.api("/account")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client().get(server.url("/no/such/page")).send().unwrap();
    assert_eq!(resp.status(), 404);
    let answer = import(
        &server,
        &key,
        &site,
        json!([{"type": "pageview", "url": "https://shop.example.com/", "timestamp": "2025-01-15T10:30:00.000Z", "visitorId": "v1"}]),
    );
    assert_eq!(answer["accepted"], 1, "{answer}");

    let text = scrape(&metrics);
    let (ok, said) = promtool(&text);
    assert!(ok, "promtool check metrics after traffic:\n{said}\n{text}");
    assert!(!text.contains(&site), "no per-site figures:\n{text}");
    assert!(!text.contains(&key), "no secrets:\n{text}");
}

#[test]
fn counters_move_by_what_the_test_sent() {
    let (_sb, server, key, site, metrics) = started();
    let route_site = "/websites/{id}";
    let route_events = "/websites/{id}/events";
    let route_health = "/healthz";
    let samples = [
        format!("jetrack_http_requests_total{{route=\"{route_site}\",status=\"200\"}}"),
        format!("jetrack_http_requests_total{{route=\"{route_site}\",status=\"401\"}}"),
        format!("jetrack_http_requests_total{{route=\"{route_events}\",status=\"200\"}}"),
        format!("jetrack_http_requests_total{{route=\"{route_health}\",status=\"200\"}}"),
        "jetrack_http_requests_total{route=\"(unmatched)\",status=\"404\"}".to_string(),
        format!("jetrack_http_request_duration_seconds_count{{route=\"{route_site}\"}}"),
        format!("jetrack_http_request_duration_seconds_count{{route=\"{route_events}\"}}"),
        "jetrack_ingest_accepted_total{type=\"pageview\"}".to_string(),
        "jetrack_ingest_accepted_total{type=\"event\"}".to_string(),
        "jetrack_ingest_dropped_total{reason=\"bot\"}".to_string(),
        "jetrack_ingest_dropped_total{reason=\"hostname\"}".to_string(),
        "jetrack_ingest_dropped_total{reason=\"invalid\"}".to_string(),
    ];
    let samples: Vec<&str> = samples.iter().map(String::as_str).collect();
    let before = scrape(&metrics);
    let commits_before = metric(&before, "jetrack_db_commit_duration_seconds_count");

    for _ in 0..4 {
        assert_eq!(get_website(&server, &key, &site), 200);
    }
    let unknown_key = format!("bj_live_{}", "0".repeat(64));
    for _ in 0..2 {
        assert_eq!(get_website(&server, &unknown_key, &site), 401);
    }
    for _ in 0..3 {
        assert_eq!(
            client()
                .get(server.url("/healthz"))
                .send()
                .unwrap()
                .status(),
            200
        );
    }
    for path in ["/nothing-here", "/api/v2/websites"] {
        assert_eq!(client().get(server.url(path)).send().unwrap().status(), 404);
    }
    let t = "2025-01-15T10:30:00.000Z";
    let answer = import(
        &server,
        &key,
        &site,
        json!([
            {"type": "pageview", "url": "https://shop.example.com/", "timestamp": t, "visitorId": "a"},
            {"type": "pageview", "url": "https://shop.example.com/pricing", "timestamp": t, "visitorId": "b"},
            {"type": "event", "name": "Signup", "url": "https://shop.example.com/signup", "timestamp": t, "visitorId": "a"},
            {"type": "pageview", "url": "https://elsewhere.test/", "timestamp": t, "visitorId": "c"},
            {"type": "pageview", "url": "https://shop.example.com/", "timestamp": t,
             "ip": "203.0.113.9", "userAgent": "curl/8.5.0"},
            {"type": "pageview", "url": "https://shop.example.com/", "timestamp": "yesterday", "visitorId": "d"},
        ]),
    );
    assert_eq!(answer["accepted"], 3, "{answer}");
    let reasons: Vec<&str> = answer["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(reasons.len(), 3, "{answer}");
    // A real browser's collect, so that the live path is counted too.
    let resp = collector()
        .post(server.url("/api/collect"))
        .header("user-agent", CHROME)
        .header("x-forwarded-for", "203.0.113.10")
        .header("content-type", "text/plain")
        .body(
            json!({"type": "pageview", "websiteId": site, "url": "https://shop.example.com/a"})
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 202);

    let after = scrape(&metrics);
    let moved = deltas(&before, &after, &samples);
    let want = [4.0, 2.0, 1.0, 3.0, 2.0, 6.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0];
    let expected: Vec<(String, f64)> = samples.iter().map(|s| s.to_string()).zip(want).collect();
    assert_eq!(moved, expected, "\n{after}");
    assert!(
        metric(&after, "jetrack_db_commit_duration_seconds_count") > commits_before,
        "the commits of the import and the collect are timed"
    );
    let (ok, said) = promtool(&after);
    assert!(ok, "{said}");
}
