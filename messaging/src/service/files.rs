//! The file use cases, over two stores: the bytes in the [`BlobStore`] (media-store), the
//! record (owner, name, size, sniffed type, SHA-256) and who may read it in the messaging
//! [`Store`](crate::Store). An upload streams the bytes first (never the whole file in memory),
//! checks them against the declared type, then records them; any refusal after the bytes
//! landed deletes them again, so a refused upload leaves nothing. A resumable upload is the
//! same saga in parts. What was added or removed is announced on the bus (for search).

use bytes::Bytes;
use futures_util::Stream;
use media_store::{BlobError, BlobId, BlobStore, PartInfo, Stored, UploadId};

use super::Service;
use crate::bus::Event;
use crate::files::{FileRecord, NewFile, UploadRecord};
use crate::{StoreError, UserId};

/// Why a file operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The bytes are not what the client declared them to be (nothing was kept).
    #[error("the body was declared as {declared} but its bytes are {sniffed}")]
    TypeMismatch { declared: String, sniffed: String },
}

/// The media type without parameters, lowercase (`Text/HTML; charset=x` -> `text/html`).
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Does a client's declared type agree with the sniffed one? A generic type (none,
/// `application/octet-stream`) agrees with anything. Otherwise the top-level types must match
/// (audio and video count as one: `audio/webm` is a WebM file), and a claim of image, audio or
/// video is refused when the bytes are not recognisably such. Subtypes may differ (browsers
/// name types from file extensions: `audio/x-m4a` for `audio/m4a`).
pub fn declared_type_agrees(declared: &str, sniffed: &str) -> bool {
    let declared = essence(declared);
    if declared.is_empty() || declared == media_store::OCTET_STREAM {
        return true;
    }
    let top = |t: &str| match t.split('/').next().unwrap_or("") {
        "audio" | "video" => "av".to_owned(),
        other => other.to_owned(),
    };
    let claimed = top(&declared);
    if sniffed == media_store::OCTET_STREAM {
        return !matches!(claimed.as_str(), "image" | "av");
    }
    claimed == top(sniffed)
}

/// Uploaded files of one node: the blob store, the upload limit and the write paths.
pub struct Files {
    service: Service,
    blobs: BlobStore,
    max_upload: u64,
}

impl Files {
    pub fn new(service: Service, blobs: BlobStore, max_upload: u64) -> Files {
        Files {
            service,
            blobs,
            max_upload,
        }
    }

    /// The blob store (for reads).
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Largest file accepted, in bytes.
    pub fn max_upload(&self) -> u64 {
        self.max_upload
    }

    /// Largest part of a resumable upload accepted.
    pub fn part_limit(&self) -> u64 {
        media_store::MAX_PART_SIZE.min(self.max_upload)
    }

