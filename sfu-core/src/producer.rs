//! A producer: one incoming track (a publisher's m-line, all its simulcast layers) and the
//! consumers that receive it on this worker.
//!
//! The producer owns the per-packet work that is done once, whoever receives the packet:
//! [`Producer::ingest`] classifies a fresh packet from its publisher's session (simulcast layer,
//! codec, VP8 descriptor), and [`Producer::on_packet`] keeps the incoming layers' rates and
//! sizes and says what every consumer's forwarding step shares ([`TrackView`]). It also
//! throttles keyframe requests to its publisher. A producer is either published by a session on
//! this worker or a proxy of a track published elsewhere, fed over a [`Link`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::forward::{Consumer, TrackView};
use crate::layers::{layer_index, SimulcastIn, MAX_LAYERS};
use crate::link::Link;
use crate::session::{CodecKey, Kind, Layer, MediaId};
use crate::session::{Packet, Vp8};
use crate::ParticipantId;

/// Keyframe requests to one publisher track are sent at most this often.
pub const KEYFRAME_THROTTLE: Duration = Duration::from_millis(500);

/// Identifies a producer: the publishing participant and the mid of the track in its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerKey {
    pub owner: ParticipantId,
    pub media: MediaId,
}

/// Where a producer's packets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Published by a session on this worker. `relay_to` lists the links that hold a proxy of
    /// it elsewhere (each gets every packet, see [`crate::relay`]).
    Local { relay_to: Vec<Link> },
    /// A proxy of a track published elsewhere, fed over `link`, in `room`.
    Remote { link: Link, room: Arc<str> },
}

/// Why ingest refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestError {
    /// It arrived with a RID that is not one of our layer names.
    UnknownLayer,
}

/// An incoming track and everyone who receives it.
#[derive(Debug)]
pub struct Producer {
    pub key: ProducerKey,
    pub kind: Kind,
    pub origin: Origin,
    /// The publisher's payload types and their codecs, filled on first sight (origin only).
    pub pt_codecs: Vec<(u8, Option<CodecKey>)>,
    /// Simulcast publishers: what arrives on each layer. `None` for a single-stream track.
    pub simulcast: Option<SimulcastIn>,
    /// The RID of each layer index, for per-layer keyframe requests.
    pub layer_rids: [Option<Layer>; MAX_LAYERS],
    pub consumers: Vec<Consumer>,
    last_keyframe_request: Option<Instant>,
    keyframe_wanted: bool,
}

impl Producer {
    pub(crate) fn new(key: ProducerKey, kind: Kind, origin: Origin) -> Self {
        Producer {
            key,
            kind,
            origin,
            pt_codecs: Vec::new(),
            simulcast: None,
            layer_rids: [None; MAX_LAYERS],
            consumers: Vec::new(),
            last_keyframe_request: None,
            keyframe_wanted: false,
        }
    }

    /// The link this track's packets come over, if it is published elsewhere.
    pub fn origin_link(&self) -> Option<Link> {
        match self.origin {
            Origin::Local { .. } => None,
            Origin::Remote { link, .. } => Some(link),
        }
    }

    /// Classifies a fresh packet from the publisher's session, once for every consumer here
    /// and elsewhere: its simulcast layer (from its RID), its codec (`codec_of` asks the
    /// publisher's session, once per payload type) and, for simulcast, its VP8 descriptor.
    pub fn ingest(
        &mut self,
        pkt: &mut Packet,
        codec_of: impl FnOnce(u8) -> Option<CodecKey>,
    ) -> Result<(), IngestError> {
        // Which simulcast layer is this packet? Single-stream tracks are layer 0.
        pkt.layer = match pkt.rid {
            None => 0,
            Some(rid) => {
                let i = layer_index(rid.as_str()).ok_or(IngestError::UnknownLayer)?;
                self.simulcast.get_or_insert_with(SimulcastIn::default);
                self.layer_rids[i as usize].get_or_insert(rid);
                i
            }
        };
        pkt.simulcast = self.simulcast.is_some();
        if pkt.simulcast {
            pkt.vp8 = Vp8::parse(&pkt.payload);
        }
        pkt.codec = match self.pt_codecs.iter().find(|(pt, _)| *pt == pkt.pt) {
            Some((_, c)) => *c,
            None => {
                let c = codec_of(pkt.pt);
                self.pt_codecs.push((pkt.pt, c));
                c
            }
        };
        Ok(())
    }

