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
use crate::layers::{
    layer_index, layer_name, rate_of, temporal_limit, Inputs, SimulcastIn, SwitchReason,
    DEFAULT_BITRATES, MAX_LAYERS,
};
use crate::relay::{Inter, Packet, RelayLinks, Relayed, RELAY_CAPACITY};
use crate::router::{Departure, Grants, Origin, ProducerKey, Router, KEYFRAME_THROTTLE};
use crate::session::{
    Kind, MediaId, OutgoingTrack, RtpIn, Session, SessionError, SessionEvent, SessionOutput,
};
use crate::stats::WorkerStats;
use crate::vp8;
use crate::{ConsumerStats, ParticipantId, PeerEvent, SessionStats, SfuError, TrackInfo};

/// Bitrate set aside for the audio a peer receives before video shares the rest.
const AUDIO_ALLOWANCE: u64 = 64_000;

/// The least the bandwidth estimator keeps flowing to a peer that receives anything.
const MIN_BITRATE_GOAL: u64 = 300_000;

/// The reason reported for a switch: the first layer a consumer gets is "initial", whatever
/// moved the target while it waited for the first keyframe.
fn reason_before_switch(current: Option<u8>, pending: Option<SwitchReason>) -> SwitchReason {
    match current {
        None => SwitchReason::Initial,
        Some(_) => pending.unwrap_or(SwitchReason::Initial),
    }
}

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
    /// The drive needs a whole str0m timeout pass (set by [`WorkerCore::mark_dirty`]: new
    /// tracks, keyframe requests, estimator goals); RTP written in a fan-out alone needs only
    /// [`Session::handle_rtp_written`].
    needs_timeout: bool,
    addrs: Vec<SocketAddr>,
    /// A cap on what this peer receives, bits per second (set by the client).
    max_bitrate: Option<u64>,
    /// How many video tracks this peer receives (the budget is shared among them).
    video_tracks: usize,
    /// The send-side bandwidth estimate toward this peer, bits per second.
    estimate: Option<u64>,
    /// This peer's own counters (worker-local, plain integers).
    counters: PeerCounters,
    /// Added to the bandwidth goal to ask for a new probe (see `update_bitrate_goal`).
    probe_bump: u64,
    /// A WHEP player: receives one participant's tracks on the m-lines of its own offer, and
    /// is never sent an offer.
    whep: Option<Whep>,
}

/// What a WHEP player receives: `from`'s tracks, one per free m-line of the right kind.
#[derive(Debug)]
struct Whep {
    from: ParticipantId,
    /// The simulcast layer the player pinned for every video track it receives.
    layer: Option<u8>,
    /// The player's `recvonly` m-lines not bound to a track yet.
    free: Vec<(MediaId, Kind)>,
}

/// What a WHEP player plays: one publisher's tracks, optionally one pinned simulcast layer
/// (0 = q, 1 = h, 2 = f) instead of the one its bandwidth allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follow {
    pub publisher: ParticipantId,
    pub layer: Option<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
struct PeerCounters {
    datagrams_in: u64,
    bytes_in: u64,
    rtp_published: u64,
    rtp_received: u64,
    payload_bytes_received: u64,
    dropped_rejected: u64,
    dropped_unknown_ssrc: u64,
    dropped_codec: u64,
    dropped_not_ready: u64,
    layer_switches: [u64; 5],
}

