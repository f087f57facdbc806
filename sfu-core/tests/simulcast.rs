//! Simulcast through a real `WorkerCore`: a str0m publisher sends three VP8 layers (RIDs
//! q/h/f, each with its own SSRC, sequence numbers, timestamps, picture ids and TL0PICIDX, see
//! `sfu_core::testing::PublisherLayer`), and str0m subscribers decrypt what the server forwards to them.
//! The tests check which layer each subscriber gets, why it changes (`LayerSwitched` events and
//! the `layer_switches` counters), that a switch waits for a keyframe of the new layer and
//! asks the publisher for one, and that the subscriber sees a single continuous stream across
//! switches (sequence numbers, RTP timestamps, SSRC, VP8 picture id and TL0PICIDX).

use sfu_core::layers::SwitchReason;
use sfu_core::testing::{InMemoryRoom, LayerSwitch, ReceivedRtp, FRAME_INTERVAL};

const RIDS: [&str; 3] = ["q", "h", "f"];
const Q: u8 = 0;
const H: u8 = 1;
const F: u8 = 2;

/// Packets per frame on q, h and f. With `sfu_core::testing::SIMULCAST_PAYLOAD_SIZES` (250, 500, 1000
/// bytes) at 30 frames/s: about 60, 120 and 480 kbit/s.
const PACKETS: [usize; 3] = [1, 1, 2];

/// Frames to run before checking what a subscriber settled on: 1.5 s, so every layer's
/// bitrate has been measured once (the core measures over 1 s windows).
const WARM_UP: usize = 45;

/// One browser-like frame: every layer, lowest first, a keyframe where the publisher was
/// asked for one; everything forwarded and delivered.
fn frames(room: &mut InMemoryRoom, n: usize) {
    for _ in 0..n {
        room.simulcast_frame(&PACKETS).expect("simulcast frame");
    }
}

/// Like [`frames`], but the publisher ignores keyframe requests (they stay pending): a
/// subscriber waiting for a keyframe of another layer must keep its current one.
fn frames_without_keyframes(room: &mut InMemoryRoom, n: usize) {
    for _ in 0..n {
        room.run_for(FRAME_INTERVAL).expect("run");
        for (layer, packets) in PACKETS.iter().enumerate() {
            for p in room.publisher_frame_on(layer, false, *packets).unwrap() {
                let out = room.forward_collect(&p);
                room.deliver(out).unwrap();
            }
        }
    }
}

/// Runs frames until subscriber 0 got `count` layer switch events in all (at most `max`
/// frames). Returns the frames it took.
fn frames_until_switches(room: &mut InMemoryRoom, count: usize, max: usize) -> usize {
    for i in 0..max {
        if room.subscriber(0).layer_switches.len() >= count {
            return i;
        }
        frames(room, 1);
    }
    panic!(
        "no layer switch within {max} frames; switches so far: {:?}",
        room.subscriber(0).layer_switches
    );
}

/// A room with one simulcast publisher and one subscriber that has settled on f (no size
/// info, no cap): returns the subscriber's id and its mid of the publisher's video.
fn room_on_f(workers: usize) -> (InMemoryRoom, sfu_core::ParticipantId, String) {
    let mut room = InMemoryRoom::spanning(1, &RIDS, workers).expect("room connects");
    let sub = room.subscriber(0).id;
    let mid = room
        .subscriber(0)
        .video_mid()
        .expect("the server offered the publisher's video")
        .to_owned();
    frames(&mut room, WARM_UP);
    let s = room.subscriber(0);
    let last = s.layer_switches.last().expect("a first layer was chosen");
    assert_eq!(
        last.layer, "f",
        "without size info or cap the subscriber ends on f: {:?}",
        s.layer_switches
    );
    // And stays there.
    let mark = s.received.len();
    frames(&mut room, 15);
    assert_only(&room.subscriber(0).received[mark..], F, "settled on f");
    assert_eq!(room.total(|s| &s.sessions_failed), 0);
    assert_relayed_if_spanning(&room);
    (room, sub, mid)
}

/// On two workers, the subscriber sits on worker 1 and what it got crossed the relay.
fn assert_relayed_if_spanning(room: &InMemoryRoom) {
    if room.workers() > 1 {
        assert_eq!(room.subscriber(0).worker, 1);
        assert!(room.stats_of(1).relayed_in.get() > 0, "nothing crossed");
        assert_eq!(
            room.stats_of(0).relayed_out.get(),
            room.stats_of(1).relayed_in.get()
        );
        assert_eq!(room.stats_of(0).dropped_relay_full.get(), 0);
    }
}

