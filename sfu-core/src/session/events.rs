//! What str0m's events mean to GAX: tracks published and send slots, RTP packets (with their
//! track and layer from a per-SSRC cache), keyframe requests, estimates and feedback counts.

use super::*;

impl Session {
    pub(super) fn translate(&mut self, ev: Event) -> Option<SessionEvent> {
        match ev {
            Event::Connected => {
                self.connected = true;
                Some(SessionEvent::Connected)
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.mark_closed();
                Some(SessionEvent::Closed)
            }
            Event::Closed => {
                self.mark_closed();
                Some(SessionEvent::Closed)
            }
            Event::MediaAdded(m) => {
                let media = MediaId(m.mid);
                let kind = Kind::from_str0m(m.kind);
                if self.local_mids.contains(&media) {
                    return None;
                }
                if m.direction.is_receiving() {
                    Some(SessionEvent::Published { media, kind })
                } else if m.direction.is_sending() {
                    Some(SessionEvent::SendSlot { media, kind })
                } else {
                    None
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })
            | Event::EgressBitrateEstimate(BweKind::Remb { estimate, .. }) => {
                Some(SessionEvent::Estimate(estimate.as_u64()))
            }
            Event::MediaEgressStats(s) => {
                self.record_feedback(StreamFeedback {
                    mid: MediaId(s.mid),
                    rid: s.rid,
                    egress: true,
                    nacks: s.nacks,
                    plis: s.plis,
                    firs: s.firs,
                });
                None
            }
            Event::MediaIngressStats(s) => {
                self.record_feedback(StreamFeedback {
                    mid: MediaId(s.mid),
                    rid: s.rid,
                    egress: false,
                    nacks: s.nacks,
                    plis: s.plis,
                    firs: s.firs,
                });
                None
            }
            Event::PeerStats(s) => {
                self.rtt = s.rtt;
                None
            }
            Event::KeyframeRequest(r) => Some(SessionEvent::KeyframeRequest {
                media: MediaId(r.mid),
            }),
            Event::RtpPacket(p) => {
                let ssrc = p.header.ssrc;
                let route = match self.ssrc_routes.iter().find(|r| r.ssrc == ssrc) {
                    Some(r) => *r,
                    None => {
                        let mut api = self.rtc.direct_api();
                        let stream = api.stream_rx(&ssrc)?;
                        let r = SsrcRoute {
                            ssrc,
                            media: MediaId(stream.mid()),
                            layer: stream.rid().map(Layer),
                        };
                        self.ssrc_routes.push(r);
                        r
                    }
                };
                let ext = &p.header.ext_vals;
                Some(SessionEvent::Rtp(Packet {
                    media: route.media,
                    rid: route.layer,
                    layer: 0,
                    simulcast: false,
                    pt: *p.header.payload_type,
                    codec: None,
                    seq: *p.seq_no,
                    timestamp: p.header.timestamp,
                    marker: p.header.marker,
                    audio_level: ext.audio_level,
                    voice_activity: ext.voice_activity,
                    arrival: p.timestamp,
                    vp8: None,
                    payload: p.payload,
                }))
            }
            _ => None,
        }
    }

    fn record_feedback(&mut self, entry: StreamFeedback) {
        let StreamFeedback {
            mid, rid, egress, ..
        } = entry;
        match self
            .feedback
            .iter_mut()
            .find(|f| f.mid == mid && f.rid == rid && f.egress == egress)
        {
            Some(f) => *f = entry,
            None => self.feedback.push(entry),
        }
    }
}
