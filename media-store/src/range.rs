//! HTTP `Range` headers for blob reads: [`ByteRange`] parses `bytes=a-b`, `bytes=a-` and
//! `bytes=-n` (one range only; several ranges are refused as malformed) and resolves against
//! a blob's size into a [`ResolvedRange`].

use crate::error::{BlobError, Result};

/// One byte range as requested by a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` (both inclusive).
    FromTo(u64, u64),
    /// `bytes=first-`: from `first` to the end.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

/// A range resolved against a blob's size: `start..=end`, never empty, inside the blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedRange {
    /// First byte (inclusive).
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl ResolvedRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a resolved range has at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Content-Range` header value, e.g. `bytes 0-99/1000`.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

impl ByteRange {
    /// Parses a `Range` header value. Malformed values and multiple ranges give
    /// [`BlobError::MalformedRange`] (400).
    pub fn parse(header: &str) -> Result<Self> {
        let bad = || BlobError::MalformedRange(header.to_owned());
        let spec = header.trim().strip_prefix("bytes=").ok_or_else(bad)?.trim();
        if spec.contains(',') {
            return Err(bad());
        }
        let (a, b) = spec.split_once('-').ok_or_else(bad)?;
        let num = |s: &str| -> Result<u64> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        match (a.trim(), b.trim()) {
            ("", n) => Ok(ByteRange::Suffix(num(n)?)),
            (a, "") => Ok(ByteRange::From(num(a)?)),
            (a, b) => {
                let (a, b) = (num(a)?, num(b)?);
                if b < a {
                    return Err(bad());
                }
                Ok(ByteRange::FromTo(a, b))
            }
        }
    }

    /// Resolves against a blob of `size` bytes; a range that selects nothing gives
    /// [`BlobError::RangeNotSatisfiable`] (416).
    pub fn resolve(self, size: u64) -> Result<ResolvedRange> {
        let unsatisfiable = BlobError::RangeNotSatisfiable { size };
        if size == 0 {
            return Err(unsatisfiable);
        }
        let (start, end) = match self {
            ByteRange::FromTo(a, b) => (a, b.min(size - 1)),
            ByteRange::From(a) => (a, size - 1),
            ByteRange::Suffix(0) => return Err(unsatisfiable),
            ByteRange::Suffix(n) => (size.saturating_sub(n), size - 1),
        };
        if start >= size {
            return Err(unsatisfiable);
        }
        Ok(ResolvedRange { start, end })
    }
}

impl std::str::FromStr for ByteRange {
    type Err = BlobError;
    fn from_str(s: &str) -> Result<Self> {
        ByteRange::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(
            ByteRange::parse("bytes=0-99").unwrap(),
            ByteRange::FromTo(0, 99)
        );
        assert_eq!(
            ByteRange::parse("bytes=100-").unwrap(),
            ByteRange::From(100)
        );
        assert_eq!(ByteRange::parse("bytes=-5").unwrap(), ByteRange::Suffix(5));
        for bad in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=5-3",
            "bytes=a-b",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
        ] {
            assert!(
                matches!(ByteRange::parse(bad), Err(BlobError::MalformedRange(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn resolve() {
        let r = |s: &str, n| ByteRange::parse(s).unwrap().resolve(n);
        assert_eq!(
            r("bytes=0-99", 1000).unwrap(),
            ResolvedRange { start: 0, end: 99 }
        );
        assert_eq!(
            r("bytes=0-5000", 1000).unwrap(),
            ResolvedRange { start: 0, end: 999 }
        );
        assert_eq!(r("bytes=990-", 1000).unwrap().len(), 10);
        assert_eq!(
            r("bytes=-2000", 1000).unwrap(),
            ResolvedRange { start: 0, end: 999 }
        );
        assert_eq!(
            r("bytes=-1", 1000).unwrap().content_range(1000),
            "bytes 999-999/1000"
        );
        for s in ["bytes=1000-", "bytes=1000-2000", "bytes=-0"] {
            assert!(
                matches!(
                    r(s, 1000),
                    Err(BlobError::RangeNotSatisfiable { size: 1000 })
                ),
                "{s}"
            );
        }
        assert!(matches!(
            r("bytes=0-", 0),
            Err(BlobError::RangeNotSatisfiable { size: 0 })
        ));
    }
}
