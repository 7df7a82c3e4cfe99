//! Is a User-Agent a bot? (SPEC 3.2: dropped with reason `bot`.)
//!
//! One Aho-Corasick pass (ASCII case-insensitive, no lower-cased copy) over three kinds of
//! pattern: known crawler, monitor, headless-browser and HTTP-library signatures, which count
//! anywhere; generic words (`crawl`, `spider`, `scraper`, `headless`) that count anywhere too;
//! and the word `bot`, which counts only where it ends a word (`Googlebot/`, `bot;`, `-bot)`,
//! end of string), except in the phone brand CUBOT. A handful of tools send a bare name that
//! would be too loose as a substring (`Ruby`, `node`, `undici`): those must be the whole header.
//!
//! Electron apps (Slack, Discord, Obsidian…) are people and are not matched; in-app browsers
//! (Instagram, Facebook, LinkedIn, Pinterest) neither, while those companies' link-preview
//! fetchers are.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Substrings that mark a bot wherever they appear (compared ignoring ASCII case).
const SIGNATURES: &[&str] = &[
    // Search engines and their helpers.
    "googlebot",
    "google-inspectiontool",
    "adsbot-google",
    "mediapartners-google",
    "feedfetcher-google",
    "googleother",
    "google-read-aloud",
    "storebot-google",
    "apis-google",
    "bingbot",
    "bingpreview",
    "msnbot",
    "adidxbot",
    "yandexbot",
    "yandeximages",
    "yandexmetrika",
    "yandexmobilebot",
    "baiduspider",
    "duckduckbot",
    "applebot",
    "yahoo! slurp",
    "seznambot",
    "sogou web spider",
    "exabot",
    "qwantbot",
    "qwantify",
    "coccocbot",
    "yeti/",
    "mojeekbot",
    "mail.ru_bot",
    "petalbot",
    "seekport",
    // SEO and marketing crawlers.
    "ahrefsbot",
    "semrushbot",
    "siteauditbot",
    "mj12bot",
    "dotbot",
    "blexbot",
    "dataforseobot",
    "serpstatbot",
    "barkrowler",
    "awariobot",
    "screaming frog",
    "sitebulb",
    // AI and data-set crawlers.
    "gptbot",
    "chatgpt-user",
    "oai-searchbot",
    "claudebot",
    "claude-user",
    "claude-web",
    "anthropic-ai",
    "perplexitybot",
    "perplexity-user",
    "ccbot",
    "bytespider",
    "amazonbot",
    "diffbot",
    "timpibot",
    "imagesiftbot",
    "cohere-ai",
    "meta-externalagent",
    "meta-externalfetcher",
    // Link previews and social fetchers.
    "facebookexternalhit",
    "facebookcatalog",
    "facebot",
    "twitterbot",
    "linkedinbot",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "telegrambot",
    "whatsapp/",
    "skypeuripreview",
    "pinterestbot",
    "redditbot",
    "embedly",
    "iframely",
    "cardyb",
    "mastodon/",
    "feedly/",
    "w3c_validator",
    "w3c-checklink",
    "validator.nu",
    // Archives.
    "ia_archiver",
    "archive.org_bot",
    "heritrix",
    // Uptime and performance monitors.
    "uptimerobot",
    "pingdom",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "datadogsynthetics",
    "datadog agent",
    "uptime-kuma",
    "better uptime",
    "check_http",
    "blackbox exporter",
    "lighthouse",
    "gtmetrix",
    "ptst/",
    "pagespeed",
    "prerender",
    // Headless and automated browsers.
    "headlesschrome",
    "phantomjs",
    "puppeteer",
    "playwright",
    "slimerjs",
    "cypress/",
    "selenium",
    "webdriver",
    // HTTP libraries and command-line tools.
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "python/",
    "aiohttp",
    "httpx",
    "go-http-client",
    "okhttp",
    "java/",
    "apache-httpclient",
    "jakarta commons-httpclient",
    "libwww-perl",
    "lwp::simple",
    "axios/",
    "node-fetch",
    "undici",
    "faraday v",
    "ruby/",
    "http.rb",
    "rest-client",
    "postmanruntime",
    "insomnia/",
    "httpie",
    "scrapy",
    "nutch",
    "dalvik/",
    "wordpress/",
    "guzzlehttp",
    "php/",
    "deno/",
    "bun/",
    "dart:io",
    "powershell",
    "got (",
    "reqwest",
    "gocolly",
    "mechanize",
    "jsdom",
    // Scanners.
    "sqlmap",
    "nikto",
    "nmap scripting engine",
    "zgrab",
    "masscan",
    // Crawlers announce a page about themselves; browsers never carry a URL.
    "+http",
];

/// Generic words that mean an automated client wherever they appear.
const WORDS: &[&str] = &["crawl", "spider", "scraper", "headless"];

/// Names that are a bot only as the whole User-Agent (too short to trust as a substring).
const WHOLE: &[&str] = &[
    "ruby",
    "node",
    "zabbix",
    "java",
    "python",
    "go",
    "mozilla/5.0",
];