    /// Streams `body` into a new blob, checks it against the `declared` type, records it as
    /// `me`'s file `name` and announces it; on any refusal after the bytes landed deletes them.
    pub async fn upload<S, E>(
        &self,
        me: UserId,
        name: &str,
        declared: Option<&str>,
        body: S,
    ) -> Result<FileRecord, FileError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        // The name is checked before any byte is stored.
        let name = crate::validate::file_name(name)?;
        let id = BlobId::generate();
        let stored = self.blobs.put(&id, body, self.max_upload).await?;
        let checked = match declared {
            Some(d) if !declared_type_agrees(d, &stored.content_type) => {
                Err(FileError::TypeMismatch {
                    declared: essence(d),
                    sniffed: stored.content_type.clone(),
                })
            }
            _ => Ok(()),
        };
        let recorded = match checked {
            Ok(()) => self.record(me, &id, &name, &stored).await,
            Err(e) => Err(e),
        };
        if recorded.is_err() {
            if let Err(e) = self.blobs.delete(&id).await {
                tracing::error!("deleting refused upload {}: {e}", id.as_str());
            }
        }
        let file = recorded?;
        self.added(me, &file).await;
        Ok(file)
    }

    async fn record(
        &self,
        me: UserId,
        id: &BlobId,
        name: &str,
        stored: &Stored,
    ) -> Result<FileRecord, FileError> {
        let file = NewFile {
            id: id.as_str().to_owned(),
            name: name.to_owned(),
            size: i64::try_from(stored.size).unwrap_or(i64::MAX),
            content_type: stored.content_type.clone(),
            sha256: stored.sha256.clone(),
        };
        Ok(self.service.store.add_file(me, file).await?)
    }

    async fn added(&self, me: UserId, file: &FileRecord) {
        self.service
            .publish(Event::FileAdded {
                file_id: file.id.clone(),
                owner: me,
                name: file.name.clone(),
                chats: Vec::new(),
            })
            .await;
    }

    /// The owner deletes a file: its record, then its bytes; announced.
    pub async fn delete(&self, me: UserId, id: &str) -> Result<(), FileError> {
        let file = self.service.store.delete_file(me, id).await?;
        self.blobs.delete(&BlobId::parse(&file.id)?).await?;
        self.service
            .publish(Event::FileRemoved { file_id: file.id })
            .await;
        Ok(())
    }

    /// Starts a resumable upload of file `name`: returns its id (for the client) and the
    /// checked name. If the record is refused, the blob store's upload is aborted.
    pub async fn start_upload(
        &self,
        me: UserId,
        name: &str,
    ) -> Result<(String, String), FileError> {
        let name = crate::validate::file_name(name)?;
        let file_id = BlobId::generate();
        let upload = self.blobs.start_upload(&file_id).await?;
        let id = BlobId::generate(); // the same kind of random id, for the client
        if let Err(e) = self
            .service
            .store
            .add_upload(me, id.as_str(), file_id.as_str(), &upload.upload, &name)
            .await
        {
            let _ = self.blobs.abort(&upload).await;
            return Err(e.into());
        }
        Ok((id.as_str().to_owned(), name))
    }

    /// `me`'s resumable upload `id`: its record and its upload in the blob store.
    pub async fn my_upload(
        &self,
        me: UserId,
        id: &str,
    ) -> Result<(UploadRecord, UploadId), FileError> {
        let record = self.service.store.upload_for(me, id).await?;
        let upload = UploadId {
            blob: BlobId::parse(&record.file_id).map_err(|_| StoreError::UploadNotFound)?,
            upload: record.backend_id.clone(),
        };
        Ok((record, upload))
    }

    /// The parts the blob store holds for `upload`.
    pub async fn parts(&self, upload: &UploadId) -> Result<Vec<PartInfo>, FileError> {
        Ok(self.blobs.list_parts(upload).await?)
    }

    /// Stores part `n` of `upload` (re-sending replaces it), unless the parts together would
    /// pass the upload limit.
    pub async fn put_part(
        &self,
        upload: &UploadId,
        n: u32,
        data: Bytes,
    ) -> Result<PartInfo, FileError> {
        let others: u64 = self
            .blobs
            .list_parts(upload)
            .await?
            .iter()
            .filter(|p| p.number != n)
            .map(|p| p.size)
            .sum();
        if others + data.len() as u64 > self.max_upload {
            return Err(BlobError::TooLarge {
                limit: self.max_upload,
            }
            .into());
        }
        Ok(self.blobs.put_part(upload, n, data).await?)
    }

    /// Joins the parts of `me`'s upload `id` into the file, records and announces it; if the
    /// record is refused, the joined bytes are deleted.
    pub async fn complete_upload(&self, me: UserId, id: &str) -> Result<FileRecord, FileError> {
        let (record, upload) = self.my_upload(me, id).await?;
        let stored = self.blobs.complete(&upload).await?;
        self.service.store.remove_upload(&record.id).await?;
        let blob = BlobId::parse(&record.file_id)?;
        let file = match self.record(me, &blob, &record.name, &stored).await {
            Ok(f) => f,
            Err(e) => {
                let _ = self.blobs.delete(&blob).await;
                return Err(e);
            }
        };
        self.added(me, &file).await;
        Ok(file)
    }

    /// Aborts `me`'s upload `id`; its parts are dropped.
    pub async fn abort_upload(&self, me: UserId, id: &str) -> Result<(), FileError> {
        let (record, upload) = self.my_upload(me, id).await?;
        self.blobs.abort(&upload).await?;
        self.service.store.remove_upload(&record.id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types() {
        let ok = [
            ("application/octet-stream", "image/png"),
            ("image/png", "image/png"),
            ("IMAGE/PNG; charset=x", "image/png"),
            ("image/jpg", "image/jpeg"),
            ("audio/webm", "video/webm"),
            ("audio/x-m4a", "audio/m4a"),
            ("text/plain", media_store::OCTET_STREAM),
            ("", "image/png"),
        ];
        for (d, s) in ok {
            assert!(declared_type_agrees(d, s), "{d} vs {s}");
        }
        let bad = [
            ("image/png", "text/html"),
            ("image/png", media_store::OCTET_STREAM),
            ("video/mp4", media_store::OCTET_STREAM),
            ("video/webm", "image/png"),
            ("text/plain", "application/pdf"),
        ];
        for (d, s) in bad {
            assert!(!declared_type_agrees(d, s), "{d} vs {s}");
        }
    }
}
