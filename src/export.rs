//! Exports (SPEC 2.5): a website's stored pageviews and custom events of a period, in time
//! order, as NDJSON or CSV, produced piece by piece so that a year streams in constant memory.
//!
//! Each NDJSON line is an event of `POST /websites/{id}/events` (SPEC 3.5): `url` carries the
//! path and the UTM tags, `visitorId` the stored visitor id, `sessionId` the stored session
//! (which the import accepts and ignores: it recomputes sessions), and the attributes are set
//! directly, so that importing the lines into another website gives the same figures. Every
//! line of a session carries the session's attributes (those of its first pageview). Heartbeats
//! are not stored, but a session's last activity is: when it is later than its last pageview or
//! event, a `heartbeat` line at that time keeps the session's duration. CSV has one column per
//! field instead, with the session id, path and UTM tags spelled out.
//!
//! Rows are read in short statements (no read transaction is held between pieces), so an
//! export never keeps the WAL from being checkpointed, and memory holds a piece, a bounded
//! string cache and the sessions still open at the current time.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::ingest::store::{AttrIds, Kind};
use crate::stats::period::Period;
use crate::time::iso_ms;

/// A piece of the download is about this long.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Rows read from each table per statement.
const ROWS_PER_READ: i64 = 2_000;
/// Strings kept resolved; the cache starts over beyond this.
const STRING_CACHE: usize = 50_000;
/// Sessions remembered as seen; those that ended before the current row are forgotten beyond.
const OPEN_SESSIONS: usize = 50_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    pub fn parse(raw: &str) -> Option<Format> {
        match raw {
            "ndjson" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
        }
    }
}

/// The CSV header, in column order.
pub const CSV_COLUMNS: [&str; 20] = [
    "timestamp",
    "type",
    "visitorId",
    "sessionId",
    "hostname",
    "path",
    "referrer",
    "utmSource",
    "utmMedium",
    "utmCampaign",
    "utmTerm",
    "utmContent",
    "country",
    "browser",
    "os",
    "device",
    "language",
    "screen",
    "name",
    "props",
];

/// The download's file name: `jetrack-<domain>-<from>-<to>.<ext>`, in safe characters.
pub fn file_name(domain: &str, from: &str, to: &str, format: Format) -> String {
    let safe: String = domain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("jetrack-{safe}-{from}-{to}.{}", format.extension())
}

/// What a session says of each of its rows (string columns as their numbers).
#[derive(Clone, Debug)]
struct Session {
    visitor: i64,
    last_at: i64,
    attrs: AttrIds,
}

/// One line of the export.
#[derive(Clone, Debug)]
struct Row {
    at: i64,
    seq: i64,
    kind: Kind,
    visit: i64,
    /// Pageviews: their hostname and path. Events: their name and props.
    hostname: Option<i64>,
    path: Option<i64>,
    name: Option<i64>,
    props: Option<String>,
    session: Session,
}

const SESSION_COLUMNS: &str = "v.visitor, v.last_at, v.hostname, v.referrer, v.utm_source, \
    v.utm_medium, v.utm_campaign, v.utm_term, v.utm_content, v.country, v.browser, v.os, \
    v.device, v.language, v.screen";

