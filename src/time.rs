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
