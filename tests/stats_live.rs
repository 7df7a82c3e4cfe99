//! The dashboard's live stream, `GET /websites/{id}/stats/realtime/stream` (SPEC 2.7),
//! black-box against the real server: the first event at once, a new one within a second of
//! an activity and when a visitor leaves the 30-second window, never more than two a second,
//! the session-only access, the JSON answer without `Accept: text/event-stream`, and the end
//! of the stream at logout, at the website's deletion and at shutdown.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ingest::website;
use common::{Sandbox, Server, Session, api_key, envelope};
use jiff::Timestamp;
use serde_json::{Value, json};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn iso(ms: i64) -> String {
    format!("{:.3}", Timestamp::from_millisecond(ms).unwrap())
}

/// What the stream delivered: an event's `data` parsed as JSON with the time it arrived, or
/// the end of the stream.
enum Received {
    Event(Instant, Value),
    End(Instant),
}

/// An open stream, read line by line on a thread.
struct Stream {
    rx: mpsc::Receiver<Received>,
    headers: reqwest::header::HeaderMap,
    /// Every `retry:` value the stream sent.
    retry: mpsc::Receiver<String>,
}

impl Stream {
    fn open(server: &Server, session: &Session, site: &str) -> Stream {
        let resp = session
            .client
            .get(server.api(&format!("/websites/{site}/stats/realtime/stream")))
            .header("accept", "text/event-stream")
            .timeout(Duration::from_secs(600))
            .send()
            .expect("open the stream");
        assert_eq!(resp.status(), 200);
        let headers = resp.headers().clone();
        let (tx, rx) = mpsc::channel();
        let (retry_tx, retry) = mpsc::channel();
        thread::spawn(move || {
            let mut data = String::new();
            for line in BufReader::new(resp).lines() {
                let Ok(line) = line else { break };
                if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                } else if let Some(r) = line.strip_prefix("retry:") {
                    let _ = retry_tx.send(r.trim().to_string());
                } else if line.is_empty() && !data.is_empty() {
                    let value = serde_json::from_str(&data).expect("an event's data is JSON");
                    data.clear();
                    if tx.send(Received::Event(Instant::now(), value)).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send(Received::End(Instant::now()));
        });
        Stream { rx, headers, retry }
    }

    /// The next event within `wait`, with its arrival; panics at the end of the stream.
    fn next(&self, wait: Duration) -> Option<(Instant, Value)> {
        match self.rx.recv_timeout(wait) {
            Ok(Received::Event(at, v)) => Some((at, v)),
            Ok(Received::End(_)) => panic!("the stream ended"),
            Err(_) => None,
        }
    }

    /// Events until one has `activeVisitors == n` (within `wait`); returns its arrival and data.
    fn until_active(&self, n: u64, wait: Duration) -> (Instant, Value) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, v) = self
                .next(left)
                .unwrap_or_else(|| panic!("no event with activeVisitors {n} within {wait:?}"));
            if v["activeVisitors"] == n {
                return (at, v);
            }
        }
    }

    /// Waits for the end of the stream, skipping events; answers when it came.
    fn end(&self, wait: Duration) -> Option<Instant> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Received::End(at)) => return Some(at),
                Ok(Received::Event(..)) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Imports events with the session (and its CSRF token).
fn import(server: &Server, session: &Session, site: &str, events: &[Value]) {
    let resp = session
        .client
        .post(server.api(&format!("/websites/{site}/events")))
        .header("x-csrf-token", &session.csrf)
        .json(&json!({ "events": events }))
        .send()
        .expect("import");
    let (status, body) = envelope(resp);
    assert_eq!(status, 200, "import: {body}");
    assert_eq!(body["data"]["dropped"], json!([]), "{body}");
}

fn activity(kind: &str, domain: &str, path: &str, at: i64, visitor: &str) -> Value {
    json!({"type": kind, "url": format!("https://{domain}{path}"), "timestamp": iso(at),
           "visitorId": visitor})
}

fn start() -> (Sandbox, Server, Session) {
    let sb = Sandbox::new();
    let server = Server::start(&sb, &[]);
    let session = server.setup("owner@example.com");
    (sb, server, session)
}

