//! Per-key quotas: at most `n` actions per `period` for one key (a user, an address, a call
//! identity), as a token bucket (a full burst of `n`, refilled evenly over `period`).
//! [`Quotas::take`] answers [`StoreError::RateLimited`] with the wait until one more action
//! is allowed, which the doors turn into 429 + `Retry-After` (HTTP) or a `rate_limited` error
//! (WebSocket).
//!
//! Memory is bounded: a key whose bucket has refilled completely is the same as no key, so
//! past [`SWEEP_ABOVE`] keys the full ones are dropped. Time is passed in (`now`), so tests do
//! not sleep. The state lives in this process; several nodes each keep their own.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::StoreError;

/// Keys kept before full buckets are swept out.
pub const SWEEP_ABOVE: usize = 100_000;

/// `n` actions per `period` (`n` at once, then one every `period / n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub n: u32,
    pub period: Duration,
}

impl Quota {
    pub const fn new(n: u32, period: Duration) -> Quota {
        Quota { n, period }
    }

    /// `"300/1m"`, `"10/1h"`, `"5/s"`: a count, a slash and a duration (humantime: `s`, `m`,
    /// `h`, `d`, ...; a bare unit means one of it). `"off"` is no limit.
    pub fn parse(text: &str) -> Result<Option<Quota>, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (n, period) = t
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a quota like 300/1m or off"))?;
        let n: u32 = n
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{text:?}: the count must be a positive number"))?;
        let period = period.trim();
        let period = if period.starts_with(|c: char| c.is_ascii_digit()) {
            humantime::parse_duration(period).map_err(|e| format!("{text:?}: {e}"))?
        } else {
            humantime::parse_duration(&format!("1{period}"))
                .map_err(|e| format!("{text:?}: {e}"))?
        };
        if period.is_zero() {
            return Err(format!("{text:?}: the period must be positive"));
        }
        Ok(Some(Quota { n, period }))
    }

    /// Time to earn one action back.
    fn interval(&self) -> Duration {
        self.period / self.n.max(1)
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.n, humantime::format_duration(self.period))
    }
}

/// The quotas an operator sets (`gax serve --rate-limit KIND=N/PERIOD`, see
/// docs/operations.md, "Security"); `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Messages one user may send, over REST and WebSocket together.
    pub sends: Option<Quota>,
    /// Accounts one source address may register.
    pub signups: Option<Quota>,
    /// Uploads one user may start (whole, multipart or resumable).
    pub uploads: Option<Quota>,
    /// WHIP and WHEP sessions one token subject may start.
    pub whip: Option<Quota>,
    /// Messages one WebSocket session may send, of every kind (calls, messenger, watch).
    pub ws_messages: Option<Quota>,
}

impl Default for RateLimits {
    fn default() -> Self {
        const M: Duration = Duration::from_secs(60);
        const H: Duration = Duration::from_secs(3600);
        RateLimits {
            sends: Some(Quota::new(300, M)),
            signups: Some(Quota::new(10, H)),
            uploads: Some(Quota::new(200, H)),
            whip: Some(Quota::new(30, M)),
            ws_messages: Some(Quota::new(50, Duration::from_secs(1))),
        }
    }
}

impl RateLimits {
    /// No quota at all (a benchmark that measures the server, not its limits).
    pub const OFF: RateLimits = RateLimits {
        sends: None,
        signups: None,
        uploads: None,
        whip: None,
        ws_messages: None,
    };

