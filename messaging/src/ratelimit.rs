//! [`LoginLimiter`]: an in-process brake on password guessing, per (account, client) and per
//! client.
//!
//! A sliding window per key: past its limit within `window`, [`LoginLimiter::check`] answers
//! [`StoreError::RateLimited`] with the time until the oldest failure leaves the window. Two
//! keys are counted separately: the pair (username, client key, e.g. the IP address) slows one
//! address guessing one account's password, and the client key alone (with a higher limit)
//! slows one address trying many usernames. No key is the username alone: that would let anyone
//! lock any account out of login by failing on purpose from their own address, while the
//! owner's correct password from elsewhere is refused. A guesser spread over many addresses is
//! kept slow by argon2's cost per try. A success clears its own pair only: clearing the
//! client's count would let an attacker reset it by logging into an account of their own
//! between guesses.
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
    /// Failures allowed per (username, client) within `window`.
    per_account: usize,
    /// Failures allowed per client within `window`, over all usernames.
    per_client: usize,
    window: Duration,
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account { username: String, client: String },
    Client(String),
}

impl Default for LoginLimiter {
    /// 5 failures per minute per (account, address), 20 per minute per address.
    fn default() -> Self {
        LoginLimiter::new(5, 20, Duration::from_secs(60))
    }
}

impl LoginLimiter {
    /// At most `per_account` failures per (username, client) and `per_client` per client (each
    /// at least 1) within `window`.
    pub fn new(per_account: u32, per_client: u32, window: Duration) -> Self {
        let limit = |n: u32| usize::try_from(n.max(1)).unwrap_or(usize::MAX);
        LoginLimiter {
            per_account: limit(per_account),
            per_client: limit(per_client),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn account_key(username: &str, client: &str) -> Key {
        Key::Account {
            username: username.to_ascii_lowercase(),
            client: client.to_owned(),
        }
    }

    /// Both keys with their limits.
    fn keys(&self, username: &str, client: &str) -> [(Key, usize); 2] {
        [
            (Self::account_key(username, client), self.per_account),
            (Key::Client(client.to_owned()), self.per_client),
        ]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        // A panic elsewhere while holding the lock leaves consistent data: keep going.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ok while both the (username, client) pair and the client may try again; otherwise
    /// `RateLimited` with the longer of the two waits.
    pub fn check(&self, username: &str, client: &str, now: Instant) -> Result<(), StoreError> {
        let mut map = self.lock();
        let mut wait = Duration::ZERO;
        for (key, limit) in self.keys(username, client) {
            if let Some(q) = map.get_mut(&key) {
                self.expire(q, now);
                if q.len() >= limit {
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
        for (key, limit) in self.keys(username, client) {
            let q = map.entry(key).or_default();
            self.expire(q, now);
            q.push_back(now);
            // Older entries than the limit never matter.
            while q.len() > limit {
                q.pop_front();
            }
        }
    }

    /// A successful login clears the failures of this (username, client) pair, not the
    /// client's.
    pub fn record_success(&self, username: &str, client: &str) {
        self.lock().remove(&Self::account_key(username, client));
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
    fn five_failures_per_account_and_address_then_limited_until_the_oldest_ages_out() {
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
            retry_after(l.check("ALICE", "1.2.3.4", t0 + 10 * S)),
            Some(50 * S),
            "usernames in any case"
        );
        assert!(
            l.check("alice", "9.9.9.9", t0 + 10 * S).is_ok(),
            "the owner from another address is not locked out"
        );
        assert!(
            l.check("bob", "1.2.3.4", t0 + 10 * S).is_ok(),
            "the same address may still try another account"
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
    fn one_address_spraying_many_usernames_is_limited_for_all_of_them() {
        let l = LoginLimiter::new(5, 20, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..20 {
            let name = format!("user{i}");
            assert!(l.check(&name, "6.6.6.6", t0).is_ok(), "try {i}");
            l.record_failure(&name, "6.6.6.6", t0);
        }
        assert_eq!(retry_after(l.check("fresh", "6.6.6.6", t0)), Some(60 * S));
        assert!(l.check("fresh", "7.7.7.7", t0).is_ok(), "others unaffected");
    }

    #[test]
    fn success_clears_its_own_pair_but_not_the_client() {
        let l = LoginLimiter::new(3, 4, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            l.record_failure("alice", "ip", t0);
        }
        assert!(l.check("alice", "ip", t0).is_err());
        l.record_success("Alice", "ip");
        assert!(l.check("alice", "ip", t0).is_ok());
        l.record_failure("mallory", "ip", t0);
        assert!(
            l.check("mallory", "ip", t0).is_err(),
            "the client has used its 4 failures: it stays limited"
        );
    }

    #[test]
    fn a_huge_window_does_not_overflow() {
        let l = LoginLimiter::new(1, 1, Duration::MAX);
        let t0 = Instant::now();
        l.record_failure("a", "ip", t0);
        assert!(retry_after(l.check("a", "ip", t0)).is_some());
    }

    #[test]
    fn many_keys_are_swept() {
        let l = LoginLimiter::new(1, 1, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..(SWEEP_ABOVE + 10) {
            l.record_failure(&format!("u{i}"), "ip", t0);
        }
        l.record_failure("late", "ip2", t0 + 2 * S);
        assert!(l.lock().len() <= 3, "old keys dropped, {}", l.lock().len());
    }
}
