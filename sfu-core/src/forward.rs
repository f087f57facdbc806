//! The forwarding step: what one consumer (one subscriber's view of a track) does with one
//! packet of that track.
//!
//! [`Consumer::on_packet`] decides everything that is this subscriber's own: which simulcast
//! layer it should get (its rendered size, its bandwidth budget, its pin), whether this packet
//! is of that layer, whether to switch onto it here (only at a keyframe of the target layer),
//! whether to leave out a temporal layer its budget cannot carry, and the rewritten header
//! (sequence number, timestamp, VP8 picture id and TL0PICIDX continuing across switches, the
//! subscriber's own payload type). It returns a [`Forward`]; the worker carries it out (writes
//! the packet into the subscriber's session, counts, reports switches, asks for keyframes).
//! No session, socket or clock here: the step is tested on its own below.

use std::time::Instant;

use crate::layers::{
    rate_of, temporal_limit, Inputs, LayerSelector, LayerState, SwitchReason, MAX_LAYERS,
};
use crate::rewrite::{Rewriter, Rewritten};
use crate::session::Packet;
use crate::session::{CodecKey, MediaId};
use crate::ParticipantId;

/// Which sink on its worker a consumer's packets go to: the index of its subscriber's peer in
/// the worker's table (a direct index on the hot path, no hash lookup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SinkId(pub u32);

/// What the forwarding step needs to know of the subscriber behind a consumer.
pub trait Subscriber {
    /// The bitrate each of its video tracks may use (`None`: unlimited).
    fn video_budget(&self) -> Option<u64>;
    /// Its payload type for `codec` on its m-line `media` (`None`: not negotiated).
    fn payload_type(&self, media: MediaId, codec: CodecKey) -> Option<u8>;
}

/// What every consumer's step of one packet shares, computed once per packet by the producer
/// ([`crate::producer::Producer::on_packet`]).
#[derive(Debug, Clone, Copy)]
pub struct TrackView {
    /// The publisher's layers now (simulcast tracks only).
    pub layers: Option<[LayerState; MAX_LAYERS]>,
    /// Time to re-evaluate every consumer's target layer.
    pub eval: bool,
    /// The publisher's layers have only just started: wait before a first choice.
    pub warming_up: bool,
    /// RTP clock rate of the track (converts arrival gaps into timestamp steps).
    pub clock_rate: u32,
}

/// The outcome of one consumer's step for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub verdict: Verdict,
    /// The consumer switched onto the packet's layer at this packet (a keyframe).
    pub switched: Option<Switch>,
    /// A layer whose keyframe this consumer waits for: ask the publisher (throttled).
    pub keyframe: Option<u8>,
}

/// Whether the packet goes to the subscriber, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it on the subscriber's m-line `media` with payload type `pt` and this header.
    Send {
        media: MediaId,
        pt: u8,
        header: Rewritten,
    },
    /// Not for this subscriber: not live yet, another layer, before the first keyframe, or
    /// reordered from before a switch.
    Skip,
    /// A temporal layer above what its budget allows, left out without a hole in the
    /// sequence numbers or picture ids.
    TemporalDrop,
    /// The subscriber did not negotiate the packet's codec.
    NoCodec,
}

/// A simulcast switch made at this packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switch {
    pub layer: u8,
    pub reason: SwitchReason,
    /// The layer's frame width, when known.
    pub width: Option<u16>,
}

/// One subscriber's receive side of a producer.
#[derive(Debug)]
pub struct Consumer {
    /// Unique within the router; tags the track while its m-line is negotiated.
    pub tag: u64,
    pub subscriber: ParticipantId,
    /// The subscriber's peer on this worker.
    pub sink: SinkId,
    /// The mid in the subscriber's session, once offered.
    pub media: Option<MediaId>,
    /// True once the subscriber answered the offer that added it: packets may flow.
    pub active: bool,
    /// Payload type map (publisher's pt -> subscriber's pt, `None` = codec not negotiated).
    pub pt_map: Vec<(u8, Option<u8>)>,
    /// Sequence number, timestamp and VP8 picture id continuity across source changes.
    pub rewriter: Rewriter,
    /// Simulcast: which layer this subscriber should get.
    pub selector: LayerSelector,
    /// Why the pending target was chosen (reported when the switch happens).
    pub pending_reason: Option<SwitchReason>,
    /// Width (device pixels) at which the subscriber renders this track.
    pub rendered_width: Option<u32>,
    /// A layer the subscriber pinned.
    pub pinned: Option<u8>,
    /// Highest VP8 temporal layer forwarded (`None`: all); changes take effect at the next
    /// base-layer (TID 0) frame, from `pending_max_tid`.
    pub max_tid: Option<u8>,
    pub pending_max_tid: Option<u8>,
}

