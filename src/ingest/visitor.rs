//! Visitor identity (SPEC 3.4, 3.5): the daily salts and the visitor-id hashes.
//!
//! Every visitor id is the first 8 bytes of a SHA-256, read as a big-endian `i64`. The bytes
//! hashed, in order, with no separators (every field but the last has a fixed length, so the
//! concatenation is unambiguous). These encodings are stored in effect (as ids) and must never
//! change:
//!
//! - cookieless ([`cookieless_id`]): `salt` (32 bytes) ‖ `website id` (36 bytes: the UUID as
//!   lowercase hyphenated ASCII, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`) ‖ `client IP` (16 bytes:
//!   the IPv6 octets; an IPv4 address as its IPv4-mapped form `::ffff:a.b.c.d`, so `1.2.3.4`
//!   and `::ffff:1.2.3.4` are the same visitor) ‖ `User-Agent` (its UTF-8 bytes, as received).
//! - cookie mode ([`cookie_id`]): `website id` (36 bytes as above) ‖ the `bj_vid` UUID (36
//!   bytes, lowercase hyphenated, whatever form the client sent).
//! - import with a `visitorId` ([`import_id`]): `website id` (36 bytes as above) ‖ the string's
//!   UTF-8 bytes, as given (1 to 200 characters). An import that passes a `bj_vid` UUID in its
//!   lowercase hyphenated form therefore gets the same id as the cookie-mode tracker.
//!
//! Salts: one of 32 random bytes per calendar date (table `salts`). A site hashes with the salt
//! of its own local date. A salt may only be created while its date is current somewhere on
//! Earth (from UTC−12 to UTC+14, [`may_create_salt`]) and is purged 72 hours after its date
//! began at UTC+14 ([`salt_purge_at`]): for `2025-01-15` that is
//! `2025-01-14T10:00:00Z + 72 h = 2025-01-17T10:00:00Z`. A past date whose salt is gone never
//! gets a new one; imported events of such a date are hashed with a salt made for their
//! request alone ([`RequestSalts`]).
//!
//! The hot path of a live event whose salt is in memory ([`candidate_ids`]) takes a read lock,
//! copies at most two salts and hashes; no database access and no allocation.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::{Db, Durability};
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------------------------
// Clock

/// The source of "now" for ingestion, so that tests can move time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch, UTC.
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::time::now_ms()
    }
}

/// A clock that only moves when told; share it as `Arc<ManualClock>` (it coerces to
/// `Arc<dyn Clock>`) and keep a clone to move it.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        ManualClock(AtomicI64::new(now_ms))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, by_ms: i64) {
        self.0.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------------
// Dates and the salt rules

/// 32 random bytes.
pub type Salt = [u8; 32];

const HOUR_MS: i64 = 3_600_000;
/// The earliest time zone is UTC+14: a date begins there first.
pub const EARLIEST_OFFSET_MS: i64 = 14 * HOUR_MS;
/// The latest time zone is UTC−12: a date ends there last.
pub const LATEST_OFFSET_MS: i64 = 12 * HOUR_MS;
/// A salt is kept this long after its date began at UTC+14.
pub const SALT_KEPT_MS: i64 = 72 * HOUR_MS;
/// The longest `visitorId` an import may give, in characters.
pub const MAX_IMPORT_VISITOR_ID_CHARS: usize = 200;

/// `ms` as a timestamp; times beyond jiff's range (years ±9999) are clamped to it.
fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

fn utc_date(ms: i64) -> Date {
    TimeZone::UTC.to_datetime(timestamp(ms)).date()
}

/// The calendar date at `at_ms` in the site's time zone.
pub fn local_date(tz: &TimeZone, at_ms: i64) -> Date {
    tz.to_datetime(timestamp(at_ms)).date()
}

/// The site's time zone by IANA name; UTC when the name is unknown (names are checked when a
/// website is saved, so this only happens if the embedded database drops a name).
pub fn zone_or_utc(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap_or(TimeZone::UTC)
}

/// `day` 00:00 UTC in milliseconds.
pub fn utc_midnight_ms(day: Date) -> i64 {
    TimeZone::UTC
        .to_timestamp(day.to_datetime(Time::midnight()))
        .map_or(i64::MIN / 2, |t| t.as_millisecond())
}

/// When the salt of `day` is purged: 72 hours after `day` began at UTC+14, that is
/// `day 00:00 UTC − 14 h + 72 h`.
pub fn salt_purge_at(day: Date) -> i64 {
    utc_midnight_ms(day) - EARLIEST_OFFSET_MS + SALT_KEPT_MS
}

/// Whether the salt of `day` is still kept at `now_ms` (purged from [`salt_purge_at`] on).
pub fn salt_kept(day: Date, now_ms: i64) -> bool {
    now_ms < salt_purge_at(day)
}

/// Whether a salt for `day` may be created at `now_ms`: only while `day` is the current date
/// somewhere between UTC−12 and UTC+14. Such a salt is always still kept.
pub fn may_create_salt(day: Date, now_ms: i64) -> bool {
    utc_date(now_ms.saturating_sub(LATEST_OFFSET_MS)) <= day
        && day <= utc_date(now_ms.saturating_add(EARLIEST_OFFSET_MS))
}

