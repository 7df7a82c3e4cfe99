//! Statistics: the answers of `/websites/{id}/stats/*` (SPEC 2.6) by the definitions of
//! SPEC 4.
//!
//! `period` turns dates of a time zone into UTC intervals and buckets, `engine` counts,
//! `realtime` keeps the last minute of activity. This module checks a request's parameters and
//! shapes the answers.

pub mod blocks;
pub mod engine;
pub mod period;
pub mod realtime;

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rusqlite::Connection;
use serde_json::{Map, Value, json};

use crate::error::Result;
use engine::{Dim, Filters, Group, Key, Tally, Want};
use period::{Interval, MAX_DAYS, MAX_HOURLY_DAYS, Period};

/// A list of query parameters: those before `;`, the filters of SPEC 2.6 in its order, then
/// those after. The one place the filters are spelled.
#[macro_export]
macro_rules! stats_params {
    ($($before:literal),* ; $($after:literal),*) => {
        [
            $($before,)*
            "hostname", "path", "entryPage", "exitPage", "referrer", "utmSource", "utmMedium",
            "utmCampaign", "utmTerm", "utmContent", "country", "browser", "os", "device",
            "language", "screen", "event",
            $($after,)*
        ]
    };
}

/// The filter parameters, in the order SPEC 2.6 lists them.
pub const FILTERS: [&str; 17] = stats_params!(;);

/// The value of a filter that selects the empty value.
pub const NONE: &str = "(none)";

/// The session attribute a filter parameter names, for the attribute filters.
fn filter_dim(name: &str) -> Option<Dim> {
    Some(match name {
        "entryPage" => Dim::Entry,
        "exitPage" => Dim::Exit,
        "referrer" => Dim::Referrer,
        "utmSource" => Dim::UtmSource,
        "utmMedium" => Dim::UtmMedium,
        "utmCampaign" => Dim::UtmCampaign,
        "utmTerm" => Dim::UtmTerm,
        "utmContent" => Dim::UtmContent,
        "country" => Dim::Country,
        "browser" => Dim::Browser,
        "os" => Dim::Os,
        "device" => Dim::Device,
        "language" => Dim::Language,
        "screen" => Dim::Screen,
        _ => return None,
    })
}

/// The breakdowns, by their path under `stats/`.
pub const BREAKDOWNS: [&str; 18] = [
    "pages",
    "hostnames",
    "entry-pages",
    "exit-pages",
    "referrers",
    "utm-sources",
    "utm-mediums",
    "utm-campaigns",
    "utm-terms",
    "utm-contents",
    "countries",
    "browsers",
    "os",
    "devices",
    "languages",
    "screens",
    "events",
    "event-props",
];

fn breakdown_group(name: &str) -> Option<Group> {
    Some(match name {
        "pages" => Group::Pages,
        "hostnames" => Group::Hostnames,
        "entry-pages" => Group::Sessions(Dim::Entry),
        "exit-pages" => Group::Sessions(Dim::Exit),
        "referrers" => Group::Sessions(Dim::Referrer),
        "utm-sources" => Group::Sessions(Dim::UtmSource),
        "utm-mediums" => Group::Sessions(Dim::UtmMedium),
        "utm-campaigns" => Group::Sessions(Dim::UtmCampaign),
        "utm-terms" => Group::Sessions(Dim::UtmTerm),
        "utm-contents" => Group::Sessions(Dim::UtmContent),
        "countries" => Group::Sessions(Dim::Country),
        "browsers" => Group::Sessions(Dim::Browser),
        "os" => Group::Sessions(Dim::Os),
        "devices" => Group::Sessions(Dim::Device),
        "languages" => Group::Sessions(Dim::Language),
        "screens" => Group::Sessions(Dim::Screen),
        "events" => Group::Events,
        _ => return None,
    })
}

/// A checked statistics request: the period in its zone and the filters as given.
#[derive(Clone, Debug)]
pub struct Request {
    pub site: i64,
    pub period: Period,
    pub timezone: String,
    pub filters: Vec<(String, String)>,
}

/// A query parameter's value (the last one wins).
pub fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `YYYY-MM-DD`, strictly.
pub fn parse_date(raw: &str) -> Option<Date> {
    let b = raw.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    raw.parse().ok()
}

