//! # sfu-core: the GAX media plane
//!
//! A selective forwarding unit: browsers publish audio and video tracks, and every other
//! participant of the room receives them, forwarded without decoding. The crate reads as a
//! pipeline:
//!
//! ```text
//!  UDP socket ──> session ──> router ──> subscriber sessions ──> UDP socket
//!  (worker_thread) (session)  (router)    (session: rewrite + SRTP)  (outbox)
//! ```
//!
//! - [`demux`]: first look at a datagram (which protocol, plausible framing), before any session.
//! - [`session`]: one peer's WebRTC connection (ICE-lite, DTLS-SRTP, SDP), wrapping str0m in
//!   RTP mode. The only module that sees str0m types.
//! - [`router`]: the routing table, Room -> Producer (incoming track) -> Consumer (one
//!   subscriber's view of it).
//! - [`worker`]: the sans-IO pipeline of one worker: sessions, router, timer heap, outbox.
//! - [`worker_thread`]: the thin I/O loop, one OS thread and one UDP socket per worker.
//! - [`relay`]: the hop between workers, so one room can use every core.
//! - [`sfu`]: the control plane handle ([`Sfu`]) that signaling calls: join, answer, leave.
//! - [`directory`]: the call-room directory, who is in which room and on which worker, and
//!   the room events its members are told.
//! - [`events`]: what a participant is told ([`PeerEvent`]) and the bounded queue that
//!   carries it to its door.
//! - [`layers`], [`rewrite`], [`vp8`]: simulcast layer choice and seamless switching.
//! - [`speaker`]: active speaker detection from audio levels.
//! - [`stats`]: per-worker counters for `/metrics`.
//! - `testing` (feature `testing`): an in-memory room of str0m clients around a worker core,
//!   for integration tests and benches.
//!
//! A packet is decrypted once; its payload is one `Arc<[u8]>` that every consumer shares (a
//! refcount bump per subscriber, no copy) until it is encrypted into that subscriber's datagram.
//! Participants are spread over the workers by load, so one room uses every core: a packet is
//! decrypted once on its publisher's worker and reaches the other workers as a refcounted
//! handle over bounded rings ([`relay`]).

pub mod budget;
pub mod demux;
pub mod directory;
pub mod events;
pub mod forward;
pub mod fuzzing;
pub mod layers;
pub mod link;
pub mod peer;
pub mod producer;
pub mod relay;
pub mod rewrite;
pub mod router;
pub mod session;
pub mod sfu;
pub mod speaker;
pub mod stats;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vp8;
pub mod worker;
pub mod worker_thread;

pub use directory::{Profile, RoomDirectory};
pub use events::{peer_events, EventReceiver, EventSender, Lagged, Member, PeerEvent, RoomEvent};
pub use router::Grants;
pub use session::Kind;
pub use sfu::{Joined, Placement, Sfu, SfuConfig};
pub use worker_thread::Control;

/// A participant, unique for the lifetime of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ParticipantId(pub u64);

impl std::fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// A track as seen by signaling: the mid in the receiving (or publishing) session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub mid: String,
    pub publisher: ParticipantId,
    pub kind: Kind,
}

/// Counters of one participant's session (a snapshot).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    pub participant: ParticipantId,
    pub room: String,
    pub worker: usize,
    /// Datagrams and bytes received from this peer.
    pub datagrams_in: u64,
    pub bytes_in: u64,
    /// RTP packets it published (decrypted on its worker).
    pub rtp_published: u64,
    /// RTP packets forwarded to it, and their payload bytes.
    pub rtp_received: u64,
    pub payload_bytes_received: u64,
    /// Its datagrams its session refused.
    pub dropped_rejected: u64,
    /// Its RTP on SSRCs no negotiated track explains.
    pub dropped_unknown_ssrc: u64,
    /// Packets for it dropped because it lacks the codec, or its track was not ready.
    pub dropped_codec: u64,
    pub dropped_not_ready: u64,
    /// RTCP feedback both ways.
    pub feedback: session::FeedbackCounts,
    /// Simulcast switches on its tracks, by [`layers::SwitchReason::index`].
    pub layer_switches: [u64; 5],
    /// Send-side bandwidth estimate toward it, and its own cap, bits per second.
    pub estimate_bps: Option<u64>,
    pub max_bitrate_bps: Option<u64>,
    pub rtt_ms: Option<f64>,
    /// What it receives.
    pub consumers: Vec<ConsumerStats>,
}

/// One track a participant receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerStats {
    /// The mid in the subscriber's session.
    pub mid: String,
    pub publisher: ParticipantId,
    pub kind: Kind,
    /// The simulcast layer it receives now and the one it should get (`None`: single stream
    /// or nothing yet).
    pub layer: Option<&'static str>,
    pub target: Option<&'static str>,
    pub rendered_width: Option<u32>,
    pub pinned: Option<&'static str>,
}

impl SfuError {
    /// True when the client's input (its SDP) caused the error, false for server faults.
    pub fn is_client_error(&self) -> bool {
        use session::SessionError as S;
        matches!(
            self,
            SfuError::Session(S::BadSdp(_) | S::Refused(_) | S::NoPendingOffer)
        )
    }

    /// True for a request about a track or layer that does not exist (answered, not fatal).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            SfuError::UnknownTrack | SfuError::NotVideo | SfuError::UnknownLayer
        )
    }
}

/// Errors from the media plane.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    #[error(transparent)]
    Session(#[from] session::SessionError),
    #[error("the participant is not known to the media plane")]
    UnknownParticipant,
    #[error("the participant has joined already")]
    AlreadyJoined,
    #[error("no such track in this session")]
    UnknownTrack,
    #[error("that track is not video")]
    NotVideo,
    #[error("no such layer (use q, h or f)")]
    UnknownLayer,
    #[error("a media worker stopped")]
    WorkerGone,
    #[error("cannot bind media socket {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
    #[error("invalid media configuration: {0}")]
    Config(&'static str),
    #[error("internal error: {0}")]
    Internal(&'static str),
}
