//! One worker's media pipeline, sans-IO: datagram -> session -> producer -> consumers ->
//! subscriber sessions -> outbox.
//!
//! A [`WorkerCore`] owns the [`Peers`] placed on its worker, the routing table of their rooms,
//! its links to the other workers and a timer heap. It never touches a socket or a clock: the
//! thread loop in [`crate::worker_thread`] feeds it datagrams and the time and sends what
//! lands in its outbox. Benches and tests drive it the same way in memory.
//!
//! The worker moves packets and events between its parts; the decisions are theirs. This file
//! holds the moving of datagrams and the scheduling of sessions; the rest of the worker is
//! split by job:
//! - `fanout`: one packet from its producer to every consumer (the hot path);
//! - `negotiation`: peers joining and leaving, tracks added and removed, server offers;
//! - `mesh`: tracks and packets to and from the other workers over links;
//! - `snapshot`: every session's counters for `/metrics`.
//!
//! A session is driven only when it has input or its own deadline is due (the timer heap keeps
//! at most one live entry per session), never by sweeping all sessions.

mod fanout;
mod mesh;
mod negotiation;
mod snapshot;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use str0m::config::DtlsCert;

use crate::demux::{self, Proto};
use crate::forward::SinkId;
use crate::link::Link;
use crate::peer::{guarded, Peers};
use crate::relay::{Inter, RelayLinks};
use crate::router::Router;
use crate::session::{SessionError, SessionEvent, SessionOutput};
use crate::stats::WorkerStats;
use crate::{ParticipantId, PeerEvent};

pub use crate::peer::Follow;
use mesh::RemoteTrack;

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
    peers: Peers,
    by_addr: HashMap<SocketAddr, SinkId>,
    timers: BinaryHeap<Reverse<(Instant, ParticipantId)>>,
    router: Router,
    stats: Arc<WorkerStats>,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    /// Peers written to during fan-out, to drive once the packet went everywhere.
    dirty: Vec<SinkId>,
    doomed: Vec<ParticipantId>,
    /// Reused list of sessions due in `handle_timeouts` (no allocation per call).
    due: Vec<ParticipantId>,
    /// New sessions estimate their send bandwidth (the layer budget); on by default.
    bandwidth_estimation: bool,
    /// The rings to and from the other workers of the mesh.
    links: RelayLinks,
    /// Control messages for other workers, by link; the I/O loop delivers them.
    inter_out: Vec<(Link, Inter)>,
    /// Tracks published on other workers, by room: what a member joining here must receive.
    remote_tracks: HashMap<String, Vec<RemoteTrack>>,
}

