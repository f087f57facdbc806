//! Peers joining and leaving, tracks published and consumed, and the server offers that carry
//! those changes to each participant (a WHEP player gets its tracks bound to its own m-lines
//! instead, see [`crate::peer::SinkKind`]). Also the subscriber's requests about what it
//! receives: the size it renders a track at, a pinned layer, a bitrate cap.

use std::time::Instant;

use super::{JoinAnswer, WorkerCore};
use crate::layers::layer_index;
use crate::peer::{guarded, Binding, Follow, Peer};
use crate::producer::ProducerKey;
use crate::relay::Inter;
use crate::router::{Departure, Grants};
use crate::session::{Kind, MediaId, OutgoingTrack, Session, SessionOutput};
use crate::{EventSender, ParticipantId, PeerEvent, SfuError, TrackInfo};

impl WorkerCore {
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
        events: EventSender,
    ) -> Result<JoinAnswer, SfuError> {
        if self.peers.contains(who) {
            return Err(SfuError::AlreadyJoined);
        }
        let mut session = Session::new(now, &self.cert, self.local, self.bandwidth_estimation)?;
        let answer = match guarded(|| session.accept_offer(offer)) {
            Some(r) => r?,
            None => return Err(SfuError::Internal("the offer crashed the session")),
        };
        self.router.join(room, who, grants);
        let sink = self.peers.insert(Peer::new(who, session, events, follow));
        self.stats.sessions.set(self.peers.len() as u64);
        // Draining the session now turns its MediaAdded events into producers.
        self.drive(now, sink);
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
        let sink = self
            .peers
            .sink_of(who)
            .ok_or(SfuError::UnknownParticipant)?;
        let Some(peer) = self.peers.at_mut(sink) else {
            return Err(SfuError::UnknownParticipant);
        };
        let session = &mut peer.session;
        match guarded(|| session.accept_answer(sdp)) {
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
        self.drive(now, sink);
        self.drive_dirty(now);
        self.bury(now);
        Ok(())
    }

    /// The peer leaves (or its signaling connection closed).
    pub fn leave(&mut self, now: Instant, who: ParticipantId) {
        if let Some(mut peer) = self.peers.remove(who) {
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
    pub(super) fn apply_departure(&mut self, now: Instant, dep: Departure) {
        if !dep.speaker_cleared.is_empty() {
            self.announce_speaker(&dep.speaker_cleared, None);
        }
        let mut touched = Vec::new();
        for (sub, tag, media) in dep.stop {
            let Some(p) = self.peers.get_mut(sub) else {
                continue;
            };
            p.release(tag, media);
            if !touched.contains(&sub) {
                touched.push(sub);
            }
        }
        for sub in touched {
            let video_tracks = self.router.video_consumers_of(sub);
            if let Some(p) = self.peers.get_mut(sub) {
                p.budget.video_tracks = video_tracks;
                p.update_bitrate_goal();
            }
            self.router.invalidate_subscriber(sub);
            self.negotiate(now, sub);
            self.mark_dirty(sub);
        }
        self.drive_dirty(now);
    }

    /// `who`'s session reports a new track it sends: it becomes a producer, every subscriber
    /// of the room here gets a consumer of it, and the other workers learn of it.
    pub(super) fn publish(&mut self, now: Instant, who: ParticipantId, media: MediaId, kind: Kind) {
        if !self.router.add_producer(who, media, kind) {
            return;
        }
        if let Some(p) = self.peers.get(who) {
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

    /// Gives a WHEP player every track of `from` it does not receive yet, local or on another
    /// worker, while it has free m-lines of the kind (its m-lines may be known only after the
    /// join, when the session first reports them).
    pub(super) fn bind_player(&mut self, now: Instant, who: ParticipantId, from: ParticipantId) {
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

    /// Makes `subscriber` a consumer of `key`: through the next server offer for a participant,
    /// bound at once to a free m-line for a WHEP player (or not at all, see [`Binding`]).
    pub(super) fn add_consumer(&mut self, key: ProducerKey, kind: Kind, subscriber: ParticipantId) {
        let Some(sink) = self.peers.sink_of(subscriber) else {
            return;
        };
        let Some(p) = self.peers.at_mut(sink) else {
            return;
        };
        let binding = p.bind(key, kind);
        if binding == Binding::Refused {
            return;
        }
        let Some(tag) = self.router.add_consumer(key, subscriber, sink) else {
            return;
        };
        if let Binding::Bound { media, pin } = binding {
            // Bound at once; `negotiate` activates it (no offer, no answer).
            tracing::debug!(
                player = subscriber.0,
                mid = media.as_str(),
                producer = key.owner.0,
                "player track bound"
            );
            self.router.consumer_offered(subscriber, tag, media);
            if let Some(layer) = pin {
                if let Some((prod, i)) = self.router.consumer_mut(subscriber, media) {
                    prod.consumers[i].pinned = Some(layer);
                }
            }
        }
        let video_tracks = self.router.video_consumers_of(subscriber);
        let Some(p) = self.peers.at_mut(sink) else {
            return;
        };
        p.budget.video_tracks = video_tracks;
        p.update_bitrate_goal();
        if binding == Binding::Offer {
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
    pub(super) fn negotiate(&mut self, now: Instant, who: ParticipantId) {
        let Some(p) = self.peers.get_mut(who) else {
            return;
        };
        if !p.gets_offers() {
            for key in self.router.activate_offered(who) {
                self.keyframe_for(now, key, true);
            }
            return;
        }
        let session = &mut p.session;
        let Some(Some((sdp, added, removed))) = guarded(|| session.create_offer()) else {
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
        if let Some(p) = self.peers.get(who) {
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
            .get_mut(who)
            .ok_or(SfuError::UnknownParticipant)?;
        p.budget.max_bitrate = bps;
        self.router.invalidate_subscriber(who);
        Ok(())
    }

    /// Asks the bandwidth estimator toward `who` to probe for more (the subscriber wants a
    /// bigger layer).
    fn request_probe(&mut self, who: ParticipantId) {
        if let Some(p) = self.peers.get_mut(who) {
            p.budget.bump_probe();
            p.update_bitrate_goal();
            self.mark_dirty(who);
        }
    }

    /// Resolves a subscriber's video mid; errors say what is wrong with it.
    fn video_media(&self, who: ParticipantId, mid: &str) -> Result<MediaId, SfuError> {
        let p = self.peers.get(who).ok_or(SfuError::UnknownParticipant)?;
        match p.session.media_by_mid(mid) {
            Some((m, Kind::Video)) => Ok(m),
            Some((_, Kind::Audio)) => Err(SfuError::NotVideo),
            None => Err(SfuError::UnknownTrack),
        }
    }
}
