//! The event bus: what happened in the messenger ([`Event`]), carried from the node where it
//! happened to every node that delivers it to clients or indexes it for search.
//!
//! Two backends, chosen when the [`Bus`] is made:
//!
//! - **in-process** ([`Bus::in_process`]): a tokio broadcast channel, for a single node. A
//!   subscriber that falls more than the channel's capacity behind gets
//!   [`BusError::Lagged`] with the number of events it lost, then continues with the newest.
//! - **Redis** ([`Bus::redis`]), for several nodes sharing one Redis. Durable events
//!   ([`Event::is_durable`]: messages, chats, users, files) are appended to a Redis Stream
//!   (`XADD MAXLEN ~ N`) and each subscription reads it with `XREAD BLOCK` from the last entry
//!   it saw, so a subscriber whose connection dropped reconnects and catches up. Each entry
//!   also carries its number in the stream (1, 2, 3, …, given atomically with the `XADD` by a
//!   small Lua script), so a subscriber that finds numbers missing (the stream was trimmed
//!   past it) gets [`BusError::Lagged`] with the exact count. Ephemeral events (typing, read
//!   marks, presence, watch rooms) go over pub/sub: cheap, and lost while a node is
//!   disconnected, which is fine for them.
//!
//! ```text
//!  node A: bus.publish(&event) ──► durable?  yes ─► INCR {prefix}bus:count +
//!                                                   XADD {prefix}bus:events MAXLEN ~ N (one script)
//!                                            no  ─► PUBLISH {prefix}bus:ephemeral
//!  node B: bus.subscribe() ──► task: XREAD BLOCK … from last id ─┐
//!                          └─► task: SUBSCRIBE ephemeral ────────┴─► Subscription::next()
//! ```
//!
//! Every delivery is an [`Envelope`]: the event, the [`NodeId`] of the bus that published it
//! (a node recognises its own events by comparing with [`Bus::node`]) and, for durable events
//! on Redis, its stream [`Position`]. A consumer that persists what it applied (the search
//! indexer does) can resume after a restart with [`Bus::subscribe_from`].
//!
//! Order: durable events arrive in stream order, the same on every node; ephemeral events from
//! one publisher arrive in the order it published them. There is no order between a durable
//! and an ephemeral event. A subscriber sees its own node's events too.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rand::Rng;
use redis::aio::{ConnectionManager, MultiplexedConnection, PubSub};
use redis::streams::StreamId;
use redis::streams::StreamReadReply;
use redis::{AsyncConnectionConfig, Client, Script};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::messages::Message;
use crate::store::{ChatId, MessageId, UserId};

/// Something that happened, as carried on the bus.
///
/// Serialized as JSON with a `type` tag: `{"type":"typing","chat":1,"user":2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    // --- durable ---
    /// A message was stored (not sent for idempotent retries).
    MessageCreated { message: Message },
    /// A message's text was replaced; carries the message as it is now.
    MessageEdited { message: Message },
    /// A message became a tombstone.
    MessageDeleted {
        chat: ChatId,
        seq: i64,
        message: MessageId,
    },
    /// A chat was created, renamed or its members changed; carries the chat as it is now.
    ChatChanged {
        chat: ChatId,
        members: Vec<UserId>,
        /// Groups only.
        title: Option<String>,
    },
    /// A user registered or changed their profile.
    UserChanged {
        user: UserId,
        username: String,
        display_name: String,
    },
    /// A file was uploaded, owned by `owner` and shared in `chats`.
    FileAdded {
        file_id: String,
        owner: UserId,
        name: String,
        chats: Vec<ChatId>,
    },
    /// A file was removed.
    FileRemoved { file_id: String },

    // --- ephemeral ---
    /// `user` is typing in `chat`.
    Typing { chat: ChatId, user: UserId },
    /// `user` has read `chat` up to `seq`.
    ReadUpTo {
        chat: ChatId,
        user: UserId,
        seq: i64,
    },
    /// `user` came online or went offline (see `presence.rs`).
    Presence { user: UserId, online: bool },
    /// The friendships or friend requests between these users changed (their lists reload).
    FriendsChanged { users: Vec<UserId> },
    /// Something happened in watch room `room` (state, members, chat, reaction, buffering).
    Watch {
        room: String,
        event: crate::watch::WatchEvent,
    },
}

