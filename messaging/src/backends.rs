//! The shared state of a node, in one value: the event [`Bus`], [`Presence`] and the watch
//! parties' live states ([`PlaybackStore`]). Either all in this process (one node) or all on
//! one Redis (several nodes sharing it); which one is the binary's choice, made once at
//! startup.

use crate::bus::{Bus, BusError};
use crate::presence::{Presence, PresenceError, DEFAULT_TTL};
use crate::watch::WatchError;
use crate::watch_live::PlaybackStore;

/// Why the Redis backends could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    #[error("presence: {0}")]
    Presence(#[from] PresenceError),
    #[error("watch party state: {0}")]
    Watch(#[from] WatchError),
}

/// The bus, presence (with the default TTL) and live watch states of one node.
pub struct Backends {
    pub bus: Bus,
    pub presence: Presence,
    pub playback: PlaybackStore,
}

impl Backends {
    /// Everything in this process: a single node.
    pub fn in_process() -> Backends {
        Backends {
            bus: Bus::in_process(),
            presence: Presence::in_process(DEFAULT_TTL),
            playback: PlaybackStore::in_process(),
        }
    }

    /// Everything on the Redis at `url`, keys and channels under `prefix`: nodes with the same
    /// Redis and prefix share their bus, presence and watch states.
    pub async fn redis(url: &str, prefix: &str) -> Result<Backends, BackendError> {
        Ok(Backends {
            bus: Bus::redis(url, prefix).await?,
            presence: Presence::redis(url, prefix, DEFAULT_TTL).await?,
            playback: PlaybackStore::redis(url, prefix).await?,
        })
    }
}
