//! Files over HTTP: upload (`POST /api/files`, raw body or multipart form; resumable uploads
//! in parts under `/api/uploads`), download with Range / ETag (`GET /api/files/{id}`), signed
//! time-limited links for `<video>` and `<img>` tags, metadata, delete.
//!
//! The bytes go straight from the request body into [`media_store::BlobStore`] (never the
//! whole file in memory); the record (owner, name, size, sniffed type, SHA-256) goes into the
//! messaging store after, and who may read a file is decided there (`messaging::files`). Any
//! failure after the bytes landed deletes them again, so a refused upload leaves nothing.
//!
//! A download is allowed with `Authorization: Bearer <access token>` of someone who may read
//! the file, or with `?link=<token>` from [`link`]: a JWT (the one token model) whose subject
//! is `file:<id>` and whose `exp` ends the link; it is minted only for someone who may read the
//! file, and any change to it breaks its signature.
//!
//! Parts: [`upload`] (one request: raw body or form), [`resumable`] (parts under
//! `/api/uploads`), [`download`] (reads, metadata, links, delete); the link tokens themselves
//! are [`crate::links`].

mod download;
mod resumable;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap};
use messaging::{FileRecord, UserId};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::error::ApiError;
use crate::extract::Authed;

pub use crate::app::Files;
pub use download::{DownloadQuery, LinkRequest, SignedLink};
pub use resumable::{StartUpload, UploadState};
pub use upload::UploadQuery;

/// Default lifetime of a signed link.
pub const LINK_TTL: Duration = Duration::from_secs(60 * 60);
/// Longest lifetime a client may ask for.
pub const LINK_TTL_MAX: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The file routes, with their own body limit (the upload limit, not the 2 MB JSON default).
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(upload::upload, download::list))
        .routes(routes!(download::download, download::delete))
        .routes(routes!(download::info))
        .routes(routes!(download::link))
        .routes(routes!(resumable::start_upload))
        .routes(routes!(resumable::upload_status, resumable::abort_upload))
        .routes(routes!(resumable::put_part))
        .routes(routes!(resumable::complete_upload))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// The caller of an upload: a user whose token has the `can_upload` grant.
pub struct Uploader(pub UserId);

impl axum::extract::FromRequestParts<Arc<App>> for Uploader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<App>,
    ) -> Result<Self, ApiError> {
        let authed = Authed::from_request_parts(parts, app).await?;
        if !authed.claims.can_upload {
            return Err(ApiError::Forbidden(
                "this token does not allow uploads".into(),
            ));
        }
        Ok(Uploader(authed.user))
    }
}

/// A file as the API returns it: its record and where to download it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileInfo {
    #[serde(flatten)]
    pub file: FileRecord,
    /// Download path (needs the bearer token, or use a signed link).
    pub url: String,
}

impl From<FileRecord> for FileInfo {
    fn from(file: FileRecord) -> Self {
        let url = format!("/api/files/{}", file.id);
        FileInfo { file, url }
    }
}

pub(crate) fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