fn session_from(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Session> {
    Ok(Session {
        visitor: r.get(first)?,
        last_at: r.get(first + 1)?,
        attrs: AttrIds::from_row(r, first + 2)?,
    })
}

/// The rows of one table, read ahead a statement at a time.
struct Cursor {
    kind: Kind,
    /// The last row read: reading goes on after `(at, seq)`.
    after: (i64, i64),
    rows: VecDeque<Row>,
    exhausted: bool,
}

impl Cursor {
    fn new(kind: Kind, start: i64) -> Cursor {
        Cursor {
            kind,
            after: (start, -1),
            rows: VecDeque::new(),
            exhausted: false,
        }
    }

    fn fill(&mut self, conn: &Connection, site: i64, end: i64) -> Result<()> {
        if !self.rows.is_empty() || self.exhausted {
            return Ok(());
        }
        let sql = match self.kind {
            Kind::Pageview => format!(
                "SELECT p.at, p.seq, p.visit, p.hostname, p.path, NULL, NULL, {SESSION_COLUMNS}
                 FROM pageviews p JOIN visits v ON v.id = p.visit
                 WHERE p.site = ?1 AND p.at >= ?2 AND (p.at > ?2 OR p.seq > ?3) AND p.at < ?4
                 ORDER BY p.at, p.seq LIMIT ?5"
            ),
            _ => format!(
                "SELECT e.at, e.seq, e.visit, NULL, NULL, e.name, e.props, {SESSION_COLUMNS}
                 FROM events e JOIN visits v ON v.id = e.visit
                 WHERE e.site = ?1 AND e.at >= ?2 AND (e.at > ?2 OR e.seq > ?3) AND e.at < ?4
                 ORDER BY e.at, e.seq LIMIT ?5"
            ),
        };
        let kind = self.kind;
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(
            params![site, self.after.0, self.after.1, end, ROWS_PER_READ],
            |r| {
                Ok(Row {
                    at: r.get(0)?,
                    seq: r.get(1)?,
                    kind,
                    visit: r.get(2)?,
                    hostname: r.get(3)?,
                    path: r.get(4)?,
                    name: r.get(5)?,
                    props: r.get(6)?,
                    session: session_from(r, 7)?,
                })
            },
        )?;
        for row in rows {
            self.rows.push_back(row?);
        }
        match self.rows.back() {
            Some(last) => self.after = (last.at, last.seq),
            None => self.exhausted = true,
        }
        if (self.rows.len() as i64) < ROWS_PER_READ {
            self.exhausted = true;
        }
        Ok(())
    }
}

/// An export in progress: call [`Export::next_chunk`] until it answers `None`.
pub struct Export {
    site: i64,
    end: i64,
    /// For the `url` of events and heartbeats of a session that has no hostname.
    domain: String,
    pageviews: Cursor,
    events: Cursor,
    /// Heartbeats still to write, by time: one per session whose last activity is no row.
    heartbeats: BTreeMap<(i64, i64), Row>,
    /// Sessions already seen, with their last activity.
    seen: HashMap<i64, i64>,
    strings: HashMap<i64, String>,
    csv: Option<csv::Writer<Vec<u8>>>,
    started: bool,
    finished: bool,
}

impl Export {
    /// The rows of `target` in `period`.
    pub fn new(target: &Target, period: &Period, format: Format) -> Export {
        Export {
            site: target.site,
            end: period.end,
            domain: target.domain.clone(),
            pageviews: Cursor::new(Kind::Pageview, period.start),
            events: Cursor::new(Kind::Event, period.start),
            heartbeats: BTreeMap::new(),
            seen: HashMap::new(),
            strings: HashMap::new(),
            csv: (format == Format::Csv).then(|| csv::Writer::from_writer(Vec::new())),
            started: false,
            finished: false,
        }
    }

    /// The next piece of the download (about [`CHUNK_BYTES`]), or `None` after the last.
    pub fn next_chunk(&mut self, conn: &Connection) -> Result<Option<Vec<u8>>> {
        if self.finished {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(CHUNK_BYTES + 4096);
        if !self.started {
            self.started = true;
            if let Some(w) = &mut self.csv {
                w.write_record(CSV_COLUMNS).map_err(csv_error)?;
            }
        }
        while self.pending_len(&out) < CHUNK_BYTES {
            self.pageviews.fill(conn, self.site, self.end)?;
            self.events.fill(conn, self.site, self.end)?;
            // The earlier row first; a pageview before an event of the same millisecond.
            let pv = self.pageviews.rows.front().map(|r| r.at);
            let ev = self.events.rows.front().map(|r| r.at);
            let cursor = match (pv, ev) {
                (None, None) => None,
                (Some(_), None) => Some(&mut self.pageviews),
                (None, Some(_)) => Some(&mut self.events),
                (Some(a), Some(b)) if a <= b => Some(&mut self.pageviews),
                (Some(_), Some(_)) => Some(&mut self.events),
            };
            let Some(row) = cursor.and_then(|c| c.rows.pop_front()) else {
                // Only heartbeats are left.
                while let Some((_, hb)) = self.heartbeats.pop_first() {
                    self.write(conn, &hb, &mut out)?;
                }
                self.finished = true;
                break;
            };
            while let Some(entry) = self.heartbeats.first_entry() {
                if entry.key().0 >= row.at {
                    break;
                }
                let hb = entry.remove();
                self.write(conn, &hb, &mut out)?;
            }
            self.note_session(conn, &row)?;
            self.write(conn, &row, &mut out)?;
        }
        if let Some(w) = self.csv.take() {
            let written = w
                .into_inner()
                .map_err(|e| Error::Internal(format!("writing CSV: {e}")))?;
            out.extend_from_slice(&written);
            self.csv = Some(csv::Writer::from_writer(Vec::with_capacity(
                written.capacity(),
            )));
        }
        if out.is_empty() && self.finished {
            return Ok(None);
        }
        Ok(Some(out))
    }

    fn pending_len(&self, out: &[u8]) -> usize {
        out.len() + self.csv.as_ref().map_or(0, |w| w.get_ref().len())
    }

    /// The first time a session shows up: schedules the heartbeat of its last activity when
    /// that is in the period and is no row of its own.
    fn note_session(&mut self, conn: &Connection, row: &Row) -> Result<()> {
        if self.seen.contains_key(&row.visit) {
            return Ok(());
        }
        if self.seen.len() >= OPEN_SESSIONS {
            // A session that ended before this row has no rows left to come.
            self.seen.retain(|_, last| *last >= row.at);
        }
        let last = row.session.last_at;
        self.seen.insert(row.visit, last);
        if last <= row.at || last >= self.end {
            return Ok(());
        }
        let is_row: Option<i64> = conn
            .prepare_cached(
                "SELECT 1 FROM pageviews WHERE site = ?1 AND at = ?2 AND visit = ?3
                 UNION ALL SELECT 1 FROM events WHERE site = ?1 AND at = ?2 AND visit = ?3
                 LIMIT 1",
            )?
            .query_row(params![self.site, last, row.visit], |r| r.get(0))
            .optional()?;
        if is_row.is_none() {
            let hb = Row {
                at: last,
                seq: 0,
                kind: Kind::Heartbeat,
                visit: row.visit,
                hostname: None,
                path: None,
                name: None,
                props: None,
                session: row.session.clone(),
            };
            self.heartbeats.insert((last, row.visit), hb);
        }
        Ok(())
    }

    fn string(&mut self, conn: &Connection, id: Option<i64>) -> Result<Option<String>> {
        let Some(id) = id else { return Ok(None) };
        if let Some(s) = self.strings.get(&id) {
            return Ok(Some(s.clone()));
        }
        let value: Option<String> = conn
            .prepare_cached("SELECT value FROM strings WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        if self.strings.len() >= STRING_CACHE {
            self.strings.clear();
        }
        if let Some(v) = &value {
            self.strings.insert(id, v.clone());
        }
        Ok(value)
    }

    fn write(&mut self, conn: &Connection, row: &Row, out: &mut Vec<u8>) -> Result<()> {
        let s = &row.session.attrs;
        let page_host = self.string(conn, row.hostname)?;
        let session_host = self.string(conn, s.hostname)?;
        let hostname = page_host
            .or(session_host)
            .unwrap_or_else(|| self.domain.clone());
        let path = self.string(conn, row.path)?;
        let referrer = self.string(conn, s.referrer)?;
        let mut utm: [Option<String>; 5] = Default::default();
        for (slot, id) in utm.iter_mut().zip(s.utm) {
            *slot = self.string(conn, id)?;
        }
        let line = Line {
            kind: row.kind.as_str(),
            timestamp: iso_ms(row.at),
            visitor_id: format!("{:016x}", row.session.visitor as u64),
            hostname,
            referrer,
            country: s.country.clone(),
            browser: self.string(conn, s.browser)?,
            os: self.string(conn, s.os)?,
            device: self.string(conn, s.device)?,
            language: self.string(conn, s.language)?,
            screen: self.string(conn, s.screen)?,
            name: self.string(conn, row.name)?,
            props: row.props.clone(),
        };
        match &mut self.csv {
            Some(w) => {
                let [source, medium, campaign, term, content] = &utm;
                let cell = |v: &Option<String>| v.as_deref().map_or_else(String::new, csv_cell);
                let record = [
                    line.timestamp.clone(),
                    line.kind.to_string(),
                    line.visitor_id.clone(),
                    row.visit.to_string(),
                    csv_cell(&line.hostname),
                    cell(&path),
                    cell(&line.referrer),
                    cell(source),
                    cell(medium),
                    cell(campaign),
                    cell(term),
                    cell(content),
                    cell(&line.country),
                    cell(&line.browser),
                    cell(&line.os),
                    cell(&line.device),
                    cell(&line.language),
                    cell(&line.screen),
                    cell(&line.name),
                    cell(&line.props),
                ];
                w.write_record(&record).map_err(csv_error)?;
            }
            None => {
                let url = page_url(&line.hostname, path.as_deref(), &utm);
                let referrer = line
                    .referrer
                    .as_deref()
                    .map(|h| format!("https://{}/", host_in_url(h)));
                let props =
                    match &line.props {
                        Some(text) => Some(serde_json::from_str::<Value>(text).map_err(|e| {
                            Error::Internal(format!("stored props are not JSON: {e}"))
                        })?),
                        None => None,
                    };
                let json = NdjsonLine {
                    kind: line.kind,
                    timestamp: &line.timestamp,
                    visitor_id: &line.visitor_id,
                    session_id: row.visit.to_string(),
                    url,
                    hostname: &line.hostname,
                    referrer,
                    country: line.country.as_deref(),
                    browser: line.browser.as_deref(),
                    os: line.os.as_deref(),
                    device: line.device.as_deref(),
                    language: line.language.as_deref(),
                    screen: line.screen.as_deref(),
                    name: line.name.as_deref(),
                    props,
                };
                serde_json::to_writer(&mut *out, &json)
                    .map_err(|e| Error::Internal(format!("writing an export line: {e}")))?;
                out.push(b'\n');
            }
        }
        Ok(())
    }
}

/// A row's values, resolved.
struct Line {
    kind: &'static str,
    timestamp: String,
    visitor_id: String,
    hostname: String,
    referrer: Option<String>,
    country: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device: Option<String>,
    language: Option<String>,
    screen: Option<String>,
    name: Option<String>,
    props: Option<String>,
}

/// An NDJSON line: an event of `POST /websites/{id}/events`, field for field.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NdjsonLine<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: &'a str,
    visitor_id: &'a str,
    /// The stored session's id; the import accepts it and recomputes sessions from times.
    session_id: String,
    url: String,
    hostname: &'a str,
    referrer: Option<String>,
    country: Option<&'a str>,
    browser: Option<&'a str>,
    os: Option<&'a str>,
    device: Option<&'a str>,
    language: Option<&'a str>,
    screen: Option<&'a str>,
    name: Option<&'a str>,
    props: Option<Value>,
}

/// A host as it stands in a URL: IPv6 addresses in brackets.
fn host_in_url(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `https://host/path?utm_source=…`: the page with the session's UTM tags, which the import
/// reads back from the URL. Events and heartbeats name no page: `/`.
fn page_url(hostname: &str, path: Option<&str>, utm: &[Option<String>; 5]) -> String {
    let mut url = format!("https://{}{}", host_in_url(hostname), path.unwrap_or("/"));
    let names = [
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    ];
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (name, value) in names.iter().zip(utm) {
        if let Some(v) = value {
            query.append_pair(name, v);
            any = true;
        }
    }
    if any {
        url.push('?');
        url.push_str(&query.finish());
    }
    url
}

/// A CSV cell that a spreadsheet will not run: text beginning with `=`, `+`, `-`, `@`, a tab
/// or a carriage return gets a leading `'` (docs/api.md, "Export"). Tracking data is anyone's
/// input, and a cell such as `=HYPERLINK(…)` would otherwise be a formula. The NDJSON export
/// keeps every value as it is.
fn csv_cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

fn csv_error(e: csv::Error) -> Error {
    Error::Internal(format!("writing CSV: {e}"))
}

/// The website an export names, as the row tables know it.
#[derive(Clone, Debug)]
pub struct Target {
    pub site: i64,
    pub domain: String,
    pub timezone: String,
}

impl Target {
    pub fn of(conn: &Connection, website: &crate::websites::Website) -> Result<Target> {
        let site = crate::websites::site_number(conn, website.id)?
            .ok_or_else(|| Error::NotFound("Website not found".into()))?
            .0;
        Ok(Target {
            site,
            domain: website.domain.clone(),
            timezone: website.timezone.clone(),
        })
    }

    /// Checks `from`, `to` and `timezone` as the statistics do, and `format`; `errors` holds
    /// problems found before (unknown parameters), and every problem is reported at once.
    pub fn request(
        &self,
        query: &[(String, String)],
        mut errors: Vec<String>,
        now_ms: i64,
    ) -> Result<(Period, Format)> {
        let q = crate::server::api::query::query(query, &self.timezone, now_ms, &mut errors);
        let format = crate::server::api::query::value(query, "format")
            .map_or(Some(Format::Ndjson), Format::parse);
        if format.is_none() {
            errors.push("format: must be ndjson or csv".into());
        }
        match format {
            Some(format) if errors.is_empty() => Ok((q.period, format)),
            _ => Err(Error::invalid_all(errors)),
        }
    }
}

/// `jetrack export`: the export of the website `website` to stdout, with `query` holding
/// `from`, `to` and `format` as the API takes them. Reads the database file directly, also
/// while a server runs.
pub fn to_stdout(
    path: &std::path::Path,
    website: &str,
    query: Vec<(String, String)>,
) -> Result<()> {
    use std::io::Write;
    let conn = crate::db::open_read_only(path)?;
    let found = crate::websites::by_id(&conn, website)?
        .ok_or_else(|| Error::NotFound(format!("no website with id {website}")))?;
    let target = Target::of(&conn, &found)?;
    let (period, format) = target.request(&query, Vec::new(), crate::time::now_ms())?;
    let mut export = Export::new(&target, &period, format);
    let mut stdout = std::io::stdout().lock();
    while let Some(piece) = export.next_chunk(&conn)? {
        stdout.write_all(&piece).map_err(|e| {
            Error::Internal(format!(
                "cannot write to stdout: {}",
                crate::datadir::plain(&e)
            ))
        })?;
    }
    stdout.flush().map_err(|e| {
        Error::Internal(format!(
            "cannot write to stdout: {}",
            crate::datadir::plain(&e)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_path_and_the_utm_tags() {
        let utm = [
            Some("news letter".to_string()),
            None,
            Some("a&b".into()),
            None,
            None,
        ];
        assert_eq!(
            page_url("blog.example.com", Some("/a/b"), &utm),
            "https://blog.example.com/a/b?utm_source=news+letter&utm_campaign=a%26b"
        );
        assert_eq!(page_url("::1", None, &Default::default()), "https://[::1]/");
    }

    #[test]
    fn csv_cells_never_start_a_formula() {
        for (raw, cell) in [
            (
                "=HYPERLINK(\"https://evil.example\")",
                "'=HYPERLINK(\"https://evil.example\")",
            ),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("/pricing", "/pricing"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(raw), cell, "{raw:?}");
        }
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(
            file_name("example.com", "2025-01-01", "2025-01-31", Format::Csv),
            "jetrack-example.com-2025-01-01-2025-01-31.csv"
        );
        assert_eq!(
            file_name("::1", "a", "b", Format::Ndjson),
            "jetrack-__1-a-b.ndjson"
        );
    }
}