/// Every packet in `rx` comes from `layer` (tag written by the harness publisher; keyframes
/// also carry that layer's frame size), and there is at least one.
fn assert_only(rx: &[ReceivedRtp], layer: u8, what: &str) {
    assert!(!rx.is_empty(), "{what}: nothing received");
    let sizes = [(320, 180), (640, 360), (1280, 720)];
    for (i, p) in rx.iter().enumerate() {
        assert_eq!(p.layer_tag, Some(layer), "{what}: packet {i} is {p:?}");
        if let Some(size) = p.size {
            assert_eq!(size, sizes[layer as usize], "{what}: keyframe {i}");
        }
    }
}

/// What a decoder needs to see one stream: consecutive sequence numbers, RTP timestamps that
/// never go back, one SSRC, the VP8 picture id +1 (mod 2^15) at each new frame and unchanged
/// within one, TL0PICIDX +1 at each TID-0 frame and unchanged otherwise.
fn assert_continuous(rx: &[ReceivedRtp]) {
    assert!(rx.len() > 1);
    assert!(
        rx[0].start_of_frame && rx[0].keyframe,
        "starts with a keyframe"
    );
    for (i, w) in rx.windows(2).enumerate() {
        let (a, b) = (&w[0], &w[1]);
        let ctx = || format!("packets {i} and {}:\n  {a:?}\n  {b:?}", i + 1);
        assert_eq!(b.seq, a.seq + 1, "sequence numbers: {}", ctx());
        assert!(
            b.timestamp.wrapping_sub(a.timestamp) < 1 << 31,
            "RTP timestamp went back: {}",
            ctx()
        );
        assert_eq!(b.ssrc, a.ssrc, "SSRC changed: {}", ctx());
        let (pa, pb) = (a.picture_id.unwrap(), b.picture_id.unwrap());
        let (ta, tb) = (a.tl0_pic_idx.unwrap(), b.tl0_pic_idx.unwrap());
        if b.start_of_frame {
            assert_eq!(
                pb,
                (pa + 1) & 0x7fff,
                "picture id of a new frame: {}",
                ctx()
            );
            assert!(a.marker, "the previous frame ended: {}", ctx());
            let step = u8::from(b.tid == Some(0));
            assert_eq!(tb, ta.wrapping_add(step), "TL0PICIDX: {}", ctx());
        } else {
            assert_eq!(pb, pa, "picture id within a frame: {}", ctx());
            assert_eq!(tb, ta, "TL0PICIDX within a frame: {}", ctx());
            assert_eq!(
                b.timestamp,
                a.timestamp,
                "timestamp within a frame: {}",
                ctx()
            );
        }
    }
}

/// The layer switches of subscriber 0 after the first `from`, checking there is exactly one.
fn one_new_switch(room: &InMemoryRoom, from: usize) -> LayerSwitch {
    let s = &room.subscriber(0).layer_switches;
    assert_eq!(
        s.len(),
        from + 1,
        "exactly one new switch: {:?}",
        &s[from..]
    );
    s[from].clone()
}

/// A publisher whose RIDs are not layers we know: every packet is counted in
/// `dropped_unknown_layer` and none is forwarded; nothing fails.
fn unknown_rids_are_counted_and_not_forwarded(workers: usize) {
    let mut room = InMemoryRoom::spanning(1, &["a", "b", "c"], workers).expect("room connects");
    let stats = room.stats();
    let in_before = stats.rtp_in.get();
    let fwd_before = room.total(|s| &s.rtp_forwarded);
    frames(&mut room, 30);
    let sent: u64 = 30 * PACKETS.iter().sum::<usize>() as u64;
    let stats = room.stats();
    assert_eq!(
        stats.rtp_in.get() - in_before,
        sent,
        "the core decrypted them"
    );
    assert_eq!(stats.dropped_unknown_layer.get(), sent);
    assert_eq!(
        room.total(|s| &s.rtp_forwarded),
        fwd_before,
        "nothing forwarded"
    );
    assert!(
        room.subscriber(0).received.is_empty(),
        "the subscriber got media"
    );
    assert!(room.subscriber(0).layer_switches.is_empty());
    assert_eq!(room.total(|s| &s.sessions_failed), 0);
    let peers: usize = (0..room.workers())
        .map(|w| room.core_of(w).peer_count())
        .sum();
    assert_eq!(peers, 2, "both sessions alive");
}

