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
//! [`InMemoryRoom::spanning`] spreads the room over several workers (one [`WorkerCore`] per
//! worker, joined by the same rings the server uses, see [`sfu_core::relay`]): client `i`
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
//! let mut room = bench::InMemoryRoom::new(10).unwrap();
//! let packet = room.publisher_packet().unwrap();
//! // 10 SRTP datagrams, one per subscriber, sometimes plus an RTCP packet of the core.
//! let out = room.forward(&packet);
//! assert!(out >= 10);
//! room.settle().unwrap(); // keep ICE, RTCP and the clients' timers going
//! ```
//!
//! [`report`] holds what the whole-server load generator (`gax-loadgen`) records and how runs
//! are shown: the JSON run, its PNG plot, and the side-by-side table against Janus.

pub mod report;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfu_core::layers::SwitchReason;
use sfu_core::relay::{mesh, Inter, RELAY_CAPACITY};
use sfu_core::session::{init_crypto, new_certificate};
use sfu_core::stats::WorkerStats;
use sfu_core::worker::WorkerCore;
use sfu_core::{vp8, Grants, ParticipantId, PeerEvent, TrackInfo};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Rid, Simulcast, SimulcastLayer};
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

/// One simulcast layer the publisher sends. Like a browser's encoder, each layer has its own
/// SSRC (str0m allocates it), sequence numbers, RTP timestamps, VP8 picture ids and
/// TL0PICIDX. Frames alternate between temporal layers 0 and 1 (TL0PICIDX counts the
/// TID-0 frames); a keyframe is always TID 0 and restarts the pattern.
#[derive(Debug, Clone)]
pub struct PublisherLayer {
    pub rid: Rid,
    pub width: u16,
    pub height: u16,
    /// Payload bytes of each packet.
    pub payload_size: usize,
    /// Sequence number of the next packet (extended: str0m tracks the rollover counter).
    pub next_seq: u64,
    /// RTP timestamp of the next frame.
    pub next_timestamp: u32,
    /// VP8 picture id of the next frame (15 bits).
    pub next_picture_id: u16,
    /// TL0PICIDX of the last TID-0 frame.
    pub tl0_pic_idx: u8,
    /// Frames sent since the last keyframe (`None` before the first keyframe).
    since_keyframe: Option<u64>,
    /// Frames sent.
    pub frames: u64,
    /// Keyframes sent.
    pub keyframes: u64,
}

impl PublisherLayer {
    fn new(rid: &str, index: usize, count: usize) -> Self {
        let slot = (3 - count.min(3)) + index.min(2);
        let (width, height) = SIMULCAST_SIZES[slot];
        PublisherLayer {
            rid: Rid::from(rid),
            width,
            height,
            payload_size: SIMULCAST_PAYLOAD_SIZES[slot],
            next_seq: LAYER_SEQ_BASE[slot],
            next_timestamp: LAYER_TS_BASE[slot],
            next_picture_id: LAYER_PICTURE_ID_BASE[slot],
            tl0_pic_idx: LAYER_TL0_BASE[slot],
            since_keyframe: None,
            frames: 0,
            keyframes: 0,
        }
    }
}

/// One RTP packet a client decrypted, as the client saw it (after the server's rewriting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedRtp {
    /// Simulated time at which the client processed it.
    pub at: Instant,
    /// Extended sequence number.
    pub seq: u64,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload_len: usize,
    /// From the VP8 payload descriptor (parsed with [`sfu_core::vp8::parse`]).
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
    pub tid: Option<u8>,
    /// S=1 and partition 0: the packet starts a frame.
    pub start_of_frame: bool,
    /// The packet starts a VP8 keyframe.
    pub keyframe: bool,
    /// A keyframe's width and height.
    pub size: Option<(u16, u16)>,
    /// Which of the simulcast publisher's layers (index into its RIDs) the packet came from,
    /// read from the tag the harness writes in the payload's last byte; `None` for packets of
    /// a single-stream publisher.
    pub layer_tag: Option<u8>,
}

