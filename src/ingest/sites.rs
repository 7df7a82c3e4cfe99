//! What ingestion needs of a website, cached: every tracked request names one, and most
//! name the same few. Changes through the API clear the cache at once; entries also expire,
//! so that a website added from the shell (another process) is seen within seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use rusqlite::{Connection, OptionalExtension};
use uuid::Uuid;

use super::visitor::zone_or_utc;
use crate::db::Db;
use crate::error::Result;

/// A tracked website as ingestion sees it.
#[derive(Debug)]
pub struct SiteInfo {
    /// `sites.num`.
    pub num: i64,
    pub id: Uuid,
    pub account_id: String,
    pub domain: String,
    pub tz: TimeZone,
    pub cookie_mode: bool,
}

const KNOWN_FOR: Duration = Duration::from_secs(60);
const UNKNOWN_FOR: Duration = Duration::from_secs(5);
/// Bounds the memory a flood of made-up website ids can take.
const MAX_ENTRIES: usize = 50_000;

/// When an entry was read, and the website (`None`: no such website).
type Entry = (Instant, Option<Arc<SiteInfo>>);

#[derive(Default)]
pub struct Sites {
    cache: Mutex<HashMap<Uuid, Entry>>,
}

impl Sites {
    pub fn new() -> Sites {
        Sites::default()
    }

    /// The website with this id, `None` when there is none.
    pub async fn get(&self, db: &Db, id: Uuid) -> Result<Option<Arc<SiteInfo>>> {
        if let Some(hit) = self.cached(id) {
            return Ok(hit);
        }
        let found = db.read(move |c| load(c, id)).await?.map(Arc::new);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(id, (Instant::now(), found.clone()));
        Ok(found)
    }

    fn cached(&self, id: Uuid) -> Option<Option<Arc<SiteInfo>>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let (at, entry) = cache.get(&id)?;
        let ttl = if entry.is_some() {
            KNOWN_FOR
        } else {
            UNKNOWN_FOR
        };
        (at.elapsed() < ttl).then(|| entry.clone())
    }

    /// Forgets everything: call after a website is added, changed or deleted.
    pub fn clear(&self) {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Reads a website by id.
pub fn load(conn: &Connection, id: Uuid) -> Result<Option<SiteInfo>> {
    Ok(conn
        .prepare_cached(
            "SELECT s.num, w.account_id, w.domain, w.timezone, w.cookie_mode
             FROM websites w JOIN sites s ON s.website_id = w.id WHERE w.id = ?1",
        )?
        .query_row([id.to_string()], |r| {
            let timezone: String = r.get(3)?;
            Ok(SiteInfo {
                num: r.get(0)?,
                id,
                account_id: r.get(1)?,
                domain: r.get(2)?,
                tz: zone_or_utc(&timezone),
                cookie_mode: r.get(4)?,
            })
        })
        .optional()?)
}
