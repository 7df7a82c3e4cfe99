//! Ingestion: a collect request becomes a validated, enriched event (SPEC 3.2).
//!
//! The pure steps live here, one module each, with no I/O: what is kept of the User-Agent
//! (`useragent`) and whether it is a bot (`bots`), the page URL and referrer (`referrer`:
//! hostname, path, UTM, referrer host, spam), and the screen class (`screen`).

pub mod bots;
pub mod geo;
pub mod input;
pub mod pipeline;
pub mod referrer;
pub mod screen;
pub mod sites;
pub mod store;
pub mod useragent;
pub mod visitor;

/// At most `max` characters of `s`, cut on a character boundary.
pub(crate) fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_chars;

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("abc", 5), "abc");
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abc", 2), "ab");
        assert_eq!(truncate_chars("éàü", 2), "éà");
        assert_eq!(truncate_chars("", 0), "");
        assert_eq!(truncate_chars("a", 0), "");
    }
}
