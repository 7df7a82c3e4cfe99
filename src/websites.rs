//! Websites: the sites being tracked. The only place their table is read or written.

use std::net::IpAddr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};
use serde::Serialize;
use uuid::Uuid;

use crate::accounts::Account;
use crate::audit::{self, Action};
use crate::error::{Error, Result};
use crate::time::iso_ms;

const MAX_NAME_LEN: usize = 100;
pub const MAX_RETENTION_DAYS: i64 = 3650;

/// A website's public id: the UUID in its snippet, its URLs and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WebsiteId(pub Uuid);

impl WebsiteId {
    pub fn new() -> WebsiteId {
        WebsiteId(Uuid::new_v4())
    }

    /// The id in a URL or a body; `None` when it is not a UUID (so no website has it).
    pub fn parse(text: &str) -> Option<WebsiteId> {
        Uuid::parse_str(text.trim()).ok().map(WebsiteId)
    }
}

impl Default for WebsiteId {
    fn default() -> WebsiteId {
        WebsiteId::new()
    }
}

impl std::fmt::Display for WebsiteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl Serialize for WebsiteId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl ToSql for WebsiteId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.to_string()))
    }
}

impl FromSql for WebsiteId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        WebsiteId::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("not a UUID: {text}").into()))
    }
}

/// A website's number in the activity tables (`sites.num`): small, never reused, never shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteNum(pub i64);

/// The one mapping from a website's public id to its number; `None` for no such website.
pub fn site_number(conn: &Connection, id: WebsiteId) -> Result<Option<SiteNum>> {
    Ok(conn
        .prepare_cached("SELECT num FROM sites WHERE website_id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .map(SiteNum))
}

#[derive(Clone, Debug)]
pub struct Website {
    pub id: WebsiteId,
    pub account_id: String,
    pub name: String,
    pub domain: String,
    pub timezone: String,
    pub cookie_mode: bool,
    pub retention_days: Option<i64>,
    pub created_at: i64,
}

/// The website as the API shows it (SPEC 2.5).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebsiteView {
    pub id: WebsiteId,
    pub name: String,
    pub domain: String,
    pub timezone: String,
    pub cookie_mode: bool,
    pub retention_days: Option<i64>,
    pub created_at: String,
    pub tracking_snippet: String,
}

impl Website {
    pub fn view(&self, public_url: &str) -> WebsiteView {
        WebsiteView {
            id: self.id,
            name: self.name.clone(),
            domain: self.domain.clone(),
            timezone: self.timezone.clone(),
            cookie_mode: self.cookie_mode,
            retention_days: self.retention_days,
            created_at: iso_ms(self.created_at),
            tracking_snippet: self.snippet(public_url),
        }
    }

    /// The exact tag to paste into the site (SPEC 3.1).
    pub fn snippet(&self, public_url: &str) -> String {
        let cookie = if self.cookie_mode {
            " data-cookie-mode=\"true\""
        } else {
            ""
        };
        format!(
            "<script defer src=\"{public_url}/js/jetrack.js\" data-website-id=\"{}\"{cookie}></script>",
            self.id
        )
    }

    fn from_row(r: &Row<'_>) -> rusqlite::Result<Website> {
        Ok(Website {
            id: r.get("id")?,
            account_id: r.get("account_id")?,
            name: r.get("name")?,
            domain: r.get("domain")?,
            timezone: r.get("timezone")?,
            cookie_mode: r.get("cookie_mode")?,
            retention_days: r.get("retention_days")?,
            created_at: r.get("created_at")?,
        })
    }
}

const COLUMNS: &str =
    "id, account_id, name, domain, timezone, cookie_mode, retention_days, created_at";

pub fn validate_name(raw: &str) -> std::result::Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("name: must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!("name: must be at most {MAX_NAME_LEN} characters"));
    }
    // Checked before trimming, as the OpenAPI document says: "\n" around a name is refused too.
    if raw.chars().any(char::is_control) {
        return Err("name: must not contain control characters".into());
    }
    Ok(name.to_string())
}

