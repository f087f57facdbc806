//! The hot path: one packet from its producer to every consumer on this worker and every link
//! that wants it, and the keyframe requests the consumers' waits turn into.
//!
//! Ingest and layer bookkeeping are the producer's ([`crate::producer`]), each consumer's
//! decision is its own ([`crate::forward`]); here the packet only moves: over the links first,
//! then into each subscriber's session, which encrypts it into that subscriber's datagram.

use std::time::Instant;

use super::WorkerCore;
use crate::forward::Verdict;
use crate::layers::{layer_name, MAX_LAYERS};
use crate::peer::guarded;
use crate::producer::{Origin, ProducerKey};
use crate::relay::{Inter, Relayed};
use crate::session::Kind;
use crate::session::Packet;
use crate::{ParticipantId, PeerEvent};

impl WorkerCore {
    /// A decrypted packet from a publisher on this worker: its speaker level is noted, its
    /// producer ingests it once, and it is fanned out.
    pub(super) fn forward(&mut self, now: Instant, from: ParticipantId, mut pkt: Packet) {
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
        let peers = &self.peers;
        let ingested = prod.ingest(&mut pkt, |pt| {
            peers.get(from).and_then(|p| p.session.codec_of(pt))
        });
        if ingested.is_err() {
            self.stats.dropped_unknown_layer.inc();
            return;
        }
        self.fan_out(now, key, pkt);
    }

    /// One packet to every link that holds a proxy of its producer, then to every consumer of
    /// it on this worker.
    ///
    /// For a simulcast track, each consumer forwards only the layer it currently receives,
    /// switches to its target layer on that layer's next keyframe, and asks the publisher for
    /// that keyframe (throttled per layer; over the link to the origin for a proxy).
    pub(super) fn fan_out(&mut self, now: Instant, key: ProducerKey, pkt: Packet) {
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
            for &link in relay_to {
                let relayed = Relayed {
                    key,
                    packet: pkt.clone(),
                };
                if links.push(link, relayed).is_ok() {
                    stats.relayed_out.inc();
                } else {
                    stats.dropped_relay_full.inc();
                }
            }
        }
        let from = key.owner;
        let origin = prod.origin_link();
        let track = prod.on_packet(now, &pkt);
        if prod.keyframe_due(now) {
            match origin {
                Some(link) => inter_out.push((link, Inter::Keyframe { key, layer: None })),
                None => {
                    if let Some(p) = peers.get_mut(from) {
                        if guarded(|| p.session.request_keyframe(key.media)) == Some(true) {
                            stats.keyframe_requests.inc();
                        }
                    }
                }
            }
        }
        let nackable = prod.kind == Kind::Video;
        // Layers some consumer waits for a keyframe of (bit per layer).
        let mut keyframes_wanted = 0u8;
        for c in prod.consumers.iter_mut() {
            let Some(sub) = peers.at_mut(c.sink) else {
                continue;
            };
            let fwd = c.on_packet(now, &pkt, &track, &*sub);
            if let Some(layer) = fwd.keyframe {
                keyframes_wanted |= 1 << layer;
            }
            if let (Some(s), Some(media)) = (fwd.switched, c.media) {
                stats.layer_switches[s.reason.index()].inc();
                sub.counters.layer_switches[s.reason.index()] += 1;
                let _ = sub.events.send(PeerEvent::LayerSwitched {
                    mid: media.as_str().to_owned(),
                    layer: layer_name(s.layer),
                    reason: s.reason,
                    width: s.width,
                });
            }
            let (media, pt, header) = match fwd.verdict {
                Verdict::Send { media, pt, header } => (media, pt, header),
                Verdict::Skip => continue,
                Verdict::TemporalDrop => {
                    stats.temporal_drops.inc();
                    continue;
                }
                Verdict::NoCodec => {
                    stats.dropped_codec.inc();
                    sub.counters.dropped_codec += 1;
                    continue;
                }
            };
            // The VP8 fields to patch, and where they sit (parsed once at ingest).
            let vp8 = header
                .vp8
                .and_then(|(pid, tl0)| Some((pid, tl0, pkt.vp8?.layout?)));
            let session = &mut sub.session;
            let written = guarded(|| {
                session.write_rtp(
                    media,
                    pt,
                    header.seq,
                    header.timestamp,
                    pkt.arrival,
                    pkt.marker,
                    pkt.audio_level,
                    pkt.voice_activity,
                    nackable,
                    vp8,
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
                        dirty.push(c.sink);
                    }
                }
                Some(false) => {
                    stats.dropped_not_ready.inc();
                    sub.counters.dropped_not_ready += 1;
                }
                None => doomed.push(c.subscriber),
            }
        }
        if keyframes_wanted == 0 {
            return;
        }
        // Ask for the wanted layers' keyframes: over the link for a proxy, from the publisher's
        // session here otherwise.
        if let (Some(link), true) = (origin, prod.simulcast.is_some()) {
            for l in 0..MAX_LAYERS as u8 {
                if keyframes_wanted & (1 << l) != 0 && prod.layer_keyframe_due(now, l) {
                    inter_out.push((
                        link,
                        Inter::Keyframe {
                            key,
                            layer: Some(l),
                        },
                    ));
                }
            }
            return;
        }
        if prod.simulcast.is_none() {
            return;
        }
        let Some(sink) = peers.sink_of(from) else {
            return;
        };
        let Some(p) = peers.at_mut(sink) else {
            return;
        };
        for l in 0..MAX_LAYERS as u8 {
            if keyframes_wanted & (1 << l) == 0 {
                continue;
            }
            let Some(rid) = prod.layer_rids[l as usize] else {
                continue;
            };
            if !prod.layer_keyframe_due(now, l) {
                continue;
            }
            if guarded(|| p.session.request_keyframe_layer(key.media, rid)) != Some(true) {
                continue;
            }
            stats.keyframe_requests.inc();
            if !p.dirty {
                p.dirty = true;
                dirty.push(sink);
            }
        }
    }

    /// Sends (or schedules, if throttled) a keyframe request to a producer's publisher.
    pub(super) fn keyframe_for(&mut self, now: Instant, key: ProducerKey, want: bool) {
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
        if let Some(link) = prod.origin_link() {
            // A proxy: the publisher's session lives at the other end of the link.
            self.inter_out
                .push((link, Inter::Keyframe { key, layer: None }));
        } else if let Some(p) = self.peers.get_mut(key.owner) {
            if guarded(|| p.session.request_keyframe(key.media)) == Some(true) {
                self.stats.keyframe_requests.inc();
                self.mark_dirty(key.owner);
            }
        }
    }

    /// A consumer elsewhere waits for a keyframe of one simulcast layer of a track published
    /// here: ask the publisher (throttled per layer, shared with local consumers).
    pub(super) fn keyframe_for_layer(&mut self, now: Instant, key: ProducerKey, layer: u8) {
        let Some(prod) = self.router.producer_mut(&key) else {
            return;
        };
        let Some(rid) = prod.layer_rids.get(layer as usize).copied().flatten() else {
            return;
        };
        if prod.simulcast.is_none() || !prod.layer_keyframe_due(now, layer) {
            return;
        }
        if let Some(p) = self.peers.get_mut(key.owner) {
            if guarded(|| p.session.request_keyframe_layer(key.media, rid)) == Some(true) {
                self.stats.keyframe_requests.inc();
                self.mark_dirty(key.owner);
            }
        }
    }
}
