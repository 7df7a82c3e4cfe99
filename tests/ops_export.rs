//! Exports (SPEC 2.5, 6): `GET /websites/{id}/export` and `jetrack export` give the stored
//! events of a period as NDJSON or CSV; the NDJSON lines imported into a website of another
//! account give the same figures; a year of traffic streams without the server's memory
//! growing with it; bad input is refused naming each problem.

mod common;

use std::io::Read;

use common::cli::{assert_failure, assert_success, assert_usage, run, run_stdin};
use common::ingest::website;
use common::{PASSWORD, Sandbox, Server, api_key, client, envelope};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;
const UNLIMITED: &[&str] = &["--api-rate-limit", "1000000", "--api-rate-burst", "1000000"];

fn now_ms() -> i64 {
    jetrack::time::now_ms()
}

fn iso(ms: i64) -> String {
    jetrack::time::iso_ms(ms)
}

/// A local date of `zone`, `days` before today, as `YYYY-MM-DD`.
fn local_date(zone: &str, days_ago: i64) -> String {
    let tz = jiff::tz::TimeZone::get(zone).unwrap();
    let today = jetrack::stats::period::today(&tz, now_ms());
    today
        .checked_sub(jiff::Span::new().days(days_ago))
        .unwrap()
        .to_string()
}

/// A seeded trace for `domain`: visitors with several sessions over the last `days` days,
/// pageviews on a few hosts and paths, referrers, UTM tags, set attributes, events with props
/// (one with characters CSV must quote), heartbeats, and visitors known by address only.
fn trace(domain: &str, days: i64, seed: u64) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = now_ms();
    let hosts = [domain.to_string(), format!("blog.{domain}")];
    let paths = ["/", "/pricing", "/docs/start", "/blog/a%20b", "/caf%C3%A9"];
    let referrers = [
        None,
        Some("https://www.google.com/search?q=x"),
        Some("https://news.ycombinator.com/item"),
        Some("android-app://com.google.android.gm/"),
    ];
    let countries = ["DE", "US", "FR", "IN"];
    let devices = ["desktop", "mobile", "tablet"];
    let browsers = ["Firefox", "Chrome", "Safari"];
    let mut out = Vec::new();
    for who in 0..60 {
        let visitor = format!("visitor-{who}");
        let sessions = rng.random_range(1..4);
        for _ in 0..sessions {
            let mut at = now - rng.random_range(3_600_000..days * DAY);
            let host = &hosts[rng.random_range(0..hosts.len())];
            let utm = if rng.random_bool(0.3) {
                "?utm_source=newsletter&utm_medium=email&utm_campaign=spring%20sale"
            } else {
                ""
            };
            let referrer = referrers[rng.random_range(0..referrers.len())];
            let by_address = who % 10 == 9;
            for i in 0..rng.random_range(1..7) {
                let path = paths[rng.random_range(0..paths.len())];
                let mut ev = json!({
                    "type": "pageview",
                    "url": format!("https://{host}{path}{}", if i == 0 { utm } else { "" }),
                    "timestamp": iso(at),
                    "referrer": if i == 0 { referrer } else { None },
                    "language": "de-DE",
                    "screenWidth": 1280,
                });
                if by_address {
                    ev["ip"] = json!(format!("198.51.100.{who}"));
                    ev["userAgent"] = json!(common::ingest::CHROME);
                } else {
                    ev["visitorId"] = json!(visitor);
                    ev["country"] = json!(countries[who % countries.len()]);
                    ev["device"] = json!(devices[who % devices.len()]);
                    ev["browser"] = json!(browsers[who % browsers.len()]);
                    ev["os"] = json!("Linux");
                }
                out.push(ev.clone());
                if rng.random_bool(0.3) {
                    let mut event = ev.clone();
                    event["type"] = json!("event");
                    event["name"] = json!(if rng.random_bool(0.5) {
                        "Signup"
                    } else {
                        "Download"
                    });
                    let plan = ["pro", "free"][rng.random_range(0..2)];
                    event["props"] = json!({"plan": plan, "note": "a, \"quoted\"\nline"});
                    event["timestamp"] = json!(iso(at + 5_000));
                    out.push(event);
                }
                if rng.random_bool(0.5) {
                    let mut hb = ev.clone();
                    hb["type"] = json!("heartbeat");
                    hb["timestamp"] = json!(iso(at + 60_000));
                    out.push(hb);
                }
                at += rng.random_range(1..20) * MIN;
            }
        }
    }
    out
}

