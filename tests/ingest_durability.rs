//! Ingestion keeps nothing personal and loses nothing it acknowledged (SPEC 3.2, 3.3, 7.1, 7.2,
//! 8.1; issue 4, acceptance 5 and 8), shown against the real server:
//!
//! - 1,000 events from 1,000 IPv4 and IPv6 addresses leave none of those addresses (as text in
//!   any usual form, or as raw bytes) and none of the User-Agents in the data dir (database,
//!   WAL, shared memory, backups) or in the most verbose logs, while the server runs and after.
//! - Under load, SIGTERM and `kill -9` lose no pageview that got 202 without a drop header, and
//!   the database passes `integrity_check` afterwards.
//! - A write queue of one answers 503 with `Retry-After` and the error envelope when full, and
//!   stores exactly the pageviews it acknowledged.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aho_corasick::AhoCorasick;
use reqwest::blocking::{Client, Response};
use rusqlite::types::ValueRef;
use serde_json::{Value, json};

use common::ingest::{CHROME, collector, db, dropped, pageview, website};
use common::{Sandbox, Server};

const DOMAIN: &str = "example.com";

/// A server with an account and one website on [`DOMAIN`]; returns the server and the site id.
fn tracked_server(sb: &Sandbox, args: &[&str]) -> (Server, String) {
    let server = Server::start(sb, args);
    let session = server.setup("owner@example.com");
    let site = website(&server, &session, DOMAIN, "UTC");
    (server, site)
}

/// `POST /api/collect` on a sender's own keep-alive client, from `ip` (through
/// `X-Forwarded-For`, believed from loopback) with User-Agent `ua`.
fn send(client: &Client, url: &str, body: &str, ip: &str, ua: &str) -> reqwest::Result<Response> {
    client
        .post(url)
        .header("content-type", "text/plain;charset=UTF-8")
        .header("x-forwarded-for", ip)
        .header("user-agent", ua)
        .body(body.to_string())
        .send()
}

// ---------------------------------------------------------------------------------------------
// Acceptance 5: no address and no User-Agent kept

/// One of the 1,000 clients: its address as sent, and the unique marker in its User-Agent.
struct Visitor {
    ip: IpAddr,
    sent: String,
    ua: String,
    marker: String,
}

/// 500 IPv4 addresses (reserved test ranges and public ones that have a country) and 500 IPv6
/// addresses (compressed, fully written with leading zeros, upper case), each with a
/// different User-Agent of four browser families carrying a unique marker in various places.
fn visitors() -> Vec<Visitor> {
    let mut sent: Vec<String> = Vec::new();
    sent.extend((0..250).map(|i| format!("198.18.{}.{}", 100 + i / 100, 100 + i % 100)));
    sent.extend((0..150).map(|i| format!("203.0.113.{}", 100 + i)));
    sent.extend((0..50).map(|i| format!("81.2.69.{}", 100 + i)));
    sent.extend((0..50).map(|i| format!("216.160.83.{}", 100 + i)));
    sent.extend((0..200).map(|i| format!("2001:db8:85a3::8a2e:{:x}:7334", 0x100 + i)));
    sent.extend((0..200).map(|i| format!("2001:0db8:0000:0042:0000:8a2e:0370:{:04x}", 0x1000 + i)));
    sent.extend((0..100).map(|i| format!("2A00:1450:4001:{:X}::200E", 0x800 + i)));
    sent.into_iter()
        .enumerate()
        .map(|(i, sent)| {
            let marker = format!("uaMarkQ7z{i:04}X");
            let ua = match i % 4 {
                0 => format!("{CHROME} {marker}"),
                1 => format!(
                    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; {marker}; rv:133.0) Gecko/20100101 Firefox/133.0"
                ),
                2 => format!(
                    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1 {marker}"
                ),
                _ => format!(
                    "Mozilla/5.0 (Linux; Android 14; {marker}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"
                ),
            };
            Visitor {
                ip: sent.parse().expect("a valid address"),
                sent,
                ua,
                marker,
            }
        })
        .collect()
}

