//! How long the core keeps a peer, on the room's simulated clock. GAX is an ICE-lite agent: it
//! sends no checks and hears from the peer only. A peer is alive while it sends STUN binding
//! requests or media that passes SRTP/SRTCP authentication (the str0m patch in
//! third_party/README.md); 15 s after the last of either, the core ends its session.

use std::time::Duration;

use sfu_core::testing::InMemoryRoom;

/// The publisher sends one packet every 40 ms for `dt` (simulated), the core forwards it and
/// the subscribers get it; everyone's timers and RTCP run in between.
fn stream_for(room: &mut InMemoryRoom, dt: Duration) {
    let end = room.now() + dt;
    while room.now() < end {
        let packet = room.publisher_packet().unwrap();
        let out = room.forward_collect(&packet);
        room.deliver(out).unwrap();
        room.run_for(Duration::from_millis(36)).unwrap();
    }
}

/// webrtc-rs and pion send a keepalive only while a pair is idle one way, so once media flows
/// both ways the core gets no binding request at all. The publisher's SRTP and the
/// subscriber's SRTCP (receiver reports) keep both sessions alive well past the 15 s cutoff.
#[test]
fn media_keeps_peers_that_send_no_binding_requests() {
    let mut room = InMemoryRoom::new(1).unwrap();
    room.withhold_client_stun();
    // `deliver` and `settle` fail the test if the core closes a session that is not silent.
    stream_for(&mut room, Duration::from_secs(40));
    assert_eq!(room.stats().sessions.get(), 2);
    let before = room.subscriber(0).rtp_received;
    stream_for(&mut room, Duration::from_secs(1));
    assert!(
        room.subscriber(0).rtp_received > before + 10,
        "the subscriber still receives 40 s in"
    );
}

/// Authenticated media keeps a peer only while it flows: a subscriber that vanishes is still
/// dropped about 15 s after the last thing it sent, and the publisher stays.
#[test]
fn a_peer_that_goes_silent_is_still_dropped() {
    let mut room = InMemoryRoom::new(2).unwrap();
    room.withhold_client_stun();
    stream_for(&mut room, Duration::from_secs(2));
    room.silence(0);
    stream_for(&mut room, Duration::from_secs(12));
    assert!(
        !room.subscriber(0).closed_by_server,
        "12 s of silence is within the cutoff"
    );
    stream_for(&mut room, Duration::from_secs(6));
    assert!(
        room.subscriber(0).closed_by_server,
        "18 s of silence is past it"
    );
    assert_eq!(
        room.stats().sessions.get(),
        2,
        "the publisher and subscriber 1 stay"
    );
    assert!(!room.subscriber(1).closed_by_server);
}
