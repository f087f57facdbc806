//! # bench: an in-memory room for benchmarking the GAX media plane
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
//! ```no_run
//! let mut room = bench::InMemoryRoom::new(10).unwrap();
//! let packet = room.publisher_packet().unwrap();
//! // 10 SRTP datagrams, one per subscriber, sometimes plus an RTCP packet of the core.
//! let out = room.forward(&packet);
//! assert!(out >= 10);
//! room.settle().unwrap(); // keep ICE, RTCP and the clients' timers going
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfu_core::session::{init_crypto, new_certificate};
use sfu_core::stats::WorkerStats;
use sfu_core::worker::WorkerCore;
use sfu_core::{Grants, ParticipantId, PeerEvent};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

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

/// The longest [`InMemoryRoom::new`] waits (simulated) for ICE, DTLS and negotiation.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A publisher packet, ready to be fed to the core: its SRTP datagram and the simulated time
/// at which it arrives.
#[derive(Debug, Clone)]
pub struct PublisherPacket {
    pub at: Instant,
    pub datagram: Vec<u8>,
}

/// One participant: a str0m client with its own address and the server's events for it.
pub struct Client {
    pub id: ParticipantId,
    /// The client's fake address (its host candidate, the source of its datagrams).
    pub addr: SocketAddr,
    pub rtc: Rtc,
    events: UnboundedReceiver<PeerEvent>,
    /// str0m on the client side reported `Event::Connected`.
    pub connected: bool,
    /// The server reported `PeerEvent::Connected` for this participant.
    pub server_connected: bool,
    /// Server offers this client answered.
    pub offers_answered: usize,
    /// RTP packets the client decrypted (subscribers: forwarded media).
    pub rtp_received: u64,
    /// Payload of the last RTP packet the client decrypted.
    pub last_rtp_payload: Option<Arc<[u8]>>,
}

impl Client {
    fn new(
        index: usize,
        now: Instant,
        events: UnboundedReceiver<PeerEvent>,
    ) -> Result<Self, Error> {
        let id = ParticipantId(index as u64 + 1);
        // 10.1.x.y: one address per client, never touching a real interface.
        let ip = Ipv4Addr::new(10, 1, (index / 250) as u8, (index % 250) as u8 + 1);
        let addr = SocketAddr::new(IpAddr::V4(ip), 40_000);
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, false)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        Ok(Client {
            id,
            addr,
            rtc,
            events,
            connected: false,
            server_connected: false,
            offers_answered: 0,
            rtp_received: 0,
            last_rtp_payload: None,
        })
    }

    /// Polls str0m until it waits: datagrams go to `to_core`, events update the client.
    /// Returns the first RTP datagram if `want_rtp`, leaving it out of `to_core`.
    fn drive(
        &mut self,
        now: Instant,
        to_core: &mut VecDeque<(SocketAddr, Vec<u8>)>,
        mut want_rtp: bool,
    ) -> Result<Option<Vec<u8>>, Error> {
        let mut rtp = None;
        let mut immediate = 0;
        loop {
            match self.rtc.poll_output()? {
                Output::Transmit(t) => {
                    let data: Vec<u8> = t.contents.into();
                    if want_rtp && is_rtp(&data) {
                        want_rtp = false;
                        rtp = Some(data);
                    } else {
                        to_core.push_back((t.source, data));
                    }
                }
                Output::Event(ev) => match ev {
                    Event::Connected => self.connected = true,
                    Event::RtpPacket(p) => {
                        self.rtp_received += 1;
                        self.last_rtp_payload = Some(p.payload);
                    }
                    Event::Closed => return Err(format!("client {} closed", self.id).into()),
                    _ => {}
                },
                Output::Timeout(t) => {
                    // str0m asks for an immediate timeout after new media (its pacer refreshes
                    // its queue snapshot); give it a few, then stop.
                    if t <= now && immediate < 8 {
                        immediate += 1;
                        self.rtc.handle_input(Input::Timeout(now))?;
                        continue;
                    }
                    return Ok(rtp);
                }
            }
        }
    }

    /// Feeds one datagram from the server.
    fn receive(&mut self, now: Instant, data: &[u8]) -> Result<(), Error> {
        self.rtc.handle_input(Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: SERVER_ADDR,
                destination: self.addr,
                contents: data.try_into()?,
            },
        ))?;
        Ok(())
    }
}

