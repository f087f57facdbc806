//! The Redis bus, for several nodes sharing one Redis: durable events appended to a Stream
//! (numbered atomically by a small Lua script) and read with `XREAD BLOCK` from the last entry
//! seen, ephemeral ones over pub/sub. Each subscription runs two tasks (stream reader,
//! pub/sub listener) that reconnect on their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, MultiplexedConnection, PubSub};
use redis::streams::StreamId;
use redis::streams::StreamReadReply;
use redis::{AsyncConnectionConfig, Client, Script};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::event::parse_stream_id;
use super::{BusError, Envelope, Event, Position};

/// Settings of the Redis backend.
#[derive(Debug, Clone)]
pub struct RedisBusOptions {
    /// About how many durable events the stream keeps (`XADD MAXLEN ~`: at least this many,
    /// trimmed in whole blocks). A subscriber that falls further behind gets
    /// [`BusError::Lagged`].
    pub max_len: u64,
    /// How long one `XREAD` waits before asking again.
    pub block: Duration,
    /// Most entries one `XREAD` returns.
    pub batch: u32,
    /// Events buffered per subscription between the Redis readers and [`Subscription::next`].
    pub buffer: usize,
}

impl Default for RedisBusOptions {
    fn default() -> Self {
        RedisBusOptions {
            max_len: 100_000,
            block: Duration::from_secs(2),
            batch: 256,
            buffer: 1024,
        }
    }
}

/// The Redis backend of one [`Bus`](super::Bus).
pub(super) struct RedisBus {
    client: Client,
    conn: ConnectionManager,
    pub(super) stream_key: String,
    /// How many durable events were ever appended (numbers the entries).
    count_key: String,
    channel: String,
    /// Numbers and appends one durable event, atomically.
    append: Script,
    options: RedisBusOptions,
}

/// KEYS: stream, counter. ARGV: max length, payload. Returns {entry id, number}.
const APPEND_LUA: &str = "local n = redis.call('INCR', KEYS[2])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'n', n, 'e', ARGV[2])
return {id, n}
";

impl RedisBus {
    pub(super) async fn open(
        url: &str,
        prefix: &str,
        options: RedisBusOptions,
    ) -> Result<RedisBus, BusError> {
        if options.max_len == 0 || options.batch == 0 {
            return Err(BusError::Config(
                "max_len and batch must be at least 1".into(),
            ));
        }
        if options.buffer == 0 || options.block.is_zero() {
            return Err(BusError::Config("buffer and block must be non-zero".into()));
        }
        let client = Client::open(url)?;
        let conn = client.get_connection_manager().await?;
        Ok(RedisBus {
            client,
            conn,
            stream_key: format!("{prefix}bus:events"),
            count_key: format!("{prefix}bus:count"),
            channel: format!("{prefix}bus:ephemeral"),
            append: Script::new(APPEND_LUA),
            options,
        })
    }

    /// Durable events to the stream (returning their position), the others over pub/sub.
    pub(super) async fn publish(
        &self,
        event: &Event,
        envelope: &Envelope,
    ) -> Result<Option<Position>, BusError> {
        let payload = serde_json::to_string(envelope)?;
        let mut conn = self.conn.clone();
        if event.is_durable() {
            let (id, n): (String, u64) = self
                .append
                .key(&self.stream_key)
                .key(&self.count_key)
                .arg(self.options.max_len)
                .arg(payload)
                .invoke_async(&mut conn)
                .await?;
            Ok(Some(Position::from_entry(&id, n)?))
        } else {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(payload)
                .query_async(&mut conn)
                .await?;
            Ok(None)
        }
    }

    /// A subscription from the newest entry of the stream on.
    pub(super) async fn subscribe_live(&self) -> Result<RedisSubscription, BusError> {
        let mut conn = self.conn.clone();
        let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.stream_key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let from = match newest.ids.first() {
            Some(entry) => entry_position(entry)?,
            None => Position::ORIGIN,
        };
        self.subscribe(from).await
    }

    pub(super) async fn subscribe(&self, from: Position) -> Result<RedisSubscription, BusError> {
        // Subscribe before returning, so nothing published after this call is missed.
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;

        let (tx, rx) = mpsc::channel(self.options.buffer);
        let dropped = Arc::new(AtomicU64::new(0));
        let reader = StreamReader {
            client: self.client.clone(),
            key: self.stream_key.clone(),
            options: self.options.clone(),
            last: from,
            tx: tx.clone(),
        };
        let listener = EphemeralListener {
            client: self.client.clone(),
            channel: self.channel.clone(),
            tx,
            dropped: dropped.clone(),
        };
        Ok(RedisSubscription {
            rx,
            dropped,
            tasks: vec![
                tokio::spawn(reader.run()),
                tokio::spawn(listener.run(pubsub)),
            ],
        })
    }
}

/// One subscription's end of its two reader tasks.
pub(super) struct RedisSubscription {
    rx: mpsc::Receiver<Result<Envelope, BusError>>,
    /// Ephemeral events dropped because the buffer was full, not yet reported.
    dropped: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl RedisSubscription {
    pub(super) async fn next(&mut self) -> Result<Envelope, BusError> {
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            return Err(BusError::Lagged {
                missed: Some(lost),
                durable: false,
            });
        }
        self.rx.recv().await.unwrap_or(Err(BusError::Closed))
    }
}

