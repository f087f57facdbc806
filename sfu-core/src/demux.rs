//! First look at a datagram: which protocol it is (RFC 7983 first-byte rules) and whether its
//! framing is even plausible, before any session spends time on it.
//!
//! These checks cost a few comparisons. What they reject is counted as malformed; what passes
//! still goes through str0m's full parsing and SRTP authentication.

/// The protocol of a datagram on a media port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Stun,
    Dtls,
    Rtp,
    Rtcp,
}

/// Why a datagram was rejected before reaching a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("empty datagram")]
    Empty,
    #[error("first byte {0} belongs to no protocol we speak")]
    UnknownProtocol(u8),
    #[error("STUN message with a bad header or length")]
    Stun,
    #[error("DTLS record shorter than its header says")]
    Dtls,
    #[error("RTP packet shorter than its header, extensions and SRTP tag")]
    Rtp,
    #[error("RTCP packet shorter than its header says")]
    Rtcp,
}

/// Shortest SRTP/SRTCP authentication tag (HMAC-SHA1-80); AEAD-GCM tags are 16 bytes.
const MIN_TAG: usize = 10;

/// Classifies a datagram and checks its framing.
pub fn check(d: &[u8]) -> Result<Proto, Malformed> {
    let Some(&b0) = d.first() else {
        return Err(Malformed::Empty);
    };
    match b0 {
        0..=3 => {
            let ok = d.len() >= 20
                && d[4..8] == [0x21, 0x12, 0xa4, 0x42]
                && usize::from(u16::from_be_bytes([d[2], d[3]])) + 20 == d.len()
                && d.len().is_multiple_of(4);
            ok.then_some(Proto::Stun).ok_or(Malformed::Stun)
        }
        20..=63 => {
            let ok =
                d.len() >= 13 && usize::from(u16::from_be_bytes([d[11], d[12]])) + 13 <= d.len();
            ok.then_some(Proto::Dtls).ok_or(Malformed::Dtls)
        }
        128..=191 => {
            if d.len() < 2 {
                return Err(Malformed::Rtp);
            }
            if (192..=223).contains(&d[1]) {
                // SRTCP: first header, then the 4-byte index, then the tag.
                let ok = d.len() >= 8
                    && (usize::from(u16::from_be_bytes([d[2], d[3]])) + 1) * 4 + 4 + MIN_TAG
                        <= d.len();
                return ok.then_some(Proto::Rtcp).ok_or(Malformed::Rtcp);
            }
            let csrc = usize::from(b0 & 0x0f) * 4;
            let mut need = 12 + csrc;
            if b0 & 0x10 != 0 {
                if d.len() < need + 4 {
                    return Err(Malformed::Rtp);
                }
                need += 4 + usize::from(u16::from_be_bytes([d[need + 2], d[need + 3]])) * 4;
            }
            if d.len() < need + MIN_TAG {
                return Err(Malformed::Rtp);
            }
            Ok(Proto::Rtp)
        }
        other => Err(Malformed::UnknownProtocol(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_binding() -> Vec<u8> {
        let mut s = vec![0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42];
        s.extend([7u8; 12]); // transaction id
        s.extend([0x80, 0x22, 0, 4, b'g', b'a', b'x', b'!']); // SOFTWARE attribute
        s
    }

    #[test]
    fn accepts_well_framed_datagrams() {
        assert_eq!(check(&stun_binding()), Ok(Proto::Stun));
        let mut dtls = vec![22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
        dtls.extend([1, 2, 3]);
        assert_eq!(check(&dtls), Ok(Proto::Dtls));
        let mut rtp = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        rtp.extend([0u8; 100]);
        assert_eq!(check(&rtp), Ok(Proto::Rtp));
        // With a one-byte-header extension of 1 word.
        let mut ext = vec![
            0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0,
        ];
        ext.extend([0u8; 20]);
        assert_eq!(check(&ext), Ok(Proto::Rtp));
        // Receiver report (length 1 word after the header), index, GCM tag.
        let mut rtcp = vec![0x80, 201, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
        rtcp.extend([0u8; 4 + 16]);
        assert_eq!(check(&rtcp), Ok(Proto::Rtcp));
    }

    #[test]
    fn rejects_lies_and_truncations() {
        assert_eq!(check(&[]), Err(Malformed::Empty));
        assert_eq!(check(b"hello"), Err(Malformed::UnknownProtocol(b'h')));
        assert_eq!(check(&[0x80]), Err(Malformed::Rtp));
        let mut stun = stun_binding();
        stun[3] = 40; // length says 40, body has 8
        assert_eq!(check(&stun), Err(Malformed::Stun));
        let mut stun = stun_binding();
        stun[4] = 0; // wrong magic cookie
        assert_eq!(check(&stun), Err(Malformed::Stun));
        assert_eq!(
            check(&[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 9, 0xff, 0xff, 1]),
            Err(Malformed::Dtls)
        );
        assert_eq!(check(&[0x80, 200, 0, 6]), Err(Malformed::Rtcp));
        // Header extension whose length runs past the end.
        let mut ext = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0xbe, 0xde, 0x40, 0];
        ext.extend([0u8; 30]);
        assert_eq!(check(&ext), Err(Malformed::Rtp));
        // CSRC count larger than the packet.
        assert_eq!(
            check(&[0x8f, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0]),
            Err(Malformed::Rtp)
        );
        // Extension flag set but no room for the extension header.
        assert_eq!(
            check(&[0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0]),
            Err(Malformed::Rtp)
        );
    }

    #[test]
    fn never_panics_on_any_short_input() {
        for len in 0..64 {
            for b0 in [0u8, 1, 3, 20, 22, 63, 128, 0x90, 0x9f, 191, 200, 255] {
                for fill in [0u8, 0xff] {
                    let mut d = vec![fill; len];
                    if let Some(x) = d.first_mut() {
                        *x = b0;
                    }
                    let _ = check(&d);
                }
            }
        }
    }
}