/// The newest date whose salt is purged at `now_ms`: `day ≤ cutoff ⇔ now ≥ salt_purge_at(day)`.
fn purge_cutoff(now_ms: i64) -> Date {
    utc_date(now_ms.saturating_sub(SALT_KEPT_MS - EARLIEST_OFFSET_MS))
}

fn random_salt() -> Salt {
    let mut salt = [0u8; 32];
    rand::fill(&mut salt);
    salt
}

// ---------------------------------------------------------------------------------------------
// The hashes

/// The 16 bytes an IP is hashed as: IPv6 octets, IPv4 as IPv4-mapped IPv6.
pub fn canonical_ip(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn uuid_text(id: &Uuid) -> [u8; 36] {
    let mut buf = [0u8; 36];
    id.hyphenated().encode_lower(&mut buf);
    buf
}

fn first_8(hasher: Sha256) -> i64 {
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Cookieless visitor id: SHA-256(salt ‖ website id ‖ client IP ‖ User-Agent), see the module
/// documentation for the bytes.
pub fn cookieless_id(salt: &Salt, website: &Uuid, ip: IpAddr, user_agent: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(uuid_text(website));
    h.update(canonical_ip(ip));
    h.update(user_agent.as_bytes());
    first_8(h)
}

/// The `bj_vid` cookie value sent as `visitorId`, when it is a UUID (any of the forms the
/// `uuid` crate reads; not the nil or max UUID). Otherwise the event is counted cookieless.
pub fn parse_cookie_visitor(raw: &str) -> Option<Uuid> {
    Uuid::try_parse(raw)
        .ok()
        .filter(|u| !u.is_nil() && !u.is_max())
}

/// Cookie-mode visitor id: SHA-256(website id ‖ the cookie's UUID).
pub fn cookie_id(website: &Uuid, visitor: &Uuid) -> i64 {
    let mut h = Sha256::new();
    h.update(uuid_text(website));
    h.update(uuid_text(visitor));
    first_8(h)
}

/// Visitor id of an imported event that names its visitor: SHA-256(website id ‖ the string).
/// `None` when the string is empty or longer than 200 characters.
pub fn import_id(website: &Uuid, visitor_id: &str) -> Option<i64> {
    if visitor_id.is_empty()
        || visitor_id
            .chars()
            .nth(MAX_IMPORT_VISITOR_ID_CHARS)
            .is_some()
    {
        return None;
    }
    let mut h = Sha256::new();
    h.update(uuid_text(website));
    h.update(visitor_id.as_bytes());
    Some(first_8(h))
}

// ---------------------------------------------------------------------------------------------
// Salts: the in-memory cache over the table

#[derive(Clone, Copy)]
struct Kept {
    salt: Salt,
    purge_at: i64,
}

/// The daily salts: a cache of the `salts` table. Share it as `Arc<Salts>`.
///
/// Reads never touch the database. A missing salt is created through the writer
/// ([`Salts::get_or_create`]) or on a given connection ([`Salts::ensure`]); the row is inserted
/// with `INSERT OR IGNORE` and read back, so processes sharing the database agree on it.
/// Only committed salts enter the cache.
#[derive(Default)]
pub struct Salts {
    days: RwLock<HashMap<Date, Kept>>,
}

impl std::fmt::Debug for Salts {
    // Never prints a salt.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days = self.days.read().unwrap_or_else(PoisonError::into_inner);
        let mut list: Vec<&Date> = days.keys().collect();
        list.sort();
        f.debug_struct("Salts").field("days", &list).finish()
    }
}

fn read_all(conn: &Connection) -> Result<HashMap<Date, Kept>> {
    let mut stmt = conn.prepare("SELECT day, salt FROM salts")?;
    let mut rows = stmt.query([])?;
    let mut days = HashMap::new();
    while let Some(row) = rows.next()? {
        let day: String = row.get(0)?;
        let blob: Vec<u8> = row.get(1)?;
        let day: Date = day
            .parse()
            .map_err(|e| Error::Internal(format!("salts: bad day {day:?}: {e}")))?;
        days.insert(
            day,
            Kept {
                salt: salt_from_blob(day, &blob)?,
                purge_at: salt_purge_at(day),
            },
        );
    }
    Ok(days)
}

fn salt_from_blob(day: Date, blob: &[u8]) -> Result<Salt> {
    blob.try_into()
        .map_err(|_| Error::Internal(format!("salts: the salt of {day} is not 32 bytes")))
}

impl Salts {
    /// An empty cache (nothing loaded).
    pub fn empty() -> Salts {
        Salts::default()
    }

    /// Loads every stored salt.
    pub fn load(conn: &Connection) -> Result<Salts> {
        Ok(Salts {
            days: RwLock::new(read_all(conn)?),
        })
    }

    /// Replaces the cache with the table's content (salts other processes made included).
    pub fn refresh(&self, conn: &Connection) -> Result<()> {
        let days = read_all(conn)?;
        *self.days.write().unwrap_or_else(PoisonError::into_inner) = days;
        Ok(())
    }

    /// The cached salt of `day`, whether or not it is past its purge time.
    pub fn salt_for(&self, day: Date) -> Option<Salt> {
        let days = self.days.read().unwrap_or_else(PoisonError::into_inner);
        days.get(&day).map(|k| k.salt)
    }

    /// The cached salt of `day` if it is still kept at `now_ms`.
    pub fn kept_salt(&self, day: Date, now_ms: i64) -> Option<Salt> {
        let days = self.days.read().unwrap_or_else(PoisonError::into_inner);
        days.get(&day)
            .filter(|k| now_ms < k.purge_at)
            .map(|k| k.salt)
    }

    /// Puts a salt that is committed in the table into the cache.
    pub fn remember(&self, day: Date, salt: Salt) {
        let mut days = self.days.write().unwrap_or_else(PoisonError::into_inner);
        days.insert(
            day,
            Kept {
                salt,
                purge_at: salt_purge_at(day),
            },
        );
    }

    /// The stored salt of `day`, creating it when the date may have one ([`may_create_salt`]);
    /// `None` when the date is past its purge time, or has no salt and may not get one. Works on
    /// the table only, not the cache: inside a transaction, [`Salts::remember`] the answer
    /// after the commit.
    pub fn create_or_read(conn: &Connection, day: Date, now_ms: i64) -> Result<Option<Salt>> {
        if !salt_kept(day, now_ms) {
            return Ok(None);
        }
        let key = day.to_string();
        if may_create_salt(day, now_ms) {
            let fresh = random_salt();
            conn.execute(
                "INSERT OR IGNORE INTO salts (day, salt) VALUES (?1, ?2)",
                params![key, &fresh[..]],
            )?;
        }
        let blob: Option<Vec<u8>> = conn
            .query_row("SELECT salt FROM salts WHERE day = ?1", [&key], |r| {
                r.get(0)
            })
            .optional()?;
        blob.map(|b| salt_from_blob(day, &b)).transpose()
    }

    /// Like [`Salts::create_or_read`], answering from the cache when it can. On a connection in
    /// autocommit mode the row is committed at once, so the cache is refreshed from the table;
    /// inside a transaction the caller remembers the salt after its commit.
    pub fn ensure(&self, conn: &Connection, day: Date, now_ms: i64) -> Result<Option<Salt>> {
        if let Some(salt) = self.kept_salt(day, now_ms) {
            return Ok(Some(salt));
        }
        let salt = Self::create_or_read(conn, day, now_ms)?;
        if salt.is_some() && conn.is_autocommit() {
            self.refresh(conn)?;
        }
        Ok(salt)
    }

    /// [`Salts::ensure`] through the single writer, durable (`synchronous = FULL`) before the
    /// cache takes it.
    pub async fn get_or_create(
        self: &Arc<Self>,
        db: &Db,
        day: Date,
        now_ms: i64,
    ) -> Result<Option<Salt>> {
        if let Some(salt) = self.kept_salt(day, now_ms) {
            return Ok(Some(salt));
        }
        let (salt, all) = db
            .write(Durability::Full, move |c| {
                let salt = Self::create_or_read(c, day, now_ms)?;
                Ok((salt, read_all(c)?))
            })
            .await?;
        *self.days.write().unwrap_or_else(PoisonError::into_inner) = all;
        Ok(salt)
    }

    /// Deletes the salts whose purge time has come, from the table and the cache; answers how
    /// many rows went.
    pub fn purge(&self, conn: &Connection, now_ms: i64) -> Result<usize> {
        let deleted = conn.execute(
            "DELETE FROM salts WHERE day <= ?1",
            [purge_cutoff(now_ms).to_string()],
        )?;
        self.forget_expired(now_ms);
        Ok(deleted)
    }

    /// Drops the cached salts whose purge time has come.
    pub fn forget_expired(&self, now_ms: i64) {
        let mut days = self.days.write().unwrap_or_else(PoisonError::into_inner);
        days.retain(|_, k| now_ms < k.purge_at);
    }
}

// ---------------------------------------------------------------------------------------------
// The live path

/// What the collect handler knows about a live event's visitor.
#[derive(Clone, Copy, Debug)]
pub struct Hit<'a> {
    pub website: Uuid,
    /// The site's time zone (see [`zone_or_utc`]); cache it per site.
    pub tz: &'a TimeZone,
    /// The site's `cookieMode`.
    pub cookie_mode: bool,
    /// The `visitorId` of the request (the `bj_vid` cookie); ignored unless `cookie_mode`.
    pub visitor_id: Option<&'a str>,
    pub ip: IpAddr,
    pub user_agent: &'a str,
}

