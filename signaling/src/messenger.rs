//! The messenger's moving parts on one node.
//!
//! [`Messenger`] holds the event bus (in process, or Redis when configured, so several nodes
//! share it), presence, the search index with its indexer, the watch party's live states,
//! and the two hubs that deliver events to this node's open sessions ([`Hub`] for messenger
//! sessions, [`WatchHub`] for watch viewers). One task pumps the bus into the hubs. The write
//! path (commit, then publish) is [`messaging::Service`]'s, built on the same bus.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use messaging::bus::{Bus, BusError, Event};
use messaging::presence::Presence;
use messaging::search::{Indexer, IndexerOptions, SearchIndex};
use messaging::{Backends, StoreError};

use crate::hub::chat::Hub;
use crate::hub::watch::WatchHub;

/// How often expired presence is swept (a connection that vanished without a goodbye).
const PRESENCE_SWEEP: Duration = Duration::from_secs(5);

/// Why the messenger could not start.
#[derive(Debug, thiserror::Error)]
pub enum MessengerError {
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    #[error(transparent)]
    Backend(#[from] messaging::BackendError),
    #[error("search index: {0}")]
    Search(#[from] messaging::search::SearchError),
    #[error("reading the store for the search index: {0}")]
    Store(#[from] StoreError),
    #[error("search index task: {0}")]
    Task(String),
}

/// Bus, presence, search and live delivery of one node.
pub struct Messenger {
    pub bus: Bus,
    pub presence: Presence,
    pub search: SearchIndex,
    pub hub: Arc<Hub>,
    /// Watch rooms' live playback states (in process or Redis).
    pub playback: Arc<messaging::PlaybackStore>,
    /// This node's watch viewers, by room.
    pub watch_hub: Arc<WatchHub>,
    indexer: std::sync::Mutex<Option<Indexer>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Messenger {
    /// Starts the messenger on `backends`; the search index lives in `data_dir/search`.
    ///
    /// With the in-process bus nothing replays what the index missed (a process killed after
    /// a database commit but before the index's next commit, or a fresh index), so the index
    /// is brought up to date from the store here, before the node serves anyone. On Redis the
    /// indexer resumes from its last committed stream position instead.
    pub async fn with_backends(
        data_dir: &Path,
        backends: Backends,
        store: &messaging::Store,
    ) -> Result<Messenger, MessengerError> {
        let Backends {
            bus,
            presence,
            playback,
        } = backends;
        let playback = Arc::new(playback);
        let watch_hub = Arc::new(WatchHub::default());
        let presence = presence.publishing_to(bus.clone());
        let search = SearchIndex::open_in_dir(&data_dir.join("search"))?;
        if !bus.has_history() {
            messaging::search::reindex::reindex(store, &search).await?;
        }
        // A durable event the indexer misses (the bus lagged) is caught up from the store.
        let options = IndexerOptions {
            catch_up: Some(store.clone()),
            ..IndexerOptions::default()
        };
        let indexer = Indexer::start_with(search.clone(), &bus, options).await?;
        let hub = Arc::new(Hub::default());
        let mut subscription = bus.subscribe().await?;
        let pump_hub = hub.clone();
        let pump_watch = watch_hub.clone();
        let pump = tokio::spawn(async move {
            loop {
                match subscription.next().await {
                    Ok(envelope) => match envelope.event {
                        Event::Watch { room, event } => pump_watch.dispatch(&room, event),
                        event => pump_hub.dispatch(event),
                    },
                    Err(BusError::Lagged {
                        missed,
                        durable: true,
                    }) => {
                        // Sessions may have missed messages: each resumes from the store, and
                        // watch viewers re-read their room's state.
                        tracing::warn!(?missed, "event bus lagged; messenger sessions resume");
                        pump_hub.drop_all();
                        pump_watch.resync_all();
                    }
                    Err(BusError::Lagged {
                        missed,
                        durable: false,
                    }) => {
                        // Only typing, read marks, presence or watch events were lost: nothing
                        // a session must resume for (a bystander is never cut off by someone
                        // else's flood); watch viewers re-read their room's state.
                        tracing::warn!(?missed, "event bus dropped ephemeral events");
                        pump_watch.resync_all();
                    }
                    Err(e) if e.is_final() => return,
                    Err(e) => {
                        tracing::warn!("event bus: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let sweeper = presence.spawn_sweeper(PRESENCE_SWEEP);
        Ok(Messenger {
            bus,
            presence,
            search,
            hub,
            playback,
            watch_hub,
            indexer: std::sync::Mutex::new(Some(indexer)),
            tasks: std::sync::Mutex::new(vec![pump, sweeper]),
        })
    }

    /// Stops the background tasks, committing the search index.
    pub async fn stop(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
        }
        let indexer = self
            .indexer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(indexer) = indexer {
            if let Err(e) = indexer.stop().await {
                tracing::warn!("search indexer: {e}");
            }
        }
    }
}
