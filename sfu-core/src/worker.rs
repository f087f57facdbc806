//! One worker's media pipeline, sans-IO: datagram -> session -> router -> subscriber sessions.
//!
//! A [`WorkerCore`] owns the sessions of the peers placed on its worker, the routing table of
//! their rooms and a timer heap. It never touches a socket or a clock: the thread loop in
//! [`crate::worker_thread`] feeds it datagrams and the time and sends what lands in its outbox.
//! Benches and tests drive it the same way in memory.
//!
//! A session is driven only when it has input or its own deadline is due (the timer heap keeps
//! at most one live entry per session), never by sweeping all sessions.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use str0m::config::DtlsCert;
use tokio::sync::mpsc::UnboundedSender;

use crate::demux::{self, Proto};
use crate::router::{Grants, ProducerKey, Router};
use crate::session::{Kind, MediaId, OutgoingTrack, RtpIn, Session, SessionEvent, SessionOutput};
use crate::stats::WorkerStats;
use crate::{ParticipantId, PeerEvent, SfuError, TrackInfo};

/// Runs `f`, turning a panic inside str0m into `None` so only that peer is dropped.
fn guarded<R>(f: impl FnOnce() -> R) -> Option<R> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

struct Peer {
    session: Session,
    events: UnboundedSender<PeerEvent>,
    /// The deadline currently in the timer heap (at most one live entry per peer).
    scheduled: Option<Instant>,
    /// Set while the peer is in the dirty list (needs a drive after fan-out).
    dirty: bool,
    addrs: Vec<SocketAddr>,
}

/// What a successful join returns.
#[derive(Debug)]
pub struct JoinAnswer {
    /// Our SDP answer to the peer's offer.
    pub answer: String,
}

/// The media state of one worker.
pub struct WorkerCore {
    local: SocketAddr,
    cert: DtlsCert,
    peers: HashMap<ParticipantId, Peer>,
    by_addr: HashMap<SocketAddr, ParticipantId>,
    timers: BinaryHeap<Reverse<(Instant, ParticipantId)>>,
    router: Router,
    stats: Arc<WorkerStats>,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    dirty: Vec<ParticipantId>,
    doomed: Vec<ParticipantId>,
}

impl WorkerCore {
    /// A worker whose peers reach it at `local` (the address in the host candidate).
    pub fn new(local: SocketAddr, cert: DtlsCert, stats: Arc<WorkerStats>) -> Self {
        WorkerCore {
            local,
            cert,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            timers: BinaryHeap::new(),
            router: Router::new(),
            stats,
            outbox: Vec::with_capacity(256),
            dirty: Vec::with_capacity(64),
            doomed: Vec::new(),
        }
    }

