//! The local-directory backend. Layout under the root:
//! `objects/<id>` (finished blobs), `tmp/` (uploads in flight, renamed into `objects/` only
//! once complete and fsynced) and `uploads/<upload>/` (a resumable upload: a `blob` file with
//! the target id and one `NNNNN.part` file per part).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::digest::Tally;
use crate::error::{BlobError, Result};
use crate::{check_parts, BlobId, BlobInfo, ByteRange, GetResult, PartInfo, Stored, UploadId};

const READ_CHUNK: usize = 64 * 1024;

pub(crate) struct LocalBlobs {
    objects: PathBuf,
    tmp: PathBuf,
    uploads: PathBuf,
}

/// Removes a file when dropped unless disarmed: a failed or cancelled upload leaves nothing.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn random_name() -> String {
    BlobId::generate().as_str().to_owned()
}

fn not_found(e: std::io::Error, what: &str) -> BlobError {
    if e.kind() == std::io::ErrorKind::NotFound {
        BlobError::NotFound(what.to_owned())
    } else {
        BlobError::Io(e)
    }
}

async fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).await?.sync_all().await?;
    Ok(())
}

impl LocalBlobs {
    pub(crate) async fn open(root: &Path) -> Result<Self> {
        let s = LocalBlobs {
            objects: root.join("objects"),
            tmp: root.join("tmp"),
            uploads: root.join("uploads"),
        };
        for d in [&s.objects, &s.tmp, &s.uploads] {
            fs::create_dir_all(d).await?;
        }
        Ok(s)
    }

    fn object(&self, id: &BlobId) -> PathBuf {
        self.objects.join(id.as_str())
    }

    /// Creates a temp file in `dir`, removed on drop until disarmed.
    async fn temp_in(dir: &Path) -> Result<(fs::File, TempFile, PathBuf)> {
        let path = dir.join(format!("{}.tmp", random_name()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok((
            file,
            TempFile {
                path: Some(path.clone()),
            },
            path,
        ))
    }

    /// fsyncs `file`, renames it to `dest` and fsyncs the directory.
    async fn commit(file: fs::File, mut guard: TempFile, from: &Path, dest: &Path) -> Result<()> {
        file.sync_all().await?;
        drop(file);
        fs::rename(from, dest).await?;
        guard.disarm();
        if let Some(dir) = dest.parent() {
            sync_dir(dir).await?;
        }
        Ok(())
    }

    pub(crate) async fn put<S, E>(&self, id: &BlobId, mut body: S, limit: u64) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let (mut file, guard, path) = Self::temp_in(&self.tmp).await?;
        let mut tally = Tally::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BlobError::Stream(e.to_string()))?;
            tally.update(&chunk);
            if tally.size() > limit {
                return Err(BlobError::TooLarge { limit });
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Self::commit(file, guard, &path, &self.object(id)).await?;
        Ok(tally.finish())
    }

    pub(crate) async fn get(&self, id: &BlobId, range: Option<ByteRange>) -> Result<GetResult> {
        let mut file = fs::File::open(self.object(id))
            .await
            .map_err(|e| not_found(e, id.as_str()))?;
        let total = file.metadata().await?.len();
        let range = range.map(|r| r.resolve(total)).transpose()?;
        let (start, len) = match range {
            Some(r) => (r.start, r.len()),
            None => (0, total),
        };
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        let body = futures_util::stream::try_unfold((file, len), |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let mut buf = vec![0u8; (left as usize).min(READ_CHUNK)];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Err(BlobError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), (file, left - n as u64))))
        });
        Ok(GetResult {
            body: Box::pin(body),
            total,
            range,
        })
    }

    pub(crate) async fn head(&self, id: &BlobId) -> Result<BlobInfo> {
        let meta = fs::metadata(self.object(id))
            .await
            .map_err(|e| not_found(e, id.as_str()))?;
        Ok(BlobInfo { size: meta.len() })
    }

    pub(crate) async fn delete(&self, id: &BlobId) -> Result<()> {
        match fs::remove_file(self.object(id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The directory of an existing upload for `upload.blob`.
    async fn upload_dir(&self, upload: &UploadId) -> Result<PathBuf> {
        let dir = self.uploads.join(upload.local_dir_name()?);
        let owner = fs::read_to_string(dir.join("blob"))
            .await
            .map_err(|e| not_found(e, &upload.upload))?;
        if owner != upload.blob.as_str() {
            return Err(BlobError::NotFound(upload.upload.clone()));
        }
        Ok(dir)
    }

    pub(crate) async fn start_upload(&self, id: &BlobId) -> Result<UploadId> {
        let upload = random_name();
        let dir = self.uploads.join(&upload);
        fs::create_dir(&dir).await?;
        fs::write(dir.join("blob"), id.as_str()).await?;
        Ok(UploadId {
            blob: id.clone(),
            upload,
        })
    }

    pub(crate) async fn put_part(
        &self,
        upload: &UploadId,
        part_no: u32,
        data: Bytes,
    ) -> Result<PartInfo> {
        let dir = self.upload_dir(upload).await?;
        let (mut file, guard, path) = Self::temp_in(&dir).await?;
        file.write_all(&data).await?;
        file.flush().await?;
        Self::commit(file, guard, &path, &dir.join(format!("{part_no:05}.part"))).await?;
        Ok(PartInfo {
            number: part_no,
            size: data.len() as u64,
        })
    }

    pub(crate) async fn list_parts(&self, upload: &UploadId) -> Result<Vec<PartInfo>> {
        let dir = self.upload_dir(upload).await?;
        let mut parts = Vec::new();
        let mut entries = fs::read_dir(&dir).await?;
        while let Some(e) = entries.next_entry().await? {
            let name = e.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".part"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            parts.push(PartInfo {
                number,
                size: e.metadata().await?.len(),
            });
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    pub(crate) async fn complete(&self, upload: &UploadId) -> Result<Stored> {
        let parts = self.list_parts(upload).await?;
        check_parts(&parts)?;
        let dir = self.upload_dir(upload).await?;
        let (mut out, guard, path) = Self::temp_in(&self.tmp).await?;
        let mut tally = Tally::new();
        let mut buf = vec![0u8; READ_CHUNK];
        for p in &parts {
            let mut part = fs::File::open(dir.join(format!("{:05}.part", p.number))).await?;
            loop {
                let n = part.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                tally.update(&buf[..n]);
                out.write_all(&buf[..n]).await?;
            }
        }
        out.flush().await?;
        Self::commit(out, guard, &path, &self.object(&upload.blob)).await?;
        fs::remove_dir_all(&dir).await?;
        Ok(tally.finish())
    }

    pub(crate) async fn abort(&self, upload: &UploadId) -> Result<()> {
        match self.upload_dir(upload).await {
            Ok(dir) => Ok(fs::remove_dir_all(dir).await?),
            Err(BlobError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