/// With no size info, no cap and a good estimate, a subscriber should get f from its very
/// first packet: the publisher sends q, h and f of every frame within the same millisecond.
fn without_size_info_the_first_layer_is_f(workers: usize) {
    let mut room = InMemoryRoom::spanning(1, &RIDS, workers).expect("room connects");
    frames(&mut room, WARM_UP);
    let s = room.subscriber(0);
    assert_eq!(
        s.layer_switches.first().map(|w| (w.layer, w.reason)),
        Some(("f", SwitchReason::Initial)),
        "{:?}",
        s.layer_switches
    );
    assert_eq!(s.layer_switches.len(), 1, "{:?}", s.layer_switches);
    assert_only(&s.received, F, "from the first packet");
    assert_relayed_if_spanning(&room);
}

/// Even when the first layer is picked before all layers arrived, the stream the subscriber
/// sees from its first packet is one continuous stream ending on f.
fn the_first_layers_form_one_continuous_stream(workers: usize) {
    let (room, _, _) = room_on_f(workers);
    let s = room.subscriber(0);
    assert_continuous(&s.received);
    assert_eq!(s.layer_switches[0].reason, SwitchReason::Initial);
    assert_eq!(
        room.total(|s| &s.layer_switches[SwitchReason::Initial.index()]),
        1
    );
}

/// `set_video_size(300)`: the subscriber moves from f to q, only at a q keyframe that the
/// server asked the publisher for, seamlessly; the switch is reported as `rendered_size`.
fn rendered_size_switches_to_q_at_a_keyframe_seamlessly(workers: usize) {
    let (mut room, sub, mid) = room_on_f(workers);
    let requests_before = room.total(|s| &s.keyframe_requests);
    let q_keyframes_before = room.publisher_layers()[Q as usize].keyframes;
    let switches_before = room.subscriber(0).layer_switches.len();
    let mark = room.subscriber(0).received.len();

    room.subscriber_core(0)
        .set_video_size(sub, &mid, 300)
        .unwrap();
    // While the publisher sends no keyframe, the subscriber stays on f.
    frames_without_keyframes(&mut room, 10);
    assert!(
        room.total(|s| &s.keyframe_requests) > requests_before,
        "the server asked the publisher for a keyframe"
    );
    assert!(
        room.publisher()
            .keyframe_requests
            .iter()
            .any(|r| r.as_deref() == Some("q")),
        "the publisher received a keyframe request for q: {:?}",
        room.publisher().keyframe_requests
    );
    assert_only(
        &room.subscriber(0).received[mark..],
        F,
        "waiting for a q keyframe",
    );
    assert_eq!(room.subscriber(0).layer_switches.len(), switches_before);

    // Now the publisher answers: its next q frame is a keyframe and the switch happens there.
    frames_until_switches(&mut room, switches_before + 1, 5);
    frames(&mut room, 30);
    assert!(room.publisher_layers()[Q as usize].keyframes > q_keyframes_before);

    let sw = one_new_switch(&room, switches_before);
    assert_eq!(
        (sw.mid.as_str(), sw.layer, sw.reason, sw.width),
        (mid.as_str(), "q", SwitchReason::RenderedSize, Some(320))
    );
    assert_eq!(
        room.total(|s| &s.layer_switches[SwitchReason::RenderedSize.index()]),
        1
    );

    let rx = &room.subscriber(0).received;
    let after = &rx[mark..];
    let first_q = after
        .iter()
        .position(|p| p.layer_tag == Some(Q))
        .expect("q arrived");
    assert_only(&after[..first_q], F, "before the switch");
    assert!(
        after[first_q].keyframe && after[first_q].size == Some((320, 180)),
        "the first q packet is a q keyframe: {:?}",
        after[first_q]
    );
    assert_only(&after[first_q..], Q, "after the switch");
    assert!(after.len() - first_q >= 30, "q keeps flowing");
    assert_continuous(rx);
    assert_eq!(room.total(|s| &s.sessions_failed), 0);
}

/// A 100 kbit/s cap with f measured well above it: the subscriber drops to q (the budget fits
/// no layer, so the lowest), reason `bandwidth`, seamlessly.
fn a_bitrate_cap_switches_down_for_bandwidth(workers: usize) {
    let (mut room, sub, _) = room_on_f(workers);
    let switches_before = room.subscriber(0).layer_switches.len();
    let bandwidth_before = room.total(|s| &s.layer_switches[SwitchReason::Bandwidth.index()]);
    let mark = room.subscriber(0).received.len();

    room.subscriber_core(0)
        .set_max_bitrate(sub, Some(100_000))
        .unwrap();
    frames_until_switches(&mut room, switches_before + 1, 30);
    frames(&mut room, 30);

    let sw = one_new_switch(&room, switches_before);
    assert_eq!(
        (sw.layer, sw.reason, sw.width),
        ("q", SwitchReason::Bandwidth, Some(320))
    );
    assert_eq!(
        room.total(|s| &s.layer_switches[SwitchReason::Bandwidth.index()]),
        bandwidth_before + 1
    );
    let rx = &room.subscriber(0).received;
    let first_q = mark
        + rx[mark..]
            .iter()
            .position(|p| p.layer_tag == Some(Q))
            .expect("q arrived");
    assert_only(&rx[first_q..], Q, "after the cap");
    assert_continuous(rx);
}

