//! The OpenAPI document (SPEC 2, 2.3): public, bare, valid OpenAPI 3.1, in step with the route
//! table both ways, and every documented operation routed; then Schemathesis fuzzes the API
//! against it (tests/schemathesis/run.sh).
//!
//! The validator and Schemathesis come from PyPI into a venv under target/ (made once by
//! tests/schemathesis/venv.sh). The tests that need them are skipped, with a message, only
//! when python3 is missing.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Sandbox, Server, client, envelope};
use jetrack::server::api::{self, Access};
use reqwest::Method;
use serde_json::{Value, json};

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn schemathesis_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis")
}

/// The Python venv with the pinned tools, made on first use; `None` (the test is skipped)
/// only when there is no python3.
fn venv() -> Option<PathBuf> {
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED: python3 is not installed; the OpenAPI validator and Schemathesis need it"
        );
        return None;
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .to_path_buf();
    let out = Command::new("bash")
        .arg(schemathesis_dir().join("venv.sh"))
        .arg(target.join("py-venv"))
        .output()
        .expect("run venv.sh");
    assert!(
        out.status.success(),
        "venv.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn fetch_document(server: &Server) -> Value {
    let resp = client().get(server.api("/openapi.json")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    resp.json().expect("a JSON document")
}

/// Every `(METHOD, path)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            if HTTP_METHODS.contains(&method.as_str()) {
                ops.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    ops
}

/// The path with every `{param}` replaced by a random UUID.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                uuid::Uuid::new_v4().to_string()
            } else {
                seg.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn the_document_is_public_bare_and_valid_openapi_3_1() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    // Before any account exists, without a credential.
    let doc = fetch_document(&server);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "OpenAPI 3.1: {}",
        doc["openapi"]
    );
    for envelope_key in ["success", "data", "meta"] {
        assert!(doc.get(envelope_key).is_none(), "not an envelope");
    }
    assert!(!doc["info"]["title"].as_str().unwrap().is_empty());
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["servers"][0]["url"],
        format!("{}/api/v1", server.base),
        "the base of every path"
    );
    assert!(!operations(&doc).is_empty());
    // The same with an account, and whoever asks.
    let session = server.setup("owner@example.com");
    let key = common::api_key(&server, &session);
    assert_eq!(fetch_document(&server), doc);
    let with_key: Value = client()
        .get(server.api("/openapi.json"))
        .header("x-api-key", &key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(with_key, doc);
    let (status, _) = envelope(
        client()
            .get(server.api("/openapi.json?format=yaml"))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 400, "unknown query parameters are refused here too");

    let Some(venv) = venv() else { return };
    let validator = venv.join("bin/openapi-spec-validator");
    let dir = tempfile::tempdir().unwrap();
    let validate = |doc: &Value, name: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
        Command::new(&validator)
            .args(["--schema", "3.1", "--validation-errors", "all"])
            .arg(&file)
            .output()
            .expect("run openapi-spec-validator")
    };
    let out = validate(&doc, "openapi.json");
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does catch a broken document (so the pass above means something).
    let mut broken = doc.clone();
    broken["paths"]["/websites"]["get"]["responses"] = json!("none");
    broken["paths"]["/websites/{id}"]["get"]
        .as_object_mut()
        .unwrap()
        .remove("parameters");
    let out = validate(&broken, "broken.json");
    assert!(
        !out.status.success(),
        "a broken document must fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_route_table_and_the_document_agree() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let doc = fetch_document(&server);
    let table = api::table();
    assert_eq!(
        api::openapi::document(&table, &server.base),
        doc,
        "the served document is the one generated from the table"
    );

    let in_table: BTreeSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.as_str().to_string(), r.path.to_string()))
        .collect();
    assert_eq!(in_table.len(), table.len(), "no route twice in the table");
    let ops = operations(&doc);
    let in_doc: BTreeSet<(String, String)> =
        ops.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    let undocumented: Vec<_> = in_table.difference(&in_doc).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the document: {undocumented:?}"
    );
    let unrouted: Vec<_> = in_doc.difference(&in_table).collect();
    assert!(
        unrouted.is_empty(),
        "documented operations without a route: {unrouted:?}"
    );

    let mut operation_ids = BTreeSet::new();
    for route in &table {
        let method = route.method.as_str().to_lowercase();
        let what = format!("{} {}", route.method, route.path);
        let op = &doc["paths"][route.path.as_ref()][&method];
        assert!(
            !route.summary.trim().is_empty(),
            "{what}: a summary in the table"
        );
        assert_eq!(op["summary"], route.summary, "{what}");
        let description = op["description"].as_str().unwrap_or("");
        assert!(!description.trim().is_empty(), "{what}: a description");
        assert!(
            description.contains(route.description.as_ref()),
            "{what}: the table's description is in the document"
        );
        let id = op["operationId"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "{what}: an operationId");
        assert!(
            operation_ids.insert(id.to_string()),
            "{what}: operationId {id} twice"
        );

        // Parameters: every path segment `{x}` and exactly the route's query parameters.
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let named = |place: &str| -> BTreeSet<String> {
            params
                .iter()
                .filter(|p| p["in"] == place)
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect()
        };
        let in_path: BTreeSet<String> = route
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_string)
            .collect();
        assert_eq!(named("path"), in_path, "{what}: path parameters");
        for p in params.iter().filter(|p| p["in"] == "path") {
            assert_eq!(p["required"], true, "{what}: {p}");
        }
        let query: BTreeSet<String> = route.query.iter().map(|q| q.to_string()).collect();
        assert_eq!(named("query"), query, "{what}: query parameters");

        // Who may call it.
        let security = op["security"]
            .as_array()
            .expect("security on every operation");
        match route.access {
            Access::Public => assert!(security.is_empty(), "{what}: public"),
            Access::Session | Access::OwnSession => {
                assert_eq!(security, &[json!({"session": []})], "{what}")
            }
            Access::Account => {
                let schemes: BTreeSet<String> = security
                    .iter()
                    .flat_map(|s| s.as_object().unwrap().keys().cloned())
                    .collect();
                assert_eq!(
                    schemes,
                    BTreeSet::from(["apiKey".into(), "bearer".into(), "session".into()]),
                    "{what}"
                );
            }
        }
        for scheme in security.iter().flat_map(|s| s.as_object().unwrap().keys()) {
            assert!(
                doc["components"]["securitySchemes"][scheme].is_object(),
                "{what}: scheme {scheme} is defined"
            );
        }

        // Body and answers.
        assert_eq!(
            op["requestBody"].is_object(),
            route.body.is_some(),
            "{what}: a request body exactly when the route reads one"
        );
        let responses = op["responses"].as_object().expect("responses");
        let success = route.status.as_u16().to_string();
        assert!(
            responses.contains_key(&success),
            "{what}: documents {success}"
        );
        for (code, response) in responses {
            assert!(
                !response["description"].as_str().unwrap_or("").is_empty(),
                "{what} {code}: a description"
            );
            assert!(
                response["content"]["application/json"]["schema"].is_object(),
                "{what} {code}: a JSON schema"
            );
        }
        assert!(responses.contains_key("400"), "{what}: 400");
        if route.access != Access::Public {
            assert!(responses.contains_key("401"), "{what}: 401");
            assert!(responses.contains_key("403"), "{what}: 403");
        }
        if route.path.contains('{') {
            assert!(responses.contains_key("404"), "{what}: 404");
        }
        if route.body.is_some() {
            assert!(responses.contains_key("413"), "{what}: 413");
        }
    }
}

