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

/// `s` without control characters (Unicode category Cc: C0, DEL and C1). Tracking data comes
/// from anyone who knows a website id, so such characters are removed rather than refused: the
/// event is kept, and no NUL, line break or escape sequence reaches a stored value, a log line
/// or an export (docs/api.md, "Tracking data").
pub fn strip_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        std::borrow::Cow::Owned(s.chars().filter(|c| !c.is_control()).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// At most `max` characters of `s`, cut on a character boundary.
pub(crate) fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::{strip_controls, truncate_chars};

    #[test]
    fn control_characters_are_removed() {
        assert_eq!(
            strip_controls("Sign\u{0}up\r\n\t\u{1b}[31m\u{7f}\u{85}!"),
            "Signup[31m!"
        );
        assert!(matches!(
            strip_controls("plain é"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

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
