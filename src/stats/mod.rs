//! Statistics: the answers of `/websites/{id}/stats/*` by the definitions of
//! docs/definitions.md.
//!
//! `dimension` names every filter and breakdown once, `query` is a request as the domain takes
//! it, `period` turns dates of a time zone into UTC intervals and buckets, `record` is what is
//! counted (and the one formula of a session's bounce, duration and views), `blocks` stores it
//! compactly, `engine` counts, `realtime` keeps the last minute of activity. This module turns
//! the engine's tallies into the typed answers the API serialises.

pub mod blocks;
pub mod dimension;
pub mod engine;
pub mod period;
pub mod query;
pub mod realtime;
pub mod record;

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::Connection;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::websites::SiteNum;
use dimension::{Grouping, Report, Selects};
use engine::{Filters, Group, Key, Tally, Want};
use period::{Interval, Period};
use query::{Compare, EventProp, Filter, Op, Page, Query};

/// The headline figures (docs/definitions.md, "Metrics").
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub unique_visitors: u64,
    pub total_pageviews: u64,
    pub total_sessions: u64,
    pub bounce_rate: f64,
    pub avg_session_duration: f64,
    pub views_per_session: f64,
}

impl Figures {
    fn of(t: &Tally) -> Figures {
        Figures {
            unique_visitors: t.visitors,
            total_pageviews: t.pageviews,
            total_sessions: t.sessions,
            bounce_rate: t.bounce_rate(),
            avg_session_duration: t.avg_duration(),
            views_per_session: t.views_per_session(),
        }
    }
}

/// `main`: the figures, and those of the comparison period when asked for.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Main {
    #[serde(flatten)]
    pub figures: Figures,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Figures>,
}

/// One bucket of `timeseries`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// `YYYY-MM-DD` (week: its Monday, month: the 1st), or for hours the local time with its
    /// offset.
    pub date: String,
    pub unique_visitors: u64,
    pub total_pageviews: u64,
    pub total_sessions: u64,
    pub bounce_rate: f64,
    pub avg_session_duration: f64,
}

/// A row of `pages` and `hostnames`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageviewRow {
    pub value: Option<String>,
    pub unique_visitors: u64,
    pub total_pageviews: u64,
    pub percentage: f64,
}

/// A row of a breakdown of sessions (entry and exit pages, referrers, UTM, countries, …).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionRow {
    pub value: Option<String>,
    pub unique_visitors: u64,
    pub total_sessions: u64,
    pub bounce_rate: f64,
    pub percentage: f64,
}

/// A row of `events` and `event-props`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRow {
    pub value: Option<String>,
    pub total_events: u64,
    pub unique_visitors: u64,
    pub percentage: f64,
}

/// A breakdown row, shaped by what its report counts ([`dimension::Counts`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Row {
    Pageviews(PageviewRow),
    Sessions(SessionRow),
    Events(EventRow),
}

/// One page of a breakdown.
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    pub rows: Vec<Row>,
    pub has_more: bool,
}

/// `active-users`.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ActiveUsers {
    pub date: String,
    pub dau: u64,
    pub wau: u64,
    pub mau: u64,
}

/// The filters as the engine takes them: values looked up among the stored strings.
fn resolve(conn: &Connection, given: &[Filter]) -> Result<Filters> {
    let mut filters = Filters::default();
    for filter in given {
        if filter.op != Op::Is {
            // The edge offers only `is` until the engine compares otherwise.
            return Err(Error::invalid(format!(
                "{}: unknown query parameter",
                filter.key()
            )));
        }
        let value = filter.value.as_str();
        let selects = filter.dimension.selects();
        let want = if value == query::NONE {
            Want::Empty
        } else if selects == Selects::Session(dimension::SessionAttr::of(dimension::Attr::Country))
        {
            Want::Value(record::country_number(value))
        } else {
            Want::Value(engine::string_number(conn, value)?)
        };
        match selects {
            Selects::Path => filters.path = Some(want),
            Selects::Hostname => filters.hostname = Some(want),
            Selects::Event => filters.event = Some(want),
            Selects::Session(attr) => filters.attrs.push((attr, want)),
        }
    }
    Ok(filters)
}

/// `main`, with the comparison period's figures when asked for.
pub fn main(conn: &Connection, site: SiteNum, q: &Query, compare: Option<Compare>) -> Result<Main> {
    let filters = resolve(conn, &q.filters)?;
    let figures = Figures::of(&engine::main(conn, site.0, &q.period, &filters)?);
    let previous = match compare {
        None => None,
        Some(Compare::Previous) => Some(Figures::of(&engine::main(
            conn,
            site.0,
            &q.period.previous(),
            &filters,
        )?)),
    };
    Ok(Main { figures, previous })
}

