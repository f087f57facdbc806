//! # An in-memory room for tests and benchmarks of the media plane (feature `testing`)
//!
//! [`InMemoryRoom`] connects one publisher and `N` subscribers to a single
//! [`WorkerCore`] without any socket: every participant is a full str0m [`Rtc`] client (full
//! ICE, controlling, RTP mode) with a made-up address, and datagrams are shuttled between the
//! clients and the core in memory. ICE, DTLS, SDP negotiation and SRTP are all real; only the
//! network is missing.
//!
//! The room runs on a simulated clock. It starts at [`Instant::now`] and only moves when the
//! harness moves it: [`InMemoryRoom::publisher_packet`] steps it by [`PACKET_INTERVAL`], and
//! [`InMemoryRoom::advance`] by any amount.
//!
//! The hot path under test is [`InMemoryRoom::forward`]: one SRTP datagram from the publisher
//! into [`WorkerCore::handle_datagram`] (decrypt, route, rewrite, encrypt once per subscriber),
//! then [`WorkerCore::handle_timeouts`] (as the worker thread does after its reads), then the
//! outbox is drained. Everything else (making the publisher's datagram, delivering the core's
//! output to the subscribers, the clients' own timers, STUN and RTCP) is client work; the
//! harness does it in [`InMemoryRoom::publisher_packet`], [`InMemoryRoom::deliver`] and
//! [`InMemoryRoom::settle`], which a benchmark keeps outside its timed region.
//!
//! [`InMemoryRoom::spanning`] spreads the room over several workers (one [`WorkerCore`] per
//! worker, joined by the same rings the server uses, see [`crate::relay`]): client `i`
//! (the publisher is client 0) sits on worker `i % workers`, the harness carries the workers'
//! control messages between them and drains the rings after each publisher packet.
//!
//! [`InMemoryRoom::with_simulcast`] makes the publisher send simulcast (one VP8 m-line, one
//! send layer per RID, each with its own SSRC, sequence numbers, timestamps and VP8 picture
//! ids: see [`PublisherLayer`]); [`InMemoryRoom::simulcast_frame`] sends one frame of every
//! layer the way a browser does, answering the core's keyframe requests. Every client records
//! the RTP it decrypts ([`Client::received`]), the layer switches the server reports
//! ([`Client::layer_switches`]) and the keyframe requests it gets, so tests can check what a
//! subscriber really sees.
//!
//! ```no_run
//! let mut room = sfu_core::testing::InMemoryRoom::new(10).unwrap();
//! let packet = room.publisher_packet().unwrap();
//! // 10 SRTP datagrams, one per subscriber, sometimes plus an RTCP packet of the core.
//! let out = room.forward(&packet);
//! assert!(out >= 10);
//! room.settle().unwrap(); // keep ICE, RTCP and the clients' timers going
//! ```
//!
//!
//! The harness is split by job: [`client`] (one str0m client and what it records),
//! [`room`] (building the room and reaching its parts) and [`traffic`] (publishing, forwarding,
//! delivering and the simulated clock).

mod client;
mod room;
mod traffic;

pub use client::{Client, LayerSwitch, PublisherLayer, PublisherPacket, ReceivedRtp};
pub use room::InMemoryRoom;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::layers::SwitchReason;
use crate::link::Link;
use crate::relay::{mesh, Inter, RELAY_CAPACITY};
use crate::session::{init_crypto, new_certificate};
use crate::stats::WorkerStats;
use crate::worker::WorkerCore;
use crate::{peer_events, vp8, EventReceiver, Grants, ParticipantId, PeerEvent, TrackInfo};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// Errors while building or driving the room (str0m, sfu-core or harness errors, boxed).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Simulated time between two publisher packets: 250 packets/s, about 2.4 Mbit/s of
/// 1200-byte packets, a typical camera stream.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(4);

/// Packets per video frame (the last one carries the marker bit): 8 x 4 ms = 31 frames/s.
pub const PACKETS_PER_FRAME: u64 = 8;

/// Size of the RTP payload the publisher sends (VP8 payload descriptor included).
pub const PAYLOAD_SIZE: usize = 1200;

/// Room name used for every participant.
pub const ROOM: &str = "bench";

