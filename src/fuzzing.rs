//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`, run by `scripts/fuzz.sh`; see
//! "Fuzzing" in docs/operations.md), kept in the library so that `tests/fuzz_corpus.rs`
//! replays the checked-in corpora through the very same code on stable Rust.
//!
//! Each body takes raw bytes, sends them along the path the server gives that kind of input,
//! as far as it goes without a database, and asserts what the code promises of its output.
//! A panic, here or in the code under test, is a finding.

use std::net::IpAddr;
use std::sync::LazyLock;

use serde_json::Value;
use uuid::Uuid;

use crate::ingest::geo::GeoIp;
use crate::ingest::input::{self, Common, MAX_LANGUAGE_CHARS, MAX_NAME_CHARS, MAX_PROPS, Page};
use crate::ingest::pipeline::{self, COLLECT_LIMIT, IMPORT_LIMIT, MAX_IMPORT_EVENTS};
use crate::ingest::referrer::{self, MAX_PATH_LEN, MAX_UTM_LEN, Utm};
use crate::ingest::store::Kind;
use crate::ingest::{bots, screen, useragent, visitor};
use crate::server::api::query;
use crate::stats::dimension::Dimension;
use crate::stats::period;

/// The body of a fuzz target: any bytes in, a panic on a finding.
pub type Body = fn(&[u8]);

/// The fuzz targets by name: the folder names under `fuzz/corpus/` and the binaries of the
/// fuzz crate.
pub const TARGETS: &[(&str, Body)] = &[
    ("collect_body", collect_body),
    ("import_body", import_body),
    ("url_referrer", url_referrer),
    ("user_agent", user_agent),
    ("stats_query", stats_query),
];

/// The website every body checks pages against.
pub const DOMAIN: &str = "example.com";
/// Its id (any fixed UUID does: it only salts visitor ids).
pub const SITE: Uuid = Uuid::from_u128(0x6f1c_2a4e_8b3d_4f7a_9c0e_5d2b_1a3f_4e6c);
/// The server's clock for the import's "not in the future" check and the statistics' default
/// period: 2026-01-15T12:00:00Z, fixed so that a finding replays the same way.
pub const NOW_MS: i64 = 1_768_478_400_000;
/// The website's time zone for the statistics (one with daylight saving).
pub const SITE_ZONE: &str = "Europe/Berlin";

/// Every query parameter of the statistics routes (each route takes a subset of these).
fn stats_params() -> Vec<&'static str> {
    let mut names = vec![
        "from", "to", "timezone", "date", "compare", "interval", "limit", "page", "prop",
    ];
    names.extend(query::filter_params());
    names
}

/// The embedded country database, opened once per process rather than per input.
static GEO: LazyLock<GeoIp> = LazyLock::new(GeoIp::embedded);

/// A `POST /api/collect` body: read and validated as the server does, then the page checked
/// against [`DOMAIN`] (host, referrer spam) and read (path, UTM parameters, referrer host).
pub fn collect_body(data: &[u8]) {
    // The edge refuses longer bodies before anything reads them.
    if data.len() > COLLECT_LIMIT {
        return;
    }
    let Ok((common, _website, visitor_id)) = pipeline::read_collect(data) else {
        return;
    };
    check_common(&common);
    if let Some(id) = visitor_id.as_deref()
        && let Some(uuid) = visitor::parse_cookie_visitor(id)
    {
        assert!(!uuid.is_nil() && !uuid.is_max());
    }
    if let Some(class) = screen::screen_class(common.screen_width) {
        assert!(screen::is_class(class));
    }
    if let Ok(page) = input::page(&common, DOMAIN) {
        check_page(&page, DOMAIN);
        let attrs = page.attrs(None, None, None, None, common.language.clone(), None);
        assert_eq!(attrs.hostname.as_deref(), Some(page.hostname.as_str()));
    }
}

