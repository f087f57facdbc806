//! SDP offers for tests, made by str0m (a real WebRTC stack) with a host candidate on
//! 127.0.0.1:9: what a publisher (WHIP, the call page) or a player (WHEP) would send.

use std::time::Instant;

use str0m::media::{Direction, MediaKind, Simulcast, SimulcastLayer};
use str0m::{Candidate, Rtc};

/// An offer with one m-line per `(kind, direction)`; `simulcast` rids go on the video m-line.
pub fn offer(lines: &[(MediaKind, Direction)], simulcast: &[&str]) -> String {
    sfu_core::session::init_crypto();
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host("127.0.0.1:9".parse().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    for &(kind, dir) in lines {
        let sim = (kind == MediaKind::Video && !simulcast.is_empty()).then(|| {
            let mut s = Simulcast::new();
            for rid in simulcast {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        api.add_media(kind, dir, None, None, sim);
    }
    let (offer, _pending) = api.apply().expect("an offer");
    let sdp = offer.to_sdp_string();
    assert!(str0m::change::SdpOffer::from_sdp_string(&sdp).is_ok());
    sdp
}

/// A publisher's offer: send-only audio and video.
pub fn publisher() -> String {
    offer(
        &[
            (MediaKind::Audio, Direction::SendOnly),
            (MediaKind::Video, Direction::SendOnly),
        ],
        &[],
    )
}