/// Imports `events` into `site` with `key`, 1,000 per request; answers how many were accepted.
fn import(server: &Server, key: &str, site: &str, events: &[Value]) -> usize {
    let mut accepted = 0;
    for chunk in events.chunks(1000) {
        let resp = client()
            .post(server.api(&format!("/websites/{site}/events")))
            .header("x-api-key", key)
            .json(&json!({ "events": chunk }))
            .send()
            .unwrap();
        let (status, body) = envelope(resp);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["dropped"], json!([]), "{body}");
        accepted += body["data"]["accepted"].as_u64().unwrap() as usize;
    }
    accepted
}

fn get(server: &Server, key: &str, path: &str) -> reqwest::blocking::Response {
    client()
        .get(server.api(path))
        .header("x-api-key", key)
        .send()
        .unwrap()
}

fn stats(server: &Server, key: &str, site: &str, route: &str, query: &str) -> Value {
    let (status, body) = envelope(get(
        server,
        key,
        &format!("/websites/{site}/stats/{route}?{query}"),
    ));
    assert_eq!(status, 200, "{route}?{query}: {body}\n{}", server.stderr());
    body["data"].clone()
}

/// A second account, made from the shell while the server runs, and its API key.
fn second_account(sb: &Sandbox, server: &Server, email: &str) -> String {
    let out = run_stdin(
        sb,
        &["users", "add", "--email", email, "--password-stdin"],
        PASSWORD,
    );
    assert_success(&out);
    let session = server.login(email, PASSWORD);
    api_key(server, &session)
}

