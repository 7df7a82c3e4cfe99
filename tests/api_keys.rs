//! API keys (SPEC 1, 2.1, 2.2, 2.4, 6, 8.1) against the real server and executable: the
//! `/account/api-keys*` endpoints, authentication with both header styles, the same 401 for
//! every bad key, keys that stop working on the next request after a change (also from the
//! shell), secrets that never reach the disk or the logs, `lastUsedAt` written at most once a
//! minute, the 403 rules, the rate limits and their headers, and the audit log.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{PASSWORD, Sandbox, Server, Session, envelope};
use reqwest::Method;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

/// A rate high enough that ordinary tests never meet it.
const FAST: &[&str] = &["--api-rate-limit", "1000"];
const UNAUTHORIZED: &str = "Bearer realm=\"jetrack\"";
const SESSION_ONLY: &str =
    "API keys cannot manage API keys, the password or the audit log; use the dashboard";
const READ_ONLY: &str = "This API key is read-only";

// ---------------------------------------------------------------------------------------------
// Helpers

/// An answer read to the end: status, headers, the raw body and the parsed envelope.
struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header: {:?}", self.headers))
            .to_str()
            .unwrap()
    }

    fn errors(&self) -> Vec<String> {
        self.body["meta"]["errors"]
            .as_array()
            .expect("meta.errors")
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect()
    }

    fn message(&self) -> &str {
        self.body["meta"]["message"].as_str().expect("meta.message")
    }
}

/// Reads an answer and checks the envelope as `common::envelope` does.
fn reply(resp: Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().expect("body");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not a JSON envelope ({e}): {status} {text}"));
    assert_eq!(body["meta"]["status"], status, "meta.status: {text}");
    assert_eq!(body["success"], status < 400, "{text}");
    if status >= 400 {
        assert!(body["data"].is_null(), "{text}");
        assert!(body["meta"]["message"].is_string(), "{text}");
        assert!(body["meta"]["errors"].is_array(), "{text}");
    }
    Reply {
        status,
        headers,
        text,
        body,
    }
}

fn send(req: RequestBuilder) -> Reply {
    reply(req.send().expect("request"))
}

