//! The account (SPEC 2.4, without API keys and the audit log's own tests) and websites
//! (SPEC 2.5, without export) endpoints, black-box against the real server, each called with
//! both header styles of an API key and with the dashboard session; the `websites` commands
//! (SPEC 6).

mod common;

use std::io::Write;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{PASSWORD, Sandbox, Server, Session, client, envelope};
use reqwest::Method;
use serde_json::{Value, json};

/// How a request authenticates (SPEC 2.1).
#[derive(Clone, Copy)]
enum Cred<'a> {
    XApiKey(&'a str),
    Bearer(&'a str),
    Session(&'a Session),
}

impl Cred<'_> {
    fn label(&self) -> &'static str {
        match self {
            Cred::XApiKey(_) => "X-API-Key",
            Cred::Bearer(_) => "Authorization: Bearer",
            Cred::Session(_) => "session",
        }
    }
}

/// The three ways to call the API as the account of `session` with `key`.
fn creds<'a>(key: &'a str, session: &'a Session) -> [Cred<'a>; 3] {
    [
        Cred::XApiKey(key),
        Cred::Bearer(key),
        Cred::Session(session),
    ]
}

fn builder(
    server: &Server,
    cred: Cred<'_>,
    method: Method,
    path: &str,
) -> reqwest::blocking::RequestBuilder {
    let url = server.api(path);
    match cred {
        Cred::XApiKey(k) => client().request(method, url).header("x-api-key", k),
        Cred::Bearer(k) => client()
            .request(method, url)
            .header("authorization", format!("Bearer {k}")),
        Cred::Session(s) => {
            let b = s.client.request(method.clone(), url);
            if method == Method::GET {
                b
            } else {
                b.header("x-csrf-token", &s.csrf)
            }
        }
    }
}

/// One request; the answer is checked to be an envelope with JSON and `no-store`.
fn call(
    server: &Server,
    cred: Cred<'_>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut b = builder(server, cred, method.clone(), path);
    if let Some(body) = body {
        b = b.json(&body);
    }
    let resp = b.send().expect("request");
    assert_eq!(
        resp.headers()["content-type"],
        "application/json",
        "{method} {path}"
    );
    assert_eq!(
        resp.headers()["cache-control"],
        "no-store",
        "{method} {path}"
    );
    envelope(resp)
}

fn get(server: &Server, cred: Cred<'_>, path: &str) -> (u16, Value) {
    call(server, cred, Method::GET, path, None)
}

fn post(server: &Server, cred: Cred<'_>, path: &str, body: Value) -> (u16, Value) {
    call(server, cred, Method::POST, path, Some(body))
}

fn patch(server: &Server, cred: Cred<'_>, path: &str, body: Value) -> (u16, Value) {
    call(server, cred, Method::PATCH, path, Some(body))
}

fn delete(server: &Server, cred: Cred<'_>, path: &str) -> (u16, Value) {
    call(server, cred, Method::DELETE, path, None)
}

/// Creates a website and returns it (`data`).
fn create_site(server: &Server, cred: Cred<'_>, body: Value) -> Value {
    let (status, resp) = post(server, cred, "/websites", body.clone());
    assert_eq!(status, 201, "creating {body} with {}: {resp}", cred.label());
    resp["data"].clone()
}

/// A second (third, …) account, made with the CLI while the server runs.
fn add_account(sb: &Sandbox, email: &str) {
    let mut child = sb
        .cmd()
        .args(["users", "add", "--email", email, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("users add");
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "users add {email}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cli(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run jetrack")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn set_limits(sb: &Sandbox, email: &str, limits: &[&str]) {
    let mut args = vec!["users", "limits", "--email", email];
    args.extend_from_slice(limits);
    let out = cli(sb, &args);
    assert!(out.status.success(), "users limits: {}", stderr(&out));
}

/// A server with the first account (`owner@example.com`), its session and a full key.
fn started(sb: &Sandbox, args: &[&str]) -> (Server, Session, String) {
    let server = Server::start(sb, args);
    let session = server.setup("owner@example.com");
    let key = common::api_key(&server, &session);
    (server, session, key)
}

fn is_uuid_v4(s: &str) -> bool {
    uuid::Uuid::parse_str(s)
        .is_ok_and(|u| u.get_version_num() == 4 && u.hyphenated().to_string() == s && s.len() == 36)
}

/// `2025-01-15T10:30:00.000Z`, parsed; panics on any other form.
fn parse_ts(v: &Value) -> jiff::Timestamp {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp string: {v}"));
    let b = s.as_bytes();
    assert!(
        s.len() == 24
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[23] == b'Z'
            && s.chars()
                .enumerate()
                .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit()),
        "ISO-8601 UTC with milliseconds and Z: {s}"
    );
    s.parse().unwrap()
}

fn assert_recent(v: &Value) {
    let t = parse_ts(v);
    let age = jiff::Timestamp::now().duration_since(t);
    assert!(
        age >= jiff::SignedDuration::from_secs(-5) && age < jiff::SignedDuration::from_secs(300),
        "{v} is not about now"
    );
}

fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The current calendar month in UTC as `(start, end)`, end exclusive, in the API's form.
fn month_bounds() -> (String, String) {
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
    let start = now.date().first_of_month();
    let end = start.checked_add(jiff::Span::new().months(1)).unwrap();
    (
        format!("{start}T00:00:00.000Z"),
        format!("{end}T00:00:00.000Z"),
    )
}

/// Both month bounds, read before and after a request, so that a test running across the
/// turn of a month does not fail.
fn assert_current_month(start: &Value, end: &Value, before: &(String, String)) {
    let after = month_bounds();
    let got = (
        start.as_str().unwrap().to_string(),
        end.as_str().unwrap().to_string(),
    );
    assert!(
        got == *before || got == after,
        "period {got:?}, expected {before:?}"
    );
}

fn snippet(public_url: &str, id: &str, cookie_mode: bool) -> String {
    let cookie = if cookie_mode {
        " data-cookie-mode=\"true\""
    } else {
        ""
    };
    format!(
        "<script defer src=\"{public_url}/js/jetrack.js\" data-website-id=\"{id}\"{cookie}></script>"
    )
}

/// Checks every field of a `Website` (SPEC 1, 2.5).
fn assert_website(site: &Value, public_url: &str, want: &Value) {
    assert_eq!(
        keys_of(site),
        sorted(&[
            "id",
            "name",
            "domain",
            "timezone",
            "cookieMode",
            "retentionDays",
            "createdAt",
            "trackingSnippet"
        ]),
        "{site}"
    );
    let id = site["id"].as_str().unwrap();
    assert!(is_uuid_v4(id), "id is a UUID v4: {id}");
    for field in ["name", "domain", "timezone", "cookieMode", "retentionDays"] {
        assert_eq!(site[field], want[field], "{field} of {site}");
    }
    assert_recent(&site["createdAt"]);
    assert_eq!(
        site["trackingSnippet"],
        snippet(public_url, id, want["cookieMode"] == true),
        "{site}"
    );
}

fn find_site<'a>(sites: &'a Value, id: &str) -> Option<&'a Value> {
    sites.as_array().unwrap().iter().find(|s| s["id"] == id)
}

