//! The messenger session on `/ws` (protocol in docs/protocol.md, "GAX messenger session"):
//! a connection whose first message is `hello` belongs to one signed-in user. It resumes what
//! the client missed from the store, then delivers live events from the [`crate::hub::chat::Hub`]
//! and takes sends, typing and read marks.
//!
//! Exactly-once on one connection: live events and the catch-up from the store may overlap (a
//! message committed while the catch-up runs arrives both ways); a per-chat [`SeqTracker`]
//! lets each `seq` through once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use messaging::bus::Event;
use messaging::messages::PAGE_MAX;
use messaging::{ChatId, ChatSummary, Message, NewMessage, Profile, UserId};
use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::conn::{check_version, parse_json, session_claims, token_deadline, Conn, End, Incoming};
use crate::hub::chat::SessionId;
use crate::protocol::close;

/// The messenger protocol version.
pub const VERSION: u32 = 1;

/// More missed messages than this in one chat: the client is told to refetch over REST.
pub const RESUME_MAX: u32 = 500;

/// How often an open session renews its presence.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Typing events one session may send: a burst of [`TYPING_BURST`], then one every
/// [`TYPING_EVERY`] (the web client sends one every 2 s while typing). More are dropped
/// silently (counted): a typing flood reaches nobody.
pub const TYPING_BURST: f64 = 3.0;
/// See [`TYPING_BURST`].
pub const TYPING_EVERY: Duration = Duration::from_secs(1);

/// Close code for a session that could not keep up (its queue in the hub overflowed).
pub const TOO_SLOW: u16 = 4429;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMsg {
    Hello {
        version: u32,
        #[serde(default)]
        token: Option<String>,
        /// Chat id (as a string) -> last seq the client holds.
        #[serde(default)]
        resume: HashMap<String, i64>,
    },
    Send {
        chat: ChatId,
        #[serde(default)]
        text: String,
        #[serde(default)]
        attachments: Vec<String>,
        client_key: String,
    },
    Typing {
        chat: ChatId,
    },
    Read {
        chat: ChatId,
        seq: i64,
    },
    Watch {
        users: Vec<UserId>,
    },
    /// A fresh access token for the same user, before the current one expires.
    Auth {
        token: String,
    },
    Ping,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMsg<'a> {
    Welcome {
        version: u32,
        user: &'a Profile,
        chats: &'a [ChatSummary],
    },
    Message {
        message: &'a Message,
    },
    MessageEdited {
        message: &'a Message,
    },
    MessageDeleted {
        chat: ChatId,
        seq: i64,
    },
    ChatChanged {
        chat: ChatId,
        members: &'a [UserId],
        title: &'a Option<String>,
    },
    Refetch {
        chat: ChatId,
    },
    Synced,
    Ack {
        client_key: &'a str,
        message: &'a Message,
    },
    Typing {
        chat: ChatId,
        user: UserId,
    },
    Read {
        chat: ChatId,
        user: UserId,
        seq: i64,
    },
    Presence {
        user: UserId,
        online: bool,
    },
    FriendsChanged,
    /// The session now runs on the token of the last `auth`, until `expires_at`.
    Authed {
        /// Unix seconds.
        expires_at: u64,
    },
    Pong,
    Error {
        code: &'a str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_key: Option<&'a str>,
    },
}

/// Is this first frame a messenger `hello`?
pub fn is_hello(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
    }
    serde_json::from_str::<Kind>(text).is_ok_and(|k| k.kind == "hello")
}

/// Which messages of one chat this connection has delivered: everything up to `upto`, and
/// the seqs in `above` beyond it (live events may arrive ahead of a gap).
#[derive(Debug, Default)]
pub struct SeqTracker {
    upto: i64,
    above: BTreeSet<i64>,
}

impl SeqTracker {
    /// Starts after `seq` (the client holds everything up to it).
    pub fn after(seq: i64) -> Self {
        SeqTracker {
            upto: seq,
            above: BTreeSet::new(),
        }
    }

    /// True the first time `seq` is seen (deliver it), false after.
    pub fn fresh(&mut self, seq: i64) -> bool {
        if seq <= self.upto || !self.above.insert(seq) {
            return false;
        }
        while self.above.remove(&(self.upto + 1)) {
            self.upto += 1;
        }
        true
    }
}

