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
use messaging::search::{Indexer, SearchIndex};
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
            reindex(store, &search).await?;
        }
        let indexer = Indexer::start(search.clone(), &bus).await?;
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
                    Err(BusError::Lagged { missed }) => {
                        // Sessions may have missed events: each resumes from the store, and
                        // watch viewers re-read their room's state.
                        tracing::warn!(?missed, "event bus lagged; messenger sessions resume");
                        pump_hub.drop_all();
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

/// Applies the whole store to the search index (idempotent: each document is replaced by
/// key) and commits.
async fn reindex(store: &messaging::Store, search: &SearchIndex) -> Result<(), MessengerError> {
    let started = std::time::Instant::now();
    let apply = |e: Event| search.apply(&e).map(|_| ());
    each_page(
        |a| store.export_users(a),
        |u| u.id.0,
        |u| {
            apply(Event::UserChanged {
                user: u.id,
                username: u.username.clone(),
                display_name: u.display_name.clone(),
            })
        },
    )
    .await?;
    each_page(
        |a| store.export_chats(a),
        |c| c.id.0,
        |c| {
            apply(Event::ChatChanged {
                chat: c.id,
                members: Vec::new(),
                title: c.title.clone(),
            })
        },
    )
    .await?;
    let messages = each_page(
        |a| store.export_messages(a),
        |m| m.id.0,
        |m| apply(Event::MessageCreated { message: m.clone() }),
    )
    .await?;
    let index = search.clone();
    tokio::task::spawn_blocking(move || index.commit())
        .await
        .map_err(|e| MessengerError::Task(e.to_string()))??;
    tracing::info!(
        messages,
        ms = started.elapsed().as_millis() as u64,
        "search index brought up to date from the store"
    );
    Ok(())
}

/// Walks an export page by page (`fetch(after)` by ascending `id`), applying each item;
/// returns how many there were.
async fn each_page<T, Fut>(
    fetch: impl Fn(i64) -> Fut,
    id: impl Fn(&T) -> i64,
    mut apply: impl FnMut(&T) -> Result<(), messaging::search::SearchError>,
) -> Result<usize, MessengerError>
where
    Fut: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    let (mut after, mut n) = (0, 0);
    loop {
        let page = fetch(after).await?;
        for item in &page {
            apply(item)?;
        }
        n += page.len();
        match page.last() {
            Some(last) => after = id(last),
            None => return Ok(n),
        }
    }
}
