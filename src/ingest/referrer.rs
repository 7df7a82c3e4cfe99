//! What an event keeps of its page URL and referrer (SPEC 3.2): the hostname, the path, the
//! UTM parameters, the referrer's host (or direct), and whether that host is referrer spam.
//!
//! Choices:
//! - A hostname is stored as the browser sent it, lower-cased and without a trailing dot;
//!   `www.` is kept, so `www.example.com` and `example.com` stay apart in the `hostnames`
//!   report. IPv6 addresses are written without brackets, as website domains are.
//! - A referrer host loses its `www.` (`www.google.com` and `google.com` are one source).
//! - `ref` and `source` query parameters (as Product Hunt or newsletters send them) stand in
//!   for `utm_source` when that is absent: nothing else in this codebase reads them.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::LazyLock;

use url::{Host, Url};

use super::truncate_chars;

/// Longest path stored; the rest is cut off.
pub const MAX_PATH_LEN: usize = 2_000;
/// Only this much of a referrer is read: its host is at the start.
pub const MAX_REFERRER_LEN: usize = 2_000;
/// Longest UTM value stored; the rest is cut off.
pub const MAX_UTM_LEN: usize = 200;
/// Longest host name DNS allows; anything longer is not a readable host.
const MAX_HOST_LEN: usize = 253;

/// The UTM parameters of a page URL, trimmed, `None` when absent or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub term: Option<String>,
    pub content: Option<String>,
}

/// The referrer's lowercase host without `www.`, or `None` for direct traffic: no referrer,
/// a self-referral (the site's domain or a subdomain of it), or nothing readable as a host.
/// Any scheme is read (`android-app://com.google.android.gm/` → `com.google.android.gm`), and a
/// scheme-less `news.example.org/item` is read as a host and path.
pub fn referrer_host(referrer: Option<&str>, site_domain: &str) -> Option<String> {
    let raw = referrer?.trim();
    if raw.is_empty() {
        return None;
    }
    let host = read_host(truncate_chars(raw, MAX_REFERRER_LEN))?;
    let host = match host.strip_prefix("www.") {
        Some(rest) if !rest.is_empty() => rest.to_string(),
        _ => host,
    };
    if host_matches(&host, site_domain) {
        return None;
    }
    Some(host)
}

fn read_host(raw: &str) -> Option<String> {
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) if looks_like_bare_host(raw) => {
            Url::parse(&format!("https://{raw}")).ok()?
        }
        Err(_) => return None,
    };
    let host = url.host()?;
    if !matches!(host, Host::Domain(_)) {
        return Some(host_text(host));
    }
    let host = host_text(host);
    // Opaque hosts of other schemes may hold anything but a name; keep only what reads as one.
    let readable = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    readable.then_some(host)
}

/// `example.org/path` without a scheme: starts like a name and has a dot before any `/?#`.
fn looks_like_bare_host(raw: &str) -> bool {
    let head = raw.split(['/', '?', '#']).next().unwrap_or_default();
    raw.starts_with(|c: char| c.is_ascii_alphanumeric())
        && head.contains('.')
        && !head.contains(char::is_whitespace)
}

/// The `utm_*` parameters of a page URL (names compared ignoring ASCII case; the first
/// non-empty value of each wins), with `ref` or `source` as the source when `utm_source`
/// is not given.
pub fn utm_from_url(url: &Url) -> Utm {
    let mut utm = Utm::default();
    let mut fallback_source = None;
    for (key, value) in url.query_pairs() {
        let slot = match key.to_ascii_lowercase().as_str() {
            "utm_source" => &mut utm.source,
            "utm_medium" => &mut utm.medium,
            "utm_campaign" => &mut utm.campaign,
            "utm_term" => &mut utm.term,
            "utm_content" => &mut utm.content,
            "ref" | "source" => &mut fallback_source,
            _ => continue,
        };
        if slot.is_none() {
            *slot = utm_value(&value);
        }
    }
    if utm.source.is_none() {
        utm.source = fallback_source;
    }
    utm
}

