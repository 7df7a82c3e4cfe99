//! Login limits (docs/architecture.md, "Sessions and security"): attempts per client network,
//! and after repeated failures a growing wait per submitted email, whether or not an account
//! has that email. Attempts for an email that arrive before its wait is over are refused without
//! checking the password, so parallel guesses gain nothing; a browser that logged in to that
//! account before (`device.rs`) is not held back by the wait. A session that re-authenticates
//! (the current password of a password change) waits the same way after wrong passwords.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::Quota;
use governor::clock::{Clock, DefaultClock};

use super::bounded;
use super::failures::{FailureCounter, Window, network_of};
use super::ratelimit::ceil_secs;
use super::token::sha256;

/// Failures forgiven after this long without another.
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
const FREE_FAILURES: u32 = 5;
const MAX_DELAY: Duration = Duration::from_secs(10);
const MAX_TRACKED: usize = 100_000;

pub struct LoginLimits {
    per_ip: bounded::Limiter<IpAddr>,
    clock: DefaultClock,
    /// Keyed by the SHA-256 of the lower-cased email: fixed size whatever was submitted.
    failures: FailureCounter<[u8; 32]>,
    /// Wrong passwords from a remembered browser, keyed by its device token's SHA-256.
    device_failures: FailureCounter<[u8; 32]>,
    /// Wrong current passwords when a session re-authenticates, keyed by the session's hash.
    reauth_failures: FailureCounter<[u8; 32]>,
}

fn email_key(email: &str) -> [u8; 32] {
    sha256(email.trim().to_lowercase().as_bytes())
}

/// The wait after the `n`th failure: none for the first five, then 250 ms doubling to 10 s.
pub fn delay_after(n: u32) -> Duration {
    if n < FREE_FAILURES {
        return Duration::ZERO;
    }
    let steps = (n - FREE_FAILURES).min(6);
    (Duration::from_millis(250) * 2u32.pow(steps)).min(MAX_DELAY)
}

/// `Err(seconds)` while `key` must still wait after its last failure.
fn gate(counter: &FailureCounter<[u8; 32]>, key: &[u8; 32]) -> Result<(), u64> {
    let Some(f) = counter.get(key) else {
        return Ok(());
    };
    let not_before = f.last + delay_after(f.count);
    let now = Instant::now();
    if now < not_before {
        Err(ceil_secs(not_before - now).max(1))
    } else {
        Ok(())
    }
}

impl LoginLimits {
    pub fn new(attempts_per_minute: u32) -> Self {
        let n = NonZeroU32::new(attempts_per_minute.max(1)).expect("non-zero");
        let counter = || FailureCounter::new(Window::FromLast(FAILURE_WINDOW), MAX_TRACKED);
        LoginLimits {
            per_ip: bounded::keyed(Quota::per_minute(n)),
            clock: DefaultClock::default(),
            failures: counter(),
            device_failures: counter(),
            reauth_failures: counter(),
        }
    }

    /// Counts an attempt from `ip`'s network; `Err(seconds)` when over the limit.
    pub fn attempt(&self, ip: IpAddr) -> Result<(), u64> {
        self.per_ip
            .check_key(&network_of(ip))
            .map_err(|not_until| ceil_secs(not_until.wait_time_from(self.clock.now())).max(1))
    }

    /// `Err(seconds)` while `email` must still wait after its last failure.
    pub fn email_gate(&self, email: &str) -> Result<(), u64> {
        gate(&self.failures, &email_key(email))
    }

    pub fn failed(&self, email: &str) {
        self.failures.record(email_key(email));
    }

    pub fn succeeded(&self, email: &str) {
        self.failures.clear(&email_key(email));
    }

    /// Whether a remembered browser may still pass the email's wait: not after
    /// [`FREE_FAILURES`] wrong passwords of its own (a stolen device token buys a few guesses).
    pub fn device_trusted(&self, device_token: &str) -> bool {
        let key = sha256(device_token.as_bytes());
        self.device_failures
            .get(&key)
            .is_none_or(|f| f.count < FREE_FAILURES)
    }

    pub fn device_failed(&self, device_token: &str) {
        self.device_failures.record(sha256(device_token.as_bytes()));
    }

    /// `Err(seconds)` while a session that gave wrong current passwords must wait.
    pub fn reauth_gate(&self, session: &[u8; 32]) -> Result<(), u64> {
        gate(&self.reauth_failures, session)
    }

    pub fn reauth_failed(&self, session: &[u8; 32]) {
        self.reauth_failures.record(*session);
    }

    pub fn reauth_succeeded(&self, session: &[u8; 32]) {
        self.reauth_failures.clear(session);
    }

    /// Drops state that no longer limits anyone.
    pub fn sweep(&self) {
        self.per_ip.retain_recent();
        self.failures.sweep();
        self.device_failures.sweep();
        self.reauth_failures.sweep();
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
    fn an_email_waits_after_five_failures_whether_or_not_it_exists() {
        assert_eq!(delay_after(4), Duration::ZERO);
        assert_eq!(delay_after(5), Duration::from_millis(250));
        assert_eq!(delay_after(6), Duration::from_millis(500));
        assert_eq!(delay_after(40), MAX_DELAY);
        let l = LoginLimits::new(10);
        for _ in 0..4 {
            l.failed("Nobody@Example.com");
            assert!(l.email_gate("nobody@example.com").is_ok());
        }
        l.failed("nobody@example.com");
        assert_eq!(l.email_gate(" NOBODY@example.com ").unwrap_err(), 1);
        assert!(l.email_gate("somebody@example.com").is_ok());
        std::thread::sleep(Duration::from_millis(260));
        assert!(l.email_gate("nobody@example.com").is_ok());
        l.succeeded("nobody@example.com");
        assert!(l.email_gate("nobody@example.com").is_ok());
    }
}
