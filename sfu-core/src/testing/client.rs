//! One client of the in-memory room: a full str0m peer, what it publishes and what it records.

use super::*;

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
    pub(super) since_keyframe: Option<u64>,
    /// Frames sent.
    pub frames: u64,
    /// Keyframes sent.
    pub keyframes: u64,
}

impl PublisherLayer {
    pub(super) fn new(rid: &str, index: usize, count: usize) -> Self {
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
    /// From the VP8 payload descriptor (parsed with [`crate::vp8::parse`]).
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
    pub(super) fn parse(at: Instant, p: &str0m::rtp::RtpPacket) -> Self {
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
    pub(super) server: SocketAddr,
    /// The client's fake address (its host candidate, the source of its datagrams).
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub(super) events: EventReceiver,
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
    pub(super) fn new(
        index: usize,
        worker: usize,
        now: Instant,
        events: EventReceiver,
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
            .find(|t| t.kind == crate::Kind::Video)
            .map(|t| t.mid.as_str())
    }

    /// Polls str0m until it waits: datagrams go to `to_core`, events update the client.
    /// Returns the first RTP datagram if `want_rtp`, leaving it out of `to_core`. A silent
    /// client does nothing.
    pub(super) fn drive(
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
    pub(super) fn receive(&mut self, now: Instant, data: &[u8]) -> Result<(), Error> {
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
