//! [`LoginLimiter`]: an in-process brake on password guessing, per username and per client.
//!
//! A sliding window: at most `max_failures` failed logins per key within `window`; past that
//! [`LoginLimiter::check`] answers [`StoreError::RateLimited`] with the time until the oldest
//! failure leaves the window. Two keys are counted separately: the username (slows a guesser
//! spread over many addresses) and the client key, e.g. the IP address (slows one address
//! trying many usernames). A success clears the username's count only: clearing the client's
//! would let an attacker reset it by logging into an account of their own between guesses.
//!
//! Time is passed in (`now: Instant`), so tests run without sleeping. The state lives in
//! this process only; several server processes each keep their own.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::StoreError;

/// Keys kept before old, quiet ones are swept out (bounds memory under a spray of names).
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Client(String),
}

impl Default for LoginLimiter {
    /// 5 failures per minute.
    fn default() -> Self {
        LoginLimiter::new(5, Duration::from_secs(60))
    }
}

impl LoginLimiter {
    /// At most `max_failures` (at least 1) failures per key within `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        LoginLimiter {
            max_failures: usize::try_from(max_failures.max(1)).unwrap_or(usize::MAX),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(username: &str, client: &str) -> [Key; 2] {
        [
            Key::User(username.to_ascii_lowercase()),
            Key::Client(client.to_owned()),
        ]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // A panic elsewhere while holding the lock leaves consistent data: keep going.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ok while both the username and the client may try again; otherwise `RateLimited` with
    /// the longer of the two waits.
    pub fn check(&self, username: &str, client: &str, now: Instant) -> Result<(), StoreError> {
        let mut map = self.lock();
        let mut wait = Duration::ZERO;
        for key in Self::keys(username, client) {
            if let Some(q) = map.get_mut(&key) {
                self.expire(q, now);
                if q.len() >= self.max_failures {
                    if let Some(oldest) = q.front() {
                        let left = oldest
                            .checked_add(self.window)
                            .map_or(self.window, |until| until.saturating_duration_since(now));
                        wait = wait.max(left);
                    }
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(StoreError::RateLimited { retry_after: wait })
        }
    }

    /// Counts a failed login against both keys.
    pub fn record_failure(&self, username: &str, client: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, q| {
                q.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < self.window)
            });
        }
        for key in Self::keys(username, client) {
            let q = map.entry(key).or_default();
            self.expire(q, now);
            q.push_back(now);
            // Older entries than the limit never matter.
            while q.len() > self.max_failures {
                q.pop_front();
            }
        }
    }

    /// A successful login clears the username's failures (not the client's).
    pub fn record_success(&self, username: &str) {
        self.lock()
            .remove(&Key::User(username.to_ascii_lowercase()));
    }

    fn expire(&self, q: &mut VecDeque<Instant>, now: Instant) {
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn retry_after(r: Result<(), StoreError>) -> Option<Duration> {
        match r {
            Ok(()) => None,
            Err(StoreError::RateLimited { retry_after }) => Some(retry_after),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn five_failures_per_minute_then_limited_until_the_oldest_ages_out() {
        let l = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..5 {
            assert!(l.check("alice", "1.2.3.4", t0 + i * S).is_ok(), "try {i}");
            l.record_failure("alice", "1.2.3.4", t0 + i * S);
        }
        // Five failures at t0..t0+4s: the sixth waits until t0+60s.
        assert_eq!(
            retry_after(l.check("alice", "1.2.3.4", t0 + 10 * S)),
            Some(50 * S)
        );
        assert_eq!(
            retry_after(l.check("ALICE", "9.9.9.9", t0 + 10 * S)),
            Some(50 * S),
            "per username, any case"
        );
        assert_eq!(
            retry_after(l.check("bob", "1.2.3.4", t0 + 10 * S)),
            Some(50 * S),
            "per client"
        );
        assert!(
            l.check("bob", "9.9.9.9", t0 + 10 * S).is_ok(),
            "others unaffected"
        );
        // At t0+60s the first failure has aged out: one more try is allowed.
        assert!(l.check("alice", "1.2.3.4", t0 + 60 * S).is_ok());
        l.record_failure("alice", "1.2.3.4", t0 + 60 * S);
        assert_eq!(
            retry_after(l.check("alice", "1.2.3.4", t0 + 60 * S)),
            Some(S)
        );
    }

    #[test]
    fn success_clears_the_username_but_not_the_client() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            l.record_failure("alice", "ip", t0);
        }
        assert!(l.check("alice", "other-ip", t0).is_err());
        l.record_success("Alice");
        assert!(l.check("alice", "other-ip", t0).is_ok());
        assert!(
            l.check("mallory", "ip", t0).is_err(),
            "the client stays limited"
        );
    }

    #[test]
    fn a_huge_window_does_not_overflow() {
        let l = LoginLimiter::new(1, Duration::MAX);
        let t0 = Instant::now();
        l.record_failure("a", "ip", t0);
        assert!(retry_after(l.check("a", "ip", t0)).is_some());
    }

    #[test]
    fn many_keys_are_swept() {
        let l = LoginLimiter::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..(SWEEP_ABOVE + 10) {
            l.record_failure(&format!("u{i}"), "ip", t0);
        }
        l.record_failure("late", "ip2", t0 + 2 * S);
        assert!(l.lock().len() <= 3, "old keys dropped, {}", l.lock().len());
    }
}