/// The ids a live event may belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidates {
    /// The time the ids were worked out for: stamp the event with it.
    pub at_ms: i64,
    /// The site's local date at `at_ms`.
    pub day: Date,
    /// The visitor id: cookie-mode, or cookieless under the salt of `day`.
    pub current: i64,
    /// Cookieless only: the id under the previous local date's salt while it is kept, so that a
    /// session running over local midnight can be continued.
    pub previous: Option<i64>,
    /// Whether `current` came from the cookie.
    pub cookie: bool,
}

impl Candidates {
    /// `current`, then `previous` if any.
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        std::iter::once(self.current).chain(self.previous)
    }
}

/// The outcome of [`candidate_ids`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    Ready(Candidates),
    /// The salt of this date is not in memory: create it ([`Salts::get_or_create`]) and ask
    /// again.
    NeedSalt(Date),
}

/// The candidate visitor ids of a live event at `now_ms`, from memory only.
pub fn candidate_ids(salts: &Salts, hit: &Hit<'_>, now_ms: i64) -> Lookup {
    let day = local_date(hit.tz, now_ms);
    if hit.cookie_mode
        && let Some(visitor) = hit.visitor_id.and_then(parse_cookie_visitor)
    {
        return Lookup::Ready(Candidates {
            at_ms: now_ms,
            day,
            current: cookie_id(&hit.website, &visitor),
            previous: None,
            cookie: true,
        });
    }
    let Some(salt) = salts.kept_salt(day, now_ms) else {
        return Lookup::NeedSalt(day);
    };
    let id = |salt: &Salt| cookieless_id(salt, &hit.website, hit.ip, hit.user_agent);
    let previous = day
        .yesterday()
        .ok()
        .and_then(|d| salts.kept_salt(d, now_ms))
        .map(|s| id(&s));
    Lookup::Ready(Candidates {
        at_ms: now_ms,
        day,
        current: id(&salt),
        previous,
        cookie: false,
    })
}