/// Pinning h moves the subscriber to h (reason `manual`); unpinning brings f back (`manual`).
fn pinning_a_layer_switches_manually(workers: usize) {
    let (mut room, sub, mid) = room_on_f(workers);
    let switches_before = room.subscriber(0).layer_switches.len();
    let mark = room.subscriber(0).received.len();

    room.subscriber_core(0)
        .pin_layer(sub, &mid, Some("h"))
        .unwrap();
    frames_until_switches(&mut room, switches_before + 1, 30);
    frames(&mut room, 30);
    let sw = one_new_switch(&room, switches_before);
    assert_eq!(
        (sw.layer, sw.reason, sw.width),
        ("h", SwitchReason::Manual, Some(640))
    );
    let rx = &room.subscriber(0).received;
    let first_h = mark
        + rx[mark..]
            .iter()
            .position(|p| p.layer_tag == Some(H))
            .expect("h arrived");
    assert_only(&rx[first_h..], H, "pinned to h");

    room.subscriber_core(0).pin_layer(sub, &mid, None).unwrap();
    frames_until_switches(&mut room, switches_before + 2, 30);
    frames(&mut room, 10);
    let sw = one_new_switch(&room, switches_before + 1);
    assert_eq!((sw.layer, sw.reason), ("f", SwitchReason::Manual));
    assert_eq!(
        room.total(|s| &s.layer_switches[SwitchReason::Manual.index()]),
        2
    );
    assert_continuous(&room.subscriber(0).received);
}

/// A budget below even the lowest layer's rate: the subscriber stays on q and the server also
/// leaves out q's upper temporal layer (TID 1 frames), renumbering so the stream has no holes.
fn a_budget_below_the_lowest_layer_drops_temporal_layers_without_holes(workers: usize) {
    let (mut room, sub, _) = room_on_f(workers);
    let switches_before = room.subscriber(0).layer_switches.len();
    // 64 kbit/s are set aside for audio: 80 kbit/s leaves 16 for a ~60 kbit/s q layer.
    room.subscriber_core(0)
        .set_max_bitrate(sub, Some(80_000))
        .unwrap();
    frames_until_switches(&mut room, switches_before + 1, 30);
    let mark = room.subscriber(0).received.len();
    frames(&mut room, 40);

    assert!(
        room.total(|s| &s.temporal_drops) > 0,
        "TID 1 frames were left out"
    );
    let rx = &room.subscriber(0).received;
    // From the first base-layer frame after the cap on, only TID 0 arrives.
    let first_t0 = mark
        + rx[mark..]
            .iter()
            .position(|p| p.start_of_frame && p.tid == Some(0))
            .expect("a base-layer frame arrived");
    assert!(
        rx[first_t0..].iter().all(|p| p.tid == Some(0)),
        "only TID 0 after the limit"
    );
    assert_only(&rx[first_t0..], Q, "after the cap");
    assert_continuous(rx);
}

/// Every scenario runs twice: with the room on one worker, and spread over two workers with
/// the subscriber on the other worker than the publisher, so its packets cross the relay
/// rings, its layer choice runs on a proxy producer and its keyframe requests travel back to
/// the publisher's worker.
macro_rules! on_one_and_on_two_workers {
    ($($name:ident),* $(,)?) => {
        mod one_worker {
            $(#[test] fn $name() { super::$name(1) })*
        }
        mod two_workers {
            $(#[test] fn $name() { super::$name(2) })*
        }
    };
}

on_one_and_on_two_workers!(
    unknown_rids_are_counted_and_not_forwarded,
    without_size_info_the_first_layer_is_f,
    the_first_layers_form_one_continuous_stream,
    rendered_size_switches_to_q_at_a_keyframe_seamlessly,
    a_bitrate_cap_switches_down_for_bandwidth,
    pinning_a_layer_switches_manually,
    a_budget_below_the_lowest_layer_drops_temporal_layers_without_holes,
);
