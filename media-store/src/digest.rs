//! What the store learns while bytes pass through: size, SHA-256 and the content type sniffed
//! from the first bytes (magic numbers via `infer`; a client's declared type is never used).

use sha2::{Digest, Sha256};

use crate::Stored;

/// How many leading bytes are kept for sniffing (enough for MP4 `ftyp` and Matroska/WebM).
const SNIFF_LEN: usize = 4096;

/// Content type for bytes that match no known signature.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Sniffs a content type from the first bytes of a file.
pub fn sniff(head: &[u8]) -> &'static str {
    infer::get(head)
        .map(|t| t.mime_type())
        .unwrap_or(OCTET_STREAM)
}

/// Running size, hash and sniffing buffer for one upload.
pub(crate) struct Tally {
    size: u64,
    sha: Sha256,
    head: Vec<u8>,
}

impl Tally {
    pub(crate) fn new() -> Self {
        Tally {
            size: 0,
            sha: Sha256::new(),
            head: Vec::new(),
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.sha.update(chunk);
        if self.head.len() < SNIFF_LEN {
            let take = (SNIFF_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
    }

    pub(crate) fn finish(self) -> Stored {
        Stored {
            size: self.size,
            sha256: hex::encode(self.sha.finalize()),
            content_type: sniff(&self.head).to_owned(),
        }
    }
}
