//! Security of accounts and sessions (SPEC 8): password storage, the session cookie, login
//! answers and limits, CSRF and origin checks, and the headers of HTML pages.

mod common;

use common::{PASSWORD, Sandbox, Server, client, envelope};
use reqwest::blocking::Response;
use rusqlite::Connection;
use serde_json::json;

fn session_cookie(resp: &Response) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.contains("jetrack_session="))
        .expect("a session cookie")
}

fn token_of(cookie: &str) -> String {
    cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

fn login(server: &Server, email: &str, password: &str, ip: &str) -> Response {
    client()
        .post(server.api("/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .unwrap()
}

#[test]
fn passwords_are_stored_as_argon2id_and_tokens_only_as_hashes() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    server.setup("owner@example.com");
    let resp = login(&server, "owner@example.com", PASSWORD, "198.51.100.1");
    let token = token_of(&session_cookie(&resp));
    let db = Connection::open(sb.db_path()).unwrap();
    let hash: String = db
        .query_row("SELECT password_hash FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
    let stored: Vec<Vec<u8>> = db
        .prepare("SELECT token_hash FROM sessions")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(stored.len(), 2);
    let expected = jetrack::auth::session::token_hash(&token).to_vec();
    assert!(
        stored.contains(&expected),
        "the SHA-256 of the token is stored"
    );
    assert!(stored.iter().all(|h| h.len() == 32));
    drop(db);
    let everything = [sb.db_path(), sb.data_dir().join("jetrack.db-wal")]
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .flatten()
        .collect::<Vec<u8>>();
    assert!(
        !everything.windows(64).any(|w| w == token.as_bytes()),
        "the raw session token is nowhere in the database files"
    );
}

#[test]
fn session_cookie_attributes_follow_the_public_url() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    server.setup("owner@example.com");
    let resp = login(&server, "owner@example.com", PASSWORD, "198.51.100.2");
    let cookie = session_cookie(&resp);
    let token = token_of(&cookie);
    assert!(cookie.starts_with("jetrack_session="), "{cookie}");
    assert_eq!(token.len(), 64);
    let attrs: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(
        attrs,
        ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=2592000"]
    );
    // A new token at every login.
    let again = token_of(&session_cookie(&login(
        &server,
        "owner@example.com",
        PASSWORD,
        "198.51.100.2",
    )));
    assert_ne!(token, again);
    drop(server);

    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--public-url", "https://stats.example.com"]);
    assert!(
        server
            .setup_url
            .as_deref()
            .unwrap()
            .starts_with("https://stats.example.com/setup?token=")
    );
    let resp = client()
        .post(server.api("/auth/setup"))
        .json(&json!({"token": server.setup_token(), "email": "a@b.co", "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookie = session_cookie(&resp);
    assert!(cookie.starts_with("__Host-jetrack_session="), "{cookie}");
    let attrs: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(
        attrs,
        [
            "Path=/",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=2592000",
            "Secure"
        ]
    );
    assert!(!cookie.contains("Domain"));
}

/// An https public URL gets `Strict-Transport-Security` on every answer (one year unless
/// `--hsts-max-age` says otherwise, 0 for none); a plain http one never does.
#[test]
fn https_public_urls_get_strict_transport_security() {
    let get = |server: &Server, path: &str| client().get(server.url(path)).send().unwrap();
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--public-url", "https://stats.example.com"]);
    for path in [
        "/",
        "/login",
        "/healthz",
        "/api/v1/auth/setup",
        "/js/jetrack.js",
        "/nope",
    ] {
        let resp = get(&server, path);
        assert_eq!(
            resp.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
    drop(server);
    let sb = Sandbox::new();
    let server = Server::start(
        &sb,
        &[
            "--public-url",
            "https://stats.example.com",
            "--hsts-max-age",
            "300",
        ],
    );
    assert_eq!(
        get(&server, "/login").headers()["strict-transport-security"],
        "max-age=300; includeSubDomains"
    );
    drop(server);
    for args in [
        &[
            "--public-url",
            "https://stats.example.com",
            "--hsts-max-age",
            "0",
        ][..],
        &[][..],
    ] {
        let sb = Sandbox::new();
        let server = Server::start(&sb, args);
        assert!(
            get(&server, "/login")
                .headers()
                .get("strict-transport-security")
                .is_none(),
            "{args:?}"
        );
    }
}

#[test]
fn the_old_cookie_is_refused_after_logout() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    server.setup("owner@example.com");
    let resp = login(&server, "owner@example.com", PASSWORD, "198.51.100.3");
    let cookie = session_cookie(&resp);
    let pair = cookie.split(';').next().unwrap().to_string();
    let (_, body) = envelope(resp);
    let csrf = body["data"]["csrfToken"].as_str().unwrap().to_string();
    let plain = reqwest::blocking::Client::new();
    let with_cookie = |path: &str| plain.get(server.api(path)).header("cookie", &pair);
    assert_eq!(with_cookie("/auth/session").send().unwrap().status(), 200);
    let resp = plain
        .post(server.api("/auth/logout"))
        .header("cookie", &pair)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _) = envelope(with_cookie("/auth/session").send().unwrap());
    assert_eq!(status, 401);
    let (status, _) = envelope(with_cookie("/account").send().unwrap());
    assert_eq!(status, 401);
}

#[test]
fn unknown_email_and_wrong_password_get_the_same_answer() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    server.setup("owner@example.com");
    let a = login(&server, "nobody@example.com", PASSWORD, "198.51.100.4");
    let b = login(
        &server,
        "owner@example.com",
        "wrong password!",
        "198.51.100.4",
    );
    assert_eq!(a.status(), 401);
    assert_eq!(b.status(), 401);
    assert!(a.headers().get("set-cookie").is_none());
    assert_eq!(a.text().unwrap(), b.text().unwrap());
}

#[test]
fn the_eleventh_login_attempt_in_a_minute_from_one_ip_gets_429() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    for i in 0..10 {
        let resp = login(
            &server,
            &format!("user{i}@example.com"),
            "wrong password!",
            "203.0.113.50",
        );
        assert_eq!(resp.status(), 401, "attempt {}", i + 1);
    }
    let resp = login(
        &server,
        "user10@example.com",
        "wrong password!",
        "203.0.113.50",
    );
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let (_, body) = envelope(resp);
    assert_eq!(
        body["meta"]["message"],
        "Too many login attempts; try again later"
    );
    // Another address is not held back.
    let resp = login(
        &server,
        "user11@example.com",
        "wrong password!",
        "203.0.113.51",
    );
    assert_eq!(resp.status(), 401);
}

#[test]
fn state_changes_need_the_csrf_token_and_the_own_origin() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let s = server.setup("owner@example.com");
    let patch = || {
        s.client
            .patch(server.api("/account"))
            .json(&json!({"firstName": "Mallory"}))
    };
    let (status, body) = envelope(patch().send().unwrap());
    assert_eq!(status, 403);
    assert!(body["meta"]["message"].as_str().unwrap().contains("CSRF"));
    let (status, _) = envelope(
        patch()
            .header("x-csrf-token", "0".repeat(64))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403);
    let (status, body) = envelope(
        patch()
            .header("x-csrf-token", &s.csrf)
            .header("origin", "https://evil.example")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403);
    assert_eq!(
        body["meta"]["message"],
        "Cross-origin requests are not allowed"
    );
    let (status, _) = envelope(
        patch()
            .header("x-csrf-token", &s.csrf)
            .header("sec-fetch-site", "cross-site")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403);
    let (status, _) = envelope(
        s.client
            .post(server.api("/account/password"))
            .header("origin", "https://evil.example")
            .header("x-csrf-token", &s.csrf)
            .json(&json!({"currentPassword": PASSWORD, "newPassword": "owned by evil"}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403);
    // Nothing changed.
    let (_, body) = envelope(s.client.get(server.api("/account")).send().unwrap());
    assert_eq!(body["data"]["firstName"], "Ada");
    server.login("owner@example.com", PASSWORD);
    // The same request from the own origin with the token goes through.
    let (status, _) = envelope(
        patch()
            .header("x-csrf-token", &s.csrf)
            .header("origin", &server.base)
            .header("sec-fetch-site", "same-origin")
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
}

/// With `--public-url`, a state change must come from that origin, whatever `Host` the
/// request names (a forged `Host: evil.example` with `Origin: http://evil.example` is refused);
/// without it, both `localhost` and `127.0.0.1` work.
#[test]
fn the_origin_is_compared_with_the_public_url_when_one_is_given() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--public-url", "http://stats.example.com"]);
    let s = server.setup("owner@example.com");
    let patch = |host: &str, origin: &str| {
        let (status, body) = envelope(
            s.client
                .patch(server.api("/account"))
                .header("host", host)
                .header("origin", origin)
                .header("x-csrf-token", &s.csrf)
                .json(&json!({"firstName": "Ada"}))
                .send()
                .unwrap(),
        );
        (status, body["meta"]["message"].clone())
    };
    assert_eq!(
        patch("evil.example", "http://evil.example"),
        (403, json!("Cross-origin requests are not allowed"))
    );
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let own = format!("127.0.0.1:{port}");
    assert_eq!(patch(&own, &format!("http://{own}")).0, 403);
    assert_eq!(patch(&own, "http://stats.example.com").0, 200);
    drop(server);

    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let s = server.setup("owner@example.com");
    let port = server.base.rsplit(':').next().unwrap().to_string();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let resp = s
            .client
            .patch(server.api("/account"))
            .header("host", &host)
            .header("origin", format!("http://{host}"))
            .header("x-csrf-token", &s.csrf)
            .json(&json!({"firstName": "Ada"}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{host}");
    }
}

/// HTTP/1.1 requires exactly one Host header: none or two → 400 before any route runs.
#[test]
fn requests_without_one_host_header_are_refused() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let raw = |request: String| {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
    };
    for path in ["/healthz", "/api/v1/auth/setup", "/login"] {
        let none = raw(format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(none.starts_with("HTTP/1.1 400 "), "{path}: {none}");
        assert!(none.contains("one Host header"), "{none}");
        let two = raw(format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        ));
        assert!(two.starts_with("HTTP/1.1 400 "), "{path}: {two}");
        let one = raw(format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ));
        assert!(one.starts_with("HTTP/1.1 200 "), "{path}: {one}");
    }
    // HTTP/1.0 may leave Host out.
    let old = raw("GET /healthz HTTP/1.0\r\n\r\n".to_string());
    assert!(
        old.starts_with("HTTP/1.0 200 ") || old.starts_with("HTTP/1.1 200 "),
        "{old}"
    );
}

#[test]
fn html_pages_carry_the_security_headers() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let c = client();
    for page in ["/", "/login", "/settings", "/setup", "/no-such-page"] {
        let resp = c.get(server.url(page)).send().unwrap();
        let h = resp.headers();
        assert_eq!(
            h["content-security-policy"],
            "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            "{page}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff", "{page}");
        let referrer = if page == "/setup" {
            "no-referrer"
        } else {
            "strict-origin-when-cross-origin"
        };
        assert_eq!(h["referrer-policy"], referrer, "{page}");
        assert!(h.get("access-control-allow-origin").is_none());
        if page != "/no-such-page" {
            assert_eq!(h["cache-control"], "no-store", "{page}");
        }
    }
    let resp = c.get(server.api("/auth/setup")).send().unwrap();
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn slow_clients_are_cut_off_after_the_header_timeout() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = sock.read_to_end(&mut buf);
    let waited = started.elapsed().as_secs_f64();
    assert!((9.0..15.0).contains(&waited), "closed after {waited:.1} s");
}

#[test]
fn an_email_with_five_failures_must_wait_before_the_next_try() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    server.setup("owner@example.com");
    for i in 0..5 {
        // Different addresses, so only the per-email rule can refuse.
        let resp = login(
            &server,
            "owner@example.com",
            "wrong password!",
            &format!("198.51.100.{}", 60 + i),
        );
        assert_eq!(resp.status(), 401, "failure {}", i + 1);
    }
    for email in ["owner@example.com", "OWNER@example.com"] {
        let resp = login(&server, email, PASSWORD, "198.51.100.70");
        assert_eq!(resp.status(), 429, "even the right password waits");
        assert_eq!(resp.headers()["retry-after"], "1");
    }
    // The same for an email no account has: the wait reveals nothing.
    for i in 0..5 {
        login(
            &server,
            "nobody@example.com",
            "wrong password!",
            &format!("198.51.100.{}", 80 + i),
        );
    }
    assert_eq!(
        login(&server, "nobody@example.com", "x", "198.51.100.90").status(),
        429
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        login(&server, "owner@example.com", PASSWORD, "198.51.100.70").status(),
        200
    );
}

/// Someone who floods an email with wrong passwords from ever new addresses makes that email
/// wait, but a browser that logged in to the account before (its device cookie) keeps logging
/// in; without that cookie, even the right password still waits, and a remembered browser
/// that guesses wrong five times is no longer let through.
#[test]
fn a_known_browser_keeps_logging_in_while_its_email_is_flooded() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    server.setup("owner@example.com");
    let owner = client();
    let owner_login_from = |ip: &str, password: &str| {
        owner
            .post(server.api("/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "owner@example.com", "password": password}))
            .send()
            .unwrap()
    };
    let owner_login = |password: &str| owner_login_from("192.0.2.10", password);
    let first = owner_login(PASSWORD);
    assert_eq!(first.status(), 200);
    let device = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("jetrack_device="))
        .expect("a device cookie");
    assert!(
        device.contains("; Path=/api/v1/auth/login; HttpOnly; SameSite=Strict; Max-Age=15552000"),
        "{device}"
    );
    let stored: i64 = Connection::open(sb.db_path())
        .unwrap()
        .query_row("SELECT count(*) FROM login_devices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 1);
    assert!(
        !std::fs::read(sb.db_path())
            .unwrap()
            .windows(64)
            .any(|w| w == token_of(&device).as_bytes()),
        "only the device token's hash is stored"
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let stop = stop.clone();
        let url = server.api("/auth/login");
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let resp = reqwest::blocking::Client::new()
                    .post(&url)
                    .header("x-forwarded-for", format!("198.51.{}.{}", n / 250, n % 250))
                    .json(&json!({"email": "owner@example.com", "password": "a wrong guess"}))
                    .send()
                    .unwrap();
                statuses.push(resp.status().as_u16());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            statuses
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    for i in 0..6 {
        let resp = owner_login(PASSWORD);
        assert_eq!(
            resp.status(),
            200,
            "owner's login {} during the flood",
            i + 1
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Guessing stays as slow as before: the right password from a browser without the
    // device cookie still waits.
    let stranger = login(&server, "owner@example.com", PASSWORD, "203.0.113.50");
    assert_eq!(stranger.status(), 429);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = attacker.join().unwrap();
    // Five free guesses, then waits of 0.25, 0.5, 1 s… (about 3 s of flood: at most 8).
    assert!(
        statuses.iter().filter(|s| **s == 401).count() <= 8,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s == 429).count() > 10,
        "{statuses:?}"
    );

    // A stolen device cookie buys five guesses, then the browser waits like any other.
    for _ in 0..5 {
        assert_eq!(
            owner_login_from("192.0.2.99", "a wrong guess").status(),
            401
        );
    }
    assert_eq!(owner_login_from("192.0.2.99", PASSWORD).status(), 429);
}

/// Re-authentication (the current password of a password change) is limited like a login:
/// after five wrong passwords the session waits, even with the right one.
#[test]
fn wrong_current_passwords_are_limited_like_logins() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup("owner@example.com");
    let change = |current: &str| {
        session
            .client
            .post(server.api("/account/password"))
            .header("x-csrf-token", &session.csrf)
            .json(&json!({"currentPassword": current, "newPassword": "a brand new password"}))
            .send()
            .unwrap()
    };
    for i in 0..5 {
        let (status, body) = envelope(change("not the password"));
        assert_eq!(status, 400, "attempt {}", i + 1);
        assert_eq!(
            body["meta"]["errors"],
            json!(["currentPassword: is incorrect"])
        );
    }
    let resp = change(PASSWORD);
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let (_, body) = envelope(resp);
    assert_eq!(
        body["meta"]["message"],
        "Too many password attempts; try again later"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(change(PASSWORD).status(), 200);
    // The address's budget counts these too: 10 attempts a minute.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(change("not the password").status().as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[test]
fn repeated_bad_session_cookies_block_the_address_too() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--auth-fail-limit", "3"]);
    let plain = reqwest::blocking::Client::new();
    let bad = format!("jetrack_session={}", "a".repeat(64));
    let get = |cookie: Option<&str>| {
        let mut req = plain
            .get(server.api("/auth/session"))
            .header("x-forwarded-for", "203.0.113.200");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().unwrap().status()
    };
    for _ in 0..3 {
        assert_eq!(get(Some(&bad)), 401);
    }
    assert_eq!(get(Some(&bad)), 429);
    assert_eq!(get(None), 401, "no credential: still 401");
}

#[test]
fn an_api_key_is_no_session() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let s = server.setup("owner@example.com");
    let key = common::api_key(&server, &s);
    for (method, path) in [("GET", "/auth/session"), ("POST", "/auth/logout")] {
        let resp = client()
            .request(method.parse().unwrap(), server.api(path))
            .header("x-api-key", &key)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
    }
}

#[test]
fn a_body_that_trickles_in_is_cut_off() {
    use std::io::{Read, Write};
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .unwrap();
    let started = std::time::Instant::now();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let waited = started.elapsed().as_secs_f64();
    assert!(
        (14.0..25.0).contains(&waited),
        "answered after {waited:.1} s"
    );
}