    /// The names `--rate-limit` takes.
    pub const KINDS: [&'static str; 5] = ["sends", "signups", "uploads", "whip", "ws_messages"];

    /// Sets one quota from `KIND=N/PERIOD` (or `KIND=off`).
    pub fn set(&mut self, setting: &str) -> Result<(), String> {
        let (kind, quota) = setting
            .split_once('=')
            .ok_or_else(|| format!("{setting:?}: use KIND=N/PERIOD, e.g. sends=300/1m"))?;
        let quota = Quota::parse(quota)?;
        let slot = match kind.trim() {
            "sends" => &mut self.sends,
            "signups" => &mut self.signups,
            "uploads" => &mut self.uploads,
            "whip" => &mut self.whip,
            "ws_messages" => &mut self.ws_messages,
            other => {
                return Err(format!(
                    "unknown rate limit {other:?}; one of {}",
                    Self::KINDS.join(", ")
                ))
            }
        };
        *slot = quota;
        Ok(())
    }
}

/// One quota, counted per key. `None` as the quota: no limit.
#[derive(Debug)]
pub struct Quotas<K> {
    quota: Option<Quota>,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Actions available at `at` (fractional: refills are continuous).
    tokens: f64,
    at: Instant,
}

impl<K: Hash + Eq + Clone> Quotas<K> {
    pub fn new(quota: Option<Quota>) -> Quotas<K> {
        Quotas {
            quota,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn quota(&self) -> Option<Quota> {
        self.quota
    }

    /// Takes one action for `key`, or says how long until one is allowed.
    pub fn take(&self, key: &K, now: Instant) -> Result<(), StoreError> {
        let Some(q) = self.quota else {
            return Ok(());
        };
        let burst = f64::from(q.n);
        let per_sec = burst / q.period.as_secs_f64();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, b| refilled(b, now, per_sec, burst) < burst);
        }
        let bucket = map.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        bucket.tokens = refilled(bucket, now, per_sec, burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        let retry_after = Duration::try_from_secs_f64(missing / per_sec).unwrap_or(q.interval());
        Err(StoreError::RateLimited { retry_after })
    }
}

fn refilled(b: &Bucket, now: Instant, per_sec: f64, burst: f64) -> f64 {
    (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec).min(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn wait(r: Result<(), StoreError>) -> Option<Duration> {
        match r {
            Ok(()) => None,
            Err(StoreError::RateLimited { retry_after }) => Some(retry_after),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_burst_then_one_per_interval_per_key() {
        let q = Quotas::new(Some(Quota::new(3, 3 * S)));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(q.take(&"alice", t0).is_ok());
        }
        let w = wait(q.take(&"alice", t0)).expect("limited");
        assert!(w > Duration::from_millis(990) && w <= S, "{w:?}");
        assert!(q.take(&"bob", t0).is_ok(), "per key");
        assert!(
            q.take(&"alice", t0 + S).is_ok(),
            "one earned back per second"
        );
        assert!(q.take(&"alice", t0 + S).is_err());
    }

    #[test]
    fn off_never_limits_and_quotas_parse() {
        let q: Quotas<u8> = Quotas::new(None);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert!(q.take(&1, t0).is_ok());
        }
        assert_eq!(Quota::parse("300/1m"), Ok(Some(Quota::new(300, 60 * S))));
        assert_eq!(Quota::parse("10/h"), Ok(Some(Quota::new(10, 3600 * S))));
        assert_eq!(Quota::parse(" 5 / 2s "), Ok(Some(Quota::new(5, 2 * S))));
        assert_eq!(Quota::parse("off"), Ok(None));
        for bad in ["", "5", "0/1m", "-1/1m", "x/1m", "5/0s", "5/soon"] {
            assert!(Quota::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Quota::new(300, 60 * S).to_string(), "300/1m");
    }

    #[test]
    fn settings_by_name() {
        let mut l = RateLimits::default();
        l.set("sends=off").unwrap();
        l.set("whip = 2/1s").unwrap();
        assert_eq!((l.sends, l.whip), (None, Some(Quota::new(2, S))));
        assert!(l.set("bogus=1/1s").is_err());
        assert!(l.set("sends").is_err());
        assert!(l.set("sends=fast").is_err());
    }

    #[test]
    fn many_keys_are_swept_once_full_again() {
        let q = Quotas::new(Some(Quota::new(1, S)));
        let t0 = Instant::now();
        for i in 0..(SWEEP_ABOVE + 10) {
            q.take(&i, t0).unwrap();
        }
        q.take(&usize::MAX, t0 + 2 * S).unwrap();
        assert!(q.buckets.lock().unwrap().len() <= 2);
    }
}
