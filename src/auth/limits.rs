//! Login limits (SPEC 8.2): attempts per client IP, and a growing delay per submitted email
//! after repeated failures, whether or not an account has that email.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Failures forgiven after this long without another.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
const FREE_FAILURES: u32 = 5;
const MAX_DELAY: Duration = Duration::from_secs(10);

pub struct LoginLimits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimits {
    pub fn new(attempts_per_minute: u32) -> Self {
        let n = NonZeroU32::new(attempts_per_minute.max(1)).expect("non-zero");
        LoginLimits {
            per_ip: RateLimiter::keyed(Quota::per_minute(n)),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt from `ip`; `Err(seconds)` when over the limit.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), u64> {
        self.per_ip.check_key(&ip).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .max(1)
        })
    }

    /// How long to hold a login for `email` before checking it.
    pub fn delay_for(&self, email: &str) -> Duration {
        let key = email.trim().to_lowercase();
        let failures = self.failures.lock().expect("not poisoned");
        match failures.get(&key) {
            Some((n, last)) if *n >= FREE_FAILURES && last.elapsed() < FAILURE_WINDOW => {
                let steps = (*n - FREE_FAILURES).min(6);
                (Duration::from_millis(250) * 2u32.pow(steps)).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    pub fn failed(&self, email: &str) {
        let key = email.trim().to_lowercase();
        let mut failures = self.failures.lock().expect("not poisoned");
        if failures.len() > 100_000 {
            failures.retain(|_, (_, last)| last.elapsed() < FAILURE_WINDOW);
        }
        let entry = failures.entry(key).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }

    pub fn succeeded(&self, email: &str) {
        let key = email.trim().to_lowercase();
        self.failures.lock().expect("not poisoned").remove(&key);
    }

    /// Drops state that no longer limits anyone.
    pub fn sweep(&self) {
        self.per_ip.retain_recent();
        self.failures
            .lock()
            .expect("not poisoned")
            .retain(|_, (_, last)| last.elapsed() < FAILURE_WINDOW);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eleventh_attempt_in_a_minute_is_refused() {
        let l = LoginLimits::new(10);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert!(l.attempt(ip).is_ok());
        }
        let wait = l.attempt(ip).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(l.attempt("192.0.2.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn delay_grows_after_five_failures_for_any_email() {
        let l = LoginLimits::new(10);
        for _ in 0..5 {
            assert_eq!(l.delay_for("Nobody@Example.com"), Duration::ZERO);
            l.failed("nobody@example.com");
        }
        assert_eq!(
            l.delay_for("nobody@example.com"),
            Duration::from_millis(250)
        );
        l.failed("nobody@example.com");
        assert_eq!(
            l.delay_for("nobody@example.com"),
            Duration::from_millis(500)
        );
        l.succeeded("nobody@example.com");
        assert_eq!(l.delay_for("nobody@example.com"), Duration::ZERO);
    }
}
