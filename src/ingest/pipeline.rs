//! The ingestion path: a collect request or an import becomes stored activity (SPEC 3).
//!
//! The handler side (any worker thread) validates, drops bots, unknown websites, foreign
//! hosts, referrer spam and pageviews over the account's quota, and works out everything
//! that needs the client address or the User-Agent; only the result goes to the writer,
//! which forms visits ([`super::store`]). The answer waits for the commit.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::Quota;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::geo::{GeoIp, normalize_country};
use super::input::{self, Common, Drop, Page, Reader};
use super::sites::{SiteInfo, Sites};
use super::store::{Activity, Kind, Store};
use super::useragent::{self, Device};
use super::visitor::{self, Hit, RequestSalts, Visitors};
use super::{bots, screen};
use crate::db::{Db, Durability};
use crate::error::{Error, Result};
use crate::metrics::{DropReason, Metrics};
use crate::websites::SiteNum;

/// Collect bodies are small (SPEC 3.2).
pub const COLLECT_LIMIT: usize = 8 * 1024;
/// Import bodies (SPEC 3.5).
pub const IMPORT_LIMIT: usize = 1024 * 1024;
pub const MAX_IMPORT_EVENTS: usize = 1_000;
/// An imported timestamp may be this far ahead of the server's clock.
const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
/// 2000-01-01T00:00:00Z: nothing a web analytics tool could have seen happened earlier, and a
/// year such as 0000 is a typo that would stretch every range (docs/api.md, "Tracking").
const EARLIEST_MS: i64 = 946_684_800_000;
/// The fields an imported event may have (SPEC 3.5); a typo is reported, not ignored.
const IMPORT_FIELDS: &[&str] = &[
    "type",
    "url",
    "timestamp",
    "visitorId",
    "ip",
    "userAgent",
    "referrer",
    "screenWidth",
    "language",
    "name",
    "props",
    "hostname",
    "country",
    "browser",
    "os",
    "device",
    "screen",
    // Accepted and ignored, so that an export's lines import as they are: sessions are
    // recomputed from the times.
    "sessionId",
];
/// `Idempotency-Key` answers are replayed this long.
pub const IDEMPOTENCY_MS: i64 = 24 * 60 * 60 * 1000;

/// The outcome of one collect request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Stored(Kind),
    Dropped(Drop),
}

/// The answer of an import (SPEC 3.5).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ImportAnswer {
    pub accepted: usize,
    pub dropped: Vec<ImportDrop>,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ImportDrop {
    pub index: usize,
    pub reason: String,
}

/// Why an imported event is not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// For a reason collect has too.
    Dropped(Drop),
    /// Its fields are wrong; the message says which and how.
    Invalid(String),
}

impl Refusal {
    /// The reason given in the import's answer.
    pub fn into_reason(self) -> String {
        match self {
            Refusal::Dropped(drop) => drop.as_str().into(),
            Refusal::Invalid(message) => message,
        }
    }

    /// The reason counted in `jetrack_ingest_dropped_total`.
    pub fn metric(&self) -> DropReason {
        match self {
            Refusal::Dropped(drop) => DropReason::Dropped(*drop),
            Refusal::Invalid(_) => DropReason::Invalid,
        }
    }
}

type VisitorLimiter = crate::auth::bounded::Limiter<u64>;

pub struct Ingest {
    pub sites: Sites,
    pub geo: GeoIp,
    pub visitors: Visitors,
    pub metrics: Arc<Metrics>,
    pub store: Arc<Store>,
    limiter: VisitorLimiter,
    quotas: Quotas,
    hasher: std::collections::hash_map::RandomState,
}

