//! User-Agent → browser family, OS family and device class (SPEC 3.2, the `browsers`, `os` and
//! `devices` reports of 2.6).
//!
//! The parser is `ua-parser` (uap-rust, the ua-parser project's own Rust port) fed with the
//! browser and OS rules of uap-core, embedded as `uap-regexes.json` (Apache-2.0, licence in
//! `uap-regexes.LICENSE`). Chosen over `woothee` because uap-core's rules are the ones kept up
//! to date by the community (Samsung Internet, in-app browsers, new Edge/Opera tokens), while
//! woothee's data set has been frozen for years, folds the OS into the device ("iPad", "iPhone")
//! and has no tablet class. uap-core's device rules are not loaded: they name models, not
//! classes, so the class comes from [`device_class`], a few documented token rules.
//!
//! Parsing costs ~15 µs (release) and compiling the rules ~0.2 s once per process, so
//! [`warm_up`] is meant to run at start-up, and a bounded cache ([`CACHE_CAPACITY`] entries)
//! sits in front: the same few User-Agents repeat, and a cached one costs a hash and an `Arc`
//! clone, no allocation.
//!
//! Names are normalised so one family is always one string: mobile variants fold into their
//! browser ("Chrome Mobile iOS" → "Chrome"), Apple's systems are "macOS"/"iOS", Linux
//! distributions are "Linux".
//!
//! To update the rules: take `regexes.yaml` from uap-core (or from the `ua-parser` crate's
//! source, which ships it) and keep only `user_agent_parsers` and `os_parsers`, one parser a
//! line, as JSON.

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};
use ua_parser::{os, user_agent};

use super::truncate_chars;

/// How many distinct User-Agents the parse cache keeps.
pub const CACHE_CAPACITY: usize = 10_000;

/// Only this many characters of a User-Agent are read (and used as the cache key): real ones are
/// well under it, and a longer one would only cost regex time and cache memory.
pub const MAX_USER_AGENT_LEN: usize = 1_024;

/// The device class of SPEC 2.6 (`devices`: `desktop`, `mobile`, `tablet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
}

impl Device {
    pub const ALL: [Device; 3] = [Device::Desktop, Device::Mobile, Device::Tablet];

    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
        }
    }

    /// The class named exactly as [`Device::as_str`] spells it (for importers, SPEC 3.5).
    pub fn from_name(name: &str) -> Option<Device> {
        Device::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is kept of a User-Agent: never the string itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserAgent {
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device: Device,
}

/// The compiled uap-core rules. Embedded data, checked by the tests, so a failure here is a
/// build defect rather than bad input.
struct Rules {
    browsers: user_agent::Extractor<'static>,
    systems: os::Extractor<'static>,
}

#[derive(Deserialize)]
struct RuleSet {
    user_agent_parsers: Vec<user_agent::Parser<'static>>,
    os_parsers: Vec<os::Parser<'static>>,
}

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    let set: RuleSet = serde_json::from_str(include_str!("uap-regexes.json"))
        .expect("embedded uap-regexes.json is valid JSON");
    let browsers = user_agent::Builder::new()
        .push_all(set.user_agent_parsers)
        .expect("embedded browser rules parse")
        .build()
        .expect("embedded browser rules compile");
    let systems = os::Builder::new()
        .push_all(set.os_parsers)
        .expect("embedded OS rules parse")
        .build()
        .expect("embedded OS rules compile");
    Rules { browsers, systems }
});

static CACHE: LazyLock<quick_cache::sync::Cache<Box<str>, Arc<UserAgent>>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(CACHE_CAPACITY));

/// Compiles the rules now, so that the first tracked request does not pay for it.
pub fn warm_up() {
    LazyLock::force(&RULES);
    LazyLock::force(&CACHE);
}

/// Browser, OS and device class of a User-Agent, from the cache when it was seen recently.
pub fn parse(user_agent: &str) -> Arc<UserAgent> {
    let key = truncate_chars(user_agent.trim(), MAX_USER_AGENT_LEN);
    if let Some(hit) = CACHE.get(key) {
        return hit;
    }
    let parsed = Arc::new(parse_uncached(key));
    CACHE.insert(key.into(), Arc::clone(&parsed));
    parsed
}