    /// The address peers send media to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams to send, as (destination, bytes). The I/O loop drains it after every call.
    pub fn outbox_drain(&mut self) -> std::vec::Drain<'_, (SocketAddr, Vec<u8>)> {
        self.outbox.drain(..)
    }

    /// This worker's counters.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Number of peers on this worker.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// A new peer joins `room` with its SDP offer. Its tracks are published to the others and
    /// it is offered everyone else's tracks right after (a server offer on `events`).
    pub fn join(
        &mut self,
        now: Instant,
        room: &str,
        who: ParticipantId,
        grants: Grants,
        offer: &str,
        events: UnboundedSender<PeerEvent>,
    ) -> Result<JoinAnswer, SfuError> {
        if self.peers.contains_key(&who) {
            return Err(SfuError::AlreadyJoined);
        }
        let mut session = Session::new(now, &self.cert, self.local)?;
        let answer = match guarded(|| session.accept_offer(offer)) {
            Some(r) => r?,
            None => return Err(SfuError::Internal("the offer crashed the session")),
        };
        self.router.join(room, who, grants);
        self.peers.insert(
            who,
            Peer {
                session,
                events,
                scheduled: None,
                dirty: false,
                addrs: Vec::new(),
            },
        );
        self.stats.sessions.set(self.peers.len() as u64);
        // Draining the session now turns its MediaAdded events into producers.
        self.drive(now, who);
        // The newcomer receives everything already published in the room.
        for (key, kind) in self.router.producers_for(who) {
            self.add_consumer(key, kind, who);
        }
        self.negotiate(who);
        self.drive_dirty(now);
        self.bury(now);
        Ok(JoinAnswer { answer })
    }

    /// The peer answered our last offer.
    pub fn answer(&mut self, now: Instant, who: ParticipantId, sdp: &str) -> Result<(), SfuError> {
        let peer = self
            .peers
            .get_mut(&who)
            .ok_or(SfuError::UnknownParticipant)?;
        match guarded(|| peer.session.accept_answer(sdp)) {
            Some(r) => r?,
            None => {
                self.doomed.push(who);
                self.bury(now);
                return Err(SfuError::Internal("the answer crashed the session"));
            }
        }
        for key in self.router.activate_offered(who) {
            self.keyframe_for(now, key, true);
        }
        self.negotiate(who);
        self.drive(now, who);
        self.drive_dirty(now);
        self.bury(now);
        Ok(())
    }

    /// The peer leaves (or its signaling connection closed).
    pub fn leave(&mut self, now: Instant, who: ParticipantId) {
        if let Some(mut peer) = self.peers.remove(&who) {
            let _ = guarded(|| peer.session.close());
            // Flush DTLS close_notify and RTCP BYE.
            while let Some(SessionOutput::Transmit { to, data }) = guarded(|| peer.session.poll()) {
                self.outbox.push((to, data));
            }
            for a in peer.addrs {
                self.by_addr.remove(&a);
            }
            let _ = peer.events.send(PeerEvent::Closed);
        }
        self.stats.sessions.set(self.peers.len() as u64);
        let dep = self.router.leave(who);
        let mut touched = Vec::new();
        for (sub, tag, media) in dep.stop {
            let Some(p) = self.peers.get_mut(&sub) else {
                continue;
            };
            if !p.session.cancel_outgoing(tag) {
                if let Some(m) = media {
                    p.session.queue_stop(m);
                }
            }
            if !touched.contains(&sub) {
                touched.push(sub);
            }
        }
        for sub in touched {
            self.negotiate(sub);
            self.mark_dirty(sub);
        }
        self.drive_dirty(now);
    }

    /// One datagram arrived on the worker's socket.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.stats.packets_in.inc();
        self.stats.bytes_in.add(data.len() as u64);
        let proto = match demux::check(data) {
            Ok(p) => p,
            Err(e) => {
                self.stats.dropped_malformed.inc();
                tracing::trace!(%source, "malformed datagram: {e}");
                return;
            }
        };
        let who = match self.by_addr.get(&source) {
            Some(w) => *w,
            None => match self.learn_address(now, source, proto, data) {
                Some(w) => w,
                None => return,
            },
        };
        let local = self.local;
        let Some(peer) = self.peers.get_mut(&who) else {
            return;
        };
        match guarded(|| peer.session.handle_datagram(now, source, local, data)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                self.stats.dropped_rejected.inc();
                tracing::trace!(%source, "datagram rejected: {e}");
            }
            None => self.doomed.push(who),
        }
        self.drive(now, who);
        self.drive_dirty(now);
        self.bury(now);
    }

    /// A datagram from an address we have not seen: only STUN for one of our sessions may
    /// introduce it. Anything else is counted and dropped.
    fn learn_address(
        &mut self,
        now: Instant,
        source: SocketAddr,
        proto: Proto,
        data: &[u8],
    ) -> Option<ParticipantId> {
        if proto != Proto::Stun {
            self.stats.dropped_unknown_source.inc();
            return None;
        }
        let local = self.local;
        let who = self
            .peers
            .iter()
            .find(|(_, p)| guarded(|| p.session.accepts(now, source, local, data)).unwrap_or(false))
            .map(|(w, _)| *w);
        match who {
            Some(w) => {
                self.by_addr.insert(source, w);
                if let Some(p) = self.peers.get_mut(&w) {
                    p.addrs.push(source);
                }
                Some(w)
            }
            None => {
                self.stats.dropped_unknown_source.inc();
                None
            }
        }
    }

    /// The earliest deadline of any session.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        // Drop stale heap entries so the loop does not wake for nothing.
        while let Some(Reverse((t, who))) = self.timers.peek().copied() {
            match self.peers.get(&who) {
                Some(p) if p.scheduled == Some(t) => return Some(t),
                _ => {
                    self.timers.pop();
                }
            }
        }
        None
    }

    /// Drives every session whose deadline is due.
    pub fn handle_timeouts(&mut self, now: Instant) {
        while let Some(Reverse((t, who))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(p) = self.peers.get_mut(&who) else {
                continue;
            };
            if p.scheduled != Some(t) {
                continue; // stale entry
            }
            p.scheduled = None;
            if guarded(|| p.session.handle_timeout(now)).is_none() {
                self.doomed.push(who);
                continue;
            }
            self.drive(now, who);
        }
        self.drive_dirty(now);
        self.bury(now);
    }

    fn mark_dirty(&mut self, who: ParticipantId) {
        if let Some(p) = self.peers.get_mut(&who) {
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(who);
            }
        }
    }

    /// Drives sessions that were written to during fan-out.
    fn drive_dirty(&mut self, now: Instant) {
        while let Some(who) = self.dirty.pop() {
            let Some(p) = self.peers.get_mut(&who) else {
                continue;
            };
            p.dirty = false;
            if guarded(|| p.session.handle_timeout(now)).is_none() {
                self.doomed.push(who);
                continue;
            }
            self.drive(now, who);
        }
    }

    /// Drains one session's output: transmits to the outbox, events through the router.
    fn drive(&mut self, now: Instant, who: ParticipantId) {
        loop {
            let Some(p) = self.peers.get_mut(&who) else {
                return;
            };
            let out = match guarded(|| p.session.poll()) {
                Some(o) => o,
                None => {
                    self.doomed.push(who);
                    return;
                }
            };
            match out {
                SessionOutput::Transmit { to, data } => {
                    self.outbox.push((to, data));
                }
                SessionOutput::Wait(t) => {
                    // Keep at most one live heap entry: only an earlier deadline replaces it.
                    if p.scheduled.is_none_or(|s| t < s) {
                        p.scheduled = Some(t);
                        self.timers.push(Reverse((t, who)));
                    }
                    return;
                }
                SessionOutput::Event(ev) => self.on_event(now, who, ev),
            }
        }
    }

    fn on_event(&mut self, now: Instant, who: ParticipantId, ev: SessionEvent) {
        match ev {
            SessionEvent::Rtp(pkt) => self.forward(now, who, pkt),
            SessionEvent::Published { media, kind } => {
                if self.router.add_producer(who, media, kind) {
                    if let Some(p) = self.peers.get(&who) {
                        let _ = p.events.send(PeerEvent::Published(TrackInfo {
                            mid: media.as_str().to_owned(),
                            publisher: who,
                            kind,
                        }));
                    }
                    let key = ProducerKey { owner: who, media };
                    for other in self.router.subscribers_of(who) {
                        self.add_consumer(key, kind, other);
                        self.negotiate(other);
                        self.mark_dirty(other);
                    }
                }
            }
            SessionEvent::KeyframeRequest { media } => {
                if let Some(key) = self.router.producer_of(who, media) {
                    self.keyframe_for(now, key, true);
                }
            }
            SessionEvent::Connected => {
                if let Some(p) = self.peers.get(&who) {
                    let _ = p.events.send(PeerEvent::Connected);
                }
            }
            SessionEvent::Closed => self.doomed.push(who),
        }
    }

    /// Sends (or schedules, if throttled) a keyframe request to a producer's publisher.
    fn keyframe_for(&mut self, now: Instant, key: ProducerKey, want: bool) {
        let Some(prod) = self.router.producer_mut(&key) else {
            return;
        };
        let send = if want {
            prod.want_keyframe(now)
        } else {
            prod.keyframe_due(now)
        };
        if send {
            if let Some(p) = self.peers.get_mut(&key.owner) {
                if guarded(|| p.session.request_keyframe(key.media)).is_some() {
                    self.stats.keyframe_requests.inc();
                    self.mark_dirty(key.owner);
                }
            }
        }
    }

    /// The hot path: one incoming packet to every consumer of its track.
    fn forward(&mut self, now: Instant, from: ParticipantId, pkt: RtpIn) {
        self.stats.rtp_in.inc();
        let key = ProducerKey {
            owner: from,
            media: pkt.media,
        };
        let Some(prod) = self.router.producer_mut(&key) else {
            self.stats.dropped_no_route.inc();
            return;
        };
        // Simulcast publishers: forward one layer (the first seen) until layer selection lands.
        if pkt.layer.is_some() {
            if prod.layer.is_none() {
                prod.layer = pkt.layer;
            }
            if prod.layer != pkt.layer {
                return;
            }
        }
        if prod.keyframe_due(now) {
            if let Some(p) = self.peers.get_mut(&from) {
                let _ = guarded(|| p.session.request_keyframe(key.media));
                self.stats.keyframe_requests.inc();
            }
        }
        let nackable = prod.kind == Kind::Video;
        let Self {
            peers,
            stats,
            dirty,
            doomed,
            ..
        } = self;
        for c in prod.consumers.iter_mut() {
            let Some(media) = c.media.filter(|_| c.active) else {
                continue;
            };
            // Payload type map, filled on the first packet of each type.
            let out_pt = match c.pt_map.iter().find(|(i, _)| *i == pkt.pt) {
                Some((_, o)) => *o,
                None => {
                    let codec = peers.get(&from).and_then(|p| p.session.codec_of(pkt.pt));
                    let o = match (codec, peers.get(&c.subscriber)) {
                        (Some(codec), Some(s)) => s.session.pt_for(media, codec),
                        _ => None,
                    };
                    c.pt_map.push((pkt.pt, o));
                    o
                }
            };
            let Some(out_pt) = out_pt else {
                stats.dropped_codec.inc();
                continue;
            };
            let Some(sub) = peers.get_mut(&c.subscriber) else {
                continue;
            };
            let seq = c.rewrite_seq(pkt.seq);
            let written = guarded(|| {
                sub.session.write_rtp(
                    media,
                    out_pt,
                    seq,
                    pkt.timestamp,
                    pkt.arrival,
                    pkt.marker,
                    pkt.audio_level,
                    pkt.voice_activity,
                    nackable,
                    &pkt.payload,
                )
            });
            match written {
                Some(true) => {
                    stats.rtp_forwarded.inc();
                    if !sub.dirty {
                        sub.dirty = true;
                        dirty.push(c.subscriber);
                    }
                }
                Some(false) => stats.dropped_not_ready.inc(),
                None => doomed.push(c.subscriber),
            }
        }
    }

    fn add_consumer(&mut self, key: ProducerKey, kind: Kind, subscriber: ParticipantId) {
        let Some(tag) = self.router.add_consumer(key, subscriber) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&subscriber) {
            p.session.queue_outgoing(OutgoingTrack {
                tag,
                kind,
                stream_id: format!("p{}", key.owner.0),
                track_id: format!("p{}-{}", key.owner.0, key.media),
            });
        }
    }

    /// Sends the next server offer to `who` if changes are queued and none is in flight.
    fn negotiate(&mut self, who: ParticipantId) {
        let Some(p) = self.peers.get_mut(&who) else {
            return;
        };
        let Some(Some((sdp, added, removed))) = guarded(|| p.session.create_offer()) else {
            return;
        };
        let mut tracks = Vec::with_capacity(added.len());
        for (media, track) in added {
            if let Some(key) = self.router.consumer_offered(who, track.tag, media) {
                tracks.push(TrackInfo {
                    mid: media.as_str().to_owned(),
                    publisher: key.owner,
                    kind: track.kind,
                });
            }
        }
        let removed = removed.iter().map(|m| m.as_str().to_owned()).collect();
        if let Some(p) = self.peers.get(&who) {
            let _ = p.events.send(PeerEvent::Offer {
                sdp,
                added: tracks,
                removed,
            });
        }
    }

    /// Removes peers whose session died or panicked.
    fn bury(&mut self, now: Instant) {
        while let Some(who) = self.doomed.pop() {
            if self.peers.contains_key(&who) {
                tracing::info!(participant = who.0, "session ended");
                self.stats.sessions_failed.inc();
                self.leave(now, who);
            }
        }
    }

    /// Closes every session (shutdown).
    pub fn close_all(&mut self, now: Instant) {
        let all: Vec<ParticipantId> = self.peers.keys().copied().collect();
        for who in all {
            self.leave(now, who);
        }
    }

    /// Tracks a participant publishes (for tests and the control API).
    pub fn tracks_of(&self, who: ParticipantId) -> Vec<(MediaId, Kind)> {
        self.router
            .producers_for_owner(who)
            .into_iter()
            .map(|(k, kind)| (k.media, kind))
            .collect()
    }
}