/// A `POST /websites/{id}/events` body: read as the server does, then each event through the
/// checks that need no database ([`pipeline::check_import`]) and the lookups that follow
/// (User-Agent, country of the address, screen class).
pub fn import_body(data: &[u8]) {
    if data.len() > IMPORT_LIMIT {
        return;
    }
    let Ok(events) = pipeline::read_import(data) else {
        return;
    };
    assert!((1..=MAX_IMPORT_EVENTS).contains(&events.len()));
    for (index, event) in events.iter().enumerate() {
        let checked = match pipeline::check_import(&SITE, DOMAIN, NOW_MS, index, event) {
            Ok(checked) => checked,
            Err(refusal) => {
                assert!(!refusal.into_reason().is_empty());
                continue;
            }
        };
        check_common(&checked.common);
        assert!(
            checked.at <= NOW_MS + 5 * 60 * 1000,
            "a future event passed"
        );
        let given = &checked.given;
        match &given.hostname {
            // An importer's hostname replaces the URL's: a host name like any page's.
            Some(hostname) => {
                assert_eq!(&checked.page.hostname, hostname);
                check_hostname(hostname);
                assert!(referrer::host_matches(hostname, DOMAIN));
            }
            None => check_page(&checked.page, DOMAIN),
        }
        if let Some(country) = &given.country {
            assert!(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()));
        }
        for text in [&given.browser, &given.os].into_iter().flatten() {
            assert!(!text.is_empty() && text.chars().count() <= 100);
            assert_no_controls(text);
        }
        if let Some(class) = &given.screen {
            assert!(screen::is_class(class));
        }
        assert!(
            checked.named.is_some() || (checked.ip.is_some() && checked.user_agent.is_some()),
            "an event with no way to name its visitor passed"
        );
        if let Some(ua) = &checked.user_agent {
            assert!(!bots::is_bot(ua), "a bot passed");
            check_user_agent(&useragent::parse_uncached(ua));
        }
        if let Some(ip) = checked.ip {
            check_country(ip);
        }
        let _ = screen::screen_class(checked.common.screen_width);
    }
}

/// A page URL, a referrer and a site domain, one a line (the referrer and domain lines may be
/// missing; the domain is then [`DOMAIN`]): the page URL check, hostname, path and UTM
/// reading, the referrer's host, the host match and the spam list.
pub fn url_referrer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(3, '\n');
    let raw_url = lines.next().unwrap_or_default();
    let raw_referrer = lines.next();
    let domain = lines
        .next()
        .filter(|d| !d.trim().is_empty())
        .unwrap_or(DOMAIN);
    if let Ok(url) = input::page_url(raw_url) {
        assert!(matches!(url.scheme(), "http" | "https"));
        let hostname = referrer::hostname_of(&url).expect("page_url promises a host");
        check_hostname(&hostname);
        check_path(&referrer::path_of(&url));
        check_utm(&referrer::utm_from_url(&url));
        assert_eq!(
            referrer::host_matches(&hostname, domain),
            referrer::host_matches(&hostname.to_ascii_uppercase(), domain),
            "host matching must ignore case"
        );
    }
    if let Some(host) = referrer::referrer_host(raw_referrer, domain) {
        check_referrer_host(&host, domain);
    }
    // Raw text on both sides: the comparison and the spam list take anything.
    let _ = referrer::host_matches(raw_url, raw_referrer.unwrap_or_default());
    for raw in [Some(raw_url), raw_referrer].into_iter().flatten() {
        assert_eq!(
            referrer::is_spam(raw),
            referrer::is_spam(&raw.to_ascii_uppercase()),
            "the spam list must ignore case"
        );
    }
}

/// A User-Agent header: what is kept of it (browser, OS, device class) and whether it is a bot.
pub fn user_agent(data: &[u8]) {
    // As the collect handler reads the header.
    let ua = String::from_utf8_lossy(data);
    check_user_agent(&useragent::parse_uncached(&ua));
    let _ = useragent::device_class(&ua);
    let bot = bots::is_bot(&ua);
    if ua.trim().is_empty() {
        assert!(bot, "an empty User-Agent is a bot");
    }
    assert_eq!(
        bot,
        bots::is_bot(&ua.to_ascii_uppercase()),
        "bot detection must ignore case"
    );
}

/// The query string of a statistics request: split as the API does, then the period, zone,
/// filters and interval checked, and the time-series buckets, the previous period and the
/// answer's `meta` worked out when no problem was found.
pub fn stats_query(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let (pairs, mut errors) = crate::server::api::read_query(&raw, &stats_params());
    let q = query::query(&pairs, SITE_ZONE, NOW_MS, &mut errors);
    let p = &q.period;
    assert!(p.from <= p.to && p.start <= p.end);
    for filter in &q.filters {
        assert!(Dimension::ALL.contains(&filter.dimension) && !filter.value.is_empty());
    }
    if let Some(raw) = query::value(&pairs, "date")
        && let Some(date) = query::parse_date(raw)
    {
        assert_eq!(
            date.to_string(),
            raw,
            "a date reads only in its one spelling"
        );
    }
    let interval = query::interval(&pairs, p, &mut errors);
    let page = query::page(&pairs, &mut errors);
    if !errors.is_empty() {
        // The handlers answer 400 here.
        return;
    }
    assert!((1..=1000).contains(&page.limit) && page.number >= 1);
    assert!(p.days() <= period::MAX_DAYS);
    let buckets = p.buckets(interval);
    for pair in buckets.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "buckets out of order: {pair:?}");
    }
    for (_, start) in &buckets {
        assert!(
            (p.start..=p.end).contains(start),
            "a bucket outside the period"
        );
    }
    match interval {
        period::Interval::Day => assert_eq!(buckets.len() as i64, p.days()),
        period::Interval::Hour => assert!(p.days() <= period::MAX_HOURLY_DAYS),
        _ => assert!(!buckets.is_empty()),
    }
    let previous = p.previous();
    assert!(previous.to < p.from && previous.days() == p.days());
    let meta = query::meta(&q);
    assert_eq!(meta["from"], Value::String(p.from.to_string()));
}

