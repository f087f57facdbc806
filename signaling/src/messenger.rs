//! The messenger's moving parts on one node, and its write path.
//!
//! [`Messenger`] holds the event bus (in process, or Redis when configured, so several nodes
//! share it), presence, the search index with its indexer, the [`Hub`] that delivers
//! events to this node's open sessions, and the watch party's live states and viewers
//! ([`Watch`]). One task pumps the bus into the hubs.
//!
//! The write path (the `App` methods below) always stores first and announces after: an
//! event is published only once the change is committed, so nothing is delivered that could
//! be lost, and a message is acknowledged to its sender only once durable. REST handlers and
//! the `/ws` messenger session both write through here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use messaging::bus::{Bus, BusError, Event};
use messaging::presence::{Presence, DEFAULT_TTL};
use messaging::search::{Indexer, SearchIndex};
use messaging::{ChatId, Message, NewMessage, Sent, StoreError, UserId};

use crate::hub::Hub;
use crate::watch_ws::Watch;
use crate::App;

/// How often expired presence is swept (a connection that vanished without a goodbye).
const PRESENCE_SWEEP: Duration = Duration::from_secs(5);

/// Why the messenger could not start.
#[derive(Debug, thiserror::Error)]
pub enum MessengerError {
    #[error("event bus: {0}")]
    Bus(#[from] BusError),
    #[error("presence: {0}")]
    Presence(#[from] messaging::presence::PresenceError),
    #[error("search index: {0}")]
    Search(#[from] messaging::search::SearchError),
    #[error("reading the store for the search index: {0}")]
    Store(#[from] StoreError),
    #[error("search index task: {0}")]
    Task(String),
    #[error("watch party state: {0}")]
    Watch(#[from] messaging::WatchError),
}

/// Bus, presence, search and live delivery of one node.
pub struct Messenger {
    pub bus: Bus,
    pub presence: Presence,
    pub search: SearchIndex,
    pub hub: Arc<Hub>,
    /// Watch rooms: live playback states (in process or Redis) and this node's viewers.
    pub watch: Arc<Watch>,
    indexer: std::sync::Mutex<Option<Indexer>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Messenger {
    /// Starts the messenger: on Redis (`redis_url`, keys under `prefix`) when given, else in
    /// process; the search index lives in `data_dir/search`.
    ///
    /// With the in-process bus nothing replays what the index missed (a process killed after
    /// a database commit but before the index's next commit, or a fresh index), so the index
    /// is brought up to date from the store here, before the node serves anyone. On Redis the
    /// indexer resumes from its last committed stream position instead.
    pub async fn start(
        data_dir: &Path,
        redis_url: Option<&str>,
        prefix: &str,
        store: &messaging::Store,
    ) -> Result<Messenger, MessengerError> {
        let (bus, presence, playback) = match redis_url {
            Some(url) => (
                Bus::redis(url, prefix).await?,
                Presence::redis(url, prefix, DEFAULT_TTL).await?,
                messaging::PlaybackStore::redis(url, prefix).await?,
            ),
            None => (
                Bus::in_process(),
                Presence::in_process(DEFAULT_TTL),
                messaging::PlaybackStore::in_process(),
            ),
        };
        let watch = Arc::new(Watch::new(playback));
        let presence = presence.publishing_to(bus.clone());
        let search = SearchIndex::open_in_dir(&data_dir.join("search"))?;
        if redis_url.is_none() {
            reindex(store, &search).await?;
        }
        let indexer = Indexer::start(search.clone(), &bus).await?;
        let hub = Arc::new(Hub::default());
        let mut subscription = bus.subscribe().await?;
        let pump_hub = hub.clone();
        let pump_watch = watch.clone();
        let pump = tokio::spawn(async move {
            loop {
                match subscription.next().await {
                    Ok(envelope) => match envelope.event {
                        Event::Watch { room, event } => pump_watch.hub.dispatch(&room, event),
                        event => pump_hub.dispatch(event),
                    },
                    Err(BusError::Lagged { missed }) => {
                        // Sessions may have missed events: each resumes from the store, and
                        // watch viewers re-read their room's state.
                        tracing::warn!(?missed, "event bus lagged; messenger sessions resume");
                        pump_hub.drop_all();
                        pump_watch.hub.resync_all();
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
            watch,
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

impl App {
    /// Publishes an event after the change it announces was committed. A failure to publish
    /// is logged, not returned: the change is stored, and clients catch up from the store.
    pub async fn publish(&self, event: Event) {
        if let Err(e) = self.messenger.bus.publish(&event).await {
            tracing::warn!(
                "publishing {:?} failed: {e}",
                std::mem::discriminant(&event)
            );
        }
    }

    /// Stores a message, then announces it; a retry with the same client key returns the
    /// original and announces nothing.
    pub async fn send(
        &self,
        me: UserId,
        chat: ChatId,
        message: NewMessage,
    ) -> Result<Sent, StoreError> {
        let sent = self.store.send_message(me, chat, message).await?;
        if !sent.duplicate {
            self.publish(Event::MessageCreated {
                message: sent.message.clone(),
            })
            .await;
            for file in &sent.message.attachments {
                self.file_shared(file).await;
            }
        }
        Ok(sent)
    }

    /// Tells the search index who may now find a file (it was attached in another chat).
    async fn file_shared(&self, id: &str) {
        let (file, chats) = match (self.store.file(id).await, self.store.file_chats(id).await) {
            (Ok(file), Ok(chats)) => (file, chats),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("reading shared file {id} for the index: {e}");
                return;
            }
        };
        self.publish(Event::FileAdded {
            file_id: file.id,
            owner: file.owner,
            name: file.name,
            chats,
        })
        .await;
    }

    /// Moves the caller's read mark forward and tells the chat; returns where it stands.
    pub async fn mark_read(&self, me: UserId, chat: ChatId, seq: i64) -> Result<i64, StoreError> {
        let seq = self.store.mark_read(me, chat, seq).await?;
        self.publish(Event::ReadUpTo {
            chat,
            user: me,
            seq,
        })
        .await;
        Ok(seq)
    }

    /// A chat was created, renamed or its members changed (by `me`): announce it as it is
    /// now. Read without a membership check: whoever just left must hear of it too.
    pub async fn chat_changed(&self, me: UserId, chat: ChatId) {
        let view = async {
            let c = self.store.chat_as_system(chat).await?;
            let members = self.store.members_as_system(chat).await?;
            Ok::<_, StoreError>((c, members))
        };
        match view.await {
            Ok((c, members)) => {
                self.publish(Event::ChatChanged {
                    chat,
                    members,
                    title: c.title,
                })
                .await
            }
            Err(e) => tracing::warn!(user = me.0, chat = chat.0, "chat change not announced: {e}"),
        }
    }

    /// A message was edited or deleted: announce it.
    pub async fn message_changed(&self, message: &Message, deleted: bool) {
        let event = match deleted {
            true => Event::MessageDeleted {
                chat: message.chat,
                seq: message.seq,
                message: message.id,
            },
            false => Event::MessageEdited {
                message: message.clone(),
            },
        };
        self.publish(event).await;
    }

    /// Friendship between two users changed: their sessions reload their friend lists.
    pub async fn friends_changed(&self, a: UserId, b: UserId) {
        self.publish(Event::FriendsChanged { users: vec![a, b] })
            .await;
    }

    /// A user registered or changed their profile (for search).
    pub async fn user_changed(&self, profile: &messaging::Profile) {
        self.publish(Event::UserChanged {
            user: profile.id,
            username: profile.username.clone(),
            display_name: profile.display_name.clone(),
        })
        .await;
    }
}
