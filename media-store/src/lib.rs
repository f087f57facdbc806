//! # media-store: files for GAX
//!
//! Owns file storage. Today that is the blob layer: a [`BlobStore`] that keeps the bytes of
//! uploaded files either in a local directory (the embedded default) or in any S3-compatible
//! object store (AWS, MinIO, ...) through `aws-sdk-s3`, chosen by [`BlobConfig`]. File
//! records and access (who may read a file) live in `messaging::files`; the HTTP routes in
//! `signaling::files`. Feature `test-support` adds a real S3 server for tests (`testing`).
//!
//! ```text
//!   client bytes ──► put(id, stream, limit) ──► Tally (size, SHA-256, sniffed type)
//!                         │                          │
//!                         ▼                          ▼
//!          local: tmp file, fsync, rename      S3: PutObject, or multipart
//!                                                  (aborted on any failure)
//!   resumable: start_upload ─► put_part × n ─► list_parts (after a lost connection)
//!              ─► complete ─► Stored        or abort ─► nothing left
//!   reads:     get(id, Range) ─► stream of Bytes + total size + returned range
//! ```
//!
//! Rules that hold on both backends, so that switching backend changes nothing visible:
//! - ids are server-generated ([`BlobId::generate`]) and strictly validated ([`BlobId::parse`]):
//!   a client's file name never becomes a path or key;
//! - an upload over its limit, or whose stream fails, leaves nothing stored;
//! - the content type comes from the first bytes ([`sniff`]), never from the client;
//! - resumable uploads have parts numbered `1..=n` without gaps, each at least
//!   [`MIN_PART_SIZE`] (5 MiB) except the last, at most [`MAX_PART_SIZE`]; re-sending a part
//!   number replaces it;
//! - `delete` is idempotent.
//!
//! ```no_run
//! # async fn demo() -> media_store::Result<()> {
//! use bytes::Bytes;
//! use media_store::{BlobConfig, BlobId, BlobStore, ByteRange};
//!
//! let store = BlobStore::open(&BlobConfig::Local { dir: "data/media".into() }).await?;
//! let id = BlobId::generate();
//! let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))]);
//! let stored = store.put(&id, chunks, 10 << 20).await?;
//! assert_eq!(stored.size, 5);
//! let got = store.get(&id, Some(ByteRange::parse("bytes=1-")?)).await?;
//! assert_eq!((got.total, got.range.map(|r| r.len())), (5, Some(4)));
//! # Ok(()) }
//! ```

mod digest;
mod error;
mod id;
mod local;
mod range;
mod s3;
#[cfg(feature = "test-support")]
pub mod testing;

use std::path::PathBuf;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};

pub use digest::{sniff, OCTET_STREAM};
pub use error::{BlobError, Result};
pub use id::{BlobId, UploadId};
pub use range::{ByteRange, ResolvedRange};
pub use s3::S3Config;

/// Smallest part of a resumable upload, except the last (the S3 rule, enforced everywhere).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Largest part accepted by [`BlobStore::put_part`] (parts are held in memory once).
pub const MAX_PART_SIZE: u64 = 64 * 1024 * 1024;
/// Highest part number (the S3 limit).
pub const MAX_PART_NUMBER: u32 = 10_000;

/// A stream of blob bytes as returned by [`BlobStore::get`].
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Where blobs live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum BlobConfig {
    /// A local directory (created if missing).
    Local {
        /// Root directory of the store.
        dir: PathBuf,
    },
    /// An S3-compatible bucket.
    S3(S3Config),
}

impl Default for BlobConfig {
    fn default() -> Self {
        BlobConfig::Local {
            dir: PathBuf::from("data/media"),
        }
    }
}

/// What the store learned about a blob while storing it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Content type sniffed from the first bytes ([`OCTET_STREAM`] if unknown).
    pub content_type: String,
}

/// A part of a resumable upload that the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Part number, from 1.
    pub number: u32,
    /// Size in bytes.
    pub size: u64,
}

/// A blob's size, from [`BlobStore::head`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// Size in bytes.
    pub size: u64,
}

/// The answer to [`BlobStore::get`].
pub struct GetResult {
    /// The bytes of the blob, or of the requested range.
    pub body: BlobStream,
    /// Size of the whole blob.
    pub total: u64,
    /// The range returned (answer 206 with `Content-Range`), or `None` for the whole blob (200).
    pub range: Option<ResolvedRange>,
}

