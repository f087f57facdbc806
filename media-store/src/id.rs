//! Blob and upload ids: server-generated, validated strictly so that an id can never name a path
//! outside the store (no `/`, `.`, `..`, or empty ids) on the local backend nor an odd S3 key.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{BlobError, Result};

const MAX_ID_LEN: usize = 64;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The id of a stored blob: 1..=64 characters of `[A-Za-z0-9_-]`, made by the server
/// ([`BlobId::generate`]), never from a client's file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobId(String);

impl BlobId {
    /// A new random id (128 bits, 32 hex characters).
    pub fn generate() -> Self {
        BlobId(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// Checks an id received from outside (a URL path, a database row).
    pub fn parse(s: &str) -> Result<Self> {
        if valid_id(s) {
            Ok(BlobId(s.to_owned()))
        } else {
            Err(BlobError::InvalidId(s.to_owned()))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobId {
    type Error = BlobError;
    fn try_from(s: String) -> Result<Self> {
        BlobId::parse(&s)
    }
}

impl From<BlobId> for String {
    fn from(id: BlobId) -> String {
        id.0
    }
}

impl std::str::FromStr for BlobId {
    type Err = BlobError;
    fn from_str(s: &str) -> Result<Self> {
        BlobId::parse(s)
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resumable upload in progress: the blob it will become and the backend's upload id
/// (S3's `UploadId`, or the local upload directory's name). Keep it (e.g. in the database) to
/// resume after a lost connection.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UploadId {
    /// The blob that `complete` will create.
    pub blob: BlobId,
    /// The backend's id for this upload (opaque).
    pub upload: String,
}

impl UploadId {
    /// Checks the backend part of an upload id for the local backend (same rule as blob ids).
    pub(crate) fn local_dir_name(&self) -> Result<&str> {
        if valid_id(&self.upload) {
            Ok(&self.upload)
        } else {
            Err(BlobError::InvalidId(self.upload.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(BlobId::parse("abc_DEF-123").is_ok());
        for bad in [
            "",
            "..",
            "a/b",
            "a.b",
            "a b",
            "é",
            &"x".repeat(65),
            "../etc/passwd",
            "a\\b",
        ] {
            assert!(
                matches!(BlobId::parse(bad), Err(BlobError::InvalidId(_))),
                "{bad:?}"
            );
        }
        let id = BlobId::generate();
        assert_eq!(id.as_str().len(), 32);
        assert!(BlobId::parse(id.as_str()).is_ok());
        assert!(serde_json::from_str::<BlobId>("\"a/b\"").is_err());
    }
}
