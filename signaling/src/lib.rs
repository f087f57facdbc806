//! # signaling: the GAX front door
//!
//! An axum server that owns every way in over HTTP: the WebSocket `/ws` ([`ws`]: calls with
//! the JSON protocol in [`protocol`] and docs/protocol.md, the messenger session, watch
//! parties), the messenger's REST API ([`api`], including watch-party rooms), files
//! ([`files`]), WHIP/WHEP ([`whip`]), health and Prometheus metrics, the embedded web client at
//! `/` (and the watch page at `/watch/{room}`), and (in development mode) a token endpoint
//! ([`http`]). It checks the JWT at every door ([`messaging::auth`]), serves files from
//! [`media_store`] and drives the media plane through [`sfu_core::Sfu`]; media itself never
//! passes through here. The use cases are [`messaging::Service`]'s: this crate maps requests
//! to them and their errors to HTTP statuses and close codes.
//!
//! ```text
//!  routes ──► doors: api/* (REST)   files/*   whip   ws/{call, chat, watch}   http
//!                 │ extract (ApiJson, Authed, tokens)   error (ApiError, statuses)
//!                 ▼
//!  app::App: sfu, tokens, store, service, messenger (bus, presence, search, hubs),
//!            whip_sessions, files ─── watch, links, participant: pieces doors share
//! ```
//!
//! Modules depend downward only (checked by `scripts/modcycles.py`).

pub mod api;
pub mod app;
pub mod connections;
pub mod error;
pub mod extract;
pub mod files;
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod links;
pub mod messenger;
pub mod metrics;
pub mod participant;
pub mod protocol;
pub mod routes;
pub mod server;
pub mod watch;
pub mod web;
pub mod whip;
pub mod whip_sessions;
pub mod ws;

pub use app::{App, Options, SignalingStats};
pub use routes::router;
