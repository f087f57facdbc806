//! Bad datagrams from a connected peer's own address: impossible framing is counted before
//! any session sees it; well-framed garbage reaches the session and is refused there: RTP on
//! an SSRC no track explains is counted (`dropped_unknown_ssrc`); str0m drops SRTP that fails
//! authentication without telling us, so that case is only shown not to disturb anything.
//! Either way the room keeps forwarding.

use sfu_core::testing::InMemoryRoom;

#[test]
fn garbage_from_a_connected_publisher_is_counted_and_forwarding_continues() {
    let mut room = InMemoryRoom::new(3).expect("room connects");
    let publisher = room.publisher_addr();
    let packet = room.publisher_packet().unwrap();
    assert!(room.forward(&packet) >= 3);
    let counted = |room: &InMemoryRoom| {
        room.stats().dropped_malformed.get() + room.stats().dropped_rejected.get()
    };
    let before = counted(&room);

    let now = room.now();
    let impossible: Vec<Vec<u8>> = vec![
        vec![],
        b"hello".to_vec(),
        // RTCP (payload type 200) cut after its first 4 bytes.
        vec![0x80, 200, 0, 6],
        // A DTLS record header that lies about its length.
        vec![22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 9, 0xff, 0xff, 1],
        // RTP whose header extension claims more words than the packet has.
        [
            vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xbe, 0xde, 0x40, 0],
            vec![0; 30],
        ]
        .concat(),
    ];
    for j in &impossible {
        room.core_mut().handle_datagram(now, publisher, j);
    }
    assert_eq!(counted(&room) - before, impossible.len() as u64);

    // Well-framed RTP on an SSRC no track explains (no a=ssrc, no MID/RID extension): str0m
    // cannot place it; the session says so and it is counted as such.
    let unknown_ssrc = [
        vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef],
        vec![0x55; 200],
    ]
    .concat();
    for _ in 0..10 {
        room.core_mut()
            .handle_datagram(now, publisher, &unknown_ssrc);
    }
    assert_eq!(room.stats().dropped_unknown_ssrc.get(), 10);
    // The publisher's own SSRC with a forged SRTP tag: refused inside str0m without a word
    // (SRTP authentication), not mistaken for an unknown SSRC.
    let mut forged = packet.datagram.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    for _ in 0..10 {
        room.core_mut().handle_datagram(now, publisher, &forged);
    }
    assert_eq!(room.stats().dropped_unknown_ssrc.get(), 10);
    let _ = room.core_mut().outbox_drain().count();

    // The room still forwards: the next real packet reaches every subscriber.
    let forwarded_before = room.stats().rtp_forwarded.get();
    let packet = room.publisher_packet().unwrap();
    room.forward(&packet);
    assert_eq!(room.stats().rtp_forwarded.get() - forwarded_before, 3);
    assert_eq!(
        room.stats().sessions_failed.get(),
        0,
        "no session was dropped"
    );
}

/// Retransmissions come on the publisher's RTX SSRC, which is not a stream of its own: they
/// must not be counted as unknown SSRCs. Packets the network "lost" are NACKed by the server,
/// resent by the publisher on RTX, and reach the subscriber.
#[test]
fn retransmissions_are_not_unknown_ssrcs() {
    let mut room = InMemoryRoom::new(1).expect("room connects");
    let mut lost = 0;
    for i in 0..200 {
        let p = room.publisher_packet().unwrap();
        if i % 20 == 10 {
            lost += 1; // never reaches the server
        } else {
            let out = room.forward_collect(&p);
            room.deliver(out).unwrap();
        }
        if i % 8 == 0 {
            room.settle().unwrap();
        }
    }
    for _ in 0..20 {
        room.advance(std::time::Duration::from_millis(20)).unwrap();
    }
    let stats = room.core_mut().session_stats(0);
    let nacks_sent: u64 = stats
        .iter()
        .filter(|s| s.rtp_published > 0)
        .map(|s| s.feedback.nacks_sent)
        .sum();
    assert!(
        nacks_sent > 0,
        "the server asked for the {lost} lost packets"
    );
    assert_eq!(
        room.stats().dropped_unknown_ssrc.get(),
        0,
        "RTX counted as unknown"
    );
}