fn no_salt(day: Date) -> Error {
    Error::Internal(format!("no salt can be made for the current date {day}"))
}

/// Visitor identity with an injected clock: the salts and "now".
#[derive(Clone)]
pub struct Visitors {
    salts: Arc<Salts>,
    clock: Arc<dyn Clock>,
}

impl Visitors {
    pub fn new(salts: Arc<Salts>, clock: Arc<dyn Clock>) -> Visitors {
        Visitors { salts, clock }
    }

    /// Loads the salts from `conn`.
    pub fn load(conn: &Connection, clock: Arc<dyn Clock>) -> Result<Visitors> {
        Ok(Visitors::new(Arc::new(Salts::load(conn)?), clock))
    }

    pub fn salts(&self) -> &Arc<Salts> {
        &self.salts
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// [`candidate_ids`] now, from memory only.
    pub fn cached(&self, hit: &Hit<'_>) -> Lookup {
        candidate_ids(&self.salts, hit, self.now_ms())
    }

    /// The candidate ids of a live event now, creating today's salt through the writer when
    /// it is missing (once per date).
    pub async fn live(&self, db: &Db, hit: &Hit<'_>) -> Result<Candidates> {
        let now = self.now_ms();
        match candidate_ids(&self.salts, hit, now) {
            Lookup::Ready(c) => Ok(c),
            Lookup::NeedSalt(day) => {
                self.salts
                    .get_or_create(db, day, now)
                    .await?
                    .ok_or_else(|| no_salt(day))?;
                match candidate_ids(&self.salts, hit, now) {
                    Lookup::Ready(c) => Ok(c),
                    Lookup::NeedSalt(day) => Err(no_salt(day)),
                }
            }
        }
    }

    /// [`Visitors::live`] on a connection in autocommit mode (tests, tools); inside a
    /// transaction the salt would be cached before its commit.
    pub fn live_on(&self, conn: &Connection, hit: &Hit<'_>) -> Result<Candidates> {
        let now = self.now_ms();
        match candidate_ids(&self.salts, hit, now) {
            Lookup::Ready(c) => Ok(c),
            Lookup::NeedSalt(day) => {
                let salt = self
                    .salts
                    .ensure(conn, day, now)?
                    .ok_or_else(|| no_salt(day))?;
                self.salts.remember(day, salt);
                match candidate_ids(&self.salts, hit, now) {
                    Lookup::Ready(c) => Ok(c),
                    Lookup::NeedSalt(day) => Err(no_salt(day)),
                }
            }
        }
    }

    /// Salts for one import request, with "now" read once.
    pub fn request_salts(&self) -> RequestSalts {
        RequestSalts::new(self.now_ms())
    }

    /// [`Salts::purge`] now.
    pub fn purge(&self, conn: &Connection) -> Result<usize> {
        self.salts.purge(conn, self.now_ms())
    }

    /// [`Salts::purge`] now, through the writer. Run it at least hourly.
    pub async fn purge_via(&self, db: &Db) -> Result<usize> {
        let now = self.now_ms();
        let salts = self.salts.clone();
        db.write(Durability::Normal, move |c| salts.purge(c, now))
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Imports

/// An imported event identified by `ip` and `userAgent` (no `visitorId`).
#[derive(Clone, Copy, Debug)]
pub struct ImportHit<'a> {
    pub website: Uuid,
    pub tz: &'a TimeZone,
    /// The event's `timestamp`.
    pub at_ms: i64,
    pub ip: IpAddr,
    pub user_agent: &'a str,
}

/// The salts of one import request (SPEC 3.5): an event whose local date's salt is still kept
/// is hashed with it, as a live event would be; an older one with a random salt made for this
/// request, per date, held in memory and dropped with the request (never stored), so such
/// visitors never join across requests or days. The choice for a date holds for the whole
/// request.
pub struct RequestSalts {
    now_ms: i64,
    chosen: HashMap<Date, Salt>,
}

impl RequestSalts {
    /// `now_ms`: the request's time, read once.
    pub fn new(now_ms: i64) -> RequestSalts {
        RequestSalts {
            now_ms,
            chosen: HashMap::new(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    fn own(&mut self, day: Date) -> Salt {
        *self.chosen.entry(day).or_insert_with(random_salt)
    }

    /// The salt for events of local date `day`, from memory only; `None` when the table must
    /// be asked first (the date's salt may exist or be created but is not cached: use
    /// [`Salts::get_or_create`], then ask again, or [`RequestSalts::salt`]).
    pub fn cached_salt(&mut self, salts: &Salts, day: Date) -> Option<Salt> {
        if let Some(salt) = self.chosen.get(&day) {
            return Some(*salt);
        }
        if let Some(salt) = salts.kept_salt(day, self.now_ms) {
            self.chosen.insert(day, salt);
            return Some(salt);
        }
        if salt_kept(day, self.now_ms) {
            return None;
        }
        Some(self.own(day))
    }

    /// The salt for events of local date `day`, reading (and, for a current date, creating) the
    /// stored salt on `conn`. In a transaction, the salts created are not cached until a later
    /// [`Salts::refresh`] or [`Salts::get_or_create`]; they are still used for this request.
    pub fn salt(&mut self, salts: &Salts, conn: &Connection, day: Date) -> Result<Salt> {
        if let Some(salt) = self.cached_salt(salts, day) {
            return Ok(salt);
        }
        Ok(match salts.ensure(conn, day, self.now_ms)? {
            Some(salt) => {
                self.chosen.insert(day, salt);
                salt
            }
            None => self.own(day),
        })
    }

    /// [`RequestSalts::salt`] through the writer (durable before it is used).
    pub async fn salt_via(&mut self, salts: &Arc<Salts>, db: &Db, day: Date) -> Result<Salt> {
        if let Some(salt) = self.cached_salt(salts, day) {
            return Ok(salt);
        }
        Ok(match salts.get_or_create(db, day, self.now_ms).await? {
            Some(salt) => {
                self.chosen.insert(day, salt);
                salt
            }
            None => self.own(day),
        })
    }

    /// The visitor id of an imported event identified by IP and User-Agent.
    pub fn visitor_id(
        &mut self,
        salts: &Salts,
        conn: &Connection,
        hit: &ImportHit<'_>,
    ) -> Result<i64> {
        let salt = self.salt(salts, conn, local_date(hit.tz, hit.at_ms))?;
        Ok(cookieless_id(&salt, &hit.website, hit.ip, hit.user_agent))
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::migrations::{MIGRATIONS, migrate};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SITE: Uuid = Uuid::from_u128(0x6f1c_2b3a_4d5e_4f60_8a7b_9c0d_1e2f_3a4b);
    const OTHER_SITE: Uuid = Uuid::from_u128(0x0a1b_2c3d_4e5f_4061_9273_8495_a6b7_c8d9);
    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

    fn ip() -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))
    }

    fn ms(iso: &str) -> i64 {
        iso.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    /// A migrated database file in a fresh temporary directory, and a connection to it.
    fn database() -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jetrack.db");
        let conn = crate::db::open_connection(&path, MIGRATIONS).unwrap();
        migrate(&conn, MIGRATIONS, &dir.path().join("backups")).unwrap();
        (dir, path, conn)
    }

    fn hit<'a>(tz: &'a TimeZone, website: Uuid, ip: IpAddr) -> Hit<'a> {
        Hit {
            website,
            tz,
            cookie_mode: false,
            visitor_id: None,
            ip,
            user_agent: UA,
        }
    }

    fn setup(now: i64) -> (tempfile::TempDir, Connection, Arc<ManualClock>, Visitors) {
        let (dir, _, conn) = database();
        let clock = Arc::new(ManualClock::new(now));
        let visitors = Visitors::load(&conn, clock.clone()).unwrap();
        (dir, conn, clock, visitors)
    }

    #[test]
    fn encodings_are_the_documented_bytes() {
        let salt: Salt = std::array::from_fn(|i| i as u8);
        let site = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";
        let first8 = |bytes: &[u8]| {
            let d = Sha256::digest(bytes);
            i64::from_be_bytes(d[..8].try_into().unwrap())
        };

        let mut bytes = salt.to_vec();
        bytes.extend_from_slice(site.as_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7]);
        bytes.extend_from_slice(UA.as_bytes());
        assert_eq!(cookieless_id(&salt, &SITE, ip(), UA), first8(&bytes));

        let vid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let cookie = first8(format!("{site}{vid}").as_bytes());
        let upper = parse_cookie_visitor(&vid.to_uppercase()).unwrap();
        assert_eq!(cookie_id(&SITE, &upper), cookie);
        assert_eq!(
            import_id(&SITE, vid),
            Some(cookie),
            "import joins the cookie"
        );
        assert_eq!(
            import_id(&SITE, "user-42"),
            Some(first8(format!("{site}user-42").as_bytes()))
        );

        // Frozen values (computed independently with Python hashlib): a change here changes
        // every stored visitor id.
        assert_eq!(
            cookieless_id(&salt, &SITE, ip(), UA),
            -5_909_792_443_647_154_254
        );
        assert_eq!(cookie, 5_570_881_391_133_137_871);
    }

