//! The one packet type of the media path, from the publisher's session to every consumer.
//!
//! A [`Packet`] is made once per incoming RTP packet: the publisher's session fills what it
//! decrypted, then the producer's ingest step ([`crate::producer::Producer::ingest`])
//! fills what it classified (simulcast layer, codec, VP8 descriptor). From then on it is only
//! read: by every consumer on this worker, and, handed over a link ([`crate::relay`]), by the
//! consumers on other workers. Its payload is one refcounted buffer that nobody copies until it
//! is encrypted into a subscriber's datagram.

use std::sync::Arc;
use std::time::Instant;

use super::{CodecKey, Layer, MediaId, Vp8Layout};
use crate::vp8::Vp8Info;

/// One RTP packet of a published track.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The track (m-line) in the publisher's session.
    pub media: MediaId,
    /// The simulcast RID it arrived with, when the publisher sends several layers.
    pub rid: Option<Layer>,
    /// Simulcast layer index (0 for a single-stream track). Set at ingest.
    pub layer: u8,
    /// True when the track is simulcast (the packet arrived with a RID). Set at ingest.
    pub simulcast: bool,
    /// The publisher's payload type, and its codec (resolved once per producer at ingest).
    pub pt: u8,
    pub codec: Option<CodecKey>,
    pub seq: u64,
    pub timestamp: u32,
    pub marker: bool,
    pub audio_level: Option<i8>,
    pub voice_activity: Option<bool>,
    pub arrival: Instant,
    /// The VP8 payload descriptor, parsed once at ingest (simulcast VP8 tracks only).
    pub vp8: Option<Vp8>,
    /// The decrypted payload, shared by every consumer on every worker.
    pub payload: Arc<[u8]>,
}

/// What a VP8 payload descriptor says, and where its rewritable fields sit.
#[derive(Debug, Clone, Copy)]
pub struct Vp8 {
    /// Picture id, TL0PICIDX, temporal layer, keyframe and frame size.
    pub info: Vp8Info,
    /// Where the picture id and TL0PICIDX are, for patching them per subscriber while the
    /// payload is copied into its datagram (`None` when the descriptor cannot be patched).
    pub layout: Option<Vp8Layout>,
}

impl Vp8 {
    /// Parses the descriptor at the front of `payload`; `None` if it is malformed.
    pub fn parse(payload: &[u8]) -> Option<Vp8> {
        let info = crate::vp8::parse(payload)?;
        Some(Vp8 {
            info,
            layout: Vp8Layout::parse(payload),
        })
    }

    /// (picture id, TL0PICIDX) as the rewriter continues them; `None` without a picture id.
    pub fn ids(&self) -> Option<(u16, u8)> {
        Some((self.info.picture_id?, self.info.tl0_pic_idx.unwrap_or(0)))
    }
}

#[cfg(test)]
impl Packet {
    /// A single-stream packet as a session makes it, before ingest (for unit tests).
    pub(crate) fn test(media: MediaId, seq: u64, timestamp: u32, payload: Arc<[u8]>) -> Packet {
        Packet {
            media,
            rid: None,
            layer: 0,
            simulcast: false,
            pt: 96,
            codec: None,
            seq,
            timestamp,
            marker: false,
            audio_level: None,
            voice_activity: None,
            arrival: Instant::now(),
            vp8: None,
            payload,
        }
    }
}
