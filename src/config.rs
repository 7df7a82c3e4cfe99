//! The server's configuration, validated once at start.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::net::TrustedProxies;

/// One year: what browsers' preload lists ask for, and what the operator gets unless they
/// choose otherwise with `--hsts-max-age`.
pub const DEFAULT_HSTS_MAX_AGE: u64 = 31_536_000;

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Scheme, host and port the dashboard and snippets use, without a trailing slash.
    pub public_url: String,
    /// Whether the operator gave `--public-url` (else it follows the listen address, and
    /// browsers may reach the server under several names, such as localhost and 127.0.0.1).
    pub public_url_given: bool,
    /// `Strict-Transport-Security: max-age` in seconds when the public URL is https; 0 = none.
    pub hsts_max_age: u64,
    pub trusted_proxies: TrustedProxies,
    pub queue_capacity: usize,
    pub login_attempts_per_minute: u32,
    /// Requests per minute and burst per API key.
    pub api_rate_limit: u32,
    pub api_rate_burst: u32,
    /// Requests per minute (and burst) per account for dashboard sessions.
    pub session_rate_limit: u32,
    /// Failed authentications per minute per client IP before it is refused outright.
    pub auth_fail_limit: u32,
    /// Tracked events per second per client address and User-Agent.
    pub ingest_rate_limit: u32,
}

impl Config {
    /// The defaults of `jetrack serve`, for a data dir; tests start from here.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Config {
        Config {
            data_dir,
            listen,
            public_url: format!("http://{listen}"),
            public_url_given: false,
            hsts_max_age: DEFAULT_HSTS_MAX_AGE,
            trusted_proxies: TrustedProxies::loopback(),
            queue_capacity: 10_000,
            login_attempts_per_minute: 10,
            api_rate_limit: 60,
            api_rate_burst: 60,
            session_rate_limit: 600,
            auth_fail_limit: 20,
            ingest_rate_limit: 20,
        }
    }

    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The `Strict-Transport-Security` value for every response, when there is one.
    pub fn hsts(&self) -> Option<String> {
        (self.is_https() && self.hsts_max_age > 0)
            .then(|| format!("max-age={}; includeSubDomains", self.hsts_max_age))
    }

    /// Once the real port is known (`--listen …:0`), a default public URL follows it.
    pub fn bound_to(mut self, actual: SocketAddr, public_url_given: bool) -> Config {
        self.listen = actual;
        self.public_url_given = public_url_given;
        if !public_url_given {
            self.public_url = format!("http://{actual}");
        }
        self
    }

    /// Settings that would break login in a browser, as warnings for the operator.
    pub fn login_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let loopback = self.listen.ip().is_loopback();
        let public_host = url::Url::parse(&self.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let public_is_local = matches!(public_host.as_str(), "localhost" | "127.0.0.1" | "[::1]");
        if self.is_https() && !loopback {
            warnings.push(format!(
                "--public-url is https but jetrack listens on {} without TLS: the session cookie is \
                 Secure, so log in through {} (a TLS proxy), not over plain http",
                self.listen, self.public_url
            ));
        }
        if loopback && !public_is_local && !self.is_https() {
            warnings.push(format!(
                "jetrack listens on {} only, but --public-url is {}: browsers elsewhere can reach it \
                 only through a proxy on this machine",
                self.listen, self.public_url
            ));
        }
        if !loopback && public_is_local {
            warnings.push(format!(
                "jetrack listens on {} but --public-url is {}: snippets and links will point at \
                 localhost; set --public-url to the address people use",
                self.listen, self.public_url
            ));
        }
        warnings
    }
}

/// Parses and normalises `--public-url`: an absolute http(s) URL, kept as its origin.
pub fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("--public-url: not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("--public-url: must start with http:// or https://".into());
    }
    if url.host_str().is_none() {
        return Err("--public-url: must name a host".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("--public-url: must be an origin without a path (serving under a sub-path is not supported)".into());
    }
    Ok(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_is_kept_as_its_origin() {
        assert_eq!(
            parse_public_url("https://Stats.Example.com/").unwrap(),
            "https://stats.example.com"
        );
        assert_eq!(
            parse_public_url("http://127.0.0.1:8420").unwrap(),
            "http://127.0.0.1:8420"
        );
        assert!(parse_public_url("ftp://x").is_err());
        assert!(parse_public_url("https://x.com/stats").is_err());
        assert!(parse_public_url("nonsense").is_err());
    }
}
