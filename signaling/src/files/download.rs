//! Reading files: the caller's list, a file's record, the bytes (whole or a Range, with
//! ETag and safe headers; by bearer token or signed link), a signed link, and delete.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use media_store::{BlobError, BlobId, ByteRange};
use messaging::{FileRecord, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{header_str, FileInfo, LINK_TTL, LINK_TTL_MAX};
use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{bearer_token, Authed};
use crate::links::check_link;

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
    let got = match app.files.blobs().get(&blob_id, range).await {
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

/// The user of a bearer token: a user's access token, as every other file route asks for
/// (access to the file is checked after). A call token names a user too, but grants a call
/// room, not files: it is refused (a signed link is the grant for one file).
fn bearer_user(app: &App, headers: &HeaderMap) -> Result<UserId, ApiError> {
    let token = bearer_token(headers).ok_or_else(|| {
        ApiError::Unauthorized(
            "send Authorization: Bearer <access token> or use a signed link".into(),
        )
    })?;
    let claims = app
        .tokens
        .verify(&token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    let user = UserId::from_subject(&claims.sub)
        .ok_or_else(|| ApiError::Forbidden("this token is not for a user account".into()))?;
    if !claims.can_chat {
        return Err(ApiError::Forbidden(
            "this token does not grant files; use an access token or a signed link".into(),
        ));
    }
    Ok(user)
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
    let ttl = crate::extract::optional_ttl(&body, LINK_TTL, LINK_TTL_MAX)?;
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
    app.files.delete(authed.user, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

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
