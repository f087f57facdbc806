//! Helpers shared by the Redis-backed suites (`bus`, `presence`, `search`).
//!
//! Redis: `GAX_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). The Redis cases fail,
//! saying so, when it is unreachable; `GAX_TEST_REDIS_URL=skip` skips them with a note.
//! Each case uses its own random key prefix and deletes its keys at the end.

#![allow(dead_code)] // each suite uses a different part

use std::future::Future;
use std::time::{Duration, Instant};

pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";

/// A Redis URL and a fresh key prefix for one case; `None` (with a printed note) when Redis
/// tests are skipped.
pub async fn redis(case: &str) -> Option<RedisCase> {
    let url = std::env::var("GAX_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS.into());
    if url == "skip" {
        eprintln!("GAX_TEST_REDIS_URL=skip: Redis case {case} skipped");
        return None;
    }
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the Redis tests need a server at {url} ({e}); start one, point \
                 GAX_TEST_REDIS_URL at another, or set GAX_TEST_REDIS_URL=skip"
            )
        });
    let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    let prefix = format!("gaxtest:{case}:{}:", random_hex());
    Some(RedisCase { url, prefix, conn })
}

pub struct RedisCase {
    pub url: String,
    pub prefix: String,
    conn: redis::aio::MultiplexedConnection,
}

impl RedisCase {
    /// Deletes every key of this case.
    pub async fn cleanup(mut self) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut self.conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: i64 = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut self.conn)
                .await
                .unwrap();
        }
    }
}

pub fn random_hex() -> String {
    let bytes: [u8; 6] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Polls `check` every 10 ms until it gives `Some`, failing after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the next delivery, failing after 5 s instead of hanging.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 5 s"))
}
