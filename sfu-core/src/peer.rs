//! Peers: one entry per session on a worker, and the table that holds them.
//!
//! A [`Peer`] is a session plus what the worker keeps beside it: its scheduling state, its
//! addresses, its bandwidth [`Budget`], its counters and its [`SinkKind`], which says how the
//! tracks it receives reach it. A call participant gets every track of its room through server
//! offers; a WHEP player gets one publisher's tracks on the m-lines of its own offer and is
//! never sent an offer. A new kind of receiver (a recorder, say) is one more [`SinkKind`], not
//! a special case in the worker.
//!
//! [`Peers`] is a slab: a peer keeps its [`SinkId`] (an index) for life, so a consumer reaches
//! its subscriber's peer on the hot path by index, without hashing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::EventSender;

use crate::budget::Budget;
use crate::forward::{SinkId, Subscriber};
use crate::producer::ProducerKey;
use crate::session::{CodecKey, Kind, MediaId, Session};
use crate::ParticipantId;

/// Runs `f`, turning a panic inside str0m into `None` so only that peer is dropped.
pub(crate) fn guarded<R>(f: impl FnOnce() -> R) -> Option<R> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// What a WHEP player plays: one publisher's tracks, optionally one pinned simulcast layer
/// (0 = q, 1 = h, 2 = f) instead of the one its bandwidth allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follow {
    pub publisher: ParticipantId,
    pub layer: Option<u8>,
}

/// How the tracks a peer receives reach it.
#[derive(Debug)]
pub enum SinkKind {
    /// A call participant: every track of its room, each added by a server offer.
    Participant,
    /// A WHEP player: one publisher's tracks on the `recvonly` m-lines of its own offer.
    Player(Player),
}

/// A WHEP player's state: whom it follows and its m-lines not bound to a track yet.
#[derive(Debug)]
pub struct Player {
    pub follow: Follow,
    /// The player's `recvonly` m-lines not bound to a track yet.
    free: Vec<(MediaId, Kind)>,
}

/// How a new consumer of a track reaches a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Through the next server offer (a participant).
    Offer,
    /// At once, on the peer's own m-line `media`, with the player's pinned layer.
    Bound { media: MediaId, pin: Option<u8> },
    /// Not at all: a player that does not follow this publisher, or has no free m-line.
    Refused,
}

/// Counters of one peer (worker-local, plain integers).
#[derive(Debug, Default, Clone, Copy)]
pub struct PeerCounters {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub rtp_published: u64,
    pub rtp_received: u64,
    pub payload_bytes_received: u64,
    pub dropped_rejected: u64,
    pub dropped_unknown_ssrc: u64,
    pub dropped_codec: u64,
    pub dropped_not_ready: u64,
    pub layer_switches: [u64; 5],
}

/// One session on a worker and what the worker keeps beside it.
pub struct Peer {
    pub id: ParticipantId,
    pub session: Session,
    pub events: EventSender,
    /// The deadline currently in the timer heap (at most one live entry per peer).
    pub scheduled: Option<Instant>,
    /// Set while the peer is in the dirty list (needs a drive after fan-out).
    pub dirty: bool,
    /// The drive needs a whole str0m timeout pass (new tracks, keyframe requests, estimator
    /// goals); RTP written in a fan-out alone needs only [`Session::handle_rtp_written`].
    pub needs_timeout: bool,
    pub addrs: Vec<SocketAddr>,
    pub budget: Budget,
    pub counters: PeerCounters,
    pub sink: SinkKind,
}

impl Peer {
    /// A peer for a new session; with `follow`, a WHEP player.
    pub fn new(
        id: ParticipantId,
        session: Session,
        events: EventSender,
        follow: Option<Follow>,
    ) -> Self {
        Peer {
            id,
            session,
            events,
            scheduled: None,
            dirty: false,
            needs_timeout: false,
            addrs: Vec::new(),
            budget: Budget::default(),
            counters: PeerCounters::default(),
            sink: match follow {
                Some(follow) => SinkKind::Player(Player {
                    follow,
                    free: Vec::new(),
                }),
                None => SinkKind::Participant,
            },
        }
    }

    /// True for a peer that is sent server offers (a participant, not a player).
    pub fn gets_offers(&self) -> bool {
        matches!(self.sink, SinkKind::Participant)
    }

    /// The publisher a player follows.
    pub fn follows(&self) -> Option<ParticipantId> {
        match &self.sink {
            SinkKind::Player(p) => Some(p.follow.publisher),
            SinkKind::Participant => None,
        }
    }

