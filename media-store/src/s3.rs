//! The S3 backend (AWS, MinIO, any S3-compatible store) over `aws-sdk-s3`. Blob `id` is the key
//! `prefix + id`. Streaming puts buffer at most one 8 MiB part: a small file is one PutObject,
//! a larger one a multipart upload that is aborted on any failure (also when the caller drops
//! the future). Resumable uploads are S3 multipart uploads.

use std::fmt;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::digest::Tally;
use crate::error::{BlobError, Result};
use crate::{check_parts, BlobId, BlobInfo, ByteRange, GetResult, PartInfo, Stored, UploadId};

/// Part size for streaming puts (at least [`crate::MIN_PART_SIZE`]).
const PUT_PART_SIZE: usize = 8 * 1024 * 1024;

/// Connection settings for an S3-compatible store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:9000` for MinIO; `None` for AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Bucket (must exist).
    pub bucket: String,
    /// Region, e.g. `us-east-1` (any fixed value for MinIO).
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by MinIO and most local servers.
    #[serde(default)]
    pub path_style: bool,
    /// Prefix put before every key (e.g. `media/`), to share a bucket.
    #[serde(default)]
    pub prefix: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("path_style", &self.path_style)
            .field("prefix", &self.prefix)
            .finish()
    }
}

pub(crate) struct S3Blobs {
    client: Client,
    bucket: String,
    prefix: String,
}

/// Maps an SDK error: HTTP 404 and the "no such" codes become [`BlobError::NotFound`].
fn s3_err<E>(e: SdkError<E, HttpResponse>, what: &str) -> BlobError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.as_service_error().and_then(|s| s.code());
    if status == Some(404) || matches!(code, Some("NoSuchKey" | "NoSuchUpload" | "NotFound")) {
        return BlobError::NotFound(what.to_owned());
    }
    BlobError::S3(format!("{what}: {}", DisplayErrorContext(&e)))
}

struct Multipart {
    upload: String,
    guard: AbortOnDrop,
    parts: Vec<(u32, String)>,
}

/// Aborts a multipart upload when dropped unless disarmed (a cancelled put).
struct AbortOnDrop {
    armed: Option<(Client, String, String, String)>,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some((client, bucket, key, upload)) = self.armed.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let r = client
                        .abort_multipart_upload()
                        .bucket(bucket)
                        .key(&key)
                        .upload_id(upload)
                        .send()
                        .await;
                    if let Err(e) = r {
                        tracing::warn!(key, error = %DisplayErrorContext(&e), "abort of a failed upload failed");
                    }
                });
            }
        }
    }
}

