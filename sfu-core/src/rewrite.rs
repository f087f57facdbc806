//! Per-consumer RTP rewriting, so a subscriber's decoder sees one continuous stream even when
//! the source changes underneath (a simulcast switch from one layer's SSRC to another's).
//!
//! Within one source, outgoing = incoming + offset. At a switch the offsets are recomputed so
//! that the sequence number, the timestamp, the VP8 picture id and TL0PICIDX each continue one
//! step after the last value sent. Outgoing sequence numbers start at 1: a fresh SRTP receiver
//! assumes rollover counter 0, so forwarding a long-running publisher's numbers unchanged would
//! break decryption after 65 536 packets.

use std::time::Instant;

/// One packet's rewritten header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub seq: u64,
    pub timestamp: u32,
    /// New VP8 (picture id, TL0PICIDX), when the packet carries them and a rewrite is needed.
    pub vp8: Option<(u16, u8)>,
}

/// The rewriting state of one consumer.
#[derive(Debug, Clone, Default)]
pub struct Rewriter {
    source: Option<Source>,
    last_seq: u64,
    last_ts: u32,
    last_arrival: Option<Instant>,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
    /// Picture id space (0x80 or 0x8000) of the stream the subscriber has seen.
    pid_modulus: u32,
    /// Incoming picture id of the last skipped frame.
    last_skipped_pid: Option<u16>,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    id: u8,
    /// out = in + seq_offset (wrapping in u64: offsets may be "negative").
    seq_offset: u64,
    ts_offset: u32,
    pid_offset: u16,
    tl0_offset: u8,
}

impl Rewriter {
    pub fn new() -> Self {
        Rewriter {
            pid_modulus: 0x8000,
            ..Default::default()
        }
    }

    /// The source (layer) currently forwarded, if any.
    pub fn source(&self) -> Option<u8> {
        self.source.map(|s| s.id)
    }

    /// Starts forwarding `source` from this packet on (call it on the first packet of the new
    /// source, normally a keyframe). `clock_rate` converts the arrival gap into timestamp units.
    pub fn switch_to(
        &mut self,
        source: u8,
        seq: u64,
        timestamp: u32,
        arrival: Instant,
        clock_rate: u32,
        vp8: Option<(u16, u8)>,
    ) {
        let (out_seq, out_ts) = match self.last_arrival {
            None => (1, timestamp),
            Some(last) => {
                let gap_ms = arrival.saturating_duration_since(last).as_millis() as u64;
                let step = ((gap_ms * u64::from(clock_rate)) / 1000).max(1) as u32;
                (self.last_seq + 1, self.last_ts.wrapping_add(step))
            }
        };
        let (pid_offset, tl0_offset) = match (vp8, self.last_pid, self.last_tl0) {
            (Some((pid, tl0)), Some(last_pid), Some(last_tl0)) => {
                let m = self.pid_modulus as u16;
                let next = (last_pid.wrapping_add(1)) % m;
                (
                    next.wrapping_sub(pid % m).wrapping_add(m) % m,
                    last_tl0.wrapping_add(1).wrapping_sub(tl0),
                )
            }
            _ => (0, 0),
        };
        self.source = Some(Source {
            id: source,
            seq_offset: out_seq.wrapping_sub(seq),
            ts_offset: out_ts.wrapping_sub(timestamp),
            pid_offset,
            tl0_offset,
        });
    }

    /// Leaves out a packet of the current source (a dropped temporal layer) without a hole:
    /// the packets after it take its sequence number, and the frames after a skipped frame
    /// (`picture_id`) its picture id. Only the next packet in order can be skipped this way;
    /// returns false otherwise (the caller then forwards it).
    pub fn skip(&mut self, seq: u64, picture_id: Option<u16>) -> bool {
        let m = self.pid_modulus;
        let last_sent_pid = self.last_pid;
        let Some(s) = self.source.as_mut() else {
            return false;
        };
        if seq.wrapping_add(s.seq_offset) != self.last_seq + 1 {
            return false;
        }
        s.seq_offset = s.seq_offset.wrapping_sub(1);
        if let Some(pid) = picture_id {
            let mapped = ((u32::from(pid) + u32::from(s.pid_offset)) % m) as u16;
            // The first packet of a skipped frame maps onto the next picture id: from here on
            // every picture id moves down by one.
            if Some(mapped) != last_sent_pid && self.last_skipped_pid != Some(pid) {
                s.pid_offset = ((u32::from(s.pid_offset) + m - 1) % m) as u16;
            }
            self.last_skipped_pid = Some(pid);
        }
        true
    }