/// The body of event `i`: pageviews, custom events and heartbeats in turn. Pageview paths,
/// event names and prop values are unique, and must be found in the stored bytes.
fn mixed_event(site: &str, i: usize) -> (Value, Vec<String>) {
    match i % 3 {
        0 => {
            let path = format!("/probe-path-{i:04}-zq");
            let body = json!({"type": "pageview", "websiteId": site,
                "url": format!("https://{DOMAIN}{path}?utm_source=newsletter"),
                "referrer": "https://news.ycombinator.com/", "screenWidth": 1440, "language": "en-US"});
            (body, vec![path])
        }
        1 => {
            let (name, prop) = (format!("Probe Event {i:04}"), format!("probe-prop-{i:04}"));
            let body = json!({"type": "event", "websiteId": site,
                "url": format!("https://{DOMAIN}/pricing"), "name": name, "props": {"plan": prop}});
            (body, vec![name, prop])
        }
        _ => {
            let body = json!({"type": "heartbeat", "websiteId": site,
                "url": format!("https://{DOMAIN}/reading")});
            (body, Vec::new())
        }
    }
}

/// From one in ten clients, also what is refused or dropped, so that those paths' logs are
/// searched too: its address with a bot User-Agent (carrying its marker), malformed JSON and
/// a foreign host. Returns the answers that are not those of SPEC 3.2.
fn refused_requests(client: &Client, url: &str, site: &str, v: &Visitor) -> Vec<String> {
    let bot = format!(
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html) {}",
        v.marker
    );
    let tries = [
        (
            pageview(site, &format!("https://{DOMAIN}/bot")).to_string(),
            bot.as_str(),
            202,
            Some("bot"),
        ),
        (
            r#"{"type": "pageview", "websiteId": "#.to_string(),
            &v.ua,
            400,
            None,
        ),
        (
            pageview(site, "https://elsewhere.example.net/probe").to_string(),
            &v.ua,
            202,
            Some("hostname"),
        ),
    ];
    tries
        .into_iter()
        .filter_map(
            |(body, ua, status, reason)| match send(client, url, &body, &v.sent, ua) {
                Ok(resp) if resp.status() == status && dropped(&resp).as_deref() == reason => None,
                Ok(resp) => Some(format!(
                    "{body} from {} ({ua}): {} dropped={:?}, expected {status} {reason:?}",
                    v.sent,
                    resp.status(),
                    dropped(&resp)
                )),
                Err(e) => Some(format!("{body} from {}: {e}", v.sent)),
            },
        )
        .collect()
}

/// 60 pageviews from one client over 6 connections at once, well over the per-visitor limit,
/// so that the 429 path's logs are searched too. Returns the answers other than 202 and 429,
/// or that no 429 came.
fn burst(url: &str, site: &str, v: &Visitor) -> Vec<String> {
    let body = pageview(site, &format!("https://{DOMAIN}/burst")).to_string();
    let answers: Vec<String> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    let client = collector();
                    (0..10)
                        .map(|_| match send(&client, url, &body, &v.sent, &v.ua) {
                            Ok(resp) => resp.status().as_str().to_string(),
                            Err(e) => e.to_string(),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|s| s.join().expect("burst"))
            .collect()
    });
    let mut problems: Vec<String> = answers
        .iter()
        .filter(|a| *a != "202" && *a != "429")
        .map(|a| format!("burst from {}: {a}", v.sent))
        .collect();
    if !answers.iter().any(|a| a == "429") {
        problems.push(format!("60 events at once from {} got no 429", v.sent));
    }
    problems
}

/// What a needle stands for.
#[derive(Clone, Debug)]
enum Needle {
    /// Must appear nowhere: a client address in some form, or a User-Agent marker.
    Secret(String),
    /// Was sent to be stored, so the search must find it in the data dir.
    Probe(String),
}

/// Everything searched for: text (ASCII case ignored) and raw address bytes (exact).
struct Needles {
    text: AhoCorasick,
    text_needles: Vec<Needle>,
    raw: AhoCorasick,
    raw_needles: Vec<Needle>,
    probes: usize,
}

impl Needles {
    fn new(visitors: &[Visitor], probes: &[String]) -> Needles {
        let mut text: Vec<(String, Needle)> = Vec::new();
        let mut raw: Vec<(Vec<u8>, Needle)> = Vec::new();
        for v in visitors {
            let mut forms = vec![v.sent.clone(), v.ip.to_string()];
            match v.ip {
                IpAddr::V4(ip) => raw.push((ip.octets().to_vec(), Needle::Secret(v.sent.clone()))),
                IpAddr::V6(ip) => {
                    let expanded = ip.segments().map(|s| format!("{s:04x}")).join(":");
                    forms.push(expanded);
                    raw.push((ip.octets().to_vec(), Needle::Secret(v.sent.clone())));
                }
            }
            forms.sort();
            forms.dedup();
            for form in forms {
                text.push((
                    form.clone(),
                    Needle::Secret(format!("{form} (sent as {})", v.sent)),
                ));
            }
            text.push((
                v.marker.clone(),
                Needle::Secret(format!("User-Agent {}", v.ua)),
            ));
        }
        for p in probes {
            text.push((p.clone(), Needle::Probe(p.clone())));
        }
        let (text_patterns, text_needles): (Vec<_>, Vec<_>) = text.into_iter().unzip();
        let (raw_patterns, raw_needles): (Vec<_>, Vec<_>) = raw.into_iter().unzip();
        Needles {
            text: AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(text_patterns)
                .expect("text needles"),
            text_needles,
            raw: AhoCorasick::new(raw_patterns).expect("raw needles"),
            raw_needles,
            probes: probes.len(),
        }
    }
}

