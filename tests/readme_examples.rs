//! Runs every `curl` example of the README's API section against a live server, in order,
//! and checks that each one succeeds.

mod common;

use std::process::Command;

use common::{PASSWORD, Sandbox, Server, envelope};
use serde_json::{Value, json};

/// The shell commands of the `## API` section: fenced `sh` blocks, with `\` continuations
/// joined, comments and variable assignments left out.
fn api_examples() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("\n## API\n").expect("an API section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let section = &rest[..end];
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut current = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                if current.starts_with("curl ") {
                    commands.push(std::mem::take(&mut current));
                } else {
                    current.clear();
                }
            }
        }
    }
    commands
}

#[test]
fn every_curl_example_of_the_readme_works() {
    let examples = api_examples();
    assert!(examples.len() >= 15, "found {} examples", examples.len());
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let email = "owner@example.com";
    let session = server.setup(email);
    let new_key = |name: &str| -> Value {
        let (status, body) = envelope(
            session
                .client
                .post(server.api("/account/api-keys"))
                .header("x-csrf-token", &session.csrf)
                .json(&json!({"name": name}))
                .send()
                .unwrap(),
        );
        assert_eq!(status, 201);
        body["data"].clone()
    };
    let key = new_key("README")["key"].as_str().unwrap().to_string();
    let spare = new_key("spare")["id"].as_str().unwrap().to_string();
    let (status, site) = envelope(
        session
            .client
            .post(server.api("/websites"))
            .header("x-csrf-token", &session.csrf)
            .json(&json!({"name": "Shop", "domain": "shop.example.com"}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 201);
    let website_id = site["data"]["id"].as_str().unwrap().to_string();

    let cwd = tempfile::tempdir().unwrap();
    let mut csrf = String::new();
    for example in &examples {
        let out = Command::new("bash")
            .arg("-c")
            .arg(example)
            .current_dir(cwd.path())
            .env("JETRACK", &server.base)
            .env("KEY", &key)
            .env("WEBSITE_ID", &website_id)
            .env("KEY_ID", &spare)
            .env("EMAIL", email)
            .env("PASSWORD", PASSWORD)
            .env("CSRF", &csrf)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{example}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{example}\nnot JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        assert_eq!(body["success"], true, "{example}\n{body}");
        assert!(
            body["meta"]["status"].as_u64().unwrap() < 300,
            "{example}\n{body}"
        );
        if example.contains("/auth/login") {
            csrf = body["data"]["csrfToken"].as_str().unwrap().to_string();
        }
    }
    assert!(!csrf.is_empty(), "the login example ran");
    // The last example deleted the website.
    let (status, _) = envelope(
        common::client()
            .get(server.api(&format!("/websites/{website_id}")))
            .header("x-api-key", &key)
            .send()
            .unwrap(),
    );
    assert_eq!(status, 404);
}