// ---------------------------------------------------------------------------------------------
// Account (SPEC 2.4)

#[test]
fn account_is_read_and_patched_with_either_key_header_and_the_session() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    let mut account_id = None;
    for (i, cred) in creds(&key, &session).into_iter().enumerate() {
        let (status, body) = get(&server, cred, "/account");
        assert_eq!(status, 200, "{}: {body}", cred.label());
        assert_eq!(body["meta"]["status"], 200);
        let a = &body["data"];
        assert_eq!(
            keys_of(a),
            sorted(&[
                "id",
                "email",
                "firstName",
                "lastName",
                "picture",
                "emailVerifiedAt",
                "createdAt"
            ]),
            "{a}"
        );
        assert!(is_uuid_v4(a["id"].as_str().unwrap()), "{a}");
        if let Some(id) = &account_id {
            assert_eq!(&a["id"], id, "the same account with every credential");
        }
        account_id = Some(a["id"].clone());
        assert_eq!(a["email"], "owner@example.com");
        assert_eq!(a["picture"], Value::Null);
        // Set by the setup page: the operator vouches for the address.
        assert_recent(&a["emailVerifiedAt"]);
        assert_recent(&a["createdAt"]);
        if i == 0 {
            assert_eq!(a["firstName"], "Ada");
            assert_eq!(a["lastName"], "Lovelace");
        }

        let first = format!("First{i}");
        let (status, body) = patch(
            &server,
            cred,
            "/account",
            json!({"firstName": first, "lastName": "Byron", "picture": "https://example.com/me.png"}),
        );
        assert_eq!(status, 200, "{}: {body}", cred.label());
        assert_eq!(body["data"]["firstName"], first.as_str());
        assert_eq!(body["data"]["lastName"], "Byron");
        assert_eq!(body["data"]["picture"], "https://example.com/me.png");
        assert_eq!(body["data"]["id"], a["id"]);
        assert_eq!(body["data"]["createdAt"], a["createdAt"]);
        assert_eq!(keys_of(&body["data"]), keys_of(a));
        // Only what is sent changes; null clears.
        let (status, body) = patch(&server, cred, "/account", json!({"picture": null}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["picture"], Value::Null);
        assert_eq!(body["data"]["firstName"], first.as_str());
        let (_, body) = get(&server, cred, "/account");
        assert_eq!(body["data"]["firstName"], first.as_str());
        assert_eq!(body["data"]["lastName"], "Byron");
    }
}

#[test]
fn account_patch_lists_every_bad_field() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    for cred in creds(&key, &session) {
        let (status, body) = patch(
            &server,
            cred,
            "/account",
            json!({"firstName": 5, "lastName": "x".repeat(101), "picture": "javascript:alert(1)", "email": "new@example.com"}),
        );
        assert_eq!(status, 400, "{body}");
        let errors = body["meta"]["errors"].as_array().unwrap();
        for field in ["firstName", "lastName", "picture", "email"] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.as_str().unwrap().starts_with(&format!("{field}: "))),
                "{field} is named: {body}"
            );
        }
        assert_eq!(errors.len(), 4, "{body}");
        let (_, body) = get(&server, cred, "/account");
        assert_eq!(body["data"]["firstName"], "Ada", "nothing changed");
        assert_eq!(body["data"]["email"], "owner@example.com");
    }
}

#[test]
fn subscription_and_usage_without_limits() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    create_site(
        &server,
        Cred::XApiKey(&key),
        json!({"name": "One", "domain": "one.example"}),
    );
    for cred in creds(&key, &session) {
        let before = month_bounds();
        let (status, body) = get(&server, cred, "/account/subscription");
        assert_eq!(status, 200, "{}: {body}", cred.label());
        let s = &body["data"];
        assert_eq!(
            keys_of(s),
            sorted(&[
                "plan",
                "status",
                "currentPeriodStart",
                "currentPeriodEnd",
                "limits"
            ]),
            "{s}"
        );
        assert_eq!(s["plan"], "self-hosted");
        assert_eq!(s["status"], "active");
        parse_ts(&s["currentPeriodStart"]);
        parse_ts(&s["currentPeriodEnd"]);
        assert_current_month(&s["currentPeriodStart"], &s["currentPeriodEnd"], &before);
        assert_eq!(
            s["limits"],
            json!({"pageviewsPerMonth": null, "websites": null})
        );

        let before = month_bounds();
        let (status, body) = get(&server, cred, "/account/usage");
        assert_eq!(status, 200, "{}: {body}", cred.label());
        let u = &body["data"];
        assert_eq!(
            keys_of(u),
            sorted(&["currentPeriod", "pageviews", "websites"]),
            "{u}"
        );
        assert_eq!(keys_of(&u["currentPeriod"]), sorted(&["start", "end"]));
        assert_current_month(
            &u["currentPeriod"]["start"],
            &u["currentPeriod"]["end"],
            &before,
        );
        assert_eq!(
            u["pageviews"],
            json!({"used": 0, "limit": null, "percentage": null})
        );
        assert_eq!(u["websites"], json!({"used": 1, "limit": null}));
    }
}