impl Event {
    /// Must this event reach every subscriber even across a brief disconnect? True for
    /// message, chat, user and file events; false for typing, read marks, presence, friend
    /// list changes and watch-room events.
    pub fn is_durable(&self) -> bool {
        !matches!(
            self,
            Event::Typing { .. }
                | Event::ReadUpTo { .. }
                | Event::Presence { .. }
                | Event::FriendsChanged { .. }
                | Event::Watch { .. }
        )
    }

    /// The chat this event belongs to, if it belongs to exactly one.
    pub fn chat(&self) -> Option<ChatId> {
        match self {
            Event::MessageCreated { message } | Event::MessageEdited { message } => {
                Some(message.chat)
            }
            Event::MessageDeleted { chat, .. }
            | Event::ChatChanged { chat, .. }
            | Event::Typing { chat, .. }
            | Event::ReadUpTo { chat, .. } => Some(*chat),
            Event::UserChanged { .. }
            | Event::FileAdded { .. }
            | Event::FileRemoved { .. }
            | Event::Presence { .. }
            | Event::FriendsChanged { .. }
            | Event::Watch { .. } => None,
        }
    }
}

/// The id of one bus instance (one node). Random, made when the [`Bus`] is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    fn random() -> NodeId {
        NodeId(format!("{:016x}", rand::rng().random::<u64>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A place in the Redis stream of durable events: the entry's stream id and its number
/// (the `n`-th durable event published under this prefix). Text form: `<ms>-<seq>#<n>`.
///
/// Subscribing from a position delivers the durable events after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    ms: u64,
    seq: u64,
    n: u64,
}

impl Position {
    /// Before the first event: subscribing from here replays every retained durable event.
    pub const ORIGIN: Position = Position {
        ms: 0,
        seq: 0,
        n: 0,
    };

    /// The number of this event in the stream: 1 for the first durable event ever published
    /// under this prefix, 0 for [`Position::ORIGIN`].
    pub fn number(&self) -> u64 {
        self.n
    }

    fn stream_id(&self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }

    /// From a stream entry id (`<ms>-<seq>`) and its number.
    fn from_entry(id: &str, n: u64) -> Result<Position, BusError> {
        let (ms, seq) = parse_stream_id(id).ok_or_else(|| bad_position(id))?;
        Ok(Position { ms, seq, n })
    }
}

fn bad_position(s: &str) -> BusError {
    BusError::BadPosition(s.chars().take(64).collect())
}

fn digits(p: &str) -> Option<u64> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((digits(ms)?, digits(seq)?))
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}#{}", self.ms, self.seq, self.n)
    }
}

impl FromStr for Position {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Position, BusError> {
        let (id, n) = s.split_once('#').ok_or_else(|| bad_position(s))?;
        let n = digits(n).ok_or_else(|| bad_position(s))?;
        Position::from_entry(id, n)
    }
}

/// One delivered event with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that published it.
    pub origin: NodeId,
    /// Its place in the durable stream (Redis bus, durable events only).
    #[serde(skip)]
    pub position: Option<Position>,
    pub event: Event,
}

/// Why publishing or receiving failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The subscriber fell behind and events were lost (`missed`: how many, when known). The
    /// subscription goes on with newer events; a consumer that must not miss anything
    /// resynchronises from the store.
    #[error("subscriber fell behind: {} lost", match missed { Some(n) => format!("{n} events"), None => "some events".to_owned() })]
    Lagged { missed: Option<u64> },
    /// The bus is gone (in-process: every [`Bus`] handle was dropped). Final.
    #[error("the bus is closed")]
    Closed,
    /// An in-process bus keeps no history to start from.
    #[error("this bus keeps no history (in-process); subscribe live instead")]
    NoHistory,
    #[error("invalid stream position {0:?}")]
    BadPosition(String),
    #[error("invalid bus configuration: {0}")]
    Config(String),
    /// One event could not be read (e.g. published by a newer node); the next one may be fine.
    #[error("undecodable event: {0}")]
    Decode(String),
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl BusError {
    /// True when the subscription will deliver nothing more.
    pub fn is_final(&self) -> bool {
        matches!(self, BusError::Closed)
    }
}

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