/// One publisher (a VP8 video track) and `N` subscribers of it on one [`WorkerCore`], all in
/// memory. See the [crate docs](crate).
pub struct InMemoryRoom {
    core: WorkerCore,
    stats: Arc<WorkerStats>,
    now: Instant,
    /// `clients[0]` is the publisher, the rest are subscribers.
    clients: Vec<Client>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Client datagrams waiting for the core (delivered by [`InMemoryRoom::settle`]).
    to_core: VecDeque<(SocketAddr, Vec<u8>)>,
    video_mid: Mid,
    vp8_pt: Pt,
    /// Next publisher sequence number (extended, str0m tracks the rollover counter).
    seq: u64,
    picture_id: u16,
}

impl InMemoryRoom {
    /// Builds the room and connects everyone: the publisher joins with a sendonly VP8 m-line,
    /// then each subscriber joins (a recvonly audio m-line, so its offer is not empty) and
    /// answers the server offer that adds the publisher's video. Returns once every client and
    /// the server report `Connected` and every subscriber answered its server offer.
    pub fn new(subscribers: usize) -> Result<Self, Error> {
        init_crypto();
        let now = Instant::now();
        let stats = Arc::new(WorkerStats::default());
        let core = WorkerCore::new(SERVER_ADDR, new_certificate()?, stats.clone());
        let mut room = InMemoryRoom {
            core,
            stats,
            now,
            clients: Vec::with_capacity(subscribers + 1),
            by_addr: HashMap::new(),
            to_core: VecDeque::new(),
            video_mid: Mid::from("0"),
            vp8_pt: Pt::from(0),
            seq: 1,
            picture_id: 0,
        };

        room.video_mid = room.join(MediaKind::Video, Direction::SendOnly)?;
        let publisher = &room.clients[0].rtc;
        let remote = publisher
            .media(room.video_mid)
            .ok_or("publisher has no video media")?
            .remote_pts();
        room.vp8_pt = publisher
            .codec_config()
            .find(|p| p.spec().codec == Codec::Vp8 && remote.contains(&p.pt()))
            .ok_or("VP8 was not negotiated for the publisher")?
            .pt();

        for _ in 0..subscribers {
            room.join(MediaKind::Audio, Direction::RecvOnly)?;
        }

        let deadline = room.now + CONNECT_TIMEOUT;
        room.settle()?;
        while !room.ready() {
            if room.now >= deadline {
                return Err("clients did not connect within 30 s (simulated)".into());
            }
            room.advance(Duration::from_millis(10))?;
        }
        Ok(room)
    }