#[test]
fn usage_percentage_and_limits_set_by_the_operator_apply_at_once() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    create_site(
        &server,
        Cred::Session(&session),
        json!({"name": "One", "domain": "one.example"}),
    );
    // Changed from the shell while the server runs: the next request sees it (SPEC 6).
    set_limits(
        &sb,
        "owner@example.com",
        &["--pageviews-per-month", "1000", "--websites", "3"],
    );
    for cred in creds(&key, &session) {
        let (status, body) = get(&server, cred, "/account/usage");
        assert_eq!(status, 200, "{body}");
        let u = &body["data"];
        assert_eq!(u["pageviews"]["used"], 0, "{}: {u}", cred.label());
        assert_eq!(u["pageviews"]["limit"], 1000, "{}: {u}", cred.label());
        // 0 / 1000 × 100 with 2 decimals: a number, not null.
        assert!(u["pageviews"]["percentage"].is_number(), "{u}");
        assert_eq!(u["pageviews"]["percentage"].as_f64(), Some(0.0), "{u}");
        assert_eq!(u["websites"], json!({"used": 1, "limit": 3}), "{u}");

        let (status, body) = get(&server, cred, "/account/subscription");
        assert_eq!(status, 200);
        assert_eq!(
            body["data"]["limits"],
            json!({"pageviewsPerMonth": 1000, "websites": 3}),
            "{}",
            cred.label()
        );
    }
    set_limits(
        &sb,
        "owner@example.com",
        &["--pageviews-per-month", "none", "--websites", "none"],
    );
    for cred in creds(&key, &session) {
        let (_, body) = get(&server, cred, "/account/usage");
        assert_eq!(
            body["data"]["pageviews"],
            json!({"used": 0, "limit": null, "percentage": null}),
            "{}",
            cred.label()
        );
        assert_eq!(body["data"]["websites"]["limit"], Value::Null);
    }
}

// ---------------------------------------------------------------------------------------------
// Websites (SPEC 2.5)

#[test]
fn websites_crud_with_either_key_header_and_the_session() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    let public = server.base.clone();
    let mut made: Vec<String> = Vec::new();
    for (i, cred) in creds(&key, &session).into_iter().enumerate() {
        let label = cred.label();
        // Defaults.
        let domain = format!("site{i}.example.com");
        let (status, body) = post(
            &server,
            cred,
            "/websites",
            json!({"name": format!("Site {i}"), "domain": domain}),
        );
        assert_eq!(status, 201, "{label}: {body}");
        assert_eq!(body["meta"]["status"], 201);
        let site = body["data"].clone();
        assert_website(
            &site,
            &public,
            &json!({"name": format!("Site {i}"), "domain": domain, "timezone": "UTC",
                    "cookieMode": false, "retentionDays": null}),
        );
        let id = site["id"].as_str().unwrap().to_string();
        made.push(id.clone());
        std::thread::sleep(Duration::from_millis(5));

        // Every field given.
        let full = json!({"name": format!("Full {i}"), "domain": format!("https://www.Full{i}.Example.org/"),
                          "timezone": "Europe/Berlin", "cookieMode": true, "retentionDays": 365});
        let (status, body) = post(&server, cred, "/websites", full);
        assert_eq!(status, 201, "{label}: {body}");
        let second = body["data"].clone();
        assert_website(
            &second,
            &public,
            &json!({"name": format!("Full {i}"), "domain": format!("full{i}.example.org"),
                    "timezone": "Europe/Berlin", "cookieMode": true, "retentionDays": 365}),
        );
        let second_id = second["id"].as_str().unwrap().to_string();
        made.push(second_id.clone());
        std::thread::sleep(Duration::from_millis(5));

        // GET one.
        let (status, body) = get(&server, cred, &format!("/websites/{id}"));
        assert_eq!(status, 200, "{label}: {body}");
        assert_eq!(body["data"], site, "{label}");

        // List: every website of the account, ordered by createdAt.
        let (status, body) = get(&server, cred, "/websites");
        assert_eq!(status, 200, "{label}: {body}");
        assert_eq!(body["meta"]["status"], 200);
        let ids: Vec<&str> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, made, "{label}: in creation order");
        assert_eq!(find_site(&body["data"], &id), Some(&site));
        for s in body["data"].as_array().unwrap() {
            assert_eq!(keys_of(s).len(), 8, "{s}");
        }

        // PATCH: only what is sent changes.
        let path = format!("/websites/{id}");
        let (status, body) = patch(
            &server,
            cred,
            &path,
            json!({"name": "Renamed", "timezone": "Asia/Kolkata", "cookieMode": true, "retentionDays": 30}),
        );
        assert_eq!(status, 200, "{label}: {body}");
        let patched = body["data"].clone();
        assert_website(
            &patched,
            &public,
            &json!({"name": "Renamed", "domain": domain, "timezone": "Asia/Kolkata",
                    "cookieMode": true, "retentionDays": 30}),
        );
        assert_eq!(patched["id"], site["id"]);
        assert_eq!(patched["createdAt"], site["createdAt"]);
        assert!(
            patched["trackingSnippet"]
                .as_str()
                .unwrap()
                .ends_with(" data-cookie-mode=\"true\"></script>")
        );
        let (status, body) = patch(
            &server,
            cred,
            &path,
            json!({"domain": format!("http://WWW.Moved{i}.example.com"), "cookieMode": false, "retentionDays": null}),
        );
        assert_eq!(status, 200, "{label}: {body}");
        assert_website(
            &body["data"],
            &public,
            &json!({"name": "Renamed", "domain": format!("moved{i}.example.com"), "timezone": "Asia/Kolkata",
                    "cookieMode": false, "retentionDays": null}),
        );
        let (_, body) = patch(&server, cred, &path, json!({}));
        assert_eq!(body["data"]["domain"], format!("moved{i}.example.com"));
        let (_, body) = get(&server, cred, &path);
        assert_eq!(body["data"]["name"], "Renamed", "the change is stored");
        assert_eq!(body["data"]["timezone"], "Asia/Kolkata");

        // DELETE, then it is gone.
        let (status, body) = delete(&server, cred, &path);
        assert_eq!(status, 200, "{label}: {body}");
        assert_eq!(body["data"], json!({"id": id, "deleted": true}));
        made.retain(|m| *m != id);
        for method in [Method::GET, Method::DELETE] {
            let (status, body) = call(&server, cred, method.clone(), &path, None);
            assert_eq!(status, 404, "{label} {method} after delete: {body}");
        }
        let (status, _) = patch(&server, cred, &path, json!({"name": "Ghost"}));
        assert_eq!(status, 404, "{label} PATCH after delete");
        let (_, body) = get(&server, cred, "/websites");
        assert!(find_site(&body["data"], &id).is_none(), "{body}");
    }
}