/// Random-looking values the database holds by design (visitor hashes, timestamps, salts,
/// token hashes), in every width SQLite may store them, indexed by each 4-byte window: a
/// 4-byte IPv4 pattern can turn up inside one of them by chance, which is not a leak. Also the
/// statistics blocks, varints computed from those stored rows: a match whose surrounding bytes
/// occur in a block is chance too (older copies of a block in the WAL share its records).
#[derive(Default)]
struct Known {
    windows: HashMap<[u8; 4], Vec<(Vec<u8>, usize)>>,
    blocks: Vec<Vec<u8>>,
}

impl Known {
    fn read(sb: &Sandbox) -> Known {
        let conn = db(sb);
        let mut known = Known::default();
        let ints = "SELECT visitor FROM visits UNION SELECT first_at FROM visits
            UNION SELECT last_at FROM visits UNION SELECT pv_first_at FROM visits WHERE pv_first_at IS NOT NULL
            UNION SELECT pv_last_at FROM visits WHERE pv_last_at IS NOT NULL
            UNION SELECT at FROM pageviews UNION SELECT at FROM events";
        let mut stmt = conn.prepare(ints).expect("known integers");
        for v in stmt.query_map([], |r| r.get::<_, i64>(0)).unwrap() {
            let v = v.unwrap();
            let be = v.to_be_bytes();
            for width in [4usize, 6, 8] {
                let half = 1i64 << (8 * width - 1).min(62);
                if width == 8 || (-half..half).contains(&v) {
                    known.add(&be[8 - width..]);
                }
            }
        }
        let blobs = "SELECT salt FROM salts UNION ALL SELECT token_hash FROM sessions";
        let mut stmt = conn.prepare(blobs).expect("known blobs");
        for b in stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
            known.add(&b.unwrap());
        }
        // Each row's values as SQLite lays them out one after another in a record, where
        // small integers side by side (a visit id, a name id) and the start of a text can
        // spell 4 bytes of an address.
        for table in ["visits", "pageviews", "events"] {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
            let columns = stmt.column_count();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let mut record = Vec::new();
                for i in 0..columns {
                    match row.get_ref(i).unwrap() {
                        ValueRef::Integer(v) => record.extend(sqlite_int(v)),
                        ValueRef::Text(b) | ValueRef::Blob(b) => record.extend_from_slice(b),
                        ValueRef::Real(f) => record.extend(f.to_be_bytes()),
                        ValueRef::Null => {}
                    }
                }
                known.add(&record);
            }
        }
        let mut stmt = conn
            .prepare("SELECT data FROM stats_blocks")
            .expect("blocks");
        for b in stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap() {
            known.blocks.push(b.unwrap());
        }
        known
    }

    fn add(&mut self, value: &[u8]) {
        for at in 0..value.len().saturating_sub(3) {
            let key: [u8; 4] = value[at..at + 4].try_into().unwrap();
            self.windows
                .entry(key)
                .or_default()
                .push((value.to_vec(), at));
        }
    }

    /// Whether the 4 bytes at `pos` lie inside one of the known values, or they and the 6
    /// bytes either side of them occur in a statistics block.
    fn explains(&self, bytes: &[u8], pos: usize) -> bool {
        let key: [u8; 4] = bytes[pos..pos + 4].try_into().unwrap();
        let in_value = self.windows.get(&key).is_some_and(|found| {
            found.iter().any(|(value, at)| {
                pos >= *at && bytes.get(pos - at..pos - at + value.len()) == Some(value.as_slice())
            })
        });
        let around = &bytes[pos.saturating_sub(6)..(pos + 10).min(bytes.len())];
        in_value
            || self
                .blocks
                .iter()
                .any(|b| b.windows(around.len()).any(|w| w == around))
    }
}