#[test]
fn the_stream_pushes_each_change_within_a_second_and_at_most_twice_a_second() {
    let (_sb, server, session) = start();
    let domain = "live.example";
    let site = website(&server, &session, domain, "UTC");
    let stream = Stream::open(&server, &session, &site);
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-store");

    // The current figures at once, with the reconnection delay.
    let (_, first) = stream
        .next(Duration::from_secs(2))
        .expect("a first event at once");
    assert_eq!(first, json!({"activeVisitors": 0, "pages": []}));
    assert_eq!(
        stream.retry.recv_timeout(Duration::from_secs(1)).unwrap(),
        "3000"
    );

    // A pageview shows within a second of its acknowledgement.
    import(
        &server,
        &session,
        &site,
        &[activity("pageview", domain, "/pricing", now_ms(), "a")],
    );
    let stored = Instant::now();
    let (at, event) = stream.until_active(1, Duration::from_secs(3));
    assert!(
        at.duration_since(stored) <= Duration::from_millis(1000),
        "pushed {:?} after the commit",
        at.duration_since(stored)
    );
    assert_eq!(
        event,
        json!({"activeVisitors": 1, "pages": [{"value": "/pricing", "activeVisitors": 1}]})
    );

    // A heartbeat of a visitor whose pageview is 10 minutes old brings them back under that
    // page, within a second.
    let now = now_ms();
    import(
        &server,
        &session,
        &site,
        &[activity("pageview", domain, "/docs", now - 600_000, "b")],
    );
    import(
        &server,
        &session,
        &site,
        &[activity("heartbeat", domain, "/docs", now_ms(), "b")],
    );
    let stored = Instant::now();
    let (at, event) = stream.until_active(2, Duration::from_secs(3));
    assert!(at.duration_since(stored) <= Duration::from_millis(1000));
    assert_eq!(
        event["pages"],
        json!([{"value": "/docs", "activeVisitors": 1}, {"value": "/pricing", "activeVisitors": 1}])
    );

    // Twenty new visitors in two seconds: the count keeps up, but events come at most twice
    // a second.
    let burst_start = Instant::now();
    for i in 0..20 {
        import(
            &server,
            &session,
            &site,
            &[activity(
                "pageview",
                domain,
                "/",
                now_ms(),
                &format!("burst-{i}"),
            )],
        );
        thread::sleep(Duration::from_millis(100));
    }
    let mut arrivals = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((at, v)) = stream.next(left) else {
            break;
        };
        arrivals.push(at);
        if v["activeVisitors"] == 22 {
            break;
        }
    }
    assert!(
        Instant::now() < deadline,
        "the count reached 22 within a second of the last visit"
    );
    let in_burst = arrivals.len();
    assert!(
        in_burst >= 3,
        "several events during the burst, got {in_burst}"
    );
    for pair in arrivals.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(400),
            "two events {gap:?} apart (burst began {:?} before)",
            pair[0].duration_since(burst_start)
        );
    }
}

#[test]
fn a_visitor_leaving_the_window_is_pushed_without_any_new_activity() {
    let (_sb, server, session) = start();
    let domain = "leaving.example";
    let site = website(&server, &session, domain, "UTC");
    // Active for two more seconds: 28 s old.
    let at = now_ms() - 28_000;
    import(
        &server,
        &session,
        &site,
        &[activity("pageview", domain, "/", at, "x")],
    );
    let stream = Stream::open(&server, &session, &site);
    let (_, first) = stream.next(Duration::from_secs(2)).expect("first event");
    assert_eq!(first["activeVisitors"], 1, "{first}");
    let (arrived, _) = stream.until_active(0, Duration::from_secs(5));
    let gone_at = at + 30_000;
    let late = now_ms() - gone_at;
    assert!(
        late <= 1_000,
        "0 pushed {late} ms after the visitor left the window ({arrived:?})"
    );
}

/// `GET` of the stream path `path` (relative to `/api/v1`) asking for events, refused: the
/// envelope.
fn refused(
    client: &reqwest::blocking::Client,
    server: &Server,
    path: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = client
        .get(server.api(path))
        .header("accept", "text/event-stream");
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    envelope(req.send().unwrap())
}

