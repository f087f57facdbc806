//! The messenger's REST API under `/api`, one module per resource: [`accounts`] (register,
//! login, refresh, logout), [`profiles`], [`friends`], [`chats`] (with members and a chat's
//! call), [`messages`] (history, send, edit, delete, read marks), [`search`], and the watch
//! party's rooms ([`watch`]).
//!
//! Handlers are thin: they check the access token ([`Authed`](crate::extract::Authed)), parse
//! the JSON body strictly ([`ApiJson`](crate::extract::ApiJson): unknown fields are errors),
//! call [`messaging::Store`] or [`messaging::Service`] (writes others must hear of) and map
//! their errors in one place ([`ApiError`](crate::error::ApiError)). Each handler's
//! `#[utoipa::path]` describes it in the OpenAPI document; the route table is
//! [`crate::routes`].
//!
//! Realtime delivery of what these routes change (new messages, edits, membership) happens on
//! the `/ws` messenger session; see docs/protocol.md.

pub mod accounts;
pub mod chats;
pub mod friends;
pub mod messages;
pub mod profiles;
pub mod search;
pub mod watch;

use std::time::Duration;

/// How long a call token minted for a chat's call room is valid.
pub const CALL_TTL: Duration = Duration::from_secs(60 * 60);
