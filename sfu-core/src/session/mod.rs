//! One peer's WebRTC connection: ICE-lite, DTLS-SRTP, SDP and RTP streams.
//!
//! This module is the only place that touches str0m. Everything else in the crate talks to a
//! [`Session`] in our own vocabulary: offers and answers as SDP text, [`MediaId`]s, [`Packet`]s
//! whose payload is one refcounted buffer, and [`SessionEvent`]s. The session is sans-IO:
//! the worker hands it datagrams and the time, and drains its output.
//!
//! The parts: this file holds the types and the session's I/O (datagrams in, timeouts,
//! output); `negotiation` the SDP exchanges, `events` what str0m's events mean to us, `media`
//! the RTP written toward the peer and what we ask of it.
//!
//! Negotiation is server-driven after the first exchange: the browser's first offer publishes its
//! tracks; every later change (tracks of others to receive, tracks that went away) is queued here
//! and sent as one server offer at a time, the next one only after the previous answer arrived.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo, Ssrc, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

mod events;
mod media;
mod negotiation;
mod packet;

pub use packet::{Packet, Vp8};

/// The bandwidth estimate toward a new peer before feedback refines it.
pub const INITIAL_ESTIMATE_KBPS: u64 = 1_000;

/// Errors a session reports to its caller. None of them is fatal to other sessions.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the SDP could not be parsed: {0}")]
    BadSdp(String),
    #[error("the SDP was refused: {0}")]
    Refused(String),
    #[error("no server offer is waiting for an answer")]
    NoPendingOffer,
    #[error("the DTLS certificate could not be created")]
    Certificate,
    #[error("invalid local address: {0}")]
    Address(String),
    /// SRTP on an SSRC that no negotiated track (nor its MID/RID extension) explains.
    #[error("RTP on unknown SSRC {0:#010x}")]
    UnknownSsrc(u32),
}

/// Identifies one m-line (transceiver) inside one session. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaId(Mid);

impl MediaId {
    /// A mid from its SDP text (at most 16 characters are kept), for tools and benches that
    /// route packets without a session.
    pub fn from_sdp(mid: &str) -> Self {
        MediaId(Mid::from(mid))
    }

    /// The mid as it appears in SDP.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MediaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    fn from_str0m(k: MediaKind) -> Self {
        if k.is_audio() {
            Kind::Audio
        } else {
            Kind::Video
        }
    }
    fn to_str0m(self) -> MediaKind {
        match self {
            Kind::Audio => MediaKind::Audio,
            Kind::Video => MediaKind::Video,
        }
    }
    /// `"audio"` or `"video"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }
}

/// Codec identity used to map payload types between two sessions.
#[derive(Debug, Clone, Copy)]
pub struct CodecKey {
    params: PayloadParams,
}

/// Where the rewritable fields of one VP8 payload descriptor sit (str0m's parsed descriptor),
/// so [`Session::write_rtp`] can patch a new picture id and TL0PICIDX in while it copies the
/// payload, without parsing it again per subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Vp8Layout(Vp8Descriptor);

impl Vp8Layout {
    /// Parses the descriptor at the front of `payload`; `None` if it is malformed.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        Vp8Descriptor::parse(payload).ok().map(Vp8Layout)
    }

    /// The byte replacements that give this descriptor `picture_id` (and `tl0`, where it
    /// carries a TL0PICIDX; streams without temporal layers have none to patch). `None` when
    /// the descriptor cannot take them (e.g. a 7-bit picture id field).
    pub fn patch(&self, picture_id: u16, tl0: u8) -> Option<str0m::rtp::Vp8Patch> {
        let builder = self.0.patch().picture_id(picture_id);
        let builder = match self.0.tl0_pic_idx() {
            Some(_) => builder.tl0_pic_idx(tl0),
            None => builder,
        };
        builder.build().ok()
    }
}

/// A simulcast layer name (RID) as sent by the publisher, e.g. `q`, `h`, `f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer(str0m::media::Rid);