impl S3Blobs {
    pub(crate) fn new(c: &S3Config) -> Result<Self> {
        if c.bucket.is_empty() {
            return Err(BlobError::Config("S3 bucket is empty".into()));
        }
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(c.region.clone()))
            .credentials_provider(Credentials::new(
                &c.access_key,
                &c.secret_key,
                None,
                None,
                "gax-config",
            ))
            .force_path_style(c.path_style)
            // Checksums only where S3 requires them: S3-compatible servers differ in support.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(e) = &c.endpoint {
            b = b.endpoint_url(e);
        }
        Ok(S3Blobs {
            client: Client::from_conf(b.build()),
            bucket: c.bucket.clone(),
            prefix: c.prefix.clone(),
        })
    }

    fn key(&self, id: &BlobId) -> String {
        format!("{}{}", self.prefix, id.as_str())
    }

    async fn upload_part(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        data: Bytes,
    ) -> Result<String> {
        let len = data.len() as i64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .part_number(number as i32)
            .content_length(len)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| s3_err(e, upload))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    async fn finish_multipart(
        &self,
        key: &str,
        upload: &str,
        parts: Vec<(u32, String)>,
    ) -> Result<()> {
        let parts = parts
            .into_iter()
            .map(|(n, etag)| {
                CompletedPart::builder()
                    .part_number(n as i32)
                    .e_tag(etag)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_err(e, upload))?;
        Ok(())
    }

    pub(crate) async fn put<S, E>(&self, id: &BlobId, body: S, limit: u64) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let key = self.key(id);
        // Set once the file outgrows one part; aborted (awaited) on error, or on drop if the
        // caller cancels.
        let mut multipart: Option<Multipart> = None;
        let r = self.put_inner(&key, body, limit, &mut multipart).await;
        if let (Err(_), Some(mut m)) = (&r, multipart) {
            m.guard.armed = None;
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&m.upload);
            if let Err(e) = abort.send().await {
                tracing::warn!(key, error = %DisplayErrorContext(&e), "abort of a failed upload failed");
            }
        }
        r
    }

    async fn put_inner<S, E>(
        &self,
        key: &str,
        mut body: S,
        limit: u64,
        multipart: &mut Option<Multipart>,
    ) -> Result<Stored>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut tally = Tally::new();
        let mut buf = BytesMut::new();
        let mut content_type: Option<&'static str> = None;
        loop {
            let next = body.next().await;
            let done = next.is_none();
            if let Some(chunk) = next {
                let chunk = chunk.map_err(|e| BlobError::Stream(e.to_string()))?;
                tally.update(&chunk);
                if tally.size() > limit {
                    return Err(BlobError::TooLarge { limit });
                }
                buf.extend_from_slice(&chunk);
            }
            if content_type.is_none() && (done || buf.len() >= PUT_PART_SIZE) {
                content_type = Some(crate::sniff(&buf));
            }
            if buf.len() >= PUT_PART_SIZE || (done && multipart.is_some()) {
                if multipart.is_none() {
                    let out = self
                        .client
                        .create_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .content_type(content_type.unwrap_or(crate::OCTET_STREAM))
                        .send()
                        .await
                        .map_err(|e| s3_err(e, key))?;
                    let upload = out.upload_id().unwrap_or_default().to_owned();
                    let guard = AbortOnDrop {
                        armed: Some((
                            self.client.clone(),
                            self.bucket.clone(),
                            key.to_owned(),
                            upload.clone(),
                        )),
                    };
                    *multipart = Some(Multipart {
                        upload,
                        guard,
                        parts: Vec::new(),
                    });
                }
                let Some(m) = multipart.as_mut() else {
                    unreachable!()
                };
                let n = m.parts.len() as u32 + 1;
                let etag = self
                    .upload_part(key, &m.upload, n, buf.split().freeze())
                    .await?;
                m.parts.push((n, etag));
            }
            if done {
                break;
            }
        }
        match multipart.take() {
            Some(mut m) => {
                let parts = std::mem::take(&mut m.parts);
                let r = self.finish_multipart(key, &m.upload, parts).await;
                if r.is_ok() {
                    m.guard.armed = None;
                } else {
                    *multipart = Some(m);
                }
                r?;
            }
            None => {
                self.client
                    .put_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .content_type(content_type.unwrap_or(crate::OCTET_STREAM))
                    .content_length(buf.len() as i64)
                    .body(ByteStream::from(buf.freeze()))
                    .send()
                    .await
                    .map_err(|e| s3_err(e, key))?;
            }
        }
        Ok(tally.finish())
    }

    pub(crate) async fn get(&self, id: &BlobId, range: Option<ByteRange>) -> Result<GetResult> {
        let total = self.head(id).await?.size;
        let range = range.map(|r| r.resolve(total)).transpose()?;
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(id));
        if let Some(r) = range {
            req = req.range(format!("bytes={}-{}", r.start, r.end));
        }
        let out = req.send().await.map_err(|e| s3_err(e, id.as_str()))?;
        let body = futures_util::stream::try_unfold(out.body, |mut b| async move {
            let chunk = b
                .try_next()
                .await
                .map_err(|e| BlobError::S3(e.to_string()))?;
            Ok(chunk.map(|c| (c, b)))
        });
        Ok(GetResult {
            body: Box::pin(body),
            total,
            range,
        })
    }

    pub(crate) async fn head(&self, id: &BlobId) -> Result<BlobInfo> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(id))
            .send()
            .await
            .map_err(|e| s3_err(e, id.as_str()))?;
        Ok(BlobInfo {
            size: out.content_length().unwrap_or(0).max(0) as u64,
        })
    }

    pub(crate) async fn delete(&self, id: &BlobId) -> Result<()> {
        let r = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(id))
            .send()
            .await;
        match r.map_err(|e| s3_err(e, id.as_str())) {
            Ok(_) | Err(BlobError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn start_upload(&self, id: &BlobId) -> Result<UploadId> {
        let key = self.key(id);
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_err(e, &key))?;
        let upload = out
            .upload_id()
            .ok_or_else(|| BlobError::S3("no UploadId in the answer".into()))?;
        Ok(UploadId {
            blob: id.clone(),
            upload: upload.to_owned(),
        })
    }

    pub(crate) async fn put_part(
        &self,
        upload: &UploadId,
        part_no: u32,
        data: Bytes,
    ) -> Result<PartInfo> {
        let size = data.len() as u64;
        self.upload_part(&self.key(&upload.blob), &upload.upload, part_no, data)
            .await?;
        Ok(PartInfo {
            number: part_no,
            size,
        })
    }

    /// All parts with their ETags, following ListParts pages.
    async fn parts(&self, upload: &UploadId) -> Result<Vec<(PartInfo, String)>> {
        let key = self.key(&upload.blob);
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&upload.upload)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| s3_err(e, &upload.upload))?;
            for p in out.parts() {
                let number = p.part_number().unwrap_or(0).max(0) as u32;
                let size = p.size().unwrap_or(0).max(0) as u64;
                parts.push((
                    PartInfo { number, size },
                    p.e_tag().unwrap_or_default().to_owned(),
                ));
            }
            match out.next_part_number_marker() {
                Some(m) if out.is_truncated() == Some(true) => marker = Some(m.to_owned()),
                _ => break,
            }
        }
        parts.sort_by_key(|(p, _)| p.number);
        Ok(parts)
    }

    pub(crate) async fn list_parts(&self, upload: &UploadId) -> Result<Vec<PartInfo>> {
        Ok(self
            .parts(upload)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    pub(crate) async fn complete(&self, upload: &UploadId) -> Result<Stored> {
        let parts = self.parts(upload).await?;
        check_parts(&parts.iter().map(|(p, _)| *p).collect::<Vec<_>>())?;
        let key = self.key(&upload.blob);
        let etags = parts.into_iter().map(|(p, e)| (p.number, e)).collect();
        self.finish_multipart(&key, &upload.upload, etags).await?;
        // SHA-256 cannot be combined from parts: read the object back once.
        let mut body = self.get(&upload.blob, None).await?.body;
        let mut tally = Tally::new();
        while let Some(chunk) = body.next().await {
            tally.update(&chunk?);
        }
        Ok(tally.finish())
    }

    pub(crate) async fn abort(&self, upload: &UploadId) -> Result<()> {
        let r = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(&upload.blob))
            .upload_id(&upload.upload)
            .send()
            .await;
        match r.map_err(|e| s3_err(e, &upload.upload)) {
            Ok(_) | Err(BlobError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
