//! The generator's WebRTC clients (webrtc-rs): how a peer connection is built, what a
//! publisher sends (synthetic VP8 simulcast and Opus-sized audio) and what a player counts.
//! Signaling lives elsewhere (`gax.rs`, `janus.rs`): this module only touches media.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::header::Header;
use webrtc::rtp::packet::Packet;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpHeaderExtensionCapability, RTPCodecType,
};
use webrtc::rtp_transceiver::rtp_sender::RTCRtpSender;
use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::{TrackLocal, TrackLocalWriter};

/// Microseconds since the Unix epoch: the send time carried in the last 8 bytes of every
/// payload, so a player on the same host measures the one-way forwarding latency.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A webrtc-rs peer connection with the default interceptors (NACK, reports, TWCC feedback)
/// and the mid / rid header extensions simulcast needs.
pub async fn peer_connection() -> anyhow::Result<Arc<RTCPeerConnection>> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    for uri in [
        webrtc::sdp::extmap::SDES_MID_URI,
        webrtc::sdp::extmap::SDES_RTP_STREAM_ID_URI,
    ] {
        media.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: uri.to_owned(),
            },
            RTPCodecType::Video,
            None,
        )?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media)?;
    let mut settings = SettingEngine::default();
    // The server may be on loopback; gather loopback candidates too.
    settings.set_include_loopback_candidate(true);
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    Ok(Arc::new(
        api.new_peer_connection(RTCConfiguration::default()).await?,
    ))
}

/// A receive-only video and audio m-line, for a player that makes the offer (WHEP).
pub async fn add_receivers(pc: &RTCPeerConnection) -> anyhow::Result<()> {
    for kind in [RTPCodecType::Video, RTPCodecType::Audio] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                send_encodings: Vec::new(),
            }),
        )
        .await?;
    }
    Ok(())
}

/// Makes an offer, waits for every candidate (signaling without trickle) and sets it as the
/// local description; returns its SDP.
pub async fn local_offer(pc: &RTCPeerConnection) -> anyhow::Result<String> {
    let offer = pc.create_offer(None).await?;
    set_local(pc, offer).await
}

/// Applies the server's offer and answers it, with every candidate; returns the answer's SDP.
pub async fn local_answer(pc: &RTCPeerConnection, offer: String) -> anyhow::Result<String> {
    pc.set_remote_description(RTCSessionDescription::offer(offer)?)
        .await?;
    let answer = pc.create_answer(None).await?;
    set_local(pc, answer).await
}

/// Applies the server's answer to our offer.
pub async fn remote_answer(pc: &RTCPeerConnection, answer: String) -> anyhow::Result<()> {
    pc.set_remote_description(RTCSessionDescription::answer(answer)?)
        .await?;
    Ok(())
}

async fn set_local(pc: &RTCPeerConnection, desc: RTCSessionDescription) -> anyhow::Result<String> {
    let mut gathered = pc.gathering_complete_promise().await;
    pc.set_local_description(desc).await?;
    let _ = gathered.recv().await;
    Ok(pc
        .local_description()
        .await
        .context("no local description")?
        .sdp)
}

/// How one publisher's video looks.
#[derive(Debug, Clone, Copy)]
pub struct VideoShape {
    pub fps: u32,
    /// Packets per frame of the top layer.
    pub packets_per_frame: u32,
    /// Payload bytes per packet of the top layer.
    pub payload: usize,
    /// 1 (no simulcast) or 3 (f, h, q).
    pub layers: usize,
}

/// One simulcast layer: its RID, picture size and packets.
#[derive(Debug, Clone, Copy)]
struct Layer {
    rid: &'static str,
    width: u16,
    height: u16,
    packets_per_frame: u32,
    payload: usize,
}

impl VideoShape {
    /// Highest layer first (f, h, q), as browsers and janus.js order them: Janus takes the
    /// first RID for the highest layer, GAX goes by the names.
    fn layers(&self) -> Vec<Layer> {
        let top = Layer {
            rid: "f",
            width: 1280,
            height: 720,
            packets_per_frame: self.packets_per_frame.max(1),
            payload: self.payload.max(64),
        };
        if self.layers <= 1 {
            return vec![top];
        }
        vec![
            top,
            Layer {
                rid: "h",
                width: 640,
                height: 360,
                packets_per_frame: top.packets_per_frame.div_ceil(3),
                payload: top.payload,
            },
            Layer {
                rid: "q",
                width: 320,
                height: 180,
                packets_per_frame: 1,
                payload: (top.payload / 3).max(64),
            },
        ]
    }
}