impl Layer {
    /// The RID as it appears in SDP.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a session tells its owner.
#[derive(Debug)]
// `Rtp` is large on purpose: the packet moves by value from the session to its producer, and
// boxing it would allocate per packet on the hot path.
#[allow(clippy::large_enum_variant)]
pub enum SessionEvent {
    /// ICE and DTLS are up: media flows from now on.
    Connected,
    /// The remote offered a track we receive (it publishes).
    Published { media: MediaId, kind: Kind },
    /// The remote's offer has an m-line it only receives on (a WHEP player's `recvonly`): our
    /// answer made it a track we may send on without a new offer.
    SendSlot { media: MediaId, kind: Kind },
    /// An RTP packet arrived on a published track (its ingest fields still unset).
    Rtp(Packet),
    /// The remote asks for a keyframe on a track we send to it.
    KeyframeRequest { media: MediaId },
    /// The send-side bandwidth estimate toward this peer changed (bits per second).
    Estimate(u64),
    /// The peer went away (ICE timed out, DTLS closed).
    Closed,
}

/// One unit of output from [`Session::poll`].
#[derive(Debug)]
pub enum SessionOutput {
    Transmit {
        to: SocketAddr,
        data: Vec<u8>,
    },
    Event(SessionEvent),
    /// Nothing more to do until this instant (or until new input).
    Wait(Instant),
}

/// A track to add to the next server offer: another participant's producer this peer receives.
#[derive(Debug, Clone)]
pub struct OutgoingTrack {
    /// The caller's key for this track (the router's consumer id); returned with its mid.
    pub tag: u64,
    pub kind: Kind,
    /// Shown to the browser as the MediaStream id (we use the publisher's participant id).
    pub stream_id: String,
    pub track_id: String,
}

/// A server offer waiting for the peer's answer.
struct PendingOffer {
    pending: SdpPendingOffer,
}

/// Per-SSRC cache of (mid, rid) so the hot path does not look up str0m's stream maps.
#[derive(Clone, Copy)]
struct SsrcRoute {
    ssrc: Ssrc,
    media: MediaId,
    layer: Option<Layer>,
}

/// A peer connection driven by the worker. Owns str0m's `Rtc` and nothing else.
pub struct Session {
    rtc: Rtc,
    pending: Option<PendingOffer>,
    queued_add: Vec<OutgoingTrack>,
    queued_stop: Vec<MediaId>,
    ssrc_routes: Vec<SsrcRoute>,
    /// Mids this side added (tracks we send); everything else the remote added.
    local_mids: Vec<MediaId>,
    events: VecDeque<SessionEvent>,
    closed: bool,
    /// DTLS is up (SRTP keys exist): from then on, RTP str0m cannot place is an unknown SSRC.
    connected: bool,
    /// Retransmission SSRCs of streams we receive (known, not counted as unknown).
    rtx_ssrcs: Vec<u32>,
    /// Latest cumulative RTCP feedback counts per stream, from str0m's once-a-second stats.
    feedback: Vec<StreamFeedback>,
    rtt: Option<Duration>,
}

/// Cumulative feedback counts of one stream (str0m reports them as running totals).
#[derive(Debug, Clone, Copy)]
struct StreamFeedback {
    mid: MediaId,
    rid: Option<str0m::media::Rid>,
    /// True for a stream we send (feedback received), false for one we receive (sent).
    egress: bool,
    nacks: u64,
    plis: u64,
    firs: u64,
}

/// RTCP feedback a session sent and received, summed over its streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedbackCounts {
    /// NACKs the peer sent us (for tracks we send it).
    pub nacks_received: u64,
    /// PLIs + FIRs the peer sent us.
    pub keyframe_requests_received: u64,
    /// NACKs we sent the peer (for tracks it publishes).
    pub nacks_sent: u64,
    /// PLIs + FIRs we sent the peer.
    pub keyframe_requests_sent: u64,
}

/// Creates a DTLS certificate to share among many sessions (creating one per session costs ms).
pub fn new_certificate() -> Result<DtlsCert, SessionError> {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or(SessionError::Certificate)
}

/// Installs the process-wide crypto provider. Idempotent; call before the first session.
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        str0m::crypto::from_feature_flags().install_process_default();
    });
}

