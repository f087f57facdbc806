//! Who is in which call room, by signaling connection: names, mute state, and a channel to
//! each connection for room broadcasts (joins, leaves, tracks, mutes).
//!
//! Control plane only: a mutex-guarded map touched a few times per join, never per packet.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc::UnboundedSender;

use crate::protocol::{MediaKind, ParticipantInfo, ServerMessage};

struct Member {
    info: ParticipantInfo,
    tx: UnboundedSender<ServerMessage>,
}

/// Room membership of all signaling connections.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<String, Vec<Member>>>,
}

impl Rooms {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Member>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a member, tells the others, and returns who was there before.
    pub fn enter(
        &self,
        room: &str,
        info: ParticipantInfo,
        tx: UnboundedSender<ServerMessage>,
    ) -> Vec<ParticipantInfo> {
        let mut rooms = self.lock();
        let members = rooms.entry(room.to_owned()).or_default();
        let before: Vec<ParticipantInfo> = members.iter().map(|m| m.info.clone()).collect();
        let msg = ServerMessage::ParticipantJoined {
            participant: info.clone(),
        };
        for m in members.iter() {
            let _ = m.tx.send(msg.clone());
        }
        members.push(Member { info, tx });
        before
    }

    /// Sends `msg` to everyone in `room` except `except`.
    pub fn broadcast(&self, room: &str, except: &str, msg: &ServerMessage) {
        let rooms = self.lock();
        if let Some(members) = rooms.get(room) {
            for m in members.iter().filter(|m| m.info.id != except) {
                let _ = m.tx.send(msg.clone());
            }
        }
    }

    /// Records a mute change and tells the others.
    pub fn set_muted(&self, room: &str, id: &str, kind: MediaKind, muted: bool) {
        {
            let mut rooms = self.lock();
            if let Some(m) = rooms
                .get_mut(room)
                .and_then(|ms| ms.iter_mut().find(|m| m.info.id == id))
            {
                match kind {
                    MediaKind::Audio => m.info.audio_muted = muted,
                    MediaKind::Video => m.info.video_muted = muted,
                }
            }
        }
        self.broadcast(
            room,
            id,
            &ServerMessage::Mute {
                participant: id.to_owned(),
                kind,
                muted,
            },
        );
    }

    /// Removes a member and tells the others. Idempotent.
    pub fn leave(&self, room: &str, id: &str) {
        let mut rooms = self.lock();
        let Some(members) = rooms.get_mut(room) else {
            return;
        };
        let before = members.len();
        members.retain(|m| m.info.id != id);
        if members.len() == before {
            return;
        }
        let msg = ServerMessage::ParticipantLeft {
            participant: id.to_owned(),
        };
        for m in members.iter() {
            let _ = m.tx.send(msg.clone());
        }
        if members.is_empty() {
            rooms.remove(room);
        }
    }

    /// Number of members in a room.
    /// Whether participant `id` is in `room` (on this node).
    pub fn contains(&self, room: &str, id: &str) -> bool {
        self.lock()
            .get(room)
            .is_some_and(|ms| ms.iter().any(|m| m.info.id == id))
    }

    pub fn count(&self, room: &str) -> usize {
        self.lock().get(room).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    fn info(id: &str) -> ParticipantInfo {
        ParticipantInfo {
            id: id.into(),
            identity: id.into(),
            name: id.into(),
            audio_muted: false,
            video_muted: false,
        }
    }

    #[test]
    fn join_mute_leave_are_broadcast_to_the_others_only() {
        let rooms = Rooms::default();
        let (tx1, mut rx1) = unbounded_channel();
        let (tx2, mut rx2) = unbounded_channel();
        assert!(rooms.enter("r", info("a"), tx1).is_empty());
        let before = rooms.enter("r", info("b"), tx2);
        assert_eq!(before, vec![info("a")]);
        assert!(
            matches!(rx1.try_recv(), Ok(ServerMessage::ParticipantJoined { participant }) if participant.id == "b")
        );
        assert!(rx2.try_recv().is_err(), "b is not told about itself");

        rooms.set_muted("r", "b", MediaKind::Audio, true);
        assert!(matches!(
            rx1.try_recv(),
            Ok(ServerMessage::Mute { muted: true, .. })
        ));
        let (tx3, _rx3) = unbounded_channel();
        let seen = rooms.enter("r", info("c"), tx3);
        assert!(
            seen.iter().any(|p| p.id == "b" && p.audio_muted),
            "late joiner sees mute state"
        );

        rooms.leave("r", "b");
        rooms.leave("r", "b");
        let mut left = 0;
        while let Ok(m) = rx1.try_recv() {
            if matches!(m, ServerMessage::ParticipantLeft { .. }) {
                left += 1;
            }
        }
        assert_eq!(left, 1, "leave is idempotent");
        assert_eq!(rooms.count("r"), 2);
        rooms.leave("r", "a");
        rooms.leave("r", "c");
        assert_eq!(rooms.count("r"), 0);
    }
}