impl Drop for RedisSubscription {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Reads the durable stream for one subscription, reconnecting and resuming from the last
/// entry it delivered.
struct StreamReader {
    client: Client,
    key: String,
    options: RedisBusOptions,
    /// The last entry delivered (or the start position).
    last: Position,
    tx: mpsc::Sender<Result<Envelope, BusError>>,
}

/// The position of a stream entry written by [`APPEND_LUA`].
fn entry_position(entry: &StreamId) -> Result<Position, BusError> {
    let n = entry
        .get::<u64>("n")
        .ok_or_else(|| BusError::Decode(format!("entry {}: no number", entry.id)))?;
    Position::from_entry(&entry.id, n)
}

impl StreamReader {
    async fn run(mut self) {
        let mut conn: Option<MultiplexedConnection> = None;
        let mut backoff = BACKOFF_MIN;
        while !self.tx.is_closed() {
            let c = match &mut conn {
                Some(c) => c,
                None => {
                    // XREAD BLOCK answers only after `block`: the response timeout must be longer.
                    let config = AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(Duration::from_secs(2)))
                        .set_response_timeout(Some(self.options.block + Duration::from_secs(5)));
                    match self
                        .client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                    {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            tracing::warn!(error = %e, stream = %self.key, "bus: reconnecting");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                            continue;
                        }
                    }
                }
            };
            match self.read_once(c).await {
                Ok(()) => backoff = BACKOFF_MIN,
                Err(ReadStop::Closed) => return,
                Err(ReadStop::Redis(e)) => {
                    tracing::warn!(error = %e, stream = %self.key, "bus: stream read failed");
                    conn = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn read_once(&mut self, conn: &mut MultiplexedConnection) -> Result<(), ReadStop> {
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(self.options.batch)
            .arg("BLOCK")
            .arg(u64::try_from(self.options.block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(&self.key)
            .arg(self.last.stream_id())
            .query_async(conn)
            .await?;
        let Some(reply) = reply else {
            return Ok(()); // nothing within `block`
        };
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let position = match entry_position(&entry) {
                Ok(p) => p,
                Err(e) => {
                    // Not written by this bus: skip it, but never read it again.
                    if let Some((ms, seq)) = parse_stream_id(&entry.id) {
                        self.last = Position {
                            ms,
                            seq,
                            n: self.last.n,
                        };
                    }
                    self.send(Err(e)).await?;
                    continue;
                }
            };
            // Numbers run 1, 2, 3, …: a jump means entries were trimmed before we read them.
            // (A smaller number means the counter was reset, e.g. Redis was flushed.)
            let expected = self.last.n + 1;
            if position.n > expected {
                self.send(Err(BusError::Lagged {
                    missed: Some(position.n - expected),
                    durable: true,
                }))
                .await?;
            }
            self.last = position;
            let item = match entry.get::<String>("e") {
                Some(json) => serde_json::from_str::<Envelope>(&json)
                    .map(|mut env| {
                        env.position = Some(position);
                        env
                    })
                    .map_err(|e| BusError::Decode(format!("entry {position}: {e}"))),
                None => Err(BusError::Decode(format!("entry {position}: no payload"))),
            };
            self.send(item).await?;
        }
        Ok(())
    }

    async fn send(&self, item: Result<Envelope, BusError>) -> Result<(), ReadStop> {
        self.tx.send(item).await.map_err(|_| ReadStop::Closed)
    }
}

enum ReadStop {
    /// The subscription was dropped.
    Closed,
    Redis(redis::RedisError),
}

impl From<redis::RedisError> for ReadStop {
    fn from(e: redis::RedisError) -> Self {
        ReadStop::Redis(e)
    }
}

/// Forwards ephemeral events from pub/sub for one subscription, resubscribing after a
/// disconnect (events published meanwhile are lost: they are ephemeral).
struct EphemeralListener {
    client: Client,
    channel: String,
    tx: mpsc::Sender<Result<Envelope, BusError>>,
    dropped: Arc<AtomicU64>,
}

impl EphemeralListener {
    async fn run(self, first: PubSub) {
        let mut pubsub = Some(first);
        let mut backoff = BACKOFF_MIN;
        while !self.tx.is_closed() {
            let current = match pubsub.take() {
                Some(p) => p,
                None => match self.connect().await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, channel = %self.channel, "bus: resubscribing");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                },
            };
            backoff = BACKOFF_MIN;
            let mut messages = current.into_on_message();
            while let Some(msg) = messages.next().await {
                let item = serde_json::from_slice::<Envelope>(msg.get_payload_bytes())
                    .map_err(|e| BusError::Decode(format!("ephemeral event: {e}")));
                match self.tx.try_send(item) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            tracing::warn!(channel = %self.channel, "bus: pub/sub connection lost");
        }
    }

    async fn connect(&self) -> Result<PubSub, redis::RedisError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        Ok(pubsub)
    }
}