/// The tracks of a publisher, added before its offer is made.
pub struct PublisherTracks {
    video: Vec<(Layer, Arc<TrackLocalStaticRTP>)>,
    audio: Arc<TrackLocalStaticRTP>,
    video_sender: Arc<RTCRtpSender>,
    audio_sender: Arc<RTCRtpSender>,
    shape: VideoShape,
}

/// Adds a publisher's video (one encoding per layer) and audio to `pc`.
pub async fn add_publisher_tracks(
    pc: &RTCPeerConnection,
    name: &str,
    shape: VideoShape,
) -> anyhow::Result<PublisherTracks> {
    let vp8 = RTCRtpCodecCapability {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        ..Default::default()
    };
    let layers = shape.layers();
    let simulcast = layers.len() > 1;
    let mut video = Vec::new();
    for layer in layers {
        let track = Arc::new(if simulcast {
            TrackLocalStaticRTP::new_with_rid(
                vp8.clone(),
                "video".to_owned(),
                layer.rid.to_owned(),
                name.to_owned(),
            )
        } else {
            TrackLocalStaticRTP::new(vp8.clone(), "video".to_owned(), name.to_owned())
        });
        video.push((layer, track));
    }
    let video_sender = pc
        .add_track(Arc::clone(&video[0].1) as Arc<dyn TrackLocal + Send + Sync>)
        .await?;
    for (_, track) in &video[1..] {
        video_sender
            .add_encoding(Arc::clone(track) as Arc<dyn TrackLocal + Send + Sync>)
            .await?;
    }
    let audio = Arc::new(TrackLocalStaticRTP::new(
        RTCRtpCodecCapability {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            ..Default::default()
        },
        "audio".to_owned(),
        name.to_owned(),
    ));
    let audio_sender = pc
        .add_track(Arc::clone(&audio) as Arc<dyn TrackLocal + Send + Sync>)
        .await?;
    Ok(PublisherTracks {
        video,
        audio,
        video_sender,
        audio_sender,
        shape,
    })
}

/// Is any of these RTCP packets a keyframe request (PLI or FIR)?
fn asks_keyframe(pkts: &[Box<dyn webrtc::rtcp::packet::Packet + Send + Sync>]) -> bool {
    pkts.iter()
        .any(|p| p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>())
}

/// The VP8 payload of one packet: RFC 7741 descriptor as browsers send it (15-bit picture id,
/// TL0PICIDX, temporal layer 0 with the Y bit), on a frame's first packet the payload header
/// (and on keyframes the start code and picture size), zeros, and the send time in the last
/// 8 bytes.
fn vp8_payload(layer: &Layer, first: bool, key: bool, picture_id: u16, tl0: u8) -> Vec<u8> {
    let mut p = vec![0u8; layer.payload.max(32)];
    // X, S on a frame's first packet, partition 0; I, L, T; M + picture id; TL0PICIDX;
    // TID 0 with Y.
    p[0] = 0x80 | if first { 0x10 } else { 0 };
    p[1] = 0xe0;
    p[2] = 0x80 | ((picture_id >> 8) as u8 & 0x7f);
    p[3] = picture_id as u8;
    p[4] = tl0;
    p[5] = 0x20;
    if first {
        // Frame tag: show_frame, P bit clear on keyframes.
        p[6] = if key { 0x10 } else { 0x11 };
        if key {
            p[9..12].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            p[12..14].copy_from_slice(&layer.width.to_le_bytes());
            p[14..16].copy_from_slice(&layer.height.to_le_bytes());
        }
    }
    let n = p.len();
    p[n - 8..].copy_from_slice(&now_us().to_be_bytes());
    p
}