    /// One client makes an offer with one m-line and joins; returns the mid of that m-line.
    fn join(&mut self, kind: MediaKind, dir: Direction) -> Result<Mid, Error> {
        let index = self.clients.len();
        let (tx, rx) = unbounded_channel();
        let mut client = Client::new(index, self.now, rx)?;
        let mut api = client.rtc.sdp_api();
        let mid = api.add_media(kind, dir, None, None, None);
        let (offer, pending) = api.apply().ok_or("no offer to make")?;
        let joined = self.core.join(
            self.now,
            ROOM,
            client.id,
            Grants::default(),
            &offer.to_sdp_string(),
            tx,
        )?;
        client
            .rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&joined.answer)?)?;
        self.by_addr.insert(client.addr, index);
        self.clients.push(client);
        Ok(mid)
    }

    fn ready(&self) -> bool {
        self.clients
            .iter()
            .all(|c| c.connected && c.server_connected)
            && self.clients[1..].iter().all(|c| c.offers_answered > 0)
    }

    /// The current simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Number of subscribers.
    pub fn subscribers(&self) -> usize {
        self.clients.len() - 1
    }

    /// The publisher's address.
    pub fn publisher_addr(&self) -> SocketAddr {
        self.clients[0].addr
    }

    /// The subscribers' addresses, in join order.
    pub fn subscriber_addrs(&self) -> Vec<SocketAddr> {
        self.clients[1..].iter().map(|c| c.addr).collect()
    }

    /// The subscriber clients, in join order.
    pub fn subscriber_clients(&self) -> &[Client] {
        &self.clients[1..]
    }

    /// The worker's counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// The core under test.
    pub fn core_mut(&mut self) -> &mut WorkerCore {
        &mut self.core
    }

    /// The RTP payload of the next publisher packet: a VP8 payload descriptor (RFC 7741, with a
    /// 15-bit picture id), a VP8 inter-frame header on the first packet of each frame, then
    /// filler up to [`PAYLOAD_SIZE`] bytes.
    fn vp8_payload(&self, first_of_frame: bool) -> Vec<u8> {
        let mut p = vec![0u8; PAYLOAD_SIZE];
        p[0] = if first_of_frame { 0x90 } else { 0x80 }; // X, S (start of partition 0)
        p[1] = 0x80; // I: picture id present
        p[2] = 0x80 | ((self.picture_id >> 8) as u8 & 0x7f); // M: 15-bit picture id
        p[3] = self.picture_id as u8;
        if first_of_frame {
            p[4] = 0x11; // show_frame, P = 1 (inter frame)
        }
        p
    }

    /// Advances the clock by [`PACKET_INTERVAL`], has the publisher write one VP8 RTP packet
    /// and returns its SRTP datagram, to be fed with [`InMemoryRoom::forward`]. Other datagrams
    /// the publisher sends meanwhile (STUN, RTCP) wait for [`InMemoryRoom::settle`].
    pub fn publisher_packet(&mut self) -> Result<PublisherPacket, Error> {
        self.now += PACKET_INTERVAL;
        let now = self.now;
        let seq = self.seq;
        self.seq += 1;
        let index_in_frame = (seq - 1) % PACKETS_PER_FRAME;
        let frame = (seq - 1) / PACKETS_PER_FRAME;
        self.picture_id = (frame & 0x7fff) as u16;
        let payload = self.vp8_payload(index_in_frame == 0);
        // 90 kHz clock, one frame every PACKETS_PER_FRAME packets.
        let frame_ticks = PACKET_INTERVAL.as_micros() as u64 * PACKETS_PER_FRAME * 90 / 1000;
        let rtp_time = (frame * frame_ticks) as u32;
        let marker = index_in_frame == PACKETS_PER_FRAME - 1;
        let mid = self.video_mid;
        let pt = self.vp8_pt;
        let publisher = &mut self.clients[0];
        publisher.rtc.handle_input(Input::Timeout(now))?;
        publisher
            .rtc
            .direct_api()
            .stream_tx_by_mid(mid, None)
            .ok_or("the publisher has no send stream")?
            .write_rtp(
                RtpWrite::new(pt, SeqNo::from(seq), rtp_time, now, payload)
                    .marker(marker)
                    .nackable(true),
            );
        let datagram = publisher
            .drive(now, &mut self.to_core, true)?
            .ok_or("the publisher sent no RTP")?;
        Ok(PublisherPacket { at: now, datagram })
    }

    /// The measured operation: the core receives one publisher datagram (at `packet.at`),
    /// forwards it, runs its due timers, and the outbox is drained and dropped. Returns the
    /// number of datagrams the core produced (N for N subscribers, plus the odd RTCP).
    #[inline]
    pub fn forward(&mut self, packet: &PublisherPacket) -> usize {
        let from = self.clients[0].addr;
        self.core.handle_datagram(packet.at, from, &packet.datagram);
        self.core.handle_timeouts(packet.at);
        self.core.outbox_drain().count()
    }

    /// Like [`InMemoryRoom::forward`], but returns the core's datagrams as
    /// (destination, bytes) instead of dropping them.
    pub fn forward_collect(&mut self, packet: &PublisherPacket) -> Vec<(SocketAddr, Vec<u8>)> {
        let from = self.clients[0].addr;
        self.core.handle_datagram(packet.at, from, &packet.datagram);
        self.core.handle_timeouts(packet.at);
        self.core.outbox_drain().collect()
    }

    /// Hands datagrams from the core to the clients they are addressed to (at the current
    /// time), and lets the clients process them.
    pub fn deliver(&mut self, datagrams: Vec<(SocketAddr, Vec<u8>)>) -> Result<(), Error> {
        let now = self.now;
        for (to, data) in datagrams {
            let Some(&i) = self.by_addr.get(&to) else {
                return Err(format!("the core sent a datagram to unknown address {to}").into());
            };
            self.clients[i].receive(now, &data)?;
        }
        for c in &mut self.clients {
            c.drive(now, &mut self.to_core, false)?;
        }
        Ok(())
    }

    /// Moves the clock forward by `dt`, then [`InMemoryRoom::settle`]s.
    pub fn advance(&mut self, dt: Duration) -> Result<(), Error> {
        self.now += dt;
        self.settle()
    }

    /// Runs everyone's timers at the current time and shuttles datagrams between the clients
    /// and the core until nobody has anything left to send; server offers are answered on the
    /// way. This is the client side and the background (STUN, RTCP, DTLS) of the room, not the
    /// hot path: benches call it outside their timed region.
    pub fn settle(&mut self) -> Result<(), Error> {
        let now = self.now;
        for c in &mut self.clients {
            c.rtc.handle_input(Input::Timeout(now))?;
        }
        self.core.handle_timeouts(now);
        for _ in 0..1000 {
            let mut moved = 0;
            for i in 0..self.clients.len() {
                self.clients[i].drive(now, &mut self.to_core, false)?;
                self.server_events(i)?;
            }
            while let Some((from, data)) = self.to_core.pop_front() {
                self.core.handle_datagram(now, from, &data);
                moved += 1;
            }
            self.core.handle_timeouts(now);
            let out: Vec<_> = self.core.outbox_drain().collect();
            moved += out.len();
            for (to, data) in out {
                let Some(&i) = self.by_addr.get(&to) else {
                    return Err(format!("the core sent a datagram to unknown address {to}").into());
                };
                self.clients[i].receive(now, &data)?;
            }
            if moved == 0 {
                return Ok(());
            }
        }
        Err("the room did not settle after 1000 rounds".into())
    }

    /// Handles what the server told client `i`: answers offers, notes connection.
    fn server_events(&mut self, i: usize) -> Result<(), Error> {
        let now = self.now;
        while let Ok(ev) = self.clients[i].events.try_recv() {
            let c = &mut self.clients[i];
            match ev {
                PeerEvent::Offer { sdp, .. } => {
                    let answer = c
                        .rtc
                        .sdp_api()
                        .accept_offer(SdpOffer::from_sdp_string(&sdp)?)?;
                    let id = c.id;
                    c.offers_answered += 1;
                    self.core.answer(now, id, &answer.to_sdp_string())?;
                }
                PeerEvent::Connected => c.server_connected = true,
                // The publisher's own track is routed: signaling news, nothing to do here.
                PeerEvent::Published(_) | PeerEvent::LayerSwitched { .. } | PeerEvent::ActiveSpeaker(_) => {}
                PeerEvent::Closed => return Err(format!("the server closed {}", c.id).into()),
            }
        }
        Ok(())
    }
}

