//! The worker's side of the links to other workers: which tracks exist elsewhere, proxies of
//! the ones consumed here, and the control messages and packets that cross (see
//! [`crate::relay`]).

use std::time::Instant;

use super::WorkerCore;
use crate::link::Link;
use crate::producer::{Origin, ProducerKey};
use crate::relay::{Inter, Relayed, RELAY_CAPACITY};
use crate::session::Kind;

/// A track published elsewhere (from its [`Inter::ProducerAdded`]), and the link it comes over.
#[derive(Debug, Clone, Copy)]
pub(super) struct RemoteTrack {
    pub key: ProducerKey,
    pub kind: Kind,
    pub link: Link,
}

impl WorkerCore {
    /// Queues `msg` for every other worker of the mesh.
    pub(super) fn broadcast(&mut self, msg: Inter) {
        for link in self.links.others() {
            self.inter_out.push((link, msg.clone()));
        }
    }

    /// Makes sure a proxy of the remote track exists here; a new one asks its origin to relay.
    pub(super) fn ensure_proxy(&mut self, track: RemoteTrack, room: &str) {
        if self
            .router
            .add_proxy(track.key, track.kind, track.link, room)
        {
            self.inter_out
                .push((track.link, Inter::Subscribe { key: track.key }));
        }
    }

    /// Drops proxies nobody here consumes any more and tells their origins to stop relaying.
    pub(super) fn release_idle_proxies(&mut self) {
        for (key, link) in self.router.take_idle_proxies() {
            self.inter_out.push((link, Inter::Unsubscribe { key }));
        }
    }

    /// A control message that came over link `from` (see [`Inter`]).
    pub fn handle_inter(&mut self, now: Instant, from: Link, msg: Inter) {
        match msg {
            Inter::ProducerAdded { room, key, kind } => {
                let track = RemoteTrack {
                    key,
                    kind,
                    link: from,
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
                        relay_to.retain(|l| *l != from);
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
                let Some((_, Relayed { key, packet })) = self.links.pop(ring) else {
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
}