/// Words ending in "bot" that are not bots: CUBOT is a phone maker (`CUBOT KINGKONG 9`).
const NOT_BOTS: &[&str] = &["cubot"];

const BOT: &str = "bot";

static MATCHER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let patterns = SIGNATURES.iter().chain(WORDS).chain(std::iter::once(&BOT));
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(patterns)
        .expect("bot patterns compile")
});

/// True for an empty User-Agent, a known crawler, monitor, headless browser or HTTP library,
/// and any User-Agent with the word `bot`, `crawl`, `spider`, `scraper` or `headless`.
pub fn is_bot(user_agent: &str) -> bool {
    let ua = user_agent.trim();
    if ua.is_empty() || WHOLE.iter().any(|w| ua.eq_ignore_ascii_case(w)) {
        return true;
    }
    let bot_id = SIGNATURES.len() + WORDS.len();
    MATCHER.find_overlapping_iter(ua).any(|m| {
        m.pattern().as_usize() != bot_id || ends_a_bot_word(ua.as_bytes(), m.start(), m.end())
    })
}

/// `bot` at `start..end` ends a word (so not `Botswana` or `bottle`) that is not a known
/// non-bot such as `CUBOT`.
fn ends_a_bot_word(ua: &[u8], start: usize, end: usize) -> bool {
    if ua.get(end).is_some_and(u8::is_ascii_alphanumeric) {
        return false;
    }
    let word_start = ua[..start]
        .iter()
        .rposition(|b| !b.is_ascii_alphanumeric())
        .map_or(0, |i| i + 1);
    let word = &ua[word_start..end];
    !NOT_BOTS
        .iter()
        .any(|n| word.eq_ignore_ascii_case(n.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> impl Iterator<Item = &str> {
        text.lines().filter(|l| !l.trim().is_empty())
    }

    #[test]
    fn every_fixture_bot_is_a_bot() {
        let bots = include_str!("../../tests/fixtures/bot-user-agents.txt");
        assert!(lines(bots).count() >= 60);
        let missed: Vec<&str> = lines(bots).filter(|ua| !is_bot(ua)).collect();
        assert!(missed.is_empty(), "not flagged as bots: {missed:#?}");
    }

    #[test]
    fn no_fixture_browser_is_a_bot() {
        let browsers = include_str!("../../tests/fixtures/browser-user-agents.txt");
        assert!(lines(browsers).count() >= 60);
        let flagged: Vec<&str> = lines(browsers).filter(|ua| is_bot(ua)).collect();
        assert!(flagged.is_empty(), "people flagged as bots: {flagged:#?}");
    }

    #[test]
    fn empty_and_blank_user_agents_are_bots() {
        assert!(is_bot(""));
        assert!(is_bot("   "));
        assert!(is_bot("\t\n"));
    }

    #[test]
    fn at_least_fifty_signatures() {
        assert!(SIGNATURES.len() >= 50, "{}", SIGNATURES.len());
    }

    #[test]
    fn the_word_bot_needs_a_word_end() {
        for ua in [
            "SomeNewBot/1.0",
            "my-bot",
            "Mozilla/5.0 (compatible; examplebot)",
            "Mozilla/5.0 (compatible; Example_Bot; x)",
            "Friendly bot",
            "BOT",
        ] {
            assert!(is_bot(ua), "{ua} should be a bot");
        }
        for ua in [
            "Mozilla/5.0 (Linux; Android 13; CUBOT KINGKONG 9) Chrome/130.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 9; CUBOT_X30) Chrome/120.0 Mobile Safari/537.36",
            "Mozilla/5.0 (Linux; Android 12; cubot P80) Chrome/120.0 Mobile Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64) Botswana Edition Firefox/133.0",
            "Mozilla/5.0 (Windows NT 10.0) Bottle/1.0 Chrome/131.0",
        ] {
            assert!(!is_bot(ua), "{ua} is not a bot");
        }
    }

    #[test]
    fn matching_ignores_case() {
        assert!(is_bot("CURL/8.0"));
        assert!(is_bot("mozilla/5.0 (compatible; GOOGLEBOT/2.1)"));
        assert!(is_bot("Some Web CRAWLER"));
    }

    #[test]
    fn electron_apps_are_people() {
        assert!(!is_bot(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Code/1.95.3 Chrome/128.0.6613.186 Electron/32.2.1 Safari/537.36"
        ));
    }

    #[test]
    fn short_names_count_only_as_the_whole_header() {
        assert!(is_bot("Ruby"));
        assert!(is_bot("node"));
        assert!(!is_bot(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Ruby-Theme"
        ));
    }

    #[test]
    fn odd_input_does_not_panic() {
        for ua in [
            "\u{0}", "bot\u{0}", "é bot", "ébot", "🤖bot", "b", "bo", "xbot",
        ] {
            let _ = is_bot(ua);
        }
        assert!(is_bot("é bot"));
        assert!(is_bot("🤖bot"));
    }
}