/// The worker's media address (it only appears in SDP candidates and datagram headers).
pub const SERVER_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 3478);

/// The address of worker `w` (worker 0 is [`SERVER_ADDR`]).
pub fn worker_addr(w: usize) -> SocketAddr {
    SocketAddr::new(SERVER_ADDR.ip(), SERVER_ADDR.port() + w as u16)
}

/// The longest [`InMemoryRoom::new`] waits (simulated) for ICE, DTLS and negotiation.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The smallest step [`InMemoryRoom::run_for`] moves the clock by.
pub const MIN_STEP: Duration = Duration::from_millis(1);

/// Simulated time between two frames of a simulcast publisher: 30 frames/s.
pub const FRAME_INTERVAL: Duration = Duration::from_micros(33_333);

/// RTP timestamp step between two frames of a simulcast layer (90 kHz, 30 frames/s).
pub const FRAME_TICKS: u32 = 3_000;

/// Frame size of each simulcast layer, lowest first: a 1280x720 capture at scale 1/4, 1/2
/// and 1 (what the web client sends). With fewer than three RIDs the top ones are used.
pub const SIMULCAST_SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];

/// Payload bytes of each packet of a simulcast layer, lowest first. At one packet per frame
/// and 30 frames/s that is 60, 120 and 240 kbit/s.
pub const SIMULCAST_PAYLOAD_SIZES: [usize; 3] = [250, 500, 1_000];

/// Per-layer starting points of the simulcast publisher's counters, lowest layer first. They
/// are unrelated from layer to layer (as in a browser) and some wrap soon, so a subscriber
/// only sees continuous numbers if the server rewrites them: sequence numbers (f crosses
/// 65 536 after 536 packets), RTP timestamps (f wraps 32 bits after ~322 frames), 15-bit VP8
/// picture ids (q wraps after 16 frames) and TL0PICIDX.
const LAYER_SEQ_BASE: [u64; 3] = [1_000, 20_000, 65_000];
const LAYER_TS_BASE: [u32; 3] = [90_000, 1_234_567, 4_294_000_000];
const LAYER_PICTURE_ID_BASE: [u16; 3] = [0x7ff0, 1_000, 20_000];
const LAYER_TL0_BASE: [u8; 3] = [250, 0, 100];

/// The last payload byte of a simulcast publisher's packet: `LAYER_TAG | layer index`, so a
/// subscriber can tell which layer it received (see [`ReceivedRtp::layer_tag`]).
const LAYER_TAG: u8 = 0xa0;

/// True for a STUN message: first byte 0..=3 (RFC 7983 demultiplexing).
pub fn is_stun(data: &[u8]) -> bool {
    data.first().is_some_and(|b| *b < 4)
}

/// True for an RTP (not RTCP) packet: version 2 and a second byte outside RTCP's packet types
/// 192..=223 (RFC 5761 demultiplexing). STUN and DTLS never start with version bits 2.
pub fn is_rtp(data: &[u8]) -> bool {
    data.len() >= 12 && data[0] >> 6 == 2 && !(192..=223).contains(&data[1])
}