#[test]
fn only_the_owners_dashboard_session_may_open_it() {
    let (sb, server, session) = start();
    let site = website(&server, &session, "mine.example", "UTC");
    let path = format!("/websites/{site}/stats/realtime/stream");
    let http = common::client();

    // An API key, even a full one: 403. No credential: 401.
    let key = api_key(&server, &session);
    let (status, body) = refused(&http, &server, &path, Some(&key));
    assert_eq!(status, 403, "{body}");
    assert_eq!(refused(&http, &server, &path, None).0, 401);

    // An unknown website: 404; an unknown parameter: 400.
    let unknown = "/websites/00000000-0000-4000-8000-000000000000/stats/realtime/stream";
    assert_eq!(refused(&session.client, &server, unknown, None).0, 404);
    let (status, body) = refused(
        &session.client,
        &server,
        &format!("{path}?from=2025-01-01"),
        None,
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["meta"]["errors"],
        json!(["from: unknown query parameter"])
    );

    // Another account's website: 403 with the sentence of SPEC 2.1.
    let mut add = common::jetrack(&sb.data_dir());
    let out = add
        .args([
            "users",
            "add",
            "--email",
            "other@example.com",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    out.stdin
        .as_ref()
        .unwrap()
        .write_all(common::PASSWORD.as_bytes())
        .unwrap();
    assert!(out.wait_with_output().unwrap().status.success());
    let other = server.login("other@example.com", common::PASSWORD);
    let (status, body) = refused(&other.client, &server, &path, None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["meta"]["message"],
        "You do not have access to this website"
    );
}

#[test]
fn without_accepting_event_streams_the_answer_is_the_figures_once() {
    let (_sb, server, session) = start();
    let domain = "once.example";
    let site = website(&server, &session, domain, "UTC");
    import(
        &server,
        &session,
        &site,
        &[activity("pageview", domain, "/a", now_ms(), "v")],
    );
    let resp = session
        .client
        .get(server.api(&format!("/websites/{site}/stats/realtime/stream")))
        .header("accept", "application/json")
        .send()
        .unwrap();
    let (status, body) = envelope(resp);
    assert_eq!(status, 200);
    assert_eq!(
        body["data"],
        json!({"activeVisitors": 1, "pages": [{"value": "/a", "activeVisitors": 1}]})
    );
}

#[test]
fn logging_out_ends_the_stream() {
    let (_sb, server, session) = start();
    let site = website(&server, &session, "out.example", "UTC");
    let stream = Stream::open(&server, &session, &site);
    stream.next(Duration::from_secs(2)).expect("first event");
    let resp = session
        .client
        .post(server.api("/auth/logout"))
        .header("x-csrf-token", &session.csrf)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        stream.end(Duration::from_secs(15)).is_some(),
        "the stream ends within the 10-second check after the logout"
    );
}

#[test]
fn deleting_the_website_ends_its_stream() {
    let (_sb, server, session) = start();
    let site = website(&server, &session, "gone.example", "UTC");
    let stream = Stream::open(&server, &session, &site);
    stream.next(Duration::from_secs(2)).expect("first event");
    let resp = session
        .client
        .delete(server.api(&format!("/websites/{site}")))
        .header("x-csrf-token", &session.csrf)
        .send()
        .unwrap();
    assert_eq!(envelope(resp).0, 200);
    assert!(
        stream.end(Duration::from_secs(15)).is_some(),
        "the stream ends within the 10-second check after the deletion"
    );
}

#[test]
fn shutdown_closes_open_streams_at_once() {
    let (_sb, mut server, session) = start();
    let site = website(&server, &session, "stop.example", "UTC");
    let streams: Vec<Stream> = (0..3)
        .map(|_| Stream::open(&server, &session, &site))
        .collect();
    for s in &streams {
        s.next(Duration::from_secs(2)).expect("first event");
    }
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server.wait();
    let took = signalled.elapsed();
    assert!(status.success(), "exit 0: {status:?}");
    assert!(
        took < Duration::from_secs(5),
        "the server did not wait for the streams: {took:?}"
    );
    for s in &streams {
        assert!(s.end(Duration::from_secs(2)).is_some(), "the stream ended");
    }
    assert!(
        !server
            .stderr()
            .contains("some requests did not finish in time"),
        "{}",
        server.stderr()
    );
}

/// One session may hold ten streams at once (a person with ten tabs); the eleventh closes the
/// oldest, which ends at once, while the others and the new one keep receiving.
#[test]
fn a_session_holds_at_most_ten_streams_and_a_new_one_closes_the_oldest() {
    let (_sb, server, session) = start();
    let site = website(&server, &session, "tabs.example", "UTC");
    let streams: Vec<Stream> = (0..10)
        .map(|_| {
            let s = Stream::open(&server, &session, &site);
            s.next(Duration::from_secs(5)).expect("the first event");
            s
        })
        .collect();
    let newest = Stream::open(&server, &session, &site);
    newest
        .next(Duration::from_secs(5))
        .expect("the newest works");
    assert!(
        streams[0].end(Duration::from_secs(2)).is_some(),
        "the oldest stream was closed"
    );
    for (i, s) in streams.iter().enumerate().skip(1) {
        assert!(
            s.end(Duration::from_millis(100)).is_none(),
            "stream {i} stays open"
        );
    }
    // Another session of the same account has its own ten.
    let other = server.login("owner@example.com", common::PASSWORD);
    let s = Stream::open(&server, &other, &site);
    s.next(Duration::from_secs(5))
        .expect("another session's stream");
    assert!(streams[1].end(Duration::from_millis(300)).is_none());
}