impl ReceivedRtp {
    fn parse(at: Instant, p: &str0m::rtp::RtpPacket) -> Self {
        let info = vp8::parse(&p.payload).unwrap_or_default();
        let b0 = p.payload.first().copied().unwrap_or(0);
        let last = p.payload.last().copied().unwrap_or(0);
        ReceivedRtp {
            at,
            seq: *p.seq_no,
            timestamp: p.header.timestamp,
            ssrc: *p.header.ssrc,
            marker: p.header.marker,
            payload_len: p.payload.len(),
            picture_id: info.picture_id,
            tl0_pic_idx: info.tl0_pic_idx,
            tid: info.tid,
            start_of_frame: b0 & 0x10 != 0 && b0 & 0x07 == 0,
            keyframe: info.keyframe,
            size: info.size,
            layer_tag: (last & 0xf0 == LAYER_TAG).then_some(last & 0x0f),
        }
    }
}

/// A `PeerEvent::LayerSwitched` the server sent to a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSwitch {
    pub mid: String,
    pub layer: &'static str,
    pub reason: SwitchReason,
    pub width: Option<u16>,
    /// How many RTP packets the client had received when the harness read the event.
    pub received_before: usize,
}

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
    /// The worker this client is placed on, and that worker's address.
    pub worker: usize,
    server: SocketAddr,
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
    /// Every RTP packet the client decrypted, in order (subscribers: forwarded media).
    pub received: Vec<ReceivedRtp>,
    /// Tracks the server's offers added to this client (subscribers: the publisher's video).
    pub tracks: Vec<TrackInfo>,
    /// Layer switches the server reported to this client, in order.
    pub layer_switches: Vec<LayerSwitch>,
    /// Keyframe requests (PLI/FIR) the client received and nobody consumed yet: the RID of
    /// the layer asked for, `None` for the whole track (publisher).
    pub keyframe_requests: Vec<Option<Rid>>,
    /// Keyframe requests the client received in total.
    pub keyframe_requests_received: u64,
    /// The client vanished ([`InMemoryRoom::silence`]): nothing it sends reaches the core,
    /// nothing reaches it, and it no longer runs.
    pub silent: bool,
    /// The server reported `PeerEvent::Closed` for this (silenced) client.
    pub closed_by_server: bool,
}

impl Client {
    fn new(
        index: usize,
        worker: usize,
        now: Instant,
        events: UnboundedReceiver<PeerEvent>,
    ) -> Result<Self, Error> {
        let id = ParticipantId(index as u64 + 1);
        // 10.1.x.y: one address per client, never touching a real interface.
        let ip = Ipv4Addr::new(10, 1, (index / 250) as u8, (index % 250) as u8 + 1);
        let addr = SocketAddr::new(IpAddr::V4(ip), 40_000);
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .enable_opus(true, false);
        // Never give up on unanswered keepalives: with [`InMemoryRoom::withhold_client_stun`]
        // the client then stands for one that sends no binding requests after connecting.
        config.set_max_stun_retransmits(1000);
        let mut rtc = config.build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp")?);
        Ok(Client {
            id,
            worker,
            server: worker_addr(worker),
            addr,
            rtc,
            events,
            connected: false,
            server_connected: false,
            offers_answered: 0,
            rtp_received: 0,
            last_rtp_payload: None,
            received: Vec::new(),
            tracks: Vec::new(),
            layer_switches: Vec::new(),
            keyframe_requests: Vec::new(),
            keyframe_requests_received: 0,
            silent: false,
            closed_by_server: false,
        })
    }

    /// The mid of the first video track the server added to this client (a subscriber's view
    /// of the publisher's video), as `WorkerCore::set_video_size` and friends want it.
    pub fn video_mid(&self) -> Option<&str> {
        self.tracks
            .iter()
            .find(|t| t.kind == sfu_core::Kind::Video)
            .map(|t| t.mid.as_str())
    }