fn utm_value(raw: &str) -> Option<String> {
    let value = super::strip_controls(raw);
    let value = value.trim();
    (!value.is_empty()).then(|| truncate_chars(value, MAX_UTM_LEN).trim_end().to_string())
}

static SPAM_DOMAINS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("referrer-spam.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// True when the host is on the embedded referrer-spam list (`referrer-spam.txt`), itself or
/// as a subdomain of a listed domain.
pub fn is_spam(referrer_host: &str) -> bool {
    let host = referrer_host
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let mut rest = host.as_str();
    loop {
        if SPAM_DOMAINS.contains(rest) {
            return true;
        }
        match rest.split_once('.') {
            Some((_, parent)) => rest = parent,
            None => return false,
        }
    }
}

/// The URL's path without query and fragment, as sent (percent-encoding kept), at most
/// [`MAX_PATH_LEN`] characters.
pub fn path_of(url: &Url) -> String {
    let path = url.path();
    let path = if path.is_empty() { "/" } else { path };
    truncate_chars(path, MAX_PATH_LEN).to_string()
}

/// The URL's host, lowercase, without a trailing dot, `www.` kept; IPv6 without brackets.
pub fn hostname_of(url: &Url) -> Option<String> {
    let host = host_text(url.host()?);
    (!host.is_empty()).then_some(host)
}

/// A host as stored: a name lowercase without its trailing dot, an IP address as written by
/// `std` (IPv6 without brackets, as website domains are kept).
fn host_text(host: Host<&str>) -> String {
    match host {
        Host::Domain(d) => d.trim_end_matches('.').to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    }
}

/// The host is the site's domain or a subdomain of it (`blog.example.com` and
/// `www.example.com` match `example.com`; `notexample.com` does not). Case, a trailing dot and
/// IPv6 brackets are ignored, and a domain written with `www.` stands for its apex. For
/// `localhost` and IP literals only the same host matches.
pub fn host_matches(host: &str, site_domain: &str) -> bool {
    let host = bare_host(host);
    let site = bare_host(site_domain);
    let site = match site.get(..4) {
        Some(www) if www.eq_ignore_ascii_case("www.") && site.len() > 4 => &site[4..],
        _ => site,
    };
    if host.is_empty() || site.is_empty() {
        return false;
    }
    if host.eq_ignore_ascii_case(site) {
        return true;
    }
    if site.eq_ignore_ascii_case("localhost") || site.parse::<IpAddr>().is_ok() {
        return false;
    }
    let Some(dot) = host.len().checked_sub(site.len() + 1) else {
        return false;
    };
    host.as_bytes()[dot] == b'.'
        && host
            .get(dot + 1..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(site))
}

fn bare_host(raw: &str) -> &str {
    let h = raw.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(h);
    h.trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn referrer(r: &str) -> Option<String> {
        referrer_host(Some(r), "example.com")
    }

    #[test]
    fn referrer_hosts() {
        for (raw, want) in [
            ("https://www.google.com/", Some("google.com")),
            ("https://Google.COM/search?q=x", Some("google.com")),
            (
                "http://news.ycombinator.com/item?id=1",
                Some("news.ycombinator.com"),
            ),
            ("https://t.co/abc", Some("t.co")),
            ("https://duckduckgo.com.", Some("duckduckgo.com")),
            ("https://user:pw@www.bing.com:8443/x", Some("bing.com")),
            (
                "android-app://com.google.android.gm/",
                Some("com.google.android.gm"),
            ),
            ("android-app://com.Slack/", Some("com.slack")),
            ("ios-app://1234/x", Some("1234")),
            ("news.example.org/item/1", Some("news.example.org")),
            ("http://192.0.2.7/page", Some("192.0.2.7")),
            ("http://[2001:db8::1]/", Some("2001:db8::1")),
            ("https://www.", Some("www")),
            ("", None),
            ("   ", None),
            ("about:blank", None),
            ("data:text/html,hello", None),
            ("javascript:alert(1)", None),
            ("file:///home/me/page.html", None),
            ("/relative/path", None),
            ("not a url", None),
            ("https://", None),
            ("http://exa mple.com/", None),
        ] {
            assert_eq!(referrer(raw).as_deref(), want, "{raw:?}");
        }
        assert_eq!(referrer_host(None, "example.com"), None);
    }

    #[test]
    fn self_referrals_are_direct() {
        for raw in [
            "https://example.com/",
            "https://www.example.com/pricing",
            "https://blog.example.com/post",
            "HTTPS://EXAMPLE.COM/",
            "https://example.com./",
        ] {
            assert_eq!(referrer(raw), None, "{raw}");
        }
        assert_eq!(
            referrer("https://notexample.com/").as_deref(),
            Some("notexample.com")
        );
        assert_eq!(
            referrer("https://example.com.evil.net/").as_deref(),
            Some("example.com.evil.net")
        );
        assert_eq!(
            referrer_host(Some("http://localhost:3000/"), "localhost"),
            None
        );
        assert_eq!(
            referrer_host(Some("http://app.localhost/"), "localhost").as_deref(),
            Some("app.localhost")
        );
    }

    #[test]
    fn long_referrers_keep_their_host() {
        let long = format!("https://www.reddit.com/r/rust/?q={}", "a".repeat(5_000));
        assert_eq!(referrer(&long).as_deref(), Some("reddit.com"));
        let long_host = format!("https://{}.com/", "a".repeat(3_000));
        assert_eq!(referrer(&long_host), None);
        let junk = "%".repeat(10_000);
        assert_eq!(referrer(&junk), None);
    }

    #[test]
    fn odd_referrers_never_panic() {
        let odd = [
            "\u{0}",
            "http://\u{0}/",
            "https://bücher.example/",
            "https://xn--/",
            "https://例え.テスト/パス",
            "http://[::1",
            "http://[]/",
            "http://:80/",
            "http://@/",
            "http://%zz/",
            "android-app://",
            "android-app://%E2%9C%93/",
            "\u{feff}https://example.org/",
            "https://www.example.org\u{202e}/",
            "http://1.2.3.4.5/",
            "http://0x7f.1/",
            "💩://💩/💩",
            "ws://chat.example.net/socket",
            "mailto:someone@example.org",
            "https://a..b/",
            "//cdn.example.net/x",
            "https://www.www.example.org/",
        ];
        for raw in odd {
            if let Some(host) = referrer(raw) {
                assert!(!host.is_empty(), "{raw:?}");
                assert!(host.len() <= MAX_HOST_LEN, "{raw:?}");
                assert_eq!(host, host.to_lowercase(), "{raw:?}");
            }
        }
        assert_eq!(
            referrer("https://bücher.example/").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(
            referrer("https://www.www.example.org/").as_deref(),
            Some("www.example.org")
        );
        // Every prefix of a tricky string, cut anywhere on a char boundary.
        let tricky = "android-app://Com.ex-ample_1.app:99/é?x=[]#\u{0}";
        for (i, _) in tricky.char_indices() {
            let _ = referrer(&tricky[..i]);
        }
    }

    #[test]
    fn utm_parameters() {
        let u = url(
            "https://example.com/?utm_source=Newsletter&utm_medium=email&utm_campaign=spring+sale&utm_term=%20shoes%20&utm_content=",
        );
        assert_eq!(
            utm_from_url(&u),
            Utm {
                source: Some("Newsletter".into()),
                medium: Some("email".into()),
                campaign: Some("spring sale".into()),
                term: Some("shoes".into()),
                content: None,
            }
        );
        assert_eq!(utm_from_url(&url("https://example.com/a")), Utm::default());
    }

    #[test]
    fn utm_first_non_empty_value_wins_and_names_ignore_case() {
        let u = url("https://example.com/?utm_source=&UTM_SOURCE=first&utm_source=second");
        assert_eq!(utm_from_url(&u).source.as_deref(), Some("first"));
    }

    #[test]
    fn ref_and_source_stand_in_for_utm_source() {
        let with_ref = url("https://example.com/?ref=producthunt");
        assert_eq!(
            utm_from_url(&with_ref).source.as_deref(),
            Some("producthunt")
        );
        let with_source = url("https://example.com/?source=newsletter");
        assert_eq!(
            utm_from_url(&with_source).source.as_deref(),
            Some("newsletter")
        );
        let both = url("https://example.com/?ref=producthunt&utm_source=twitter");
        assert_eq!(utm_from_url(&both).source.as_deref(), Some("twitter"));
    }

    #[test]
    fn utm_values_are_capped_on_a_char_boundary() {
        let long = "é".repeat(300);
        let u = url(&format!("https://example.com/?utm_campaign={long}"));
        let campaign = utm_from_url(&u).campaign.unwrap();
        assert_eq!(campaign.chars().count(), MAX_UTM_LEN);
        assert_eq!(campaign, "é".repeat(MAX_UTM_LEN));
    }

    #[test]
    fn spam_list() {
        assert!(SPAM_DOMAINS.len() >= 100, "{}", SPAM_DOMAINS.len());
        assert!(is_spam("semalt.com"));
        assert!(is_spam("SEMALT.com"));
        assert!(is_spam("a.b.semalt.com"));
        assert!(is_spam("darodar.com."));
        assert!(is_spam("buttons-for-website.com"));
        assert!(!is_spam("notsemalt.com"));
        assert!(!is_spam("semalt.com.example.org"));
        assert!(!is_spam("google.com"));
        assert!(!is_spam("com"));
        assert!(!is_spam(""));
        for domain in SPAM_DOMAINS.iter() {
            assert_eq!(
                *domain,
                domain.to_ascii_lowercase(),
                "list entries are lowercase"
            );
            assert!(domain.contains('.'), "{domain}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(path_of(&url("https://example.com")), "/");
        assert_eq!(path_of(&url("https://example.com/a/b?q=1#top")), "/a/b");
        assert_eq!(
            path_of(&url("https://example.com/caf%C3%A9/")),
            "/caf%C3%A9/"
        );
        assert_eq!(path_of(&url("https://example.com/café")), "/caf%C3%A9");
        let long = url(&format!("https://example.com/{}", "a".repeat(3_000)));
        assert_eq!(path_of(&long).len(), MAX_PATH_LEN);
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            hostname_of(&url("https://WWW.Example.COM/")).as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            hostname_of(&url("https://example.com./x")).as_deref(),
            Some("example.com")
        );
        assert_eq!(
            hostname_of(&url("http://127.0.0.1:8080/")).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(hostname_of(&url("http://[::1]/")).as_deref(), Some("::1"));
        assert_eq!(
            hostname_of(&url("https://bücher.example/")).as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(hostname_of(&url("file:///tmp/x")), None);
    }

    #[test]
    fn hosts_match_their_domain_and_its_subdomains() {
        for (host, domain, want) in [
            ("example.com", "example.com", true),
            ("blog.example.com", "example.com", true),
            ("www.example.com", "example.com", true),
            ("a.b.example.com", "example.com", true),
            ("EXAMPLE.com.", "example.com", true),
            ("example.com", "www.example.com", true),
            ("notexample.com", "example.com", false),
            ("example.com.evil.net", "example.com", false),
            ("example.co", "example.com", false),
            ("com", "example.com", false),
            ("", "example.com", false),
            ("example.com", "", false),
            ("localhost", "localhost", true),
            ("app.localhost", "localhost", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("1.127.0.0.1", "127.0.0.1", false),
            ("::1", "::1", true),
            ("[::1]", "::1", true),
            ("a.::1", "::1", false),
            ("é.example.com", "example.com", true),
            ("éxample.com", "xample.com", false),
        ] {
            assert_eq!(host_matches(host, domain), want, "{host} vs {domain}");
        }
    }
}