impl Consumer {
    /// A consumer not negotiated yet (no mid, not active).
    pub fn new(tag: u64, subscriber: ParticipantId, sink: SinkId) -> Self {
        Consumer {
            tag,
            subscriber,
            sink,
            media: None,
            active: false,
            pt_map: Vec::new(),
            rewriter: Rewriter::new(),
            selector: LayerSelector::new(),
            pending_reason: None,
            rendered_width: None,
            pinned: None,
            max_tid: None,
            pending_max_tid: None,
        }
    }

    /// The forwarding step of one packet for this consumer (see the module doc).
    pub fn on_packet(
        &mut self,
        now: Instant,
        pkt: &Packet,
        track: &TrackView,
        sub: &impl Subscriber,
    ) -> Forward {
        let mut fwd = Forward {
            verdict: Verdict::Skip,
            switched: None,
            keyframe: None,
        };
        let Some(media) = self.media.filter(|_| self.active) else {
            return fwd;
        };
        let vp8 = pkt.vp8.map(|v| v.info);
        let vp8_ids = pkt.vp8.and_then(|v| v.ids());
        let layer = pkt.layer;
        if let Some(layers) = track.layers {
            if track.eval || (self.selector.target().is_none() && !track.warming_up) {
                self.choose_target(now, &layers, sub.video_budget());
            }
            let target = self.selector.target();
            if self.rewriter.source() != Some(layer) {
                // Switch only onto the target layer, and only at its keyframe (a non-VP8
                // stream can only start, not switch).
                let at_keyframe = vp8.map_or(self.rewriter.source().is_none(), |v| v.keyframe);
                if target != Some(layer) {
                    return fwd;
                }
                if !at_keyframe {
                    fwd.keyframe = Some(layer);
                    return fwd;
                }
                let reason =
                    reason_before_switch(self.rewriter.source(), self.pending_reason.take());
                tracing::debug!(
                    subscriber = self.subscriber.0,
                    mid = %media,
                    from = ?self.rewriter.source(),
                    to = layer,
                    reason = reason.as_str(),
                    "layer switch"
                );
                self.rewriter.switch_to(
                    layer,
                    pkt.seq,
                    pkt.timestamp,
                    now,
                    track.clock_rate,
                    vp8_ids,
                );
                fwd.switched = Some(Switch {
                    layer,
                    reason,
                    width: layers[layer as usize].width,
                });
            } else if let Some(t) = target.filter(|t| *t != layer) {
                fwd.keyframe = Some(t);
            }
            // Temporal layers: a new limit applies from a base-layer frame on; frames above it
            // are left out without holes in the sequence numbers or picture ids.
            if let Some(tid) = vp8.and_then(|v| v.tid) {
                if tid == 0 {
                    self.max_tid = self.pending_max_tid;
                }
                if self.max_tid.is_some_and(|max| tid > max)
                    && self.rewriter.skip(pkt.seq, vp8.and_then(|v| v.picture_id))
                {
                    fwd.verdict = Verdict::TemporalDrop;
                    return fwd;
                }
            }
        } else if self.rewriter.source().is_none() {
            self.rewriter
                .switch_to(0, pkt.seq, pkt.timestamp, now, track.clock_rate, None);
        }
        let Some(header) = self.rewriter.rewrite(pkt.seq, pkt.timestamp, now, vp8_ids) else {
            return fwd;
        };
        fwd.verdict = match self.payload_type(pkt, media, sub) {
            Some(pt) => Verdict::Send { media, pt, header },
            None => Verdict::NoCodec,
        };
        fwd
    }

    /// Re-evaluates the target layer from the publisher's layers and this subscriber's
    /// rendered size, budget and pin; and how many temporal layers the budget carries.
    fn choose_target(
        &mut self,
        now: Instant,
        layers: &[LayerState; MAX_LAYERS],
        budget: Option<u64>,
    ) {
        let inputs = Inputs {
            layers: *layers,
            rendered_width: self.rendered_width,
            budget,
            pinned: self.pinned,
        };
        if let Some((target, reason)) = self.selector.update(now, &inputs) {
            tracing::debug!(
                subscriber = self.subscriber.0,
                target,
                reason = reason.as_str(),
                ?inputs,
                "layer target"
            );
            self.pending_reason = Some(reason);
        }
        // Short of budget even on the chosen layer: thin it out in time.
        if let Some(t) = self.selector.target() {
            self.pending_max_tid = temporal_limit(budget, rate_of(layers, t));
        }
    }

    /// The subscriber's payload type for the packet's, looked up on the first packet of each
    /// type and kept.
    fn payload_type(&mut self, pkt: &Packet, media: MediaId, sub: &impl Subscriber) -> Option<u8> {
        if let Some((_, out)) = self.pt_map.iter().find(|(i, _)| *i == pkt.pt) {
            return *out;
        }
        let out = pkt.codec.and_then(|codec| sub.payload_type(media, codec));
        self.pt_map.push((pkt.pt, out));
        out
    }
}

