//! The bus's vocabulary: what happened ([`Event`]), who published it ([`NodeId`]), where a
//! durable event sits in the Redis stream ([`Position`]) and one delivery ([`Envelope`]).

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::BusError;
use crate::messages::Message;
use crate::store::{ChatId, MessageId, UserId};

/// Something that happened, as carried on the bus.
///
/// Serialized as JSON with a `type` tag: `{"type":"typing","chat":1,"user":2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    // --- durable ---
    /// A message was stored (not sent for idempotent retries).
    MessageCreated { message: Message },
    /// A message's text was replaced; carries the message as it is now.
    MessageEdited { message: Message },
    /// A message became a tombstone.
    MessageDeleted {
        chat: ChatId,
        seq: i64,
        message: MessageId,
    },
    /// A chat was created, renamed or its members changed; carries the chat as it is now.
    ChatChanged {
        chat: ChatId,
        members: Vec<UserId>,
        /// Groups only.
        title: Option<String>,
    },
    /// A user registered or changed their profile.
    UserChanged {
        user: UserId,
        username: String,
        display_name: String,
    },
    /// A file was uploaded, owned by `owner` and shared in `chats`.
    FileAdded {
        file_id: String,
        owner: UserId,
        name: String,
        chats: Vec<ChatId>,
    },
    /// A file was removed.
    FileRemoved { file_id: String },

    // --- ephemeral ---
    /// `user` is typing in `chat`.
    Typing { chat: ChatId, user: UserId },
    /// `user` has read `chat` up to `seq`.
    ReadUpTo {
        chat: ChatId,
        user: UserId,
        seq: i64,
    },
    /// `user` came online or went offline (see `presence.rs`).
    Presence { user: UserId, online: bool },
    /// The friendships or friend requests between these users changed (their lists reload).
    FriendsChanged { users: Vec<UserId> },
    /// Something happened in watch room `room` (state, members, chat, reaction, buffering).
    Watch {
        room: String,
        event: crate::watch::WatchEvent,
    },
}

impl Event {
    /// Must this event reach every subscriber even across a brief disconnect? True for
    /// message, chat, user and file events; false for typing, read marks, presence, friend
    /// list changes and watch-room events.
    pub fn is_durable(&self) -> bool {
        !matches!(
            self,
            Event::Typing { .. }
                | Event::ReadUpTo { .. }
                | Event::Presence { .. }
                | Event::FriendsChanged { .. }
                | Event::Watch { .. }
        )
    }

    /// The chat this event belongs to, if it belongs to exactly one.
    pub fn chat(&self) -> Option<ChatId> {
        match self {
            Event::MessageCreated { message } | Event::MessageEdited { message } => {
                Some(message.chat)
            }
            Event::MessageDeleted { chat, .. }
            | Event::ChatChanged { chat, .. }
            | Event::Typing { chat, .. }
            | Event::ReadUpTo { chat, .. } => Some(*chat),
            Event::UserChanged { .. }
            | Event::FileAdded { .. }
            | Event::FileRemoved { .. }
            | Event::Presence { .. }
            | Event::FriendsChanged { .. }
            | Event::Watch { .. } => None,
        }
    }
}

/// The id of one bus instance (one node). Random, made when the [`Bus`] is made.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub(crate) fn random() -> NodeId {
        NodeId(format!("{:016x}", rand::rng().random::<u64>()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A place in the Redis stream of durable events: the entry's stream id and its number
/// (the `n`-th durable event published under this prefix). Text form: `<ms>-<seq>#<n>`.
///
/// Subscribing from a position delivers the durable events after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
    pub(crate) n: u64,
}

impl Position {
    /// Before the first event: subscribing from here replays every retained durable event.
    pub const ORIGIN: Position = Position {
        ms: 0,
        seq: 0,
        n: 0,
    };

    /// The number of this event in the stream: 1 for the first durable event ever published
    /// under this prefix, 0 for [`Position::ORIGIN`].
    pub fn number(&self) -> u64 {
        self.n
    }

    pub(crate) fn stream_id(&self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }

    /// From a stream entry id (`<ms>-<seq>`) and its number.
    pub(crate) fn from_entry(id: &str, n: u64) -> Result<Position, BusError> {
        let (ms, seq) = parse_stream_id(id).ok_or_else(|| bad_position(id))?;
        Ok(Position { ms, seq, n })
    }
}

fn bad_position(s: &str) -> BusError {
    BusError::BadPosition(s.chars().take(64).collect())
}

fn digits(p: &str) -> Option<u64> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

pub(crate) fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((digits(ms)?, digits(seq)?))
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}#{}", self.ms, self.seq, self.n)
    }
}

impl FromStr for Position {
    type Err = BusError;

    fn from_str(s: &str) -> Result<Position, BusError> {
        let (id, n) = s.split_once('#').ok_or_else(|| bad_position(s))?;
        let n = digits(n).ok_or_else(|| bad_position(s))?;
        Position::from_entry(id, n)
    }
}

/// One delivered event with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The node that published it.
    pub origin: NodeId,
    /// Its place in the durable stream (Redis bus, durable events only).
    #[serde(skip)]
    pub position: Option<Position>,
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_order() {
        let p: Position = "1700000000000-3#42".parse().unwrap();
        assert_eq!(p.to_string(), "1700000000000-3#42");
        assert_eq!(p.number(), 42);
        assert_eq!(p.stream_id(), "1700000000000-3");
        assert!(Position::ORIGIN < p);
        assert_eq!(
            Position::ORIGIN.to_string().parse::<Position>().unwrap(),
            Position::ORIGIN
        );
        assert!(p < "1700000000000-4#43".parse().unwrap());
        assert!(p < "1700000000001-0#43".parse().unwrap());
        for bad in [
            "",
            "-",
            "#",
            "1-2",
            "1-#2",
            "-1#2",
            "1-2-3#4",
            "a-1#2",
            "+1-2#3",
            "1 -2#3",
            "1-2#",
            "1-2#x",
            "1-2#3#4",
            "99999999999999999999-0#1",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn events_are_tagged_json_and_classified() {
        let e = Event::Typing {
            chat: ChatId(1),
            user: UserId(2),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"typing","chat":1,"user":2}"#
        );
        assert!(!e.is_durable());
        assert_eq!(e.chat(), Some(ChatId(1)));
        let f = Event::FileAdded {
            file_id: "f1".into(),
            owner: UserId(1),
            name: "a.txt".into(),
            chats: vec![],
        };
        assert!(f.is_durable());
        let back: Event = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<Event>(r#"{"type":"nope"}"#).is_err());
    }
}