/// [`parse`] without the cache (for one-off inputs such as imports).
pub fn parse_uncached(user_agent: &str) -> UserAgent {
    let ua = truncate_chars(user_agent.trim(), MAX_USER_AGENT_LEN);
    let browser = RULES
        .browsers
        .extract(ua)
        .and_then(|v| browser_name(&v.family));
    let os = RULES.systems.extract(ua).and_then(|v| os_name(&v.os));
    UserAgent {
        browser,
        os,
        device: device_class(ua),
    }
}

/// The device class, from tokens rather than uap-core's model list:
/// - tablet: `iPad`, Kindle/Silk, PlayBook, Android with `Tablet` (Firefox) or without `Mobi`
///   (Chrome and its kin drop `Mobile` on Android tablets);
/// - mobile: `Mobi` (Mozilla's advice for phones), iPhone/iPod, Opera Mini, Windows Phone,
///   BlackBerry, KaiOS;
/// - desktop: everything else. iPadOS Safari asks for desktop pages with a Mac User-Agent
///   by default, so those iPads count as desktop: nothing in the header tells them apart.
pub fn device_class(user_agent: &str) -> Device {
    let has = |token: &str| user_agent.contains(token);
    let android = has("Android");
    if has("iPad") || has("Kindle") || has("Silk/") || has("PlayBook") {
        return Device::Tablet;
    }
    if android && has("Tablet") {
        return Device::Tablet;
    }
    if has("Mobi")
        || has("iPhone")
        || has("iPod")
        || has("Opera Mini")
        || has("Windows Phone")
        || has("BlackBerry")
        || has("BB10")
        || has("KaiOS")
    {
        return Device::Mobile;
    }
    if android {
        return Device::Tablet;
    }
    Device::Desktop
}

/// One name per browser family: uap-core splits some by platform ("Chrome Mobile iOS").
fn browser_name(family: &str) -> Option<String> {
    let name = match family {
        "" | "Other" => return None,
        "Mobile Safari" => "Safari",
        "Chrome Mobile" | "Chrome Mobile iOS" => "Chrome",
        "Chrome Mobile WebView" => "Android WebView",
        "Mobile Safari UI/WKWebView" => "iOS WebView",
        "Firefox Mobile" | "Firefox iOS" => "Firefox",
        "Edge Mobile" => "Edge",
        "Opera Mobile" => "Opera",
        "IE" | "IE Mobile" => "Internet Explorer",
        "Google" => "Google App",
        "MiuiBrowser" => "MIUI Browser",
        other => other.strip_suffix(" Mobile").unwrap_or(other),
    };
    Some(name.to_string())
}

