//! # messaging: accounts, tokens, friends, chats and messages; the bus, presence and search
//!
//! Seven parts:
//!
//! - [`auth`]: the one token model every GAX door checks, a JWT whose grants say which call
//!   room a holder may enter and whether it may chat or upload.
//! - [`Store`]: the messenger's durable data layer, on SQLite (a file, the default) or
//!   Postgres (a `postgres://` URL), with the same SQL and the same behaviour on both.
//! - [`Bus`] ([`bus`]): what happened ([`Event`]: messages, chats, users, files; typing, read
//!   marks, presence), carried to every subscriber, in-process or across nodes over Redis
//!   (a Stream for durable events, pub/sub for ephemeral ones).
//! - [`Presence`] ([`presence`]): who is online, from connection heartbeats with a TTL,
//!   in-process or in Redis; changes go out on the bus.
//! - [`SearchIndex`] ([`search`]): full-text search (tantivy, English and Russian stemming)
//!   over users, chats, messages and files, showing each user only what they may see; an
//!   [`Indexer`] keeps it up to date from the bus.
//! - Watch parties ([`watch`], [`watch_rooms`], [`watch_live`]): the playback state machine
//!   (sans-IO: play, pause, seek, rate against a version, on the server's clock), rooms and
//!   members in the store, and the live state in process or in Redis (compare-and-set).
//! - [`Service`] ([`service`]): the use cases the doors call, with no HTTP in them: writes that
//!   others must hear of (commit, then publish), the watch-party control path, and the file
//!   upload saga ([`service::files`]: blob, record, compensating delete). [`Backends`] holds a
//!   node's bus, presence and live watch states, in process or on Redis (the binary chooses).
//!
//! ```text
//!  HTTP / WebSocket layer (elsewhere)
//!        │  user id from the access token (auth::Claims, sub = "user:<id>")
//!        ▼
//!  Service (service/) ── store first, then publish; watch controls; file uploads
//!        ▼
//!  Store ── accounts.rs  register, login (argon2id: passwords.rs)  ┐
//!        ── profiles.rs  the public profile                         │
//!        ── sessions.rs  refresh tokens: rotate, reuse detection   │ one pool,
//!        ── friends.rs   requests, accept/decline, lists            │ SQLite or
//!        ── chats.rs     direct + group chats, members, receipts    │ Postgres
//!        ── messages.rs  send (seq, idempotency), edit, delete, history │
//!        ── files.rs     file records, who may read them, uploads   │
//!        ── watch_rooms.rs  watch-party rooms, members and roles     ┘
//!        │  after a write, the Service publishes what changed
//!        ▼
//!  Bus (bus/: event, in_process, redis) ──► delivery to clients (elsewhere), on every node
//!               ──► Indexer ──► SearchIndex (search.rs) ◄── search(viewer, "words")
//!  Presence (presence.rs) ── heartbeat / disconnect / sweep ──► Bus (Presence events)
//!  LoginLimiter (ratelimit.rs): failures per (account, client) and per client, in memory
//!  Quotas (quota.rs): actions per key (sends per user, sign-ups per address, ...), in memory
//! ```
//!
//! A typical flow:
//!
//! ```no_run
//! # async fn demo() -> Result<(), messaging::StoreError> {
//! use std::time::Duration;
//! use messaging::{NewMessage, Store};
//!
//! let store = Store::connect("data/messaging.db").await?; // or "postgres://…"
//! let alice = store.register("alice", "correct horse").await?;
//! let bob = store.register("bob", "battery staple").await?;
//! let session = store.login("alice", "correct horse").await?;
//! let claims = session.access_claims(Duration::from_secs(900)); // mint with auth::TokenKeys
//! # let _ = claims;
//! let chat = store.open_direct_chat(alice.id, bob.id).await?;
//! let sent = store
//!     .send_message(alice.id, chat.id, NewMessage::text("hi").with_key("c-1"))
//!     .await?;
//! let missed = store.messages_after(bob.id, chat.id, 0, 100).await?;
//! assert_eq!(missed[0].seq, sent.message.seq);
//! store.mark_read(bob.id, chat.id, sent.message.seq).await?;
//! # Ok(()) }
//! ```
//!
//! Search follows the bus:
//!
//! ```no_run
//! # async fn demo(
//! #     store: messaging::Store,
//! #     alice: messaging::UserId,
//! #     message: messaging::Message,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use messaging::{Bus, Event, Indexer, SearchIndex, Viewer};
//!
//! let bus = Bus::in_process(); // or Bus::redis("redis://127.0.0.1:6379", "gax:").await?
//! let index = SearchIndex::open_in_dir("data/search".as_ref())?;
//! let indexer = Indexer::start(index.clone(), &bus).await?;
//! bus.publish(&Event::MessageCreated { message }).await?; // after store.send_message
//! let viewer = Viewer::load(&store, alice).await?; // alice and her chats now
//! let hits = index.search(&viewer, "библиотека", 20)?;
//! # let _ = hits;
//! indexer.stop().await?;
//! # Ok(()) }
//! ```
//!
//! Store errors are one enum, [`StoreError`], with a stable [`StoreError::code`] and an
//! [`ErrorKind`] ([`StoreError::kind`]) from which a door picks its HTTP status or close code;
//! the bus, presence and search have their own ([`BusError`], [`PresenceError`],
//! [`SearchError`]). Inputs are checked by [`validate`]; nothing panics on bad input. Watch
//! parties answer [`WatchError`] (same `code`/`kind`).

pub mod accounts;
pub mod auth;
pub mod backends;
pub mod bus;
pub mod chats;
pub mod error;
pub mod export;
pub mod files;
pub mod friends;
pub mod messages;
pub mod passwords;
pub mod presence;
pub mod profiles;
pub mod quota;
pub mod ratelimit;
pub mod search;
pub mod service;
pub mod sessions;
pub mod store;
pub mod validate;
pub mod watch;
pub mod watch_live;
pub mod watch_rooms;

pub use backends::{BackendError, Backends};
pub use bus::{Bus, BusError, Envelope, Event, NodeId, Position, RedisBusOptions, Subscription};
pub use chats::{Chat, ChatKind, ChatMember, ChatSummary, Role};
pub use error::{ErrorKind, StoreError};
pub use files::{FileRecord, NewFile, UploadRecord};
pub use friends::FriendRequestOutcome;
pub use messages::{Message, NewMessage, Sent};
pub use passwords::HashCost;
pub use presence::{Presence, PresenceChange, PresenceError};
pub use profiles::{Profile, ProfileUpdate};
pub use quota::{Quota, Quotas, RateLimits};
pub use ratelimit::LoginLimiter;
pub use search::{Hit, Indexer, IndexerOptions, Item, SearchError, SearchIndex, Snippet, Viewer};
pub use service::Service;
pub use sessions::Session;
pub use store::{Backend, ChatId, Clock, MessageId, Store, StoreConfig, SystemClock, UserId};
pub use watch::{Control, Playback, Source, WatchError, WatchEvent, WatchMember, WatchRole};
pub use watch_live::PlaybackStore;
pub use watch_rooms::WatchRoom;