/// A client without cookies that always sends `X-Forwarded-For: ip`.
fn client_from(ip: &str) -> Client {
    let mut headers = HeaderMap::new();
    headers.insert("x-forwarded-for", HeaderValue::from_str(ip).unwrap());
    Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A request with `X-API-Key`.
fn with_key(c: &Client, server: &Server, method: Method, path: &str, key: &str) -> RequestBuilder {
    c.request(method, server.api(path)).header("x-api-key", key)
}

/// `GET /account` with `X-API-Key`.
fn account_with(server: &Server, key: &str, ip: &str) -> Reply {
    send(with_key(
        &client_from(ip),
        server,
        Method::GET,
        "/account",
        key,
    ))
}

fn session_get(server: &Server, s: &Session, path: &str) -> Reply {
    send(s.client.get(server.api(path)))
}

fn session_send(
    server: &Server,
    s: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut req = s
        .client
        .request(method, server.api(path))
        .header("x-csrf-token", &s.csrf);
    if let Some(body) = body {
        req = req.json(&body);
    }
    send(req)
}

/// Creates a key from the dashboard session; returns the secret and `data`.
fn create_key(server: &Server, s: &Session, body: Value) -> (String, Value) {
    let r = session_send(server, s, Method::POST, "/account/api-keys", Some(body));
    assert_eq!(r.status, 201, "{}", r.text);
    let secret = r.body["data"]["key"].as_str().expect("key").to_string();
    (secret, r.body["data"].clone())
}

fn list_keys(server: &Server, s: &Session) -> Vec<Value> {
    let r = session_get(server, s, "/account/api-keys");
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"].as_array().expect("a list").clone()
}

fn listed(server: &Server, s: &Session, id: &str) -> Value {
    list_keys(server, s)
        .into_iter()
        .find(|k| k["id"] == id)
        .unwrap_or_else(|| panic!("key {id} is not listed"))
}

fn is_key(s: &str) -> bool {
    s.len() == 72
        && s.starts_with("bj_live_")
        && s[8..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A well-formed key that nobody was given.
fn random_key() -> String {
    format!(
        "bj_live_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// `2025-01-15T10:30:00.000Z`.
fn is_iso_ms(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
        && s.parse::<jiff::Timestamp>().is_ok()
}

fn ms_of(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("a timestamp: {v}"));
    assert!(is_iso_ms(s), "ISO with ms and Z: {s}");
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Checks the fields of a key as the API shows it (without the secret).
fn assert_key_view(v: &Value) {
    let fields: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "id",
            "name",
            "prefix",
            "scope",
            "createdAt",
            "lastUsedAt",
            "expiresAt"
        ]),
        "{v}"
    );
    let id = uuid::Uuid::parse_str(v["id"].as_str().unwrap()).expect("a UUID");
    assert_eq!(id.get_version_num(), 4, "{v}");
    let prefix = v["prefix"].as_str().unwrap();
    assert_eq!(prefix.len(), 12, "{v}");
    assert!(prefix.starts_with("bj_live_"), "{v}");
    ms_of(&v["createdAt"]);
}

/// Runs the executable on the sandbox's data dir: exit code, stdout, stderr.
fn cli(sb: &Sandbox, args: &[&str]) -> (i32, String, String) {
    let out = sb
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run jetrack");
    (
        out.status.code().expect("an exit code"),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `users add` with the test password on stdin; creates and migrates the database.
fn add_user(sb: &Sandbox, email: &str) {
    use std::io::Write;
    let mut child = sb
        .cmd()
        .args(["users", "add", "--email", email, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "users add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn db(sb: &Sandbox) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(sb.db_path()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// The rate-limit headers of SPEC 2.2, checked against each other: (limit, remaining, reset).
fn rate(r: &Reply) -> (u64, u64, u64) {
    let num = |name: &str| -> u64 {
        r.header(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number: {}", r.header(name)))
    };
    let (limit, remaining, reset) = (
        num("x-ratelimit-limit"),
        num("x-ratelimit-remaining"),
        num("x-ratelimit-reset"),
    );
    assert_eq!(
        r.header("ratelimit-policy"),
        format!("\"default\";q={limit};w=60")
    );
    assert_eq!(
        r.header("ratelimit"),
        format!("\"default\";r={remaining};t={reset}")
    );
    (limit, remaining, reset)
}

// ---------------------------------------------------------------------------------------------
// A. The endpoints

#[test]
fn keys_are_created_listed_regenerated_and_revoked_from_a_session() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");

    // Defaults.
    let before = now_ms();
    let (k1, d1) = create_key(&server, &s, json!({}));
    let after = now_ms();
    assert!(is_key(&k1), "bj_live_ + 64 lower-case hex: {k1}");
    assert_eq!(k1.len(), 72);
    assert_eq!(d1["prefix"], &k1[..12]);
    assert_eq!(d1["name"], Value::Null);
    assert_eq!(d1["scope"], "full");
    assert_eq!(d1["lastUsedAt"], Value::Null);
    assert_eq!(d1["expiresAt"], Value::Null);
    let created = ms_of(&d1["createdAt"]);
    assert!(
        (before - 1000..=after + 1000).contains(&created),
        "createdAt is now: {d1}"
    );
    let mut shown = d1.clone();
    shown.as_object_mut().unwrap().remove("key");
    assert_key_view(&shown);

    // Name, scope, expiry.
    let (k2, d2) = create_key(
        &server,
        &s,
        json!({"name": "CI deploy", "scope": "read", "expiresInDays": 30}),
    );
    assert!(is_key(&k2));
    assert_ne!(k1, k2);
    assert_eq!(d2["prefix"], &k2[..12]);
    assert_eq!(d2["name"], "CI deploy");
    assert_eq!(d2["scope"], "read");
    assert_eq!(
        ms_of(&d2["expiresAt"]) - ms_of(&d2["createdAt"]),
        30 * 86_400_000,
        "expiresAt = createdAt + 30 days: {d2}"
    );
    // The limits of the ranges are accepted.
    let (_, d3) = create_key(
        &server,
        &s,
        json!({"name": "n".repeat(100), "scope": "full", "expiresInDays": 3650}),
    );
    assert_eq!(d3["name"], "n".repeat(100));
    assert_eq!(
        ms_of(&d3["expiresAt"]) - ms_of(&d3["createdAt"]),
        3650 * 86_400_000
    );
    let (_, d4) = create_key(
        &server,
        &s,
        json!({"expiresInDays": 1, "name": null, "scope": null}),
    );
    assert_eq!(d4["scope"], "full");
    assert_eq!(
        ms_of(&d4["expiresAt"]) - ms_of(&d4["createdAt"]),
        86_400_000
    );

    // The list: every key, never a secret.
    let r = session_get(&server, &s, "/account/api-keys");
    assert_eq!(r.status, 200);
    let list = r.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    for k in list {
        assert_key_view(k);
        assert!(k.get("key").is_none(), "{k}");
    }
    assert!(
        !r.text.contains(&k1[8..]) && !r.text.contains(&k2[8..]),
        "{}",
        r.text
    );
    assert_eq!(list[1]["id"], d2["id"]);
    assert_eq!(list[1]["name"], "CI deploy");
    assert_eq!(list[1]["expiresAt"], d2["expiresAt"]);
    assert_eq!(list[1]["createdAt"], d2["createdAt"]);

    // Regenerate keeps id, name, scope, createdAt and expiresAt; new secret and prefix.
    let id2 = d2["id"].as_str().unwrap();
    let r = session_send(
        &server,
        &s,
        Method::POST,
        &format!("/account/api-keys/{id2}/regenerate"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let n2 = r.body["data"]["key"].as_str().unwrap().to_string();
    assert!(is_key(&n2));
    assert_ne!(n2, k2);
    let d = &r.body["data"];
    assert_eq!(d["prefix"], &n2[..12]);
    for field in ["id", "name", "scope", "expiresAt", "createdAt"] {
        assert_eq!(d[field], d2[field], "{field} is kept: {d}");
    }
    assert_eq!(listed(&server, &s, id2)["prefix"], &n2[..12]);

    // Revoke: gone for good.
    let r = session_send(
        &server,
        &s,
        Method::DELETE,
        &format!("/account/api-keys/{id2}"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"], json!({"id": id2, "revoked": true}));
    assert!(list_keys(&server, &s).iter().all(|k| k["id"] != id2));
    for (method, path) in [
        (Method::POST, format!("/account/api-keys/{id2}/regenerate")),
        (Method::DELETE, format!("/account/api-keys/{id2}")),
    ] {
        let r = session_send(&server, &s, method, &path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text);
        assert_eq!(r.message(), "API key not found");
    }
    // An id that never existed.
    let ghost = uuid::Uuid::new_v4();
    let r = session_send(
        &server,
        &s,
        Method::DELETE,
        &format!("/account/api-keys/{ghost}"),
        None,
    );
    assert_eq!(r.status, 404);

    // Another account's key is not revealed: 404, and it keeps working.
    add_user(&sb, "bob@example.com");
    let bob = server.login("bob@example.com", PASSWORD);
    let (bob_key, bob_data) = create_key(&server, &bob, json!({"name": "bob"}));
    let bob_id = bob_data["id"].as_str().unwrap();
    assert!(list_keys(&server, &s).iter().all(|k| k["id"] != bob_id));
    for (method, path) in [
        (
            Method::POST,
            format!("/account/api-keys/{bob_id}/regenerate"),
        ),
        (Method::DELETE, format!("/account/api-keys/{bob_id}")),
    ] {
        let r = session_send(&server, &s, method, &path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text);
    }
    let r = account_with(&server, &bob_key, "203.0.113.1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["email"], "bob@example.com");

    // Without the CSRF token nothing is created.
    let r = send(
        s.client
            .post(server.api("/account/api-keys"))
            .json(&json!({"name": "no csrf"})),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(list_keys(&server, &s).len(), 3);
}

#[test]
fn bad_key_bodies_are_400_naming_every_problem() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    let post =
        |body: Value| session_send(&server, &s, Method::POST, "/account/api-keys", Some(body));

    let r = post(
        json!({"name": "x".repeat(101), "scope": "admin", "expiresInDays": 0, "color": "red"}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.errors(),
        [
            "name: must be at most 100 characters",
            "scope: must be \"full\" or \"read\"",
            "expiresInDays: must be between 1 and 3650",
            "color: unknown field",
        ]
    );
    let r = post(json!({"expiresInDays": 3651}));
    assert_eq!(r.status, 400);
    assert_eq!(r.errors(), ["expiresInDays: must be between 1 and 3650"]);
    let r = post(json!({"expiresInDays": "x"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.errors(),
        ["expiresInDays: must be an integer between 1 and 3650"]
    );
    let r = post(json!({"expiresInDays": 1.5}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.errors(),
        ["expiresInDays: must be an integer between 1 and 3650"]
    );
    let r = post(json!({"key": "bj_live_mine", "prefix": "bj_live_0000"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.errors(), ["key: unknown field", "prefix: unknown field"]);
    let r = post(json!({"scope": "READ", "name": 7}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.errors(),
        [
            "name: must be a string or null",
            "scope: must be \"full\" or \"read\""
        ]
    );
    let r = send(
        s.client
            .post(server.api("/account/api-keys"))
            .header("x-csrf-token", &s.csrf)
            .header("content-type", "application/json")
            .body("{\"name\": "),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    // Nothing was created by any of them.
    assert!(list_keys(&server, &s).is_empty());
}

#[test]
fn the_21st_key_is_409() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    // 24 at once: the count and the insert are one transaction, so exactly 20 get in.
    let answers: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let (server, s) = (&server, &s);
                scope.spawn(move || {
                    session_send(
                        server,
                        s,
                        Method::POST,
                        "/account/api-keys",
                        Some(json!({"name": format!("k{i}")})),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = answers.iter().filter(|r| r.status == 201).count();
    let refused = answers.iter().filter(|r| r.status == 409).count();
    assert_eq!((created, refused), (20, 4), "20 created, 4 refused");
    let ids: Vec<String> = list_keys(&server, &s)
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 20);
    let r = session_send(
        &server,
        &s,
        Method::POST,
        "/account/api-keys",
        Some(json!({})),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        r.message(),
        "An account can hold at most 20 API keys; revoke one first"
    );
    assert_eq!(list_keys(&server, &s).len(), 20);
    // Revoking one makes room for one.
    let r = session_send(
        &server,
        &s,
        Method::DELETE,
        &format!("/account/api-keys/{}", ids[0]),
        None,
    );
    assert_eq!(r.status, 200);
    create_key(&server, &s, json!({}));
    let r = session_send(
        &server,
        &s,
        Method::POST,
        "/account/api-keys",
        Some(json!({})),
    );
    assert_eq!(r.status, 409);
}

// ---------------------------------------------------------------------------------------------
// B. Authentication with keys

#[test]
fn both_header_styles_authenticate_as_the_owner() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    let (key, _) = create_key(&server, &s, json!({"name": "k"}));
    let c = client_from("203.0.113.10");
    let owner = session_get(&server, &s, "/account").body["data"].clone();
    let requests = [
        c.get(server.api("/account")).header("x-api-key", &key),
        c.get(server.api("/account"))
            .header("authorization", format!("Bearer {key}")),
        c.get(server.api("/account"))
            .header("authorization", format!("bearer {key}")),
        c.get(server.api("/account"))
            .header("authorization", format!("BEARER {key}")),
    ];
    for req in requests {
        let r = send(req);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["data"], owner);
        assert_eq!(r.body["data"]["email"], "ada@example.com");
        assert_eq!(r.header("cache-control"), "no-store");
    }

    // A key in the query string is never accepted.
    for q in ["api_key", "key", "apiKey", "access_token"] {
        let r = send(c.get(server.api(&format!("/account?{q}={key}"))));
        assert_ne!(r.status, 200, "?{q}= must not authenticate");
        assert!(
            r.status == 401 || r.status == 400,
            "?{q}=: {} {}",
            r.status,
            r.text
        );
    }
}

#[test]
fn both_headers_must_agree() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    let (key, _) = create_key(&server, &s, json!({}));
    let (other, _) = create_key(&server, &s, json!({}));
    let c = client_from("203.0.113.11");
    let both = |x: &str, bearer: &str| {
        send(
            c.get(server.api("/account"))
                .header("x-api-key", x)
                .header("authorization", format!("Bearer {bearer}")),
        )
    };
    let r = both(&key, &other);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.errors(),
        ["X-API-Key: differs from the key in Authorization; send one of them"]
    );
    let r = both(&key, &random_key());
    assert_eq!(r.status, 400, "{}", r.text);
    let (status, body) = envelope(
        c.get(server.api("/account"))
            .header("x-api-key", &key)
            .header("authorization", format!("Bearer {key}"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "the same key in both headers: {body}");
    assert_eq!(body["data"]["email"], "ada@example.com");

    // A header given twice is refused whatever the order, even with the same key twice.
    for (first, second) in [(&key, &other), (&other, &key), (&key, &key)] {
        let r = send(
            c.get(server.api("/account"))
                .header("x-api-key", first)
                .header("x-api-key", second),
        );
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(
            r.errors(),
            ["X-API-Key: given more than once; send one key"]
        );
        assert!(!r.text.contains(first.as_str()) && !r.text.contains(second.as_str()));
    }
    let r = send(
        c.get(server.api("/account"))
            .header("authorization", format!("Bearer {key}"))
            .header("authorization", format!("Bearer {other}")),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.errors(),
        ["Authorization: given more than once; send one key"]
    );
}

#[test]
fn every_bad_key_gets_the_same_401() {
    let sb = Sandbox::new();
    // Enough failures allowed that this test measures 401s, not the per-address block.
    let server = Server::start(
        &sb,
        &["--api-rate-limit", "1000", "--auth-fail-limit", "1000"],
    );
    let s = server.setup("ada@example.com");
    let (good, _) = create_key(&server, &s, json!({"name": "good"}));
    let (expiring, expiring_data) = create_key(&server, &s, json!({"expiresInDays": 1}));
    let (revoked, revoked_data) = create_key(&server, &s, json!({}));
    let c = client_from("203.0.113.12");
    let ok = |key: &str| send(c.get(server.api("/account")).header("x-api-key", key)).status;
    assert_eq!(ok(&good), 200);
    assert_eq!(ok(&expiring), 200);
    assert_eq!(ok(&revoked), 200);

    // Expire one in the database file, while the server runs.
    let n = db(&sb)
        .execute(
            "UPDATE api_keys SET expires_at = ?1 WHERE id = ?2",
            rusqlite::params![now_ms() - 1000, expiring_data["id"].as_str().unwrap()],
        )
        .unwrap();
    assert_eq!(n, 1);
    // Revoke another.
    let r = session_send(
        &server,
        &s,
        Method::DELETE,
        &format!("/account/api-keys/{}", revoked_data["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(r.status, 200);

    let hex = &good[8..];
    assert!(hex.bytes().any(|b| b.is_ascii_alphabetic()), "{good}");
    let bad: Vec<(&str, String)> = vec![
        ("malformed", "bj_live_xyz".to_string()),
        ("too short", good[..71].to_string()),
        ("too long", format!("{good}0")),
        ("upper-case hex", format!("bj_live_{}", hex.to_uppercase())),
        ("other prefix", format!("bj_test_{hex}")),
        ("empty", String::new()),
        ("unknown", random_key()),
        ("expired", expiring.clone()),
        ("revoked", revoked.clone()),
    ];
    let missing = send(c.get(server.api("/account")));
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), UNAUTHORIZED);
    let reference = missing.text.clone();
    let mut cases: Vec<(String, Reply)> = Vec::new();
    for (what, key) in &bad {
        cases.push((
            format!("X-API-Key {what}"),
            send(c.get(server.api("/account")).header("x-api-key", key)),
        ));
        cases.push((
            format!("Bearer {what}"),
            send(
                c.get(server.api("/account"))
                    .header("authorization", format!("Bearer {key}")),
            ),
        ));
    }
    cases.push((
        "another scheme".into(),
        send(
            c.get(server.api("/account"))
                .header("authorization", format!("Basic {good}")),
        ),
    ));
    cases.push((
        "no scheme".into(),
        send(
            c.get(server.api("/account"))
                .header("authorization", good.as_str()),
        ),
    ));
    for (what, r) in &cases {
        assert_eq!(r.status, 401, "{what}: {}", r.text);
        assert_eq!(r.header("www-authenticate"), UNAUTHORIZED, "{what}");
        assert_eq!(r.text, reference, "{what}: the same body byte for byte");
    }
    // The good key is unaffected.
    assert_eq!(ok(&good), 200);
    // The list no longer shows the revoked key; the expired one is still listed.
    let ids: Vec<Value> = list_keys(&server, &s)
        .iter()
        .map(|k| k["id"].clone())
        .collect();
    assert!(!ids.contains(&revoked_data["id"]));
    assert!(ids.contains(&expiring_data["id"]));
}

// ---------------------------------------------------------------------------------------------
// C. Changes take effect on the next request

#[test]
fn regenerated_and_revoked_keys_fail_on_the_very_next_request() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    let ip = "203.0.113.13";
    let (old, d) = create_key(&server, &s, json!({"name": "k"}));
    let id = d["id"].as_str().unwrap();
    assert_eq!(account_with(&server, &old, ip).status, 200);
    let r = session_send(
        &server,
        &s,
        Method::POST,
        &format!("/account/api-keys/{id}/regenerate"),
        None,
    );
    assert_eq!(r.status, 200);
    let new = r.body["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(account_with(&server, &old, ip).status, 401);
    assert_eq!(account_with(&server, &new, ip).status, 200);
    // Once more: the second secret dies as well.
    let r = session_send(
        &server,
        &s,
        Method::POST,
        &format!("/account/api-keys/{id}/regenerate"),
        None,
    );
    let newer = r.body["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(account_with(&server, &new, ip).status, 401);
    assert_eq!(account_with(&server, &old, ip).status, 401);
    assert_eq!(account_with(&server, &newer, ip).status, 200);
    let r = session_send(
        &server,
        &s,
        Method::DELETE,
        &format!("/account/api-keys/{id}"),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(account_with(&server, &newer, ip).status, 401);
}

#[test]
fn the_shell_creates_lists_rotates_and_revokes_keys_for_the_running_server() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    let ip = "203.0.113.14";

    // `keys create` prints the key and nothing else.
    let (code, out, err) = cli(
        &sb,
        &[
            "keys",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "shell",
            "--scope",
            "read",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line: {out:?}");
    let k1 = lines[0].to_string();
    assert!(is_key(&k1), "{out:?}");
    assert_eq!(out, format!("{k1}\n"));
    assert!(
        !err.contains(&k1[8..]),
        "stderr never repeats the key: {err}"
    );
    let r = account_with(&server, &k1, ip);
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["email"], "ada@example.com");
    let r = send(
        with_key(&client_from(ip), &server, Method::PATCH, "/account", &k1)
            .json(&json!({"firstName": "Eve"})),
    );
    assert_eq!(r.status, 403, "a read key: {}", r.text);
    let d1 = list_keys(&server, &s)[0].clone();
    assert_eq!(d1["name"], "shell");
    assert_eq!(d1["scope"], "read");
    assert_eq!(d1["prefix"], &k1[..12]);

    // `keys list`: a table with the prefix, never the key.
    for args in [
        &["keys", "list"][..],
        &["keys", "list", "--email", "ada@example.com"][..],
    ] {
        let (code, out, err) = cli(&sb, args);
        assert_eq!(code, 0, "{err}");
        let header = out.lines().next().unwrap();
        for col in [
            "ID",
            "ACCOUNT",
            "NAME",
            "PREFIX",
            "SCOPE",
            "CREATED",
            "LAST USED",
            "EXPIRES",
        ] {
            assert!(header.contains(col), "{col} in {header}");
        }
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(out.contains(&k1[..12]), "{out}");
        assert!(out.contains(d1["id"].as_str().unwrap()), "{out}");
        assert!(
            out.contains("ada@example.com") && out.contains("read"),
            "{out}"
        );
        assert!(
            !out.contains(&k1[8..]) && !err.contains(&k1[8..]),
            "{out}{err}"
        );
    }

    // `keys rotate` of the only key: the new key only; the old fails on the next request.
    let (code, out, err) = cli(&sb, &["keys", "rotate", "--email", "ada@example.com"]);
    assert_eq!(code, 0, "{err}");
    let k1b = out.trim_end().to_string();
    assert_eq!(out, format!("{k1b}\n"), "only the new key on stdout");
    assert!(is_key(&k1b));
    assert_ne!(k1b, k1);
    assert_eq!(account_with(&server, &k1, ip).status, 401);
    assert_eq!(account_with(&server, &k1b, ip).status, 200);
    let d = listed(&server, &s, d1["id"].as_str().unwrap());
    assert_eq!(d["prefix"], &k1b[..12]);
    assert_eq!(d["scope"], "read");
    assert_eq!(d["name"], "shell");

    // With several keys, `--key` is required: exit 1, the prefixes listed, nothing changed.
    let (k2, d2) = create_key(&server, &s, json!({"name": "api"}));
    let (code, out, err) = cli(&sb, &["keys", "rotate", "--email", "ada@example.com"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");
    assert!(err.contains(&k1b[..12]) && err.contains(&k2[..12]), "{err}");
    assert_eq!(account_with(&server, &k1b, ip).status, 200);
    assert_eq!(account_with(&server, &k2, ip).status, 200);

    // `--key PREFIX` picks one.
    let (code, out, err) = cli(
        &sb,
        &[
            "keys",
            "rotate",
            "--email",
            "ada@example.com",
            "--key",
            &k2[..12],
        ],
    );
    assert_eq!(code, 0, "{err}");
    let k2b = out.trim_end().to_string();
    assert!(is_key(&k2b), "{out}");
    assert_eq!(account_with(&server, &k2, ip).status, 401);
    assert_eq!(account_with(&server, &k2b, ip).status, 200);
    assert_eq!(account_with(&server, &k1b, ip).status, 200);

    // A prefix that matches several keys revokes nothing, exits 1 and lists them.
    let (code, out, err) = cli(&sb, &["keys", "revoke", "--key", "bj_live_"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&k1b[..12]) && err.contains(&k2b[..12]),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(account_with(&server, &k1b, ip).status, 200);
    assert_eq!(account_with(&server, &k2b, ip).status, 200);
    assert_eq!(list_keys(&server, &s).len(), 2);

    // An unknown prefix: exit 1.
    let (code, _, err) = cli(&sb, &["keys", "revoke", "--key", "bj_live_zzzz"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(list_keys(&server, &s).len(), 2);

    // `keys revoke --key PREFIX`: that key fails on the next request, the other works.
    let (code, out, err) = cli(&sb, &["keys", "revoke", "--key", &k2b[..12]]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&k2b[..12]), "{out}");
    assert!(!out.contains(&k2b[8..]), "{out}");
    assert_eq!(account_with(&server, &k2b, ip).status, 401);
    assert_eq!(account_with(&server, &k1b, ip).status, 200);
    assert!(list_keys(&server, &s).iter().all(|k| k["id"] != d2["id"]));

    // `keys revoke --key ID`.
    let (code, _, err) = cli(
        &sb,
        &["keys", "revoke", "--key", d1["id"].as_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(account_with(&server, &k1b, ip).status, 401);
    assert!(list_keys(&server, &s).is_empty());

    // Rotating when there is no key: exit 1, one line.
    let (code, out, err) = cli(&sb, &["keys", "rotate", "--email", "ada@example.com"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty());
}

#[test]
fn rotate_with_grace_keeps_the_old_secret_for_the_window_only() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let _s = server.setup("ada@example.com");
    let ip = "203.0.113.15";
    let (code, out, err) = cli(&sb, &["keys", "create", "--email", "ada@example.com"]);
    assert_eq!(code, 0, "{err}");
    let old = out.trim_end().to_string();
    assert_eq!(account_with(&server, &old, ip).status, 200);

    let start = Instant::now();
    let (code, out, err) = cli(
        &sb,
        &[
            "keys",
            "rotate",
            "--email",
            "ada@example.com",
            "--grace",
            "5s",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let new = out.trim_end().to_string();
    assert_eq!(out, format!("{new}\n"));
    assert!(is_key(&new));
    // Right after the command, both work.
    assert_eq!(account_with(&server, &old, ip).status, 200);
    assert_eq!(account_with(&server, &new, ip).status, 200);
    // From grace + 2 s on, the old one is refused.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(start.elapsed()));
    let r = account_with(&server, &old, ip);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(account_with(&server, &new, ip).status, 200);
    // Regenerating from the dashboard ends a secret still in its grace window at once.
    let (code, out, err) = cli(
        &sb,
        &[
            "keys",
            "rotate",
            "--email",
            "ada@example.com",
            "--grace",
            "1h",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let graced = new;
    let new = out.trim_end().to_string();
    assert_eq!(
        account_with(&server, &graced, ip).status,
        200,
        "inside the grace window"
    );
    let id = list_keys(&server, &_s)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = session_send(
        &server,
        &_s,
        Method::POST,
        &format!("/account/api-keys/{id}/regenerate"),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        account_with(&server, &graced, ip).status,
        401,
        "the graced secret ends with a regeneration"
    );
    assert_eq!(account_with(&server, &new, ip).status, 401);
    let new = r.body["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(account_with(&server, &new, ip).status, 200);
    // A later rotation without grace ends the new one at once.
    let (code, out, err) = cli(&sb, &["keys", "rotate", "--email", "ada@example.com"]);
    assert_eq!(code, 0, "{err}");
    let newest = out.trim_end().to_string();
    assert_eq!(account_with(&server, &new, ip).status, 401);
    assert_eq!(account_with(&server, &newest, ip).status, 200);
}

// ---------------------------------------------------------------------------------------------
// D. Secrets never reach the disk or the logs

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Fails when any secret, or its 32 random bytes, is in `bytes`.
fn assert_no_secret(what: &str, bytes: &[u8], secrets: &[String]) {
    for secret in secrets {
        assert!(
            !contains(bytes, secret.as_bytes()),
            "{what} holds the key {}…",
            &secret[..12]
        );
        assert!(
            !contains(bytes, &secret.as_bytes()[8..]),
            "{what} holds the hex of {}…",
            &secret[..12]
        );
        let raw = hex::decode(&secret[8..]).unwrap();
        assert!(
            !contains(bytes, &raw),
            "{what} holds the raw bytes of {}…",
            &secret[..12]
        );
    }
}

#[test]
fn no_secret_reaches_the_database_backups_or_logs() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--api-rate-limit", "1000", "--log-level", "debug"]);
    let s = server.setup("ada@example.com");
    let ip = "203.0.113.16";
    let c = client_from(ip);
    let mut secrets = Vec::new();
    let mut cli_logs = String::new();
    let use_key = |key: &str| {
        let a = send(c.get(server.api("/account")).header("x-api-key", key)).status;
        let b = send(
            c.get(server.api("/websites"))
                .header("authorization", format!("Bearer {key}")),
        )
        .status;
        (a, b)
    };

    let (k1, d1) = create_key(&server, &s, json!({"name": "one"}));
    let (k2, d2) = create_key(&server, &s, json!({"name": "two", "scope": "read"}));
    assert_eq!(use_key(&k1), (200, 200));
    assert_eq!(use_key(&k2), (200, 200));
    let r = session_send(
        &server,
        &s,
        Method::POST,
        &format!(
            "/account/api-keys/{}/regenerate",
            d1["id"].as_str().unwrap()
        ),
        None,
    );
    let k1b = r.body["data"]["key"].as_str().unwrap().to_string();
    assert_eq!(use_key(&k1b), (200, 200));
    assert_eq!(use_key(&k1), (401, 401));
    session_send(
        &server,
        &s,
        Method::DELETE,
        &format!("/account/api-keys/{}", d2["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(use_key(&k2), (401, 401));
    let unknown = random_key();
    assert_eq!(use_key(&unknown), (401, 401));
    // Both headers, differing: the 400 must not echo either.
    let r = send(
        c.get(server.api("/account"))
            .header("x-api-key", &k1b)
            .header("authorization", format!("Bearer {unknown}")),
    );
    assert_eq!(r.status, 400);
    assert_no_secret(
        "a 400 body",
        r.text.as_bytes(),
        &[k1b.clone(), unknown.clone()],
    );
    // From the shell, with debug logs: create, and rotate with a grace (the old hash is kept).
    let (code, out, err) = cli(
        &sb,
        &[
            "--log-level",
            "debug",
            "keys",
            "create",
            "--email",
            "ada@example.com",
            "--name",
            "sh",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let k3 = out.trim_end().to_string();
    cli_logs.push_str(&err);
    assert_eq!(use_key(&k3), (200, 200));
    let (code, out, err) = cli(
        &sb,
        &[
            "--log-level",
            "debug",
            "keys",
            "rotate",
            "--email",
            "ada@example.com",
            "--key",
            &k3[..12],
            "--grace",
            "1h",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let k3b = out.trim_end().to_string();
    cli_logs.push_str(&err);
    assert_eq!(use_key(&k3), (200, 200));
    assert_eq!(use_key(&k3b), (200, 200));
    let (code, out, err) = cli(&sb, &["--log-level", "debug", "keys", "list"]);
    assert_eq!(code, 0, "{err}");
    cli_logs.push_str(&out);
    cli_logs.push_str(&err);
    secrets.extend([k1, k1b, k2, k3, k3b, unknown]);

    // The list and the audit log never show one.
    let r = session_get(&server, &s, "/account/api-keys");
    assert_no_secret("the key list", r.text.as_bytes(), &secrets);
    let r = session_get(&server, &s, "/account/audit-log?limit=1000");
    assert_eq!(r.status, 200);
    assert_no_secret("the audit log", r.text.as_bytes(), &secrets);

    // A backup while the server runs.
    let backup = sb.dir.path().join("copy.db");
    let (code, out, err) = cli(
        &sb,
        &[
            "--log-level",
            "debug",
            "backup",
            "--output",
            backup.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    cli_logs.push_str(&out);
    cli_logs.push_str(&err);
    assert_no_secret("the backup", &std::fs::read(&backup).unwrap(), &secrets);

    // Everything in the data dir, WAL included, while the server runs.
    let check_files = |when: &str| {
        let mut files = Vec::new();
        files_under(&sb.data_dir(), &mut files);
        assert!(files.iter().any(|f| f.ends_with("jetrack.db")), "{files:?}");
        for f in &files {
            let bytes = std::fs::read(f).unwrap_or_default();
            assert_no_secret(&format!("{} ({when})", f.display()), &bytes, &secrets);
        }
        files
    };
    let files = check_files("server running");
    assert!(
        files.iter().any(|f| f.to_string_lossy().ends_with("-wal")),
        "a WAL file exists while the server runs: {files:?}"
    );
    assert_no_secret("the shell's output", cli_logs.as_bytes(), &secrets);
    assert!(
        server.stderr().contains("DEBUG") || server.stderr().contains("debug"),
        "debug logging is on"
    );
    assert_no_secret("the server's stderr", server.stderr().as_bytes(), &secrets);
    assert_no_secret("the server's stdout", server.stdout().as_bytes(), &secrets);
    assert!(
        !server.stderr().contains(ip),
        "no raw client address in the log"
    );

    // And after a clean stop (checkpointed into the main file).
    let mut server = server;
    server.signal("TERM");
    assert!(server.wait().success());
    check_files("server stopped");
    assert_no_secret("the server's stdout", server.stdout().as_bytes(), &secrets);
    assert_no_secret("the server's stderr", server.stderr().as_bytes(), &secrets);
}

// ---------------------------------------------------------------------------------------------
// E. lastUsedAt

#[test]
fn last_used_at_is_written_at_most_once_a_minute() {
    let sb = Sandbox::new();
    add_user(&sb, "ada@example.com");
    db(&sb)
        .execute_batch(
            "CREATE TABLE touch_log (id TEXT, at INTEGER);
             CREATE TRIGGER touch_count AFTER UPDATE OF last_used_at ON api_keys
             BEGIN INSERT INTO touch_log VALUES (new.id, new.last_used_at); END;",
        )
        .unwrap();
    let server = Server::start(
        &sb,
        &["--api-rate-limit", "100000", "--api-rate-burst", "100000"],
    );
    let s = server.login("ada@example.com", PASSWORD);
    let (key, d) = create_key(&server, &s, json!({"name": "busy"}));
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(listed(&server, &s, &id)["lastUsedAt"], Value::Null);

    const THREADS: usize = 8;
    const EACH: usize = 125;
    let start = Instant::now();
    let last_ms = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let key = key.clone();
                let server = &server;
                scope.spawn(move || {
                    let c = client_from(&format!("203.0.113.{}", 100 + t));
                    let mut last = 0;
                    for i in 0..EACH {
                        let path = if i % 2 == 0 { "/account" } else { "/websites" };
                        let resp = c
                            .get(server.api(path))
                            .header("x-api-key", &key)
                            .send()
                            .unwrap();
                        assert_eq!(resp.status(), 200);
                        last = now_ms();
                    }
                    last
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    });
    let elapsed = start.elapsed();
    assert!(
        elapsed < Duration::from_secs(10),
        "1,000 requests took {elapsed:?}"
    );

    // The write is made off the request path: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let shown = loop {
        let k = listed(&server, &s, &id);
        if !k["lastUsedAt"].is_null() || Instant::now() > deadline {
            break k;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let used = ms_of(&shown["lastUsedAt"]);
    assert!(
        (last_ms - used).abs() <= 60_000,
        "lastUsedAt {used} within 60 s of the last request {last_ms}"
    );
    assert!(used <= last_ms + 1000, "lastUsedAt is not in the future");
    let conn = db(&sb);
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT id, at FROM touch_log")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mine: Vec<_> = rows.iter().filter(|(k, _)| *k == id).collect();
    assert!(
        mine.len() <= 1,
        "1,000 requests wrote lastUsedAt {} times",
        mine.len()
    );
    assert_eq!(mine.len(), 1, "lastUsedAt was written once");
    assert_eq!(mine[0].1, used);
}

// ---------------------------------------------------------------------------------------------
// F. 403 rules

#[test]
fn api_keys_cannot_reach_session_only_routes() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    let (full, d) = create_key(&server, &s, json!({"name": "full"}));
    let (read, _) = create_key(&server, &s, json!({"name": "read", "scope": "read"}));
    let id = d["id"].as_str().unwrap().to_string();
    let c = client_from("203.0.113.17");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/account/api-keys".into(), None),
        (
            Method::POST,
            "/account/api-keys".into(),
            Some(json!({"name": "sneaky"})),
        ),
        (
            Method::POST,
            format!("/account/api-keys/{id}/regenerate"),
            None,
        ),
        (Method::DELETE, format!("/account/api-keys/{id}"), None),
        (
            Method::POST,
            "/account/password".into(),
            Some(json!({"currentPassword": PASSWORD, "newPassword": "a brand new password"})),
        ),
        (Method::GET, "/account/audit-log".into(), None),
    ];
    for key in [&full, &read] {
        for (method, path, body) in &routes {
            let mut req = with_key(&c, &server, method.clone(), path, key);
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = send(req);
            assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
            assert_eq!(r.message(), SESSION_ONLY, "{method} {path}");
        }
        // Also with the Bearer style.
        let r = send(
            c.get(server.api("/account/api-keys"))
                .header("authorization", format!("Bearer {key}")),
        );
        assert_eq!(r.status, 403);
    }
    // Nothing changed: same keys, the full key works, the password is the same.
    let list = list_keys(&server, &s);
    assert_eq!(list.len(), 2);
    assert_eq!(listed(&server, &s, &id)["prefix"], &full[..12]);
    assert_eq!(account_with(&server, &full, "203.0.113.17").status, 200);
    server.login("ada@example.com", PASSWORD);
    // The session itself can use them.
    assert_eq!(session_get(&server, &s, "/account/audit-log").status, 200);
}

#[test]
fn read_keys_cannot_change_state() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    let (full, _) = create_key(&server, &s, json!({}));
    let (read, _) = create_key(&server, &s, json!({"scope": "read"}));
    let r = session_send(
        &server,
        &s,
        Method::POST,
        "/websites",
        Some(json!({"name": "Blog", "domain": "blog.example.com"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let site = r.body["data"]["id"].as_str().unwrap().to_string();
    let c = client_from("203.0.113.18");

    let changes: Vec<(Method, String, Value)> = vec![
        (
            Method::PATCH,
            "/account".into(),
            json!({"firstName": "Eve"}),
        ),
        (
            Method::POST,
            "/websites".into(),
            json!({"name": "Shop", "domain": "shop.example.com"}),
        ),
        (
            Method::PATCH,
            format!("/websites/{site}"),
            json!({"name": "Renamed"}),
        ),
        (Method::DELETE, format!("/websites/{site}"), json!({})),
    ];
    for (method, path, body) in &changes {
        let mut req = with_key(&c, &server, method.clone(), path, &read);
        if *method != Method::DELETE {
            req = req.json(body);
        }
        let r = send(req);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
        assert_eq!(r.message(), READ_ONLY, "{method} {path}");
    }
    // Nothing changed.
    let r = session_get(&server, &s, "/websites");
    let sites = r.body["data"].as_array().unwrap();
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0]["name"], "Blog");
    assert_eq!(
        session_get(&server, &s, "/account").body["data"]["firstName"],
        "Ada"
    );

    for path in [
        "/account".to_string(),
        "/account/subscription".into(),
        "/account/usage".into(),
        "/websites".into(),
        format!("/websites/{site}"),
    ] {
        let r = send(with_key(&c, &server, Method::GET, &path, &read));
        assert_eq!(r.status, 200, "GET {path} with a read key: {}", r.text);
    }

    // A full key may change state, without CSRF.
    let r = send(
        with_key(&c, &server, Method::PATCH, "/account", &full).json(&json!({"firstName": "Eve"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"]["firstName"], "Eve");
    let r = send(
        with_key(
            &c,
            &server,
            Method::PATCH,
            &format!("/websites/{site}"),
            &full,
        )
        .json(&json!({"name": "Renamed"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(with_key(
        &c,
        &server,
        Method::DELETE,
        &format!("/websites/{site}"),
        &full,
    ));
    assert_eq!(r.status, 200, "{}", r.text);
}

// ---------------------------------------------------------------------------------------------
// G. Rate limits

#[test]
fn the_key_budget_is_enforced_with_headers_on_every_answer() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--api-rate-limit", "1", "--api-rate-burst", "3"]);
    let s = server.setup("ada@example.com");
    let (key, _) = create_key(&server, &s, json!({}));
    let (other, _) = create_key(&server, &s, json!({}));
    let c = client_from("203.0.113.19");

    let mut remaining = Vec::new();
    for i in 0..3 {
        let r = send(with_key(&c, &server, Method::GET, "/account", &key));
        assert_eq!(r.status, 200, "request {}: {}", i + 1, r.text);
        let (limit, rem, reset) = rate(&r);
        assert_eq!(limit, 1);
        assert!(
            reset >= 1,
            "the budget is not full after a request: {reset}"
        );
        remaining.push(rem);
    }
    assert_eq!(remaining, [2, 1, 0], "remaining decreases");
    let r = send(with_key(&c, &server, Method::GET, "/account", &key));
    assert_eq!(r.status, 429, "{}", r.text);
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let (limit, rem, reset) = rate(&r);
    assert_eq!((limit, rem), (1, 0));
    assert!(reset >= retry, "reset {reset} ≥ Retry-After {retry}");
    // Over the limit whatever the route, also for a 404 of a known route.
    let r = send(with_key(
        &c,
        &server,
        Method::GET,
        &format!("/websites/{}", uuid::Uuid::new_v4()),
        &key,
    ));
    assert_eq!(r.status, 429);
    // Another key has its own budget; a 404 answer carries the headers too.
    let r = send(with_key(
        &c,
        &server,
        Method::GET,
        &format!("/websites/{}", uuid::Uuid::new_v4()),
        &other,
    ));
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(rate(&r), (1, 2, 60));

    // 401, unknown routes, 405 and public routes carry them as well.
    let r = send(with_key(
        &c,
        &server,
        Method::GET,
        "/account",
        &random_key(),
    ));
    assert_eq!(r.status, 401);
    assert_eq!(rate(&r).0, 1);
    let r = send(c.get(server.api("/account")));
    assert_eq!(r.status, 401);
    assert_eq!(rate(&r).0, 1);
    let r = send(with_key(&c, &server, Method::GET, "/no/such/route", &other));
    assert_eq!(r.status, 404);
    assert_eq!(rate(&r).0, 1);
    let r = send(c.put(server.api("/account")));
    assert_eq!(r.status, 405);
    assert_eq!(rate(&r).0, 1);
    let r = send(c.get(server.api("/auth/setup")));
    assert_eq!(r.status, 200);
    assert_eq!(rate(&r).0, 1);

    // A session spends the account's dashboard budget (600 a minute), with the same headers.
    let r = session_get(&server, &s, "/account");
    assert_eq!(r.status, 200);
    let (limit, first, _) = rate(&r);
    assert_eq!(limit, 600);
    let r = session_get(&server, &s, "/websites");
    let (_, second, _) = rate(&r);
    assert!(
        second < first,
        "remaining decreases for a session: {first} → {second}"
    );
}

#[test]
fn a_retry_after_retry_after_seconds_succeeds() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &["--api-rate-limit", "60", "--api-rate-burst", "2"]);
    let s = server.setup("ada@example.com");
    let (key, _) = create_key(&server, &s, json!({}));
    let c = client_from("203.0.113.20");
    for _ in 0..2 {
        assert_eq!(
            send(with_key(&c, &server, Method::GET, "/account", &key)).status,
            200
        );
    }
    let r = send(with_key(&c, &server, Method::GET, "/account", &key));
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.header("retry-after"), "1");
    std::thread::sleep(Duration::from_secs(1));
    let r = send(with_key(&c, &server, Method::GET, "/account", &key));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn too_many_failed_authentications_block_an_address() {
    let sb = Sandbox::new();
    let server = Server::start(
        &sb,
        &["--api-rate-limit", "1000", "--auth-fail-limit", "20"],
    );
    let s = server.setup("ada@example.com");
    let (key, d) = create_key(&server, &s, json!({}));
    let id = d["id"].as_str().unwrap().to_string();
    let bad_ip = client_from("203.0.113.77");

    for i in 0..20 {
        let r = send(with_key(
            &bad_ip,
            &server,
            Method::GET,
            "/account",
            &random_key(),
        ));
        assert_eq!(r.status, 401, "failure {}: {}", i + 1, r.text);
    }
    // The 21st credentialed request, even with the valid key, is refused without a lookup.
    let r = send(with_key(&bad_ip, &server, Method::GET, "/account", &key));
    assert_eq!(r.status, 429, "{}", r.text);
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let r = send(
        bad_ip
            .get(server.api("/websites"))
            .header("authorization", format!("Bearer {key}")),
    );
    assert_eq!(r.status, 429);
    let r = send(with_key(
        &bad_ip,
        &server,
        Method::GET,
        "/account",
        "bj_live_xyz",
    ));
    assert_eq!(r.status, 429);
    // No lookup was made: the key was never used.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listed(&server, &s, &id)["lastUsedAt"], Value::Null);
    // No credential at all: still a plain 401.
    let r = send(bad_ip.get(server.api("/account")));
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), UNAUTHORIZED);
    // Another address with the valid key is served.
    let r = account_with(&server, &key, "203.0.113.78");
    assert_eq!(r.status, 200, "{}", r.text);

    // Requests without a credential do not count towards the limit.
    let other = client_from("203.0.113.79");
    for _ in 0..19 {
        assert_eq!(
            send(with_key(
                &other,
                &server,
                Method::GET,
                "/account",
                &random_key()
            ))
            .status,
            401
        );
    }
    for _ in 0..10 {
        assert_eq!(send(other.get(server.api("/account"))).status, 401);
    }
    assert_eq!(account_with(&server, &key, "203.0.113.79").status, 200);
}

// ---------------------------------------------------------------------------------------------
// H. The audit log

#[test]
fn the_audit_log_lists_key_actions_newest_first_with_pagination() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let _setup = server.setup("ada@example.com");
    // Log in from another network: every later entry carries its /24.
    let c = {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.55"));
        Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    };
    let r = send(
        c.post(server.api("/auth/login"))
            .json(&json!({"email": "ada@example.com", "password": PASSWORD})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let s = Session {
        client: c,
        csrf: r.body["data"]["csrfToken"].as_str().unwrap().to_string(),
    };
    let (k1, d1) = create_key(&server, &s, json!({"name": "deploy"}));
    let id = d1["id"].as_str().unwrap();
    let r = session_send(
        &server,
        &s,
        Method::POST,
        &format!("/account/api-keys/{id}/regenerate"),
        None,
    );
    let k2 = r.body["data"]["key"].as_str().unwrap().to_string();
    let r = session_send(
        &server,
        &s,
        Method::DELETE,
        &format!("/account/api-keys/{id}"),
        None,
    );
    assert_eq!(r.status, 200);

    let r = session_get(&server, &s, "/account/audit-log");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["meta"]["pagination"],
        json!({"page": 1, "limit": 10, "hasMore": false})
    );
    let log = r.body["data"].as_array().unwrap().clone();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "key_revoked",
            "key_regenerated",
            "key_created",
            "login",
            "login"
        ],
        "{log:?}"
    );
    for e in &log {
        let fields: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            BTreeSet::from(["at", "action", "ip", "detail"]),
            "{e}"
        );
    }
    let ats: Vec<i64> = log.iter().map(|e| ms_of(&e["at"])).collect();
    assert!(
        ats.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {ats:?}"
    );
    for e in &log[..4] {
        assert_eq!(e["ip"], "203.0.113.0/24", "{e}");
    }
    assert_eq!(
        log[4]["ip"], "127.0.0.0/24",
        "the setup, from loopback: {}",
        log[4]
    );
    let detail = |i: usize| log[i]["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail(2).contains(&k1[..12]), "created: {}", detail(2));
    assert!(
        detail(1).contains(&k1[..12]) && detail(1).contains(&k2[..12]),
        "regenerated: {}",
        detail(1)
    );
    assert!(detail(0).contains(&k2[..12]), "revoked: {}", detail(0));
    assert_no_secret(
        "the audit log",
        r.text.as_bytes(),
        &[k1.clone(), k2.clone()],
    );
    assert!(
        !r.text.contains("203.0.113.55"),
        "no full address: {}",
        r.text
    );

    // Pages.
    let page = |q: &str| session_get(&server, &s, &format!("/account/audit-log?{q}"));
    let r = page("limit=2");
    assert_eq!(
        r.body["meta"]["pagination"],
        json!({"page": 1, "limit": 2, "hasMore": true})
    );
    assert_eq!(r.body["data"].as_array().unwrap().as_slice(), &log[..2]);
    let r = page("limit=2&page=2");
    assert_eq!(
        r.body["meta"]["pagination"],
        json!({"page": 2, "limit": 2, "hasMore": true})
    );
    assert_eq!(r.body["data"].as_array().unwrap().as_slice(), &log[2..4]);
    let r = page("limit=2&page=3");
    assert_eq!(
        r.body["meta"]["pagination"],
        json!({"page": 3, "limit": 2, "hasMore": false})
    );
    assert_eq!(r.body["data"].as_array().unwrap().as_slice(), &log[4..]);
    let r = page("limit=5");
    assert_eq!(
        r.body["meta"]["pagination"],
        json!({"page": 1, "limit": 5, "hasMore": false})
    );
    let r = page("page=9");
    assert_eq!(r.status, 200);
    assert!(r.body["data"].as_array().unwrap().is_empty());
    let r = page("limit=1000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 5);

    for q in ["limit=0", "limit=1001", "limit=x", "limit=-1"] {
        let r = page(q);
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert_eq!(
            r.errors(),
            ["limit: must be an integer between 1 and 1000"],
            "{q}"
        );
    }
    let r = page("limit=0&page=0");
    assert_eq!(r.status, 400);
    assert_eq!(r.errors().len(), 2, "{}", r.text);
    assert!(r.errors()[1].starts_with("page: "), "{}", r.text);
    let r = page("sort=asc");
    assert_eq!(r.status, 400);
    assert_eq!(r.errors(), ["sort: unknown query parameter"]);
}

#[test]
fn the_shell_refuses_bad_options_and_other_accounts_keys() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    add_user(&sb, "bob@example.com");
    let (ada_key, _) = create_key(&server, &s, json!({}));
    let (code, out, _) = cli(&sb, &["keys", "create", "--email", "bob@example.com"]);
    assert_eq!(code, 0);
    let bob_key = out.trim_end().to_string();
    let ip = "203.0.113.21";

    // Usage errors: exit 2, nothing created.
    for args in [
        &[
            "keys",
            "create",
            "--email",
            "ada@example.com",
            "--scope",
            "admin",
        ][..],
        &[
            "keys",
            "create",
            "--email",
            "ada@example.com",
            "--expires-in-days",
            "0",
        ][..],
        &[
            "keys",
            "create",
            "--email",
            "ada@example.com",
            "--expires-in-days",
            "3651",
        ][..],
        &[
            "keys",
            "rotate",
            "--email",
            "ada@example.com",
            "--grace",
            "soon",
        ][..],
    ] {
        let (code, out, err) = cli(&sb, args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    // Unknown account: exit 1, one line.
    let (code, out, err) = cli(&sb, &["keys", "create", "--email", "nobody@example.com"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(list_keys(&server, &s).len(), 1);

    // Rotating with the prefix of another account's key finds nothing.
    let (code, out, err) = cli(
        &sb,
        &[
            "keys",
            "rotate",
            "--email",
            "ada@example.com",
            "--key",
            &bob_key[..12],
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty());
    assert_eq!(account_with(&server, &bob_key, ip).status, 200);
    assert_eq!(account_with(&server, &ada_key, ip).status, 200);

    // `keys list --email` shows only that account's keys.
    let (code, out, _) = cli(&sb, &["keys", "list", "--email", "bob@example.com"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&bob_key[..12]) && !out.contains(&ada_key[..12]),
        "{out}"
    );
    let (_, out, _) = cli(&sb, &["keys", "list"]);
    assert!(
        out.contains(&bob_key[..12]) && out.contains(&ada_key[..12]),
        "{out}"
    );
}

#[test]
fn a_revoke_pattern_that_is_no_prefix_revokes_nothing() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, FAST);
    let s = server.setup("ada@example.com");
    let (key, _) = create_key(&server, &s, json!({}));
    // `%` and `_` are in no key; as LIKE wildcards they would match every key.
    for pattern in ["%%%%%%%%", "________", "bj_live%"] {
        let (code, out, err) = cli(&sb, &["keys", "revoke", "--key", pattern]);
        assert_eq!(
            code, 1,
            "--key {pattern} is the prefix of no key: {out}{err}"
        );
        assert_eq!(
            list_keys(&server, &s).len(),
            1,
            "--key {pattern} revoked a key"
        );
    }
    assert_eq!(account_with(&server, &key, "203.0.113.22").status, 200);
}
