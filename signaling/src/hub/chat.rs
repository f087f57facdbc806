//! Live delivery on one node: which open messenger sessions want which events.
//!
//! Every node subscribes once to the event bus ([`messaging::bus`]) and hands each event to
//! the [`Hub`], which knows the sessions open on this node: for each chat, the sessions of its
//! members; for each user, the sessions watching their presence. An event is queued to each
//! of those sessions (a bounded queue, [`SESSION_QUEUE`]); a session whose queue is full is
//! dropped from the hub, and its connection closes with 4429 so the client reconnects and
//! resumes from the store. Nothing is lost that way: the store is the truth, the hub only
//! makes it fast.
//!
//! Membership follows `ChatChanged` events: a session joins a chat's set when its user
//! appears among the members, and leaves it (after one last `ChatChanged`) when removed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use messaging::bus::Event;
use messaging::{ChatId, UserId};
use tokio::sync::mpsc;

/// Events one session may have queued before it counts as too slow.
pub const SESSION_QUEUE: usize = 1024;

/// Most users one session may watch the presence of.
pub const MAX_WATCHED: usize = 500;

/// A session's id on this node.
pub type SessionId = u64;

struct Session {
    user: UserId,
    tx: mpsc::Sender<Arc<Event>>,
    chats: HashSet<ChatId>,
    watching: Vec<UserId>,
}

#[derive(Default)]
struct State {
    next: SessionId,
    sessions: HashMap<SessionId, Session>,
    by_chat: HashMap<ChatId, HashSet<SessionId>>,
    by_user: HashMap<UserId, HashSet<SessionId>>,
    watchers: HashMap<UserId, HashSet<SessionId>>,
}

/// The open messenger sessions of this node, indexed for delivery.
#[derive(Default)]
pub struct Hub {
    state: Mutex<State>,
}

impl Hub {
    /// Registers a session of `user`, member of `chats`. Events for it arrive on the returned
    /// receiver, which ends (`None`) when the hub drops the session (too slow, or the bus
    /// lagged and every session must resume).
    pub fn register(
        &self,
        user: UserId,
        chats: impl IntoIterator<Item = ChatId>,
    ) -> (SessionId, mpsc::Receiver<Arc<Event>>) {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let mut st = self.lock();
        st.next += 1;
        let id = st.next;
        let chats: HashSet<ChatId> = chats.into_iter().collect();
        for c in &chats {
            st.by_chat.entry(*c).or_default().insert(id);
        }
        st.by_user.entry(user).or_default().insert(id);
        st.sessions.insert(
            id,
            Session {
                user,
                tx,
                chats,
                watching: Vec::new(),
            },
        );
        (id, rx)
    }

    /// Session `id` follows `chat` too (idempotent).
    pub fn follow(&self, id: SessionId, chat: ChatId) {
        let mut st = self.lock();
        if let Some(s) = st.sessions.get_mut(&id) {
            if s.chats.insert(chat) {
                st.by_chat.entry(chat).or_default().insert(id);
            }
        }
    }

    /// Forgets a session (its connection closed).
    pub fn unregister(&self, id: SessionId) {
        let mut st = self.lock();
        st.remove(id);
    }

    /// Replaces the users whose presence session `id` watches (at most [`MAX_WATCHED`]).
    pub fn watch(&self, id: SessionId, users: &[UserId]) {
        let mut st = self.lock();
        let Some(s) = st.sessions.get_mut(&id) else {
            return;
        };
        let old = std::mem::take(&mut s.watching);
        let new: Vec<UserId> = users.iter().copied().take(MAX_WATCHED).collect();
        s.watching = new.clone();
        for u in old {
            if let Some(w) = st.watchers.get_mut(&u) {
                w.remove(&id);
                if w.is_empty() {
                    st.watchers.remove(&u);
                }
            }
        }
        for u in new {
            st.watchers.entry(u).or_default().insert(id);
        }
    }