impl WorkerCore {
    /// A worker whose peers reach it at `local` (the address in the host candidate).
    pub fn new(local: SocketAddr, cert: DtlsCert, stats: Arc<WorkerStats>) -> Self {
        WorkerCore {
            local,
            cert,
            peers: Peers::default(),
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

    /// Control messages for other workers, by link. The I/O loop drains it after every call
    /// and hands each to [`WorkerCore::handle_inter`] of the worker at the other end.
    pub fn inter_drain(&mut self) -> std::vec::Drain<'_, (Link, Inter)> {
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
        let sink = match self.by_addr.get(&source) {
            Some(s) => *s,
            None => match self.learn_address(now, source, proto, data) {
                Some(s) => s,
                None => return,
            },
        };
        let local = self.local;
        let Some(peer) = self.peers.at_mut(sink) else {
            return;
        };
        peer.counters.datagrams_in += 1;
        peer.counters.bytes_in += data.len() as u64;
        let session = &mut peer.session;
        match guarded(|| session.handle_datagram(now, source, local, data)) {
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
            None => self.doomed.push(peer.id),
        }
        self.drive(now, sink);
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
    ) -> Option<SinkId> {
        if proto != Proto::Stun {
            self.stats.dropped_unknown_source.inc();
            return None;
        }
        let local = self.local;
        let sink = self
            .peers
            .iter()
            .find(|(_, p)| guarded(|| p.session.accepts(now, source, local, data)).unwrap_or(false))
            .map(|(s, _)| s);
        match sink {
            Some(s) => {
                self.by_addr.insert(source, s);
                if let Some(p) = self.peers.at_mut(s) {
                    p.addrs.push(source);
                }
                Some(s)
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
            match self.peers.get(who) {
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
            let Some(p) = self.peers.get_mut(who) else {
                continue;
            };
            if p.scheduled != Some(t) {
                continue; // stale entry
            }
            p.scheduled = None;
            due.push(who);
        }
        for who in due.drain(..) {
            let Some(sink) = self.peers.sink_of(who) else {
                continue;
            };
            let Some(p) = self.peers.at_mut(sink) else {
                continue;
            };
            let session = &mut p.session;
            if guarded(|| session.handle_timeout(now)).is_none() {
                self.doomed.push(who);
                continue;
            }
            self.drive(now, sink);
        }
        self.due = due;
        self.drive_dirty(now);
        self.bury(now);
    }

    /// Queues a whole str0m timeout pass for `who` (new tracks, keyframe requests, estimator
    /// goals), run by the next [`WorkerCore::drive_dirty`].
    fn mark_dirty(&mut self, who: ParticipantId) {
        let Some(sink) = self.peers.sink_of(who) else {
            return;
        };
        if let Some(p) = self.peers.at_mut(sink) {
            p.needs_timeout = true;
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(sink);
            }
        }
    }

    /// Drives sessions that were written to during fan-out.
    fn drive_dirty(&mut self, now: Instant) {
        while let Some(sink) = self.dirty.pop() {
            let Some(p) = self.peers.at_mut(sink) else {
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
                self.doomed.push(p.id);
                continue;
            }
            self.drive(now, sink);
        }
    }

    /// Drains one session's output: transmits to the outbox, events to their handlers.
    fn drive(&mut self, now: Instant, sink: SinkId) {
        loop {
            let Some(p) = self.peers.at_mut(sink) else {
                return;
            };
            let who = p.id;
            let session = &mut p.session;
            let out = match guarded(|| session.poll()) {
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

    /// Hands one session event to the part of the worker it concerns.
    fn on_event(&mut self, now: Instant, who: ParticipantId, ev: SessionEvent) {
        match ev {
            SessionEvent::Rtp(pkt) => self.forward(now, who, pkt),
            SessionEvent::Published { media, kind } => self.publish(now, who, media, kind),
            SessionEvent::SendSlot { media, kind } => {
                let Some(p) = self.peers.get_mut(who) else {
                    return;
                };
                if !p.add_free_slot(media, kind) {
                    return;
                }
                tracing::debug!(
                    participant = who.0,
                    mid = media.as_str(),
                    ?kind,
                    "player m-line"
                );
                if let Some(from) = p.follows() {
                    self.bind_player(now, who, from);
                }
            }
            SessionEvent::KeyframeRequest { media } => {
                if let Some(key) = self.router.producer_of(who, media) {
                    self.keyframe_for(now, key, true);
                }
            }
            SessionEvent::Estimate(bps) => {
                tracing::trace!(participant = who.0, bps, "bandwidth estimate");
                if let Some(p) = self.peers.get_mut(who) {
                    p.budget.estimate = Some(bps);
                }
                self.router.invalidate_subscriber(who);
            }
            SessionEvent::Connected => {
                if let Some(p) = self.peers.get(who) {
                    let _ = p.events.send(PeerEvent::Connected);
                }
            }
            SessionEvent::Closed => self.doomed.push(who),
        }
    }

    /// Tells `members` who the active speaker is now.
    fn announce_speaker(&self, members: &[ParticipantId], speaker: Option<ParticipantId>) {
        tracing::debug!(speaker = ?speaker, "active speaker");
        for m in members {
            if let Some(p) = self.peers.get(*m) {
                let _ = p.events.send(PeerEvent::ActiveSpeaker(speaker));
            }
        }
    }

    /// Removes peers whose session died or panicked.
    fn bury(&mut self, now: Instant) {
        while let Some(who) = self.doomed.pop() {
            if self.peers.contains(who) {
                tracing::info!(participant = who.0, "session ended");
                self.stats.sessions_failed.inc();
                self.leave(now, who);
            }
        }
    }

    /// Closes every session (shutdown).
    pub fn close_all(&mut self, now: Instant) {
        for who in self.peers.ids() {
            self.leave(now, who);
        }
    }
}
