//! The JSON error every HTTP door answers with: [`ApiError`] (status + stable code), its body
//! [`ErrorBody`] as the OpenAPI document describes it, and the one place where the errors of
//! the domain crates (messaging, media-store) become HTTP statuses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use media_store::BlobError;
use messaging::service::files::FileError;
use messaging::{ErrorKind, StoreError, WatchError};
use serde::Serialize;
use utoipa::ToSchema;

/// An HTTP error: status plus a JSON body `{"error": code, "message": text}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
    /// An error with its own status and stable code (e.g. from the messaging store).
    #[error("{message}")]
    Coded {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// 429 `rate_limited` with `Retry-After` (whole seconds, rounded up).
    #[error("{message}")]
    RateLimited {
        retry_after: std::time::Duration,
        message: String,
    },
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Coded { status, code, .. } => (*status, code),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let body = serde_json::json!({ "error": code, "message": self.to_string() });
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after, .. } = &self {
            let secs = messaging::error::ceil_secs(*retry_after);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine code, e.g. `not_member`, `username_taken`, `bad_request`.
    pub error: String,
    /// What went wrong, for humans.
    pub message: String,
}

/// The HTTP status of a kind of messaging error.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The HTTP status of a watch-party error (the watch session picks its close code from it).
pub fn watch_status(e: &WatchError) -> StatusCode {
    status_of(e.kind())
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::RateLimited { retry_after } = e {
            return ApiError::RateLimited {
                retry_after,
                message: e.to_string(),
            };
        }
        if e.is_internal() {
            tracing::error!("store error: {e}");
            return ApiError::Internal("internal error".into());
        }
        ApiError::Coded {
            status: status_of(e.kind()),
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<WatchError> for ApiError {
    fn from(e: WatchError) -> Self {
        if e.is_internal() {
            tracing::error!("watch party error: {e}");
            return ApiError::Internal("internal error".into());
        }
        ApiError::Coded {
            status: watch_status(&e),
            code: e.code(),
            message: e.to_string(),
        }
    }
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

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Store(e) => e.into(),
            FileError::Blob(e) => e.into(),
            FileError::TypeMismatch { .. } => ApiError::Coded {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "type_mismatch",
                message: e.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(e: &StoreError) -> u16 {
        status_of(e.kind()).as_u16()
    }

    #[test]
    fn store_errors_get_their_statuses() {
        let all = [
            StoreError::InvalidUsername,
            StoreError::BadCredentials,
            StoreError::RateLimited {
                retry_after: Duration::from_millis(1500),
            },
            StoreError::NotMember,
            StoreError::MessageTooLong { max: 4000 },
            StoreError::Internal("x".into()),
        ];
        for e in &all {
            assert!((400..600).contains(&status(e)));
        }
        assert_eq!(status(&StoreError::NotMember), 403);
        assert_eq!(status(&StoreError::BadCredentials), 401);
        assert_eq!(status(&StoreError::InvalidRefreshToken), 401);
        assert_eq!(
            status(&StoreError::RateLimited {
                retry_after: Duration::ZERO
            }),
            429
        );
        assert_eq!(
            status(&StoreError::MessageTooLong { max: 4000 }),
            413,
            "oversized maps to Payload Too Large"
        );
        assert_eq!(status(&StoreError::MessageDeleted), 410);
        assert_eq!(status(&StoreError::UsernameTaken), 409);
        assert_eq!(status(&StoreError::ChatNotFound), 404);
        assert_eq!(status(&StoreError::EmptyMessage), 400);
        assert_eq!(status(&StoreError::Internal("x".into())), 500);
    }

    #[test]
    fn watch_errors_get_their_statuses() {
        let stale = WatchError::StaleVersion { current: 1 };
        assert_eq!(watch_status(&stale).as_u16(), 409);
        let seek = WatchError::SeekOutOfRange {
            position: 61.0,
            duration: Some(60.0),
        };
        assert_eq!(watch_status(&seek).as_u16(), 400);
        assert_eq!(watch_status(&WatchError::NotHost).as_u16(), 403);
        assert_eq!(watch_status(&WatchError::RoomNotFound).as_u16(), 404);
        assert_eq!(watch_status(&WatchError::RateLimited).as_u16(), 429);
        assert_eq!(
            watch_status(&WatchError::Store(StoreError::NotMember)).as_u16(),
            403
        );
        assert_eq!(watch_status(&WatchError::Live("x".into())).as_u16(), 500);
    }
}