/// A domain as SPEC 2.5 wants it: a lowercase host name, IP literal or `localhost`, without
/// scheme, path or port and without a leading `www.`. A pasted `https://www.Example.com/`
/// becomes `example.com`; anything else that is not a bare host is refused.
pub fn normalize_domain(raw: &str) -> std::result::Result<String, String> {
    const BAD: &str =
        "domain: must be a host name such as example.com, without scheme, path or port";
    let mut s = raw.trim();
    let lower = s.to_ascii_lowercase();
    for scheme in ["https://", "http://"] {
        if lower.starts_with(scheme) {
            s = &s[scheme.len()..];
            s = s.strip_suffix('/').unwrap_or(s);
            break;
        }
    }
    if s.is_empty() {
        return Err("domain: must not be empty".into());
    }
    if s.contains(['/', '?', '#', '@', ' ', '\\']) || s.contains("://") {
        return Err(BAD.into());
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| ip.to_string())
            .map_err(|_| BAD.into());
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ip.to_string());
    }
    if s.contains(':') {
        return Err(BAD.into());
    }
    // IDNA: a Unicode name becomes its ASCII (punycode) form, as browsers send it. Browsers
    // also read numbers such as `999` or `0x7f.1` as IPv4 addresses; here an address must be
    // a plain literal, so those are refused rather than rewritten.
    let host = match url::Host::parse(s) {
        Ok(url::Host::Domain(d)) => d,
        Ok(_) => return Err(BAD.into()),
        Err(_) => return Err(BAD.into()),
    };
    let host = host.trim_end_matches('.').to_string();
    let host = host
        .strip_prefix("www.")
        .map(str::to_string)
        .unwrap_or(host);
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !labels_ok {
        return Err(BAD.into());
    }
    if !host.contains('.') && host != "localhost" {
        return Err("domain: must be a full host name such as example.com (or localhost)".into());
    }
    Ok(host)
}

/// A known IANA zone of the embedded database, returned under its own spelling
/// (`europe/berlin` → `Europe/Berlin`).
pub fn validate_timezone(raw: &str) -> std::result::Result<String, String> {
    static NAMES: std::sync::OnceLock<std::collections::HashMap<String, String>> =
        std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        jiff::tz::db()
            .available()
            .map(|n| (n.as_str().to_ascii_lowercase(), n.as_str().to_string()))
            .collect()
    });
    let name = raw.trim();
    names
        .get(&name.to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| {
            format!("timezone: unknown time zone {name:?} (use an IANA name such as Europe/Berlin)")
        })
}

pub fn validate_retention(days: i64) -> std::result::Result<i64, String> {
    if (1..=MAX_RETENTION_DAYS).contains(&days) {
        Ok(days)
    } else {
        Err(format!(
            "retentionDays: must be between 1 and {MAX_RETENTION_DAYS}, or null"
        ))
    }
}

pub struct NewWebsite {
    pub name: String,
    pub domain: String,
    pub timezone: String,
    pub cookie_mode: bool,
    pub retention_days: Option<i64>,
}

/// Changes a PATCH may make; `None` leaves a field as it is.
#[derive(Default)]
pub struct WebsiteChange {
    pub name: Option<String>,
    pub domain: Option<String>,
    pub timezone: Option<String>,
    pub cookie_mode: Option<bool>,
    pub retention_days: Option<Option<i64>>,
}

/// The website with the id given in a URL or a body, if any.
pub fn by_id(conn: &Connection, id: &str) -> Result<Option<Website>> {
    let Some(id) = WebsiteId::parse(id) else {
        return Ok(None);
    };
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM websites WHERE id = ?1"),
            [id],
            Website::from_row,
        )
        .optional()?)
}

/// A website the account may use: 404 when no website has the id, 403 when another
/// account owns it.
pub fn owned(conn: &Connection, account_id: &str, id: &str) -> Result<Website> {
    match by_id(conn, id)? {
        None => Err(Error::NotFound("Website not found".into())),
        Some(w) if w.account_id != account_id => Err(Error::Forbidden(
            "You do not have access to this website".into(),
        )),
        Some(w) => Ok(w),
    }
}

