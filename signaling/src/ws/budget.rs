//! [`Budget`]: one session's token bucket for the messages it sends (a burst, then a steady
//! rate). Each WebSocket session keeps its own, so it needs no lock; the doors use one for all
//! of a session's messages (`--rate-limit ws_messages=...`) and finer ones for single kinds
//! (typing, watch-party controls).

use std::time::{Duration, Instant};

use messaging::Quota;

#[derive(Debug)]
pub(crate) struct Budget {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// `burst` at once, refilled at `per_sec`.
    pub(crate) fn new(burst: f64, per_sec: f64, now: Instant) -> Budget {
        Budget {
            burst,
            per_sec,
            tokens: burst,
            at: now,
        }
    }

    /// A quota's budget (`None`: unlimited).
    pub(crate) fn of(quota: Option<Quota>, now: Instant) -> Option<Budget> {
        let q = quota?;
        let burst = f64::from(q.n);
        Some(Budget::new(burst, burst / q.period.as_secs_f64(), now))
    }

    /// Takes one message's worth; false when the budget is spent.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until one more message is allowed.
    pub(crate) fn wait(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens).max(0.0) / self.per_sec).min(3600.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(3.0, 2.0, t0);
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert_eq!(b.wait(), Duration::from_millis(500));
        assert!(b.take(t0 + Duration::from_millis(500)));
        let mut q = Budget::of(Some(Quota::new(10, Duration::from_secs(1))), t0).unwrap();
        assert!((0..10).all(|_| q.take(t0)) && !q.take(t0));
        assert!(Budget::of(None, t0).is_none());
    }
}
