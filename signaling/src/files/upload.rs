//! `POST /api/files`: one upload in one request, a raw body or a multipart form's `file`
//! field, handed as a stream to [`messaging::service::files::Files::upload`] (the saga: blob,
//! type check, record, compensating delete).

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use messaging::service::files::essence;
use serde::Deserialize;

use super::{header_str, FileInfo, Uploader};
use crate::app::App;
use crate::error::{ApiError, ErrorBody};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// File name (for raw uploads; or send `X-File-Name`, percent-encoded).
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/files`: upload a file.
///
/// Raw body: the name from `?name=` or `X-File-Name` (percent-encoded UTF-8). Multipart form:
/// the field `file` with its file name. A declared type (`Content-Type` of the body or the
/// field) must agree with what the bytes are; the stored type is always the sniffed one.
#[utoipa::path(post, path = "/api/files", tag = "files", security(("bearer" = [])),
    params(("name" = Option<String>, Query, description = "File name for a raw upload")),
    request_body(description = "The file: a raw body, or `multipart/form-data` with a `file` field",
        content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "multipart/form-data"))),
    responses((status = 201, body = FileInfo),
        (status = 400, description = "No name, a path as name, an empty form", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, description = "Over the upload limit; nothing stored", body = ErrorBody),
        (status = 415, description = "The declared type disagrees with the bytes; nothing stored", body = ErrorBody),
        (status = 429, description = "Too many uploads by this user; see Retry-After", body = ErrorBody)))]
pub async fn upload(
    State(app): State<Arc<App>>,
    Uploader(me): Uploader,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<(StatusCode, Json<FileInfo>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    // Before any byte is read: a refused upload costs the server nothing.
    app.uploads.take(&me, std::time::Instant::now())?;
    let content_type = header_str(request.headers(), header::CONTENT_TYPE).map(str::to_owned);
    let record = if content_type
        .as_deref()
        .is_some_and(|t| essence(t) == "multipart/form-data")
    {
        let mut form = Multipart::from_request(request, &app)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        loop {
            let field = form
                .next_field()
                .await
                .map_err(|e| ApiError::BadRequest(e.body_text()))?
                .ok_or_else(|| ApiError::BadRequest("the form has no `file` field".into()))?;
            if field.name() != Some("file") {
                continue;
            }
            let name = field
                .file_name()
                .map(str::to_owned)
                .or(query.name.clone())
                .ok_or_else(|| ApiError::BadRequest("the `file` field has no file name".into()))?;
            let declared = field.content_type().map(str::to_owned);
            break app
                .files
                .upload(me, &name, declared.as_deref(), field)
                .await?;
        }
    } else {
        let name = match query.name {
            Some(n) => n,
            None => header_str(request.headers(), "x-file-name")
                .map(|n| {
                    percent_encoding::percent_decode_str(n)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| ApiError::BadRequest("X-File-Name is not UTF-8".into()))
                })
                .transpose()?
                .ok_or_else(|| {
                    ApiError::BadRequest("name the file: ?name= or X-File-Name".into())
                })?,
        };
        let body = request.into_body().into_data_stream();
        app.files
            .upload(me, &name, content_type.as_deref(), body)
            .await?
    };
    Ok((StatusCode::CREATED, Json(record.into())))
}
