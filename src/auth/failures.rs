//! A bounded count of recent failures per key (client network, submitted email). Bounded so
//! that an attacker who varies the key cannot grow it without limit: when it is full, a new
//! key first drops the expired entries and then, if that is not enough, the half with the
//! fewest failures, so a key that is being held back (many failures) stays held back while
//! others come and go.

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
            map.retain(|_, f| !self.expired(f));
            if map.len() >= self.cap {
                let mut counts: Vec<u32> = map.values().map(|f| f.count).collect();
                let middle = (counts.len() - 1) / 2;
                let (_, &mut threshold, _) = counts.select_nth_unstable(middle);
                map.retain(|_, f| f.count > threshold);
                // All alike: forget the older half instead.
                if map.len() >= self.cap {
                    let mut lasts: Vec<Instant> = map.values().map(|f| f.last).collect();
                    let (_, &mut oldest_kept, _) = lasts.select_nth_unstable(middle);
                    map.retain(|_, f| f.last > oldest_kept);
                }
            }
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
        // Full: a third key makes room by dropping the key with fewer failures.
        assert_eq!(c.record(3).count, 1);
        assert_eq!(c.get(&3).unwrap().count, 1);
        assert!(c.get(&2).is_none());
        assert_eq!(c.record(1).count, 3);
        c.clear(&1);
        assert!(c.get(&1).is_none());
    }

    #[test]
    fn a_flood_of_new_keys_stays_under_the_cap_and_the_held_back_stay_held_back() {
        let c: FailureCounter<u64> =
            FailureCounter::new(Window::FromFirst(Duration::from_secs(60)), 1000);
        for _ in 0..20 {
            c.record(u64::MAX);
        }
        for key in 0..1_000_000 {
            c.record(key);
            assert!(c.map.lock().unwrap().len() <= 1000);
        }
        assert_eq!(c.get(&u64::MAX).unwrap().count, 20);
        assert!(c.get(&999_999).is_some(), "the newest key is tracked");
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
