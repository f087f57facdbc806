//! Fuzz entry points: GAX's own parsers of network bytes, one function per target, each taking
//! arbitrary bytes and checking what must hold for any input (no panic, and the invariants
//! named in each). libFuzzer drives them from `fuzz/` (`scripts/fuzz`); `tests/fuzz_corpora.rs`
//! replays the checked-in corpora through the same functions as ordinary tests.

use std::time::{Duration, Instant};

use crate::demux::{self, Proto};
use crate::rewrite::Rewriter;
use crate::session::Vp8;

/// The first look at a datagram: a classification agrees with RFC 7983's first-byte ranges
/// (and RFC 5761's RTP/RTCP split).
pub fn demux(data: &[u8]) {
    if let Ok(proto) = demux::check(data) {
        let b0 = data[0];
        let expected = match b0 {
            0..=3 => Proto::Stun,
            20..=63 => Proto::Dtls,
            // RFC 5761: RTCP packet types 192..=223 in the second byte; anything else there
            // (marker bit and payload type) is RTP.
            128..=191 => match data.get(1) {
                Some(192..=223) => Proto::Rtcp,
                _ => Proto::Rtp,
            },
            _ => panic!("byte {b0} accepted as {proto:?}"),
        };
        assert_eq!(
            proto,
            expected,
            "first bytes {:?}",
            &data[..data.len().min(2)]
        );
    }
}

/// The VP8 payload descriptor: parsing and building the per-subscriber patch for any picture
/// id never panic.
pub fn vp8(data: &[u8]) {
    let Some(v) = Vp8::parse(data) else {
        return;
    };
    if let (Some(layout), Some((pid, tl0))) = (v.layout, v.ids()) {
        // Any 15-bit picture id the rewriter may choose, and the one the stream had.
        let other = u16::from_le_bytes([data[0], *data.get(1).unwrap_or(&0)]) & 0x7fff;
        let _ = layout.patch(other, tl0.wrapping_add(1));
        let _ = layout.patch(pid, tl0);
    }
}

/// The per-subscriber rewriter driven by an arbitrary sequence of switches, skips and packets
/// (7 bytes each): never a sequence number of 0 or one that goes back after a packet was sent.
pub fn rewriter(data: &[u8]) {
    let t0 = Instant::now();
    let mut r = Rewriter::new();
    let mut last_sent = 0u64;
    for (i, op) in data.chunks_exact(7).enumerate() {
        let seq = u64::from(u16::from_le_bytes([op[1], op[2]])) + (u64::from(op[3]) << 16);
        let ts = u32::from_le_bytes([op[3], op[4], op[5], op[6]]);
        let at = t0 + Duration::from_millis(i as u64 * 10 + u64::from(op[4] & 0x1f));
        let vp8 =
            (op[0] & 0x08 != 0).then(|| (u16::from(op[5]) << 7 | u16::from(op[6] >> 1), op[6]));
        match op[0] & 0x03 {
            0 => r.switch_to(op[0] >> 4, seq, ts, at, 90_000, vp8),
            1 => {
                let _ = r.skip(seq, vp8.map(|v| v.0));
            }
            _ => {
                if let Some(out) = r.rewrite(seq, ts, at, vp8) {
                    assert!(out.seq != 0, "sequence number 0 sent");
                    if let Some((pid, _)) = out.vp8 {
                        assert!(pid < 0x8000, "picture id {pid} beyond 15 bits");
                    }
                    last_sent = last_sent.max(out.seq);
                }
            }
        }
    }
}