fn encode(msg: &ServerMsg<'_>) -> String {
    serde_json::to_string(msg).unwrap_or_else(|_| r#"{"type":"error","code":"internal"}"#.into())
}

async fn send(conn: &mut Conn, msg: &ServerMsg<'_>) -> bool {
    conn.send_text(encode(msg)).await
}

fn parse(text: &str) -> Result<ClientMsg, End> {
    parse_json(text)
}

/// Whether `text` is a client message of this protocol (for `crate::fuzzing`).
pub(crate) fn is_client_message(text: &str) -> bool {
    parse(text).is_ok()
}

/// Runs a messenger session whose first frame was `first` until it ends.
pub(crate) async fn run(conn: &mut Conn, first: &str, bearer: Option<String>) -> End {
    let (version, token, resume) = match parse(first) {
        Ok(ClientMsg::Hello {
            version,
            token,
            resume,
        }) => (version, token, resume),
        Ok(_) => {
            return End::error(
                close::BAD_MESSAGE,
                "hello_first",
                "the first message must be hello",
            )
        }
        Err(end) => return end,
    };
    let claims = match check_version("messenger", version, VERSION)
        .and_then(|()| session_claims(&conn.app, token, bearer, "hello needs a token"))
    {
        Ok(c) => c,
        Err(end) => return end,
    };
    let Some(user) = UserId::from_subject(&claims.sub).filter(|_| claims.can_chat) else {
        return End::error(
            close::FORBIDDEN,
            "forbidden",
            "the token is not a user token that allows chat",
        );
    };
    let app = conn.app.clone();
    let mut resume_points = Vec::with_capacity(resume.len());
    for (chat, seq) in resume {
        match chat.parse::<i64>() {
            Ok(c) => resume_points.push((ChatId(c), seq.max(0))),
            Err(_) => {
                return End::error(
                    close::BAD_MESSAGE,
                    "bad_message",
                    format!("resume: {chat:?} is not a chat id"),
                )
            }
        }
    }

    let profile = match app.store.profile(user).await {
        Ok(p) => p,
        Err(e) => return End::error(close::UNAUTHORIZED, "unauthorized", e.to_string()),
    };
    // Register for live events first, then read the store: whatever commits in between
    // arrives both ways and the trackers let it through once. The chat list is read again
    // after registering so a chat joined meanwhile is followed too.
    let known = match app.store.list_chats(user).await {
        Ok(c) => c,
        Err(e) => return End::error(close::INTERNAL, "internal", e.to_string()),
    };
    let (session, mut live) = app
        .messenger
        .hub
        .register(user, known.iter().map(|c| c.chat.id));
    let chats = match app.store.list_chats(user).await {
        Ok(c) => c,
        Err(e) => {
            app.messenger.hub.unregister(session);
            return End::error(close::INTERNAL, "internal", e.to_string());
        }
    };
    for c in &chats {
        app.messenger.hub.follow(session, c.chat.id);
    }
    let connection = format!("{}-{session}", app.messenger.bus.node().as_str());
    let end = async {
        if let Err(e) = app.messenger.presence.heartbeat(user, &connection).await {
            tracing::warn!("presence heartbeat: {e}");
        }
        let welcome = ServerMsg::Welcome {
            version: VERSION,
            user: &profile,
            chats: &chats,
        };
        if !send(conn, &welcome).await {
            return End::normal(close::NORMAL);
        }
        // Chats the client knows start after its resume point; new ones from their start
        // (their messages come with the live stream or the REST history).
        let mut trackers: HashMap<ChatId, SeqTracker> = chats
            .iter()
            .map(|c| (c.chat.id, SeqTracker::after(c.chat.last_seq)))
            .collect();
        for (chat, after) in resume_points {
            // Not (or no longer) a member: the welcome's chat list says so.
            let Some(latest) = chats.iter().find(|c| c.chat.id == chat).map(|c| c.chat.last_seq)
            else {
                continue;
            };
            if latest - after > i64::from(RESUME_MAX) {
                // Too much to replay: the client reloads the history; newer ones come live.
                trackers.insert(chat, SeqTracker::after(latest));
                if !send(conn, &ServerMsg::Refetch { chat }).await {
                    return End::normal(close::NORMAL);
                }
                continue;
            }
            let mut tracker = SeqTracker::after(after);
            let mut cursor = after;
            loop {
                let page = match app.store.messages_after(user, chat, cursor, PAGE_MAX).await {
                    Ok(p) => p,
                    Err(messaging::StoreError::NotMember) => break,
                    Err(e) => return End::error(close::INTERNAL, "internal", e.to_string()),
                };
                for m in &page {
                    if tracker.fresh(m.seq) && !send(conn, &ServerMsg::Message { message: m }).await
                    {
                        return End::normal(close::NORMAL);
                    }
                }
                match page.last() {
                    Some(m) if page.len() == PAGE_MAX as usize => cursor = m.seq,
                    _ => break,
                }
            }
            trackers.insert(chat, tracker);
        }
        if !send(conn, &ServerMsg::Synced).await {
            return End::normal(close::NORMAL);
        }
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.tick().await;
        let mut shutdown = app.shutdown.clone();
        // The session lives as long as its token: `auth` with a fresh one moves this on.
        let expiry = tokio::time::sleep_until(token_deadline(claims.exp));
        tokio::pin!(expiry);
        let mut typing = Budget::new(
            TYPING_BURST,
            1.0 / TYPING_EVERY.as_secs_f64(),
            std::time::Instant::now(),
        );
        loop {
            tokio::select! {
                _ = &mut expiry => {
                    return End::error(
                        close::UNAUTHORIZED,
                        "token_expired",
                        "the access token expired; send auth with a fresh one before it does",
                    );
                }
                incoming = conn.next() => {
                    let text = match incoming {
                        Incoming::Text(t) => t,
                        Incoming::Closed => return End::normal(close::NORMAL),
                        Incoming::Bad(end) => return end,
                    };
                    let msg = match parse(&text) {
                        Ok(m) => m,
                        Err(end) => return end,
                    };
                    if let ClientMsg::Auth { token } = msg {
                        match reauthenticate(conn, user, &token).await {
                            Ok(exp) => expiry.as_mut().reset(token_deadline(exp)),
                            Err(end) => return end,
                        }
                        continue;
                    }
                    if let Some(end) = handle(conn, user, session, msg, &mut trackers, &mut typing).await {
                        return end;
                    }
                }
                event = live.recv() => {
                    let Some(event) = event else {
                        return End::error(TOO_SLOW, "too_slow", "the session fell behind; reconnect and resume");
                    };
                    if !deliver(conn, user, &event, &mut trackers).await {
                        return End::normal(close::NORMAL);
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(e) = app.messenger.presence.heartbeat(user, &connection).await {
                        tracing::warn!("presence heartbeat: {e}");
                    }
                }
                _ = shutdown.changed() => return End::normal(close::GOING_AWAY),
            }
        }
    }
    .await;
    app.messenger.hub.unregister(session);
    if let Err(e) = app.messenger.presence.disconnect(user, &connection).await {
        tracing::warn!("presence disconnect: {e}");
    }
    end
}

/// `auth`: the fresh token must be valid and for the same user with chat; then the session
/// runs until its expiry. Anything else ends the session (4401, or 4403 for another user).
async fn reauthenticate(conn: &mut Conn, user: UserId, token: &str) -> Result<u64, End> {
    let claims = session_claims(
        &conn.app,
        Some(token.to_owned()),
        None,
        "auth needs a token",
    )?;
    if UserId::from_subject(&claims.sub) != Some(user) || !claims.can_chat {
        return Err(End::error(
            close::FORBIDDEN,
            "forbidden",
            "auth must carry a chat token of the same user",
        ));
    }
    if !send(
        conn,
        &ServerMsg::Authed {
            expires_at: claims.exp,
        },
    )
    .await
    {
        return Err(End::normal(close::NORMAL));
    }
    Ok(claims.exp)
}

/// One client request. Returns how the session ends, if it does.
async fn handle(
    conn: &mut Conn,
    user: UserId,
    session: SessionId,
    msg: ClientMsg,
    trackers: &mut HashMap<ChatId, SeqTracker>,
    typing: &mut Budget,
) -> Option<End> {
    let app = conn.app.clone();
    let sent = match msg {
        ClientMsg::Hello { .. } => {
            return Some(End::error(
                close::BAD_MESSAGE,
                "bad_message",
                "hello is only the first message",
            ))
        }
        // Handled by the session loop, which owns the expiry timer.
        ClientMsg::Auth { .. } => true,
        ClientMsg::Ping => send(conn, &ServerMsg::Pong).await,
        ClientMsg::Send {
            chat,
            text,
            attachments,
            client_key,
        } => {
            let message = NewMessage {
                text,
                attachments,
                client_key: Some(client_key.clone()),
            };
            match app.service.send(user, chat, message).await {
                Ok(sent) => {
                    // The ack is this connection's delivery of the message.
                    trackers.entry(chat).or_default().fresh(sent.message.seq);
                    let ack = ServerMsg::Ack {
                        client_key: &client_key,
                        message: &sent.message,
                    };
                    send(conn, &ack).await
                }
                Err(e) => {
                    let err = ServerMsg::Error {
                        code: e.code(),
                        message: e.to_string(),
                        client_key: Some(&client_key),
                    };
                    send(conn, &err).await
                }
            }
        }
        ClientMsg::Typing { chat } => {
            if !trackers.contains_key(&chat) {
                send(conn, &not_member()).await
            } else if typing.take(std::time::Instant::now()) {
                app.service.publish(Event::Typing { chat, user }).await;
                true
            } else {
                app.stats.typing_dropped.inc();
                true
            }
        }
        ClientMsg::Read { chat, seq } => match app.service.mark_read(user, chat, seq).await {
            Ok(_) => true,
            Err(e) => {
                let err = ServerMsg::Error {
                    code: e.code(),
                    message: e.to_string(),
                    client_key: None,
                };
                send(conn, &err).await
            }
        },
        ClientMsg::Watch { users } => {
            // Only friends and co-members: a stranger's id is dropped without a word (saying
            // so would tell whether the id exists).
            let users = match app.store.presence_visible(user, &users).await {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!("presence contacts: {e}");
                    Vec::new()
                }
            };
            app.messenger.hub.watch(session, &users);
            // Start from the truth: who of them is online now.
            match app.messenger.presence.online(&users).await {
                Ok(online) => {
                    let mut ok = true;
                    for u in online {
                        ok &= send(
                            conn,
                            &ServerMsg::Presence {
                                user: u,
                                online: true,
                            },
                        )
                        .await;
                    }
                    ok
                }
                Err(e) => {
                    tracing::warn!("presence lookup: {e}");
                    true
                }
            }
        }
    };
    (!sent).then(|| End::normal(close::NORMAL))
}

fn not_member() -> ServerMsg<'static> {
    ServerMsg::Error {
        code: "not_member",
        message: "you are not a member of this chat".into(),
        client_key: None,
    }
}

