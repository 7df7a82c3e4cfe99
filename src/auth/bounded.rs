//! A keyed rate-limit store for governor with a fixed cap on its entries. Keys come from
//! clients (an address, an address with a User-Agent), so someone who varies them must not
//! grow the map without bound, not even within one window: when the map is full, a new key
//! first makes room by forgetting the half of the entries that limit least (the earliest
//! theoretical arrival times, those closest to a full budget). A key at its limit has a later
//! arrival time than any key that spent one request, so it stays limited while others come
//! and go. The periodic sweep (`retain_recent`) drops every entry that no longer limits.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::{Quota, RateLimiter};

/// A keyed limiter over a [`BoundedStore`].
pub type Limiter<K, C = DefaultClock> =
    RateLimiter<K, BoundedStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// A keyed limiter of [`DEFAULT_CAP`] entries on the system clock.
pub fn keyed<K: Hash + Eq + Clone>(quota: Quota) -> Limiter<K> {
    RateLimiter::new(quota, BoundedStore::default(), DefaultClock::default())
}

/// Entries a limiter keeps at most, unless it is given its own cap: about 48 bytes each with
/// the map's overhead, so a few MB per limiter.
pub const DEFAULT_CAP: usize = 100_000;

pub struct BoundedStore<K> {
    cap: usize,
    /// Each key's theoretical arrival time, in governor's nanoseconds since the limiter began.
    map: Mutex<HashMap<K, u64>>,
}

impl<K> BoundedStore<K> {
    pub fn new(cap: usize) -> Self {
        BoundedStore {
            cap: cap.max(2),
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K> Default for BoundedStore<K> {
    fn default() -> Self {
        Self::new(DEFAULT_CAP)
    }
}

/// Forgets the half of `map` with the earliest arrival times (amortised: one pass frees room
/// for half the cap's new keys).
fn forget_least_limiting<K>(map: &mut HashMap<K, u64>) {
    let mut times: Vec<u64> = map.values().copied().collect();
    let middle = (times.len() - 1) / 2;
    let (_, &mut threshold, _) = times.select_nth_unstable(middle);
    map.retain(|_, tat| *tat > threshold);
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut map = self.map.lock().expect("not poisoned");
        let before = map.get(key).copied();
        let (answer, after) = f(before.map(Nanos::new))?;
        if before.is_none() && map.len() >= self.cap {
            forget_least_limiting(&mut map);
        }
        map.insert(key.clone(), after.as_u64());
        Ok(answer)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        let mut map = self.map.lock().expect("not poisoned");
        map.retain(|_, tat| *tat > drop_below.as_u64());
        if map.capacity() > 2 * map.len().max(16) {
            map.shrink_to_fit();
        }
    }

    fn len(&self) -> usize {
        self.map.lock().expect("not poisoned").len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn a_million_keys_in_one_window_stay_under_the_cap_and_the_limited_stay_limited() {
        let clock = FakeRelativeClock::default();
        // 20 a minute: within the 100 ms the million takes, the flooder earns nothing back.
        let quota = Quota::per_minute(NonZeroU32::new(20).unwrap());
        let cap = 10_000;
        let limiter: Limiter<u64, FakeRelativeClock> =
            RateLimiter::new(quota, BoundedStore::new(cap), clock.clone());
        let flooder = u64::MAX;
        while limiter.check_key(&flooder).is_ok() {}
        let mut most = 0;
        for key in 0..1_000_000u64 {
            // All within one window: the clock moves 100 ms over the whole million.
            if key % 10_000 == 0 {
                clock.advance(Duration::from_millis(1));
                assert!(
                    limiter.check_key(&flooder).is_err(),
                    "still limited at key {key}"
                );
            }
            assert!(limiter.check_key(&key).is_ok(), "a new key has its budget");
            most = most.max(limiter.len());
        }
        assert!(most <= cap, "{most} entries");
        assert!(limiter.check_key(&flooder).is_err());
        // After the window, the sweep leaves nothing that still limits nobody.
        clock.advance(Duration::from_secs(120));
        limiter.retain_recent();
        assert_eq!(limiter.len(), 0);
        assert!(limiter.check_key(&flooder).is_ok());
    }

    #[test]
    fn within_the_cap_nothing_is_forgotten() {
        let clock = FakeRelativeClock::default();
        let quota = Quota::per_minute(NonZeroU32::new(2).unwrap());
        let limiter: Limiter<u32, FakeRelativeClock> =
            RateLimiter::new(quota, BoundedStore::new(100), clock.clone());
        for key in 0..50 {
            assert!(limiter.check_key(&key).is_ok());
            assert!(limiter.check_key(&key).is_ok());
            assert!(limiter.check_key(&key).is_err());
        }
        assert_eq!(limiter.len(), 50);
        clock.advance(Duration::from_secs(30));
        assert!(limiter.check_key(&7).is_ok(), "one request back after 30 s");
        assert!(limiter.check_key(&7).is_err());
    }
}
