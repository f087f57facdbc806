//! Errors of the blob layer: one type, [`BlobError`], whose variants the HTTP layer maps to
//! status codes (see [`BlobError::http_status`]).

/// What went wrong in a [`crate::BlobStore`] operation.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A blob or upload id that is not a server-generated id (wrong length or characters).
    #[error("invalid id {0:?}: expected 1..=64 characters of [A-Za-z0-9_-]")]
    InvalidId(String),
    /// No blob (or no upload) with this id.
    #[error("not found: {0}")]
    NotFound(String),
    /// The upload went over its size limit; nothing was stored.
    #[error("upload exceeds the size limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit: u64,
    },
    /// A `Range` header that does not parse (maps to 400).
    #[error("malformed Range header: {0}")]
    MalformedRange(String),
    /// A `Range` that does not overlap the blob (maps to 416 with `Content-Range: bytes */size`).
    #[error("range not satisfiable for a blob of {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the blob, for the `Content-Range: bytes */size` header.
        size: u64,
    },
    /// Part numbers run from 1 to [`crate::MAX_PART_NUMBER`].
    #[error("invalid part number {0}: expected 1..=10000")]
    InvalidPartNumber(u32),
    /// `complete` found no parts, or a gap in the part numbers.
    #[error("parts must be numbered 1..=n without gaps; {0}")]
    MissingParts(String),
    /// A part other than the last is smaller than [`crate::MIN_PART_SIZE`] (the S3 rule).
    #[error("part {part} has {size} bytes; every part but the last needs at least 5 MiB")]
    PartTooSmall {
        /// The part number.
        part: u32,
        /// Its size in bytes.
        size: u64,
    },
    /// The client's body stream failed (connection lost, ...); nothing was stored.
    #[error("upload stream failed: {0}")]
    Stream(String),
    /// Local file system error.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// S3 request failed.
    #[error("S3 error: {0}")]
    S3(String),
    /// Invalid configuration.
    #[error("invalid blob store configuration: {0}")]
    Config(String),
}

impl BlobError {
    /// The HTTP status the API should answer with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            BlobError::InvalidId(_)
            | BlobError::MalformedRange(_)
            | BlobError::InvalidPartNumber(_)
            | BlobError::MissingParts(_)
            | BlobError::PartTooSmall { .. } => 400,
            BlobError::NotFound(_) => 404,
            BlobError::TooLarge { .. } => 413,
            BlobError::RangeNotSatisfiable { .. } => 416,
            BlobError::Stream(_) => 400,
            BlobError::Io(_) | BlobError::S3(_) | BlobError::Config(_) => 500,
        }
    }
}

/// Result of blob operations.
pub type Result<T, E = BlobError> = std::result::Result<T, E>;