/// Sends one live event; false if the connection is gone.
async fn deliver(
    conn: &mut Conn,
    user: UserId,
    event: &Arc<Event>,
    trackers: &mut HashMap<ChatId, SeqTracker>,
) -> bool {
    let msg = match &**event {
        Event::MessageCreated { message } => {
            if !trackers.entry(message.chat).or_default().fresh(message.seq) {
                return true;
            }
            ServerMsg::Message { message }
        }
        Event::MessageEdited { message } => ServerMsg::MessageEdited { message },
        Event::MessageDeleted { chat, seq, .. } => ServerMsg::MessageDeleted {
            chat: *chat,
            seq: *seq,
        },
        Event::ChatChanged {
            chat,
            members,
            title,
        } => {
            // Membership as of now: a new chat is followed from its start, a chat we were
            // removed from is not any more.
            if members.contains(&user) {
                trackers.entry(*chat).or_default();
            } else {
                trackers.remove(chat);
            }
            ServerMsg::ChatChanged {
                chat: *chat,
                members,
                title,
            }
        }
        Event::Typing { chat, user } => ServerMsg::Typing {
            chat: *chat,
            user: *user,
        },
        Event::ReadUpTo { chat, user, seq } => ServerMsg::Read {
            chat: *chat,
            user: *user,
            seq: *seq,
        },
        Event::Presence { user, online } => ServerMsg::Presence {
            user: *user,
            online: *online,
        },
        Event::FriendsChanged { .. } => ServerMsg::FriendsChanged,
        Event::UserChanged { .. }
        | Event::FileAdded { .. }
        | Event::FileRemoved { .. }
        | Event::Watch { .. } => return true,
    };
    send(conn, &msg).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_seq_is_delivered_once_even_out_of_order() {
        let mut t = SeqTracker::after(5);
        assert!(!t.fresh(5), "the client has it");
        assert!(t.fresh(7), "ahead of a gap");
        assert!(t.fresh(6), "the gap fills");
        assert!(!t.fresh(6) && !t.fresh(7));
        assert!(t.fresh(8));
        assert_eq!((t.upto, t.above.len()), (8, 0));
    }

    #[test]
    fn hello_is_recognised_by_its_type_only() {
        assert!(is_hello(r#"{"type":"hello","version":1}"#));
        assert!(!is_hello(r#"{"type":"join","version":1}"#));
        assert!(!is_hello("garbage"));
    }
}
