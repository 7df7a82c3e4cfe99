//! Reading one tracked activity from JSON: the fields shared by `POST /api/collect` (SPEC 3.2)
//! and the events of `POST /websites/{id}/events` (SPEC 3.5), checked with every problem
//! reported at once as `"field: what is wrong"`, and what the page URL and referrer say.

use serde_json::{Map, Value};
use url::Url;

use super::referrer::{self, Utm};
use super::store::{Attrs, Kind};
use super::{strip_controls, truncate_chars};

pub const MAX_URL_CHARS: usize = 2_000;
pub const MAX_NAME_CHARS: usize = 120;
pub const MAX_PROPS: usize = 30;
pub const MAX_PROP_KEY_CHARS: usize = 300;
pub const MAX_PROP_VALUE_CHARS: usize = 2_000;
/// Longer `language` values are not a language tag; they are cut (BCP 47 tags stay far below).
pub const MAX_LANGUAGE_CHARS: usize = 35;

/// A JSON object read field by field; problems are collected with a prefix (`events[3].`).
pub struct Reader<'a> {
    map: &'a Map<String, Value>,
    prefix: &'a str,
    pub errors: Vec<String>,
}

impl<'a> Reader<'a> {
    pub fn new(map: &'a Map<String, Value>, prefix: &'a str) -> Reader<'a> {
        Reader {
            map,
            prefix,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, field: &str, problem: impl std::fmt::Display) {
        self.errors
            .push(format!("{}{field}: {problem}", self.prefix));
    }

    /// A string or null/absent (`None`); anything else is an error.
    pub fn string(&mut self, field: &str) -> Option<&'a str> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.error(field, "must be a string");
                None
            }
        }
    }

    pub fn required_string(&mut self, field: &str) -> Option<&'a str> {
        let value = self.string(field);
        if value.is_none() && matches!(self.map.get(field), None | Some(Value::Null)) {
            self.error(field, "is required");
        }
        value
    }

    /// An integer or null/absent; fractions are rounded down, anything else is an error.
    pub fn integer(&mut self, field: &str) -> Option<i64> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f.floor() as i64)),
            Some(_) => {
                self.error(field, "must be a number");
                None
            }
        }
    }
}

/// What every activity carries, validated.
#[derive(Clone, Debug)]
pub struct Common {
    pub kind: Kind,
    pub url: Url,
    pub referrer: Option<String>,
    pub screen_width: Option<i64>,
    pub language: Option<String>,
    /// Events: the name; props as a JSON object text of string values.
    pub name: Option<String>,
    pub props: Option<String>,
}

/// Reads `type`, `url`, `referrer`, `screenWidth`, `language`, `name` and `props`.
pub fn read_common(r: &mut Reader<'_>) -> Option<Common> {
    let kind = match r.required_string("type") {
        Some(t) => match Kind::parse(t) {
            Some(k) => Some(k),
            None => {
                r.error("type", "must be pageview, event or heartbeat");
                None
            }
        },
        None => None,
    };
    let url = r
        .required_string("url")
        .and_then(|raw| match page_url(raw) {
            Ok(url) => Some(url),
            Err(e) => {
                r.error("url", e);
                None
            }
        });
    // A referrer of any form is kept as what can be read of it, never refused (SPEC 3.2):
    // one that is not even a string counts as direct.
    let referrer = match r.map.get("referrer") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let screen_width = r.integer("screenWidth");
    let language = r
        .string("language")
        .map(|l| truncate_chars(strip_controls(l).trim(), MAX_LANGUAGE_CHARS).to_string())
        .filter(|l| !l.is_empty());
    let name = r.string("name");
    let props = read_props(r);
    let name = match (kind, name) {
        (Some(Kind::Event), None) => {
            if r.map.get("name").is_none_or(Value::is_null) {
                r.error("name", "is required for an event");
            }
            None
        }
        (Some(Kind::Event), Some(n)) => {
            let n = strip_controls(n);
            let n = n.trim();
            if n.is_empty() {
                r.error("name", "must not be empty");
            } else if n.chars().count() > MAX_NAME_CHARS {
                r.error(
                    "name",
                    format!("must be at most {MAX_NAME_CHARS} characters"),
                );
            }
            Some(n.to_string())
        }
        _ => None,
    };
    Some(Common {
        kind: kind?,
        url: url?,
        referrer,
        screen_width,
        language,
        props: if kind == Some(Kind::Event) {
            props
        } else {
            None
        },
        name,
    })
}