    /// A player's m-line the session just reported: a track may be bound to it. False for a
    /// participant.
    pub fn add_free_slot(&mut self, media: MediaId, kind: Kind) -> bool {
        match &mut self.sink {
            SinkKind::Player(p) => {
                p.free.push((media, kind));
                true
            }
            SinkKind::Participant => false,
        }
    }

    /// How a new consumer of `key` (a track of `kind`) reaches this peer.
    pub fn bind(&mut self, key: ProducerKey, kind: Kind) -> Binding {
        match &mut self.sink {
            SinkKind::Participant => Binding::Offer,
            SinkKind::Player(p) if p.follow.publisher != key.owner => Binding::Refused,
            SinkKind::Player(p) => match p.free.iter().position(|(_, k)| *k == kind) {
                Some(i) => Binding::Bound {
                    media: p.free.remove(i).0,
                    pin: p.follow.layer.filter(|_| kind == Kind::Video),
                },
                None => Binding::Refused,
            },
        }
    }

    /// A consumer of this peer (negotiation `tag`, on m-line `media` once offered) stopped:
    /// a player's m-line becomes free again; a participant's track is cancelled before its
    /// offer, or stopped by the next one.
    pub fn release(&mut self, tag: u64, media: Option<MediaId>) {
        match &mut self.sink {
            SinkKind::Player(p) => {
                if let Some(m) = media {
                    if let Some((_, kind)) = self.session.media_by_mid(m.as_str()) {
                        p.free.push((m, kind));
                    }
                }
            }
            SinkKind::Participant => {
                if !self.session.cancel_outgoing(tag) {
                    if let Some(m) = media {
                        self.session.queue_stop(m);
                    }
                }
            }
        }
    }

    /// Tells the session's estimator the goal of this peer's budget.
    pub fn update_bitrate_goal(&mut self) {
        let (minimum, desired) = self.budget.goal();
        let session = &mut self.session;
        let _ = guarded(|| session.set_bitrate_goal(minimum, desired));
    }
}

impl Subscriber for Peer {
    fn video_budget(&self) -> Option<u64> {
        self.budget.per_video_track()
    }

    fn payload_type(&self, media: MediaId, codec: CodecKey) -> Option<u8> {
        self.session.pt_for(media, codec)
    }
}

/// The peers of one worker: a slab indexed by [`SinkId`], and an index by participant.
#[derive(Default)]
pub struct Peers {
    slots: Vec<Option<Peer>>,
    free: Vec<u32>,
    by_id: HashMap<ParticipantId, SinkId>,
}

impl Peers {
    /// Adds a peer; its [`SinkId`] stays valid until it is removed.
    pub fn insert(&mut self, peer: Peer) -> SinkId {
        let id = peer.id;
        let sink = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(peer);
                SinkId(i)
            }
            None => {
                self.slots.push(Some(peer));
                SinkId(self.slots.len() as u32 - 1)
            }
        };
        self.by_id.insert(id, sink);
        sink
    }

    /// Removes a participant's peer; its slot may be reused afterwards.
    pub fn remove(&mut self, who: ParticipantId) -> Option<Peer> {
        let sink = self.by_id.remove(&who)?;
        self.free.push(sink.0);
        self.slots[sink.0 as usize].take()
    }

    /// The slot of a participant's peer.
    pub fn sink_of(&self, who: ParticipantId) -> Option<SinkId> {
        self.by_id.get(&who).copied()
    }

    pub fn contains(&self, who: ParticipantId) -> bool {
        self.by_id.contains_key(&who)
    }

    pub fn get(&self, who: ParticipantId) -> Option<&Peer> {
        self.at(self.sink_of(who)?)
    }

    pub fn get_mut(&mut self, who: ParticipantId) -> Option<&mut Peer> {
        self.at_mut(self.sink_of(who)?)
    }

    /// The peer in slot `sink` (the hot path: an index, no hash).
    #[inline]
    pub fn at(&self, sink: SinkId) -> Option<&Peer> {
        self.slots.get(sink.0 as usize)?.as_ref()
    }

    #[inline]
    pub fn at_mut(&mut self, sink: SinkId) -> Option<&mut Peer> {
        self.slots.get_mut(sink.0 as usize)?.as_mut()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every peer, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (SinkId, &Peer)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((SinkId(i as u32), p.as_ref()?)))
    }

    /// Every participant with a peer here.
    pub fn ids(&self) -> Vec<ParticipantId> {
        self.by_id.keys().copied().collect()
    }
}
