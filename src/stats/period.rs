//! Local days and the buckets of a time series, in a website's time zone (SPEC 2.6).
//!
//! A range of dates `from..=to` is the UTC interval from local midnight of `from` to local
//! midnight of the day after `to`, so a daylight-saving day lasts 23 or 25 hours and a
//! half-hour zone's days start at :30 UTC. The zone rules come from jiff's embedded tz
//! database, never from the host.

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// The longest range a query may ask for, in days.
pub const MAX_DAYS: i64 = 3660;
/// The longest range of an hourly time series, in days.
pub const MAX_HOURLY_DAYS: i64 = 31;

/// Days `from..=to` of one zone, as UTC milliseconds `[start, end)`.
#[derive(Clone, Debug)]
pub struct Period {
    pub from: Date,
    pub to: Date,
    pub tz: TimeZone,
    pub start: i64,
    pub end: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    Week,
    Month,
}

impl Interval {
    pub fn parse(s: &str) -> Option<Interval> {
        match s {
            "hour" => Some(Interval::Hour),
            "day" => Some(Interval::Day),
            "week" => Some(Interval::Week),
            "month" => Some(Interval::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Local midnight of `date` (the first instant of the day when midnight itself is skipped).
pub fn day_start(date: Date, tz: &TimeZone) -> i64 {
    date.to_zoned(tz.clone())
        .and_then(|z| z.start_of_day())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or_else(|_| edge_ms(date.to_datetime(jiff::civil::Time::midnight()), tz))
}

/// The offset of `tz` in seconds at the far end of time on `ms`'s side.
fn edge_offset(tz: &TimeZone, ms: i64) -> i64 {
    let edge = if ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    };
    i64::from(tz.to_offset(edge).seconds())
}

/// Milliseconds since the epoch of a local date-time that lies past the instants jiff can
/// hold (the last hours of 9999-12-31 east of UTC), at the zone's offset there.
fn edge_ms(local: jiff::civil::DateTime, tz: &TimeZone) -> i64 {
    let days = i64::from((local.date() - jiff::civil::date(1970, 1, 1)).get_days());
    let time = local.time();
    let naive = days * DAY_MS
        + i64::from(time.hour()) * HOUR_MS
        + i64::from(time.minute()) * 60_000
        + i64::from(time.second()) * 1000;
    naive - edge_offset(tz, naive) * 1000
}

/// An hour bucket's label (local time with offset) at `ms`, also past jiff's last instant.
fn hour_label(ms: i64, tz: &TimeZone) -> String {
    if let Ok(ts) = jiff::Timestamp::from_millisecond(ms) {
        return ts
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string();
    }
    let offset = edge_offset(tz, ms);
    let local = ms + offset * 1000;
    let date = jiff::civil::date(1970, 1, 1)
        .checked_add(jiff::Span::new().days(local.div_euclid(DAY_MS)))
        .unwrap_or(Date::MAX);
    let secs = local.rem_euclid(DAY_MS) / 1000;
    let sign = if offset < 0 { '-' } else { '+' };
    let off = offset.abs();
    format!(
        "{date}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        off / 3600,
        off / 60 % 60
    )
}

/// Today's date in `tz`.
pub fn today(tz: &TimeZone, now_ms: i64) -> Date {
    jiff::Timestamp::from_millisecond(now_ms)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
        .date()
}

impl Period {
    pub fn new(from: Date, to: Date, tz: TimeZone) -> Period {
        let start = day_start(from, &tz);
        let end = match to.tomorrow() {
            Ok(next) => day_start(next, &tz),
            Err(_) => day_start(to, &tz) + DAY_MS,
        };
        Period {
            from,
            to,
            tz,
            start,
            end,
        }
    }

    /// Number of days in the period.
    pub fn days(&self) -> i64 {
        i64::from((self.to - self.from).get_days()) + 1
    }

    /// The equally long period just before this one.
    pub fn previous(&self) -> Period {
        let days = self.days();
        let to = self.from.yesterday().unwrap_or(self.from);
        let from = to
            .checked_sub(((days - 1) as i32).days())
            .unwrap_or(Date::MIN);
        Period::new(from, to, self.tz.clone())
    }

    /// The interval a time series uses when none is asked for: hours for at most two days.
    pub fn default_interval(&self) -> Interval {
        if self.days() <= 2 {
            Interval::Hour
        } else {
            Interval::Day
        }
    }

    /// The buckets of a time series over this period: each one's label and first millisecond,
    /// in order. A bucket ends where the next begins, the last one at `self.end`. Week and
    /// month buckets are labelled with their Monday or 1st even when that lies before `from`,
    /// but hold only the period's data.
    pub fn buckets(&self, interval: Interval) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        match interval {
            Interval::Hour => {
                let mut at = self.start;
                while at < self.end {
                    out.push((hour_label(at, &self.tz), at));
                    // Local hours follow the zone's changes; past jiff's last instant, whole hours.
                    at = jiff::Timestamp::from_millisecond(at)
                        .ok()
                        .and_then(|ts| ts.to_zoned(self.tz.clone()).checked_add(1.hour()).ok())
                        .map_or(at + HOUR_MS, |next| next.timestamp().as_millisecond());
                }
            }
            Interval::Day | Interval::Week | Interval::Month => {
                let first = match interval {
                    Interval::Week => {
                        let back = self.from.weekday().to_monday_zero_offset();
                        self.from
                            .checked_sub(i32::from(back).days())
                            .unwrap_or(self.from)
                    }
                    Interval::Month => self.from.first_of_month(),
                    _ => self.from,
                };
                let step = match interval {
                    Interval::Week => 1.week(),
                    Interval::Month => 1.month(),
                    _ => 1.day(),
                };
                let mut date = first;
                while date <= self.to {
                    let start = day_start(date, &self.tz).max(self.start);
                    out.push((date.to_string(), start));
                    match date.checked_add(step) {
                        Ok(next) => date = next,
                        Err(_) => break,
                    }
                }
            }
        }
        out
    }
}

/// Which of `starts` (ascending bucket starts) holds `at`; `None` before the first.
pub fn bucket_of(starts: &[i64], at: i64) -> Option<usize> {
    starts.partition_point(|&s| s <= at).checked_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn iso(ms: i64) -> String {
        crate::time::iso_ms(ms)
    }

    #[test]
    fn new_york_days_have_23_and_25_hours() {
        let spring = Period::new(date(2025, 3, 9), date(2025, 3, 9), tz("America/New_York"));
        assert_eq!(iso(spring.start), "2025-03-09T05:00:00.000Z");
        assert_eq!(spring.end - spring.start, 23 * 3_600_000);
        let hours = spring.buckets(Interval::Hour);
        assert_eq!(hours.len(), 23);
        assert_eq!(hours[1].0, "2025-03-09T01:00:00-05:00");
        assert_eq!(hours[2].0, "2025-03-09T03:00:00-04:00");

        let autumn = Period::new(date(2025, 11, 2), date(2025, 11, 2), tz("America/New_York"));
        let hours = autumn.buckets(Interval::Hour);
        assert_eq!(hours.len(), 25);
        assert_eq!(hours[1].0, "2025-11-02T01:00:00-04:00");
        assert_eq!(hours[2].0, "2025-11-02T01:00:00-05:00");
    }

    #[test]
    fn kolkata_days_start_at_half_past_utc() {
        let p = Period::new(date(2025, 6, 1), date(2025, 6, 2), tz("Asia/Kolkata"));
        assert_eq!(iso(p.start), "2025-05-31T18:30:00.000Z");
        let days = p.buckets(Interval::Day);
        assert_eq!(days.len(), 2);
        assert_eq!(iso(days[1].1), "2025-06-01T18:30:00.000Z");
        let hours = p.buckets(Interval::Hour);
        assert_eq!(hours.len(), 48);
        assert_eq!(hours[0].0, "2025-06-01T00:00:00+05:30");
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let p = Period::new(date(2025, 1, 15), date(2025, 2, 3), TimeZone::UTC);
        let weeks: Vec<String> = p.buckets(Interval::Week).into_iter().map(|b| b.0).collect();
        assert_eq!(
            weeks,
            ["2025-01-13", "2025-01-20", "2025-01-27", "2025-02-03"]
        );
        assert_eq!(p.buckets(Interval::Week)[0].1, p.start);
        let months: Vec<String> = p
            .buckets(Interval::Month)
            .into_iter()
            .map(|b| b.0)
            .collect();
        assert_eq!(months, ["2025-01-01", "2025-02-01"]);
    }

    #[test]
    fn previous_period_is_as_long_and_just_before() {
        let p = Period::new(date(2025, 3, 1), date(2025, 3, 31), TimeZone::UTC);
        let prev = p.previous();
        assert_eq!((prev.from, prev.to), (date(2025, 1, 29), date(2025, 2, 28)));
        assert_eq!(prev.end, p.start);
    }

    #[test]
    fn the_last_day_of_the_calendar_has_its_hours_in_every_zone() {
        for (zone, offset) in [
            ("UTC", "+00:00"),
            ("Asia/Tokyo", "+09:00"),
            ("America/New_York", "-05:00"),
        ] {
            let p = Period::new(date(9999, 12, 31), date(9999, 12, 31), tz(zone));
            let hours = p.buckets(Interval::Hour);
            assert_eq!(hours.len(), 24, "{zone}");
            assert_eq!(hours[0].0, format!("9999-12-31T00:00:00{offset}"), "{zone}");
            assert_eq!(
                hours[23].0,
                format!("9999-12-31T23:00:00{offset}"),
                "{zone}"
            );
            assert!(
                hours.windows(2).all(|w| w[1].1 - w[0].1 == 3_600_000),
                "{zone}"
            );
            assert_eq!(p.end - p.start, 86_400_000, "{zone}");
            assert_eq!(p.buckets(Interval::Day).len(), 1);
        }
    }

    #[test]
    fn bucket_lookup() {
        let starts = [10, 20, 30];
        assert_eq!(bucket_of(&starts, 9), None);
        assert_eq!(bucket_of(&starts, 10), Some(0));
        assert_eq!(bucket_of(&starts, 29), Some(1));
        assert_eq!(bucket_of(&starts, 99), Some(2));
    }
}