/// True for an RTP packet without the padding bit: forwarded media, not the padding that the
/// server's bandwidth estimator sends to probe (str0m sends it as RTX packets with P=1). The
/// header is in clear in SRTP, so this works on encrypted datagrams.
pub fn is_media_rtp(data: &[u8]) -> bool {
    is_rtp(data) && data[0] & 0x20 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// One publisher packet becomes exactly one SRTP datagram per subscriber, each to a
    /// different subscriber, and every subscriber decrypts the publisher's payload from it.
    #[test]
    fn one_packet_fans_out_to_every_subscriber() {
        const N: usize = 5;
        let mut room = InMemoryRoom::new(N).expect("room connects");
        // Run a little so the keyframe requests and first RTCP have gone by.
        room.advance(Duration::from_millis(50)).unwrap();

        for round in 0..3 {
            let packet = room.publisher_packet().unwrap();
            let out = room.forward_collect(&packet);
            let rtp: Vec<&(SocketAddr, Vec<u8>)> =
                out.iter().filter(|(_, d)| is_media_rtp(d)).collect();
            assert_eq!(
                rtp.len(),
                N,
                "round {round}: RTP datagrams out for one packet in"
            );
            let dests: HashSet<SocketAddr> = rtp.iter().map(|(a, _)| *a).collect();
            let subs: HashSet<SocketAddr> = room.subscriber_addrs().into_iter().collect();
            assert_eq!(
                dests, subs,
                "round {round}: one datagram per distinct subscriber"
            );
            for (_, d) in &rtp {
                // SRTP with an AEAD-GCM profile: header + payload + 16-byte tag (an
                // AES_CM_HMAC_SHA1_80 profile would add 10), and no cleartext.
                assert_eq!(srtp_trailer_len(d), 16, "SRTP authentication tag length");
                assert!(
                    !d.windows(64).any(|w| w.iter().all(|b| *b == 0)),
                    "the payload's zero filler appears in clear: not encrypted"
                );
            }

            let before: Vec<u64> = room
                .subscriber_clients()
                .iter()
                .map(|c| c.rtp_received)
                .collect();
            room.deliver(out).unwrap();
            for (i, c) in room.subscriber_clients().iter().enumerate() {
                assert_eq!(
                    c.rtp_received,
                    before[i] + 1,
                    "subscriber {i} decrypted the packet"
                );
                let payload = c.last_rtp_payload.as_deref().unwrap();
                assert_eq!(payload.len(), PAYLOAD_SIZE);
                assert_eq!(payload[0] & 0x80, 0x80, "VP8 descriptor survives the trip");
            }
            room.settle().unwrap();
        }
        assert_eq!(room.stats().rtp_forwarded.get(), 3 * N as u64);
    }

    /// 20 simulated seconds of bench-like traffic (2.4 Mbit/s): every packet must fan out to
    /// all N subscribers at once. With `feedback` the subscribers receive the media and the
    /// room settles every 16 packets (64 ms), so their TWCC feedback reaches the core's
    /// bandwidth estimator about as often as a browser's; without, they never see the media
    /// and the room settles every 64 packets, as in the fanout bench.
    fn fanout_over_time(feedback: bool) {
        const N: usize = 3;
        let mut room = InMemoryRoom::new(N).expect("room connects");
        let packets = (20_000 / PACKET_INTERVAL.as_millis()) as usize;
        let mut rtcp = 0;
        for i in 0..packets {
            let p = room.publisher_packet().unwrap();
            let out = room.forward_collect(&p);
            let rtp = out.iter().filter(|(_, d)| is_media_rtp(d)).count();
            assert_eq!(rtp, N, "packet {i}");
            rtcp += out.iter().filter(|(_, d)| !is_rtp(d)).count();
            if feedback {
                room.deliver(out).unwrap();
            }
            let settle_every = if feedback { 16 } else { 64 };
            if i % settle_every == settle_every - 1 {
                room.settle().unwrap();
            }
        }
        // A few RTCP packets (sender reports, feedback) beside the media; the estimator's
        // padding (RTP with P=1) is not counted.
        assert!(rtcp < packets / 4, "RTCP datagrams {rtcp}");
        if feedback {
            for (i, c) in room.subscriber_clients().iter().enumerate() {
                assert_eq!(
                    c.rtp_received, packets as u64,
                    "subscriber {i} decrypted all"
                );
            }
        }
    }

    #[test]
    fn fanout_holds_over_time() {
        fanout_over_time(true);
    }

    /// Bytes after header and payload of an SRTP datagram of ours: the authentication tag.
    fn srtp_trailer_len(d: &[u8]) -> usize {
        let mut header = 12 + 4 * (d[0] & 0x0f) as usize;
        if d[0] & 0x10 != 0 {
            let words = u16::from_be_bytes([d[header + 2], d[header + 3]]) as usize;
            header += 4 + 4 * words;
        }
        d.len() - header - PAYLOAD_SIZE
    }

    #[test]
    fn rtp_rtcp_demux() {
        assert!(is_rtp(&[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(is_rtp(&[0x90, 0x80 | 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!is_rtp(&[0x80, 200, 0, 6, 0, 0, 0, 0, 0, 0, 0, 1])); // SR
        assert!(!is_rtp(&[0x81, 206, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1])); // PLI
        assert!(!is_rtp(&[
            0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0
        ])); // STUN
        assert!(!is_rtp(&[22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0])); // DTLS
    }
}