#[test]
fn tracking_snippet_is_built_from_the_public_url() {
    let sb = Sandbox::new();
    // The account and its key come from the shell: behind https the session cookie is
    // `Secure`, which a plain-http test client does not send back.
    add_account(&sb, "ops@example.com");
    let out = cli(&sb, &["keys", "create", "--email", "ops@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out).trim().to_string();
    let server = Server::start(&sb, &["--public-url", "https://stats.example.com"]);
    for (i, cred) in [Cred::XApiKey(&key), Cred::Bearer(&key)]
        .into_iter()
        .enumerate()
    {
        let site = create_site(
            &server,
            cred,
            json!({"name": "Plain", "domain": format!("plain{i}.example.com")}),
        );
        let id = site["id"].as_str().unwrap();
        assert_eq!(
            site["trackingSnippet"],
            format!(
                "<script defer src=\"https://stats.example.com/js/jetrack.js\" data-website-id=\"{id}\"></script>"
            )
        );
        let site = create_site(
            &server,
            cred,
            json!({"name": "Cookies", "domain": format!("cookies{i}.example.com"), "cookieMode": true}),
        );
        let id = site["id"].as_str().unwrap();
        assert_eq!(
            site["trackingSnippet"],
            format!(
                "<script defer src=\"https://stats.example.com/js/jetrack.js\" data-website-id=\"{id}\" data-cookie-mode=\"true\"></script>"
            )
        );
        let (_, body) = get(&server, cred, &format!("/websites/{id}"));
        assert_eq!(body["data"]["trackingSnippet"], site["trackingSnippet"]);
        let (_, body) = patch(
            &server,
            cred,
            &format!("/websites/{id}"),
            json!({"cookieMode": false}),
        );
        assert_eq!(
            body["data"]["trackingSnippet"],
            format!(
                "<script defer src=\"https://stats.example.com/js/jetrack.js\" data-website-id=\"{id}\"></script>"
            )
        );
    }
}

/// Every entry of `meta.errors` whose field is `field`.
fn errors_for<'a>(body: &'a Value, field: &str) -> Vec<&'a str> {
    body["meta"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("meta.errors: {body}"))
        .iter()
        .map(|e| e.as_str().unwrap())
        .filter(|e| e.starts_with(&format!("{field}: ")))
        .collect()
}

fn assert_invalid(body: &Value, status: u16, fields: &[&str]) {
    assert_eq!(status, 400, "{body}");
    for field in fields {
        assert_eq!(
            errors_for(body, field).len(),
            1,
            "one error names {field}: {body}"
        );
    }
    assert_eq!(
        body["meta"]["errors"].as_array().unwrap().len(),
        fields.len(),
        "one error per bad field: {body}"
    );
    assert!(
        !body["meta"]["message"].as_str().unwrap().is_empty(),
        "{body}"
    );
}

#[test]
fn website_validation_names_every_bad_field() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    let keep = create_site(
        &server,
        Cred::XApiKey(&key),
        json!({"name": "Keep", "domain": "keep.example.com", "retentionDays": 10}),
    );
    let keep_path = format!("/websites/{}", keep["id"].as_str().unwrap());
    for cred in creds(&key, &session) {
        let label = cred.label();
        // Several bad fields at once: every one is listed.
        let all_bad = json!({"name": "", "domain": "example.com/path", "timezone": "Mars/Olympus",
                             "retentionDays": 0, "cookieMode": "yes", "color": "red"});
        let fields = [
            "name",
            "domain",
            "timezone",
            "retentionDays",
            "cookieMode",
            "color",
        ];
        let (status, body) = post(&server, cred, "/websites", all_bad.clone());
        assert_invalid(&body, status, &fields);
        assert_eq!(errors_for(&body, "color"), ["color: unknown field"]);
        let (status, body) = patch(&server, cred, &keep_path, all_bad);
        assert_invalid(&body, status, &fields);

        let (status, body) = post(
            &server,
            cred,
            "/websites",
            json!({"name": "x".repeat(101), "domain": "example.com:8080",
                   "timezone": "", "retentionDays": 3651}),
        );
        assert_invalid(
            &body,
            status,
            &["name", "domain", "timezone", "retentionDays"],
        );
        let (status, body) = patch(
            &server,
            cred,
            &keep_path,
            json!({"name": "x".repeat(101), "domain": "ftp://x.com", "retentionDays": "x"}),
        );
        assert_invalid(&body, status, &["name", "domain", "retentionDays"]);
        let (status, body) = post(
            &server,
            cred,
            "/websites",
            json!({"name": "Ok", "domain": "not a domain", "retentionDays": -1, "cookieMode": 1}),
        );
        assert_invalid(&body, status, &["domain", "retentionDays", "cookieMode"]);
        let (status, body) = post(
            &server,
            cred,
            "/websites",
            json!({"name": 7, "domain": null, "retentionDays": 1.5}),
        );
        assert_invalid(&body, status, &["name", "domain", "retentionDays"]);

        // Required fields.
        let (status, body) = post(&server, cred, "/websites", json!({}));
        assert_invalid(&body, status, &["name", "domain"]);
        assert_eq!(errors_for(&body, "name"), ["name: is required"]);
        assert_eq!(errors_for(&body, "domain"), ["domain: is required"]);

        for domain in [
            "example.com/path",
            "example.com:8080",
            "ftp://x.com",
            "not a domain",
            "https://example.com/blog",
            "",
        ] {
            let (status, body) = post(
                &server,
                cred,
                "/websites",
                json!({"name": "Ok", "domain": domain}),
            );
            assert_invalid(&body, status, &["domain"]);
        }
        let (status, body) = patch(
            &server,
            cred,
            &keep_path,
            json!({"timezone": "Mars/Olympus"}),
        );
        assert_invalid(&body, status, &["timezone"]);

        // Nothing was created or changed by any of it.
        let (_, body) = get(&server, cred, "/websites");
        assert_eq!(body["data"].as_array().unwrap().len(), 1, "{label}: {body}");
        assert_eq!(body["data"][0], keep, "{label}");
    }

    // The edges that are allowed.
    let cred = Cred::XApiKey(&key);
    let site = create_site(
        &server,
        cred,
        json!({"name": "n".repeat(100), "domain": "https://www.Example.com/", "retentionDays": 3650, "timezone": "America/New_York"}),
    );
    assert_eq!(site["domain"], "example.com");
    assert_eq!(site["name"], "n".repeat(100));
    assert_eq!(site["retentionDays"], 3650);
    let site = create_site(
        &server,
        cred,
        json!({"name": "L", "domain": "localhost", "retentionDays": 1, "cookieMode": false, "timezone": null}),
    );
    assert_eq!(site["domain"], "localhost");
    assert_eq!(site["retentionDays"], 1);
    assert_eq!(site["timezone"], "UTC");
    let site = create_site(&server, cred, json!({"name": "IP", "domain": "127.0.0.1"}));
    assert_eq!(site["domain"], "127.0.0.1");
    let site = create_site(
        &server,
        cred,
        json!({"name": "Sub", "domain": "Blog.Example.com"}),
    );
    assert_eq!(site["domain"], "blog.example.com");
}

