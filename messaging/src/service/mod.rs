//! The messenger's use cases, with no HTTP in them: every write that others must hear of goes
//! through [`Service`], which commits to the [`Store`] first and publishes on the [`Bus`]
//! after ("commit, then publish"), and the watch party's control path (check the role, apply
//! the control to the state machine, compare-and-set in the [`PlaybackStore`], announce).
//!
//! An event is published only once the change it announces is committed, so nothing is
//! delivered that could be lost, and a message is acknowledged to its sender only once
//! durable. A failure to publish is logged, not returned: the change is stored, and clients
//! catch up from the store. The HTTP and WebSocket doors (the `signaling` crate) call these
//! and map the errors.
//!
//! Files are [`files::Files`]: an upload is a saga over the blob store and the messaging
//! store (bytes first, then the record, the bytes deleted again if the record is refused).

pub mod files;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::auth::Claims;
use crate::bus::{Bus, Event};
use crate::quota::{Quota, Quotas};
use crate::watch::{self, Control, Playback, WatchError, WatchEvent, WatchRole};
use crate::watch_live::PlaybackStore;
use crate::watch_rooms::WatchRoom;
use crate::{ChatId, Message, NewMessage, Profile, Sent, Store, StoreError, UserId};

/// The call room of a watch room; a share link's token grants exactly this room.
pub fn call_room(room: &str) -> String {
    format!("watch:{room}")
}

/// The server clock in Unix milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Who is watching a watch room: a member (an account with a role) or a guest with a share
/// link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Member { user: UserId, role: WatchRole },
    Guest { sub: String },
}

impl Viewer {
    pub fn role(&self) -> WatchRole {
        match self {
            Viewer::Member { role, .. } => *role,
            Viewer::Guest { .. } => WatchRole::Viewer,
        }
    }
}

/// The write paths of chats and watch parties on one node; cheap to clone.
#[derive(Clone)]
pub struct Service {
    store: Store,
    bus: Bus,
    playback: Arc<PlaybackStore>,
    /// Messages per user, over every door (REST and WebSocket).
    sends: Arc<Quotas<UserId>>,
}

impl Service {
    pub fn new(store: Store, bus: Bus, playback: Arc<PlaybackStore>) -> Service {
        Service {
            store,
            bus,
            playback,
            sends: Arc::new(Quotas::new(None)),
        }
    }

    /// This service with a quota on the messages each user sends (`None`: unlimited).
    pub fn with_send_quota(mut self, quota: Option<Quota>) -> Service {
        self.sends = Arc::new(Quotas::new(quota));
        self
    }

    /// Publishes an event after the change it announces was committed. A failure to publish
    /// is logged, not returned: the change is stored, and clients catch up from the store.
    pub async fn publish(&self, event: Event) {
        if let Err(e) = self.bus.publish(&event).await {
            tracing::warn!(
                "publishing {:?} failed: {e}",
                std::mem::discriminant(&event)
            );
        }
    }

    // -----------------------------------------------------------------------------------------
    // Chats

    /// Stores a message, then announces it; a retry with the same client key returns the
    /// original and announces nothing.
    pub async fn send(
        &self,
        me: UserId,
        chat: ChatId,
        message: NewMessage,
    ) -> Result<Sent, StoreError> {
        self.sends.take(&me, std::time::Instant::now())?;
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
    pub async fn user_changed(&self, profile: &Profile) {
        self.publish(Event::UserChanged {
            user: profile.id,
            username: profile.username.clone(),
            display_name: profile.display_name.clone(),
        })
        .await;
    }

    // -----------------------------------------------------------------------------------------
    // Watch parties

    /// The room's live state (started paused at 0 the first time anyone asks).
    pub async fn watch_state(&self, room: &WatchRoom) -> Result<Playback, WatchError> {
        let initial = Playback::new(room.source.clone(), room.duration, now_ms());
        self.playback.get_or_init(&room.id, initial).await
    }

    /// Applies a control made against `version` by someone allowed to control, stores it by
    /// compare-and-set and announces the new state to the room on every node. A refused
    /// control changes nothing.
    pub async fn watch_control(
        &self,
        room: &WatchRoom,
        control: &Control,
        version: u64,
    ) -> Result<Playback, WatchError> {
        let current = self.watch_state(room).await?;
        let next = watch::apply(&current, control, version, now_ms())?;
        if !self
            .playback
            .compare_and_set(&room.id, current.version, &next)
            .await?
        {
            // Someone else's control won this version.
            let now = self.watch_state(room).await?;
            return Err(WatchError::StaleVersion {
                current: now.version,
            });
        }
        self.watch_publish(
            &room.id,
            WatchEvent::State {
                state: next.clone(),
            },
        )
        .await;
        Ok(next)
    }

    /// Announces an event to the room's viewers on every node.
    pub async fn watch_publish(&self, room: &str, event: WatchEvent) {
        self.publish(Event::Watch {
            room: room.to_owned(),
            event,
        })
        .await;
    }

    /// The room's members changed: tell its viewers.
    pub async fn watch_members_changed(&self, room: &str) {
        match self.store.watch_members(room).await {
            Ok(members) => {
                self.watch_publish(room, WatchEvent::Members { members })
                    .await
            }
            Err(e) => tracing::warn!(room, "watch members not announced: {e}"),
        }
    }

    /// Who `claims` is in `room`: a guest with the room's share link, or a member with their
    /// role. `NotMember` for anyone else.
    pub async fn watch_viewer(
        &self,
        room: &WatchRoom,
        claims: &Claims,
    ) -> Result<Viewer, WatchError> {
        if claims.watch.as_deref() == Some(room.id.as_str()) {
            return Ok(Viewer::Guest {
                sub: claims.sub.clone(),
            });
        }
        let Some(user) = UserId::from_subject(&claims.sub).filter(|_| claims.can_chat) else {
            return Err(WatchError::NotMember);
        };
        match self.store.watch_role(&room.id, user).await? {
            Some(role) => Ok(Viewer::Member { user, role }),
            None => Err(WatchError::NotMember),
        }
    }

    /// May this viewer control the room now (the role is read afresh: grants take effect at
    /// once, on every node)?
    pub async fn watch_may_control(
        &self,
        room: &WatchRoom,
        viewer: &Viewer,
    ) -> Result<(), WatchError> {
        match viewer {
            Viewer::Member { user, .. }
                if self.store.can_control_watch(&room.id, *user).await? =>
            {
                Ok(())
            }
            _ => Err(WatchError::NotController),
        }
    }
}