/// The reason reported for a switch: the first layer a consumer gets is "initial", whatever
/// moved the target while it waited for the first keyframe.
fn reason_before_switch(current: Option<u8>, pending: Option<SwitchReason>) -> SwitchReason {
    match current {
        None => SwitchReason::Initial,
        Some(_) => pending.unwrap_or(SwitchReason::Initial),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::session::Vp8;
    use crate::session::{test_codec, test_media_id};

    /// A subscriber with a budget per video track that maps every codec to payload type 111.
    struct Sub {
        budget: Option<u64>,
        has_codec: bool,
    }

    impl Subscriber for Sub {
        fn video_budget(&self) -> Option<u64> {
            self.budget
        }
        fn payload_type(&self, _: MediaId, _: CodecKey) -> Option<u8> {
            self.has_codec.then_some(111)
        }
    }

    const ROOMY: Sub = Sub {
        budget: None,
        has_codec: true,
    };

    /// A live consumer on its subscriber's m-line "3".
    fn consumer() -> Consumer {
        let mut c = Consumer::new(1, ParticipantId(2), SinkId(0));
        c.media = Some(test_media_id("3"));
        c.active = true;
        c
    }

    /// The publisher's three layers q/h/f, all active, at their default widths.
    fn view(eval: bool) -> TrackView {
        let layer = |bitrate, width| LayerState {
            active: true,
            bitrate,
            width: Some(width),
        };
        TrackView {
            layers: Some([
                layer(150_000, 320),
                layer(500_000, 640),
                layer(1_500_000, 1280),
            ]),
            eval,
            warming_up: false,
            clock_rate: 90_000,
        }
    }

    /// A VP8 packet of simulcast `layer` as ingest leaves it: descriptor with a 15-bit picture
    /// id, TL0PICIDX and TID; a keyframe header on keyframes.
    fn vp8_packet(layer: u8, seq: u64, pid: u16, tid: u8, keyframe: bool, at: Instant) -> Packet {
        let mut p = vec![0x90, 0xe0, 0x80 | (pid >> 8) as u8, pid as u8, 7, tid << 6];
        if keyframe {
            p.extend_from_slice(&[0x00, 0, 0, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]);
        } else {
            p.extend_from_slice(&[0x01, 0, 0]);
        }
        p.resize(100, 0);
        let payload: Arc<[u8]> = Arc::from(p);
        let mut pkt = Packet::test(test_media_id("0"), seq, seq as u32 * 3000, payload);
        pkt.layer = layer;
        pkt.simulcast = true;
        pkt.codec = Some(test_codec());
        pkt.arrival = at;
        pkt.vp8 = Vp8::parse(&pkt.payload);
        pkt
    }

    fn sent(f: &Forward) -> Rewritten {
        match f.verdict {
            Verdict::Send { pt, header, .. } => {
                assert_eq!(pt, 111, "the subscriber's payload type");
                header
            }
            v => panic!("expected a send, got {v:?}"),
        }
    }

    #[test]
    fn a_single_stream_starts_at_sequence_one_on_the_subscribers_payload_type() {
        let t0 = Instant::now();
        let track = TrackView {
            layers: None,
            eval: false,
            warming_up: false,
            clock_rate: 48_000,
        };
        let payload: Arc<[u8]> = Arc::from(&[0u8; 10][..]);
        let mut pkt = Packet::test(test_media_id("0"), 40_000, 960, payload);
        pkt.codec = Some(test_codec());

        let mut idle = Consumer::new(1, ParticipantId(2), SinkId(0));
        let f = idle.on_packet(t0, &pkt, &track, &ROOMY);
        assert_eq!(f.verdict, Verdict::Skip, "not answered yet: nothing flows");

        let mut c = consumer();
        let f = c.on_packet(t0, &pkt, &track, &ROOMY);
        let h = sent(&f);
        assert_eq!((h.seq, h.timestamp, h.vp8), (1, 960, None));
        assert_eq!(f.switched, None, "a single stream reports no switch");
        pkt.seq += 1;
        assert_eq!(sent(&c.on_packet(t0, &pkt, &track, &ROOMY)).seq, 2);

        let lacking = Sub {
            budget: None,
            has_codec: false,
        };
        let mut c = consumer();
        let f = c.on_packet(t0, &pkt, &track, &lacking);
        assert_eq!(f.verdict, Verdict::NoCodec);
    }

    #[test]
    fn layer_choice_switch_at_keyframe_and_rewrite_through_one_packet() {
        let t0 = Instant::now();
        let mut c = consumer();
        c.rendered_width = Some(320);

        // A 320-wide tile targets q. An h packet is not for it; a q delta frame is, but
        // only its keyframe may start the stream: ask for one.
        let f = c.on_packet(
            t0,
            &vp8_packet(1, 500, 900, 0, true, t0),
            &view(true),
            &ROOMY,
        );
        assert_eq!((f.verdict, f.keyframe), (Verdict::Skip, None));
        assert_eq!(c.selector.target(), Some(0));
        let f = c.on_packet(
            t0,
            &vp8_packet(0, 100, 50, 0, false, t0),
            &view(false),
            &ROOMY,
        );
        assert_eq!((f.verdict, f.keyframe), (Verdict::Skip, Some(0)));

        // The q keyframe: switch (the first layer is "initial") and send as sequence 1.
        let f = c.on_packet(
            t0,
            &vp8_packet(0, 101, 51, 0, true, t0),
            &view(false),
            &ROOMY,
        );
        assert_eq!(
            f.switched,
            Some(Switch {
                layer: 0,
                reason: SwitchReason::Initial,
                width: Some(320)
            })
        );
        assert_eq!(sent(&f).seq, 1);
        let t1 = t0 + Duration::from_millis(33);
        let f = c.on_packet(
            t1,
            &vp8_packet(0, 102, 52, 0, false, t1),
            &view(false),
            &ROOMY,
        );
        assert_eq!(sent(&f).seq, 2);

        // The tile grows to 1280: the target moves to f at the next evaluation; q keeps
        // flowing and f's keyframe is asked for.
        c.rendered_width = Some(1280);
        let f = c.on_packet(
            t1,
            &vp8_packet(0, 103, 53, 0, false, t1),
            &view(true),
            &ROOMY,
        );
        assert_eq!(c.selector.target(), Some(2));
        assert_eq!(f.keyframe, Some(2));
        assert_eq!(sent(&f).seq, 3);

        // f's keyframe: switch for the rendered size; sequence number, timestamp and picture
        // id continue one step after what q sent, whatever f's own numbers are.
        let t2 = t1 + Duration::from_millis(33);
        let f = c.on_packet(
            t2,
            &vp8_packet(2, 60_000, 20_000, 0, true, t2),
            &view(false),
            &ROOMY,
        );
        let s = f.switched.expect("switched to f");
        assert_eq!(
            (s.layer, s.reason, s.width),
            (2, SwitchReason::RenderedSize, Some(1280))
        );
        let h = sent(&f);
        assert_eq!(h.seq, 4);
        assert_eq!(h.vp8.map(|(pid, _)| pid), Some(54), "picture id continues");
        let q_ts = 103 * 3000;
        assert_eq!(
            h.timestamp,
            q_ts + 33 * 90,
            "33 ms later on the 90 kHz clock"
        );
        // q is no longer for it.
        let f = c.on_packet(
            t2,
            &vp8_packet(0, 104, 54, 0, false, t2),
            &view(false),
            &ROOMY,
        );
        assert_eq!((f.verdict, f.keyframe), (Verdict::Skip, None));
    }

    #[test]
    fn a_budget_below_the_layer_drops_temporal_layers_without_holes() {
        let t0 = Instant::now();
        let mut c = consumer();
        c.rendered_width = Some(320);
        // 100 kbit/s for a 150 kbit/s q: only the base temporal layer fits.
        let tight = Sub {
            budget: Some(100_000),
            has_codec: true,
        };
        let f = c.on_packet(t0, &vp8_packet(0, 10, 1, 0, true, t0), &view(true), &tight);
        assert_eq!(sent(&f).seq, 1);
        assert_eq!(c.max_tid, Some(0), "applies from this base-layer frame on");

        // A TID 1 frame is left out...
        let f = c.on_packet(
            t0,
            &vp8_packet(0, 11, 2, 1, false, t0),
            &view(false),
            &tight,
        );
        assert_eq!(f.verdict, Verdict::TemporalDrop);
        // ...and the next base-layer frame takes its sequence number and picture id.
        let f = c.on_packet(
            t0,
            &vp8_packet(0, 12, 3, 0, false, t0),
            &view(false),
            &tight,
        );
        let h = sent(&f);
        assert_eq!(h.seq, 2, "no hole in the sequence numbers");
        assert_eq!(
            h.vp8.map(|(pid, _)| pid),
            Some(2),
            "no hole in the picture ids"
        );

        // With room again, TID 1 flows from the next base-layer frame on.
        let f = c.on_packet(t0, &vp8_packet(0, 13, 4, 0, false, t0), &view(true), &ROOMY);
        assert_eq!(sent(&f).seq, 3);
        let f = c.on_packet(
            t0,
            &vp8_packet(0, 14, 5, 1, false, t0),
            &view(false),
            &ROOMY,
        );
        assert_eq!(sent(&f).seq, 4);
    }
}
