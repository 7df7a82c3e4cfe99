//! Operations (SPEC 6 `check`, 8.1): `jetrack check` finds a damaged copy of a real database
//! and passes a sound one; with `--log-format json` every log line of a server run that logs
//! in, uses API keys, tracks through a proxy, imports and exports is a JSON object, and none
//! holds a key, a session token, a password or a client address.

mod common;

use std::io::{Seek, SeekFrom, Write};

use common::cli::{assert_failure, assert_success, run, run_stdin};
use common::ingest::{CHROME, collector};
use common::{PASSWORD, Sandbox, Server, client, envelope};
use serde_json::{Value, json};

/// `jetrack [global…] users add --email owner@example.com` with the test's password.
fn add_owner(sb: &Sandbox, global: &[&str]) {
    let mut args = global.to_vec();
    args.extend([
        "users",
        "add",
        "--email",
        "owner@example.com",
        "--password-stdin",
    ]);
    assert_success(&run_stdin(sb, &args, PASSWORD));
}

/// A database with a month of generated traffic, made from the shell.
fn populated(sb: &Sandbox) {
    add_owner(sb, &[]);
    let out = run(
        sb,
        &[
            "websites",
            "add",
            "--email",
            "owner@example.com",
            "--name",
            "Site",
            "--domain",
            "site.example",
        ],
    );
    assert_success(&out);
    let conn = rusqlite::Connection::open(sb.db_path()).unwrap();
    let num: i64 = conn
        .query_row("SELECT max(num) FROM sites", [], |r| r.get(0))
        .unwrap();
    let opts = jetrack::generate::Options {
        pageviews: 20_000,
        days: 30,
        end_ms: jetrack::time::now_ms(),
        seed: 5,
        domain: "site.example".into(),
    };
    jetrack::generate::generate(&conn, num, &opts).unwrap();
    // Leave no WAL behind: the copy below is the whole database.
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

#[test]
fn check_fails_on_a_damaged_copy_and_passes_a_sound_one() {
    let sb = Sandbox::new();
    populated(&sb);
    let out = run(&sb, &["check"]);
    assert_success(&out);
    assert!(
        out.stdout.contains("ok   integrity check passed"),
        "{out:?}"
    );

    // A copy, checked sound, then with the headers of some b-tree pages overwritten.
    let copy = Sandbox::new();
    std::fs::create_dir_all(copy.data_dir()).unwrap();
    std::fs::copy(sb.db_path(), copy.db_path()).unwrap();
    assert_success(&run(&copy, &["check"]));

    let (page_size, root) = {
        let conn = rusqlite::Connection::open(copy.db_path()).unwrap();
        let size: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 'pageviews'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (size as u64, root as u64)
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(copy.db_path())
        .unwrap();
    let pages = file.metadata().unwrap().len() / page_size;
    assert!(pages > 50, "a real database: {pages} pages");
    let mut damaged = vec![root, pages / 3, pages / 2, pages * 2 / 3];
    damaged.retain(|&p| p > 1);
    for page in damaged {
        // Page numbers start at 1; the header of a b-tree page is its first bytes.
        let offset = (page - 1) * page_size;
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&[0xA5; 64]).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);

    let out = run(&copy, &["check"]);
    eprintln!("{}{}", out.stdout, out.stderr);
    assert_failure(&out, "integrity check failed");
    assert!(out.stderr.starts_with("error: check found"), "{out:?}");
    assert!(
        out.stdout.contains("FAIL integrity check failed"),
        "{out:?}"
    );
    // The original was not touched.
    assert_success(&run(&sb, &["check"]));
}

/// The value of the session cookie a login answer sets.
fn session_cookie(resp: &reqwest::blocking::Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("jetrack_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string()
}

#[test]
fn json_logs_are_json_and_hold_no_secret_or_client_address() {
    let sb = Sandbox::new();
    add_owner(&sb, &["--log-format", "json"]);
    let server = Server::start(
        &sb,
        &[
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--trusted-proxy",
            "127.0.0.1/32",
        ],
    );
    let bare = client();

    // A failed and a good login; the session's cookie and CSRF token.
    let resp = bare
        .post(server.api("/auth/login"))
        .json(&json!({"email": "owner@example.com", "password": "not the password 1"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = bare
        .post(server.api("/auth/login"))
        .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token = session_cookie(&resp);
    let csrf = resp.json::<Value>().unwrap()["data"]["csrfToken"]
        .as_str()
        .unwrap()
        .to_string();
    let cookie = format!("jetrack_session={token}");
    let resp = bare
        .post(server.api("/account/api-keys"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "logs"}))
        .send()
        .unwrap();
    let (status, body) = envelope(resp);
    assert_eq!(status, 201, "{body}");
    let key = body["data"]["key"].as_str().unwrap().to_string();

    // The key in use, and a wrong one.
    let with_key = |req: reqwest::blocking::RequestBuilder| req.header("x-api-key", &key);
    let resp = with_key(bare.post(server.api("/websites")))
        .json(&json!({"name": "Site", "domain": "site.example"}))
        .send()
        .unwrap();
    let (status, body) = envelope(resp);
    assert_eq!(status, 201, "{body}");
    let site = body["data"]["id"].as_str().unwrap().to_string();
    let wrong_key = format!("bj_live_{}", "ab".repeat(32));
    let resp = bare
        .get(server.api("/websites"))
        .header("authorization", format!("Bearer {wrong_key}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Tracking through the proxy: accepted, a bot, a malformed body.
    let addresses = ["203.0.113.7", "203.0.113.8", "203.0.113.9"];
    for (i, ip) in addresses.iter().enumerate() {
        let resp = collector()
            .post(server.url("/api/collect"))
            .header("content-type", "text/plain")
            .header("x-forwarded-for", format!("{ip}, 127.0.0.1"))
            .header("user-agent", CHROME)
            .body(
                json!({"type": "pageview", "websiteId": site,
                       "url": format!("https://site.example/page{i}?utm_source=x"),
                       "referrer": "https://www.google.com/"})
                .to_string(),
            )
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202);
    }
    let resp = collector()
        .post(server.url("/api/collect"))
        .header("x-forwarded-for", "203.0.113.10")
        .header(
            "user-agent",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
        )
        .body(
            json!({"type": "pageview", "websiteId": site, "url": "https://site.example/"})
                .to_string(),
        )
        .send()
        .unwrap();
    assert_eq!(resp.headers()["x-jetrack-dropped"], "bot");
    let resp = collector()
        .post(server.url("/api/collect"))
        .header("x-forwarded-for", "203.0.113.11")
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);

    // An import naming client addresses, an export by key and by session.
    let resp = with_key(bare.post(server.api(&format!("/websites/{site}/events"))))
        .json(&json!({"events": [
            {"type": "pageview", "url": "https://site.example/imported",
             "timestamp": jetrack::time::iso_ms(jetrack::time::now_ms() - 60_000),
             "ip": "203.0.113.50", "userAgent": CHROME},
            {"type": "pageview", "url": "https://site.example/bad", "timestamp": "yesterday",
             "ip": "203.0.113.51", "userAgent": CHROME},
        ]}))
        .send()
        .unwrap();
    let (status, body) = envelope(resp);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["accepted"], 1);
    let resp = with_key(bare.get(server.api(&format!("/websites/{site}/export?format=csv"))))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().unwrap();
    assert_eq!(csv.lines().count(), 5, "a header and 4 pageviews: {csv}");
    let resp = bare
        .get(server.api(&format!("/websites/{site}/export")))
        .header("cookie", &cookie)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.text().unwrap().contains("203.0.113."));
    let resp = bare
        .post(server.api("/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A command beside the server, logging as JSON too.
    let cli = run(
        &sb,
        &[
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "export",
            "--website",
            &site,
        ],
    );
    assert_success(&cli);
    let mut server = server;
    server.signal("TERM");
    assert!(server.wait().success());

    let secrets = [
        key.as_str(),
        wrong_key.as_str(),
        token.as_str(),
        csrf.as_str(),
        PASSWORD,
        "not the password 1",
        "203.0.113.",
    ];
    let stderr = server.stderr();
    let mut routes = Vec::new();
    for (source, text) in [("serve", stderr.as_str()), ("export", cli.stderr.as_str())] {
        for line in text.lines() {
            let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line) else {
                panic!("a {source} log line that is not a JSON object: {line}");
            };
            assert!(
                fields.contains_key("level") && fields.contains_key("timestamp"),
                "{line}"
            );
            if let Some(route) = fields.get("route").and_then(Value::as_str) {
                routes.push(route.to_string());
            }
            for secret in secrets {
                assert!(!line.contains(secret), "{source} logged {secret:?}: {line}");
            }
        }
    }
    for route in [
        "/auth/login",
        "/websites/{id}/events",
        "/websites/{id}/export",
        "/api/collect",
    ] {
        assert!(
            routes.iter().any(|r| r == route),
            "no access line for {route}: {routes:?}"
        );
    }
    // Standard output holds the command's result only: the address (no setup link, since an
    // account exists), and no secret either.
    let stdout = server.stdout();
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("Jetrack is listening on http://")),
        "{stdout}"
    );
    for secret in secrets {
        assert!(
            !stdout.contains(secret) && !cli.stdout.contains(secret),
            "{secret}"
        );
    }
}