/// One name per operating system family: Apple's current names, Linux distributions as Linux.
fn os_name(family: &str) -> Option<String> {
    let name = match family {
        "" | "Other" => return None,
        "Mac OS X" | "Mac OS" => "macOS",
        "Chrome OS" => "ChromeOS",
        "Ubuntu" | "Kubuntu" | "Lubuntu" | "Debian" | "Fedora" | "Red Hat" | "CentOS"
        | "Arch Linux" | "Gentoo" | "Slackware" | "openSUSE" | "SUSE" | "Mageia" | "PCLinuxOS"
        | "Linux Mint" | "Mandriva" | "Puppy" | "BackTrack" => "Linux",
        other => other,
    };
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ua: &str, browser: Option<&str>, os: Option<&str>, device: Device) {
        let got = parse(ua);
        assert_eq!(
            (got.browser.as_deref(), got.os.as_deref(), got.device),
            (browser, os, device),
            "{ua}"
        );
    }

    #[test]
    fn representative_user_agents() {
        use Device::*;
        let cases: &[(&str, Option<&str>, Option<&str>, Device)] = &[
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                Some("Chrome"),
                Some("Windows"),
                Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                Some("Edge"),
                Some("Windows"),
                Desktop,
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                Some("Safari"),
                Some("macOS"),
                Desktop,
            ),
            (
                "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                Some("Firefox"),
                Some("Linux"),
                Desktop,
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
                Some("Chrome"),
                Some("ChromeOS"),
                Desktop,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
                Some("Opera"),
                Some("Windows"),
                Desktop,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                Some("Safari"),
                Some("iOS"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
                Some("Chrome"),
                Some("iOS"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 330.0.0.33.109 (iPhone15,3; iOS 17_5; en_US; en; scale=3.00; 1290x2796; 598284282)",
                Some("Instagram"),
                Some("iOS"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.179 Mobile Safari/537.36",
                Some("Chrome"),
                Some("Android"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
                Some("Samsung Internet"),
                Some("Android"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
                Some("Firefox"),
                Some("Android"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
                Some("Safari"),
                Some("iOS"),
                Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                Some("Chrome"),
                Some("Android"),
                Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-X910) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Safari/537.36",
                Some("Samsung Internet"),
                Some("Android"),
                Tablet,
            ),
            (
                "Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0",
                Some("Firefox"),
                Some("Android"),
                Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 11; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/130.4.1 like Chrome/130.0.6723.102 Safari/537.36",
                Some("Amazon Silk"),
                Some("Android"),
                Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/AP2A.240805.005; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/127.0.6533.103 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/478.0.0.41.86;]",
                Some("Facebook"),
                Some("Android"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (Linux; U; Android 13; en-US; V2207 Build/TP1A.220624.014) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/123.0.6312.80 UCBrowser/13.6.0.1315 Mobile Safari/537.36",
                Some("UC Browser"),
                Some("Android"),
                Mobile,
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 YaBrowser/24.10.0.0 Safari/537.36",
                Some("Yandex Browser"),
                Some("Windows"),
                Desktop,
            ),
        ];
        for (ua, browser, os, device) in cases {
            check(ua, *browser, *os, *device);
        }
    }

    #[test]
    fn unknown_and_empty_user_agents_are_desktop_without_names() {
        check("", None, None, Device::Desktop);
        check("   ", None, None, Device::Desktop);
        check("something else entirely", None, None, Device::Desktop);
    }

    #[test]
    fn every_fixture_browser_is_named() {
        let lines = include_str!("../../tests/fixtures/browser-user-agents.txt");
        for ua in lines.lines().filter(|l| !l.trim().is_empty()) {
            let got = parse(ua);
            assert!(got.browser.is_some(), "no browser for {ua}");
            assert!(got.os.is_some(), "no OS for {ua}");
        }
    }

    #[test]
    fn device_rules() {
        use Device::*;
        for (ua, want) in [
            (
                "Mozilla/5.0 (Linux; Android 10; K) Chrome/131.0.0.0 Safari/537.36",
                Tablet,
            ),
            (
                "Mozilla/5.0 (Linux; Android 10; K) Chrome/131.0.0.0 Mobile Safari/537.36",
                Mobile,
            ),
            (
                "Opera/9.80 (Android; Opera Mini/36.2.2254/119.132; U; id) Presto/2.12.423 Version/12.16",
                Mobile,
            ),
            (
                "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) Edge/15.15063",
                Mobile,
            ),
            (
                "Mozilla/5.0 (Mobile; LYF/F300B/LYF-F300B-001-01-15-130718-i; Android; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5",
                Mobile,
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36",
                Desktop,
            ),
        ] {
            assert_eq!(device_class(ua), want, "{ua}");
        }
    }

    #[test]
    fn cached_parse_returns_the_same_value() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        let first = parse(ua);
        let second = parse(ua);
        assert!(
            Arc::ptr_eq(&first, &second),
            "the second parse is a cache hit"
        );
        assert_eq!(*first, parse_uncached(ua));
    }

    #[test]
    fn overlong_user_agents_are_clipped_on_a_char_boundary() {
        let ua = format!(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) {}",
            "é".repeat(2_000)
        );
        let got = parse(&ua);
        assert_eq!(got.device, Device::Mobile);
        assert_eq!(
            truncate_chars(&ua, MAX_USER_AGENT_LEN).chars().count(),
            MAX_USER_AGENT_LEN
        );
    }

    #[test]
    fn device_names_round_trip() {
        for d in Device::ALL {
            assert_eq!(Device::from_name(d.as_str()), Some(d));
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        }
        assert_eq!(Device::from_name("Tablet"), None);
    }

    #[test]
    fn parser_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        assert_send_sync(&*RULES);
        assert_send_sync(&*CACHE);
    }
}
