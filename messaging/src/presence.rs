//! Presence: who is online, from heartbeats that expire.
//!
//! Each client connection heartbeats ([`Presence::heartbeat`]) with its user and a connection
//! id; a user is online while at least one of their connections heartbeated within the TTL
//! (default [`DEFAULT_TTL`], 30 s). Closing a connection ([`Presence::disconnect`]) removes
//! it at once; a connection that just vanishes expires after the TTL.
//!
//! Changes are reported as [`PresenceChange`]s: offline → online by the heartbeat that made
//! it, online → offline by the disconnect that made it or, for expiry, by
//! [`Presence::sweep`] (run it periodically, e.g. with [`Presence::spawn_sweeper`]). Each
//! change is reported exactly once, even with several nodes sharing Redis, and the reports
//! for one user alternate (online, offline, online, …). A user whose connections expired but
//! who heartbeats again before a sweep noticed stays online without a report. With
//! [`Presence::publishing_to`], every change is also published on the [`Bus`] as
//! [`Event::Presence`].
//!
//! Backends:
//! - **in-process** ([`Presence::in_process`]): a map behind a mutex; time from a [`Clock`]
//!   (injectable for tests).
//! - **Redis** ([`Presence::redis`]): per user a sorted set of connection ids scored by their
//!   expiry (`{prefix}presence:u:<id>`, itself expiring with its last connection) and one
//!   sorted set of users announced online, scored by their latest expiry
//!   (`{prefix}presence:online`), which the sweep scans. Every change runs as one Lua script
//!   with the Redis server's clock, so nodes agree regardless of their own clocks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, Script};
use tokio::task::JoinHandle;

use crate::bus::{Bus, BusError, Event};
use crate::store::{Clock, SystemClock, UserId};

/// How long a heartbeat keeps a connection online unless configured otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// Longest connection id accepted.
pub const CONNECTION_ID_MAX: usize = 128;
/// Most users one sweep turns offline (the next sweep takes the rest).
const SWEEP_BATCH: usize = 500;

/// A user came online or went offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceChange {
    pub user: UserId,
    pub online: bool,
}