/// The zone of a request: `timezone=` when given, else the website's. Pushes the problem.
pub fn zone(
    query: &[(String, String)],
    site_zone: &str,
    errors: &mut Vec<String>,
) -> (TimeZone, String) {
    match param(query, "timezone") {
        Some(name) => match TimeZone::get(name) {
            Ok(tz) if !name.is_empty() => (tz, name.to_string()),
            _ => {
                errors.push("timezone: unknown time zone".into());
                (TimeZone::UTC, "UTC".into())
            }
        },
        None => (
            TimeZone::get(site_zone).unwrap_or(TimeZone::UTC),
            site_zone.to_string(),
        ),
    }
}

/// The filters given, each checked to be non-empty.
pub fn given_filters(
    query: &[(String, String)],
    errors: &mut Vec<String>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in FILTERS {
        if let Some(value) = param(query, name) {
            if value.is_empty() {
                errors.push(format!("{name}: must not be empty"));
            } else {
                out.push((name.to_string(), value.to_string()));
            }
        }
    }
    out
}

impl Request {
    /// Checks `from`, `to`, `timezone` and the filters; pushes every problem to `errors`.
    pub fn parse(
        site: i64,
        site_zone: &str,
        query: &[(String, String)],
        now_ms: i64,
        errors: &mut Vec<String>,
    ) -> Request {
        let (tz, timezone) = zone(query, site_zone, errors);
        let mut date = |name: &str| {
            param(query, name).and_then(|raw| {
                let d = parse_date(raw);
                if d.is_none() {
                    errors.push(format!("{name}: must be a date YYYY-MM-DD"));
                }
                d
            })
        };
        let from = date("from");
        let to = date("to");
        let to = to.unwrap_or_else(|| period::today(&tz, now_ms));
        let from = from.unwrap_or_else(|| to.checked_sub(29.days()).unwrap_or(to));
        if from > to {
            errors.push("to: must not be before from".into());
        } else if i64::from((to - from).get_days()) + 1 > MAX_DAYS {
            errors.push(format!("from: the range may span at most {MAX_DAYS} days"));
        }
        let filters = given_filters(query, errors);
        Request {
            site,
            period: Period::new(from, to.max(from), tz),
            timezone,
            filters,
        }
    }

    /// `meta` members every statistics answer echoes.
    pub fn meta(&self) -> Map<String, Value> {
        let mut meta = Map::new();
        meta.insert("from".into(), json!(self.period.from.to_string()));
        meta.insert("to".into(), json!(self.period.to.to_string()));
        meta.insert("timezone".into(), json!(self.timezone));
        meta.insert("filters".into(), filters_meta(&self.filters));
        meta
    }
}