/// Starts sending once negotiated: every layer at `fps`, a keyframe every 2 s and whenever
/// the server asks for one on that layer; audio every 20 ms. Runs until `stop`.
pub fn start_sending(tracks: PublisherTracks, stop: Arc<AtomicBool>) {
    let simulcast = tracks.video.len() > 1;
    let fps = tracks.shape.fps.max(1);
    for (layer, track) in tracks.video {
        let want_key = Arc::new(AtomicBool::new(true));
        {
            // Keyframe requests for this layer (webrtc-rs wants RTCP read for its interceptors).
            let (sender, want_key, rid) =
                (tracks.video_sender.clone(), want_key.clone(), layer.rid);
            tokio::spawn(async move {
                loop {
                    let read = if simulcast {
                        sender.read_rtcp_simulcast(rid).await
                    } else {
                        sender.read_rtcp().await
                    };
                    match read {
                        Ok((pkts, _)) if asks_keyframe(&pkts) => {
                            want_key.store(true, Ordering::Relaxed)
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            });
        }
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / fps);
            let (mut seq, mut ts, mut frame) = (rand_u16(), 0u32, 0u64);
            let mut picture_id = rand_u16() & 0x7fff;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let key =
                    want_key.swap(false, Ordering::Relaxed) || frame % u64::from(2 * fps) == 0;
                for i in 0..layer.packets_per_frame {
                    let payload = vp8_payload(&layer, i == 0, key, picture_id, frame as u8);
                    let pkt = Packet {
                        header: Header {
                            version: 2,
                            marker: i + 1 == layer.packets_per_frame,
                            sequence_number: seq,
                            timestamp: ts,
                            ..Default::default()
                        },
                        payload: Bytes::from(payload),
                    };
                    seq = seq.wrapping_add(1);
                    if track.write_rtp(&pkt).await.is_err() {
                        return;
                    }
                }
                ts = ts.wrapping_add(90_000 / fps);
                picture_id = (picture_id + 1) & 0x7fff;
                frame += 1;
            }
        });
    }
    let (audio, audio_sender) = (tracks.audio, tracks.audio_sender);
    tokio::spawn(async move { while audio_sender.read_rtcp().await.is_ok() {} });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let (mut seq, mut ts) = (rand_u16(), 0u32);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let mut p = vec![0xfcu8; 80];
            p[72..].copy_from_slice(&now_us().to_be_bytes());
            let pkt = Packet {
                header: Header {
                    version: 2,
                    sequence_number: seq,
                    timestamp: ts,
                    ..Default::default()
                },
                payload: Bytes::from(p),
            };
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
            if audio.write_rtp(&pkt).await.is_err() {
                return;
            }
        }
    });
}