    #[test]
    fn ipv4_and_its_mapped_ipv6_are_one_visitor() {
        let salt = random_salt();
        let v4 = ip();
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(
            cookieless_id(&salt, &SITE, v4, UA),
            cookieless_id(&salt, &SITE, mapped, UA)
        );
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
        assert_ne!(
            cookieless_id(&salt, &SITE, v4, UA),
            cookieless_id(&salt, &SITE, other, UA)
        );
        assert_ne!(
            cookieless_id(&salt, &SITE, v4, UA),
            cookieless_id(&salt, &SITE, v4, "curl/8")
        );
    }

    #[test]
    fn a_different_site_is_a_different_visitor() {
        let salt = random_salt();
        assert_ne!(
            cookieless_id(&salt, &SITE, ip(), UA),
            cookieless_id(&salt, &OTHER_SITE, ip(), UA)
        );
        let vid = Uuid::from_u128(7);
        assert_ne!(cookie_id(&SITE, &vid), cookie_id(&OTHER_SITE, &vid));
        assert_ne!(import_id(&SITE, "a"), import_id(&OTHER_SITE, "a"));
    }

    #[test]
    fn cookie_values_and_import_ids_are_checked() {
        assert!(parse_cookie_visitor("0f8fad5b-d9cb-469f-a165-70867728950e").is_some());
        assert!(parse_cookie_visitor("not-a-uuid").is_none());
        assert!(parse_cookie_visitor("").is_none());
        assert!(parse_cookie_visitor("00000000-0000-0000-0000-000000000000").is_none());
        assert!(import_id(&SITE, "").is_none());
        assert!(
            import_id(&SITE, &"é".repeat(200)).is_some(),
            "200 characters"
        );
        assert!(import_id(&SITE, &"a".repeat(201)).is_none());
    }