impl std::fmt::Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult")
            .field("total", &self.total)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

enum Backend {
    Local(local::LocalBlobs),
    S3(s3::S3Blobs),
}

/// Blob storage on a local directory or S3 (see the crate doc for the rules both keep).
pub struct BlobStore {
    backend: Backend,
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match &$self.backend {
            Backend::Local($b) => $e,
            Backend::S3($b) => $e,
        }
    };
}

impl BlobStore {
    /// Opens the store described by `config` (creates the local directories; for S3 only builds
    /// the client: a wrong endpoint or bucket shows on the first request).
    pub async fn open(config: &BlobConfig) -> Result<Self> {
        let backend = match config {
            BlobConfig::Local { dir } => Backend::Local(local::LocalBlobs::open(dir).await?),
            BlobConfig::S3(c) => Backend::S3(s3::S3Blobs::new(c)?),
        };
        Ok(BlobStore { backend })
    }

    /// Which backend this is: `"local"` or `"s3"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Local(_) => "local",
            Backend::S3(_) => "s3",
        }
    }

    /// Stores a blob from a stream of chunks, never holding the whole file in memory. Over
    /// `limit` bytes gives [`BlobError::TooLarge`]; on any error nothing is left stored. An
    /// existing blob with the same id is replaced.
    pub async fn put<S, E>(&self, id: &BlobId, body: S, limit: u64) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let body = std::pin::pin!(body);
        dispatch!(self, b => b.put(id, body, limit).await)
    }

    /// Reads a blob, or a range of it.
    pub async fn get(&self, id: &BlobId, range: Option<ByteRange>) -> Result<GetResult> {
        dispatch!(self, b => b.get(id, range).await)
    }

    /// A blob's size; [`BlobError::NotFound`] if there is none.
    pub async fn head(&self, id: &BlobId) -> Result<BlobInfo> {
        dispatch!(self, b => b.head(id).await)
    }

    /// Deletes a blob (no error if it does not exist).
    pub async fn delete(&self, id: &BlobId) -> Result<()> {
        dispatch!(self, b => b.delete(id).await)
    }

    /// Starts a resumable upload that will become blob `id`.
    pub async fn start_upload(&self, id: &BlobId) -> Result<UploadId> {
        dispatch!(self, b => b.start_upload(id).await)
    }

    /// Stores part `part_no` (1..=10000) of an upload, replacing any earlier part with that
    /// number. Parts over [`MAX_PART_SIZE`] are refused.
    pub async fn put_part(&self, upload: &UploadId, part_no: u32, data: Bytes) -> Result<PartInfo> {
        if part_no == 0 || part_no > MAX_PART_NUMBER {
            return Err(BlobError::InvalidPartNumber(part_no));
        }
        if data.len() as u64 > MAX_PART_SIZE {
            return Err(BlobError::TooLarge {
                limit: MAX_PART_SIZE,
            });
        }
        dispatch!(self, b => b.put_part(upload, part_no, data).await)
    }

    /// The parts an upload holds, by part number: what a client that lost its connection
    /// needs to resume. [`BlobError::NotFound`] for an unknown (or finished) upload.
    pub async fn list_parts(&self, upload: &UploadId) -> Result<Vec<PartInfo>> {
        dispatch!(self, b => b.list_parts(upload).await)
    }

    /// Joins the parts into the blob. Checks the part rules first (see the crate doc).
    pub async fn complete(&self, upload: &UploadId) -> Result<Stored> {
        dispatch!(self, b => b.complete(upload).await)
    }

    /// Drops an upload and its parts.
    pub async fn abort(&self, upload: &UploadId) -> Result<()> {
        dispatch!(self, b => b.abort(upload).await)
    }
}

/// Checks the part rules shared by both backends: numbered `1..=n`, no gaps, all but the last
/// at least [`MIN_PART_SIZE`]. `parts` is sorted by number.
pub(crate) fn check_parts(parts: &[PartInfo]) -> Result<()> {
    if parts.is_empty() {
        return Err(BlobError::MissingParts("the upload has no parts".into()));
    }
    if let Some(missing) = parts.iter().zip(1u32..).find(|(p, n)| p.number != *n) {
        return Err(BlobError::MissingParts(format!(
            "part {} is missing",
            missing.1
        )));
    }
    if let Some(p) = parts[..parts.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE)
    {
        return Err(BlobError::PartTooSmall {
            part: p.number,
            size: p.size,
        });
    }
    Ok(())
}