/// True for an RTP (not RTCP) packet: version 2 and a second byte outside RTCP's packet types
/// 192..=223 (RFC 5761 demultiplexing). STUN and DTLS never start with version bits 2.
pub fn is_rtp(data: &[u8]) -> bool {
    data.len() >= 12 && data[0] >> 6 == 2 && !(192..=223).contains(&data[1])
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
            let rtp: Vec<&(SocketAddr, Vec<u8>)> = out.iter().filter(|(_, d)| is_rtp(d)).collect();
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

    /// Keeps forwarding for 20 simulated seconds with the subscribers never seeing the media
    /// (as in the bench) and checks that every packet still fans out to all of them.
    #[test]
    fn fanout_holds_over_time_without_feedback() {
        const N: usize = 3;
        let mut room = InMemoryRoom::new(N).expect("room connects");
        let packets = (20_000 / PACKET_INTERVAL.as_millis()) as usize;
        let mut total = 0;
        for i in 0..packets {
            let p = room.publisher_packet().unwrap();
            let out = room.forward_collect(&p);
            let rtp = out.iter().filter(|(_, d)| is_rtp(d)).count();
            assert_eq!(rtp, N, "packet {i}");
            total += out.len();
            if i % 64 == 63 {
                room.settle().unwrap();
            }
        }
        // A few RTCP sender reports on top of the RTP.
        assert!(
            total >= packets * N && total < packets * N + packets / 4,
            "total {total}"
        );
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
