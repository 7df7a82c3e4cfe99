//! API rate limits (SPEC 2.2): a GCRA budget per API key and per dashboard account, and a
//! block on client addresses that keep presenting bad credentials.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

use super::bounded::BoundedStore;
use super::failures::{FailureCounter, Window, network_of};

/// What the rate-limit headers report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Requests per minute.
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the budget is full again.
    pub reset_secs: u64,
}

/// A per-minute budget with a burst, kept per key `K`.
pub struct Throttle<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: RateLimiter<K, BoundedStore<K>, C, StateInformationMiddleware>,
    clock: C,
    limit: u32,
    burst: u32,
}

/// Whole seconds, rounded up: a client told to wait that long is never early.
pub fn ceil_secs(d: Duration) -> u64 {
    let whole = d.as_secs();
    if d.subsec_nanos() > 0 {
        whole + 1
    } else {
        whole
    }
}

impl<K: Hash + Eq + Clone> Throttle<K, DefaultClock> {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> Throttle<K, C> {
    pub fn with_clock(per_minute: u32, burst: u32, clock: C) -> Self {
        let limit = per_minute.max(1);
        let burst = burst.max(1);
        let quota = Quota::per_minute(NonZeroU32::new(limit).expect("non-zero"))
            .allow_burst(NonZeroU32::new(burst).expect("non-zero"));
        let limiter: RateLimiter<_, _, _, StateInformationMiddleware> =
            RateLimiter::new(quota, BoundedStore::default(), clock.clone());
        Throttle {
            limiter,
            clock,
            limit,
            burst,
        }
    }

    fn per_cell(&self) -> Duration {
        Duration::from_secs(60) / self.limit
    }

    /// The budget of someone who has not spent any: for answers outside any budget.
    pub fn full(&self) -> Budget {
        Budget {
            limit: self.limit,
            remaining: self.burst,
            reset_secs: 0,
        }
    }

    /// Spends one request of `key`'s budget; `Err` carries the seconds to wait.
    pub fn check(&self, key: &K) -> Result<Budget, (Budget, u64)> {
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                Ok(Budget {
                    limit: self.limit,
                    remaining,
                    reset_secs: ceil_secs(self.per_cell() * (self.burst - remaining)),
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let budget = Budget {
                    limit: self.limit,
                    remaining: 0,
                    reset_secs: ceil_secs(self.per_cell() * self.burst),
                };
                Err((budget, ceil_secs(wait).max(1)))
            }
        }
    }

    pub fn sweep(&self) {
        self.limiter.retain_recent();
    }
}

/// Client networks that failed authentication too often in the current minute.
pub struct AuthFailures {
    limit: u32,
    counter: FailureCounter<IpAddr>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl AuthFailures {
    pub fn new(limit: u32) -> Self {
        AuthFailures {
            limit: limit.max(1),
            counter: FailureCounter::new(Window::FromFirst(WINDOW), 100_000),
        }
    }

    /// Seconds left of the block on `ip`, if it is blocked.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        let f = self.counter.get(&network_of(ip))?;
        (f.count >= self.limit).then(|| ceil_secs(WINDOW.saturating_sub(f.first.elapsed())).max(1))
    }

    pub fn failed(&self, ip: IpAddr) {
        self.counter.record(network_of(ip));
    }

    pub fn sweep(&self) {
        self.counter.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn after_the_burst_one_request_per_emission_interval() {
        let clock = FakeRelativeClock::default();
        let t: Throttle<&str, _> = Throttle::with_clock(60, 60, clock.clone());
        for i in 0..60 {
            let b = t.check(&"key").expect("within the burst");
            assert_eq!(b.remaining, 59 - i);
            assert_eq!(b.limit, 60);
        }
        let (budget, retry_after) = t.check(&"key").unwrap_err();
        assert_eq!(retry_after, 1);
        assert_eq!(budget.remaining, 0);
        assert_eq!(budget.reset_secs, 60);
        // Another key has its own budget.
        assert!(t.check(&"other").is_ok());
        // A retry after Retry-After seconds succeeds, and the next one is refused again.
        clock.advance(Duration::from_secs(retry_after));
        assert!(t.check(&"key").is_ok());
        assert!(t.check(&"key").is_err());
    }

    #[test]
    fn slow_rates_give_long_retry_after() {
        let clock = FakeRelativeClock::default();
        let t: Throttle<u8, _> = Throttle::with_clock(2, 2, clock.clone());
        assert_eq!(t.check(&1).unwrap().reset_secs, 30);
        assert!(t.check(&1).is_ok());
        let (_, retry) = t.check(&1).unwrap_err();
        assert_eq!(retry, 30);
        clock.advance(Duration::from_secs(29));
        assert!(t.check(&1).is_err());
        clock.advance(Duration::from_secs(1));
        assert!(t.check(&1).is_ok());
    }

    #[test]
    fn twenty_failures_block_an_address() {
        let f = AuthFailures::new(20);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..19 {
            f.failed(ip);
            assert!(f.blocked(ip).is_none());
        }
        f.failed(ip);
        let secs = f.blocked(ip).expect("blocked");
        assert!((1..=60).contains(&secs));
        assert!(f.blocked("203.0.113.10".parse().unwrap()).is_none());
    }
}