pub fn timeseries(
    conn: &Connection,
    site: SiteNum,
    q: &Query,
    interval: Interval,
) -> Result<Vec<Bucket>> {
    let filters = resolve(conn, &q.filters)?;
    let buckets = q.period.buckets(interval);
    let starts: Vec<i64> = buckets.iter().map(|b| b.1).collect();
    let tallies = engine::timeseries(conn, site.0, &q.period, &filters, &starts)?;
    Ok(buckets
        .into_iter()
        .zip(tallies)
        .map(|((date, _), t)| Bucket {
            date,
            unique_visitors: t.visitors,
            total_pageviews: t.pageviews,
            total_sessions: t.sessions,
            bounce_rate: t.bounce_rate(),
            avg_session_duration: t.avg_duration(),
        })
        .collect())
}

/// One page of `report`'s rows, sorted by unique visitors, then value (null first).
pub fn breakdown(
    conn: &Connection,
    site: SiteNum,
    q: &Query,
    report: Report,
    event_prop: Option<&EventProp>,
    page: Page,
) -> Result<Rows> {
    let filters = resolve(conn, &q.filters)?;
    let group = match (report.grouping(), event_prop) {
        (Grouping::Paths, _) => Group::Pages,
        (Grouping::Hostnames, _) => Group::Hostnames,
        (Grouping::Sessions(attr), _) => Group::Sessions(attr),
        (Grouping::Events, _) => Group::Events,
        (Grouping::EventProps, Some(ep)) => Group::EventProp {
            name: engine::string_number(conn, &ep.event)?,
            prop: ep.prop.clone(),
        },
        (Grouping::EventProps, None) => {
            return Err(Error::invalid_all(vec![
                "event: is required".into(),
                "prop: is required".into(),
            ]));
        }
    };
    let (rows, all_visitors) = engine::breakdown(conn, site.0, &q.period, &filters, &group)?;
    let keys: Vec<&Key> = rows.iter().map(|r| &r.key).collect();
    let names = engine::name_keys(conn, &keys)?;
    let value_of = |key: &Key| -> Option<String> {
        match key {
            Key::Empty => None,
            Key::Number(n) => names.get(n).cloned(),
            Key::Text(t) => Some(t.clone()),
        }
    };
    let mut named: Vec<(Option<String>, &engine::Row)> =
        rows.iter().map(|r| (value_of(&r.key), r)).collect();
    named.sort_by(|(va, a), (vb, b)| b.visitors.cmp(&a.visitors).then_with(|| va.cmp(vb)));
    let skip = (page.number as usize - 1).saturating_mul(page.limit as usize);
    let take = page.limit as usize;
    let has_more = named.len() > skip.saturating_add(take);
    let rows = named
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|(value, r)| {
            let percentage = engine::percent(r.visitors, all_visitors);
            match report.counts() {
                dimension::Counts::Pageviews => Row::Pageviews(PageviewRow {
                    value,
                    unique_visitors: r.visitors,
                    total_pageviews: r.count,
                    percentage,
                }),
                dimension::Counts::Sessions => Row::Sessions(SessionRow {
                    value,
                    unique_visitors: r.visitors,
                    total_sessions: r.count,
                    bounce_rate: engine::percent(r.bounces, r.count),
                    percentage,
                }),
                dimension::Counts::Events => Row::Events(EventRow {
                    value,
                    total_events: r.count,
                    unique_visitors: r.visitors,
                    percentage,
                }),
            }
        })
        .collect();
    Ok(Rows { rows, has_more })
}

/// `active-users` on `date`: distinct visitors with a counted pageview on that day, in the 7
/// and in the 30 days ending on it.
pub fn active_users(
    conn: &Connection,
    site: SiteNum,
    date: Date,
    tz: &TimeZone,
    given: &[Filter],
) -> Result<ActiveUsers> {
    let filters = resolve(conn, given)?;
    let mut counts = [0u64; 3];
    for (count, days) in counts.iter_mut().zip([1, 7, 30]) {
        let from = date.checked_sub((days - 1).days()).unwrap_or(date);
        let period = Period::new(from, date, tz.clone());
        *count = engine::main(conn, site.0, &period, &filters)?.visitors;
    }
    Ok(ActiveUsers {
        date: date.to_string(),
        dau: counts[0],
        wau: counts[1],
        mau: counts[2],
    })
}
