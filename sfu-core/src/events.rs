//! What a participant is told ([`PeerEvent`]), and the bounded queue that carries it from the
//! media plane (worker threads, the room directory) to the participant's door (a WebSocket
//! call session, a WHIP or WHEP session).
//!
//! Every queue toward a client has a limit: [`peer_events`] takes the capacity. Senders never
//! block (a worker thread must not wait for a slow client): when the queue is full the event
//! is dropped and the queue is marked lagged, and the receiver's next [`EventReceiver::recv`]
//! answers [`Lagged`], so the door closes the session (the client reconnects and is told the
//! room afresh) instead of the server buffering without bound.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};

use crate::{layers, Kind, ParticipantId, TrackInfo};

/// A listed member, as the others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: ParticipantId,
    pub identity: String,
    pub name: String,
    pub audio_muted: bool,
    pub video_muted: bool,
}

/// A change in a room, told to its listed members (never to the member it is about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    Joined(Member),
    Left(ParticipantId),
    Muted {
        who: ParticipantId,
        kind: Kind,
        muted: bool,
    },
    /// A track went live; `mid` is in its publisher's session.
    TrackPublished(TrackInfo),
    /// A track ended because its publisher left.
    TrackUnpublished(TrackInfo),
}

/// The capacity doors use: room events come in bursts of a few per change, so a client that
/// is this far behind has stopped reading.
pub const DEFAULT_CAPACITY: usize = 256;

/// Events for one participant, delivered to its signaling connection.
#[derive(Debug)]
pub enum PeerEvent {
    /// A server offer to forward to the client; `added` maps new mids to their publishers,
    /// `removed` lists mids of tracks that ended.
    Offer {
        sdp: String,
        added: Vec<TrackInfo>,
        removed: Vec<String>,
    },
    /// One of this participant's own tracks is now published to the room (its media arrived
    /// and it is routed); `mid` is in the participant's own session.
    Published(TrackInfo),
    /// The simulcast layer this participant receives on track `mid` changed.
    LayerSwitched {
        mid: String,
        /// The layer's RID name (`q`, `h`, `f`).
        layer: &'static str,
        reason: layers::SwitchReason,
        /// The layer's frame width, when known.
        width: Option<u16>,
    },
    /// Someone else in the room joined, left, muted or published ([`crate::directory`]).
    Room(RoomEvent),
    /// The room's active speaker changed (`None`: nobody speaks).
    ActiveSpeaker(Option<ParticipantId>),
    /// ICE + DTLS connected.
    Connected,
    /// The media session ended (the participant left, timed out or failed).
    Closed,
}

/// A queue of one participant's events, holding at most `capacity` of them.
pub fn peer_events(capacity: usize) -> (EventSender, EventReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let lagged = Arc::new(AtomicBool::new(false));
    (
        EventSender {
            tx,
            lagged: lagged.clone(),
        },
        EventReceiver { rx, lagged },
    )
}

/// The sending side; clones share the queue.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::Sender<PeerEvent>,
    lagged: Arc<AtomicBool>,
}

impl EventSender {
    /// Queues `event` without waiting. False when it was not queued: the receiver is gone, or
    /// the queue is full (the event is dropped and the queue is lagged from now on).
    pub fn send(&self, event: PeerEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.lagged.store(true, Ordering::Release);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

/// Events were dropped because the queue was full: the receiver's view of the room is no
/// longer complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the participant fell behind its events")]
pub struct Lagged;

/// The receiving side, read by the participant's door.
#[derive(Debug)]
pub struct EventReceiver {
    rx: mpsc::Receiver<PeerEvent>,
    lagged: Arc<AtomicBool>,
}

impl EventReceiver {
    /// The next event in order; `Ok(None)` once every sender is gone, `Err(Lagged)` once an
    /// event was dropped. Cancel-safe (for `select!`).
    pub async fn recv(&mut self) -> Result<Option<PeerEvent>, Lagged> {
        // A full queue is never empty, so a receiver waiting below cannot miss the mark.
        if self.lagged.load(Ordering::Acquire) {
            return Err(Lagged);
        }
        Ok(self.rx.recv().await)
    }

    /// The next event if one is queued (`Ok(None)`: none now), without waiting.
    pub fn try_recv(&mut self) -> Result<Option<PeerEvent>, Lagged> {
        if self.lagged.load(Ordering::Acquire) {
            return Err(Lagged);
        }
        match self.rx.try_recv() {
            Ok(ev) => Ok(Some(ev)),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_drops_and_the_receiver_is_told_it_lagged() {
        let (tx, mut rx) = peer_events(2);
        assert!(tx.send(PeerEvent::Connected));
        assert!(tx.send(PeerEvent::ActiveSpeaker(None)));
        // The third does not fit: dropped, never waited for.
        assert!(!tx.send(PeerEvent::Closed));
        assert!(!tx.clone().send(PeerEvent::Closed));
        assert!(matches!(rx.recv().await, Err(Lagged)));
        assert!(matches!(rx.try_recv(), Err(Lagged)));
    }

    #[tokio::test]
    async fn a_queue_that_keeps_up_delivers_everything_in_order() {
        let (tx, mut rx) = peer_events(2);
        for round in 0..100u64 {
            assert!(tx.send(PeerEvent::ActiveSpeaker(Some(ParticipantId(round)))));
            match rx.recv().await {
                Ok(Some(PeerEvent::ActiveSpeaker(Some(p)))) => assert_eq!(p.0, round),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(matches!(rx.try_recv(), Ok(None)));
        drop(tx);
        assert!(matches!(rx.recv().await, Ok(None)));
    }

    #[tokio::test]
    async fn sending_to_a_departed_receiver_is_refused_not_lagged() {
        let (tx, rx) = peer_events(1);
        drop(rx);
        assert!(!tx.send(PeerEvent::Connected));
        assert!(!tx.lagged.load(Ordering::Acquire));
    }
}
