//! Wall-clock helpers. Times are stored as milliseconds since the Unix epoch, UTC.

use jiff::Timestamp;

pub fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

/// `2025-01-15T10:30:00.000Z`: the one timestamp format of the API.
pub fn iso_ms(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => String::new(),
    }
}

/// `20250115T103000Z`: for file names.
pub fn file_stamp(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|ts| ts.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_and_z() {
        assert_eq!(iso_ms(1_736_937_000_000), "2025-01-15T10:30:00.000Z");
        assert_eq!(iso_ms(1_736_937_000_123), "2025-01-15T10:30:00.123Z");
        assert_eq!(file_stamp(1_736_937_000_123), "20250115T103000Z");
    }
}

/// The calendar month (UTC) that holds `ms`: its first millisecond and the first of the next.
pub fn month_bounds_utc(ms: i64) -> (i64, i64) {
    use jiff::ToSpan;
    use jiff::tz::TimeZone;
    let date = Timestamp::from_millisecond(ms)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(TimeZone::UTC)
        .date()
        .first_of_month();
    let next = date.checked_add(1.month()).unwrap_or(date);
    let start_of = |d: jiff::civil::Date| {
        d.to_zoned(TimeZone::UTC)
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(0)
    };
    (start_of(date), start_of(next))
}

#[cfg(test)]
mod month_tests {
    use super::*;

    #[test]
    fn november_ends_at_the_first_of_december() {
        let (start, end) = month_bounds_utc(1_732_000_000_000); // 2024-11-19
        assert_eq!(iso_ms(start), "2024-11-01T00:00:00.000Z");
        assert_eq!(iso_ms(end), "2024-12-01T00:00:00.000Z");
        let (start, end) = month_bounds_utc(1_735_689_599_999); // 2024-12-31T23:59:59.999Z
        assert_eq!(iso_ms(start), "2024-12-01T00:00:00.000Z");
        assert_eq!(iso_ms(end), "2025-01-01T00:00:00.000Z");
    }
}