/// Capacity of the in-process channel made by [`Bus::in_process`].
pub const IN_PROCESS_CAPACITY: usize = 4096;

/// A handle to the event bus; cheap to clone (clones share the node id).
#[derive(Clone)]
pub struct Bus {
    node: NodeId,
    backend: Arc<Backend>,
}

enum Backend {
    Local(broadcast::Sender<Arc<Envelope>>),
    Redis(Box<RedisBus>),
}

struct RedisBus {
    client: Client,
    conn: ConnectionManager,
    stream_key: String,
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

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &*self.backend {
            Backend::Local(_) => "in-process".to_owned(),
            Backend::Redis(r) => format!("redis {}", r.stream_key),
        };
        f.debug_struct("Bus")
            .field("node", &self.node)
            .field("backend", &kind)
            .finish()
    }
}

impl Bus {
    /// A bus inside this process, with room for [`IN_PROCESS_CAPACITY`] undelivered events
    /// per subscriber.
    pub fn in_process() -> Bus {
        Bus::in_process_with_capacity(IN_PROCESS_CAPACITY)
    }

    /// [`Bus::in_process`] with another capacity (at least 1).
    pub fn in_process_with_capacity(capacity: usize) -> Bus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Bus {
            node: NodeId::random(),
            backend: Arc::new(Backend::Local(tx)),
        }
    }

    /// A bus over the Redis at `url` (`redis://host:port/db`), its keys starting with
    /// `prefix` (e.g. `gax:`). Every node of one deployment uses the same prefix.
    pub async fn redis(url: &str, prefix: &str) -> Result<Bus, BusError> {
        Bus::redis_with(url, prefix, RedisBusOptions::default()).await
    }

    /// [`Bus::redis`] with explicit settings.
    pub async fn redis_with(
        url: &str,
        prefix: &str,
        options: RedisBusOptions,
    ) -> Result<Bus, BusError> {
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
        Ok(Bus {
            node: NodeId::random(),
            backend: Arc::new(Backend::Redis(Box::new(RedisBus {
                client,
                conn,
                stream_key: format!("{prefix}bus:events"),
                count_key: format!("{prefix}bus:count"),
                channel: format!("{prefix}bus:ephemeral"),
                append: Script::new(APPEND_LUA),
                options,
            }))),
        })
    }

    /// This node's id, as carried by every event it publishes.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// Can [`Bus::subscribe_from`] replay past events (Redis: yes, in-process: no)?
    pub fn has_history(&self) -> bool {
        matches!(&*self.backend, Backend::Redis(_))
    }

    /// Sends `event` to every subscriber (this node's too). For a durable event on Redis,
    /// returns its stream position. Publishing with no subscriber is not an error.
    pub async fn publish(&self, event: &Event) -> Result<Option<Position>, BusError> {
        let envelope = Envelope {
            origin: self.node.clone(),
            position: None,
            event: event.clone(),
        };
        match &*self.backend {
            Backend::Local(tx) => {
                // Err only means "no subscriber right now".
                let _ = tx.send(Arc::new(envelope));
                Ok(None)
            }
            Backend::Redis(r) => {
                let payload = serde_json::to_string(&envelope)?;
                let mut conn = r.conn.clone();
                if event.is_durable() {
                    let (id, n): (String, u64) = r
                        .append
                        .key(&r.stream_key)
                        .key(&r.count_key)
                        .arg(r.options.max_len)
                        .arg(payload)
                        .invoke_async(&mut conn)
                        .await?;
                    Ok(Some(Position::from_entry(&id, n)?))
                } else {
                    let _: i64 = redis::cmd("PUBLISH")
                        .arg(&r.channel)
                        .arg(payload)
                        .query_async(&mut conn)
                        .await?;
                    Ok(None)
                }
            }
        }
    }

    /// A subscription to every event published from now on. When this returns, the
    /// subscription is in place: an event published after it is delivered.
    pub async fn subscribe(&self) -> Result<Subscription, BusError> {
        match &*self.backend {
            Backend::Local(tx) => Ok(Subscription {
                inner: SubInner::Local(tx.subscribe()),
            }),
            Backend::Redis(r) => {
                let mut conn = r.conn.clone();
                let newest: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                    .arg(&r.stream_key)
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
                r.subscribe(from).await
            }
        }
    }

    /// A subscription that first delivers the retained durable events after `after`
    /// ([`Position::ORIGIN`]: all of them), then continues live; ephemeral events only from
    /// now on. If events after `after` were already trimmed from the stream, the first
    /// delivery is [`BusError::Lagged`]. In-process: [`BusError::NoHistory`].
    pub async fn subscribe_from(&self, after: Position) -> Result<Subscription, BusError> {
        match &*self.backend {
            Backend::Local(_) => Err(BusError::NoHistory),
            Backend::Redis(r) => r.subscribe(after).await,
        }
    }
}

