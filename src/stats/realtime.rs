//! Who is on a website right now (SPEC 2.6 `realtime`, SPEC 4 "activeVisitors").
//!
//! Heartbeats are not stored as rows, so the database cannot answer "any activity in the last
//! 30 seconds" without an index that every heartbeat would have to update. The writer tells
//! [`Recent`] of every activity it stores instead, and a query reads it: a map per website from
//! visitor to their latest activity, holding only the last minute.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::Connection;

use crate::error::Result;
use crate::websites::SiteNum;

/// How far back an activity keeps a visitor active: 30 s, the boundary included.
pub const ACTIVE_MS: i64 = 30_000;
/// How long [`Recent`] keeps an activity.
const KEEP_MS: i64 = 60_000;
/// Rows in `pages`.
const TOP_PAGES: usize = 10;

#[derive(Default)]
pub struct Recent {
    sites: Mutex<HashMap<SiteNum, HashMap<i64, i64>>>,
}

#[derive(Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Page {
    pub value: String,
    #[serde(rename = "activeVisitors")]
    pub active_visitors: u64,
}

#[derive(Debug, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Realtime {
    #[serde(rename = "activeVisitors")]
    pub active_visitors: u64,
    pub pages: Vec<Page>,
}

impl Recent {
    /// Notes that `visitor` of `site` was active at `at` (milliseconds); older than a minute
    /// before `now` is not worth keeping.
    pub fn note(&self, site: SiteNum, visitor: i64, at: i64, now: i64) {
        if at < now - KEEP_MS {
            return;
        }
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let visitors = sites.entry(site).or_default();
        let latest = visitors.entry(visitor).or_insert(at);
        *latest = (*latest).max(at);
        if visitors.len() > 1024 && visitors.len().is_power_of_two() {
            visitors.retain(|_, at| *at >= now - KEEP_MS);
        }
    }

    /// The visitors of `site` active at `now`, with the time of their latest activity.
    pub fn active(&self, site: SiteNum, now: i64) -> Vec<(i64, i64)> {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let Some(visitors) = sites.get_mut(&site) else {
            return Vec::new();
        };
        visitors.retain(|_, at| *at >= now - KEEP_MS);
        visitors
            .iter()
            .filter(|&(_, &at)| at >= now - ACTIVE_MS)
            .map(|(&v, &at)| (v, at))
            .collect()
    }
}

/// The figures of `realtime` at `now`: each active visitor counts once, under the path of the
/// latest pageview of the session they are active in.
pub fn realtime(conn: &Connection, recent: &Recent, site: SiteNum, now: i64) -> Result<Realtime> {
    let active = recent.active(site, now);
    let mut stmt = conn.prepare_cached(
        "SELECT s.value FROM visits v JOIN strings s ON s.id = v.exit
         WHERE v.site = ?1 AND v.visitor = ?2 AND v.first_at <= ?3
         ORDER BY v.first_at DESC LIMIT 1",
    )?;
    let mut pages: HashMap<String, u64> = HashMap::new();
    for &(visitor, at) in &active {
        let path: Option<String> =
            match stmt.query_row(rusqlite::params![site.0, visitor, at], |r| r.get(0)) {
                Ok(p) => Some(p),
                Err(rusqlite::Error::QueryReturnedNoRows) => None,
                Err(e) => return Err(e.into()),
            };
        if let Some(path) = path {
            *pages.entry(path).or_default() += 1;
        }
    }
    let mut pages: Vec<Page> = pages
        .into_iter()
        .map(|(value, active_visitors)| Page {
            value,
            active_visitors,
        })
        .collect();
    pages.sort_by(|a, b| {
        b.active_visitors
            .cmp(&a.active_visitors)
            .then_with(|| a.value.cmp(&b.value))
    });
    pages.truncate(TOP_PAGES);
    Ok(Realtime {
        active_visitors: active.len() as u64,
        pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_activity_30_000_s_old_counts_and_30_001_s_does_not() {
        let recent = Recent::default();
        let at = 1_736_935_200_000;
        recent.note(SiteNum(1), 7, at, at);
        assert_eq!(recent.active(SiteNum(1), at + 30_000), vec![(7, at)]);
        assert_eq!(recent.active(SiteNum(1), at + 30_001), vec![]);
    }

    #[test]
    fn the_latest_activity_counts_and_other_sites_are_apart() {
        let recent = Recent::default();
        let at = 1_736_935_200_000;
        recent.note(SiteNum(1), 7, at, at);
        recent.note(SiteNum(1), 7, at + 20_000, at + 20_000);
        recent.note(SiteNum(1), 7, at + 5_000, at + 20_000); // late arrival of an older one
        recent.note(SiteNum(2), 8, at, at);
        assert_eq!(
            recent.active(SiteNum(1), at + 50_000),
            vec![(7, at + 20_000)]
        );
        assert_eq!(recent.active(SiteNum(2), at + 50_000), vec![]);
        // Older than a minute is not kept at all.
        recent.note(SiteNum(3), 9, at, at + 60_001);
        assert_eq!(recent.active(SiteNum(3), at), vec![]);
    }
}