    /// Number of open sessions on this node.
    pub fn sessions(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Drops every session: after the bus lost events, each must resume from the store.
    pub fn drop_all(&self) {
        let mut st = self.lock();
        *st = State {
            next: st.next,
            ..State::default()
        };
    }

    /// Queues `event` to every session that should see it.
    pub fn dispatch(&self, event: Event) {
        let event = Arc::new(event);
        let mut st = self.lock();
        let targets: Vec<SessionId> = match &*event {
            Event::ChatChanged { chat, members, .. } => st.follow_members(*chat, members),
            Event::MessageCreated { message } | Event::MessageEdited { message } => {
                st.in_chat(message.chat)
            }
            Event::MessageDeleted { chat, .. }
            | Event::Typing { chat, .. }
            | Event::ReadUpTo { chat, .. } => st.in_chat(*chat),
            Event::Presence { user, .. } => st
                .watchers
                .get(user)
                .map(|w| w.iter().copied().collect())
                .unwrap_or_default(),
            Event::FriendsChanged { users } => users
                .iter()
                .filter_map(|u| st.by_user.get(u))
                .flat_map(|s| s.iter().copied())
                .collect(),
            // For search only.
            Event::UserChanged { .. } | Event::FileAdded { .. } | Event::FileRemoved { .. } => {
                Vec::new()
            }
            // Delivered by the watch party's own hub (`hub::watch`).
            Event::Watch { .. } => Vec::new(),
        };
        let mut slow = Vec::new();
        for id in targets {
            if let Some(s) = st.sessions.get(&id) {
                if s.tx.try_send(event.clone()).is_err() {
                    slow.push(id);
                }
            }
        }
        for id in slow {
            tracing::debug!(session = id, "messenger session too slow; dropped");
            st.remove(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn in_chat(&self, chat: ChatId) -> Vec<SessionId> {
        self.by_chat
            .get(&chat)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Updates who follows `chat` from its member list; returns the sessions to tell (the
    /// members' sessions and those of anyone just removed).
    fn follow_members(&mut self, chat: ChatId, members: &[UserId]) -> Vec<SessionId> {
        let mut tell: Vec<SessionId> = self.in_chat(chat);
        // Sessions of users no longer members stop following (they get this last event).
        for id in &tell {
            if let Some(s) = self.sessions.get_mut(id) {
                if !members.contains(&s.user) {
                    s.chats.remove(&chat);
                    if let Some(set) = self.by_chat.get_mut(&chat) {
                        set.remove(id);
                    }
                }
            }
        }
        // Sessions of members start following.
        for m in members {
            let ids: Vec<SessionId> = self
                .by_user
                .get(m)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default();
            for id in ids {
                if let Some(s) = self.sessions.get_mut(&id) {
                    if s.chats.insert(chat) {
                        self.by_chat.entry(chat).or_default().insert(id);
                        tell.push(id);
                    }
                }
            }
        }
        tell
    }

    fn remove(&mut self, id: SessionId) {
        let Some(s) = self.sessions.remove(&id) else {
            return;
        };
        for c in s.chats {
            if let Some(set) = self.by_chat.get_mut(&c) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_chat.remove(&c);
                }
            }
        }
        if let Some(set) = self.by_user.get_mut(&s.user) {
            set.remove(&id);
            if set.is_empty() {
                self.by_user.remove(&s.user);
            }
        }
        for u in s.watching {
            if let Some(set) = self.watchers.get_mut(&u) {
                set.remove(&id);
                if set.is_empty() {
                    self.watchers.remove(&u);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing(chat: i64, user: i64) -> Event {
        Event::Typing {
            chat: ChatId(chat),
            user: UserId(user),
        }
    }

    #[test]
    fn events_reach_members_sessions_and_follow_membership() {
        let hub = Hub::default();
        let (a, mut ra) = hub.register(UserId(1), [ChatId(10)]);
        let (_b, mut rb) = hub.register(UserId(2), []);
        hub.dispatch(typing(10, 1));
        assert!(ra.try_recv().is_ok());
        assert!(rb.try_recv().is_err(), "user 2 is not in chat 10");

        // User 2 joins chat 10: told, then follows it.
        hub.dispatch(Event::ChatChanged {
            chat: ChatId(10),
            members: vec![UserId(1), UserId(2)],
            title: None,
        });
        assert!(ra.try_recv().is_ok() && rb.try_recv().is_ok());
        hub.dispatch(typing(10, 2));
        assert!(ra.try_recv().is_ok() && rb.try_recv().is_ok());

        // User 1 is removed: gets that last change, then nothing.
        hub.dispatch(Event::ChatChanged {
            chat: ChatId(10),
            members: vec![UserId(2)],
            title: None,
        });
        assert!(ra.try_recv().is_ok());
        hub.dispatch(typing(10, 2));
        assert!(ra.try_recv().is_err(), "removed members stop receiving");
        assert!(rb.try_recv().is_ok());

        hub.unregister(a);
        assert_eq!(hub.sessions(), 1);
    }

    #[test]
    fn presence_goes_to_watchers_and_slow_sessions_are_dropped() {
        let hub = Hub::default();
        let (a, mut ra) = hub.register(UserId(1), [ChatId(1)]);
        hub.watch(a, &[UserId(7)]);
        hub.dispatch(Event::Presence {
            user: UserId(7),
            online: true,
        });
        assert!(ra.try_recv().is_ok());
        hub.dispatch(Event::Presence {
            user: UserId(8),
            online: true,
        });
        assert!(ra.try_recv().is_err());

        for _ in 0..SESSION_QUEUE + 1 {
            hub.dispatch(typing(1, 2));
        }
        assert_eq!(hub.sessions(), 0, "the full queue dropped the session");
        let mut n = 0;
        while ra.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, SESSION_QUEUE);
        assert!(
            ra.blocking_recv().is_none(),
            "the receiver learns it was dropped"
        );
    }
}