    #[test]
    fn purge_and_creation_windows() {
        let day = d("2025-01-15");
        // Began at UTC+14 at 2025-01-14T10:00Z; purged 72 h later.
        assert_eq!(salt_purge_at(day), ms("2025-01-17T10:00:00Z"));
        assert!(salt_kept(day, ms("2025-01-17T09:59:59.999Z")));
        assert!(!salt_kept(day, ms("2025-01-17T10:00:00Z")));
        assert_eq!(
            purge_cutoff(ms("2025-01-17T09:59:59.999Z")),
            d("2025-01-14")
        );
        assert_eq!(purge_cutoff(ms("2025-01-17T10:00:00Z")), day);
        // Current somewhere from 2025-01-14T10:00Z (UTC+14) until 2025-01-16T12:00Z (UTC−12).
        assert!(!may_create_salt(day, ms("2025-01-14T09:59:59.999Z")));
        assert!(may_create_salt(day, ms("2025-01-14T10:00:00Z")));
        assert!(may_create_salt(day, ms("2025-01-16T11:59:59.999Z")));
        assert!(!may_create_salt(day, ms("2025-01-16T12:00:00Z")));
    }

    /// Same IP + UA + site: one id through the site's local day, another the next local day,
    /// and yesterday's id among the candidates just after midnight.
    fn local_day_rollover(zone: &str, before_midnight: &str, after_midnight: &str) {
        let tz = TimeZone::get(zone).unwrap();
        let (_dir, conn, clock, visitors) = setup(ms(after_midnight) - 24 * HOUR_MS);
        let h = hit(&tz, SITE, ip());

        // 00:01 and 23:59 of the same local day.
        let early = visitors.live_on(&conn, &h).unwrap();
        clock.set(ms(before_midnight));
        let late = visitors.live_on(&conn, &h).unwrap();
        assert_eq!(early.day, late.day);
        assert_eq!(early.current, late.current);
        assert!(!late.cookie);

        // 00:01 the next local day.
        clock.set(ms(after_midnight));
        let next = visitors.live_on(&conn, &h).unwrap();
        assert_eq!(next.day, late.day.tomorrow().unwrap());
        assert_eq!(next.at_ms, ms(after_midnight));
        assert_ne!(next.current, late.current);
        assert_eq!(next.previous, Some(late.current));
        assert!(next.ids().any(|id| id == late.current));

        // The hot path answers from memory.
        assert_eq!(visitors.cached(&h), Lookup::Ready(next));
    }