#[test]
fn every_documented_operation_is_routed_and_no_other_method() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup("owner@example.com");
    let key = common::api_key(&server, &session);
    let doc = fetch_document(&server);
    let ops = operations(&doc);
    let c = client();
    for (method, path, op) in &ops {
        let url = server.api(&concrete(path));
        for with_key in [true, false] {
            let mut req = c.request(Method::from_bytes(method.as_bytes()).unwrap(), &url);
            if op["requestBody"].is_object() {
                req = req.json(&json!({}));
            }
            if with_key {
                req = req.header("x-api-key", &key);
            }
            let resp = req.send().unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().unwrap_or(Value::Null);
            let what = format!("{method} {path} (with key: {with_key})");
            assert_ne!(status, 405, "{what} is documented but not routed: {body}");
            assert!(
                !(status == 404 && body["meta"]["message"] == "No such API route"),
                "{what} is documented but not routed: {body}"
            );
            assert!(status < 500, "{what}: {status} {body}");
        }
    }
    // The other methods on a documented path are a 405 naming the documented ones.
    for (path, item) in doc["paths"].as_object().unwrap() {
        let documented: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| HTTP_METHODS.contains(&m.as_str()))
            .map(|m| m.to_uppercase())
            .collect();
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if documented.contains(method) {
                continue;
            }
            let resp = c
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    server.api(&concrete(path)),
                )
                .header("x-api-key", &key)
                .send()
                .unwrap();
            let allow: BTreeSet<String> = resp
                .headers()
                .get("allow")
                .map(|v| {
                    v.to_str()
                        .unwrap()
                        .split(", ")
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let (status, body) = envelope(resp);
            assert_eq!(status, 405, "{method} {path}: {body}");
            assert_eq!(allow, documented, "{method} {path}: Allow");
        }
    }
}

#[test]
fn schemathesis_finds_no_failure() {
    if venv().is_none() {
        return;
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let out = Command::new("bash")
        .arg(schemathesis_dir().join("run.sh"))
        .env("JETRACK_BIN", common::bin())
        .env("JETRACK_PY_VENV", target.join("py-venv"))
        .output()
        .expect("run tests/schemathesis/run.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => println!("{text}"),
        Some(3) => eprintln!("SKIPPED: {text}"),
        _ => panic!("tests/schemathesis/run.sh failed:\n{text}"),
    }
}
