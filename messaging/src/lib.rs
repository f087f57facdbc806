//! # messaging: accounts, tokens, friends, chats and messages
//!
//! Two parts:
//!
//! - [`auth`]: the one token model every GAX door checks, a JWT whose grants say which call
//!   room a holder may enter and whether it may chat or upload.
//! - [`Store`]: the messenger's durable data layer, on SQLite (a file, the default) or
//!   Postgres (a `postgres://` URL), with the same SQL and the same behaviour on both.
//!
//! ```text
//!  HTTP / WebSocket layer (elsewhere)
//!        │  user id from the access token (auth::Claims, sub = "user:<id>")
//!        ▼
//!  Store ── accounts.rs  register, login (argon2id), profiles      ┐
//!        ── sessions.rs  refresh tokens: rotate, reuse detection   │ one pool,
//!        ── friends.rs   requests, accept/decline, lists            │ SQLite or
//!        ── chats.rs     direct + group chats, members, receipts    │ Postgres
//!        ── messages.rs  send (seq, idempotency), edit, delete, history ┘
//!  LoginLimiter (ratelimit.rs): failures per username and per client, in memory
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
//! Errors are one enum, [`StoreError`], with a stable [`StoreError::code`] and a suggested
//! [`StoreError::status`]. Inputs are checked by [`validate`]; nothing panics on bad input.
//! Presence, watch-party rooms and search grow here next.

pub mod accounts;
pub mod auth;
pub mod chats;
pub mod error;
pub mod friends;
pub mod messages;
pub mod ratelimit;
pub mod sessions;
pub mod store;
pub mod validate;

pub use accounts::{Profile, ProfileUpdate};
pub use chats::{Chat, ChatKind, ChatMember, ChatSummary, Role};
pub use error::StoreError;
pub use friends::FriendRequestOutcome;
pub use messages::{Message, NewMessage, Sent};
pub use ratelimit::LoginLimiter;
pub use sessions::Session;
pub use store::{
    Backend, ChatId, Clock, HashCost, MessageId, Store, StoreConfig, SystemClock, UserId,
};