/// A random-enough 16-bit start (sequence numbers, picture ids) without another dependency.
fn rand_u16() -> u16 {
    (now_us().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as u16
}

/// What every player counts (shared by all players).
#[derive(Default)]
pub struct Tally {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// Packets the players' sequence numbers say they should have had.
    pub expected: AtomicU64,
    /// One-way latencies of this second, µs.
    pub latencies: Mutex<Vec<u32>>,
    pub players_up: AtomicU64,
    pub publishers_up: AtomicU64,
    /// Per player: did a packet arrive since the last look ([`Tally::take_receiving`]).
    heard: Vec<AtomicBool>,
}

impl Tally {
    pub fn new(players: usize) -> Self {
        Tally {
            heard: (0..players).map(|_| AtomicBool::new(false)).collect(),
            ..Default::default()
        }
    }

    /// How many players received something since the last call.
    pub fn take_receiving(&self) -> u64 {
        self.heard
            .iter()
            .filter(|h| h.swap(false, Ordering::Relaxed))
            .count() as u64
    }

    /// This second's latencies, taken out.
    pub fn take_latencies(&self) -> Vec<u32> {
        std::mem::take(&mut *self.latencies.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Extends 16-bit sequence numbers and counts how many a stream should have delivered.
#[derive(Default)]
struct Sequence {
    highest: Option<u64>,
}

impl Sequence {
    /// How many more packets the stream should have delivered once `seq` arrived (0 for a
    /// late or repeated one).
    fn advance(&mut self, seq: u16) -> u64 {
        let seq = u64::from(seq);
        let Some(highest) = self.highest else {
            self.highest = Some(seq + 0x1_0000);
            return 1;
        };
        let mut ext = (highest & !0xffff) | seq;
        if ext + 0x8000 < highest {
            ext += 0x1_0000;
        } else if ext > highest + 0x8000 {
            ext -= 0x1_0000;
        }
        if ext > highest {
            self.highest = Some(ext);
            ext - highest
        } else {
            0
        }
    }
}

/// Counts every RTP packet `pc` (player number `player`) receives into `tally`: packets,
/// bytes, loss from sequence numbers, and the one-way latency from the send time in the
/// payload.
pub fn count_received(pc: &RTCPeerConnection, tally: Arc<Tally>, player: usize) {
    pc.on_track(Box::new(move |track, _, _| {
        let t = tally.clone();
        // The handler must return at once (webrtc-rs runs them one after another): read in a
        // task of its own.
        tokio::spawn(async move {
            let mut sequence = Sequence::default();
            while let Ok((pkt, _)) = track.read_rtp().await {
                let now = now_us();
                let n = pkt.payload.len();
                t.packets.fetch_add(1, Ordering::Relaxed);
                t.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(h) = t.heard.get(player) {
                    h.store(true, Ordering::Relaxed);
                }
                if n >= 8 {
                    let mut sent = [0u8; 8];
                    sent.copy_from_slice(&pkt.payload[n - 8..]);
                    let sent = u64::from_be_bytes(sent);
                    if sent > 0 && now >= sent {
                        let lat = u32::try_from(now - sent).unwrap_or(u32::MAX);
                        t.latencies
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(lat);
                    }
                }
                let more = sequence.advance(pkt.header.sequence_number);
                t.expected.fetch_add(more, Ordering::Relaxed);
            }
        });
        Box::pin(async {})
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiving_counts_players_heard_since_the_last_look() {
        let t = Tally::new(3);
        t.heard[0].store(true, Ordering::Relaxed);
        t.heard[2].store(true, Ordering::Relaxed);
        assert_eq!(t.take_receiving(), 2);
        assert_eq!(t.take_receiving(), 0, "reset by the look");
    }

    #[test]
    fn sequence_counts_gaps_wraps_and_ignores_late_packets() {
        let mut s = Sequence::default();
        assert_eq!(s.advance(65_534), 1);
        assert_eq!(s.advance(65_535), 1);
        assert_eq!(s.advance(1), 2, "0 was lost across the wrap");
        assert_eq!(s.advance(0), 0, "late");
        assert_eq!(s.advance(1), 0, "repeated");
        assert_eq!(s.advance(5), 4);
    }

    #[test]
    fn simulcast_layers_go_highest_first_and_shrink() {
        let shape = VideoShape {
            fps: 30,
            packets_per_frame: 3,
            payload: 1100,
            layers: 3,
        };
        let layers = shape.layers();
        let rids: Vec<_> = layers.iter().map(|l| l.rid).collect();
        assert_eq!(rids, ["f", "h", "q"]);
        let rate = |l: &Layer| l.packets_per_frame as usize * l.payload;
        assert!(rate(&layers[0]) > rate(&layers[1]) && rate(&layers[1]) > rate(&layers[2]));
        assert_eq!(VideoShape { layers: 1, ..shape }.layers().len(), 1);
    }

    #[test]
    fn vp8_payload_descriptor_and_keyframe_header() {
        let layer = &VideoShape {
            fps: 30,
            packets_per_frame: 3,
            payload: 1100,
            layers: 3,
        }
        .layers()[1];
        let p = vp8_payload(layer, true, true, 0x1234, 7);
        assert_eq!(&p[..6], &[0x90, 0xe0, 0x92, 0x34, 7, 0x20]);
        assert_eq!(p[6] & 1, 0, "P bit clear: keyframe");
        assert_eq!(&p[9..12], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([p[12], p[13]]), 640);
        let q = vp8_payload(layer, false, false, 0x1234, 7);
        assert_eq!(q[0], 0x80, "no S bit after the first packet");
        assert_eq!(q.len(), 1100);
        // As the SFU reads them.
        let seen = sfu_core::vp8::parse(&p).expect("a valid descriptor");
        assert!(seen.keyframe && seen.picture_id_15);
        assert_eq!(
            (seen.picture_id, seen.tl0_pic_idx, seen.tid, seen.size),
            (Some(0x1234), Some(7), Some(0), Some((640, 360)))
        );
        let seen = sfu_core::vp8::parse(&vp8_payload(layer, true, false, 1, 1)).unwrap();
        assert!(!seen.keyframe);
    }
}