impl PresenceChange {
    /// The bus event announcing this change.
    pub fn event(&self) -> Event {
        Event::Presence {
            user: self.user,
            online: self.online,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("a connection id is 1 to {CONNECTION_ID_MAX} bytes")]
    InvalidConnectionId,
    #[error("invalid presence configuration: {0}")]
    Config(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The change happened but could not be published.
    #[error("publishing a presence change failed: {0}")]
    Bus(#[from] BusError),
}

/// Online status of users; cheap to clone.
#[derive(Clone)]
pub struct Presence {
    backend: Arc<Backend>,
    ttl: Duration,
    bus: Option<Bus>,
}

enum Backend {
    Local {
        clock: Arc<dyn Clock>,
        state: Mutex<LocalState>,
    },
    Redis(RedisPresence),
}

#[derive(Default)]
struct LocalState {
    /// Per user: connection id -> expiry (Unix ms).
    connections: HashMap<UserId, HashMap<String, i64>>,
    /// Users whose coming online was reported and going offline not yet.
    announced: HashSet<UserId>,
}

struct RedisPresence {
    conn: ConnectionManager,
    prefix: String,
    heartbeat: Script,
    settle: Script,
    count: Script,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.backend {
            Backend::Local { .. } => "in-process",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("Presence")
            .field("backend", &kind)
            .field("ttl", &self.ttl)
            .field("publishing", &self.bus.is_some())
            .finish()
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

fn check_connection_id(id: &str) -> Result<(), PresenceError> {
    if id.is_empty() || id.len() > CONNECTION_ID_MAX {
        return Err(PresenceError::InvalidConnectionId);
    }
    Ok(())
}

impl Presence {
    /// In-process presence on the system clock.
    pub fn in_process(ttl: Duration) -> Presence {
        Presence::in_process_with_clock(ttl, Arc::new(SystemClock))
    }

    /// In-process presence on the given clock (tests move time by hand).
    pub fn in_process_with_clock(ttl: Duration, clock: Arc<dyn Clock>) -> Presence {
        Presence {
            backend: Arc::new(Backend::Local {
                clock,
                state: Mutex::new(LocalState::default()),
            }),
            ttl: ttl.max(Duration::from_millis(1)),
            bus: None,
        }
    }

    /// Presence in the Redis at `url`, keys starting with `prefix` (the same on every node).
    pub async fn redis(url: &str, prefix: &str, ttl: Duration) -> Result<Presence, PresenceError> {
        if ttl < Duration::from_millis(1) {
            return Err(PresenceError::Config("ttl must be at least 1 ms".into()));
        }
        let client = Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(Presence {
            backend: Arc::new(Backend::Redis(RedisPresence {
                conn,
                prefix: prefix.to_owned(),
                heartbeat: Script::new(HEARTBEAT_LUA),
                settle: Script::new(SETTLE_LUA),
                count: Script::new(COUNT_LUA),
            })),
            ttl,
            bus: None,
        })
    }

    /// The same presence, also publishing every change on `bus`.
    pub fn publishing_to(mut self, bus: Bus) -> Presence {
        self.bus = Some(bus);
        self
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Marks `connection` of `user` alive for another TTL. Returns the change if the user
    /// just came online.
    pub async fn heartbeat(
        &self,
        user: UserId,
        connection: &str,
    ) -> Result<Option<PresenceChange>, PresenceError> {
        check_connection_id(connection)?;
        let came_online = match &*self.backend {
            Backend::Local { clock, state } => {
                let now = clock.now_ms();
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let conns = state.connections.entry(user).or_default();
                conns.retain(|_, exp| *exp > now);
                conns.insert(connection.to_owned(), now.saturating_add(ttl_ms(self.ttl)));
                state.announced.insert(user)
            }
            Backend::Redis(r) => {
                let mut conn = r.conn.clone();
                let n: i64 = r
                    .heartbeat
                    .key(r.user_key(user))
                    .key(r.index_key())
                    .arg(connection)
                    .arg(ttl_ms(self.ttl))
                    .arg(user.0)
                    .invoke_async(&mut conn)
                    .await?;
                n == 1
            }
        };
        self.report(came_online.then_some(PresenceChange { user, online: true }))
            .await
    }

    /// Forgets `connection` of `user`. Returns the change if the user just went offline.
    pub async fn disconnect(
        &self,
        user: UserId,
        connection: &str,
    ) -> Result<Option<PresenceChange>, PresenceError> {
        check_connection_id(connection)?;
        let went_offline = match &*self.backend {
            Backend::Local { clock, state } => {
                let now = clock.now_ms();
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(conns) = state.connections.get_mut(&user) {
                    conns.remove(connection);
                }
                state.settle(user, now)
            }
            Backend::Redis(r) => r.settle(user, Some(connection)).await?,
        };
        self.report(went_offline.then_some(PresenceChange {
            user,
            online: false,
        }))
        .await
    }

    /// Is `user` online now?
    pub async fn is_online(&self, user: UserId) -> Result<bool, PresenceError> {
        Ok(!self.online(&[user]).await?.is_empty())
    }

    /// Those of `users` who are online now, in the given order (duplicates kept).
    pub async fn online(&self, users: &[UserId]) -> Result<Vec<UserId>, PresenceError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        match &*self.backend {
            Backend::Local { clock, state } => {
                let now = clock.now_ms();
                let state = state.lock().unwrap_or_else(|p| p.into_inner());
                Ok(users
                    .iter()
                    .copied()
                    .filter(|u| {
                        state
                            .connections
                            .get(u)
                            .is_some_and(|c| c.values().any(|exp| *exp > now))
                    })
                    .collect())
            }
            Backend::Redis(r) => {
                let mut online = Vec::new();
                // Bounded script size: ask in chunks.
                for chunk in users.chunks(500) {
                    let mut invocation = r.count.prepare_invoke();
                    for user in chunk {
                        invocation.key(r.user_key(*user));
                    }
                    let mut conn = r.conn.clone();
                    let counts: Vec<i64> = invocation.invoke_async(&mut conn).await?;
                    online.extend(
                        chunk
                            .iter()
                            .zip(counts)
                            .filter(|(_, n)| *n > 0)
                            .map(|(u, _)| *u),
                    );
                }
                Ok(online)
            }
        }
    }

    /// Finds users announced online whose connections have all expired, marks them offline
    /// and returns (and publishes) those changes. With several nodes, each expiry is
    /// reported by exactly one of them.
    pub async fn sweep(&self) -> Result<Vec<PresenceChange>, PresenceError> {
        let offline: Vec<UserId> = match &*self.backend {
            Backend::Local { clock, state } => {
                let now = clock.now_ms();
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let candidates: Vec<UserId> = state.announced.iter().copied().collect();
                candidates
                    .into_iter()
                    .filter(|u| state.settle(*u, now))
                    .take(SWEEP_BATCH)
                    .collect()
            }
            Backend::Redis(r) => {
                let mut conn = r.conn.clone();
                let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
                let now = secs * 1000 + micros / 1000;
                let candidates: Vec<i64> = redis::cmd("ZRANGEBYSCORE")
                    .arg(r.index_key())
                    .arg("-inf")
                    .arg(now)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(SWEEP_BATCH)
                    .query_async(&mut conn)
                    .await?;
                let mut offline = Vec::new();
                for user in candidates.into_iter().map(UserId) {
                    if r.settle(user, None).await? {
                        offline.push(user);
                    }
                }
                offline
            }
        };
        let changes: Vec<PresenceChange> = offline
            .into_iter()
            .map(|user| PresenceChange {
                user,
                online: false,
            })
            .collect();
        if let Some(bus) = &self.bus {
            for change in &changes {
                bus.publish(&change.event()).await?;
            }
        }
        Ok(changes)
    }

    /// Runs [`Presence::sweep`] every `every` until the handle is aborted or dropped with
    /// the runtime. Failures are logged and retried at the next tick.
    pub fn spawn_sweeper(&self, every: Duration) -> JoinHandle<()> {
        let presence = self.clone();
        let every = every.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = presence.sweep().await {
                    tracing::warn!(error = %e, "presence sweep failed");
                }
            }
        })
    }

    async fn report(
        &self,
        change: Option<PresenceChange>,
    ) -> Result<Option<PresenceChange>, PresenceError> {
        if let (Some(change), Some(bus)) = (&change, &self.bus) {
            bus.publish(&change.event()).await?;
        }
        Ok(change)
    }
}

impl LocalState {
    /// Drops `user`'s expired connections; if none is left and the user was announced online,
    /// marks them offline and returns true.
    fn settle(&mut self, user: UserId, now: i64) -> bool {
        let alive = match self.connections.get_mut(&user) {
            Some(conns) => {
                conns.retain(|_, exp| *exp > now);
                !conns.is_empty()
            }
            None => false,
        };
        if alive {
            return false;
        }
        self.connections.remove(&user);
        self.announced.remove(&user)
    }
}

impl RedisPresence {
    fn user_key(&self, user: UserId) -> String {
        format!("{}presence:u:{}", self.prefix, user.0)
    }

    fn index_key(&self) -> String {
        format!("{}presence:online", self.prefix)
    }

    /// Removes `connection` (if given) and expired connections; true if the user just went
    /// offline.
    async fn settle(
        &self,
        user: UserId,
        connection: Option<&str>,
    ) -> Result<bool, redis::RedisError> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .settle
            .key(self.user_key(user))
            .key(self.index_key())
            .arg(connection.unwrap_or(""))
            .arg(user.0)
            .invoke_async(&mut conn)
            .await?;
        Ok(n == 1)
    }
}

/// Lua prelude: `now`, the Redis server's clock in Unix ms. (Redis 7 replicates scripts by
/// their effects, so reading TIME in a script is allowed.)
macro_rules! lua_now {
    () => {
        "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"
    };
}

/// KEYS: user's connections, online index. ARGV: connection, ttl ms, user id.
/// Returns 1 if the user was not announced online before (came online).
const HEARTBEAT_LUA: &str = concat!(
    lua_now!(),
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
redis.call('ZADD', KEYS[1], string.format('%d', now + tonumber(ARGV[2])), ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], top[2])
local was = redis.call('ZSCORE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[2], top[2], ARGV[3])
if was then return 0 end
return 1
"
);

/// KEYS: user's connections, online index. ARGV: connection to remove ('' for none), user id.
/// Drops expired connections; returns 1 if none is left and the user was announced online.
const SETTLE_LUA: &str = concat!(
    lua_now!(),
    "if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now))
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 0 then
  redis.call('DEL', KEYS[1])
  return redis.call('ZREM', KEYS[2], ARGV[2])
end
redis.call('ZADD', KEYS[2], 'XX', top[2], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], top[2])
return 0
"
);

/// KEYS: users' connection sets. Returns, per key, how many connections are alive.
const COUNT_LUA: &str = concat!(
    lua_now!(),
    "local out = {}
for i, k in ipairs(KEYS) do
  out[i] = redis.call('ZCOUNT', k, string.format('(%d', now), '+inf')
end
return out
"
);
