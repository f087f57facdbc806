//! The event bus: what happened in the messenger ([`Event`]), carried from the node where it
//! happened to every node that delivers it to clients or indexes it for search.
//!
//! Two backends, chosen when the [`Bus`] is made:
//!
//! - **in-process** ([`Bus::in_process`]): tokio broadcast channels, for a single node, one
//!   for durable and one for ephemeral events (a typing flood never pushes out a message). A
//!   subscriber that falls more than a channel's capacity behind gets [`BusError::Lagged`]
//!   with the number of events it lost, then continues with the newest.
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
//!
//! Parts: the vocabulary ([`event`]), the in-process backend ([`in_process`]), the Redis
//! backend ([`redis`](self::redis)); this module is the handle both share ([`Bus`],
//! [`Subscription`], [`BusError`]).

pub mod event;
pub mod in_process;
pub mod redis;

use std::fmt;
use std::sync::Arc;

pub use self::redis::RedisBusOptions;
pub use event::{Envelope, Event, NodeId, Position};
pub use in_process::IN_PROCESS_CAPACITY;

use self::redis::{RedisBus, RedisSubscription};
use in_process::{LocalBus, LocalSubscription};

/// Why publishing or receiving failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The subscriber fell behind and events were lost (`missed`: how many, when known;
    /// `durable`: whether durable events were among them, or only ephemeral ones). The
    /// subscription goes on with newer events; a consumer that must not miss a durable event
    /// resynchronises from the store.
    #[error("subscriber fell behind: {} {} lost", match missed { Some(n) => format!("{n}"), None => "some".to_owned() }, if *durable { "durable events" } else { "ephemeral events" })]
    Lagged { missed: Option<u64>, durable: bool },
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
    Redis(#[from] ::redis::RedisError),
}

impl BusError {
    /// True when the subscription will deliver nothing more.
    pub fn is_final(&self) -> bool {
        matches!(self, BusError::Closed)
    }
}

/// A handle to the event bus; cheap to clone (clones share the node id).
#[derive(Clone)]
pub struct Bus {
    node: NodeId,
    backend: Arc<Backend>,
}

enum Backend {
    Local(LocalBus),
    Redis(Box<RedisBus>),
}

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
        Bus {
            node: NodeId::random(),
            backend: Arc::new(Backend::Local(LocalBus::new(capacity))),
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
        let redis = RedisBus::open(url, prefix, options).await?;
        Ok(Bus {
            node: NodeId::random(),
            backend: Arc::new(Backend::Redis(Box::new(redis))),
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
            Backend::Local(local) => {
                local.publish(envelope);
                Ok(None)
            }
            Backend::Redis(r) => r.publish(event, &envelope).await,
        }
    }

    /// A subscription to every event published from now on. When this returns, the
    /// subscription is in place: an event published after it is delivered.
    pub async fn subscribe(&self) -> Result<Subscription, BusError> {
        let inner = match &*self.backend {
            Backend::Local(local) => SubInner::Local(local.subscribe()),
            Backend::Redis(r) => SubInner::Redis(r.subscribe_live().await?),
        };
        Ok(Subscription { inner })
    }

    /// A subscription that first delivers the retained durable events after `after`
    /// ([`Position::ORIGIN`]: all of them), then continues live; ephemeral events only from
    /// now on. If events after `after` were already trimmed from the stream, the first
    /// delivery is [`BusError::Lagged`]. In-process: [`BusError::NoHistory`].
    pub async fn subscribe_from(&self, after: Position) -> Result<Subscription, BusError> {
        match &*self.backend {
            Backend::Local(_) => Err(BusError::NoHistory),
            Backend::Redis(r) => Ok(Subscription {
                inner: SubInner::Redis(r.subscribe(after).await?),
            }),
        }
    }
}

/// A stream of events from a [`Bus`]. Dropping it unsubscribes.
pub struct Subscription {
    inner: SubInner,
}

enum SubInner {
    Local(LocalSubscription),
    Redis(RedisSubscription),
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner {
            SubInner::Local(_) => "in-process",
            SubInner::Redis(_) => "redis",
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
            SubInner::Local(sub) => sub.next().await,
            SubInner::Redis(sub) => sub.next().await,
        }
    }
}
