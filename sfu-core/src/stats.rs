//! Counters a worker keeps about its traffic, readable from any thread.
//!
//! Each worker owns one [`WorkerStats`]; only that worker's thread writes it (relaxed atomic
//! adds on cache lines no other writer touches), and the control plane reads snapshots for
//! `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Everything one worker counts.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Datagrams received on the worker's socket.
    pub packets_in: Counter,
    pub bytes_in: Counter,
    /// Datagrams sent.
    pub packets_out: Counter,
    pub bytes_out: Counter,
    /// Decrypted RTP packets from publishers.
    pub rtp_in: Counter,
    /// RTP packets written to a subscriber (one per consumer).
    pub rtp_forwarded: Counter,
    /// Datagrams from an address no session knows that are not STUN for one of ours.
    pub dropped_unknown_source: Counter,
    /// Datagrams whose framing is impossible (see [`crate::demux`]); no session saw them.
    pub dropped_malformed: Counter,
    /// Datagrams a session refused while parsing (STUN/DTLS/RTP it could not read).
    pub dropped_rejected: Counter,
    /// SRTP on an SSRC no negotiated track explains (str0m could not place it).
    pub dropped_unknown_ssrc: Counter,
    /// RTP on a track that is not routed.
    pub dropped_no_route: Counter,
    /// RTP on a simulcast layer (RID) we do not know.
    pub dropped_unknown_layer: Counter,
    /// VP8 packets of temporal layers left out because the budget was short.
    pub temporal_drops: Counter,
    /// Simulcast layer switches, by reason (index: [`crate::layers::SwitchReason::index`]).
    pub layer_switches: [Counter; 5],
    /// RTP whose codec the subscriber did not negotiate.
    pub dropped_codec: Counter,
    /// RTP for a subscriber track that cannot send yet.
    pub dropped_not_ready: Counter,
    /// Datagrams the kernel would not take (send buffer full).
    pub dropped_send: Counter,
    /// PLIs sent to publishers.
    pub keyframe_requests: Counter,
    /// Packets handed to other workers (one per packet per worker that consumes its track).
    pub relayed_out: Counter,
    /// Packets other workers handed to this one.
    pub relayed_in: Counter,
    /// Packets not handed to another worker because the ring toward it was full.
    pub dropped_relay_full: Counter,
    /// Sessions that ended without a leave (ICE timeout, DTLS close, internal panic).
    pub sessions_failed: Counter,
    /// Live sessions on the worker.
    pub sessions: Gauge,
}

impl WorkerStats {
    /// (metric name, help, value, is_counter) for every field, for exposition.
    pub fn fields(&self) -> [(&'static str, &'static str, u64, bool); 22] {
        [
            (
                "packets_in_total",
                "Datagrams received",
                self.packets_in.get(),
                true,
            ),
            (
                "bytes_in_total",
                "Bytes received",
                self.bytes_in.get(),
                true,
            ),
            (
                "packets_out_total",
                "Datagrams sent",
                self.packets_out.get(),
                true,
            ),
            ("bytes_out_total", "Bytes sent", self.bytes_out.get(), true),
            (
                "rtp_in_total",
                "RTP packets received from publishers",
                self.rtp_in.get(),
                true,
            ),
            (
                "rtp_forwarded_total",
                "RTP packets written to subscribers",
                self.rtp_forwarded.get(),
                true,
            ),
            (
                "dropped_unknown_source_total",
                "Datagrams from unknown addresses that were not our STUN",
                self.dropped_unknown_source.get(),
                true,
            ),
            (
                "dropped_malformed_total",
                "Datagrams with impossible framing",
                self.dropped_malformed.get(),
                true,
            ),
            (
                "dropped_rejected_total",
                "Datagrams a session refused",
                self.dropped_rejected.get(),
                true,
            ),
            (
                "dropped_unknown_ssrc_total",
                "RTP packets on an SSRC no track explains",
                self.dropped_unknown_ssrc.get(),
                true,
            ),
            (
                "dropped_no_route_total",
                "RTP packets on unrouted tracks",
                self.dropped_no_route.get(),
                true,
            ),
            (
                "dropped_unknown_layer_total",
                "RTP packets on a simulcast layer we do not know",
                self.dropped_unknown_layer.get(),
                true,
            ),
            (
                "temporal_drops_total",
                "VP8 packets of temporal layers left out for bandwidth",
                self.temporal_drops.get(),
                true,
            ),
            (
                "dropped_codec_total",
                "RTP packets whose codec the subscriber lacks",
                self.dropped_codec.get(),
                true,
            ),
            (
                "dropped_not_ready_total",
                "RTP packets for subscriber tracks not ready",
                self.dropped_not_ready.get(),
                true,
            ),
            (
                "dropped_send_total",
                "Datagrams the kernel refused",
                self.dropped_send.get(),
                true,
            ),
            (
                "keyframe_requests_total",
                "Keyframe requests sent to publishers",
                self.keyframe_requests.get(),
                true,
            ),
            (
                "relayed_out_total",
                "RTP packets handed to other workers",
                self.relayed_out.get(),
                true,
            ),
            (
                "relayed_in_total",
                "RTP packets received from other workers",
                self.relayed_in.get(),
                true,
            ),
            (
                "dropped_relay_full_total",
                "RTP packets dropped because the ring to another worker was full",
                self.dropped_relay_full.get(),
                true,
            ),
            (
                "sessions_failed_total",
                "Sessions that ended without a leave",
                self.sessions_failed.get(),
                true,
            ),
            ("sessions", "Live sessions", self.sessions.get(), false),
        ]
    }
}