#[test]
fn time_zones_are_kept_under_their_iana_name() {
    // SPEC 1, 2.5: `timezone` is an IANA name. A name in another case is either refused
    // (400 naming `timezone`) or stored as the IANA name, never as typed.
    let sb = Sandbox::new();
    let (server, _session, key) = started(&sb, &[]);
    let cred = Cred::XApiKey(&key);
    for (i, (typed, iana)) in [
        ("europe/berlin", "Europe/Berlin"),
        ("asia/KOLKATA", "Asia/Kolkata"),
        ("utc", "UTC"),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = post(
            &server,
            cred,
            "/websites",
            json!({"name": "Tz", "domain": format!("tz{i}.example.com"), "timezone": typed}),
        );
        match status {
            201 => assert_eq!(body["data"]["timezone"], iana, "{typed}: {body}"),
            _ => assert_invalid(&body, status, &["timezone"]),
        }
    }
    let site = create_site(
        &server,
        cred,
        json!({"name": "P", "domain": "p.example.com"}),
    );
    let (status, body) = patch(
        &server,
        cred,
        &format!("/websites/{}", site["id"].as_str().unwrap()),
        json!({"timezone": "america/new_york"}),
    );
    match status {
        200 => assert_eq!(body["data"]["timezone"], "America/New_York", "{body}"),
        _ => assert_invalid(&body, status, &["timezone"]),
    }
}

#[test]
fn numbers_that_are_not_ip_literals_are_not_domains() {
    // SPEC 2.5: `domain` is a host name, an IP literal or `localhost`; anything else → 400.
    // A single label is refused (`intranet`), so a bare number must be too, and an address is
    // kept as written (dotted quad or IPv6), never reinterpreted.
    let sb = Sandbox::new();
    let (server, _session, key) = started(&sb, &[]);
    for domain in ["999", "1.2.3", "0x7f.1", "017.0.0.1"] {
        let (status, body) = post(
            &server,
            Cred::XApiKey(&key),
            "/websites",
            json!({"name": "N", "domain": domain}),
        );
        assert_invalid(&body, status, &["domain"]);
    }
}

#[test]
fn malformed_oversized_unknown_and_misrouted_requests_are_enveloped() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    let site = create_site(
        &server,
        Cred::XApiKey(&key),
        json!({"name": "S", "domain": "s.example.com"}),
    );
    let site_path = format!("/websites/{}", site["id"].as_str().unwrap());
    for cred in creds(&key, &session) {
        let label = cred.label();
        for (method, path) in [
            (Method::POST, "/websites"),
            (Method::PATCH, site_path.as_str()),
        ] {
            let send = |body: String| {
                envelope(
                    builder(&server, cred, method.clone(), path)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .unwrap(),
                )
            };
            let (status, body) = send("{\"name\": ".into());
            assert_eq!(status, 400, "{label} {method} {path}: {body}");
            assert!(
                body["meta"]["errors"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("body: malformed JSON"),
                "{body}"
            );
            let (status, body) = send("[]".into());
            assert_eq!(status, 400, "{body}");
            let big = format!(
                "{{\"name\": \"{}\", \"domain\": \"big.example.com\"}}",
                "a".repeat(65 * 1024)
            );
            let (status, body) = send(big);
            assert_eq!(status, 413, "{label} {method} {path}: {body}");
            // 64 KiB exactly is read (and refused for its too long name); one byte more is not.
            let sized = |len: usize| {
                let frame = "{\"name\": \"\", \"domain\": \"big.example.com\"}".len();
                format!(
                    "{{\"name\": \"{}\", \"domain\": \"big.example.com\"}}",
                    "a".repeat(len - frame)
                )
            };
            let (status, body) = send(sized(64 * 1024));
            assert_eq!(status, 400, "{label} {method} {path}: {body}");
            assert_eq!(errors_for(&body, "name").len(), 1, "{body}");
            let (status, _) = send(sized(64 * 1024 + 1));
            assert_eq!(status, 413, "{label} {method} {path}");
            // The same without Content-Length (chunked).
            let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(
                sized(64 * 1024 + 1).into_bytes(),
            ));
            let (status, _) = envelope(
                builder(&server, cred, method.clone(), path)
                    .header("content-type", "application/json")
                    .body(chunked)
                    .send()
                    .unwrap(),
            );
            assert_eq!(status, 413, "{label} {method} {path} chunked");
        }
        let (status, body) = get(&server, cred, "/websites?x=1&sort=name");
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["meta"]["errors"],
            json!([
                "x: unknown query parameter",
                "sort: unknown query parameter"
            ])
        );
        let (status, body) = get(&server, cred, &format!("{site_path}?verbose=true"));
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["meta"]["errors"],
            json!(["verbose: unknown query parameter"])
        );
        let (status, body) = get(&server, cred, "/account/usage?month=2025-01");
        assert_eq!(status, 400, "{body}");

        let resp = builder(&server, cred, Method::PUT, "/websites")
            .json(&json!({}))
            .send()
            .unwrap();
        let allow = resp.headers()["allow"].to_str().unwrap().to_string();
        let (status, body) = envelope(resp);
        assert_eq!(status, 405, "{label}: {body}");
        assert_eq!(
            sorted(&allow.split(", ").collect::<Vec<_>>()),
            sorted(&["GET", "POST"])
        );
        let (status, _) = call(&server, cred, Method::POST, &site_path, Some(json!({})));
        assert_eq!(status, 405, "{label}: POST /websites/{{id}}");
        let (status, _) = call(&server, cred, Method::DELETE, "/websites", None);
        assert_eq!(status, 405);
        let (status, _) = call(&server, cred, Method::PUT, "/account/usage", None);
        assert_eq!(status, 405);

        for path in [
            "/website",
            "/websites/x/y/z",
            &format!("{site_path}/nope"),
            "/accounts",
        ] {
            let (status, body) = get(&server, cred, path);
            assert_eq!(status, 404, "{label} {path}: {body}");
            assert_eq!(body["meta"]["message"], "No such API route");
        }
    }
    // Still just the one website.
    let (_, body) = get(&server, Cred::XApiKey(&key), "/websites");
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
}

