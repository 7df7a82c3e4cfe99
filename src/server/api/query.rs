//! The HTTP edge of the statistics: a query string becomes a typed [`Query`] (and a page, an
//! interval, a comparison), with every problem named as `"field: what is wrong"`. The domain
//! (`crate::stats`) takes only the typed values (docs/api.md, "Statistics").

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use crate::stats::dimension::Dimension;
use crate::stats::period::{self, Interval, MAX_DAYS, MAX_HOURLY_DAYS, Period};
use crate::stats::query::{Compare, EventProp, Filter, Op, Page, Query};

/// The pairs of a query string, already checked for unknown and repeated names.
pub type Pairs = [(String, String)];

/// A parameter's value.
pub fn value<'q>(pairs: &'q Pairs, name: &str) -> Option<&'q str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The filter parameters the routes take: each dimension with the operators offered.
pub fn filter_params() -> impl Iterator<Item = &'static str> {
    // Only `is` until the dashboard offers the others (docs/api.md, "Filters").
    Dimension::ALL.into_iter().map(Dimension::param)
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

/// The zone of a request: `timezone=` when given, else the website's.
pub fn zone(pairs: &Pairs, site_zone: &str, errors: &mut Vec<String>) -> (TimeZone, String) {
    match value(pairs, "timezone") {
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

/// The filters given, each with a value.
pub fn filters(pairs: &Pairs, errors: &mut Vec<String>) -> Vec<Filter> {
    let mut out = Vec::new();
    for dimension in Dimension::ALL {
        for op in Op::ALL {
            let key = format!("{}{}", dimension.param(), op.suffix());
            let Some(value) = value(pairs, &key) else {
                continue;
            };
            if value.is_empty() {
                errors.push(format!("{key}: must not be empty"));
            } else {
                out.push(Filter {
                    dimension,
                    op,
                    value: value.to_string(),
                });
            }
        }
    }
    out
}

/// `from`, `to`, `timezone` and the filters of a statistics request.
pub fn query(pairs: &Pairs, site_zone: &str, now_ms: i64, errors: &mut Vec<String>) -> Query {
    let (tz, timezone) = zone(pairs, site_zone, errors);
    let mut date = |name: &str| {
        value(pairs, name).and_then(|raw| {
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
    let filters = filters(pairs, errors);
    Query {
        period: Period::new(from, to.max(from), tz),
        timezone,
        filters,
    }
}

/// What every statistics answer echoes in `meta`.
pub fn meta(q: &Query) -> Map<String, Value> {
    let mut meta = Map::new();
    meta.insert("from".into(), json!(q.period.from.to_string()));
    meta.insert("to".into(), json!(q.period.to.to_string()));
    meta.insert("timezone".into(), json!(q.timezone));
    meta.insert("filters".into(), filters_meta(&q.filters));
    meta
}

pub fn filters_meta(filters: &[Filter]) -> Value {
    Value::Object(filters.iter().map(|f| (f.key(), json!(f.value))).collect())
}

/// `interval`, checked against the period.
pub fn interval(pairs: &Pairs, period: &Period, errors: &mut Vec<String>) -> Interval {
    let interval = match value(pairs, "interval") {
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

/// `compare`.
pub fn compare(pairs: &Pairs, errors: &mut Vec<String>) -> Option<Compare> {
    match value(pairs, "compare") {
        None => None,
        Some("previous") => Some(Compare::Previous),
        Some(_) => {
            errors.push("compare: must be \"previous\"".into());
            None
        }
    }
}

/// `limit` (default 10, 1–1000) and `page` (from 1) of a paginated list.
pub fn page(pairs: &Pairs, errors: &mut Vec<String>) -> Page {
    let mut number = |name: &str, max: u32, message: &str| match value(pairs, name) {
        None => None,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                errors.push(message.to_string());
                None
            }
        },
    };
    let defaults = Page::default();
    Page {
        limit: number(
            "limit",
            1000,
            "limit: must be an integer between 1 and 1000",
        )
        .unwrap_or(defaults.limit),
        number: number(
            "page",
            1_000_000,
            "page: must be an integer between 1 and 1000000",
        )
        .unwrap_or(defaults.number),
    }
}

/// `event` and `prop` of `event-props`, both required. There `event` names what to describe
/// and selects no sessions, so it is taken out of the filters.
pub fn event_prop(pairs: &Pairs, query: &mut Query, errors: &mut Vec<String>) -> EventProp {
    let mut required = |field: &str| {
        let value = value(pairs, field).unwrap_or_default().to_string();
        if value.is_empty() {
            errors.push(format!("{field}: is required"));
        }
        value
    };
    let event = required("event");
    let prop = required("prop");
    query
        .filters
        .retain(|f| !(f.dimension == Dimension::Event && f.op == Op::Is));
    EventProp { event, prop }
}

/// `date` of `active-users` (default today in the zone).
pub fn date(pairs: &Pairs, tz: &TimeZone, now_ms: i64, errors: &mut Vec<String>) -> Date {
    match value(pairs, "date") {
        None => period::today(tz, now_ms),
        Some(raw) => parse_date(raw).unwrap_or_else(|| {
            errors.push("date: must be a date YYYY-MM-DD".into());
            Date::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn every_problem_is_named() {
        let mut errors = Vec::new();
        let q = query(
            &pairs("from=2025-13-01&to=x&timezone=Nowhere&country=&path=/a"),
            "UTC",
            0,
            &mut errors,
        );
        assert_eq!(
            errors,
            [
                "timezone: unknown time zone",
                "from: must be a date YYYY-MM-DD",
                "to: must be a date YYYY-MM-DD",
                "country: must not be empty"
            ]
        );
        assert_eq!(q.filters.len(), 1);
        assert_eq!(q.filters[0].dimension, Dimension::Path);
        let mut errors = Vec::new();
        let p = page(&pairs("limit=0&page=x"), &mut errors);
        assert_eq!(p, Page::default());
        assert_eq!(errors.len(), 2);
    }

    #[test]
    fn dates_read_in_one_spelling_only() {
        assert!(parse_date("2025-01-31").is_some());
        for bad in ["2025-1-31", "2025-02-30", "20250131", " 2025-01-31"] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }
}