    /// Notes one packet of this track (its layer's rate and frame size) and returns what
    /// every consumer's forwarding step of it shares.
    pub fn on_packet(&mut self, now: Instant, pkt: &Packet) -> TrackView {
        if pkt.simulcast {
            self.simulcast.get_or_insert_with(SimulcastIn::default);
        }
        let mut view = TrackView {
            layers: None,
            eval: false,
            warming_up: false,
            clock_rate: match self.kind {
                Kind::Video => 90_000,
                Kind::Audio => 48_000,
            },
        };
        if let Some(sim) = self.simulcast.as_mut() {
            let width = pkt.vp8.and_then(|v| v.info.size).map(|(w, _)| w);
            sim.on_packet(now, pkt.layer, pkt.payload.len(), width);
            view.warming_up = sim.warming_up(now);
            view.eval = !view.warming_up && sim.eval_due(now);
            view.layers = Some(sim.states(now));
        }
        view
    }

    /// Notes that a subscriber needs a keyframe. Returns true if a request should be sent now;
    /// otherwise it is remembered and [`Producer::keyframe_due`] says when to send it.
    pub fn want_keyframe(&mut self, now: Instant) -> bool {
        if self.kind != Kind::Video {
            return false;
        }
        self.keyframe_wanted = true;
        self.keyframe_due(now)
    }

    /// True (once) when a remembered keyframe request may be sent now.
    pub fn keyframe_due(&mut self, now: Instant) -> bool {
        if !self.keyframe_wanted {
            return false;
        }
        if let Some(t) = self.last_keyframe_request {
            if now.saturating_duration_since(t) < KEYFRAME_THROTTLE {
                return false;
            }
        }
        self.keyframe_wanted = false;
        self.last_keyframe_request = Some(now);
        true
    }

    /// True when a keyframe request for simulcast layer `layer` may be sent now (throttled
    /// per layer, shared by every consumer here).
    pub fn layer_keyframe_due(&mut self, now: Instant, layer: u8) -> bool {
        self.simulcast
            .as_mut()
            .is_some_and(|sim| sim.keyframe_request_due(now, layer, KEYFRAME_THROTTLE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::test_media_id;

    fn producer(kind: Kind) -> Producer {
        let key = ProducerKey {
            owner: ParticipantId(1),
            media: test_media_id("0"),
        };
        let origin = Origin::Local {
            relay_to: Vec::new(),
        };
        Producer::new(key, kind, origin)
    }

    #[test]
    fn keyframe_requests_are_throttled_but_not_lost() {
        let mut p = producer(Kind::Video);
        let t0 = Instant::now();
        assert!(p.want_keyframe(t0));
        assert!(
            !p.want_keyframe(t0 + Duration::from_millis(100)),
            "throttled"
        );
        assert!(!p.keyframe_due(t0 + Duration::from_millis(200)));
        assert!(
            p.keyframe_due(t0 + KEYFRAME_THROTTLE),
            "remembered request fires"
        );
        assert!(!p.keyframe_due(t0 + KEYFRAME_THROTTLE * 3), "only once");
    }

    #[test]
    fn audio_producers_never_ask_for_keyframes() {
        assert!(!producer(Kind::Audio).want_keyframe(Instant::now()));
    }

    #[test]
    fn ingest_resolves_the_codec_once_per_payload_type() {
        let mut p = producer(Kind::Audio);
        let payload: Arc<[u8]> = Arc::from(&[0u8; 4][..]);
        let mut asked = 0;
        for seq in 0..3 {
            let mut pkt = Packet::test(test_media_id("0"), seq, 0, payload.clone());
            p.ingest(&mut pkt, |_| {
                asked += 1;
                None
            })
            .unwrap();
            assert_eq!((pkt.layer, pkt.simulcast), (0, false));
            assert!(pkt.vp8.is_none(), "no VP8 parse for a single stream");
        }
        assert_eq!(asked, 1);
        assert_eq!(p.pt_codecs.len(), 1);
    }
}