impl Ingest {
    /// `per_second`: events per second per client address and User-Agent.
    pub fn new(geo: GeoIp, visitors: Visitors, metrics: Arc<Metrics>, per_second: u32) -> Ingest {
        let n = NonZeroU32::new(per_second.max(1)).expect("non-zero");
        Ingest {
            sites: Sites::new(),
            geo,
            visitors,
            metrics,
            store: Arc::new(Store::new()),
            limiter: crate::auth::bounded::keyed(Quota::per_second(n).allow_burst(n)),
            quotas: Quotas::default(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Drops limiter state of visitors who went quiet.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// The per-visitor limit (SPEC 3.2): 429 once a client address and User-Agent send more
    /// than the configured events per second.
    pub fn check_rate(&self, ip: IpAddr, user_agent: &str) -> Result<()> {
        let mut h = self.hasher.build_hasher();
        ip.hash(&mut h);
        user_agent.hash(&mut h);
        self.limiter
            .check_key(&h.finish())
            .map_err(|_| Error::TooManyRequests {
                message: "Too many events from this visitor; slow down".into(),
                retry_after: 1,
            })
    }

    /// One `POST /api/collect` body from `ip` with `user_agent`.
    pub async fn collect(
        &self,
        db: &Db,
        ip: IpAddr,
        user_agent: &str,
        body: &[u8],
    ) -> Result<Outcome> {
        let (common, website, visitor_id) = read_collect(body)?;
        let outcome = self
            .collect_checked(db, ip, user_agent, &common, website, visitor_id.as_deref())
            .await?;
        match outcome {
            Outcome::Stored(kind) => self.metrics.accepted(kind, 1),
            Outcome::Dropped(reason) => self.metrics.dropped(reason.into(), 1),
        }
        Ok(outcome)
    }

    async fn collect_checked(
        &self,
        db: &Db,
        ip: IpAddr,
        user_agent: &str,
        common: &Common,
        website: Uuid,
        visitor_id: Option<&str>,
    ) -> Result<Outcome> {
        if bots::is_bot(user_agent) {
            return Ok(Outcome::Dropped(Drop::Bot));
        }
        let Some(site) = self.sites.get(db, website).await? else {
            return Ok(Outcome::Dropped(Drop::UnknownWebsite));
        };
        let page = match input::page(common, &site.domain) {
            Ok(page) => page,
            Err(reason) => return Ok(Outcome::Dropped(reason)),
        };
        if common.kind == Kind::Pageview && !self.quotas.admit(db, &site.account_id).await? {
            return Ok(Outcome::Dropped(Drop::Quota));
        }
        let hit = Hit {
            website: site.id,
            tz: &site.tz,
            cookie_mode: site.cookie_mode,
            visitor_id,
            ip,
            user_agent,
        };
        let ids = self.visitors.live(db, &hit).await?;
        let ua = useragent::parse(user_agent);
        let activity = activity(
            &site,
            common,
            &page,
            ids.at_ms,
            (ids.current, ids.previous),
            Described {
                country: self.geo.country(ip),
                browser: ua.browser.clone(),
                os: ua.os.clone(),
                device: Some(ua.device),
                screen: screen::screen_class(common.screen_width).map(str::to_string),
            },
        );
        let store = Arc::clone(&self.store);
        let written = db
            .try_write_light(move |c| store.record(c, std::slice::from_ref(&activity)))
            .await;
        if written.is_err() && common.kind == Kind::Pageview {
            self.quotas.give_back(&site.account_id);
        }
        match written {
            Ok(()) => Ok(Outcome::Stored(common.kind)),
            // Deleted (from the shell) while still in the cache.
            Err(e) if is_foreign_key_failure(&e) => {
                self.sites.clear();
                Ok(Outcome::Dropped(Drop::UnknownWebsite))
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /websites/{id}/events`: `body` is the whole request body. Each event is checked
    /// on its own; the accepted ones are committed together before the answer.
    pub async fn import(
        &self,
        db: &Db,
        site: Arc<SiteInfo>,
        body: &[u8],
        idempotency_key: Option<String>,
    ) -> Result<ImportAnswer> {
        let events = read_import(body)?;
        let body_hash: [u8; 32] = Sha256::digest(body).into();
        if let Some(key) = &idempotency_key {
            let (num, key) = (site.num, key.clone());
            if let Some(answer) = db.read(move |c| replay(c, num, &key, &body_hash)).await? {
                return Ok(answer);
            }
        }
        let mut salts = self.visitors.request_salts();
        let now = salts.now_ms();
        let mut activities = Vec::new();
        let mut answer = ImportAnswer {
            accepted: 0,
            dropped: Vec::new(),
        };
        let mut counted: HashMap<Kind, u64> = HashMap::new();
        let mut refused: Vec<DropReason> = Vec::new();
        for (index, event) in events.iter().enumerate() {
            match self
                .import_one(db, &site, &mut salts, now, index, event)
                .await?
            {
                Ok(activity) => {
                    *counted.entry(activity.kind).or_default() += 1;
                    activities.push(activity);
                }
                Err(refusal) => {
                    refused.push(refusal.metric());
                    let reason = refusal.into_reason();
                    answer.dropped.push(ImportDrop { index, reason });
                }
            }
        }
        answer.accepted = activities.len();
        let store = Arc::clone(&self.store);
        let num = site.num;
        let pageviews = counted.get(&Kind::Pageview).copied().unwrap_or(0);
        let saved = answer.clone();
        let written = db
            .try_write(Durability::Normal, move |c| {
                if let Some(key) = &idempotency_key {
                    // A twin request may have committed while this one was checked.
                    if let Some(first) = replay(c, num, key, &body_hash)? {
                        return Ok(Some(first));
                    }
                }
                store.record(c, &activities)?;
                if let Some(key) = &idempotency_key {
                    c.prepare_cached(
                        "INSERT OR REPLACE INTO idempotency (site, key, created_at, body_hash, answer)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(rusqlite::params![
                        num,
                        key,
                        now,
                        &body_hash[..],
                        serde_json::to_string(&saved).unwrap_or_default()
                    ])?;
                }
                Ok(None)
            })
            .await;
        match written {
            Ok(Some(first)) => {
                self.quotas.give_back_n(&site.account_id, pageviews);
                Ok(first)
            }
            Ok(None) => {
                for (kind, n) in counted {
                    self.metrics.accepted(kind, n);
                }
                for reason in refused {
                    self.metrics.dropped(reason, 1);
                }
                Ok(answer)
            }
            Err(e) => {
                self.quotas.give_back_n(&site.account_id, pageviews);
                Err(e)
            }
        }
    }

    /// One imported event: the activity, or why it is dropped.
    async fn import_one(
        &self,
        db: &Db,
        site: &Arc<SiteInfo>,
        salts: &mut RequestSalts,
        now: i64,
        index: usize,
        event: &Value,
    ) -> Result<std::result::Result<Activity, Refusal>> {
        let checked = match check_import(&site.id, &site.domain, now, index, event) {
            Ok(checked) => checked,
            Err(reason) => return Ok(Err(reason)),
        };
        let ImportChecked {
            common,
            at,
            page,
            named,
            ip,
            user_agent,
            given,
        } = checked;
        let user_agent = user_agent.as_deref();
        if common.kind == Kind::Pageview && !self.quotas.admit(db, &site.account_id).await? {
            return Ok(Err(Refusal::Dropped(Drop::Quota)));
        }
        let visitor = match (named, ip, user_agent) {
            (Some(id), _, _) => id,
            (None, Some(ip), Some(ua)) => {
                let day = visitor::local_date(&site.tz, at);
                let salt = salts.salt_via(self.visitors.salts(), db, day).await?;
                visitor::cookieless_id(&salt, &site.id, ip, ua)
            }
            _ => unreachable!("check_import requires visitorId or both ip and userAgent"),
        };
        let ua = user_agent.map(useragent::parse_uncached);
        let described = Described {
            country: given
                .country
                .clone()
                .or_else(|| ip.and_then(|ip| self.geo.country(ip))),
            browser: given
                .browser
                .clone()
                .or_else(|| ua.as_ref().and_then(|u| u.browser.clone())),
            os: given
                .os
                .clone()
                .or_else(|| ua.as_ref().and_then(|u| u.os.clone())),
            device: given.device.or(ua.as_ref().map(|u| u.device)),
            screen: given
                .screen
                .clone()
                .or_else(|| screen::screen_class(common.screen_width).map(str::to_string)),
        };
        Ok(Ok(activity(
            site,
            &common,
            &page,
            at,
            (visitor, None),
            described,
        )))
    }
}

/// An imported event that passed every check needing no database: what is left is the
/// quota, the visitor's salt and the lookups.
pub struct ImportChecked {
    pub common: Common,
    /// The event's time, UTC milliseconds.
    pub at: i64,
    pub page: Page,
    /// The visitor id derived from `visitorId`, when given.
    pub named: Option<i64>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub given: Given,
}

/// The checks of the import's event number `index` that need no database, for website
/// `site_id` on `domain` at server time `now` (UTC ms): the fields, the bots, the page's host,
/// referrer spam and a given hostname. `Err` says why the event is not stored.
pub fn check_import(
    site_id: &Uuid,
    domain: &str,
    now: i64,
    index: usize,
    event: &Value,
) -> std::result::Result<ImportChecked, Refusal> {
    let prefix = format!("events[{index}].");
    let Some(map) = event.as_object() else {
        return Err(Refusal::Invalid(format!(
            "events[{index}]: must be an object"
        )));
    };
    let mut r = Reader::new(map, &prefix);
    for field in map.keys() {
        if !IMPORT_FIELDS.contains(&field.as_str()) {
            r.error(field, "unknown field");
        }
    }
    let common = input::read_common(&mut r);
    let at = r
        .required_string("timestamp")
        .and_then(|t| match t.parse::<Timestamp>() {
            Ok(t) if t.as_millisecond() > now + MAX_FUTURE_MS => {
                r.error("timestamp", "must not be more than 5 minutes in the future");
                None
            }
            Ok(t) if t.as_millisecond() < EARLIEST_MS => {
                r.error("timestamp", "must not be before 2000-01-01");
                None
            }
            Ok(t) => Some(t.as_millisecond()),
            Err(_) => {
                r.error(
                    "timestamp",
                    "must be an ISO-8601 timestamp such as 2025-01-15T10:30:00.000Z",
                );
                None
            }
        });
    let visitor_id = r.string("visitorId");
    let ip = r
        .string("ip")
        .and_then(|ip| match ip.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                r.error("ip", "must be an IPv4 or IPv6 address");
                None
            }
        });
    let user_agent = r.string("userAgent");
    let given = Given::read(&mut r);
    let named = visitor_id.map(|v| visitor::import_id(site_id, v));
    if named.is_some_and(|id| id.is_none()) {
        r.error("visitorId", "must be 1 to 200 characters");
    }
    if visitor_id.is_none() && (ip.is_none() || user_agent.is_none()) {
        r.error(
            "visitorId",
            "is required unless both ip and userAgent are given",
        );
    }
    if !r.errors.is_empty() {
        return Err(Refusal::Invalid(r.errors.join("; ")));
    }
    let (Some(common), Some(at)) = (common, at) else {
        return Err(Refusal::Invalid(format!("events[{index}]: invalid")));
    };
    if user_agent.is_some_and(bots::is_bot) {
        return Err(Refusal::Dropped(Drop::Bot));
    }
    let mut page = match input::page(&common, domain) {
        Ok(page) => page,
        Err(reason) => return Err(Refusal::Dropped(reason)),
    };
    if let Some(hostname) = &given.hostname {
        if !super::referrer::host_matches(hostname, domain) {
            return Err(Refusal::Dropped(Drop::Hostname));
        }
        page.hostname.clone_from(hostname);
    }
    Ok(ImportChecked {
        common,
        at,
        page,
        named: named.flatten(),
        ip,
        user_agent: user_agent.map(str::to_string),
        given,
    })
}

/// The attributes an importer may set directly (SPEC 3.5).
pub struct Given {
    pub hostname: Option<String>,
    pub country: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device: Option<Device>,
    pub screen: Option<String>,
}

impl Given {
    fn read(r: &mut Reader<'_>) -> Given {
        let text = |r: &mut Reader<'_>, field: &str| {
            r.string(field)
                .map(|s| super::strip_controls(s).trim().to_string())
                .filter(|s| !s.is_empty())
                .map(|s| super::truncate_chars(&s, 100).to_string())
        };
        // A host as a URL would carry it (a Unicode name in its ASCII form); anything else —
        // a path, a space, a port — is refused rather than stored as a hostname.
        let hostname =
            text(r, "hostname").and_then(|h| match url::Host::parse(&h.to_ascii_lowercase()) {
                Ok(host) => Some(host.to_string().trim_matches(['[', ']']).to_string()),
                Err(_) => {
                    r.error("hostname", "must be a host name such as blog.example.com");
                    None
                }
            });
        let country = r.string("country").and_then(|c| {
            let code = normalize_country(c);
            if code.is_none() {
                r.error("country", "must be an ISO 3166-1 alpha-2 code");
            }
            code
        });
        let browser = text(r, "browser");
        let os = text(r, "os");
        let device = r.string("device").and_then(|d| {
            let device = Device::from_name(d);
            if device.is_none() {
                r.error("device", "must be desktop, mobile or tablet");
            }
            device
        });
        let screen = r.string("screen").and_then(|s| {
            if screen::is_class(s) {
                Some(s.to_string())
            } else {
                r.error("screen", "must be xs, sm, md, lg or xl");
                None
            }
        });
        Given {
            hostname,
            country,
            browser,
            os,
            device,
            screen,
        }
    }
}

/// What is known of the visitor's setup.
struct Described {
    country: Option<String>,
    browser: Option<String>,
    os: Option<String>,
    device: Option<Device>,
    screen: Option<String>,
}

fn activity(
    site: &SiteInfo,
    common: &Common,
    page: &Page,
    at: i64,
    (visitor, previous_visitor): (i64, Option<i64>),
    d: Described,
) -> Activity {
    // The User-Agent's parts come from the client as they are.
    let clean = |s: Option<String>| s.map(|s| super::strip_controls(&s).into_owned());
    Activity {
        site: SiteNum(site.num),
        at,
        kind: common.kind,
        visitor,
        previous_visitor,
        hostname: page.hostname.clone(),
        path: page.path.clone(),
        attrs: page.attrs(
            d.country,
            clean(d.browser),
            clean(d.os),
            d.device.map(|d| d.as_str().to_string()),
            common.language.clone(),
            d.screen,
        ),
        name: common.name.clone(),
        props: common.props.clone(),
    }
}

fn is_foreign_key_failure(e: &Error) -> bool {
    matches!(e, Error::Db(rusqlite::Error::SqliteFailure(f, _))
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

/// Reads a collect body: the shared fields plus `websiteId` and `visitorId`.
pub fn read_collect(body: &[u8]) -> Result<(Common, Uuid, Option<String>)> {
    let map = json_object(body)?;
    let mut r = Reader::new(&map, "");
    let common = input::read_common(&mut r);
    let website = r
        .required_string("websiteId")
        .and_then(|id| match Uuid::parse_str(id.trim()) {
            Ok(id) => Some(id),
            Err(_) => {
                r.error("websiteId", "must be a UUID");
                None
            }
        });
    let visitor_id = r.string("visitorId").map(str::to_string);
    if !r.errors.is_empty() {
        return Err(Error::invalid_all(r.errors));
    }
    match (common, website) {
        (Some(common), Some(website)) => Ok((common, website, visitor_id)),
        _ => Err(Error::invalid("body: invalid event")),
    }
}

/// Reads an import body: `{"events": [...]}` with 1 to 1,000 entries.
pub fn read_import(body: &[u8]) -> Result<Vec<Value>> {
    let mut map = json_object(body)?;
    let events = match map.remove("events") {
        Some(Value::Array(events)) => events,
        Some(_) => return Err(Error::invalid("events: must be an array")),
        None => return Err(Error::invalid("events: is required")),
    };
    if let Some(unknown) = map.keys().next() {
        return Err(Error::invalid(format!("{unknown}: unknown field")));
    }
    if events.is_empty() {
        return Err(Error::invalid("events: must not be empty"));
    }
    if events.len() > MAX_IMPORT_EVENTS {
        return Err(Error::invalid(format!(
            "events: at most {MAX_IMPORT_EVENTS} per request"
        )));
    }
    Ok(events)
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::invalid("body: must be a JSON object")),
        Err(e) => Err(Error::invalid(format!(
            "body: malformed JSON at line {} column {}",
            e.line(),
            e.column()
        ))),
    }
}

/// The first answer to a repeated `Idempotency-Key`, while it is kept; 409 when the key came
/// with another body (a reused key would otherwise drop those events without a word).
fn replay(
    conn: &rusqlite::Connection,
    site: i64,
    key: &str,
    body_hash: &[u8; 32],
) -> Result<Option<ImportAnswer>> {
    use rusqlite::OptionalExtension;
    let since = crate::time::now_ms() - IDEMPOTENCY_MS;
    let found: Option<(Vec<u8>, String)> = conn
        .prepare_cached(
            "SELECT body_hash, answer FROM idempotency
             WHERE site = ?1 AND key = ?2 AND created_at > ?3",
        )?
        .query_row(rusqlite::params![site, key, since], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match found {
        None => Ok(None),
        Some((hash, _)) if hash != body_hash[..] => Err(Error::Conflict(
            "Idempotency-Key: already used in the last 24 hours with a different body".into(),
        )),
        Some((_, answer)) => Ok(serde_json::from_str(&answer).ok()),
    }
}

/// Deletes idempotency answers older than 24 hours.
pub fn purge_idempotency(conn: &rusqlite::Connection, now_ms: i64) -> Result<usize> {
    Ok(conn.execute(
        "DELETE FROM idempotency WHERE created_at <= ?1",
        [now_ms - IDEMPOTENCY_MS],
    )?)
}

// ---------------------------------------------------------------------------------------------
// Quotas

/// Pageviews per calendar month (UTC) per account, against the operator's limit (SPEC 1).
/// Counted in memory from the stored figure, re-read every minute so that a limit set from
/// the shell is seen.
#[derive(Default)]
struct Quotas {
    accounts: Mutex<HashMap<String, Usage>>,
}

#[derive(Clone, Copy)]
struct Usage {
    limit: Option<i64>,
    month_start: i64,
    used: i64,
    read_at: Instant,
}

const QUOTA_FRESH_FOR: Duration = Duration::from_secs(60);

impl Quotas {
    /// Counts one pageview if the account may have it.
    async fn admit(&self, db: &Db, account_id: &str) -> Result<bool> {
        let now = crate::time::now_ms();
        let (month_start, month_end) = crate::time::month_bounds_utc(now);
        let fresh = {
            let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            accounts
                .get(account_id)
                .copied()
                .filter(|u| u.month_start == month_start && u.read_at.elapsed() < QUOTA_FRESH_FOR)
        };
        let usage = match fresh {
            Some(u) => u,
            None => {
                let id = account_id.to_string();
                let (limit, used) = db
                    .read(move |c| {
                        let limit = crate::accounts::pageview_limit(c, &id)?;
                        let used = match limit {
                            Some(_) => {
                                crate::accounts::pageviews_between(c, &id, month_start, month_end)?
                            }
                            None => 0,
                        };
                        Ok((limit, used))
                    })
                    .await?;
                Usage {
                    limit,
                    month_start,
                    used,
                    read_at: Instant::now(),
                }
            }
        };
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = accounts.entry(account_id.to_string()).or_insert(usage);
        if entry.read_at < usage.read_at || entry.month_start != usage.month_start {
            *entry = usage;
        }
        match entry.limit {
            None => Ok(true),
            Some(limit) if entry.used < limit => {
                entry.used += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    fn give_back(&self, account_id: &str) {
        self.give_back_n(account_id, 1);
    }

    fn give_back_n(&self, account_id: &str, n: u64) {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(u) = accounts.get_mut(account_id)
            && u.limit.is_some()
        {
            u.used = (u.used - n as i64).max(0);
        }
    }
}