    #[test]
    fn utc_site_changes_id_at_utc_midnight() {
        local_day_rollover("UTC", "2025-01-15T23:59:00Z", "2025-01-16T00:01:00Z");
    }

    #[test]
    fn kolkata_site_changes_id_at_its_own_midnight() {
        // 23:59 and 00:01 at +05:30.
        local_day_rollover(
            "Asia/Kolkata",
            "2025-01-15T18:29:00Z",
            "2025-01-15T18:31:00Z",
        );
    }

    #[test]
    fn sites_in_different_zones_use_their_own_date() {
        let utc = TimeZone::UTC;
        let kolkata = TimeZone::get("Asia/Kolkata").unwrap();
        let (_dir, conn, _clock, visitors) = setup(ms("2025-01-15T20:00:00Z"));
        let a = visitors.live_on(&conn, &hit(&utc, SITE, ip())).unwrap();
        let b = visitors.live_on(&conn, &hit(&kolkata, SITE, ip())).unwrap();
        assert_eq!(a.day, d("2025-01-15"));
        assert_eq!(b.day, d("2025-01-16"));
        assert_ne!(a.current, b.current);
        // Kolkata's previous date is UTC's current one.
        assert_eq!(b.previous, Some(a.current));
    }

    #[test]
    fn cookie_mode_uses_the_cookie_and_falls_back_without_one() {
        let tz = TimeZone::UTC;
        let (_dir, conn, _clock, visitors) = setup(ms("2025-01-15T12:00:00Z"));
        let vid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let mut h = hit(&tz, SITE, ip());
        h.visitor_id = Some(vid);
        // Cookie mode off: the visitorId is ignored.
        let cookieless = visitors.live_on(&conn, &h).unwrap();
        assert!(!cookieless.cookie);
        h.cookie_mode = true;
        let c = visitors.live_on(&conn, &h).unwrap();
        assert!(c.cookie);
        assert_eq!(c.current, cookie_id(&SITE, &Uuid::parse_str(vid).unwrap()));
        assert_eq!(c.previous, None);
        h.visitor_id = Some("garbage");
        assert_eq!(visitors.live_on(&conn, &h).unwrap(), cookieless);
    }