impl Session {
    /// A fresh ICE-lite session answering on `local` (the address put in the host candidate).
    /// `bandwidth_estimation` turns on str0m's send-side TWCC estimate (and its pacer).
    pub fn new(
        now: Instant,
        cert: &DtlsCert,
        local: SocketAddr,
        bandwidth_estimation: bool,
    ) -> Result<Self, SessionError> {
        init_crypto();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(cert.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .set_stats_interval(Some(Duration::from_secs(1)))
            // Send-side bandwidth estimation (TWCC, with probing): its estimate is the budget
            // for the layers this peer receives. Publishers get TWCC feedback either way.
            .enable_bwe(bandwidth_estimation.then_some(Bitrate::kbps(INITIAL_ESTIMATE_KBPS)))
            .build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| SessionError::Address(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        Ok(Session {
            rtc,
            pending: None,
            queued_add: Vec::new(),
            queued_stop: Vec::new(),
            ssrc_routes: Vec::new(),
            local_mids: Vec::new(),
            events: VecDeque::new(),
            closed: false,
            connected: false,
            rtx_ssrcs: Vec::new(),
            feedback: Vec::new(),
            rtt: None,
        })
    }

    /// True if `data` from `source` belongs to this session (used to learn a new peer address).
    pub fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        local: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Ok(contents) = data.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: local,
                contents,
            },
        );
        self.rtc.accepts(&input)
    }

    /// Feeds one datagram. An error means the datagram was not usable (it is dropped).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        local: SocketAddr,
        data: &[u8],
    ) -> Result<(), SessionError> {
        let contents = data
            .try_into()
            .map_err(|_| SessionError::Refused("not a STUN, DTLS or SRTP datagram".into()))?;
        self.rtc
            .handle_input(Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents,
                },
            ))
            .map_err(|e| SessionError::Refused(e.to_string()))?;
        // str0m drops RTP it cannot place without a word: find out (only for SSRCs not yet
        // routed, so the steady path pays one scan of a short list) and say so.
        if let Some(ssrc) = rtp_ssrc(data).filter(|_| self.connected) {
            if !self.ssrc_routes.iter().any(|r| *r.ssrc == ssrc)
                && !self.rtx_ssrcs.contains(&ssrc)
                && !self.knows_ssrc(ssrc)
            {
                return Err(SessionError::UnknownSsrc(ssrc));
            }
        }
        Ok(())
    }

    /// Whether str0m receives `ssrc`: a stream of its own, or the retransmission (RTX) SSRC
    /// of one (remembered, so the check runs once per RTX stream).
    fn knows_ssrc(&mut self, ssrc: u32) -> bool {
        let mut api = self.rtc.direct_api();
        if api.stream_rx(&ssrc.into()).is_some() {
            return true;
        }
        let is_rtx = self.ssrc_routes.iter().any(|r| {
            api.stream_rx(&r.ssrc)
                .and_then(|s| s.rtx())
                .is_some_and(|x| *x == ssrc)
        });
        if is_rtx {
            self.rtx_ssrcs.push(ssrc);
        }
        is_rtx
    }

    /// Advances timers to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!("session timeout input failed: {e}");
        }
    }

    /// After [`Session::write_rtp`]: hands the written packets to str0m's pacer so
    /// [`Session::poll`] sends them, without a whole timeout pass (str0m's other timers run at
    /// the deadline `poll` returns; a patch GAX carries, third_party/README.md).
    pub fn handle_rtp_written(&mut self, now: Instant) {
        if let Err(e) = self.rtc.handle_rtp_written(now) {
            tracing::debug!("session write flush failed: {e}");
        }
    }

    /// Next output. Call until it returns [`SessionOutput::Wait`].
    pub fn poll(&mut self) -> SessionOutput {
        if let Some(ev) = self.events.pop_front() {
            return SessionOutput::Event(ev);
        }
        loop {
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!("session poll failed: {e}");
                    self.mark_closed();
                    return SessionOutput::Event(SessionEvent::Closed);
                }
            };
            match out {
                Output::Timeout(t) => {
                    if !self.rtc.is_alive() && !self.closed {
                        self.mark_closed();
                        return SessionOutput::Event(SessionEvent::Closed);
                    }
                    return SessionOutput::Wait(t);
                }
                Output::Transmit(t) => {
                    return SessionOutput::Transmit {
                        to: t.destination,
                        data: t.contents.into(),
                    };
                }
                Output::Event(ev) => {
                    if let Some(ev) = self.translate(ev) {
                        return SessionOutput::Event(ev);
                    }
                }
            }
        }
    }

    fn mark_closed(&mut self) {
        self.closed = true;
    }

    /// True once the peer is gone; the owner should drop the session.
    pub fn is_closed(&self) -> bool {
        self.closed || !self.rtc.is_alive()
    }

    /// Ends the session (sends DTLS close where possible).
    pub fn close(&mut self) {
        let _ = self.rtc.close();
        self.closed = true;
    }
}

/// The SSRC of an RTP (not RTCP) datagram: version 2, a payload type outside RTCP's 192..=223
/// (RFC 5761), at least a fixed header. The header is in clear in SRTP.
fn rtp_ssrc(data: &[u8]) -> Option<u32> {
    if data.len() < 12 || data[0] >> 6 != 2 || (192..=223).contains(&data[1]) {
        return None;
    }
    Some(u32::from_be_bytes([data[8], data[9], data[10], data[11]]))
}

/// A mid for unit tests of modules that never see str0m.
#[cfg(test)]
pub(crate) fn test_media_id(s: &str) -> MediaId {
    MediaId(Mid::from(s))
}

/// A codec (VP8 with str0m's default parameters) for unit tests of modules that never see str0m.
#[cfg(test)]
pub(crate) fn test_codec() -> CodecKey {
    let cfg = str0m::format::CodecConfig::new_with_defaults();
    let vp8 = cfg.params().iter().find(|p| p.spec().codec == Codec::Vp8);
    CodecKey {
        params: *vp8.expect("str0m's defaults include VP8"),
    }
}
