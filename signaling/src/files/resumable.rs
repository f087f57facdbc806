//! Resumable uploads under `/api/uploads`: start, send parts (each retried alone after a lost
//! connection), ask which parts arrived, complete (the parts become the file) or abort. The
//! saga behind them is [`messaging::service::files::Files`]'s.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use media_store::{BlobError, PartInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FileInfo, Uploader};
use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartUpload {
    /// File name.
    pub name: String,
}

/// A resumable upload and the parts the server holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadState {
    pub id: String,
    pub name: String,
    /// Parts received so far, by number.
    #[schema(value_type = Vec<Object>)]
    pub parts: Vec<PartInfo>,
    /// Every part but the last must have at least this many bytes.
    pub min_part_size: u64,
    /// No part may have more.
    pub max_part_size: u64,
}

fn upload_state(id: &str, name: &str, parts: Vec<PartInfo>) -> UploadState {
    UploadState {
        id: id.to_owned(),
        name: name.to_owned(),
        parts,
        min_part_size: media_store::MIN_PART_SIZE,
        max_part_size: media_store::MAX_PART_SIZE,
    }
}

/// `POST /api/uploads`: start a resumable upload.
#[utoipa::path(post, path = "/api/uploads", tag = "files", security(("bearer" = [])),
    request_body = StartUpload,
    responses((status = 201, body = UploadState), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, description = "Too many uploads by this user; see Retry-After", body = ErrorBody)))]
pub async fn start_upload(
    State(app): State<Arc<App>>,
    Uploader(me): Uploader,
    ApiJson(req): ApiJson<StartUpload>,
) -> Result<(StatusCode, Json<UploadState>), ApiError> {
    app.uploads.take(&me, std::time::Instant::now())?;
    let (id, name) = app.files.start_upload(me, &req.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(upload_state(&id, &name, Vec::new())),
    ))
}

/// `GET /api/uploads/{id}`: which parts the server holds (to resume after a lost connection).
#[utoipa::path(get, path = "/api/uploads/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = UploadState), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn upload_status(
    State(app): State<Arc<App>>,
    Uploader(me): Uploader,
    Path(id): Path<String>,
) -> Result<Json<UploadState>, ApiError> {
    let (record, upload) = app.files.my_upload(me, &id).await?;
    let parts = app.files.parts(&upload).await?;
    Ok(Json(upload_state(&record.id, &record.name, parts)))
}

/// `PUT /api/uploads/{id}/parts/{n}`: store part `n` (1..=10000); re-sending replaces it.
#[utoipa::path(put, path = "/api/uploads/{id}/parts/{n}", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path), ("n" = u32, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "`{number, size}`"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "Part over 64 MiB, or the file over the limit", body = ErrorBody)))]
pub async fn put_part(
    State(app): State<Arc<App>>,
    Uploader(me): Uploader,
    Path((id, n)): Path<(String, u32)>,
    body: Body,
) -> Result<Json<PartInfo>, ApiError> {
    let (_, upload) = app.files.my_upload(me, &id).await?;
    let part_limit = app.files.part_limit();
    let data = axum::body::to_bytes(body, usize::try_from(part_limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| ApiError::from(BlobError::TooLarge { limit: part_limit }))?;
    Ok(Json(app.files.put_part(&upload, n, data).await?))
}

/// `POST /api/uploads/{id}/complete`: join the parts into the file.
#[utoipa::path(post, path = "/api/uploads/{id}/complete", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 201, body = FileInfo),
        (status = 400, description = "Missing or too small parts", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn complete_upload(
    State(app): State<Arc<App>>,
    Uploader(me): Uploader,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<FileInfo>), ApiError> {
    let file = app.files.complete_upload(me, &id).await?;
    Ok((StatusCode::CREATED, Json(file.into())))
}

/// `DELETE /api/uploads/{id}`: abort; the parts are dropped.
#[utoipa::path(delete, path = "/api/uploads/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn abort_upload(
    State(app): State<Arc<App>>,
    Uploader(me): Uploader,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.files.abort_upload(me, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
