//! API v1 foundations (SPEC 2, 2.3, 2.4, 2.7): the envelope, routing errors, bodies, setup,
//! login, the session and the account endpoints, against the real server.

mod common;

use common::{PASSWORD, Sandbox, Server, client, envelope};
use serde_json::{Value, json};

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_in_the_envelope() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let c = client();
    let (status, body) = envelope(c.get(server.api("/no/such/route")).send().unwrap());
    assert_eq!(status, 404);
    assert_eq!(body["meta"]["message"], "No such API route");
    let (status, _) = envelope(c.delete(server.api("/nothing")).send().unwrap());
    assert_eq!(status, 404, "an unknown path is never a 405");
    let resp = c.delete(server.api("/auth/login")).send().unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    let (status, body) = envelope(resp);
    assert_eq!(status, 405);
    assert_eq!(body["meta"]["message"], "Method not allowed");
    let (status, _) = envelope(c.put(server.api("/account")).send().unwrap());
    assert_eq!(status, 405);
}

#[test]
fn unknown_query_parameters_are_named() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let (status, body) = envelope(
        client()
            .get(server.api("/auth/setup?verbose=1&x=2"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"],
        json!([
            "verbose: unknown query parameter",
            "x: unknown query parameter"
        ])
    );
}

#[test]
fn bodies_are_checked_for_json_and_size() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let c = client();
    let post = |body: reqwest::blocking::Body| {
        c.post(server.api("/auth/login"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", "198.51.100.20")
            .body(body)
            .send()
            .unwrap()
    };
    let (status, body) = envelope(post("{\"email\": ".into()));
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"][0],
        "body: malformed JSON at line 1 column 10"
    );
    let (status, body) = envelope(post("[]".into()));
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"],
        json!(["body: must be a JSON object"])
    );

    let big = format!("{{\"email\": \"{}\"}}", "a".repeat(70 * 1024));
    let (status, body) = envelope(post(big.clone().into()));
    assert_eq!(status, 413);
    assert!(body["meta"]["message"].as_str().unwrap().contains("65536"));
    // The same without Content-Length (chunked) is cut off at the same limit. The server reads
    // the rest of a moderately large body, so the client sees the 413 and not a broken pipe
    // (repeated because the broken pipe is a race).
    for i in 0..20 {
        let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(big.clone().into_bytes()));
        let response = c
            .post(server.api("/auth/login"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", format!("198.51.100.{}", 100 + i))
            .body(chunked)
            .send()
            .unwrap();
        assert_eq!(response.status(), 413);
    }
    // A small chunked body is fine.
    let small = reqwest::blocking::Body::new(std::io::Cursor::new(
        br#"{"email": "x@y.zz", "password": "whatever12"}"#.to_vec(),
    ));
    let (status, _) = envelope(post(small));
    assert_eq!(status, 401);
}

#[test]
fn setup_creates_the_first_account_once() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    assert!(
        server.stdout().contains("/setup?token="),
        "setup link printed"
    );
    let c = client();
    let (_, body) = envelope(c.get(server.api("/auth/setup")).send().unwrap());
    assert_eq!(body["data"], json!({"needed": true}));

    // Every problem at once.
    let (status, body) = envelope(
        c.post(server.api("/auth/setup"))
            .json(&json!({"email": "nope", "password": "short", "firstName": 7, "color": "red"}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"],
        json!([
            "token: is required",
            "firstName: must be a string",
            "email: must be a valid email address",
            "password: must be at least 10 characters",
            "color: unknown field"
        ])
    );
    let (status, body) = envelope(
        c.post(server.api("/auth/setup"))
            .json(&json!({"token": "0".repeat(64), "email": "a@b.co", "password": PASSWORD}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403);
    assert_eq!(
        body["meta"]["message"],
        "The setup link is invalid or was already used"
    );

    let resp = c
        .post(server.api("/auth/setup"))
        .json(
            &json!({"token": server.setup_token(), "email": "Owner@Example.com",
                      "password": PASSWORD, "firstName": "Ada"}),
        )
        .send()
        .unwrap();
    let (status, body) = envelope(resp);
    assert_eq!(status, 201);
    let account = &body["data"]["account"];
    assert_eq!(account["email"], "Owner@Example.com");
    assert_eq!(account["firstName"], "Ada");
    assert_eq!(account["lastName"], Value::Null);
    assert_eq!(account["picture"], Value::Null);
    assert_eq!(body["data"]["csrfToken"].as_str().unwrap().len(), 64);
    let id = account["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 4);
    for field in ["createdAt", "emailVerifiedAt"] {
        let ts = account[field].as_str().unwrap();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    }
    // Logged in by the setup.
    let (status, body) = envelope(c.get(server.api("/auth/session")).send().unwrap());
    assert_eq!(status, 200);
    assert_eq!(body["data"]["account"]["id"], id);

    // The token works once, and setup is over.
    let (status, _) = envelope(
        client()
            .post(server.api("/auth/setup"))
            .json(&json!({"token": server.setup_token(), "email": "b@b.co", "password": PASSWORD}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 403);
    let (_, body) = envelope(c.get(server.api("/auth/setup")).send().unwrap());
    assert_eq!(body["data"], json!({"needed": false}));

    // A restarted server with an account prints no setup link.
    let status = server.stop();
    assert!(status.success());
    let again = Server::start(&sb, &[]);
    assert!(again.setup_url.is_none());
    assert!(!again.stdout().contains("token="));
}

#[test]
fn login_logout_and_session() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    server.setup("owner@example.com");
    let c = client();
    let (status, _) = envelope(c.get(server.api("/auth/session")).send().unwrap());
    assert_eq!(status, 401);
    let (status, body) = envelope(
        c.post(server.api("/auth/login"))
            .json(&json!({"email": "OWNER@example.com", "password": PASSWORD}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200, "emails match case-insensitively");
    let csrf = body["data"]["csrfToken"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["account"]["email"], "owner@example.com");
    let (_, session) = envelope(c.get(server.api("/auth/session")).send().unwrap());
    assert_eq!(
        session["data"]["csrfToken"],
        csrf.as_str(),
        "one CSRF token per session"
    );

    let (status, body) = envelope(
        c.post(server.api("/auth/login"))
            .json(&json!({"email": "owner@example.com"}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400);
    assert_eq!(body["meta"]["errors"], json!(["password: is required"]));

    let resp = c
        .post(server.api("/auth/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("jetrack_session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    let (status, body) = envelope(resp);
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({"loggedOut": true}));
    let (status, _) = envelope(c.get(server.api("/auth/session")).send().unwrap());
    assert_eq!(status, 401);
}

#[test]
fn account_can_be_read_and_patched() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let s = server.setup("owner@example.com");
    let (status, body) = envelope(s.client.get(server.api("/account")).send().unwrap());
    assert_eq!(status, 200);
    let keys: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "createdAt",
            "email",
            "emailVerifiedAt",
            "firstName",
            "id",
            "lastName",
            "picture"
        ]
    );
    assert_eq!(body["data"]["lastName"], "Lovelace");

    let patch = |v: Value| {
        envelope(
            s.client
                .patch(server.api("/account"))
                .header("x-csrf-token", &s.csrf)
                .json(&v)
                .send()
                .unwrap(),
        )
    };
    let (status, body) = patch(json!({"firstName": "  Grace ", "lastName": null,
                                      "picture": "https://example.com/me.png"}));
    assert_eq!(status, 200);
    assert_eq!(body["data"]["firstName"], "Grace");
    assert_eq!(body["data"]["lastName"], Value::Null);
    assert_eq!(body["data"]["picture"], "https://example.com/me.png");

    let (status, body) = patch(
        json!({"firstName": "x".repeat(101), "picture": "javascript:alert(1)",
                                      "email": "new@example.com"}),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"],
        json!([
            "firstName: must be at most 100 characters",
            "picture: must be an http(s) URL",
            "email: unknown field"
        ])
    );
    let (_, body) = envelope(s.client.get(server.api("/account")).send().unwrap());
    assert_eq!(
        body["data"]["firstName"], "Grace",
        "a refused PATCH changes nothing"
    );
    assert_eq!(body["data"]["email"], "owner@example.com");
}

/// Account and website fields are not tracking data: a control character is refused, named,
/// and nothing changes; whole numbers may be written `30.0` as JSON allows.
#[test]
fn control_characters_in_account_and_website_fields_are_refused() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let s = server.setup("owner@example.com");
    let send = |method: reqwest::Method, path: &str, v: Value| {
        envelope(
            s.client
                .request(method, server.api(path))
                .header("x-csrf-token", &s.csrf)
                .json(&v)
                .send()
                .unwrap(),
        )
    };
    let (status, body) = send(
        reqwest::Method::PATCH,
        "/account",
        json!({"firstName": "Ada\u{0}", "lastName": "L\u{1b}[31m",
               "picture": "https://example.com/a\u{7}.png"}),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"],
        json!([
            "firstName: must not contain control characters",
            "lastName: must not contain control characters",
            "picture: must be an http(s) URL"
        ])
    );
    let (status, body) = send(
        reqwest::Method::POST,
        "/websites",
        json!({"name": "Shop\r\nX-Injected: 1", "domain": "shop.example"}),
    );
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"],
        json!(["name: must not contain control characters"])
    );
    let (status, body) = send(
        reqwest::Method::POST,
        "/websites",
        json!({"name": "Shop", "domain": "shop.example", "retentionDays": 30.0}),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["retentionDays"], 30);
    let (_, body) = envelope(s.client.get(server.api("/account")).send().unwrap());
    assert_eq!(body["data"]["firstName"], "Ada");
    assert_eq!(body["data"]["picture"], Value::Null);
}

#[test]
fn password_change_ends_the_other_sessions() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let s = server.setup("owner@example.com");
    let other = server.login("owner@example.com", PASSWORD);
    let change = |v: Value| {
        envelope(
            s.client
                .post(server.api("/account/password"))
                .header("x-csrf-token", &s.csrf)
                .json(&v)
                .send()
                .unwrap(),
        )
    };
    let (status, body) =
        change(json!({"currentPassword": "wrong password", "newPassword": "short"}));
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"],
        json!(["newPassword: must be at least 10 characters"])
    );
    let (status, body) =
        change(json!({"currentPassword": "wrong password", "newPassword": "a new password"}));
    assert_eq!(status, 400);
    assert_eq!(
        body["meta"]["errors"],
        json!(["currentPassword: is incorrect"])
    );

    let (status, body) =
        change(json!({"currentPassword": PASSWORD, "newPassword": "a new password"}));
    assert_eq!(status, 200);
    assert_eq!(body["data"]["passwordChanged"], true);
    assert_eq!(body["data"]["otherSessionsEnded"], 1);
    let (status, _) = envelope(
        other
            .client
            .get(server.api("/auth/session"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 401, "the other session ended");
    let (status, _) = envelope(s.client.get(server.api("/auth/session")).send().unwrap());
    assert_eq!(status, 200, "the changing session goes on");
    server.login("owner@example.com", "a new password");
    let (status, _) = envelope(
        client()
            .post(server.api("/auth/login"))
            .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 401);
}

#[test]
fn health_and_pages() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let c = client();
    let resp = c.get(server.url("/healthz")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), r#"{"status":"ok"}"#);
    for page in ["/", "/login", "/settings", "/setup"] {
        let resp = c.get(server.url(page)).send().unwrap();
        assert_eq!(resp.status(), 200, "{page}");
        assert!(resp.text().unwrap().contains("<!doctype html>"), "{page}");
    }
    let resp = c
        .get(server.url("/assets/dashboard/css/app.css"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].clone();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let resp = c
        .get(server.url("/assets/dashboard/css/app.css"))
        .header("if-none-match", etag)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(
        c.get(server.url("/assets/nope.js"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(c.get(server.url("/nowhere")).send().unwrap().status(), 404);
}