pub fn filters_meta(filters: &[(String, String)]) -> Value {
    Value::Object(filters.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// The filters as the engine takes them: values looked up among the stored strings.
pub fn resolve(conn: &Connection, given: &[(String, String)]) -> Result<Filters> {
    let mut filters = Filters::default();
    for (name, value) in given {
        let want = if value == NONE {
            Want::Empty
        } else if name == "country" {
            Want::Value(engine::country_number(value))
        } else {
            Want::Value(engine::string_number(conn, value)?)
        };
        match name.as_str() {
            "path" => filters.path = Some(want),
            "hostname" => filters.hostname = Some(want),
            "event" => filters.event = Some(want),
            other => {
                if let Some(dim) = filter_dim(other) {
                    filters.attrs.push((dim, want));
                }
            }
        }
    }
    Ok(filters)
}

fn figures(t: &Tally) -> Value {
    json!({
        "uniqueVisitors": t.visitors,
        "totalPageviews": t.pageviews,
        "totalSessions": t.sessions,
        "bounceRate": t.bounce_rate(),
        "avgSessionDuration": t.avg_duration(),
        "viewsPerSession": t.views_per_session(),
    })
}

/// `main`, with the previous period when `compare` is set.
pub fn main(conn: &Connection, req: &Request, compare: bool) -> Result<Value> {
    let filters = resolve(conn, &req.filters)?;
    let mut data = figures(&engine::main(conn, req.site, &req.period, &filters)?);
    if compare {
        let previous = engine::main(conn, req.site, &req.period.previous(), &filters)?;
        data["previous"] = figures(&previous);
    }
    Ok(data)
}

/// The interval of a time series: checked against the period. Pushes the problem.
pub fn interval(raw: Option<&str>, period: &Period, errors: &mut Vec<String>) -> Interval {
    let interval = match raw {
        None => period.default_interval(),
        Some(raw) => Interval::parse(raw).unwrap_or_else(|| {
            errors.push("interval: must be one of hour, day, week, month".into());
            Interval::Day
        }),
    };
    if interval == Interval::Hour && period.days() > MAX_HOURLY_DAYS {
        errors.push(format!(
            "interval: hour needs a range of at most {MAX_HOURLY_DAYS} days"
        ));
    }
    interval
}

pub fn timeseries(conn: &Connection, req: &Request, interval: Interval) -> Result<Value> {
    let filters = resolve(conn, &req.filters)?;
    let buckets = req.period.buckets(interval);
    let starts: Vec<i64> = buckets.iter().map(|b| b.1).collect();
    let tallies = engine::timeseries(conn, req.site, &req.period, &filters, &starts)?;
    Ok(Value::Array(
        buckets
            .into_iter()
            .zip(tallies)
            .map(|((date, _), t)| {
                json!({
                    "date": date,
                    "uniqueVisitors": t.visitors,
                    "totalPageviews": t.pageviews,
                    "totalSessions": t.sessions,
                    "bounceRate": t.bounce_rate(),
                    "avgSessionDuration": t.avg_duration(),
                })
            })
            .collect(),
    ))
}

/// `event-props`' own parameters.
pub struct EventProp {
    pub event: String,
    pub prop: String,
}

/// One page of a breakdown, and whether more rows follow.
pub fn breakdown(
    conn: &Connection,
    req: &Request,
    name: &str,
    event_prop: Option<&EventProp>,
    limit: i64,
    page: i64,
) -> Result<(Value, bool)> {
    let filters = resolve(conn, &req.filters)?;
    let group = match event_prop {
        Some(ep) => Group::EventProp {
            name: engine::string_number(conn, &ep.event)?,
            prop: ep.prop.clone(),
        },
        None => breakdown_group(name).unwrap_or(Group::Pages),
    };
    let (rows, all_visitors) = engine::breakdown(conn, req.site, &req.period, &filters, &group)?;
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
    let skip = usize::try_from((page - 1).saturating_mul(limit)).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(10);
    let more = named.len() > skip.saturating_add(take);
    let data = named
        .into_iter()
        .skip(skip)
        .take(take)
        .map(|(value, r)| {
            let percentage = engine::percent(r.visitors, all_visitors);
            match &group {
                Group::Pages | Group::Hostnames => json!({
                    "value": value, "uniqueVisitors": r.visitors,
                    "totalPageviews": r.count, "percentage": percentage,
                }),
                Group::Sessions(_) => json!({
                    "value": value, "uniqueVisitors": r.visitors, "totalSessions": r.count,
                    "bounceRate": engine::percent(r.bounces, r.count), "percentage": percentage,
                }),
                Group::Events | Group::EventProp { .. } => json!({
                    "value": value, "totalEvents": r.count,
                    "uniqueVisitors": r.visitors, "percentage": percentage,
                }),
            }
        })
        .collect();
    Ok((Value::Array(data), more))
}

/// `active-users` on `date`: distinct visitors with a counted pageview on that day, in the 7
/// and in the 30 days ending on it.
pub fn active_users(
    conn: &Connection,
    site: i64,
    date: Date,
    tz: &TimeZone,
    given: &[(String, String)],
) -> Result<Value> {
    let filters = resolve(conn, given)?;
    let mut counts = [0u64; 3];
    for (count, days) in counts.iter_mut().zip([1, 7, 30]) {
        let from = date.checked_sub((days - 1).days()).unwrap_or(date);
        let period = Period::new(from, date, tz.clone());
        *count = engine::main(conn, site, &period, &filters)?.visitors;
    }
    Ok(json!({
        "date": date.to_string(),
        "dau": counts[0],
        "wau": counts[1],
        "mau": counts[2],
    }))
}

/// The number of a website in the activity tables.
pub fn site_number(conn: &Connection, website_id: &str) -> Result<Option<i64>> {
    match conn
        .prepare_cached("SELECT num FROM sites WHERE website_id = ?1")?
        .query_row([website_id], |r| r.get(0))
    {
        Ok(n) => Ok(Some(n)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
