//! The client's address: the socket peer, or the forwarded address when the peer is a
//! trusted proxy (SPEC 3.3). Used in memory only, never stored whole.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The socket peer of a connection, attached to each request by the server.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

#[derive(Clone, Debug)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    /// Loopback only: the default.
    pub fn loopback() -> Self {
        TrustedProxies(vec![
            "127.0.0.0/8".parse().expect("valid"),
            "::1/128".parse().expect("valid"),
        ])
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address for a request from `peer` carrying `headers`. `X-Forwarded-For` is
    /// read from the right, skipping trusted proxies, so a client cannot forge its way in by
    /// prepending addresses; `X-Real-IP` is the fallback.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|part| parse_forwarded_ip(part.trim()))
            .collect();
        if let Some(ip) = forwarded
            .iter()
            .rev()
            .copied()
            .find(|ip| !self.contains(*ip))
        {
            return ip;
        }
        if let Some(first) = forwarded.first() {
            return *first;
        }
        headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_forwarded_ip(v.trim()))
            .unwrap_or(peer)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address as proxies write it: bare, `[v6]`, `[v6]:port` or `v4:port`.
fn parse_forwarded_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    s.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn forwarded_headers_only_count_from_trusted_peers() {
        let t = TrustedProxies::loopback();
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            t.client_ip("198.51.100.1".parse().unwrap(), &h),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            t.client_ip("127.0.0.1".parse().unwrap(), &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn rightmost_untrusted_address_wins() {
        let t = TrustedProxies::loopback();
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 127.0.0.1")]);
        assert_eq!(
            t.client_ip("127.0.0.1".parse().unwrap(), &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[("x-real-ip", "[2001:db8::1]:443")]);
        assert_eq!(
            t.client_ip("::1".parse().unwrap(), &h),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }
}