#[test]
fn an_ndjson_export_imported_into_another_account_gives_the_same_figures_and_csv_matches_it() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, UNLIMITED);
    let session = server.setup("owner@example.com");
    let key = api_key(&server, &session);
    let zone = "Europe/Berlin";
    let site = website(&server, &session, "shop.example", zone);
    let events = trace("shop.example", 20, 7);
    let stored = import(&server, &key, &site, &events);
    assert_eq!(stored, events.len());
    let (from, to) = (local_date(zone, 25), local_date(zone, 0));
    let range = format!("from={from}&to={to}");

    // NDJSON: a download, one import event per line, in time order, no address or UA.
    let resp = get(
        &server,
        &key,
        &format!("/websites/{site}/export?{range}&format=ndjson"),
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    assert_eq!(
        resp.headers()["content-disposition"],
        format!("attachment; filename=\"jetrack-shop.example-{from}-{to}.ndjson\"").as_str()
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let text = resp.text().unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    let kinds = |kind: &str| lines.iter().filter(|l| l["type"] == kind).count();
    assert_eq!(kinds("pageview"), count("pageview"));
    assert_eq!(kinds("event"), count("event"));
    assert!(
        kinds("heartbeat") > 0 && kinds("heartbeat") <= count("heartbeat"),
        "a session's last activity after its last row is kept as one heartbeat"
    );
    let times: Vec<&str> = lines
        .iter()
        .map(|l| l["timestamp"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order");
    assert!(
        !text.contains("198.51.100.") && !text.contains("Mozilla"),
        "never the IP or UA"
    );
    for l in &lines {
        assert!(l.get("ip").is_none() && l.get("userAgent").is_none(), "{l}");
    }
    let first_signup = lines.iter().find(|l| l["name"] == "Signup").unwrap();
    // The line break was a control character of tracking data: removed when it was stored.
    assert_eq!(first_signup["props"]["note"], "a, \"quoted\"line");
    let tagged = lines
        .iter()
        .find(|l| {
            l["url"]
                .as_str()
                .unwrap()
                .contains("utm_campaign=spring+sale")
        })
        .expect("UTM tags ride in the URL");
    assert!(tagged["url"].as_str().unwrap().starts_with("https://"));

    // CSV: the same rows, a header, correct quoting.
    let resp = get(
        &server,
        &key,
        &format!("/websites/{site}/export?{range}&format=csv"),
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .ends_with(".csv\"")
    );
    let body = resp.text().unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, jetrack::export::CSV_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), lines.len());
    for (row, line) in rows.iter().zip(&lines) {
        assert_eq!(&row[0], line["timestamp"].as_str().unwrap());
        assert_eq!(&row[1], line["type"].as_str().unwrap());
        assert_eq!(&row[2], line["visitorId"].as_str().unwrap());
        assert!(row[3].parse::<i64>().is_ok(), "sessionId");
        assert_eq!(
            &row[3],
            line["sessionId"].as_str().unwrap(),
            "the same session id"
        );
        if line["type"] == "pageview" {
            let url = line["url"].as_str().unwrap();
            assert!(
                url.contains(&format!("{}{}", &row[4], &row[5])),
                "{url} {row:?}"
            );
        }
        if !row[19].is_empty() {
            let props: Value = serde_json::from_str(&row[19]).unwrap();
            assert_eq!(props, line["props"]);
        }
    }
    assert!(
        body.contains(r#"a, \""quoted\""line"#),
        "quotes doubled inside a quoted cell"
    );

    // The CLI writes the same NDJSON.
    let out = run(
        &sb,
        &["export", "--website", &site, "--from", &from, "--to", &to],
    );
    assert_success(&out);
    assert_eq!(out.stdout, text);

    // Re-imported into a website of another account: the same figures.
    let other_key = second_account(&sb, &server, "other@example.com");
    let other_session = server.login("other@example.com", PASSWORD);
    let copy = website(&server, &other_session, "shop.example", zone);
    assert_eq!(import(&server, &other_key, &copy, &lines), lines.len());
    let compare = |route: &str, query: &str| {
        let a = stats(&server, &key, &site, route, query);
        let b = stats(&server, &other_key, &copy, route, query);
        assert_eq!(a, b, "{route}?{query}");
        a
    };
    let main = compare("main", &range);
    assert!(main["totalPageviews"].as_u64().unwrap() > 100, "{main}");
    assert!(main["avgSessionDuration"].as_f64().unwrap() > 0.0, "{main}");
    compare("main", &format!("{range}&country=DE"));
    compare("main", &format!("{range}&path=/pricing"));
    compare("main", &format!("{range}&event=Signup"));
    compare("main", &format!("{range}&utmSource=newsletter"));
    compare("timeseries", &format!("{range}&interval=day"));
    for route in [
        "pages",
        "hostnames",
        "entry-pages",
        "exit-pages",
        "referrers",
        "utm-campaigns",
        "countries",
        "browsers",
        "devices",
        "languages",
        "screens",
        "events",
    ] {
        compare(route, &format!("{range}&limit=100"));
    }
    compare("event-props", &format!("{range}&event=Signup&prop=plan"));
    let ref_rows = compare("referrers", &format!("{range}&limit=100"));
    assert!(ref_rows.as_array().unwrap().len() >= 3, "{ref_rows}");
}

#[test]
fn bad_export_requests_are_refused_naming_each_problem() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, UNLIMITED);
    let session = server.setup("owner@example.com");
    let key = api_key(&server, &session);
    let site = website(&server, &session, "shop.example", "UTC");
    let bad = |query: &str| {
        let (status, body) = envelope(get(
            &server,
            &key,
            &format!("/websites/{site}/export?{query}"),
        ));
        assert_eq!(status, 400, "{query}: {body}");
        body["meta"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(bad("format=xml"), ["format: must be ndjson or csv"]);
    assert_eq!(bad("from=2025-02-30"), ["from: must be a date YYYY-MM-DD"]);
    assert_eq!(
        bad("from=2025-03-02&to=2025-03-01"),
        ["to: must not be before from"]
    );
    assert_eq!(
        bad("from=1900-01-01&to=2025-01-01"),
        ["from: the range may span at most 3660 days"]
    );
    assert_eq!(bad("timezone=Mars/Base"), ["timezone: unknown time zone"]);
    assert_eq!(
        bad("to=yesterday&format=pdf&limit=3"),
        [
            "limit: unknown query parameter",
            "to: must be a date YYYY-MM-DD",
            "format: must be ndjson or csv"
        ]
    );

    // Unknown website, another account's website, no credentials.
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = envelope(get(&server, &key, &format!("/websites/{unknown}/export")));
    assert_eq!(status, 404, "{body}");
    let other_key = second_account(&sb, &server, "other@example.com");
    let (status, body) = envelope(get(
        &server,
        &other_key,
        &format!("/websites/{site}/export"),
    ));
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["meta"]["message"],
        "You do not have access to this website"
    );
    let resp = client()
        .get(server.api(&format!("/websites/{site}/export")))
        .send()
        .unwrap();
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"jetrack\""
    );
    let (status, _) = envelope(resp);
    assert_eq!(status, 401);

    // An empty period is a header (CSV) or nothing (NDJSON), not an error.
    let resp = get(
        &server,
        &key,
        &format!("/websites/{site}/export?format=csv"),
    );
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().unwrap().trim_end(),
        jetrack::export::CSV_COLUMNS.join(",")
    );
    let resp = get(&server, &key, &format!("/websites/{site}/export"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "");

    // The command line: usage errors exit 2, bad values and unknown websites exit 1.
    let out = run(&sb, &["export", "--website", &site, "--format", "xml"]);
    assert_usage(&out, "xml");
    let out = run(&sb, &["export", "--website", &site, "--from", "2025-1-1"]);
    assert_failure(&out, "from: must be a date YYYY-MM-DD");
    let out = run(&sb, &["export", "--website", &unknown.to_string()]);
    assert_failure(&out, "no website with id");
    let out = run(&sb, &["export", "--website", &site, "--format", "csv"]);
    assert_success(&out);
    assert!(
        out.stdout
            .starts_with("timestamp,type,visitorId,sessionId,")
    );
}