pub fn list(conn: &Connection, account_id: Option<&str>) -> Result<Vec<Website>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM websites WHERE ?1 IS NULL OR account_id = ?1 ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([account_id], Website::from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn domain_taken(conn: &Connection, account_id: &str, domain: &str, except: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM websites WHERE account_id = ?1 AND domain = ?2 AND id <> ?3",
            params![account_id, domain, except],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn duplicate(domain: &str) -> Error {
    Error::Conflict(format!("This account already has a website for {domain}"))
}

/// Inserts a website, enforcing the account's website limit and one website per domain.
pub fn insert(
    conn: &Connection,
    account_id: &str,
    limit: Option<i64>,
    new: NewWebsite,
    now: i64,
) -> Result<Website> {
    if let Some(limit) = limit {
        let used: i64 = conn.query_row(
            "SELECT count(*) FROM websites WHERE account_id = ?1",
            [account_id],
            |r| r.get(0),
        )?;
        if used >= limit {
            return Err(Error::Forbidden(format!(
                "This account may have at most {limit} website(s)"
            )));
        }
    }
    if domain_taken(conn, account_id, &new.domain, "")? {
        return Err(duplicate(&new.domain));
    }
    let id = uuid::Uuid::new_v4().to_string();
    conn.execute(
        "INSERT INTO websites (id, account_id, name, domain, timezone, cookie_mode, retention_days, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![id, account_id, new.name, new.domain, new.timezone, new.cookie_mode, new.retention_days, now],
    )?;
    by_id(conn, &id)?.ok_or_else(|| Error::Internal("website vanished after insert".into()))
}

pub fn update(conn: &Connection, mut site: Website, change: WebsiteChange) -> Result<Website> {
    if let Some(domain) = change.domain {
        if domain_taken(conn, &site.account_id, &domain, &site.id.to_string())? {
            return Err(duplicate(&domain));
        }
        site.domain = domain;
    }
    if let Some(v) = change.name {
        site.name = v;
    }
    if let Some(v) = change.timezone {
        site.timezone = v;
    }
    if let Some(v) = change.cookie_mode {
        site.cookie_mode = v;
    }
    if let Some(v) = change.retention_days {
        site.retention_days = v;
    }
    conn.execute(
        "UPDATE websites SET name = ?2, domain = ?3, timezone = ?4, cookie_mode = ?5, retention_days = ?6
         WHERE id = ?1",
        params![site.id, site.name, site.domain, site.timezone, site.cookie_mode, site.retention_days],
    )?;
    Ok(site)
}

/// Adds a website for `account` within its limit and records it in the audit log.
pub fn add(
    conn: &Connection,
    account: &Account,
    new: NewWebsite,
    ip: Option<IpAddr>,
    now: i64,
) -> Result<Website> {
    let site = insert(conn, &account.id, account.limit_websites, new, now)?;
    audit::record(
        conn,
        &account.id,
        Action::WebsiteCreated,
        ip,
        Some(&site.domain),
        now,
    )?;
    Ok(site)
}

/// Deletes a website with its data and records it.
pub fn delete(conn: &Connection, site: &Website, ip: Option<IpAddr>, now: i64) -> Result<()> {
    conn.execute("DELETE FROM websites WHERE id = ?1", [&site.id])?;
    let detail = format!("{} ({})", site.domain, site.name);
    audit::record(
        conn,
        &site.account_id,
        Action::WebsiteDeleted,
        ip,
        Some(&detail),
        now,
    )
}

pub fn count_for(conn: &Connection, account_id: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM websites WHERE account_id = ?1",
        [account_id],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised_or_refused() {
        for (raw, want) in [
            ("example.com", "example.com"),
            ("https://www.Example.com/", "example.com"),
            ("http://Blog.Example.com", "blog.example.com"),
            ("WWW.example.org", "example.org"),
            ("localhost", "localhost"),
            ("127.0.0.1", "127.0.0.1"),
            ("[::1]", "::1"),
            ("bücher.example", "xn--bcher-kva.example"),
        ] {
            assert_eq!(normalize_domain(raw).as_deref(), Ok(want), "{raw}");
        }
        for bad in [
            "",
            "example.com/blog",
            "https://example.com/blog",
            "example.com:8080",
            "ftp://example.com",
            "exa mple.com",
            "-bad-.com",
            "intranet",
            "user@example.com",
            "999",
            "1.2.3",
            "0x7f.1",
            "017.0.0.1",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn time_zones_must_be_known() {
        assert!(validate_timezone("Asia/Kolkata").is_ok());
        assert_eq!(validate_timezone("europe/berlin").unwrap(), "Europe/Berlin");
        assert_eq!(validate_timezone("utc").unwrap(), "UTC");
        assert!(validate_timezone("UTC").is_ok());
        assert!(validate_timezone("Mars/Olympus").is_err());
        assert!(validate_timezone("").is_err());
    }

    #[test]
    fn snippet_carries_the_cookie_mode() {
        let mut w = Website {
            id: WebsiteId(Uuid::from_u128(0xabc)),
            account_id: "a".into(),
            name: "n".into(),
            domain: "example.com".into(),
            timezone: "UTC".into(),
            cookie_mode: false,
            retention_days: None,
            created_at: 0,
        };
        assert_eq!(
            w.snippet("https://stats.example.com"),
            "<script defer src=\"https://stats.example.com/js/jetrack.js\" data-website-id=\"00000000-0000-0000-0000-000000000abc\"></script>"
        );
        w.cookie_mode = true;
        assert!(
            w.snippet("http://x")
                .ends_with(" data-cookie-mode=\"true\"></script>")
        );
    }
}