impl Peer {
    /// The bitrate each of this peer's video tracks may use.
    fn video_budget(&self) -> Option<u64> {
        let total = match (self.max_bitrate, self.estimate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        // Leave room for audio (about 64 kbit/s per track) before sharing among video tracks.
        Some(total.saturating_sub(AUDIO_ALLOWANCE) / self.video_tracks.max(1) as u64)
    }

    /// Tells the estimator how much we would like to send: twice the top layer of every video
    /// track, so it keeps probing above what the top layers need and an upgrade (a tile that
    /// grows) finds the bandwidth already known.
    fn update_bitrate_goal(&mut self) {
        // `probe_bump` nudges the goal up by a few bit/s: str0m only starts an allocation probe
        // when the desired rate rises, and a subscriber that now wants more (a tile grew) should
        // not wait for the estimate to creep up on its own.
        let desired = AUDIO_ALLOWANCE
            + self.video_tracks as u64 * 2 * DEFAULT_BITRATES[MAX_LAYERS - 1]
            + self.probe_bump;
        let _ = guarded(|| self.session.set_bitrate_goal(MIN_BITRATE_GOAL, desired));
    }
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
    /// Reused list of sessions due in `handle_timeouts` (no allocation per call).
    due: Vec<ParticipantId>,
    /// New sessions estimate their send bandwidth (the layer budget); on by default.
    bandwidth_estimation: bool,
    /// The rings to and from the other workers of the mesh.
    links: RelayLinks,
    /// Control messages for other workers, as (worker, message); the I/O loop delivers them.
    inter_out: Vec<(usize, Inter)>,
    /// Tracks published on other workers, by room: what a member joining here must receive.
    remote_tracks: HashMap<String, Vec<RemoteTrack>>,
}

/// A track published on another worker (from its [`Inter::ProducerAdded`]).
#[derive(Debug, Clone, Copy)]
struct RemoteTrack {
    key: ProducerKey,
    kind: Kind,
    worker: usize,
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
            due: Vec::with_capacity(64),
            bandwidth_estimation: true,
            links: RelayLinks::single(),
            inter_out: Vec::new(),
            remote_tracks: HashMap::new(),
        }
    }

    /// Makes this core one worker of a mesh (see [`crate::relay::mesh`]): rooms may then span
    /// workers.
    pub fn with_links(mut self, links: RelayLinks) -> Self {
        self.links = links;
        self
    }

    /// This worker's index in its mesh (0 for a lone worker).
    pub fn index(&self) -> usize {
        self.links.index()
    }

    /// Control messages for other workers, as (worker, message). The I/O loop drains it after
    /// every call and hands each to [`WorkerCore::handle_inter`] of its worker.
    pub fn inter_drain(&mut self) -> std::vec::Drain<'_, (usize, Inter)> {
        self.inter_out.drain(..)
    }

    /// The workers this one pushed packets to since the last call (a bit per worker), for the
    /// I/O loop to wake those that sleep.
    pub fn take_relay_wakes(&mut self) -> u64 {
        self.links.take_wakes()
    }

    /// True when packets from other workers wait for [`WorkerCore::handle_relays`].
    pub fn relay_pending(&self) -> bool {
        self.links.pending()
    }

    /// Turns the send-side bandwidth estimate of new sessions on or off. Off, layer choice uses
    /// only the subscribers' own caps.
    pub fn set_bandwidth_estimation(&mut self, on: bool) {
        self.bandwidth_estimation = on;
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
    ///
    /// With `follow`, the participant is a WHEP player: it receives only `follow.publisher`'s
    /// tracks, on the `recvonly` m-lines of its offer (one track per m-line of the same kind),
    /// is never sent an offer of its own, and gets `follow.layer` of simulcast video if set.
    #[allow(clippy::too_many_arguments)]
    pub fn join(
        &mut self,
        now: Instant,
        room: &str,
        who: ParticipantId,
        grants: Grants,
        follow: Option<Follow>,
        offer: &str,
        events: UnboundedSender<PeerEvent>,
    ) -> Result<JoinAnswer, SfuError> {
        if self.peers.contains_key(&who) {
            return Err(SfuError::AlreadyJoined);
        }
        let mut session = Session::new(now, &self.cert, self.local, self.bandwidth_estimation)?;
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
                needs_timeout: false,
                addrs: Vec::new(),
                max_bitrate: None,
                video_tracks: 0,
                estimate: None,
                counters: PeerCounters::default(),
                probe_bump: 0,
                whep: follow.map(|f| Whep {
                    from: f.publisher,
                    layer: f.layer,
                    free: Vec::new(),
                }),
            },
        );
        self.stats.sessions.set(self.peers.len() as u64);
        // Draining the session now turns its MediaAdded events into producers.
        self.drive(now, who);
        // The newcomer receives everything already published in the room, here and on the
        // other workers.
        for (key, kind) in self.router.producers_for(who) {
            self.add_consumer(key, kind, who);
        }
        if grants.subscribe {
            let remote = self.remote_tracks.get(room).cloned().unwrap_or_default();
            for t in remote {
                self.ensure_proxy(t, room);
                self.add_consumer(t.key, t.kind, who);
            }
        }
        self.negotiate(now, who);
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
        self.negotiate(now, who);
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
        let published = self.router.producers_for_owner(who);
        let dep = self.router.leave(who);
        for (key, _) in published {
            self.broadcast(Inter::ProducerRemoved { key });
        }
        self.release_idle_proxies();
        self.apply_departure(now, dep);
    }

    /// Stops the consumers a departure ended (renegotiating each subscriber once) and clears
    /// the active speaker if it was the one who left.
    fn apply_departure(&mut self, now: Instant, dep: Departure) {
        if !dep.speaker_cleared.is_empty() {
            self.announce_speaker(&dep.speaker_cleared, None);
        }
        let mut touched = Vec::new();
        for (sub, tag, media) in dep.stop {
            let Some(p) = self.peers.get_mut(&sub) else {
                continue;
            };
            if let Some(w) = &mut p.whep {
                // A player's m-line goes back to the free ones (nothing to renegotiate).
                if let Some(m) = media {
                    if let Some(kind) = p.session.media_by_mid(m.as_str()).map(|(_, k)| k) {
                        w.free.push((m, kind));
                    }
                }
            } else if !p.session.cancel_outgoing(tag) {
                if let Some(m) = media {
                    p.session.queue_stop(m);
                }
            }
            if !touched.contains(&sub) {
                touched.push(sub);
            }
        }
        for sub in touched {
            let video_tracks = self.router.video_consumers_of(sub);
            if let Some(p) = self.peers.get_mut(&sub) {
                p.video_tracks = video_tracks;
                p.update_bitrate_goal();
            }
            self.router.invalidate_subscriber(sub);
            self.negotiate(now, sub);
            self.mark_dirty(sub);
        }
        self.drive_dirty(now);
    }

    /// Queues `msg` for every other worker of the mesh.
    fn broadcast(&mut self, msg: Inter) {
        let me = self.links.index();
        for w in (0..self.links.workers()).filter(|w| *w != me) {
            self.inter_out.push((w, msg.clone()));
        }
    }

    /// Makes sure a proxy of the remote track exists here; a new one asks its origin to relay.
    fn ensure_proxy(&mut self, track: RemoteTrack, room: &str) {
        if self
            .router
            .add_proxy(track.key, track.kind, track.worker, room)
        {
            self.inter_out
                .push((track.worker, Inter::Subscribe { key: track.key }));
        }
    }

    /// Drops proxies nobody here consumes any more and tells their origins to stop relaying.
    fn release_idle_proxies(&mut self) {
        for (key, worker) in self.router.take_idle_proxies() {
            self.inter_out.push((worker, Inter::Unsubscribe { key }));
        }
    }

    /// A control message from worker `from` (see [`Inter`]).
    pub fn handle_inter(&mut self, now: Instant, from: usize, msg: Inter) {
        match msg {
            Inter::ProducerAdded { room, key, kind } => {
                let track = RemoteTrack {
                    key,
                    kind,
                    worker: from,
                };
                let tracks = self.remote_tracks.entry(room.clone()).or_default();
                if tracks.iter().any(|t| t.key == key) {
                    return;
                }
                tracks.push(track);
                let subscribers = self.router.subscribers_in(&room);
                if !subscribers.is_empty() {
                    self.ensure_proxy(track, &room);
                }
                for s in subscribers {
                    self.add_consumer(key, kind, s);
                    self.negotiate(now, s);
                    self.mark_dirty(s);
                }
            }
            Inter::ProducerRemoved { key } => {
                self.remote_tracks.retain(|_, tracks| {
                    tracks.retain(|t| t.key != key);
                    !tracks.is_empty()
                });
                if let Some(dep) = self.router.remove_proxy(&key) {
                    self.apply_departure(now, dep);
                }
            }
            Inter::Subscribe { key } => {
                if let Some(p) = self.router.producer_mut(&key) {
                    if let Origin::Local { relay_to } = &mut p.origin {
                        if !relay_to.contains(&from) {
                            relay_to.push(from);
                        }
                    }
                }
            }
            Inter::Unsubscribe { key } => {
                if let Some(p) = self.router.producer_mut(&key) {
                    if let Origin::Local { relay_to } = &mut p.origin {
                        relay_to.retain(|w| *w != from);
                    }
                }
            }
            Inter::Keyframe { key, layer: None } => self.keyframe_for(now, key, true),
            Inter::Keyframe {
                key,
                layer: Some(layer),
            } => self.keyframe_for_layer(now, key, layer),
        }
        self.drive_dirty(now);
        self.bury(now);
    }

    /// Runs the packets other workers relayed here through their proxies' consumers: the
    /// same fan-out as for a local publisher, minus the decryption and the ingest.
    ///
    /// Takes at most one ring's capacity from each ring per call, so a flood from one worker
    /// cannot starve this worker's own socket.
    pub fn handle_relays(&mut self, now: Instant) {
        for ring in 0..self.links.inbound() {
            for _ in 0..RELAY_CAPACITY {
                let Some(Relayed { key, packet }) = self.links.pop(ring) else {
                    break;
                };
                self.stats.relayed_in.inc();
                if let Some(level) = packet.audio_level {
                    if let Some((members, speaker)) =
                        self.router.on_proxy_audio_level(now, &key, level)
                    {
                        self.announce_speaker(&members, speaker);
                    }
                }
                self.fan_out(now, key, packet);
            }
        }
        self.drive_dirty(now);
        self.bury(now);
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
        peer.counters.datagrams_in += 1;
        peer.counters.bytes_in += data.len() as u64;
        match guarded(|| peer.session.handle_datagram(now, source, local, data)) {
            Some(Ok(())) => {}
            Some(Err(SessionError::UnknownSsrc(ssrc))) => {
                peer.counters.dropped_unknown_ssrc += 1;
                self.stats.dropped_unknown_ssrc.inc();
                tracing::trace!(%source, ssrc, "RTP on an unknown SSRC");
            }
            Some(Err(e)) => {
                peer.counters.dropped_rejected += 1;
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
    ///
    /// Each due session is driven once per call: a session may answer with a deadline that is
    /// already due again (str0m's pacer does, while it holds packets back); that one waits for
    /// the next call, with a later `now`, instead of spinning here.
    pub fn handle_timeouts(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
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
            due.push(who);
        }
        for who in due.drain(..) {
            let Some(p) = self.peers.get_mut(&who) else {
                continue;
            };
            if guarded(|| p.session.handle_timeout(now)).is_none() {
                self.doomed.push(who);
                continue;
            }
            self.drive(now, who);
        }
        self.due = due;
        self.drive_dirty(now);
        self.bury(now);
    }

    fn mark_dirty(&mut self, who: ParticipantId) {
        if let Some(p) = self.peers.get_mut(&who) {
            p.needs_timeout = true;
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
            let full = std::mem::take(&mut p.needs_timeout);
            let session = &mut p.session;
            let stepped = if full {
                guarded(|| session.handle_timeout(now))
            } else {
                guarded(|| session.handle_rtp_written(now))
            };
            if stepped.is_none() {
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
                SessionOutput::Event(ev) => {
                    // Counted here, where the publisher's peer is at hand: no second lookup
                    // per packet in `forward`.
                    if matches!(ev, SessionEvent::Rtp(_)) {
                        p.counters.rtp_published += 1;
                    }
                    self.on_event(now, who, ev)
                }
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
                        self.negotiate(now, other);
                        self.mark_dirty(other);
                    }
                    if let Some(room) = self.router.room_of(who) {
                        let room = room.to_owned();
                        self.broadcast(Inter::ProducerAdded { room, key, kind });
                    }
                }
            }
            SessionEvent::SendSlot { media, kind } => {
                let Some(w) = self.peers.get_mut(&who).and_then(|p| p.whep.as_mut()) else {
                    return;
                };
                tracing::debug!(
                    participant = who.0,
                    mid = media.as_str(),
                    ?kind,
                    "player m-line"
                );
                w.free.push((media, kind));
                let from = w.from;
                self.bind_player(now, who, from);
            }
            SessionEvent::KeyframeRequest { media } => {
                if let Some(key) = self.router.producer_of(who, media) {
                    self.keyframe_for(now, key, true);
                }
            }
            SessionEvent::Estimate(bps) => {
                tracing::trace!(participant = who.0, bps, "bandwidth estimate");
                if let Some(p) = self.peers.get_mut(&who) {
                    p.estimate = Some(bps);
                }
                self.router.invalidate_subscriber(who);
            }
            SessionEvent::Connected => {
                if let Some(p) = self.peers.get(&who) {
                    let _ = p.events.send(PeerEvent::Connected);
                }
            }
            SessionEvent::Closed => self.doomed.push(who),
        }
    }

    /// Gives a WHEP player every track of `from` it does not receive yet, local or on another
    /// worker, while it has free m-lines of the kind (its m-lines may be known only after the
    /// join, when the session first reports them).
    fn bind_player(&mut self, now: Instant, who: ParticipantId, from: ParticipantId) {
        let mut tracks = self.router.producers_for_owner(from);
        if let Some(room) = self.router.room_of(who).map(str::to_owned) {
            let remote = self.remote_tracks.get(&room).cloned().unwrap_or_default();
            for t in remote.into_iter().filter(|t| t.key.owner == from) {
                self.ensure_proxy(t, &room);
                tracks.push((t.key, t.kind));
            }
        }
        for (key, kind) in tracks {
            if !self.router.consumes(who, key) {
                self.add_consumer(key, kind, who);
            }
        }
        self.negotiate(now, who);
        self.mark_dirty(who);
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
        if !send {
            return;
        }
        if let Some(worker) = prod.origin_worker() {
            // A proxy: the publisher's session lives on its origin worker.
            self.inter_out
                .push((worker, Inter::Keyframe { key, layer: None }));
        } else if let Some(p) = self.peers.get_mut(&key.owner) {
            if guarded(|| p.session.request_keyframe(key.media)) == Some(true) {
                self.stats.keyframe_requests.inc();
                self.mark_dirty(key.owner);
            }
        }
    }

    /// A consumer on another worker waits for a keyframe of one simulcast layer of a track
    /// published here: ask the publisher (throttled per layer, shared with local consumers).
    fn keyframe_for_layer(&mut self, now: Instant, key: ProducerKey, layer: u8) {
        let Some(prod) = self.router.producer_mut(&key) else {
            return;
        };
        let Some(rid) = prod.layer_rids.get(layer as usize).copied().flatten() else {
            return;
        };
        let Some(sim) = prod.simulcast.as_mut() else {
            return;
        };
        if !sim.keyframe_request_due(now, layer, KEYFRAME_THROTTLE) {
            return;
        }
        if let Some(p) = self.peers.get_mut(&key.owner) {
            if guarded(|| p.session.request_keyframe_layer(key.media, rid)) == Some(true) {
                self.stats.keyframe_requests.inc();
                self.mark_dirty(key.owner);
            }
        }
    }

    /// A snapshot of every session's counters on this worker.
    pub fn session_stats(&self, worker: usize) -> Vec<SessionStats> {
        let mut out: Vec<SessionStats> = self
            .peers
            .iter()
            .map(|(who, p)| {
                let c = p.counters;
                let consumers = self
                    .router
                    .consumers_of(*who)
                    .into_iter()
                    .filter_map(|(key, kind, con)| {
                        Some(ConsumerStats {
                            mid: con.media?.as_str().to_owned(),
                            publisher: key.owner,
                            kind,
                            layer: con
                                .rewriter
                                .source()
                                .filter(|_| kind == Kind::Video)
                                .map(layer_name),
                            target: con.selector.target().map(layer_name),
                            rendered_width: con.rendered_width,
                            pinned: con.pinned.map(layer_name),
                        })
                    })
                    .collect();
                SessionStats {
                    participant: *who,
                    room: self.router.room_of(*who).unwrap_or("").to_owned(),
                    worker,
                    datagrams_in: c.datagrams_in,
                    bytes_in: c.bytes_in,
                    rtp_published: c.rtp_published,
                    rtp_received: c.rtp_received,
                    payload_bytes_received: c.payload_bytes_received,
                    dropped_rejected: c.dropped_rejected,
                    dropped_unknown_ssrc: c.dropped_unknown_ssrc,
                    dropped_codec: c.dropped_codec,
                    dropped_not_ready: c.dropped_not_ready,
                    feedback: p.session.feedback(),
                    layer_switches: c.layer_switches,
                    estimate_bps: p.estimate,
                    max_bitrate_bps: p.max_bitrate,
                    rtt_ms: p.session.rtt().map(|d| d.as_secs_f64() * 1000.0),
                    consumers,
                }
            })
            .collect();
        out.sort_by_key(|s| s.participant);
        out
    }

    /// The hot path, first half: a decrypted packet from a publisher on this worker is
    /// ingested once (speaker level, simulcast layer, VP8 descriptor, codec) and handed to
    /// [`WorkerCore::fan_out`].
    fn forward(&mut self, now: Instant, from: ParticipantId, pkt: RtpIn) {
        self.stats.rtp_in.inc();
        if let Some(level) = pkt.audio_level {
            if let Some((members, speaker)) = self.router.on_audio_level(now, from, level) {
                self.announce_speaker(&members, speaker);
            }
        }
        let key = ProducerKey {
            owner: from,
            media: pkt.media,
        };
        let Some(prod) = self.router.producer_mut(&key) else {
            self.stats.dropped_no_route.inc();
            return;
        };
        // Which simulcast layer is this packet? Single-stream tracks are layer 0.
        let layer = match pkt.layer {
            None => 0,
            Some(rid) => match layer_index(rid.as_str()) {
                Some(i) => {
                    prod.simulcast.get_or_insert_with(SimulcastIn::default);
                    prod.layer_rids[i as usize].get_or_insert(rid);
                    i
                }
                None => {
                    self.stats.dropped_unknown_layer.inc();
                    return;
                }
            },
        };
        let simulcast = prod.simulcast.is_some();
        let vp8 = match simulcast {
            true => vp8::parse(&pkt.payload),
            false => None,
        };
        // The codec behind the payload type, looked up once per type and producer.
        let codec = match prod.pt_codecs.iter().find(|(pt, _)| *pt == pkt.pt) {
            Some((_, c)) => *c,
            None => {
                let c = self
                    .peers
                    .get(&from)
                    .and_then(|p| p.session.codec_of(pkt.pt));
                prod.pt_codecs.push((pkt.pt, c));
                c
            }
        };
        let packet = Packet {
            layer,
            simulcast,
            pt: pkt.pt,
            codec,
            seq: pkt.seq,
            timestamp: pkt.timestamp,
            marker: pkt.marker,
            audio_level: pkt.audio_level,
            voice_activity: pkt.voice_activity,
            arrival: pkt.arrival,
            vp8,
            payload: pkt.payload,
        };
        self.fan_out(now, key, packet);
    }

    /// The hot path, second half: one packet to every consumer of its producer on this worker,
    /// and (for a track published here) to every other worker that consumes it.
    ///
    /// For a simulcast track, each consumer forwards only the layer it currently receives,
    /// switches to its target layer on that layer's next keyframe, and asks the publisher for
    /// that keyframe (throttled per layer; through the origin worker for a proxy).
    fn fan_out(&mut self, now: Instant, key: ProducerKey, pkt: Packet) {
        let Self {
            router,
            peers,
            stats,
            dirty,
            doomed,
            links,
            inter_out,
            ..
        } = self;
        let Some(prod) = router.producer_mut(&key) else {
            stats.dropped_no_route.inc();
            return;
        };
        // Other workers first: they encrypt for their subscribers while we do for ours.
        if let Origin::Local { relay_to } = &prod.origin {
            for &w in relay_to {
                let relayed = Relayed {
                    key,
                    packet: pkt.clone(),
                };
                if links.push(w, relayed).is_ok() {
                    stats.relayed_out.inc();
                } else {
                    stats.dropped_relay_full.inc();
                }
            }
        }
        let from = key.owner;
        let origin_worker = prod.origin_worker();
        let layer = pkt.layer;
        let vp8 = pkt.vp8;
        if pkt.simulcast {
            prod.simulcast.get_or_insert_with(SimulcastIn::default);
        }
        let vp8_ids = vp8.and_then(|v| Some((v.picture_id?, v.tl0_pic_idx.unwrap_or(0))));
        let mut eval = false;
        let mut warming_up = false;
        if let Some(sim) = prod.simulcast.as_mut() {
            let width = vp8.and_then(|v| v.size).map(|(w, _)| w);
            sim.on_packet(now, layer, pkt.payload.len(), width);
            warming_up = sim.warming_up(now);
            eval = !warming_up && sim.eval_due(now);
        }
        if prod.keyframe_due(now) {
            match origin_worker {
                Some(w) => inter_out.push((w, Inter::Keyframe { key, layer: None })),
                None => {
                    if let Some(p) = peers.get_mut(&from) {
                        if guarded(|| p.session.request_keyframe(key.media)) == Some(true) {
                            stats.keyframe_requests.inc();
                        }
                    }
                }
            }
        }
        let (nackable, clock_rate) = match prod.kind {
            Kind::Video => (true, 90_000),
            Kind::Audio => (false, 48_000),
        };
        let layer_states = prod.simulcast.as_ref().map(|s| s.states(now));
        // Layers some consumer waits for a keyframe of (bit per layer).
        let mut keyframes_wanted = 0u8;
        for c in prod.consumers.iter_mut() {
            let Some(media) = c.media.filter(|_| c.active) else {
                continue;
            };
            if let Some(layers) = layer_states {
                if eval || (c.selector.target().is_none() && !warming_up) {
                    let budget = peers.get(&c.subscriber).and_then(|p| p.video_budget());
                    let inputs = Inputs {
                        layers,
                        rendered_width: c.rendered_width,
                        budget,
                        pinned: c.pinned,
                    };
                    if let Some((target, reason)) = c.selector.update(now, &inputs) {
                        tracing::debug!(
                            subscriber = c.subscriber.0,
                            target,
                            reason = reason.as_str(),
                            ?inputs,
                            "layer target"
                        );
                        c.pending_reason = Some(reason);
                    }
                    // Short of budget even on the chosen layer: thin it out in time.
                    if let Some(t) = c.selector.target() {
                        c.pending_max_tid = temporal_limit(budget, rate_of(&layers, t));
                    }
                }
                let target = c.selector.target();
                if c.rewriter.source() != Some(layer) {
                    // Switch only onto the target layer, and only at its keyframe (a non-VP8
                    // stream can only start, not switch).
                    let at_keyframe = vp8.map_or(c.rewriter.source().is_none(), |v| v.keyframe);
                    if target != Some(layer) {
                        continue;
                    }
                    if !at_keyframe {
                        keyframes_wanted |= 1 << layer;
                        continue;
                    }
                    let reason = reason_before_switch(c.rewriter.source(), c.pending_reason.take());
                    tracing::debug!(
                        subscriber = c.subscriber.0,
                        mid = %media,
                        from = ?c.rewriter.source(),
                        to = layer,
                        reason = reason.as_str(),
                        "layer switch"
                    );
                    c.rewriter
                        .switch_to(layer, pkt.seq, pkt.timestamp, now, clock_rate, vp8_ids);

                    stats.layer_switches[reason.index()].inc();
                    if let Some(sub) = peers.get_mut(&c.subscriber) {
                        sub.counters.layer_switches[reason.index()] += 1;
                        let _ = sub.events.send(PeerEvent::LayerSwitched {
                            mid: media.as_str().to_owned(),
                            layer: layer_name(layer),
                            reason,
                            width: layers[layer as usize].width,
                        });
                    }
                } else if let Some(t) = target.filter(|t| *t != layer) {
                    keyframes_wanted |= 1 << t;
                }
                // Temporal layers: a new limit applies from a base-layer frame on; frames above
                // it are left out without holes in the sequence numbers or picture ids.
                if let Some(tid) = vp8.and_then(|v| v.tid) {
                    if tid == 0 {
                        c.max_tid = c.pending_max_tid;
                    }
                    if c.max_tid.is_some_and(|max| tid > max)
                        && c.rewriter.skip(pkt.seq, vp8.and_then(|v| v.picture_id))
                    {
                        stats.temporal_drops.inc();
                        continue;
                    }
                }
            } else if c.rewriter.source().is_none() {
                c.rewriter
                    .switch_to(0, pkt.seq, pkt.timestamp, now, clock_rate, None);
            }
            let Some(out) = c.rewriter.rewrite(pkt.seq, pkt.timestamp, now, vp8_ids) else {
                continue;
            };
            // Payload type map, filled on the first packet of each type.
            let out_pt = match c.pt_map.iter().find(|(i, _)| *i == pkt.pt) {
                Some((_, o)) => *o,
                None => {
                    let o = match (pkt.codec, peers.get(&c.subscriber)) {
                        (Some(codec), Some(s)) => s.session.pt_for(media, codec),
                        _ => None,
                    };
                    c.pt_map.push((pkt.pt, o));
                    o
                }
            };
            let Some(out_pt) = out_pt else {
                stats.dropped_codec.inc();
                if let Some(sub) = peers.get_mut(&c.subscriber) {
                    sub.counters.dropped_codec += 1;
                }
                continue;
            };
            let Some(sub) = peers.get_mut(&c.subscriber) else {
                continue;
            };
            let written = guarded(|| {
                sub.session.write_rtp(
                    media,
                    out_pt,
                    out.seq,
                    out.timestamp,
                    pkt.arrival,
                    pkt.marker,
                    pkt.audio_level,
                    pkt.voice_activity,
                    nackable,
                    out.vp8,
                    &pkt.payload,
                )
            });
            match written {
                Some(true) => {
                    stats.rtp_forwarded.inc();
                    sub.counters.rtp_received += 1;
                    sub.counters.payload_bytes_received += pkt.payload.len() as u64;
                    if !sub.dirty {
                        sub.dirty = true;
                        dirty.push(c.subscriber);
                    }
                }
                Some(false) => {
                    stats.dropped_not_ready.inc();
                    sub.counters.dropped_not_ready += 1;
                }
                None => doomed.push(c.subscriber),
            }
        }
        if keyframes_wanted != 0 {
            if let (Some(w), Some(sim)) = (origin_worker, prod.simulcast.as_mut()) {
                for l in 0..MAX_LAYERS as u8 {
                    if keyframes_wanted & (1 << l) != 0
                        && sim.keyframe_request_due(now, l, KEYFRAME_THROTTLE)
                    {
                        inter_out.push((
                            w,
                            Inter::Keyframe {
                                key,
                                layer: Some(l),
                            },
                        ));
                    }
                }
                return;
            }
            let rids = prod.layer_rids;
            let sim = prod.simulcast.as_mut();
            if let (Some(sim), Some(p)) = (sim, peers.get_mut(&from)) {
                for l in 0..MAX_LAYERS as u8 {
                    if keyframes_wanted & (1 << l) == 0 {
                        continue;
                    }
                    let Some(rid) = rids[l as usize] else {
                        continue;
                    };
                    if sim.keyframe_request_due(now, l, KEYFRAME_THROTTLE) {
                        if guarded(|| p.session.request_keyframe_layer(key.media, rid))
                            != Some(true)
                        {
                            continue;
                        }
                        stats.keyframe_requests.inc();
                        if !p.dirty {
                            p.dirty = true;
                            dirty.push(from);
                        }
                    }
                }
            }
        }
    }

    fn add_consumer(&mut self, key: ProducerKey, kind: Kind, subscriber: ParticipantId) {
        // A WHEP player takes only its publisher's tracks, each on a free m-line of its kind.
        let slot = match self
            .peers
            .get_mut(&subscriber)
            .and_then(|p| p.whep.as_mut())
        {
            Some(w) if w.from != key.owner => return,
            Some(w) => match w.free.iter().position(|(_, k)| *k == kind) {
                Some(i) => Some((w.free.remove(i).0, w.layer)),
                None => return,
            },
            None => None,
        };
        let Some(tag) = self.router.add_consumer(key, subscriber) else {
            return;
        };
        if let Some((media, layer)) = slot {
            // Bound at once; `negotiate` activates it (no offer, no answer).
            tracing::debug!(
                player = subscriber.0,
                mid = media.as_str(),
                producer = key.owner.0,
                "player track bound"
            );
            self.router.consumer_offered(subscriber, tag, media);
            if let (Some(layer), Kind::Video) = (layer, kind) {
                if let Some((prod, i)) = self.router.consumer_mut(subscriber, media) {
                    prod.consumers[i].pinned = Some(layer);
                }
            }
        }
        let video_tracks = self.router.video_consumers_of(subscriber);
        if let Some(p) = self.peers.get_mut(&subscriber) {
            p.video_tracks = video_tracks;
            p.update_bitrate_goal();
            if slot.is_some() {
                return;
            }
            p.session.queue_outgoing(OutgoingTrack {
                tag,
                kind,
                stream_id: format!("p{}", key.owner.0),
                track_id: format!("p{}-{}", key.owner.0, key.media),
            });
        }
    }

    /// Sends the next server offer to `who` if changes are queued and none is in flight. A
    /// WHEP player gets no offers: its tracks bound to m-lines go live here.
    fn negotiate(&mut self, now: Instant, who: ParticipantId) {
        let Some(p) = self.peers.get_mut(&who) else {
            return;
        };
        if p.whep.is_some() {
            for key in self.router.activate_offered(who) {
                self.keyframe_for(now, key, true);
            }
            return;
        }
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

    /// The subscriber renders its track `mid` at `width` device pixels: the layer choice
    /// follows at the next packet.
    pub fn set_video_size(
        &mut self,
        who: ParticipantId,
        mid: &str,
        width: u32,
    ) -> Result<(), SfuError> {
        let media = self.video_media(who, mid)?;
        let (prod, i) = self
            .router
            .consumer_mut(who, media)
            .ok_or(SfuError::UnknownTrack)?;
        let grew = prod.consumers[i].rendered_width.is_none_or(|w| width > w);
        prod.consumers[i].rendered_width = Some(width.min(16_384));
        if let Some(s) = prod.simulcast.as_mut() {
            s.invalidate();
        }
        if grew {
            self.request_probe(who);
        }
        Ok(())
    }

    /// Pins (or with `None` unpins) the layer the subscriber receives on track `mid`.
    pub fn pin_layer(
        &mut self,
        who: ParticipantId,
        mid: &str,
        layer: Option<&str>,
    ) -> Result<(), SfuError> {
        let index = match layer {
            None => None,
            Some(name) => Some(layer_index(name).ok_or(SfuError::UnknownLayer)?),
        };
        let media = self.video_media(who, mid)?;
        let (prod, i) = self
            .router
            .consumer_mut(who, media)
            .ok_or(SfuError::UnknownTrack)?;
        prod.consumers[i].pinned = index;
        if let Some(s) = prod.simulcast.as_mut() {
            s.invalidate();
        }
        self.request_probe(who);
        Ok(())
    }

    /// Caps what the subscriber receives (bits per second; `None` removes the cap).
    pub fn set_max_bitrate(
        &mut self,
        who: ParticipantId,
        bps: Option<u64>,
    ) -> Result<(), SfuError> {
        let p = self
            .peers
            .get_mut(&who)
            .ok_or(SfuError::UnknownParticipant)?;
        p.max_bitrate = bps;
        self.router.invalidate_subscriber(who);
        Ok(())
    }

    /// Asks the bandwidth estimator toward `who` to probe for more (the subscriber wants a
    /// bigger layer).
    fn request_probe(&mut self, who: ParticipantId) {
        if let Some(p) = self.peers.get_mut(&who) {
            p.probe_bump = (p.probe_bump + 1_000) % 64_000;
            p.update_bitrate_goal();
            self.mark_dirty(who);
        }
    }

    /// Resolves a subscriber's video mid; errors say what is wrong with it.
    fn video_media(&self, who: ParticipantId, mid: &str) -> Result<MediaId, SfuError> {
        let p = self.peers.get(&who).ok_or(SfuError::UnknownParticipant)?;
        match p.session.media_by_mid(mid) {
            Some((m, Kind::Video)) => Ok(m),
            Some((_, Kind::Audio)) => Err(SfuError::NotVideo),
            None => Err(SfuError::UnknownTrack),
        }
    }

    fn announce_speaker(&self, members: &[ParticipantId], speaker: Option<ParticipantId>) {
        tracing::debug!(speaker = ?speaker, "active speaker");
        for m in members {
            if let Some(p) = self.peers.get(m) {
                let _ = p.events.send(PeerEvent::ActiveSpeaker(speaker));
            }
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
}