/// The peak resident memory of a process so far, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[test]
fn a_years_export_streams_without_the_server_growing() {
    let sb = Sandbox::new();
    let out = run_stdin(
        &sb,
        &[
            "users",
            "add",
            "--email",
            "owner@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert_success(&out);
    let out = run(
        &sb,
        &[
            "websites",
            "add",
            "--email",
            "owner@example.com",
            "--name",
            "Big",
            "--domain",
            "big.example",
        ],
    );
    assert_success(&out);
    let site = out
        .stdout
        .split("data-website-id=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the snippet names the website")
        .to_string();
    // A year of generated traffic, written straight into the database.
    let conn = rusqlite::Connection::open(sb.db_path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let num: i64 = conn
        .query_row(
            "SELECT num FROM sites WHERE website_id = ?1",
            [&site],
            |r| r.get(0),
        )
        .unwrap();
    let opts = jetrack::generate::Options {
        pageviews: 200_000,
        days: 365,
        end_ms: now_ms() - 3_600_000,
        seed: 3,
        domain: "big.example".into(),
    };
    let summary = jetrack::generate::generate(&conn, num, &opts).unwrap();
    drop(conn);

    let server = Server::start(&sb, UNLIMITED);
    let session = server.login("owner@example.com", PASSWORD);
    let key = api_key(&server, &session);
    let pid = server.child.id();
    let (from, to) = (local_date("UTC", 366), local_date("UTC", 0));
    // Warm up the code paths and the reader pool with a small export.
    let warm = get(
        &server,
        &key,
        &format!("/websites/{site}/export?from={to}&to={to}"),
    );
    assert_eq!(warm.status(), 200);
    let _ = warm.bytes().unwrap();
    let before = vm_hwm_kib(pid);

    let started = std::time::Instant::now();
    let mut resp = get(
        &server,
        &key,
        &format!("/websites/{site}/export?from={from}&to={to}"),
    );
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers().get("content-length").is_none(),
        "streamed, not sized up front"
    );
    let (mut bytes, mut lines) = (0u64, 0u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    let after = vm_hwm_kib(pid);
    let grown = after.saturating_sub(before);
    eprintln!(
        "exported {lines} lines, {} MiB in {:.1} s; server peak RSS {} MiB before, {} MiB after (+{} KiB)",
        bytes >> 20,
        started.elapsed().as_secs_f64(),
        before >> 10,
        after >> 10,
        grown
    );
    assert!(
        lines >= summary.pageviews + summary.events,
        "{lines} lines for {summary:?}"
    );
    assert!(bytes > 50 << 20, "a big download: {bytes} bytes");
    assert!(
        grown < 16 * 1024,
        "the server's peak memory grew by {grown} KiB while sending {bytes} bytes"
    );
}

/// Tracking data is anyone's input: a formula planted through `/api/collect` (event name,
/// UTM values, language) or an import (browser, OS) comes out of the CSV export as text, not
/// as a formula, and control characters such as NUL never reach the database or an export.
#[test]
fn planted_formulas_and_control_characters_do_not_reach_a_spreadsheet() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, UNLIMITED);
    let session = server.setup("owner@example.com");
    let key = api_key(&server, &session);
    let site = website(&server, &session, "shop.example", "UTC");
    let url = "https://shop.example/?utm_source=%3DHYPERLINK(%22https%3A%2F%2Fevil.example%22)\
               &utm_medium=%2Bcmd&utm_campaign=-2%2B3&utm_term=%40SUM(A1)&utm_content=%09tab";
    let planted = [
        json!({"type": "pageview", "websiteId": site, "url": url, "language": "@lang"}),
        json!({"type": "event", "websiteId": site, "url": url, "name": "=1+1\u{0}\r\n",
               "props": {"k\u{0}ey": "=cmd|' /C calc'!A0\u{1b}"}}),
    ];
    for body in &planted {
        let resp = common::ingest::collect(&server, body, "203.0.113.7", common::ingest::CHROME);
        assert_eq!(resp.status(), 202);
        assert_eq!(common::ingest::dropped(&resp), None);
    }
    let imported = json!([{"type": "pageview", "url": "https://shop.example/x",
        "timestamp": iso(now_ms() - 60_000), "visitorId": "v", "browser": "+Browser\u{7}",
        "os": "-OS"}]);
    assert_eq!(
        import(&server, &key, &site, imported.as_array().unwrap()),
        1
    );

    let today = local_date("UTC", 0);
    let range = format!("from={today}&to={today}");
    let csv = get(
        &server,
        &key,
        &format!("/websites/{site}/export?{range}&format=csv"),
    )
    .text()
    .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 3, "{csv}");
    for row in &rows {
        for (name, cell) in header.iter().zip(row) {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{name} starts a formula: {cell:?}"
            );
            assert!(
                !cell.contains(char::is_control) || name == "props",
                "{name}: {cell:?}"
            );
        }
    }
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let event = rows.iter().find(|r| r[column("type")] == "event").unwrap();
    assert_eq!(event[column("name")], "'=1+1");
    assert_eq!(
        event[column("utmSource")],
        "'=HYPERLINK(\"https://evil.example\")"
    );
    assert_eq!(event[column("utmMedium")], "'+cmd");
    assert_eq!(event[column("utmCampaign")], "'-2+3");
    assert_eq!(event[column("utmTerm")], "'@SUM(A1)");
    assert_eq!(
        event[column("utmContent")],
        "tab",
        "a leading tab is a control character"
    );
    assert_eq!(event[column("language")], "'@lang");
    assert_eq!(
        serde_json::from_str::<Value>(&event[column("props")]).unwrap(),
        json!({"key": "=cmd|' /C calc'!A0"})
    );
    let import_row = rows
        .iter()
        .find(|r| r[column("browser")] != "Chrome")
        .unwrap();
    assert_eq!(import_row[column("browser")], "'+Browser");
    assert_eq!(import_row[column("os")], "'-OS");

    // NDJSON keeps the values themselves, without the control characters.
    let ndjson = get(
        &server,
        &key,
        &format!("/websites/{site}/export?{range}&format=ndjson"),
    )
    .text()
    .unwrap();
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let event = lines.iter().find(|l| l["type"] == "event").unwrap();
    assert_eq!(event["name"], "=1+1");
    assert_eq!(event["props"], json!({"key": "=cmd|' /C calc'!A0"}));
    assert!(
        event["url"].as_str().unwrap().contains("utm_medium=%2Bcmd"),
        "{event}"
    );
    assert!(!ndjson.contains("\\u0000"), "{ndjson}");
    let stored = common::ingest::events(&sb);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "=1+1");
    assert_eq!(stored[0].props, json!({"key": "=cmd|' /C calc'!A0"}));
}