/// Tracking data never keeps a control character (docs/api.md, "Tracking data").
fn assert_no_controls(text: &str) {
    assert!(!text.contains(char::is_control), "{text:?}");
}

/// What [`input::read_common`] promises of an accepted activity.
fn check_common(c: &Common) {
    assert!(matches!(c.url.scheme(), "http" | "https"));
    match c.kind {
        Kind::Event => {
            let name = c.name.as_deref().expect("an event has a name");
            assert!(!name.is_empty() && name == name.trim());
            assert!(name.chars().count() <= MAX_NAME_CHARS);
            assert_no_controls(name);
            if let Some(props) = &c.props {
                let props: Value = serde_json::from_str(props).expect("props are JSON");
                let props = props.as_object().expect("props are an object");
                assert!(!props.is_empty() && props.len() <= MAX_PROPS);
                assert!(props.values().all(Value::is_string));
                for (key, value) in props {
                    assert_no_controls(key);
                    assert_no_controls(value.as_str().unwrap_or_default());
                }
            }
        }
        Kind::Pageview | Kind::Heartbeat => assert!(c.name.is_none() && c.props.is_none()),
    }
    if let Some(language) = &c.language {
        assert!(!language.is_empty() && language.chars().count() <= MAX_LANGUAGE_CHARS);
        assert_no_controls(language);
    }
}

/// What [`input::page`] promises of a kept page.
fn check_page(page: &Page, domain: &str) {
    check_hostname(&page.hostname);
    assert!(referrer::host_matches(&page.hostname, domain));
    check_path(&page.path);
    check_utm(&page.utm);
    if let Some(host) = &page.referrer {
        check_referrer_host(host, domain);
        assert!(!referrer::is_spam(host), "a spam referrer was kept");
    }
}

/// A stored hostname: lowercase, no trailing dot, no brackets, no path.
fn check_hostname(hostname: &str) {
    assert!(!hostname.is_empty());
    assert!(
        !hostname.bytes().any(|b| b.is_ascii_uppercase()),
        "{hostname:?}"
    );
    assert!(
        !hostname.ends_with('.') && !hostname.starts_with('['),
        "{hostname:?}"
    );
    assert!(!hostname.contains(['/', '?', '#']), "{hostname:?}");
    assert!(referrer::host_matches(hostname, hostname), "{hostname:?}");
}

/// A stored path: absolute, without query or fragment, bounded, and printable ASCII (the URL
/// parser percent-encodes everything else).
fn check_path(path: &str) {
    assert!(path.starts_with('/'), "{path:?}");
    assert!(!path.contains(['?', '#']), "{path:?}");
    assert!(path.chars().count() <= MAX_PATH_LEN);
    assert!(path.bytes().all(|b| b.is_ascii_graphic()), "{path:?}");
}

/// Stored UTM values: trimmed, non-empty, bounded.
fn check_utm(utm: &Utm) {
    for value in [
        &utm.source,
        &utm.medium,
        &utm.campaign,
        &utm.term,
        &utm.content,
    ]
    .into_iter()
    .flatten()
    {
        assert!(!value.is_empty() && value == value.trim(), "{value:?}");
        assert!(value.chars().count() <= MAX_UTM_LEN);
        assert_no_controls(value);
    }
}

/// A referrer host as stored: a lowercase name, or an IP address, never the site itself.
fn check_referrer_host(host: &str, domain: &str) {
    assert!(!host.is_empty() && host.len() <= 253, "{host:?}");
    assert!(
        host.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b':')),
        "{host:?}"
    );
    assert!(
        !referrer::host_matches(host, domain),
        "a self-referral kept"
    );
}

/// Browser and OS names as stored: absent or non-empty.
fn check_user_agent(ua: &useragent::UserAgent) {
    for name in [&ua.browser, &ua.os].into_iter().flatten() {
        assert!(!name.is_empty());
    }
}

/// The country of an address: absent or a stored code.
fn check_country(ip: IpAddr) {
    if let Some(code) = GEO.country(ip) {
        assert!(code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()));
    }
}