    /// Polls str0m until it waits: datagrams go to `to_core`, events update the client.
    /// Returns the first RTP datagram if `want_rtp`, leaving it out of `to_core`. A silent
    /// client does nothing.
    fn drive(
        &mut self,
        now: Instant,
        to_core: &mut VecDeque<(SocketAddr, Vec<u8>)>,
        mut want_rtp: bool,
    ) -> Result<Option<Vec<u8>>, Error> {
        if self.silent {
            return Ok(None);
        }
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
                        self.received.push(ReceivedRtp::parse(now, &p));
                        self.last_rtp_payload = Some(p.payload);
                    }
                    Event::KeyframeRequest(r) => {
                        self.keyframe_requests_received += 1;
                        self.keyframe_requests.push(r.rid);
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

    /// Feeds one datagram from the server (a silent client never gets it).
    fn receive(&mut self, now: Instant, data: &[u8]) -> Result<(), Error> {
        if self.silent {
            return Ok(());
        }
        self.rtc.handle_input(Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: self.server,
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
    /// One core per worker; the publisher is on worker 0.
    cores: Vec<WorkerCore>,
    stats: Vec<Arc<WorkerStats>>,
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
    /// The simulcast publisher's layers (empty for a single-stream publisher).
    layers: Vec<PublisherLayer>,
    /// Per layer: a keyframe request reached the publisher and was not served yet.
    keyframe_pending: Vec<bool>,
    /// STUN from the clients is dropped before the core ([`Self::withhold_client_stun`]).
    withhold_stun: bool,
}

impl InMemoryRoom {
    /// Builds the room and connects everyone: the publisher joins with a sendonly VP8 m-line,
    /// then each subscriber joins (a recvonly audio m-line, so its offer is not empty) and
    /// answers the server offer that adds the publisher's video. Returns once every client and
    /// the server report `Connected` and every subscriber answered its server offer.
    pub fn new(subscribers: usize) -> Result<Self, Error> {
        Self::build(subscribers, &[], 1)
    }

    /// Like [`InMemoryRoom::new`] (or [`InMemoryRoom::with_simulcast`] when `rids` is not
    /// empty), with the room spread over `workers` workers: client `i` sits on worker
    /// `i % workers`, so the publisher is on worker 0 and subscriber `j` on `(j + 1) % workers`.
    pub fn spanning(subscribers: usize, rids: &[&str], workers: usize) -> Result<Self, Error> {
        if workers == 0 || workers > 16 || rids.len() > 3 {
            return Err("1 to 16 workers, 0 to 3 RIDs".into());
        }
        Self::build(subscribers, rids, workers)
    }

    /// Like [`InMemoryRoom::new`], but the publisher's sendonly VP8 m-line offers simulcast
    /// send layers with these RIDs, lowest first (e.g. `&["q", "h", "f"]`). Its packets are
    /// made with [`InMemoryRoom::publisher_frame_on`] / [`InMemoryRoom::publisher_packet_on`]
    /// or a whole frame of every layer with [`InMemoryRoom::simulcast_frame`]; each layer keeps
    /// its own counters (see [`PublisherLayer`]).
    pub fn with_simulcast(subscribers: usize, rids: &[&str]) -> Result<Self, Error> {
        if rids.is_empty() || rids.len() > 3 {
            return Err("simulcast needs 1 to 3 RIDs".into());
        }
        Self::build(subscribers, rids, 1)
    }

    fn build(subscribers: usize, rids: &[&str], workers: usize) -> Result<Self, Error> {
        init_crypto();
        let now = Instant::now();
        let cert = new_certificate()?;
        let mut cores = Vec::with_capacity(workers);
        let mut stats = Vec::with_capacity(workers);
        for (w, links) in mesh(workers, RELAY_CAPACITY).into_iter().enumerate() {
            let s = Arc::new(WorkerStats::default());
            cores.push(WorkerCore::new(worker_addr(w), cert.clone(), s.clone()).with_links(links));
            stats.push(s);
        }
        let mut room = InMemoryRoom {
            cores,
            stats,
            now,
            clients: Vec::with_capacity(subscribers + 1),
            by_addr: HashMap::new(),
            to_core: VecDeque::new(),
            video_mid: Mid::from("0"),
            vp8_pt: Pt::from(0),
            seq: 1,
            picture_id: 0,
            layers: rids
                .iter()
                .enumerate()
                .map(|(i, rid)| PublisherLayer::new(rid, i, rids.len()))
                .collect(),
            keyframe_pending: vec![false; rids.len()],
            withhold_stun: false,
        };

        let simulcast = (!rids.is_empty()).then(|| {
            let mut s = Simulcast::new();
            for rid in rids {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        room.video_mid = room.join(MediaKind::Video, Direction::SendOnly, simulcast)?;
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
            room.join(MediaKind::Audio, Direction::RecvOnly, None)?;
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
    fn join(
        &mut self,
        kind: MediaKind,
        dir: Direction,
        simulcast: Option<Simulcast>,
    ) -> Result<Mid, Error> {
        let index = self.clients.len();
        let worker = index % self.cores.len();
        let (tx, rx) = unbounded_channel();
        let mut client = Client::new(index, worker, self.now, rx)?;
        let mut api = client.rtc.sdp_api();
        let mid = api.add_media(kind, dir, None, None, simulcast);
        let (offer, pending) = api.apply().ok_or("no offer to make")?;
        let joined = self.cores[worker].join(
            self.now,
            ROOM,
            client.id,
            Grants::default(),
            None,
            &offer.to_sdp_string(),
            tx,
        )?;
        client
            .rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(&joined.answer)?)?;
        self.by_addr.insert(client.addr, index);
        self.clients.push(client);
        self.pump_inter()?;
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

    /// Subscriber `i` (in join order).
    pub fn subscriber(&self, i: usize) -> &Client {
        &self.clients[1 + i]
    }

    /// Subscriber `i`, mutably (e.g. to clear what it recorded).
    pub fn subscriber_mut(&mut self, i: usize) -> &mut Client {
        &mut self.clients[1 + i]
    }

    /// The publisher client.
    pub fn publisher(&self) -> &Client {
        &self.clients[0]
    }

    /// The simulcast publisher's layers, lowest first (empty for a single-stream publisher).
    pub fn publisher_layers(&self) -> &[PublisherLayer] {
        &self.layers
    }

    /// Worker 0's counters (the publisher's worker; the only one unless [`Self::spanning`]).
    pub fn stats(&self) -> &WorkerStats {
        &self.stats[0]
    }

    /// Worker `w`'s counters.
    pub fn stats_of(&self, w: usize) -> &WorkerStats {
        &self.stats[w]
    }

    /// One counter summed over every worker, e.g. `room.total(|s| &s.rtp_forwarded)`.
    pub fn total(&self, counter: impl Fn(&WorkerStats) -> &sfu_core::stats::Counter) -> u64 {
        self.stats.iter().map(|s| counter(s).get()).sum()
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.cores.len()
    }

    /// The publisher's core (worker 0): the one under test in a single-worker room.
    pub fn core_mut(&mut self) -> &mut WorkerCore {
        &mut self.cores[0]
    }

    /// Worker `w`'s core.
    pub fn core_of(&mut self, w: usize) -> &mut WorkerCore {
        &mut self.cores[w]
    }

    /// The core subscriber `i` is placed on.
    pub fn subscriber_core(&mut self, i: usize) -> &mut WorkerCore {
        let w = self.clients[1 + i].worker;
        &mut self.cores[w]
    }

    /// Carries the workers' control messages to their destinations until none is left.
    fn pump_inter(&mut self) -> Result<(), Error> {
        let now = self.now;
        for _ in 0..100 {
            let mut moved = false;
            for w in 0..self.cores.len() {
                let msgs: Vec<(usize, Inter)> = self.cores[w].inter_drain().collect();
                for (to, msg) in msgs {
                    moved = true;
                    self.cores
                        .get_mut(to)
                        .ok_or("a control message to an unknown worker")?
                        .handle_inter(now, w, msg);
                }
            }
            if !moved {
                return Ok(());
            }
        }
        Err("workers kept messaging each other".into())
    }

    /// The other workers take what worker 0 relayed to them and run their timers, as their
    /// threads would after a wake-up. Control messages are carried outside this (they are
    /// rare: keyframe requests, tracks coming and going), in [`InMemoryRoom::settle`].
    #[inline]
    fn run_relays(&mut self, now: Instant) {
        for core in self.cores[1..].iter_mut() {
            if core.relay_pending() {
                core.handle_relays(now);
                core.handle_timeouts(now);
            }
        }
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

    /// The RTP payload of one packet of a simulcast layer's frame: a VP8 payload descriptor
    /// with X=1, I=1 (15-bit picture id), L=1 and T=1 (TL0PICIDX and TID present); on the
    /// frame's first packet (S=1) a VP8 frame header: for a keyframe the 10-byte one with the
    /// start code 9d 01 2a and the layer's width and height, else an inter-frame tag. Zero
    /// filler, and the layer tag in the last byte.
    fn simulcast_payload(
        layer: &PublisherLayer,
        index: usize,
        first: bool,
        keyframe: bool,
        tid: u8,
    ) -> Vec<u8> {
        let mut p = vec![0u8; layer.payload_size.max(20)];
        let pid = layer.next_picture_id;
        p[0] = if first { 0x90 } else { 0x80 }; // X, S (start of partition 0)
        p[1] = 0xe0; // I, L, T
        p[2] = 0x80 | ((pid >> 8) as u8 & 0x7f); // M: 15-bit picture id
        p[3] = pid as u8;
        p[4] = layer.tl0_pic_idx;
        p[5] = (tid << 6) | if tid == 0 { 0x20 } else { 0 }; // TID, Y (layer sync on TID 0)
        if first && keyframe {
            // Frame tag (P=0: keyframe, show_frame), start code, 14-bit width and height.
            p[6..9].copy_from_slice(&[0x50, 0x2f, 0x01]);
            p[9..12].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            p[12..14].copy_from_slice(&layer.width.to_le_bytes());
            p[14..16].copy_from_slice(&layer.height.to_le_bytes());
        } else if first {
            p[6] = 0x11; // show_frame, P = 1 (inter frame)
        }
        let last = p.len() - 1;
        p[last] = LAYER_TAG | index as u8;
        p
    }

    /// Has the simulcast publisher write one frame of `packets` packets on layer `layer`
    /// (index into its RIDs) at the current simulated time, a keyframe if `keyframe`, and
    /// returns the SRTP datagrams to feed with [`InMemoryRoom::forward`]. The clock does not
    /// move: call [`InMemoryRoom::run_for`] between frames (or use
    /// [`InMemoryRoom::simulcast_frame`]). The layer's sequence numbers count up by one per
    /// packet; its timestamp by [`FRAME_TICKS`], picture id by one (mod 2^15) per frame; the
    /// marker bit is on the frame's last packet.
    pub fn publisher_frame_on(
        &mut self,
        layer: usize,
        keyframe: bool,
        packets: usize,
    ) -> Result<Vec<PublisherPacket>, Error> {
        let now = self.now;
        let mid = self.video_mid;
        let pt = self.vp8_pt;
        let l = self
            .layers
            .get_mut(layer)
            .ok_or("no such simulcast layer (or the publisher does not simulcast)")?;
        // A keyframe is TID 0 and restarts the T0 T1 T0 T1 pattern.
        let keyframe = keyframe || l.since_keyframe.is_none();
        let since = if keyframe {
            0
        } else {
            l.since_keyframe.unwrap_or(0)
        };
        let tid = (since % 2) as u8;
        if tid == 0 && l.frames > 0 {
            l.tl0_pic_idx = l.tl0_pic_idx.wrapping_add(1);
        }
        let packets = packets.max(1);
        let rid = l.rid;
        let timestamp = l.next_timestamp;
        let mut writes = Vec::with_capacity(packets);
        for k in 0..packets {
            let payload = Self::simulcast_payload(l, layer, k == 0, keyframe, tid);
            writes.push((l.next_seq, k + 1 == packets, payload));
            l.next_seq += 1;
        }
        l.since_keyframe = Some(since + 1);
        l.frames += 1;
        l.keyframes += u64::from(keyframe);
        l.next_timestamp = l.next_timestamp.wrapping_add(FRAME_TICKS);
        l.next_picture_id = (l.next_picture_id + 1) & 0x7fff;

        let publisher = &mut self.clients[0];
        publisher.rtc.handle_input(Input::Timeout(now))?;
        let mut out = Vec::with_capacity(packets);
        for (seq, marker, payload) in writes {
            publisher
                .rtc
                .direct_api()
                .stream_tx_by_mid(mid, Some(rid))
                .ok_or("the publisher has no send stream for that RID")?
                .write_rtp(
                    RtpWrite::new(pt, SeqNo::from(seq), timestamp, now, payload)
                        .marker(marker)
                        .nackable(true),
                );
            let datagram = publisher
                .drive(now, &mut self.to_core, true)?
                .ok_or("the publisher sent no RTP")?;
            out.push(PublisherPacket { at: now, datagram });
        }
        Ok(out)
    }

    /// One simulcast packet: a frame of a single packet on `layer` (see
    /// [`InMemoryRoom::publisher_frame_on`]).
    pub fn publisher_packet_on(
        &mut self,
        layer: usize,
        keyframe: bool,
    ) -> Result<PublisherPacket, Error> {
        let mut v = self.publisher_frame_on(layer, keyframe, 1)?;
        v.pop().ok_or_else(|| "no packet".into())
    }

    /// True (once) if the publisher received a keyframe request (PLI/FIR) for `layer` (or for
    /// its whole track) that was not consumed yet.
    pub fn take_keyframe_request(&mut self, layer: usize) -> bool {
        for rid in self.clients[0].keyframe_requests.drain(..) {
            for (l, pending) in self.layers.iter().zip(self.keyframe_pending.iter_mut()) {
                if rid.is_none() || rid == Some(l.rid) {
                    *pending = true;
                }
            }
        }
        self.keyframe_pending
            .get_mut(layer)
            .is_some_and(std::mem::take)
    }

    /// One frame of a browser-like simulcast publisher: moves the clock by [`FRAME_INTERVAL`]
    /// ([`InMemoryRoom::run_for`]), then for each layer from the lowest, one frame of
    /// `packets[layer]` packets (1 if missing), a keyframe on the layer's first frame or when
    /// the publisher received a keyframe request for it; each packet is forwarded by the core
    /// and its output delivered to the clients at once. Returns the number of media RTP
    /// datagrams the core produced meanwhile (padding not counted).
    pub fn simulcast_frame(&mut self, packets: &[usize]) -> Result<usize, Error> {
        self.run_for(FRAME_INTERVAL)?;
        let mut rtp = 0;
        for layer in 0..self.layers.len() {
            let keyframe = self.take_keyframe_request(layer);
            let n = packets.get(layer).copied().unwrap_or(1);
            for p in self.publisher_frame_on(layer, keyframe, n)? {
                let out = self.forward_collect(&p);
                rtp += out.iter().filter(|(_, d)| is_media_rtp(d)).count();
                self.deliver(out)?;
            }
        }
        Ok(rtp)
    }

    /// The measured operation: the core receives one publisher datagram (at `packet.at`),
    /// forwards it, runs its due timers, and the outbox is drained and dropped. Returns the
    /// number of datagrams the core produced (N for N subscribers, plus the odd RTCP).
    #[inline]
    pub fn forward(&mut self, packet: &PublisherPacket) -> usize {
        self.server_work(packet);
        self.cores
            .iter_mut()
            .map(|c| c.outbox_drain().count())
            .sum()
    }

    /// The server's whole work for one publisher packet, and nothing else: the publisher's
    /// worker receives, decrypts and fans it out (relaying it to the other workers) and runs
    /// its timers; every other worker that got it runs its fan-out and timers. The datagrams
    /// stay in the workers' outboxes ([`InMemoryRoom::take_output`]).
    #[inline]
    pub fn server_work(&mut self, packet: &PublisherPacket) {
        let from = self.clients[0].addr;
        self.cores[0].handle_datagram(packet.at, from, &packet.datagram);
        self.cores[0].handle_timeouts(packet.at);
        self.run_relays(packet.at);
    }

    /// Every datagram waiting in the workers' outboxes, as (destination, bytes).
    pub fn take_output(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        self.output_into(&mut out);
        out
    }

    /// Moves every datagram waiting in the workers' outboxes to the end of `out`.
    #[inline]
    pub fn output_into(&mut self, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        for c in &mut self.cores {
            out.extend(c.outbox_drain());
        }
    }

    /// Like [`InMemoryRoom::forward`], but returns the core's datagrams as
    /// (destination, bytes) instead of dropping them.
    pub fn forward_collect(&mut self, packet: &PublisherPacket) -> Vec<(SocketAddr, Vec<u8>)> {
        self.server_work(packet);
        self.take_output()
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
        for i in 0..self.clients.len() {
            self.clients[i].drive(now, &mut self.to_core, false)?;
            self.server_events(i)?;
        }
        Ok(())
    }

    /// From now on no client's STUN reaches the core: the clients stand for peers (webrtc-rs,
    /// pion) that send no ICE binding request once media flows both ways. The clients still
    /// send keepalives and never give up on them; only the core stops hearing them.
    pub fn withhold_client_stun(&mut self) {
        self.withhold_stun = true;
    }

    /// Subscriber `i` vanishes (its network is gone): nothing more passes between it and the
    /// core and it stops running. The core's `PeerEvent::Closed` for it is recorded in
    /// [`Client::closed_by_server`] instead of failing the room.
    pub fn silence(&mut self, i: usize) {
        self.clients[1 + i].silent = true;
    }

    /// Moves the clock forward by `dt`, then [`InMemoryRoom::settle`]s.
    pub fn advance(&mut self, dt: Duration) -> Result<(), Error> {
        self.now += dt;
        self.settle()
    }

    /// Moves the clock forward by `dt` like a real event loop would: it stops at every
    /// deadline of the core on the way (at least [`MIN_STEP`] apart) and
    /// [`InMemoryRoom::settle`]s there, so the core's pacer and timers run on time instead of
    /// in one burst at the end.
    pub fn run_for(&mut self, dt: Duration) -> Result<(), Error> {
        let end = self.now + dt;
        while self.now < end {
            let next = self
                .cores
                .iter_mut()
                .filter_map(|c| c.next_deadline())
                .min();
            let step = match next {
                Some(d) if d < end => d.max(self.now + MIN_STEP).min(end),
                _ => end,
            };
            self.now = step;
            self.settle()?;
        }
        Ok(())
    }

    /// Runs everyone's timers at the current time and shuttles datagrams between the clients
    /// and the core until nobody has anything left to send; server offers are answered on the
    /// way. This is the client side and the background (STUN, RTCP, DTLS) of the room, not the
    /// hot path: benches call it outside their timed region.
    pub fn settle(&mut self) -> Result<(), Error> {
        let now = self.now;
        for c in self.clients.iter_mut().filter(|c| !c.silent) {
            c.rtc.handle_input(Input::Timeout(now))?;
        }
        for core in &mut self.cores {
            core.handle_timeouts(now);
        }
        for _ in 0..1000 {
            let mut moved = 0;
            for i in 0..self.clients.len() {
                self.clients[i].drive(now, &mut self.to_core, false)?;
                self.server_events(i)?;
            }
            while let Some((from, data)) = self.to_core.pop_front() {
                let client = self.by_addr.get(&from).map(|i| &self.clients[*i]);
                if client.is_some_and(|c| c.silent) || (self.withhold_stun && is_stun(&data)) {
                    continue;
                }
                let w = client.map_or(0, |c| c.worker);
                self.cores[w].handle_datagram(now, from, &data);
                moved += 1;
            }
            self.pump_inter()?;
            let mut out = Vec::new();
            for core in &mut self.cores {
                if core.relay_pending() {
                    core.handle_relays(now);
                    moved += 1;
                }
                core.handle_timeouts(now);
                out.extend(core.outbox_drain());
            }
            self.pump_inter()?;
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
                PeerEvent::Offer { sdp, added, .. } => {
                    c.tracks.extend(added);
                    let answer = c
                        .rtc
                        .sdp_api()
                        .accept_offer(SdpOffer::from_sdp_string(&sdp)?)?;
                    let (id, w) = (c.id, c.worker);
                    c.offers_answered += 1;
                    self.cores[w].answer(now, id, &answer.to_sdp_string())?;
                    self.pump_inter()?;
                }
                PeerEvent::Connected => c.server_connected = true,
                PeerEvent::LayerSwitched {
                    mid,
                    layer,
                    reason,
                    width,
                } => c.layer_switches.push(LayerSwitch {
                    mid,
                    layer,
                    reason,
                    width,
                    received_before: c.received.len(),
                }),
                // The publisher's own track is routed: signaling news, nothing to do here.
                PeerEvent::Published(_) | PeerEvent::ActiveSpeaker(_) => {}
                PeerEvent::Closed if c.silent => c.closed_by_server = true,
                PeerEvent::Closed => return Err(format!("the server closed {}", c.id).into()),
            }
        }
        Ok(())
    }
}

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