/// An integer's bytes in an SQLite record: 0 and 1 take none, others the fewest of 1, 2, 3,
/// 4, 6 or 8 big-endian bytes that hold them.
fn sqlite_int(v: i64) -> Vec<u8> {
    if v == 0 || v == 1 {
        return Vec::new();
    }
    let width = [1usize, 2, 3, 4, 6]
        .into_iter()
        .find(|w| {
            let half = 1i64 << (8 * w - 1);
            (-half..half).contains(&v)
        })
        .unwrap_or(8);
    v.to_be_bytes()[8 - width..].to_vec()
}

/// Whether `pos` is in SQLite's own bookkeeping, whose checksums and salts are random: the
/// WAL header and frame headers, the shared-memory header.
fn bookkeeping(file: &str, bytes: &[u8], pos: usize) -> bool {
    if file.ends_with("-wal") {
        if pos < 32 || bytes.len() < 32 {
            return true;
        }
        let page = u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let frame = page + 24;
        let at = (pos - 32) % frame;
        at < 24 || at + 4 > frame
    } else if file.ends_with("-shm") {
        pos < 136
    } else {
        false
    }
}

/// What a search found.
#[derive(Default)]
struct Findings {
    leaks: Vec<String>,
    by_chance: Vec<String>,
    /// 4-byte matches in SQLite's checksums and salts.
    in_bookkeeping: usize,
    probes: HashSet<String>,
}

impl Findings {
    fn search(&mut self, needles: &Needles, known: &Known, file: &str, bytes: &[u8]) {
        for m in needles.text.find_overlapping_iter(bytes) {
            match &needles.text_needles[m.pattern().as_usize()] {
                Needle::Secret(what) => self.leaks.push(format!(
                    "{file} at {}: {what}: …{}…",
                    m.start(),
                    context(bytes, m.start(), m.end())
                )),
                Needle::Probe(p) => {
                    self.probes.insert(p.clone());
                }
            }
        }
        for m in needles.raw.find_overlapping_iter(bytes) {
            let Needle::Secret(what) = &needles.raw_needles[m.pattern().as_usize()] else {
                unreachable!("raw needles are secrets")
            };
            let short = m.end() - m.start() == 4;
            let line = format!(
                "{file} at {}: the raw bytes of {what}: …{}…",
                m.start(),
                hex(&bytes[m.start().saturating_sub(8)..(m.end() + 8).min(bytes.len())])
            );
            if short && bookkeeping(file, bytes, m.start()) {
                self.in_bookkeeping += 1;
                continue;
            }
            if short && known.explains(bytes, m.start()) {
                self.by_chance.push(line);
            } else {
                self.leaks.push(line);
            }
        }
    }
}

fn context(bytes: &[u8], start: usize, end: usize) -> String {
    String::from_utf8_lossy(&bytes[start.saturating_sub(40)..(end + 40).min(bytes.len())])
        .replace(|c: char| c.is_control(), ".")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every file under `dir`, read now.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.push((path, bytes));
            }
        }
    }
    files
}