/// An absolute http(s) URL of at most [`MAX_URL_CHARS`] characters with a host.
pub fn page_url(raw: &str) -> Result<Url, String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let url = Url::parse(raw.trim()).map_err(|_| "must be an absolute http(s) URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL".into());
    }
    if referrer::hostname_of(&url).is_none() {
        return Err("must name a host".into());
    }
    Ok(url)
}

/// `props`: an object of at most 30 pairs whose values are strings, numbers or booleans
/// (kept as text). Returns the object as JSON text, `None` when absent or empty.
fn read_props(r: &mut Reader<'_>) -> Option<String> {
    let props = match r.map.get("props") {
        None | Some(Value::Null) => return None,
        Some(Value::Object(props)) => props,
        Some(_) => {
            r.error("props", "must be an object");
            return None;
        }
    };
    if props.len() > MAX_PROPS {
        r.error("props", format!("must have at most {MAX_PROPS} pairs"));
        return None;
    }
    let mut kept = Map::new();
    for (key, value) in props {
        let key = strip_controls(key);
        if key.is_empty() || key.chars().count() > MAX_PROP_KEY_CHARS {
            r.error(
                "props",
                format!("keys must be 1 to {MAX_PROP_KEY_CHARS} characters"),
            );
            return None;
        }
        let text = match value {
            Value::String(s) => strip_controls(s).into_owned(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                r.error(
                    &format!("props.{key}"),
                    "must be a string, number or boolean",
                );
                return None;
            }
        };
        if text.chars().count() > MAX_PROP_VALUE_CHARS {
            r.error(
                &format!("props.{key}"),
                format!("must be at most {MAX_PROP_VALUE_CHARS} characters"),
            );
            return None;
        }
        kept.insert(key.into_owned(), Value::String(text));
    }
    (!kept.is_empty()).then(|| Value::Object(kept).to_string())
}

/// Why an activity was deliberately not stored (`X-Jetrack-Dropped`, SPEC 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Drop {
    Bot,
    UnknownWebsite,
    Hostname,
    Quota,
    Spam,
}

impl Drop {
    pub const ALL: [Drop; 5] = [
        Drop::Bot,
        Drop::UnknownWebsite,
        Drop::Hostname,
        Drop::Quota,
        Drop::Spam,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Drop::Bot => "bot",
            Drop::UnknownWebsite => "unknown-website",
            Drop::Hostname => "hostname",
            Drop::Quota => "quota",
            Drop::Spam => "spam",
        }
    }
}

/// What the page URL and the referrer say, for a site whose domain is `domain`.
#[derive(Clone, Debug)]
pub struct Page {
    pub hostname: String,
    pub path: String,
    pub utm: Utm,
    pub referrer: Option<String>,
}

/// Checks the URL's host against the site and reads the page; drops foreign hosts and
/// referrer spam.
pub fn page(common: &Common, domain: &str) -> Result<Page, Drop> {
    let hostname = referrer::hostname_of(&common.url).ok_or(Drop::Hostname)?;
    if !referrer::host_matches(&hostname, domain) {
        return Err(Drop::Hostname);
    }
    let referrer = referrer::referrer_host(common.referrer.as_deref(), domain);
    if referrer.as_deref().is_some_and(referrer::is_spam) {
        return Err(Drop::Spam);
    }
    Ok(Page {
        path: referrer::path_of(&common.url),
        utm: referrer::utm_from_url(&common.url),
        hostname,
        referrer,
    })
}

