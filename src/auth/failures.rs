//! A bounded count of recent failures per key (client network, submitted email). Bounded so
//! that an attacker who varies the key cannot grow it without limit: once full, new keys are
//! not tracked until the periodic sweep frees room; keys already tracked keep counting.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a key's failures are forgotten.
#[derive(Clone, Copy, Debug)]
pub enum Window {
    /// A fixed window that starts with the first failure.
    FromFirst(Duration),
    /// Forgotten once this long has passed without another failure.
    FromLast(Duration),
}

#[derive(Clone, Copy, Debug)]
pub struct Failures {
    pub count: u32,
    pub first: Instant,
    pub last: Instant,
}

pub struct FailureCounter<K> {
    window: Window,
    cap: usize,
    map: Mutex<HashMap<K, Failures>>,
}

impl<K: Hash + Eq> FailureCounter<K> {
    pub fn new(window: Window, cap: usize) -> Self {
        FailureCounter {
            window,
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn expired(&self, f: &Failures) -> bool {
        match self.window {
            Window::FromFirst(w) => f.first.elapsed() >= w,
            Window::FromLast(w) => f.last.elapsed() >= w,
        }
    }

    /// The key's live failures, if any.
    pub fn get(&self, key: &K) -> Option<Failures> {
        let map = self.map.lock().expect("not poisoned");
        map.get(key).copied().filter(|f| !self.expired(f))
    }

    /// Counts one failure; returns the key's failures including it.
    pub fn record(&self, key: K) -> Failures {
        let now = Instant::now();
        let mut map = self.map.lock().expect("not poisoned");
        let fresh = Failures {
            count: 1,
            first: now,
            last: now,
        };
        if !map.contains_key(&key) && map.len() >= self.cap {
            return fresh;
        }
        let expired = map.get(&key).is_some_and(|f| self.expired(f));
        let entry = map.entry(key).or_insert(Failures { count: 0, ..fresh });
        if expired {
            *entry = Failures { count: 0, ..fresh };
        }
        entry.count += 1;
        entry.last = now;
        *entry
    }

    pub fn clear(&self, key: &K) {
        self.map.lock().expect("not poisoned").remove(key);
    }

    pub fn sweep(&self) {
        let mut map = self.map.lock().expect("not poisoned");
        map.retain(|_, f| !match self.window {
            Window::FromFirst(w) => f.first.elapsed() >= w,
            Window::FromLast(w) => f.last.elapsed() >= w,
        });
    }
}

/// The key under which a client address is limited: the address itself for IPv4, its /64 for
/// IPv6 (one subscriber usually holds a whole /64).
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_window_and_stays_bounded() {
        let c: FailureCounter<u32> =
            FailureCounter::new(Window::FromFirst(Duration::from_secs(60)), 2);
        assert_eq!(c.record(1).count, 1);
        assert_eq!(c.record(1).count, 2);
        assert_eq!(c.record(2).count, 1);
        // Full: a third key is not tracked, the tracked ones still count.
        assert_eq!(c.record(3).count, 1);
        assert!(c.get(&3).is_none());
        assert_eq!(c.record(1).count, 3);
        c.clear(&1);
        assert!(c.get(&1).is_none());
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let a = network_of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = network_of("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(
            network_of("203.0.113.5".parse().unwrap()),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
    }
}