    /// Rewrites a packet of the current source. `None` if no source is selected yet.
    pub fn rewrite(
        &mut self,
        seq: u64,
        timestamp: u32,
        arrival: Instant,
        vp8: Option<(u16, u8)>,
    ) -> Option<Rewritten> {
        let s = self.source?;
        let out_seq = seq.wrapping_add(s.seq_offset);
        // A packet reordered from before the switch would map below what we sent: drop it
        // rather than send a sequence number from the past.
        if out_seq == 0 || out_seq > (1 << 62) {
            return None;
        }
        let out_ts = timestamp.wrapping_add(s.ts_offset);
        let out_vp8 = vp8.map(|(pid, tl0)| {
            let m = self.pid_modulus as u16;
            (
                pid.wrapping_add(s.pid_offset) % m,
                tl0.wrapping_add(s.tl0_offset),
            )
        });
        if out_seq > self.last_seq || self.last_arrival.is_none() {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
            self.last_arrival = Some(arrival);
            if let Some((p, t)) = out_vp8 {
                self.last_pid = Some(p);
                self.last_tl0 = Some(t);
            }
        }
        Some(Rewritten {
            seq: out_seq,
            timestamp: out_ts,
            vp8: out_vp8.filter(|_| s.pid_offset != 0 || s.tl0_offset != 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_source_starts_at_one_and_keeps_timestamps() {
        let t0 = Instant::now();
        let mut r = Rewriter::new();
        assert_eq!(r.rewrite(10, 0, t0, None), None, "no source yet");
        r.switch_to(0, 70_000, 5_000, t0, 90_000, Some((100, 3)));
        let a = r.rewrite(70_000, 5_000, t0, Some((100, 3))).unwrap();
        assert_eq!((a.seq, a.timestamp, a.vp8), (1, 5_000, None));
        let b = r.rewrite(70_001, 8_000, t0, Some((101, 3))).unwrap();
        assert_eq!((b.seq, b.timestamp), (2, 8_000));
        assert_eq!(
            r.rewrite(69_000, 0, t0, None),
            None,
            "from before the first packet"
        );
    }

    #[test]
    fn a_switch_continues_every_counter() {
        let t0 = Instant::now();
        let mut r = Rewriter::new();
        r.switch_to(0, 100, 1_000, t0, 90_000, Some((500, 10)));
        for i in 0..5u64 {
            r.rewrite(
                100 + i,
                1_000 + i as u32 * 3000,
                t0,
                Some((500 + i as u16, 10)),
            )
            .unwrap();
        }
        // Last sent: seq 5, ts 13_000, pid 504, tl0 10. Switch to another layer whose counters
        // are unrelated, 33 ms later.
        let t1 = t0 + Duration::from_millis(33);
        r.switch_to(2, 9_000, 777_777, t1, 90_000, Some((20_000, 200)));
        assert_eq!(r.source(), Some(2));
        let x = r.rewrite(9_000, 777_777, t1, Some((20_000, 200))).unwrap();
        assert_eq!(x.seq, 6);
        assert_eq!(x.timestamp, 13_000 + 33 * 90);
        assert_eq!(x.vp8, Some((505, 11)));
        let y = r
            .rewrite(9_001, 777_777 + 3000, t1, Some((20_001, 200)))
            .unwrap();
        assert_eq!(
            (y.seq, y.timestamp, y.vp8),
            (7, 13_000 + 33 * 90 + 3000, Some((506, 11)))
        );
    }

    #[test]
    fn skipped_frames_leave_no_holes() {
        let t0 = Instant::now();
        let mut r = Rewriter::new();
        r.switch_to(0, 100, 0, t0, 90_000, Some((10, 1)));
        // Frame pid 10 (TID 0, two packets) sent; frame pid 11 (TID 2, two packets) skipped;
        // frame pid 12 sent.
        assert_eq!(r.rewrite(100, 0, t0, Some((10, 1))).unwrap().seq, 1);
        assert_eq!(r.rewrite(101, 0, t0, Some((10, 1))).unwrap().seq, 2);
        assert!(r.skip(102, Some(11)));
        assert!(r.skip(103, Some(11)));
        let a = r.rewrite(104, 3000, t0, Some((12, 1))).unwrap();
        assert_eq!(a.seq, 3, "no sequence gap");
        assert_eq!(a.vp8, Some((11, 1)), "no picture id gap");
        let b = r.rewrite(105, 3000, t0, Some((12, 1))).unwrap();
        assert_eq!((b.seq, b.vp8), (4, Some((11, 1))));
        // Out of order: cannot be skipped cleanly.
        assert!(!r.skip(103, Some(11)));
        assert!(!Rewriter::new().skip(1, None), "no source");
    }

    #[test]
    fn picture_ids_wrap_in_15_bits() {
        let t0 = Instant::now();
        let mut r = Rewriter::new();
        r.switch_to(0, 1, 0, t0, 90_000, Some((0x7ffe, 255)));
        r.rewrite(1, 0, t0, Some((0x7ffe, 255))).unwrap();
        r.switch_to(1, 50, 0, t0, 90_000, Some((3, 0)));
        let x = r.rewrite(50, 0, t0, Some((3, 0))).unwrap();
        assert_eq!(x.vp8, Some((0x7fff, 0)));
        let y = r.rewrite(51, 0, t0, Some((4, 0))).unwrap();
        assert_eq!(y.vp8, Some((0, 0)), "wraps to 0");
    }
}
