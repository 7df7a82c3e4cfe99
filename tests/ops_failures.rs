//! What the server does when its database fails under it: a full disk (a small tmpfs mounted
//! over the data dir in a mount namespace of the server's own, then filled) gets 503 "storage
//! full" answers, `/healthz` 503 with the reason, one log line per interval with a count, and
//! everything stored before is kept; once there is room again, writes and health come back.
//! An internal error (a table dropped from another connection) answers the generic 500
//! envelope and logs its cause. Needs `unshare` and `nsenter` (util-linux) and root, as CI has.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::ingest::{CHROME, collect, pageview, website};
use common::{Server, client, envelope, isolate};
use serde_json::{Value, json};

/// `jetrack serve` on `data_dir`, which is a tmpfs of `size` in a mount namespace of its own.
fn serve_on_tmpfs(data_dir: &Path, size: &str) -> Server {
    std::fs::create_dir_all(data_dir).unwrap();
    let mut cmd = Command::new("unshare");
    isolate(&mut cmd, data_dir);
    cmd.args(["-m", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@""#)
        .arg("sh")
        .arg(size)
        .arg(data_dir)
        .arg(common::bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"]);
    Server::spawn(cmd)
}

/// Runs a shell command in the server's mount namespace (where its tmpfs is).
fn in_namespace(server: &Server, script: &str) {
    let status = Command::new("nsenter")
        .args([
            "-t",
            &server.child.id().to_string(),
            "-m",
            "sh",
            "-c",
            script,
        ])
        .status()
        .expect("nsenter");
    assert!(status.success(), "{script}");
}

fn health(server: &Server) -> (u16, Value) {
    let resp = client().get(server.url("/healthz")).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap())
}

#[test]
fn a_full_disk_is_reported_clearly_and_loses_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve_on_tmpfs(&data, "16m");
    let session = server.setup("owner@example.com");
    let site = website(&server, &session, "example.com", "UTC");
    for i in 0..20 {
        let resp = collect(
            &server,
            &pageview(&site, &format!("https://example.com/before/{i}")),
            "203.0.113.1",
            CHROME,
        );
        assert_eq!(resp.status(), 202);
    }
    assert_eq!(health(&server).0, 200);

    // Fill the disk, then keep tracking: new pages need new pages of the database.
    let filler = data.join("filler");
    in_namespace(
        &server,
        &format!(
            "dd if=/dev/zero of={} bs=64k 2>/dev/null; true",
            filler.display()
        ),
    );
    let started = Instant::now();
    let mut refused = 0;
    let mut message = String::new();
    for i in 0..3000 {
        let long = "x".repeat(1500);
        let resp = collect(
            &server,
            &pageview(&site, &format!("https://example.com/full/{i}/{long}")),
            &format!("198.51.100.{}", i % 200),
            CHROME,
        );
        if resp.status() == 503 {
            refused += 1;
            assert!(resp.headers().contains_key("retry-after"));
            let (_, body) = envelope(resp);
            message = body["meta"]["message"].as_str().unwrap().to_string();
            if refused >= 50 {
                break;
            }
        } else {
            assert_eq!(resp.status(), 202);
        }
    }
    assert!(refused >= 50, "the disk never filled");
    assert_eq!(
        message,
        "The server's storage is full; nothing was stored. Try again later"
    );
    let (status, body) = health(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body,
        json!({"status": "unavailable",
               "reason": "storage full: the disk holding the database has no room"})
    );
    // One line per interval with a count, not one per refused request.
    let log = server.stderr();
    let failing = log
        .lines()
        .filter(|l| l.contains("writes are failing"))
        .count();
    let allowed = started.elapsed().as_secs() / 10 + 2;
    assert!(
        (1..=allowed as usize).contains(&failing),
        "{failing} lines in {:?}:\n{log}",
        started.elapsed()
    );
    assert!(log.contains("storage full"), "{log}");
    assert!(!log.contains("request failed"), "{log}");
    assert!(log.lines().count() < 200, "{log}");

    // Room again: writes go through and health comes back.
    in_namespace(&server, &format!("rm {}", filler.display()));
    let resp = collect(
        &server,
        &pageview(&site, "https://example.com/after"),
        "203.0.113.1",
        CHROME,
    );
    assert_eq!(resp.status(), 202);
    assert_eq!(health(&server).0, 200);
    assert!(server.stderr().contains("writes succeed again"));
    let pages = session
        .client
        .get(server.api(&format!("/websites/{site}/stats/pages?limit=1000")))
        .send()
        .unwrap();
    let (status, body) = envelope(pages);
    assert_eq!(status, 200, "{body}");
    let paths: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    for i in 0..20 {
        assert!(
            paths.contains(&format!("/before/{i}").as_str()),
            "{paths:?}"
        );
    }
    assert!(paths.contains(&"/after"));
    let mut server = server;
    server.signal("TERM");
    assert!(server.wait().success());
}

/// A fault the server cannot help (a table dropped by another program) answers the generic
/// 500 envelope: no SQL, table name or path in the body; the log line names the cause.
#[test]
fn an_internal_error_answers_a_generic_500_and_logs_its_cause() {
    let sb = common::Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup("owner@example.com");
    let audit = |session: &common::Session| {
        session
            .client
            .get(server.api("/account/audit-log"))
            .send()
            .unwrap()
    };
    assert_eq!(audit(&session).status(), 200);
    rusqlite::Connection::open(sb.db_path())
        .unwrap()
        .execute_batch("DROP TABLE audit_log")
        .unwrap();
    let resp = audit(&session);
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let text = resp.text().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"success": false, "data": null,
               "meta": {"status": 500, "message": "Internal server error", "errors": []}})
    );
    for secret in [
        "audit_log",
        "SELECT",
        "sqlite",
        sb.dir.path().to_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let log = loop {
        let log = server.stderr();
        if log.contains("request failed") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let line = log
        .lines()
        .find(|l| l.contains("request failed"))
        .unwrap_or_else(|| panic!("no log line: {log}"));
    assert!(line.contains("/account/audit-log"), "{line}");
    assert!(line.contains("no such table: audit_log"), "{line}");
}
