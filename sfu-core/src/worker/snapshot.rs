//! A snapshot of every session's counters on this worker, for `/metrics` and the call page's
//! network indicators.

use super::WorkerCore;
use crate::layers::layer_name;
use crate::session::Kind;
use crate::{ConsumerStats, SessionStats};

impl WorkerCore {
    /// A snapshot of every session's counters on this worker.
    pub fn session_stats(&self, worker: usize) -> Vec<SessionStats> {
        let mut out: Vec<SessionStats> = self
            .peers
            .iter()
            .map(|(_, p)| {
                let who = p.id;
                let c = p.counters;
                let consumers = self
                    .router
                    .consumers_of(who)
                    .into_iter()
                    .filter_map(|(key, kind, con)| {
                        Some(ConsumerStats {
                            mid: con.media?.as_str().to_owned(),
                            publisher: key.owner,
                            kind,
                            layer: con
                                .rewriter
                                .source()
                                .filter(|_| kind == Kind::Video)
                                .map(layer_name),
                            target: con.selector.target().map(layer_name),
                            rendered_width: con.rendered_width,
                            pinned: con.pinned.map(layer_name),
                        })
                    })
                    .collect();
                SessionStats {
                    participant: who,
                    room: self.router.room_of(who).unwrap_or("").to_owned(),
                    worker,
                    datagrams_in: c.datagrams_in,
                    bytes_in: c.bytes_in,
                    rtp_published: c.rtp_published,
                    rtp_received: c.rtp_received,
                    payload_bytes_received: c.payload_bytes_received,
                    dropped_rejected: c.dropped_rejected,
                    dropped_unknown_ssrc: c.dropped_unknown_ssrc,
                    dropped_codec: c.dropped_codec,
                    dropped_not_ready: c.dropped_not_ready,
                    feedback: p.session.feedback(),
                    layer_switches: c.layer_switches,
                    estimate_bps: p.budget.estimate,
                    max_bitrate_bps: p.budget.max_bitrate,
                    rtt_ms: p.session.rtt().map(|d| d.as_secs_f64() * 1000.0),
                    consumers,
                }
            })
            .collect();
        out.sort_by_key(|s| s.participant);
        out
    }
}