impl Page {
    /// The visit attributes of this page, with what else is known of the visitor.
    pub fn attrs(
        &self,
        country: Option<String>,
        browser: Option<String>,
        os: Option<String>,
        device: Option<String>,
        language: Option<String>,
        screen: Option<String>,
    ) -> Attrs {
        Attrs {
            hostname: Some(self.hostname.clone()),
            referrer: self.referrer.clone(),
            utm_source: self.utm.source.clone(),
            utm_medium: self.utm.medium.clone(),
            utm_campaign: self.utm.campaign.clone(),
            utm_term: self.utm.term.clone(),
            utm_content: self.utm.content.clone(),
            country,
            browser,
            os,
            device,
            language,
            screen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<Common, Vec<String>> {
        let map = v.as_object().unwrap().clone();
        let mut r = Reader::new(&map, "");
        let common = read_common(&mut r);
        if r.errors.is_empty() {
            Ok(common.unwrap())
        } else {
            Err(r.errors)
        }
    }

    #[test]
    fn a_pageview_reads() {
        let c = read(json!({"type": "pageview", "url": "https://example.com/a?utm_source=x#h",
                            "referrer": "https://google.com/", "screenWidth": 1440.7, "language": "en-US"}))
        .unwrap();
        assert_eq!(c.kind, Kind::Pageview);
        assert_eq!(c.screen_width, Some(1440));
        assert_eq!(c.language.as_deref(), Some("en-US"));
        assert_eq!(c.name, None);
        let odd = read(json!({"type": "pageview", "url": "https://example.com/", "referrer": 123}));
        assert_eq!(
            odd.unwrap().referrer,
            None,
            "never refused for its referrer"
        );
    }

    #[test]
    fn every_problem_is_named() {
        let errors = read(json!({"type": "click", "url": "ftp://x.com/", "screenWidth": "wide"}))
            .unwrap_err();
        assert_eq!(
            errors,
            vec![
                "type: must be pageview, event or heartbeat",
                "url: must be an http or https URL",
                "screenWidth: must be a number",
            ]
        );
        assert_eq!(
            read(json!({})).unwrap_err(),
            vec!["type: is required", "url: is required"]
        );
        let long = format!("https://example.com/{}", "a".repeat(2_000));
        assert_eq!(
            read(json!({"type": "pageview", "url": long})).unwrap_err(),
            vec!["url: must be at most 2000 characters"]
        );
        assert_eq!(
            read(json!({"type": "event", "url": "https://example.com/"})).unwrap_err(),
            vec!["name: is required for an event"]
        );
        assert_eq!(
            read(json!({"type": "event", "url": "https://example.com/", "name": "x".repeat(121)}))
                .unwrap_err(),
            vec!["name: must be at most 120 characters"]
        );
    }

    #[test]
    fn props_are_checked_and_kept_as_text() {
        let c = read(
            json!({"type": "event", "url": "https://example.com/", "name": "Signup",
                            "props": {"plan": "pro", "seats": 3, "trial": true}}),
        )
        .unwrap();
        let props: Value = serde_json::from_str(c.props.as_deref().unwrap()).unwrap();
        assert_eq!(props, json!({"plan": "pro", "seats": "3", "trial": "true"}));
        let many: Map<String, Value> = (0..31).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            read(
                json!({"type": "event", "url": "https://example.com/", "name": "x", "props": many})
            )
            .unwrap_err(),
            vec!["props: must have at most 30 pairs"]
        );
        assert_eq!(
            read(json!({"type": "event", "url": "https://example.com/", "name": "x", "props": {"a": {"b": 1}}})).unwrap_err(),
            vec!["props.a: must be a string, number or boolean"]
        );
        assert_eq!(
            read(json!({"type": "event", "url": "https://example.com/", "name": "x", "props": {"a": "v".repeat(2001)}})).unwrap_err(),
            vec!["props.a: must be at most 2000 characters"]
        );
    }

    #[test]
    fn pages_are_checked_against_the_site() {
        let c = read(
            json!({"type": "pageview", "url": "https://blog.example.com/p?utm_source=news",
                            "referrer": "android-app://com.google.android.gm/"}),
        )
        .unwrap();
        let p = page(&c, "example.com").unwrap();
        assert_eq!(
            (p.hostname.as_str(), p.path.as_str()),
            ("blog.example.com", "/p")
        );
        assert_eq!(p.utm.source.as_deref(), Some("news"));
        assert_eq!(p.referrer.as_deref(), Some("com.google.android.gm"));
        assert_eq!(page(&c, "other.org").unwrap_err(), Drop::Hostname);
        let self_ref = read(json!({"type": "pageview", "url": "https://example.com/", "referrer": "https://www.example.com/x"})).unwrap();
        assert_eq!(page(&self_ref, "example.com").unwrap().referrer, None);
    }
}