    #[test]
    fn a_salt_is_purged_exactly_72_hours_after_its_date_began_at_utc_plus_14() {
        let day = d("2025-01-15");
        let purge_at = ms("2025-01-17T10:00:00Z");
        let (_dir, conn, clock, visitors) = setup(ms("2025-01-15T12:00:00Z"));
        let salts = visitors.salts();
        let salt = salts.ensure(&conn, day, clock.now_ms()).unwrap().unwrap();
        assert_eq!(salts.salt_for(day), Some(salt));

        clock.set(purge_at - 1);
        assert_eq!(visitors.purge(&conn).unwrap(), 0);
        assert_eq!(salts.kept_salt(day, purge_at - 1), Some(salt));
        assert_eq!(salts.ensure(&conn, day, purge_at - 1).unwrap(), Some(salt));

        clock.set(purge_at);
        assert_eq!(visitors.purge(&conn).unwrap(), 1);
        assert_eq!(salts.salt_for(day), None);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM salts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
        // Never made again.
        assert_eq!(salts.ensure(&conn, day, purge_at).unwrap(), None);
        assert_eq!(Salts::create_or_read(&conn, day, purge_at).unwrap(), None);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM salts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn an_expired_salt_is_not_used_before_the_purge_runs() {
        let day = d("2025-01-15");
        let (_dir, conn, _clock, visitors) = setup(0);
        let salts = visitors.salts();
        salts
            .ensure(&conn, day, ms("2025-01-15T00:00:00Z"))
            .unwrap()
            .unwrap();
        let purge_at = salt_purge_at(day);
        assert_eq!(salts.kept_salt(day, purge_at), None);
        assert_eq!(salts.ensure(&conn, day, purge_at).unwrap(), None);
    }

    #[test]
    fn no_salt_is_made_for_a_date_not_current_anywhere() {
        let (_dir, conn, _clock, visitors) = setup(0);
        let now = ms("2025-01-16T13:00:00Z");
        // 2025-01-15 ended everywhere at 12:00Z but any salt it had is kept until the 17th.
        assert!(salt_kept(d("2025-01-15"), now));
        assert_eq!(
            visitors
                .salts()
                .ensure(&conn, d("2025-01-15"), now)
                .unwrap(),
            None
        );
        // 2025-01-18 has not begun anywhere.
        assert_eq!(
            visitors
                .salts()
                .ensure(&conn, d("2025-01-18"), now)
                .unwrap(),
            None
        );
        // 2025-01-17 has begun at UTC+14 (at 2025-01-16T10:00Z).
        assert!(
            visitors
                .salts()
                .ensure(&conn, d("2025-01-17"), now)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn two_processes_agree_on_a_dates_salt() {
        let (_dir, path, first) = database();
        let second = crate::db::open_connection(&path, MIGRATIONS).unwrap();
        let now = ms("2025-01-15T12:00:00Z");
        let day = d("2025-01-15");
        let a = Salts::load(&first).unwrap();
        let b = Salts::load(&second).unwrap();
        let from_b = b.ensure(&second, day, now).unwrap().unwrap();
        // `a` loaded before `b` made the salt: its own ensure finds the stored one.
        assert_eq!(a.salt_for(day), None);
        let from_a = a.ensure(&first, day, now).unwrap().unwrap();
        assert_eq!(from_a, from_b);
        // A salt created inside a rolled-back transaction is neither stored nor cached.
        let c = Salts::empty();
        let other = d("2025-01-16");
        first.execute_batch("BEGIN IMMEDIATE").unwrap();
        let lost = c.ensure(&first, other, now).unwrap().unwrap();
        first.execute_batch("ROLLBACK").unwrap();
        assert_eq!(c.salt_for(other), None);
        let kept = b.ensure(&second, other, now).unwrap().unwrap();
        assert_ne!(lost, kept);
        assert_eq!(Salts::load(&first).unwrap().salt_for(other), Some(kept));
        assert_eq!(Salts::load(&first).unwrap().salt_for(day), Some(from_a));
    }

    #[test]
    fn imports_use_the_kept_salt_or_one_of_their_own() {
        let tz = TimeZone::get("Asia/Kolkata").unwrap();
        let now = ms("2025-01-20T06:00:00Z");
        let (_dir, conn, _clock, visitors) = setup(now);
        let live = visitors.live_on(&conn, &hit(&tz, SITE, ip())).unwrap();
        let salts = visitors.salts();

        // Today's event: as the live path.
        let recent = ImportHit {
            website: SITE,
            tz: &tz,
            at_ms: now - HOUR_MS,
            ip: ip(),
            user_agent: UA,
        };
        let mut req = visitors.request_salts();
        assert_eq!(req.visitor_id(salts, &conn, &recent).unwrap(), live.current);

        // A month-old event: a salt of this request only, the same within the request.
        let old = ImportHit {
            at_ms: ms("2024-12-20T06:00:00Z"),
            ..recent
        };
        let old_later_that_day = ImportHit {
            at_ms: ms("2024-12-20T07:00:00Z"),
            ..recent
        };
        let first = req.visitor_id(salts, &conn, &old).unwrap();
        assert_eq!(
            req.visitor_id(salts, &conn, &old_later_that_day).unwrap(),
            first
        );
        let mut next_request = visitors.request_salts();
        assert_ne!(next_request.visitor_id(salts, &conn, &old).unwrap(), first);
        // Nothing stored for it.
        assert_eq!(Salts::load(&conn).unwrap().salt_for(d("2024-12-20")), None);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM salts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);

        // Yesterday (local) with no stored salt and no longer current anywhere: its own salt.
        // (The 19th ended everywhere at 2025-01-20T12:00Z; a salt of it is kept until
        // 2025-01-21T10:00Z.)
        let mut req = RequestSalts::new(ms("2025-01-21T09:00:00Z"));
        let yesterday = ImportHit {
            at_ms: ms("2025-01-19T12:00:00Z"), // 17:30 local, 2025-01-19
            ..recent
        };
        assert_eq!(
            req.cached_salt(salts, d("2025-01-19")),
            None,
            "ask the table"
        );
        let own = req.salt(salts, &conn, d("2025-01-19")).unwrap();
        assert_eq!(req.cached_salt(salts, d("2025-01-19")), Some(own));
        assert_eq!(
            req.visitor_id(salts, &conn, &yesterday).unwrap(),
            cookieless_id(&own, &SITE, ip(), UA)
        );
    }

    #[tokio::test]
    async fn the_live_path_creates_the_salt_through_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), 16).unwrap();
        let clock = Arc::new(ManualClock::new(ms("2025-01-15T12:00:00Z")));
        let visitors = Visitors::new(Arc::new(Salts::empty()), clock.clone());
        let tz = TimeZone::UTC;
        let h = hit(&tz, SITE, ip());
        assert_eq!(visitors.cached(&h), Lookup::NeedSalt(d("2025-01-15")));
        let c = visitors.live(&db, &h).await.unwrap();
        assert_eq!(visitors.cached(&h), Lookup::Ready(c));
        let stored = db
            .read(|c| Ok(Salts::load(c)?.salt_for(d("2025-01-15"))))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.current, cookieless_id(&stored, &SITE, ip(), UA));

        clock.set(salt_purge_at(d("2025-01-15")));
        // The salt of the 15th is gone; it is now the 17th (10:00) at UTC.
        assert_eq!(visitors.purge_via(&db).await.unwrap(), 1);
        let after = visitors.live(&db, &h).await.unwrap();
        assert_eq!(after.day, d("2025-01-17"));
        assert_eq!(after.previous, None, "the 16th never had a salt");
        db.shutdown().await;
    }
}
