//! The state every handler shares ([`App`]): the media plane handle, the token keys, the
//! messenger's store and services, the file store, this node's live tables (WHIP sessions,
//! delivery hubs; call rooms are the media plane's, [`sfu_core::RoomDirectory`]) and the signaling counters; and the [`Options`] it starts with.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use media_store::BlobStore;
use messaging::auth::TokenKeys;
use messaging::{Quota, Quotas, RateLimits, UserId};
use sfu_core::Sfu;

use crate::messenger::Messenger;
use crate::whip_sessions::WhipSessions;

/// Counters of the signaling layer.
#[derive(Default)]
pub struct SignalingStats {
    pub(crate) connections: Counter,
    /// WebSocket messages dropped over a session's budget.
    pub(crate) rate_limited: Counter,
    /// Messenger typing events dropped over their own, finer budget.
    pub(crate) typing_dropped: Counter,
    closes: Mutex<BTreeMap<u16, u64>>,
}

#[derive(Default)]
pub(crate) struct Counter(AtomicU64);
impl Counter {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl SignalingStats {
    pub(crate) fn record_close(&self, code: u16) {
        *self
            .closes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_default() += 1;
    }
    pub(crate) fn closes(&self) -> Vec<(u16, u64)> {
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
    /// Login failures per (username, client address) and per client address.
    pub limiter: messaging::LoginLimiter,
    /// The messenger's use cases (commit, then publish; watch-party controls).
    pub service: messaging::Service,
    /// Event bus, presence, search and live delivery.
    pub messenger: Messenger,
    /// Uploaded files: the blob store, the upload limit and the upload saga.
    pub files: messaging::service::files::Files,
    /// Live WHIP publishers.
    pub whip: WhipSessions,
    /// Development mode: `/api/dev/token` hands out tokens.
    pub dev: bool,
    pub stats: SignalingStats,
    /// Flips to true when the server shuts down; open calls close with 1001.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// ICE + DTLS must complete this soon after `joined`, or the call closes with 4410.
    pub media_timeout: std::time::Duration,
    /// Lifetime of the access tokens that login and refresh hand out.
    pub access_token_ttl: std::time::Duration,
    /// Open HTTP connections, within the listener's caps (`server`).
    pub connections: Arc<crate::connections::Admission>,
    /// See [`crate::connections::Limits::header_timeout`].
    pub header_timeout: std::time::Duration,
    /// Accounts registered per source address.
    pub signups: Quotas<String>,
    /// Uploads started per user.
    pub uploads: Quotas<UserId>,
    /// WHIP/WHEP sessions started per token subject.
    pub whip_starts: Quotas<String>,
    /// Messages per WebSocket session, every kind (each session keeps its own bucket).
    pub ws_messages: Option<Quota>,
}

/// Options of the signaling layer.
#[derive(Debug, Clone)]
pub struct Options {
    /// Development mode: `/api/dev/token` hands out tokens.
    pub dev: bool,
    /// See [`App::media_timeout`].
    pub media_timeout: std::time::Duration,
    /// See [`App::access_token_ttl`].
    pub access_token_ttl: std::time::Duration,
    /// The HTTP listener's limits (`server::serve`).
    pub http: crate::connections::Limits,
    /// Quotas per user, address and session.
    pub rate_limits: RateLimits,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            dev: false,
            media_timeout: std::time::Duration::from_secs(30),
            access_token_ttl: std::time::Duration::from_secs(15 * 60),
            http: crate::connections::Limits::default(),
            rate_limits: RateLimits::default(),
        }
    }
}

impl App {
    pub fn new(
        sfu: Arc<Sfu>,
        tokens: TokenKeys,
        store: messaging::Store,
        messenger: Messenger,
        files: Files,
        options: Options,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Arc<App> {
        let limits = options.rate_limits;
        let service = messaging::Service::new(
            store.clone(),
            messenger.bus.clone(),
            messenger.playback.clone(),
        )
        .with_send_quota(limits.sends);
        let files =
            messaging::service::files::Files::new(service.clone(), files.blobs, files.max_upload);
        Arc::new(App {
            sfu,
            tokens,
            store,
            limiter: messaging::LoginLimiter::default(),
            service,
            messenger,
            files,
            whip: WhipSessions::default(),
            dev: options.dev,
            stats: SignalingStats::default(),
            shutdown,
            media_timeout: options.media_timeout,
            access_token_ttl: options.access_token_ttl,
            connections: crate::connections::Admission::new(
                options.http.max_connections,
                options.http.max_connections_per_ip,
            ),
            header_timeout: options.http.header_timeout,
            signups: Quotas::new(limits.signups),
            uploads: Quotas::new(limits.uploads),
            whip_starts: Quotas::new(limits.whip),
            ws_messages: limits.ws_messages,
        })
    }
}

/// What [`App::new`] needs for files: the blob store and the upload limit.
pub struct Files {
    pub blobs: BlobStore,
    /// Largest file accepted, in bytes.
    pub max_upload: u64,
}
