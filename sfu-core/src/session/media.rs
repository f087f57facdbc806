//! Media on an established session: payload types and codecs, writing RTP toward the peer
//! (with VP8 fields patched in), keyframe requests to it, the bandwidth goal, feedback and RTT.

use super::*;

impl Session {
    /// RTCP feedback counts so far (updated once a second).
    pub fn feedback(&self) -> FeedbackCounts {
        let mut c = FeedbackCounts::default();
        for f in &self.feedback {
            if f.egress {
                c.nacks_received += f.nacks;
                c.keyframe_requests_received += f.plis + f.firs;
            } else {
                c.nacks_sent += f.nacks;
                c.keyframe_requests_sent += f.plis + f.firs;
            }
        }
        c
    }

    /// Round-trip time to the peer, from RTCP.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// The negotiated codec of payload type `pt` (for mapping to another session's type).
    pub fn codec_of(&self, pt: u8) -> Option<CodecKey> {
        self.rtc
            .codec_config()
            .find(|p| *p.pt() == pt)
            .map(|p| CodecKey { params: *p })
    }

    /// This session's payload type for `codec`, if the peer negotiated it on `media`.
    pub fn pt_for(&self, media: MediaId, codec: CodecKey) -> Option<u8> {
        let m = self.rtc.media(media.0)?;
        let remote = m.remote_pts();
        let cfg = self.rtc.codec_config();
        let matched = cfg.match_params(codec.params).or_else(|| {
            // Same codec, different fmtp (e.g. another H.264 profile): take any of that codec.
            let c: Codec = codec.params.spec().codec;
            cfg.find(|p| p.spec().codec == c && remote.contains(&p.pt()))
        })?;
        if !remote.is_empty() && !remote.contains(&matched.pt()) {
            return None;
        }
        Some(*matched.pt())
    }

    /// Queues one RTP packet on a track we send. Returns false if the track cannot send (yet).
    #[allow(clippy::too_many_arguments)]
    pub fn write_rtp(
        &mut self,
        media: MediaId,
        pt: u8,
        seq: u64,
        timestamp: u32,
        wallclock: Instant,
        marker: bool,
        audio_level: Option<i8>,
        voice_activity: Option<bool>,
        nackable: bool,
        vp8: Option<(u16, u8, Vp8Layout)>,
        payload: &Arc<[u8]>,
    ) -> bool {
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(media.0, None) else {
            return false;
        };
        let ext = ExtensionValues {
            audio_level,
            voice_activity,
            ..Default::default()
        };
        let mut write = RtpWrite::new(
            Pt::from(pt),
            SeqNo::from(seq),
            timestamp,
            wallclock,
            payload.clone(),
        )
        .marker(marker)
        .ext_vals(ext)
        .nackable(nackable);
        if let Some((picture_id, tl0, layout)) = vp8 {
            // The new picture id / TL0PICIDX are patched in while str0m copies the payload into
            // the packet it encrypts: no extra copy here, and no second parse.
            if let Some(p) = layout.patch(picture_id, tl0) {
                write = write.vp8_patch(p);
            }
        }
        tx.write_rtp(write);
        true
    }

    /// Looks up one of this session's m-lines by its mid, with its kind.
    pub fn media_by_mid(&self, mid: &str) -> Option<(MediaId, Kind)> {
        if mid.is_empty() || mid.len() > 16 {
            return None;
        }
        let m = self.rtc.media(Mid::from(mid))?;
        Some((MediaId(m.mid()), Kind::from_str0m(m.kind())))
    }

    /// Asks the publisher for a keyframe on one simulcast layer of a track.
    /// Returns false when that layer's stream does not exist (nothing was asked).
    pub fn request_keyframe_layer(&mut self, media: MediaId, layer: Layer) -> bool {
        let mut api = self.rtc.direct_api();
        match api.stream_rx_by_mid(media.0, Some(layer.0)) {
            Some(rx) => {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                true
            }
            None => false,
        }
    }

    /// Asks the publisher for a keyframe on one of its tracks.
    /// Returns false when no stream of that track exists yet (nothing was asked).
    pub fn request_keyframe(&mut self, media: MediaId) -> bool {
        let mut api = self.rtc.direct_api();
        if let Some(rx) = api.stream_rx_by_mid(media.0, None) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            return true;
        }
        // Simulcast: ask every layer we receive on that mid.
        let mut sent = false;
        for r in self.ssrc_routes.iter().filter(|r| r.media == media) {
            if let Some(rx) = api.stream_rx(&r.ssrc) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                sent = true;
            }
        }
        sent
    }

    /// Tells the bandwidth estimator what we would like to send to this peer: it probes toward
    /// `desired` and keeps at least `minimum` flowing (padding if media is short).
    pub fn set_bitrate_goal(&mut self, minimum: u64, desired: u64) {
        self.rtc
            .bwe()
            .set_bitrate(Bitrate::bps(minimum), Bitrate::bps(desired.max(minimum)));
    }
}
