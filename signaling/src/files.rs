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

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use media_store::{BlobError, BlobId, BlobStore, ByteRange, PartInfo, Stored, UploadId};
use messaging::auth::{Claims, TokenError};
use messaging::bus::Event;
use messaging::{FileRecord, NewFile, StoreError, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{ApiJson, Authed, ErrorBody};
use crate::http::ApiError;
use crate::App;

/// Default lifetime of a signed link.
pub const LINK_TTL: Duration = Duration::from_secs(60 * 60);
/// Longest lifetime a client may ask for.
pub const LINK_TTL_MAX: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The blob store and the upload limit.
pub struct Files {
    pub blobs: BlobStore,
    /// Largest file accepted, in bytes.
    pub max_upload: u64,
}

/// The file routes, with their own body limit (the upload limit, not the 2 MB JSON default).
pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(upload, list))
        .routes(routes!(download, delete))
        .routes(routes!(info))
        .routes(routes!(link))
        .routes(routes!(start_upload))
        .routes(routes!(upload_status, abort_upload))
        .routes(routes!(put_part))
        .routes(routes!(complete_upload))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        if status.is_server_error() {
            tracing::error!("blob store: {e}");
            return ApiError::Internal("storage error".into());
        }
        let code = match e {
            BlobError::TooLarge { .. } => "too_large",
            BlobError::MalformedRange(_) => "bad_range",
            BlobError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            BlobError::NotFound(_) => "not_found",
            BlobError::MissingParts(_) | BlobError::PartTooSmall { .. } => "bad_parts",
            _ => "bad_request",
        };
        ApiError::Coded {
            status,
            code,
            message: e.to_string(),
        }
    }
}

/// The caller of an upload: a user whose token has the `can_upload` grant.
pub struct Uploader(UserId);

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
        (status = 415, description = "The declared type disagrees with the bytes; nothing stored", body = ErrorBody)))]