impl RedisBus {
    async fn subscribe(&self, from: Position) -> Result<Subscription, BusError> {
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
        Ok(Subscription {
            inner: SubInner::Redis {
                rx,
                dropped,
                tasks: vec![
                    tokio::spawn(reader.run()),
                    tokio::spawn(listener.run(pubsub)),
                ],
            },
        })
    }
}

/// A stream of events from a [`Bus`]. Dropping it unsubscribes.
pub struct Subscription {
    inner: SubInner,
}

enum SubInner {
    Local(broadcast::Receiver<Arc<Envelope>>),
    Redis {
        rx: mpsc::Receiver<Result<Envelope, BusError>>,
        /// Ephemeral events dropped because the buffer was full, not yet reported.
        dropped: Arc<AtomicU64>,
        tasks: Vec<JoinHandle<()>>,
    },
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            SubInner::Local(_) => "in-process",
            SubInner::Redis { .. } => "redis",
        };
        f.debug_struct("Subscription")
            .field("backend", &kind)
            .finish()
    }
}

impl Subscription {
    /// The next event. Errors other than [`BusError::Closed`] are reports about one event or
    /// a gap ([`BusError::Lagged`]); calling again continues. Cancel-safe: usable in
    /// `tokio::select!` without losing events.
    pub async fn next(&mut self) -> Result<Envelope, BusError> {
        match &mut self.inner {
            SubInner::Local(rx) => match rx.recv().await {
                Ok(envelope) => Ok(Envelope::clone(&envelope)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    Err(BusError::Lagged { missed: Some(n) })
                }
                Err(broadcast::error::RecvError::Closed) => Err(BusError::Closed),
            },
            SubInner::Redis { rx, dropped, .. } => {
                let lost = dropped.swap(0, Ordering::Relaxed);
                if lost > 0 {
                    return Err(BusError::Lagged { missed: Some(lost) });
                }
                rx.recv().await.unwrap_or(Err(BusError::Closed))
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let SubInner::Redis { tasks, .. } = &self.inner {
            for task in tasks {
                task.abort();
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_order() {
        let p: Position = "1700000000000-3#42".parse().unwrap();
        assert_eq!(p.to_string(), "1700000000000-3#42");
        assert_eq!(p.number(), 42);
        assert_eq!(p.stream_id(), "1700000000000-3");
        assert!(Position::ORIGIN < p);
        assert_eq!(
            Position::ORIGIN.to_string().parse::<Position>().unwrap(),
            Position::ORIGIN
        );
        assert!(p < "1700000000000-4#43".parse().unwrap());
        assert!(p < "1700000000001-0#43".parse().unwrap());
        for bad in [
            "",
            "-",
            "#",
            "1-2",
            "1-#2",
            "-1#2",
            "1-2-3#4",
            "a-1#2",
            "+1-2#3",
            "1 -2#3",
            "1-2#",
            "1-2#x",
            "1-2#3#4",
            "99999999999999999999-0#1",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn events_are_tagged_json_and_classified() {
        let e = Event::Typing {
            chat: ChatId(1),
            user: UserId(2),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"typing","chat":1,"user":2}"#
        );
        assert!(!e.is_durable());
        assert_eq!(e.chat(), Some(ChatId(1)));
        let f = Event::FileAdded {
            file_id: "f1".into(),
            owner: UserId(1),
            name: "a.txt".into(),
            chats: vec![],
        };
        assert!(f.is_durable());
        let back: Event = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<Event>(r#"{"type":"nope"}"#).is_err());
    }
}
