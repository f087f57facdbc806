//! What the SFU needs to know from a VP8 RTP payload (RFC 7741) without decoding it: the
//! picture id and TL0PICIDX (rewritten across simulcast switches), the temporal layer, whether
//! the packet starts a keyframe, and a keyframe's frame size.
//!
//! Reads a handful of bytes at the front of the payload; never panics, whatever the input.

/// Facts from one VP8 payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Info {
    /// 7- or 15-bit picture id, if present.
    pub picture_id: Option<u16>,
    /// True when the picture id is the 15-bit form.
    pub picture_id_15: bool,
    pub tl0_pic_idx: Option<u8>,
    /// Temporal layer index, if present.
    pub tid: Option<u8>,
    /// This packet starts a keyframe (S=1, partition 0, P bit clear).
    pub keyframe: bool,
    /// Width and height from the keyframe header (only on a keyframe's first packet).
    pub size: Option<(u16, u16)>,
}

/// Parses the descriptor at the front of `payload`; `None` if it is truncated or malformed.
pub fn parse(payload: &[u8]) -> Option<Vp8Info> {
    let b0 = *payload.first()?;
    let mut i = 1;
    let mut info = Vp8Info::default();
    if b0 & 0x80 != 0 {
        let x = *payload.get(i)?;
        i += 1;
        let (has_pid, has_tl0, has_tid, has_key) =
            (x & 0x80 != 0, x & 0x40 != 0, x & 0x20 != 0, x & 0x10 != 0);
        if has_tl0 && !has_tid {
            return None;
        }
        if has_pid {
            let p = *payload.get(i)?;
            i += 1;
            if p & 0x80 != 0 {
                let lo = *payload.get(i)?;
                i += 1;
                info.picture_id = Some((u16::from(p & 0x7f) << 8) | u16::from(lo));
                info.picture_id_15 = true;
            } else {
                info.picture_id = Some(u16::from(p & 0x7f));
            }
        }
        if has_tl0 {
            info.tl0_pic_idx = Some(*payload.get(i)?);
            i += 1;
        }
        if has_tid || has_key {
            let t = *payload.get(i)?;
            i += 1;
            if has_tid {
                info.tid = Some(t >> 6);
            }
        }
    }
    let header = *payload.get(i)?;
    let start_of_partition_zero = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    info.keyframe = start_of_partition_zero && header & 0x01 == 0;
    if info.keyframe {
        // 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height (little endian).
        let k = payload.get(i..i + 10)?;
        if k[3..6] == [0x9d, 0x01, 0x2a] {
            let w = u16::from_le_bytes([k[6], k[7]]) & 0x3fff;
            let h = u16::from_le_bytes([k[8], k[9]]) & 0x3fff;
            info.size = Some((w, h));
        }
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe's first packet: X, 15-bit picture id, TL0PICIDX, TID; then a keyframe header
    /// for 1280x720.
    pub(crate) fn keyframe(pid: u16, tl0: u8) -> Vec<u8> {
        let mut p = vec![0x90, 0xe0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, 0x20];
        p.extend([0x50, 0x2f, 0x01, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]);
        p.extend([0u8; 20]);
        p
    }

    #[test]
    fn reads_keyframe_fields_and_size() {
        let info = parse(&keyframe(0x1234, 7)).unwrap();
        assert_eq!(info.picture_id, Some(0x1234));
        assert!(info.picture_id_15);
        assert_eq!(info.tl0_pic_idx, Some(7));
        assert_eq!(info.tid, Some(0));
        assert!(info.keyframe);
        assert_eq!(info.size, Some((1280, 720)));
    }

    #[test]
    fn delta_frames_and_continuations_are_not_keyframes() {
        let mut delta = keyframe(5, 1);
        delta[6] |= 0x01; // P bit: inter frame
        let info = parse(&delta).unwrap();
        assert!(!info.keyframe);
        assert_eq!(info.size, None);
        let mut cont = keyframe(5, 1);
        cont[0] &= !0x10; // not the start of a partition
        assert!(!parse(&cont).unwrap().keyframe);
        // No extension at all: a minimal descriptor.
        assert_eq!(parse(&[0x10, 0x01, 0, 0]).unwrap().picture_id, None);
    }

    #[test]
    fn short_or_malformed_input_is_none_never_a_panic() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0x80]), None);
        assert_eq!(parse(&[0x80, 0x40, 0, 0]), None, "TL0PICIDX without TID");
        let k = keyframe(1, 1);
        for n in 0..k.len() {
            let _ = parse(&k[..n]);
        }
        for b in 0..=255u8 {
            let _ = parse(&[b, b, b]);
        }
    }
}