pub async fn upload(
    State(app): State<Arc<App>>,
    Uploader(me): Uploader,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Result<(StatusCode, Json<FileInfo>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
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
            break store_upload(&app, me, &name, declared.as_deref(), field).await?;
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
        store_upload(&app, me, &name, content_type.as_deref(), body).await?
    };
    app.publish(Event::FileAdded {
        file_id: record.id.clone(),
        owner: me,
        name: record.name.clone(),
        chats: Vec::new(),
    })
    .await;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Streams `body` into a new blob, checks it, records it; on any refusal deletes the blob.
async fn store_upload<S, E>(
    app: &App,
    me: UserId,
    name: &str,
    declared: Option<&str>,
    body: S,
) -> Result<FileRecord, ApiError>
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send,
    E: std::fmt::Display,
{
    // The name is checked before any byte is stored.
    let name = messaging::validate::file_name(name)?;
    let id = BlobId::generate();
    let stored = app.files.blobs.put(&id, body, app.files.max_upload).await?;
    let checked = match declared {
        Some(d) if !declared_type_agrees(d, &stored.content_type) => Err(ApiError::Coded {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "type_mismatch",
            message: format!(
                "the body was declared as {} but its bytes are {}",
                essence(d),
                stored.content_type
            ),
        }),
        _ => Ok(()),
    };
    let recorded = match checked {
        Ok(()) => record(app, me, &id, &name, &stored).await,
        Err(e) => Err(e),
    };
    if recorded.is_err() {
        if let Err(e) = app.files.blobs.delete(&id).await {
            tracing::error!("deleting refused upload {}: {e}", id.as_str());
        }
    }
    recorded
}

async fn record(
    app: &App,
    me: UserId,
    id: &BlobId,
    name: &str,
    stored: &Stored,
) -> Result<FileRecord, ApiError> {
    let file = NewFile {
        id: id.as_str().to_owned(),
        name: name.to_owned(),
        size: i64::try_from(stored.size).unwrap_or(i64::MAX),
        content_type: stored.content_type.clone(),
        sha256: stored.sha256.clone(),
    };
    Ok(app.store.add_file(me, file).await?)
}

/// The media type without parameters, lowercase (`Text/HTML; charset=x` -> `text/html`).
fn essence(content_type: &str) -> String {
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
fn declared_type_agrees(declared: &str, sniffed: &str) -> bool {
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

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `GET /api/files`: the caller's newest files.
#[utoipa::path(get, path = "/api/files", tag = "files", security(("bearer" = [])),
    responses((status = 200, body = Vec<FileInfo>), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(app): State<Arc<App>>,
    authed: Authed,
) -> Result<Json<Vec<FileInfo>>, ApiError> {
    let files = app.store.files_of(authed.user, 200).await?;
    Ok(Json(files.into_iter().map(FileInfo::from).collect()))
}

/// `GET /api/files/{id}/info`: a file's record.
#[utoipa::path(get, path = "/api/files/{id}/info", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = FileInfo), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn info(
    State(app): State<Arc<App>>,
    authed: Authed,
    Path(id): Path<String>,
) -> Result<Json<FileInfo>, ApiError> {
    Ok(Json(app.store.file_for(authed.user, &id).await?.into()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadQuery {
    /// A signed link token from `POST /api/files/{id}/link`.
    #[serde(default)]
    link: Option<String>,
}

/// `GET /api/files/{id}`: download a file, whole or a byte range.
///
/// `Range: bytes=a-b` (one range) answers 206 with `Content-Range`; `ETag` is the SHA-256;
/// `If-None-Match` answers 304; `If-Range` with another ETag gets the whole file. Images,
/// audio and video are served `inline`, anything else as an `attachment`, always with
/// `X-Content-Type-Options: nosniff` and a sandboxing `Content-Security-Policy`.
#[utoipa::path(get, path = "/api/files/{id}", tag = "files", security(("bearer" = []), ()),
    params(("id" = String, Path),
        ("link" = Option<String>, Query, description = "Signed link token instead of a bearer token"),
        ("Range" = Option<String>, Header, description = "bytes=first-last | first- | -suffix")),
    responses((status = 200, description = "The whole file", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", content_type = "application/octet-stream"),
        (status = 304, description = "If-None-Match matched"),
        (status = 400, description = "Malformed Range", body = ErrorBody),
        (status = 401, description = "No token, or an invalid one", body = ErrorBody),
        (status = 403, description = "No access, or an expired or altered link", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 416, description = "Range outside the file", body = ErrorBody)))]
pub async fn download(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<DownloadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let file = match &query.link {
        Some(link) => {
            check_link(&app, &id, link)?;
            app.store.file(&id).await?
        }
        None => {
            let user = bearer_user(&app, &headers)?;
            app.store.file_for(user, &id).await?
        }
    };
    let etag = format!("\"{}\"", file.sha256);
    if let Some(inm) = header_str(&headers, header::IF_NONE_MATCH) {
        if etag_matches(inm, &etag) {
            let mut r = StatusCode::NOT_MODIFIED.into_response();
            set_common(r.headers_mut(), &file, &etag);
            return Ok(r);
        }
    }
    let if_range_ok = header_str(&headers, header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    let range = match header_str(&headers, header::RANGE) {
        Some(r) if if_range_ok => Some(ByteRange::parse(r)?),
        Some(_) => None,
        None => {
            if headers.contains_key(header::RANGE) {
                return Err(ApiError::Coded {
                    status: StatusCode::BAD_REQUEST,
                    code: "bad_range",
                    message: "the Range header is not ASCII".into(),
                });
            }
            None
        }
    };
    let blob_id = BlobId::parse(&file.id)?;
    let got = match app.files.blobs.get(&blob_id, range).await {
        Ok(got) => got,
        Err(BlobError::RangeNotSatisfiable { size }) => {
            let mut r = ApiError::Coded {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                code: "range_not_satisfiable",
                message: format!("the file has {size} bytes"),
            }
            .into_response();
            insert(
                r.headers_mut(),
                header::CONTENT_RANGE,
                &format!("bytes */{size}"),
            );
            return Ok(r);
        }
        Err(e) => return Err(e.into()),
    };
    let (status, length) = match got.range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.len()),
        None => (StatusCode::OK, got.total),
    };
    let mut response = Response::new(Body::from_stream(got.body));
    *response.status_mut() = status;
    let h = response.headers_mut();
    set_common(h, &file, &etag);
    insert(h, header::CONTENT_TYPE, &file.content_type);
    insert(h, header::CONTENT_LENGTH, &length.to_string());
    if let Some(r) = got.range {
        insert(h, header::CONTENT_RANGE, &r.content_range(got.total));
    }
    Ok(response)
}

/// Headers of both 200/206 and 304 answers.
fn set_common(h: &mut HeaderMap, file: &FileRecord, etag: &str) {
    insert(h, header::ETAG, etag);
    insert(h, header::ACCEPT_RANGES, "bytes");
    // The bytes of an id never change; the access check is per request, so only private caches.
    insert(h, header::CACHE_CONTROL, "private, max-age=3600");
    insert(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    insert(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    );
    insert(
        h,
        header::CONTENT_DISPOSITION,
        &content_disposition(&file.name, inline_type(&file.content_type)),
    );
}

fn insert(h: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// Types a browser may show in the page: images (but not SVG, which can carry script), audio
/// and video.
fn inline_type(content_type: &str) -> bool {
    (content_type.starts_with("image/") && content_type != "image/svg+xml")
        || content_type.starts_with("audio/")
        || content_type.starts_with("video/")
}

/// `inline` or `attachment`, with an ASCII fallback name and the exact UTF-8 name (RFC 6266).
fn content_disposition(name: &str, inline: bool) -> String {
    let kind = if inline { "inline" } else { "attachment" };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(name, RFC5987).to_string();
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Everything but RFC 5987's `attr-char` is percent-encoded.
const RFC5987: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `If-None-Match`: `*` or a list of (possibly weak) tags, one of which is ours.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// The user of a bearer token (any user token; access to the file is checked after).
fn bearer_user(app: &App, headers: &HeaderMap) -> Result<UserId, ApiError> {
    let token = crate::http::bearer_token(headers).ok_or_else(|| {
        ApiError::Unauthorized(
            "send Authorization: Bearer <access token> or use a signed link".into(),
        )
    })?;
    let claims = app
        .tokens
        .verify(&token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    UserId::from_subject(&claims.sub)
        .ok_or_else(|| ApiError::Forbidden("this token is not for a user account".into()))
}

/// The subject of a link token for file `id`.
fn link_subject(id: &str) -> String {
    format!("file:{id}")
}

fn check_link(app: &App, id: &str, link: &str) -> Result<(), ApiError> {
    let claims = app.tokens.verify(link).map_err(|e| ApiError::Coded {
        status: StatusCode::FORBIDDEN,
        code: if e == TokenError::Expired {
            "link_expired"
        } else {
            "link_invalid"
        },
        message: format!("the link is not valid: {e}"),
    })?;
    if claims.sub != link_subject(id) {
        return Err(ApiError::Coded {
            status: StatusCode::FORBIDDEN,
            code: "link_invalid",
            message: "the link is for another file".into(),
        });
    }
    Ok(())
}

impl App {
    /// A signed download path for file `id`, valid for `ttl`: `/api/files/{id}?link=<token>`.
    /// The caller must have checked that whoever gets it may read the file.
    pub fn signed_file_url(&self, id: &str, ttl: Duration) -> Result<(String, u64), ApiError> {
        let mut claims = Claims::for_user(&link_subject(id), None, ttl);
        claims.can_publish = false;
        claims.can_subscribe = false;
        claims.can_chat = false;
        claims.can_upload = false;
        let token = self
            .tokens
            .mint(&claims)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok((format!("/api/files/{id}?link={token}"), claims.exp))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// Lifetime in seconds (1 to 604800). Default 3600.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A signed, time-limited download link.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedLink {
    /// Path with the link token: usable without any header (`<video src>`).
    pub url: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// `POST /api/files/{id}/link`: a signed link for a `<video>` or `<img>` tag.
#[utoipa::path(post, path = "/api/files/{id}/link", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path)),
    request_body(content = LinkRequest, description = "Optional (an empty body: one hour)"),
    responses((status = 200, body = SignedLink), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn link(
    State(app): State<Arc<App>>,
    authed: Authed,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<SignedLink>, ApiError> {
    let request: LinkRequest = if body.is_empty() {
        LinkRequest { ttl_secs: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    };
    let ttl = match request.ttl_secs {
        None => LINK_TTL,
        Some(s) if (1..=LINK_TTL_MAX.as_secs()).contains(&s) => Duration::from_secs(s),
        Some(_) => return Err(ApiError::BadRequest("ttl_secs must be 1 to 604800".into())),
    };
    let file = app.store.file_for(authed.user, &id).await?;
    let (url, expires_at) = app.signed_file_url(&file.id, ttl)?;
    Ok(Json(SignedLink { url, expires_at }))
}

/// `DELETE /api/files/{id}`: the owner deletes a file (its bytes and its record).
#[utoipa::path(delete, path = "/api/files/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, description = "Not the owner", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(app): State<Arc<App>>,
    authed: Authed,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let file = app.store.delete_file(authed.user, &id).await?;
    app.files.blobs.delete(&BlobId::parse(&file.id)?).await?;
    app.publish(Event::FileRemoved { file_id: file.id }).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Resumable uploads: start, send parts (each retried alone after a lost connection), ask
// which parts arrived, complete or abort.

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
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn start_upload(
    State(app): State<Arc<App>>,
    Uploader(me): Uploader,
    ApiJson(req): ApiJson<StartUpload>,
) -> Result<(StatusCode, Json<UploadState>), ApiError> {
    let name = messaging::validate::file_name(&req.name)?;
    let file_id = BlobId::generate();
    let upload = app.files.blobs.start_upload(&file_id).await?;
    let id = BlobId::generate(); // the same kind of random id, for the client
    if let Err(e) = app
        .store
        .add_upload(me, id.as_str(), file_id.as_str(), &upload.upload, &name)
        .await
    {
        let _ = app.files.blobs.abort(&upload).await;
        return Err(e.into());
    }
    Ok((
        StatusCode::CREATED,
        Json(upload_state(id.as_str(), &name, Vec::new())),
    ))
}

async fn my_upload(
    app: &App,
    me: UserId,
    id: &str,
) -> Result<(messaging::UploadRecord, UploadId), ApiError> {
    let record = app.store.upload_for(me, id).await?;
    let upload = UploadId {
        blob: BlobId::parse(&record.file_id).map_err(|_| StoreError::UploadNotFound)?,
        upload: record.backend_id.clone(),
    };
    Ok((record, upload))
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
    let (record, upload) = my_upload(&app, me, &id).await?;
    let parts = app.files.blobs.list_parts(&upload).await?;
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
    let (_, upload) = my_upload(&app, me, &id).await?;
    let too_large = |limit| ApiError::from(BlobError::TooLarge { limit });
    let part_limit = media_store::MAX_PART_SIZE.min(app.files.max_upload);
    let data = axum::body::to_bytes(body, usize::try_from(part_limit).unwrap_or(usize::MAX))
        .await
        .map_err(|_| too_large(part_limit))?;
    let others: u64 = app
        .files
        .blobs
        .list_parts(&upload)
        .await?
        .iter()
        .filter(|p| p.number != n)
        .map(|p| p.size)
        .sum();
    if others + data.len() as u64 > app.files.max_upload {
        return Err(too_large(app.files.max_upload));
    }
    Ok(Json(app.files.blobs.put_part(&upload, n, data).await?))
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
    let (record, upload) = my_upload(&app, me, &id).await?;
    let stored = app.files.blobs.complete(&upload).await?;
    app.store.remove_upload(&record.id).await?;
    let blob = BlobId::parse(&record.file_id)?;
    let file = match self::record(&app, me, &blob, &record.name, &stored).await {
        Ok(f) => f,
        Err(e) => {
            let _ = app.files.blobs.delete(&blob).await;
            return Err(e);
        }
    };
    app.publish(Event::FileAdded {
        file_id: file.id.clone(),
        owner: me,
        name: file.name.clone(),
        chats: Vec::new(),
    })
    .await;
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
    let (record, upload) = my_upload(&app, me, &id).await?;
    app.files.blobs.abort(&upload).await?;
    app.store.remove_upload(&record.id).await?;
    Ok(StatusCode::NO_CONTENT)
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

    #[test]
    fn dispositions_and_etags() {
        assert_eq!(
            content_disposition("clip.webm", true),
            "inline; filename=\"clip.webm\"; filename*=UTF-8''clip.webm"
        );
        assert_eq!(
            content_disposition("отчёт \"1\".pdf", false),
            "attachment; filename=\"_____ _1_.pdf\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82%20%221%22.pdf"
        );
        assert!(inline_type("video/webm") && !inline_type("image/svg+xml"));
        assert!(!inline_type("text/html"));
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