#[test]
fn credentials_are_required_and_checked() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    let site = create_site(
        &server,
        Cred::XApiKey(&key),
        json!({"name": "S", "domain": "s.example.com"}),
    );
    let site_path = format!("/websites/{}", site["id"].as_str().unwrap());
    let c = client();
    for (method, path) in [
        (Method::GET, "/account"),
        (Method::PATCH, "/account"),
        (Method::GET, "/account/subscription"),
        (Method::GET, "/account/usage"),
        (Method::GET, "/websites"),
        (Method::POST, "/websites"),
        (Method::GET, site_path.as_str()),
        (Method::PATCH, site_path.as_str()),
        (Method::DELETE, site_path.as_str()),
    ] {
        let resp = c
            .request(method.clone(), server.api(path))
            .json(&json!({"name": "x", "domain": "y.example.com"}))
            .send()
            .unwrap();
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"jetrack\""
        );
        let (status, _) = envelope(resp);
        assert_eq!(status, 401, "{method} {path} without a credential");
        let (status, _) = envelope(
            c.request(method.clone(), server.api(path))
                .header("authorization", format!("Bearer {}x", &key[..71]))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 401, "{method} {path} with an unknown key");
    }
    // The same key in both headers is fine; two different ones are refused (SPEC 2.1).
    let (status, _) = envelope(
        c.get(server.api("/websites"))
            .header("x-api-key", &key)
            .header("authorization", format!("bearer {key}"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    let other = common::api_key(&server, &session);
    let (status, _) = envelope(
        c.get(server.api("/websites"))
            .header("x-api-key", &key)
            .header("authorization", format!("Bearer {other}"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    // A session that changes state without its CSRF token changes nothing.
    let (status, body) = envelope(
        session
            .client
            .post(server.api("/websites"))
            .json(&json!({"name": "NoCsrf", "domain": "nocsrf.example.com"}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = envelope(
        session
            .client
            .delete(server.api(&site_path))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403);
    let (_, body) = get(&server, Cred::Session(&session), "/websites");
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
}

#[test]
fn duplicate_domains_conflict_within_one_account_only() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    add_account(&sb, "other@example.com");
    let other = server.login("other@example.com", PASSWORD);
    let other_key = common::api_key(&server, &other);
    let first = create_site(
        &server,
        Cred::XApiKey(&key),
        json!({"name": "Example", "domain": "example.com"}),
    );
    let second = create_site(
        &server,
        Cred::XApiKey(&key),
        json!({"name": "Blog", "domain": "blog.example.com"}),
    );
    let second_path = format!("/websites/{}", second["id"].as_str().unwrap());
    for cred in creds(&key, &session) {
        let label = cred.label();
        for domain in ["example.com", "https://www.Example.com/", "EXAMPLE.COM"] {
            let (status, body) = post(
                &server,
                cred,
                "/websites",
                json!({"name": "Again", "domain": domain}),
            );
            assert_eq!(status, 409, "{label} {domain}: {body}");
        }
        let (status, body) = patch(
            &server,
            cred,
            &second_path,
            json!({"domain": "www.example.com"}),
        );
        assert_eq!(status, 409, "{label} PATCH: {body}");
        // Renaming a site to its own domain is no conflict.
        let (status, body) = patch(
            &server,
            cred,
            &second_path,
            json!({"domain": "blog.example.com", "name": "Blog"}),
        );
        assert_eq!(status, 200, "{label}: {body}");
    }
    let (_, body) = get(&server, Cred::XApiKey(&key), "/websites");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][0], first);
    assert_eq!(body["data"][1]["domain"], "blog.example.com");

    // Another account may track the same domain.
    for (cred, domain) in [
        (Cred::XApiKey(&other_key), "example.com"),
        (Cred::Session(&other), "blog.example.com"),
    ] {
        let site = create_site(&server, cred, json!({"name": "Mine too", "domain": domain}));
        assert_eq!(site["domain"], domain);
        assert_ne!(site["id"], first["id"]);
    }
    let (_, body) = get(&server, Cred::Bearer(&other_key), "/websites");
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");
    assert!(find_site(&body["data"], first["id"].as_str().unwrap()).is_none());
}

#[test]
fn the_website_limit_is_enforced() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    set_limits(&sb, "owner@example.com", &["--websites", "1"]);
    for cred in creds(&key, &session) {
        let label = cred.label();
        let site = create_site(
            &server,
            cred,
            json!({"name": "Only", "domain": "only.example.com"}),
        );
        let (status, body) = post(
            &server,
            cred,
            "/websites",
            json!({"name": "Two", "domain": "two.example.com"}),
        );
        assert_eq!(status, 403, "{label}: {body}");
        let (_, body) = get(&server, cred, "/account/usage");
        assert_eq!(
            body["data"]["websites"],
            json!({"used": 1, "limit": 1}),
            "{label}"
        );
        let (_, body) = get(&server, cred, "/websites");
        assert_eq!(body["data"].as_array().unwrap().len(), 1, "{label}");
        // Deleting frees the place again.
        let (status, _) = delete(
            &server,
            cred,
            &format!("/websites/{}", site["id"].as_str().unwrap()),
        );
        assert_eq!(status, 200);
    }
    // Raising the limit from the shell applies at once.
    set_limits(&sb, "owner@example.com", &["--websites", "2"]);
    for (i, cred) in creds(&key, &session).into_iter().enumerate() {
        if i > 0 {
            // Start each credential from an empty account.
            let (_, body) = get(&server, cred, "/websites");
            for s in body["data"].as_array().unwrap() {
                delete(
                    &server,
                    cred,
                    &format!("/websites/{}", s["id"].as_str().unwrap()),
                );
            }
        }
        create_site(
            &server,
            cred,
            json!({"name": "A", "domain": "a.example.com"}),
        );
        create_site(
            &server,
            cred,
            json!({"name": "B", "domain": "b.example.com"}),
        );
        let (status, body) = post(
            &server,
            cred,
            "/websites",
            json!({"name": "C", "domain": "c.example.com"}),
        );
        assert_eq!(status, 403, "{}: {body}", cred.label());
    }
}

#[test]
fn concurrent_creations_keep_one_website_per_domain_and_the_limit() {
    let sb = Sandbox::new();
    let (server, _session, key) = started(&sb, &[]);
    let cred = Cred::XApiKey(&key);
    let statuses = |domains: Vec<String>| -> Vec<u16> {
        std::thread::scope(|s| {
            let handles: Vec<_> = domains
                .into_iter()
                .map(|d| {
                    let server = &server;
                    s.spawn(move || {
                        post(
                            server,
                            cred,
                            "/websites",
                            json!({"name": "Race", "domain": d}),
                        )
                        .0
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let mut got = statuses(vec!["race.example.com".to_string(); 8]);
    got.sort_unstable();
    assert_eq!(got, [201, 409, 409, 409, 409, 409, 409, 409]);

    set_limits(&sb, "owner@example.com", &["--websites", "3"]);
    let mut got = statuses((0..8).map(|i| format!("race{i}.example.com")).collect());
    got.sort_unstable();
    assert_eq!(got, [201, 201, 403, 403, 403, 403, 403, 403]);
    let (_, body) = get(&server, cred, "/websites");
    assert_eq!(body["data"].as_array().unwrap().len(), 3, "{body}");

    // Deleting one website from many requests at once: one succeeds.
    let path = format!("/websites/{}", body["data"][0]["id"].as_str().unwrap());
    let mut got: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| s.spawn(|| delete(&server, cred, &path).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    got.sort_unstable();
    assert_eq!(got, [200, 404, 404, 404, 404, 404]);
}

#[test]
fn another_accounts_website_is_forbidden_and_an_unknown_one_not_found() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    add_account(&sb, "other@example.com");
    let other = server.login("other@example.com", PASSWORD);
    let theirs = create_site(
        &server,
        Cred::Session(&other),
        json!({"name": "Theirs", "domain": "theirs.example.com"}),
    );
    let theirs_path = format!("/websites/{}", theirs["id"].as_str().unwrap());
    let missing = format!("/websites/{}", uuid::Uuid::new_v4());
    for cred in creds(&key, &session) {
        let label = cred.label();
        for (method, body) in [
            (Method::GET, None),
            (Method::PATCH, Some(json!({"name": "Mine now"}))),
            (Method::DELETE, None),
        ] {
            let (status, resp) = call(&server, cred, method.clone(), &theirs_path, body.clone());
            assert_eq!(
                status, 403,
                "{label} {method} another account's website: {resp}"
            );
            assert_eq!(
                resp["meta"]["message"], "You do not have access to this website",
                "{label} {method}"
            );
            let (status, resp) = call(&server, cred, method.clone(), &missing, body);
            assert_eq!(status, 404, "{label} {method} a random id: {resp}");
        }
        for bogus in ["/websites/not-a-uuid", "/websites/%20"] {
            let (status, resp) = get(&server, cred, bogus);
            assert_eq!(status, 404, "{label} {bogus}: {resp}");
        }
        let (_, body) = get(&server, cred, "/websites");
        assert_eq!(body["data"], json!([]), "{label}: not listed");
    }
    // Untouched.
    let (status, body) = get(&server, Cred::Session(&other), &theirs_path);
    assert_eq!(status, 200);
    assert_eq!(body["data"], theirs);
}

#[test]
fn a_read_key_cannot_change_anything() {
    let sb = Sandbox::new();
    let (server, session, _) = started(&sb, &[]);
    let read = common::create_api_key(&server, &session, json!({"scope": "read"}));
    assert_eq!(read["scope"], "read");
    let read_key = read["key"].as_str().unwrap().to_string();
    let site = create_site(
        &server,
        Cred::Session(&session),
        json!({"name": "S", "domain": "s.example.com"}),
    );
    let path = format!("/websites/{}", site["id"].as_str().unwrap());
    for cred in [Cred::XApiKey(&read_key), Cred::Bearer(&read_key)] {
        let label = cred.label();
        for p in [
            "/account",
            "/account/subscription",
            "/account/usage",
            "/websites",
            path.as_str(),
        ] {
            let (status, body) = get(&server, cred, p);
            assert_eq!(status, 200, "{label} GET {p}: {body}");
        }
        let (status, body) = post(
            &server,
            cred,
            "/websites",
            json!({"name": "New", "domain": "new.example.com"}),
        );
        assert_eq!(status, 403, "{label} POST: {body}");
        let (status, body) = patch(&server, cred, &path, json!({"name": "Changed"}));
        assert_eq!(status, 403, "{label} PATCH: {body}");
        let (status, body) = delete(&server, cred, &path);
        assert_eq!(status, 403, "{label} DELETE: {body}");
        let (status, body) = patch(&server, cred, "/account", json!({"firstName": "Changed"}));
        assert_eq!(status, 403, "{label} PATCH /account: {body}");
    }
    let (_, body) = get(&server, Cred::Session(&session), "/websites");
    assert_eq!(body["data"], json!([site]), "nothing changed");
    let (_, body) = get(&server, Cred::Session(&session), "/account");
    assert_eq!(body["data"]["firstName"], "Ada");
}

#[test]
fn the_audit_log_records_websites_created_and_deleted() {
    let sb = Sandbox::new();
    let (server, session, key) = started(&sb, &[]);
    let mut expected: Vec<(&str, String)> = Vec::new();
    for (i, cred) in creds(&key, &session).into_iter().enumerate() {
        let domain = format!("audited{i}.example.com");
        let site = create_site(
            &server,
            cred,
            json!({"name": format!("Audited {i}"), "domain": format!("https://www.{domain}/")}),
        );
        expected.push(("website_created", domain.clone()));
        let (status, _) = delete(
            &server,
            cred,
            &format!("/websites/{}", site["id"].as_str().unwrap()),
        );
        assert_eq!(status, 200);
        expected.push(("website_deleted", domain));
    }
    let (status, body) = get(
        &server,
        Cred::Session(&session),
        "/account/audit-log?limit=100",
    );
    assert_eq!(status, 200, "{body}");
    let entries: Vec<&Value> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("website_"))
        .collect();
    assert_eq!(entries.len(), expected.len(), "{body}");
    // Newest first.
    for (entry, (action, domain)) in entries.iter().zip(expected.iter().rev()) {
        assert_eq!(entry["action"], *action, "{body}");
        let detail = entry["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains(domain.as_str()),
            "{action} names {domain}: {entry}"
        );
        let ip = entry["ip"].as_str().unwrap_or("");
        assert!(
            ip.starts_with("127.0.0.") && ip != "127.0.0.1",
            "a truncated address: {entry}"
        );
        assert_recent(&entry["at"]);
        assert!(!detail.contains("bj_live_"), "{entry}");
    }
}

// ---------------------------------------------------------------------------------------------
// `jetrack websites` (SPEC 6)

fn assert_one_line_failure(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "exit 1: {}", stderr(out));
    let err = stderr(out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains(" INFO "))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {err:?}");
    assert!(lines[0].contains(needle), "{needle:?} in {err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(
        stdout(out).trim().is_empty(),
        "nothing on stdout: {}",
        stdout(out)
    );
}

fn websites_add(sb: &Sandbox, email: &str, name: &str, domain: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "websites", "add", "--email", email, "--name", name, "--domain", domain,
    ];
    args.extend_from_slice(extra);
    cli(sb, &args)
}

#[test]
fn websites_add_prints_the_snippet_and_list_shows_it() {
    let sb = Sandbox::new();
    add_account(&sb, "cli@example.com");
    add_account(&sb, "second@example.com");
    let out = websites_add(
        &sb,
        "cli@example.com",
        "From the shell",
        "https://www.Shell.Example.com/",
        &[
            "--timezone",
            "Europe/Paris",
            "--public-url",
            "https://stats.example.com",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert_eq!(printed.lines().count(), 1, "one line: {printed:?}");
    let line = printed.trim_end_matches('\n');
    let id = line
        .strip_prefix(
            "<script defer src=\"https://stats.example.com/js/jetrack.js\" data-website-id=\"",
        )
        .and_then(|r| r.strip_suffix("\"></script>"))
        .unwrap_or_else(|| panic!("a snippet: {line:?}"));
    assert!(is_uuid_v4(id), "{id}");

    // Without --timezone: UTC.
    let out = websites_add(
        &sb,
        "second@example.com",
        "Second",
        "second.example.org",
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(
        stdout(&out).starts_with("<script defer src=\""),
        "{}",
        stdout(&out)
    );

    let out = cli(&sb, &["websites", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    let row = list
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("{id} listed: {list}"));
    for part in [
        "cli@example.com",
        "From the shell",
        "shell.example.com",
        "Europe/Paris",
    ] {
        assert!(row.contains(part), "{part} in {row}");
    }
    let row = list
        .lines()
        .find(|l| l.contains("second.example.org"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains(" UTC "), "{row}");
    let out = cli(&sb, &["websites", "list", "--email", "cli@example.com"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains(id));
    assert!(
        !stdout(&out).contains("second.example.org"),
        "{}",
        stdout(&out)
    );

    // Refusals: one line, exit 1, nothing created.
    for (email, domain, extra, needle) in [
        ("cli@example.com", "example.com/path", &[][..], "domain"),
        ("cli@example.com", "example.com:8080", &[][..], "domain"),
        ("cli@example.com", "not a domain", &[][..], "domain"),
        (
            "cli@example.com",
            "ok.example.com",
            &["--timezone", "Mars/Olympus"][..],
            "timezone",
        ),
        (
            "nobody@example.com",
            "ok.example.com",
            &[][..],
            "nobody@example.com",
        ),
        (
            "cli@example.com",
            "shell.example.com",
            &[][..],
            "shell.example.com",
        ),
    ] {
        let out = websites_add(&sb, email, "Bad", domain, extra);
        assert_one_line_failure(&out, needle);
    }
    set_limits(&sb, "second@example.com", &["--websites", "1"]);
    let out = websites_add(&sb, "second@example.com", "Over", "over.example.org", &[]);
    assert_one_line_failure(&out, "website");
    let out = cli(&sb, &["websites", "list", "--email", "nobody@example.com"]);
    assert_eq!(out.status.code(), Some(1));
    let out = cli(&sb, &["websites", "list"]);
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.contains("Bad") || l.contains("Over"))
            .count(),
        0
    );

    // The API shows the same website, with the same snippet when the public URL matches, and
    // the creation in the audit log.
    let server = Server::start(&sb, &[]);
    let session = server.login("cli@example.com", PASSWORD);
    let (status, body) = get(&server, Cred::Session(&session), &format!("/websites/{id}"));
    assert_eq!(status, 200, "{body}");
    assert_website(
        &body["data"],
        &server.base,
        &json!({"name": "From the shell", "domain": "shell.example.com", "timezone": "Europe/Paris",
                "cookieMode": false, "retentionDays": null}),
    );
    let (_, body) = get(&server, Cred::Session(&session), "/account/audit-log");
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "website_created"
                && e["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("shell.example.com")),
        "{body}"
    );
    server.stop();
    let server = Server::start(&sb, &["--public-url", "https://stats.example.com"]);
    let key = {
        let out = cli(&sb, &["keys", "create", "--email", "cli@example.com"]);
        stdout(&out).trim().to_string()
    };
    let (_, body) = get(&server, Cred::XApiKey(&key), &format!("/websites/{id}"));
    assert_eq!(body["data"]["trackingSnippet"], line);
}
