//! # signaling: the GAX front door
//!
//! An axum server that owns every way in over HTTP: the call WebSocket `/ws` (JSON protocol,
//! [`protocol`], documented in `docs/protocol.md`), the messenger's REST API and session, watch
//! parties ([`watch_api`], [`watch_ws`]), health and Prometheus metrics, the embedded web
//! client at `/` (and the watch page at `/watch/{room}`), and (in development mode) a token
//! endpoint. It checks the JWT at every door ([`messaging::auth`]), serves files from
//! [`media_store`] ([`files`]) and drives the media plane through [`sfu_core::Sfu`]; media itself
//! never passes through here.

pub mod api;
pub mod chat_ws;
pub mod files;
pub mod http;
pub mod hub;
pub mod messenger;
pub mod metrics;
pub mod protocol;
pub mod rooms;
pub mod watch_api;
pub mod watch_ws;
pub mod whip;
pub mod ws;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use messaging::auth::TokenKeys;
use sfu_core::Sfu;

/// Counters of the signaling layer.
#[derive(Default)]
pub struct SignalingStats {
    connections: Counter,
    closes: Mutex<BTreeMap<u16, u64>>,
}

#[derive(Default)]
struct Counter(AtomicU64);
impl Counter {
    fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl SignalingStats {
    fn record_close(&self, code: u16) {
        *self
            .closes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_default() += 1;
    }
    fn closes(&self) -> Vec<(u16, u64)> {
        self.closes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

/// Shared state of all handlers.
pub struct App {
    pub sfu: Arc<Sfu>,
    pub tokens: TokenKeys,
    /// Accounts, chats and messages.
    pub store: messaging::Store,
    /// Login failures per username and per client.
    pub limiter: messaging::LoginLimiter,
    /// Event bus, presence, search and live delivery.
    pub messenger: messenger::Messenger,
    /// Uploaded files: the blob store and the upload limit.
    pub files: files::Files,
    /// Live WHIP publishers.
    pub whip: whip::WhipSessions,
    pub rooms: rooms::Rooms,
    /// Development mode: `/api/dev/token` hands out tokens.
    pub dev: bool,
    pub stats: SignalingStats,
    /// Flips to true when the server shuts down; open calls close with 1001.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// ICE + DTLS must complete this soon after `joined`, or the call closes with 4410.
    pub media_timeout: std::time::Duration,
}

/// Options of the signaling layer.
#[derive(Debug, Clone)]
pub struct Options {
    /// Development mode: `/api/dev/token` hands out tokens.
    pub dev: bool,
    /// See [`App::media_timeout`].
    pub media_timeout: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dev: false,
            media_timeout: std::time::Duration::from_secs(30),
        }
    }
}

impl App {
    pub fn new(
        sfu: Arc<Sfu>,
        tokens: TokenKeys,
        store: messaging::Store,
        messenger: messenger::Messenger,
        files: files::Files,
        options: Options,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<App> {
        Arc::new(App {
            sfu,
            tokens,
            store,
            limiter: messaging::LoginLimiter::default(),
            messenger,
            files,
            whip: whip::WhipSessions::default(),
            rooms: rooms::Rooms::default(),
            dev: options.dev,
            stats: SignalingStats::default(),
            shutdown,
            media_timeout: options.media_timeout,
        })
    }
}

/// All routes.
pub fn router(app: Arc<App>) -> Router {
    let (api, openapi) = api::routes().split_for_parts();
    let openapi = Arc::new(openapi);
    Router::new()
        .merge(api)
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/", get(http::web::index))
        .route("/app.js", get(http::web::app_js))
        .route("/app.css", get(http::web::app_css))
        .route("/chat.js", get(http::web::chat_js))
        .route("/chat.css", get(http::web::chat_css))
        .route("/watch/{room}", get(http::web::watch_page))
        .route("/watch.js", get(http::web::watch_js))
        .route("/watch.css", get(http::web::watch_css))
        .fallback(http::not_found)
        .with_state(app)
}
