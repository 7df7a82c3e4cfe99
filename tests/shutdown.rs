//! SIGTERM while writes are in flight: the server drains, exits 0, and every write it
//! acknowledged is there afterwards (SPEC 6 `serve`, 7.2).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{PASSWORD, Sandbox, Server};
use rusqlite::Connection;
use serde_json::json;

#[test]
fn sigterm_under_load_loses_no_acknowledged_write() {
    let sb = Sandbox::new();
    let mut server = Server::start(&sb, &[]);
    server.setup("owner@example.com");
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..6 {
        let url = server.api("/auth/login");
        let acked = acked.clone();
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let c = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // A new address for each attempt, so the per-IP login limit stays out of it.
                let ip = format!("10.{w}.{}.{}", n / 250, n % 250);
                match c
                    .post(&url)
                    .header("x-forwarded-for", ip)
                    .json(&json!({"email": "owner@example.com", "password": PASSWORD}))
                    .send()
                {
                    Ok(r) if r.status() == 200 => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }));
    }
    // Let the load build up, then stop the server in the middle of it.
    while acked.load(Ordering::SeqCst) < 20 {
        std::thread::sleep(Duration::from_millis(10));
    }
    server.signal("TERM");
    let status = server.wait();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(status.success(), "exit status {status}");
    assert!(server.stderr().contains("SIGTERM received"));
    let acked = acked.load(Ordering::SeqCst) as i64;

    let restarted = Server::start(&sb, &[]);
    drop(restarted);
    let db = Connection::open(sb.db_path()).unwrap();
    let sessions: i64 = db
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    let logins: i64 = db
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'login' AND detail IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // One session comes from the setup; every acknowledged login is stored.
    assert!(
        sessions > acked,
        "{sessions} sessions stored, {acked} logins acknowledged"
    );
    assert!(
        logins >= acked,
        "{logins} audit entries, {acked} logins acknowledged"
    );
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn sigint_also_stops_the_server_cleanly() {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let mut server = server;
    server.signal("INT");
    assert!(server.wait().success());
    assert!(server.stderr().contains("SIGINT received"));
    assert!(server.stderr().contains("stopped"));
}