/// Searches every file of the sandbox (data dir, backups, HOME) and asserts: no secret, at
/// most a few chance matches of 4 raw bytes inside random values, and every probe found.
/// Returns the files searched, and the chance matches (random values, SQLite bookkeeping).
fn assert_data_dir_clean(
    sb: &Sandbox,
    needles: &Needles,
    when: &str,
) -> (Vec<String>, (usize, usize)) {
    let files = snapshot(sb.dir.path());
    let known = Known::read(sb);
    let mut found = Findings::default();
    let mut names = Vec::new();
    for (path, bytes) in &files {
        let name = path.display().to_string();
        names.push(format!(
            "{} ({} bytes)",
            path.file_name().unwrap().to_string_lossy(),
            bytes.len()
        ));
        found.search(needles, &known, &name, bytes);
    }
    assert!(
        found.leaks.is_empty(),
        "{when}: {} client addresses or User-Agents found in the data dir, e.g.:\n{}",
        found.leaks.len(),
        found
            .leaks
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // A page is copied into the WAL each time it is written: count distinct matches.
    let distinct: HashSet<&str> = found
        .by_chance
        .iter()
        .map(|line| line.rsplit_once(": ").map_or(line.as_str(), |(_, hex)| hex))
        .collect();
    assert!(
        distinct.len() <= 3,
        "{when}: too many raw IPv4 addresses inside stored random values to be chance:\n{}",
        found.by_chance.join("\n")
    );
    assert_eq!(
        found.probes.len(),
        needles.probes,
        "{when}: the search must find every stored path, event name and prop value (files: {names:?})"
    );
    (names, (found.by_chance.len(), found.in_bookkeeping))
}

#[test]
fn no_client_address_or_user_agent_is_kept_in_files_or_logs() {
    let started = Instant::now();
    let sb = Sandbox::new();
    // Trace is the most verbose level there is (`--log-level`).
    let (mut server, site) = tracked_server(&sb, &["--log-level", "trace"]);
    let visitors = Arc::new(visitors());
    let url = server.url("/api/collect");
    let senders: Vec<JoinHandle<(Vec<String>, Vec<String>)>> = (0..8)
        .map(|t| {
            let (visitors, url, site) = (visitors.clone(), url.clone(), site.clone());
            std::thread::spawn(move || {
                let client = collector();
                let (mut probes, mut problems) = (Vec::new(), Vec::new());
                for i in (t..visitors.len()).step_by(8) {
                    let v = &visitors[i];
                    let (body, stored) = mixed_event(&site, i);
                    match send(&client, &url, &body.to_string(), &v.sent, &v.ua) {
                        Ok(resp) if resp.status() == 202 && dropped(&resp).is_none() => {
                            probes.extend(stored);
                        }
                        Ok(resp) => problems.push(format!(
                            "event {i} from {} ({}): {} dropped={:?}",
                            v.sent,
                            v.ua,
                            resp.status(),
                            dropped(&resp)
                        )),
                        Err(e) => problems.push(format!("event {i}: {e}")),
                    }
                    if i % 10 == 0 {
                        problems.extend(refused_requests(&client, &url, &site, v));
                    }
                }
                (probes, problems)
            })
        })
        .collect();
    let (mut probes, mut problems) = (Vec::new(), Vec::new());
    for s in senders {
        let (p, q) = s.join().expect("sender");
        probes.extend(p);
        problems.extend(q);
    }
    problems.extend(burst(&url, &site, &visitors[0]));
    assert!(
        problems.is_empty(),
        "every event is accepted and stored:\n{}",
        problems.join("\n")
    );
    assert_eq!(probes.len(), 334 + 333 * 2);
    let needles = Needles::new(&visitors, &probes);
    let sent_at = started.elapsed();

    // While the server runs, the WAL holds the recent writes.
    let (live, live_chance) = assert_data_dir_clean(&sb, &needles, "while the server runs");
    assert!(
        live.iter()
            .any(|f| f.starts_with("jetrack.db-wal (") && !f.ends_with(" 0 bytes)")),
        "the WAL exists while the server runs: {live:?}"
    );

    server.signal("TERM");
    let status = server.wait();
    assert!(
        status.success(),
        "exit status {status}: {}",
        server.stderr()
    );
    let (stopped, stopped_chance) =
        assert_data_dir_clean(&sb, &needles, "after the server stopped");

    let (stdout, stderr) = (server.stdout(), server.stderr());
    let mut in_logs = Findings::default();
    in_logs.search(&needles, &Known::default(), "stdout", stdout.as_bytes());
    in_logs.search(&needles, &Known::default(), "stderr", stderr.as_bytes());
    assert!(
        in_logs.leaks.is_empty() && in_logs.by_chance.is_empty(),
        "client addresses or User-Agents in the logs:\n{}",
        in_logs
            .leaks
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stderr.lines().count() > 10,
        "the trace log says something: {stderr}"
    );
    eprintln!(
        "1,000 events sent in {sent_at:?}; files while running {live:?}, after {stopped:?}; \
         4-byte chance matches (in random values, in SQLite bookkeeping) while running \
         {live_chance:?}, after {stopped_chance:?}; {} log lines; total {:?}",
        stderr.lines().count(),
        started.elapsed()
    );
}

/// The search itself: every form of an address is found, 4 raw bytes are excused only inside
/// a known random value or SQLite's frame headers, and a probe counts as found.
#[test]
fn the_search_finds_every_form_of_an_address() {
    let all = visitors();
    let picked: Vec<Visitor> = all
        .into_iter()
        .filter(|v| {
            v.sent.starts_with("198.18.100.10")
                || v.sent.starts_with("2001:0db8:0000:0042:0000:8a2e:0370:100")
        })
        .collect();
    let needles = Needles::new(&picked, &["/probe-path-0000-zq".to_string()]);
    let v4 = &picked[0];
    let v6 = picked.iter().find(|v| v.ip.is_ipv6()).unwrap();
    let (IpAddr::V4(ip4), IpAddr::V6(ip6)) = (v4.ip, v6.ip) else {
        unreachable!()
    };
    let find = |file: &str, bytes: &[u8], known: &Known| {
        let mut f = Findings::default();
        f.search(&needles, known, file, bytes);
        f
    };
    let none = Known::default();
    let canonical = ip6.to_string().to_uppercase();
    for form in [
        v4.sent.as_str(),
        &v6.sent,
        &canonical,
        "2001:db8:0:42:0:8a2e:370:1000",
    ] {
        let bytes = format!("xx{form}yy");
        assert_eq!(
            find("jetrack.db", bytes.as_bytes(), &none).leaks.len(),
            1,
            "{form}"
        );
    }
    let marker = format!("..{}..", v4.marker.to_lowercase());
    assert_eq!(find("x", marker.as_bytes(), &none).leaks.len(), 1);
    let mut raw = vec![0u8; 64];
    raw[40..44].copy_from_slice(&ip4.octets());
    assert_eq!(find("jetrack.db", &raw, &none).leaks.len(), 1, "raw IPv4");
    raw[20..36].copy_from_slice(&ip6.octets());
    assert_eq!(
        find("jetrack.db", &raw, &none).leaks.len(),
        2,
        "raw IPv6 too"
    );
    // Inside a stored random value, the IPv4 bytes are chance; the IPv6 ones never are.
    let mut known = Known::default();
    known.add(&raw[38..46]);
    let found = find("jetrack.db", &raw, &known);
    assert_eq!((found.leaks.len(), found.by_chance.len()), (1, 1));
    // Inside a statistics block (or an older copy of one), too; elsewhere, a leak.
    let mut in_block = Known::default();
    in_block.blocks.push(raw[30..56].to_vec());
    let found = find("jetrack.db", &raw[4..], &in_block);
    assert_eq!((found.leaks.len(), found.by_chance.len()), (1, 1));
    in_block.blocks[0][16] ^= 1;
    assert_eq!(find("jetrack.db", &raw, &in_block).leaks.len(), 2);
    // Across a row's values: a visit id's last byte, a name id, the first letter of a text.
    let o = ip4.octets();
    let record = [
        sqlite_int(0x0300 | i64::from(o[0])),
        sqlite_int(i64::from(o[1]) << 8 | i64::from(o[2])),
        vec![o[3], b'x'],
    ]
    .concat();
    assert_eq!(find("jetrack.db", &record, &none).leaks.len(), 1);
    let mut rows = Known::default();
    rows.add(&record);
    assert_eq!(find("jetrack.db", &record, &rows).by_chance.len(), 1);
    // In a WAL (page size 16 here), only the frame headers are SQLite's own.
    let mut wal = vec![0u8; 32 + 2 * 40];
    wal[8..12].copy_from_slice(&16u32.to_be_bytes());
    wal[32 + 40 + 2..32 + 40 + 6].copy_from_slice(&ip4.octets());
    let found = find("jetrack.db-wal", &wal, &none);
    assert_eq!((found.leaks.len(), found.in_bookkeeping), (0, 1));
    wal[32 + 40 + 26..32 + 40 + 30].copy_from_slice(&ip4.octets());
    assert_eq!(
        find("jetrack.db-wal", &wal, &none).leaks.len(),
        1,
        "in a page"
    );
    let probe = find("jetrack.db", b"../PROBE-path-0000-zq..", &none);
    assert_eq!(probe.probes.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Acceptance 8: nothing acknowledged is lost

/// What the senders of a load heard back.
#[derive(Default, Debug)]
struct Tally {
    /// Paths of the pageviews answered 202 without a drop header.
    acked: Vec<String>,
    /// 503 answers with `Retry-After` and the error envelope.
    refused: usize,
    /// Requests that got no answer (connection refused, reset, closed).
    failed: usize,
    acked_after_signal: usize,
    refused_after_signal: usize,
    /// Any other answer: each one breaks the contract.
    unexpected: Vec<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.acked.extend(other.acked);
        self.refused += other.refused;
        self.failed += other.failed;
        self.acked_after_signal += other.acked_after_signal;
        self.refused_after_signal += other.refused_after_signal;
        self.unexpected.extend(other.unexpected);
    }

    fn summary(&self) -> String {
        format!(
            "acked {} ({} after the signal), 503 {} ({} after the signal), no answer {}",
            self.acked.len(),
            self.acked_after_signal,
            self.refused,
            self.refused_after_signal,
            self.failed
        )
    }

    fn assert_no_unexpected(&self) {
        assert!(
            self.unexpected.is_empty(),
            "{} answers were neither 202 nor 503 with Retry-After and the envelope, e.g.:\n{}",
            self.unexpected.len(),
            self.unexpected
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Files one answer to the pageview of `path`.
    fn answer(&mut self, path: String, resp: Response, after_signal: bool) {
        let status = resp.status().as_u16();
        match status {
            202 => match dropped(&resp) {
                None => {
                    self.acked.push(path);
                    self.acked_after_signal += usize::from(after_signal);
                }
                Some(reason) => self
                    .unexpected
                    .push(format!("{path}: 202 dropped as {reason}")),
            },
            503 => {
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let Ok(text) = resp.text() else {
                    self.failed += 1;
                    return;
                };
                match refusal_problem(retry_after.as_deref(), &text) {
                    None => {
                        self.refused += 1;
                        self.refused_after_signal += usize::from(after_signal);
                    }
                    Some(problem) => self.unexpected.push(format!("{path}: {problem}")),
                }
            }
            _ => {
                let text = resp.text().unwrap_or_default();
                self.unexpected.push(format!("{path}: {status} {text}"));
            }
        }
    }
}

/// What is wrong with a 503, if anything: it needs `Retry-After` in whole seconds and the
/// error envelope.
fn refusal_problem(retry_after: Option<&str>, body: &str) -> Option<String> {
    if retry_after
        .and_then(|v| v.parse::<u64>().ok())
        .is_none_or(|s| s == 0)
    {
        return Some(format!("503 with Retry-After {retry_after:?}: {body}"));
    }
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Some(format!("503 without a JSON envelope: {body}"));
    };
    let envelope = v["success"] == false
        && v["meta"]["status"] == 503
        && v["data"].is_null()
        && v["meta"]["message"].is_string()
        && v["meta"]["errors"].is_array();
    (!envelope).then(|| format!("503 with a body that is not the error envelope: {body}"))
}

/// Senders posting pageviews with unique paths (`/{tag}/s{sender}/n{count}`), each from its
/// own address, as fast as answers come.
struct Load {
    stop: Arc<AtomicBool>,
    signalled: Arc<AtomicBool>,
    senders: Vec<JoinHandle<Tally>>,
}

impl Load {
    /// `limit`: pageviews per sender at most. After [`Load::signal`], a sender stops at its
    /// first request that gets no answer.
    fn start(server: &Server, site: &str, senders: usize, tag: &str, limit: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let signalled = Arc::new(AtomicBool::new(false));
        let senders = (0..senders)
            .map(|s| {
                let (stop, signalled) = (stop.clone(), signalled.clone());
                let (url, site, tag) = (
                    server.url("/api/collect"),
                    site.to_string(),
                    tag.to_string(),
                );
                std::thread::spawn(move || {
                    let client = collector();
                    let mut tally = Tally::default();
                    for n in 0..limit {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let path = format!("/{tag}/s{s}/n{n}");
                        let ip = format!("2001:db8:{s:x}:{:x}::{:x}", n >> 16, n & 0xffff);
                        let after_signal = signalled.load(Ordering::SeqCst);
                        let body = pageview(&site, &format!("https://{DOMAIN}{path}"));
                        match send(&client, &url, &body.to_string(), &ip, CHROME) {
                            Ok(resp) => tally.answer(path, resp, after_signal),
                            Err(_) => {
                                tally.failed += 1;
                                if after_signal {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        Load {
            stop,
            signalled,
            senders,
        }
    }

    /// Marks the moment the server is signalled.
    fn signal(&self) {
        self.signalled.store(true, Ordering::SeqCst);
    }

    /// Stops the senders and adds up what they heard.
    fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    /// Waits for the senders to finish on their own.
    fn join(self) -> Tally {
        let mut tally = Tally::default();
        for s in self.senders {
            tally.merge(s.join().expect("sender"));
        }
        tally
    }
}

/// Stored pageview paths and how often each is stored.
fn stored_paths(sb: &Sandbox) -> HashMap<String, usize> {
    let conn = db(sb);
    let mut stmt = conn
        .prepare("SELECT s.value, count(*) FROM pageviews p JOIN strings s ON s.id = p.path GROUP BY s.value")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn integrity(sb: &Sandbox) -> String {
    let conn = db(sb);
    let mut stmt = conn.prepare("PRAGMA integrity_check").unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every acknowledged pageview is stored, once; the database is sound. Returns the number of
/// stored pageviews.
fn assert_acked_stored(sb: &Sandbox, acked: &[String], when: &str) -> usize {
    assert_eq!(integrity(sb), "ok", "{when}: PRAGMA integrity_check");
    let stored = stored_paths(sb);
    let missing: Vec<&String> = acked.iter().filter(|p| !stored.contains_key(*p)).collect();
    assert!(
        missing.is_empty(),
        "{when}: {} of {} pageviews answered 202 are not stored, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    let twice: Vec<_> = stored.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{when}: pageviews stored more than once: {twice:?}"
    );
    let total = stored.values().sum();
    assert!(
        total >= acked.len(),
        "{when}: {total} stored < {} acknowledged",
        acked.len()
    );
    total
}

#[test]
fn sigterm_under_load_loses_no_acknowledged_event() {
    let started = Instant::now();
    let sb = Sandbox::new();
    let (mut server, site) = tracked_server(&sb, &[]);
    let load = Load::start(&server, &site, 8, "term", usize::MAX);
    std::thread::sleep(Duration::from_secs(2));
    load.signal();
    server.signal("TERM");
    let status = server.wait();
    let tally = load.stop();
    eprintln!("SIGTERM: {} in {:?}", tally.summary(), started.elapsed());
    tally.assert_no_unexpected();
    assert!(
        status.success(),
        "exit status {status}: {}",
        server.stderr()
    );
    assert!(
        tally.acked.len() >= 100,
        "the load got going: {}",
        tally.summary()
    );
    let stored = assert_acked_stored(&sb, &tally.acked, "after SIGTERM");
    eprintln!("SIGTERM: {stored} pageviews stored");
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_event() {
    let started = Instant::now();
    let sb = Sandbox::new();
    let (first, site) = tracked_server(&sb, &[]);
    let mut server = first;
    let mut acked = Vec::new();
    for round in 0..3 {
        let load = Load::start(&server, &site, 8, &format!("kill{round}"), usize::MAX);
        std::thread::sleep(Duration::from_millis(1500));
        load.signal();
        server.signal("KILL");
        let status = server.wait();
        let tally = load.stop();
        eprintln!("kill -9, round {round}: {}", tally.summary());
        tally.assert_no_unexpected();
        assert_eq!(status.signal(), Some(9), "killed: {status}");
        assert!(
            tally.acked.len() >= 50,
            "round {round}: the load got going: {}",
            tally.summary()
        );
        acked.extend(tally.acked);
        // A fresh server on the same data dir recovers the WAL; it then serves the next round.
        server = Server::start(&sb, &[]);
        let stored = assert_acked_stored(&sb, &acked, &format!("after kill -9 round {round}"));
        eprintln!(
            "kill -9, round {round}: {stored} stored, {} acknowledged so far",
            acked.len()
        );
    }
    server.signal("TERM");
    let status = server.wait();
    assert!(
        status.success(),
        "exit status {status}: {}",
        server.stderr()
    );
    assert_acked_stored(&sb, &acked, "after the last restart");
    eprintln!("kill -9: 3 rounds in {:?}", started.elapsed());
}

#[test]
fn a_full_queue_answers_503_with_retry_after_and_stores_exactly_what_it_acknowledged() {
    let started = Instant::now();
    let sb = Sandbox::new();
    let (mut server, site) = tracked_server(&sb, &["--queue-capacity", "1"]);
    let mut tally = Tally::default();
    // 64 senders; should a queue of one never fill on this machine, 256.
    for (round, senders) in [64, 256].into_iter().enumerate() {
        let load = Load::start(&server, &site, senders, &format!("full{round}"), 30);
        let t = load.join();
        eprintln!("queue of 1, {senders} senders: {}", t.summary());
        tally.merge(t);
        if tally.refused > 0 {
            break;
        }
    }
    tally.assert_no_unexpected();
    assert_eq!(
        tally.failed,
        0,
        "every request gets an answer: {}",
        tally.summary()
    );
    assert!(
        tally.refused > 0,
        "a full queue answers 503: {}",
        tally.summary()
    );
    let stored = stored_paths(&sb);
    let acked: HashSet<&String> = tally.acked.iter().collect();
    let extra: Vec<_> = stored
        .keys()
        .filter(|p| !acked.contains(p))
        .take(10)
        .collect();
    assert!(
        extra.is_empty(),
        "pageviews answered 503 were stored: {extra:?}"
    );
    assert_acked_stored(&sb, &tally.acked, "with a full queue");
    assert_eq!(
        stored.values().sum::<usize>(),
        tally.acked.len(),
        "stored == answered 202"
    );
    server.signal("TERM");
    let status = server.wait();
    assert!(
        status.success(),
        "exit status {status}: {}",
        server.stderr()
    );
    eprintln!("queue of 1: done in {:?}", started.elapsed());
}
