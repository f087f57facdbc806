//! The extractors every HTTP door shares, so a handler's body is its business logic only:
//! [`ApiJson`] (a strictly parsed JSON body), [`Authed`] (a user's access token that allows
//! chat), [`AnyToken`] (any valid GAX token), [`ClientKey`] (who asks, for rate limiting) and
//! [`bearer_token`] for doors that read the header themselves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use messaging::auth::Claims;
use messaging::UserId;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::error::ApiError;

/// The token from `Authorization: Bearer <token>`, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// A JSON body parsed strictly: malformed JSON, a wrong content type, missing or unknown
/// fields, a NUL character in any string are a 400 with a JSON error (a body over the limit a
/// 413), never a plain-text rejection.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::Coded {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                message: "send the body as Content-Type: application/json".into(),
            });
        }
        let body = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::Coded {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    code: "too_large",
                    message: format!("the body is larger than {JSON_BODY_LIMIT} bytes"),
                }
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        if json_has_nul(&body) {
            return Err(nul_refused());
        }
        match Json::<T>::from_bytes(&body) {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The lifetime asked for by an optional JSON body `{"ttl_secs": N}` (a link's): `default` for
/// an empty body, 400 for anything but 1..=`max` seconds or other fields.
pub fn optional_ttl(body: &Bytes, default: Duration, max: Duration) -> Result<Duration, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ttl {
        #[serde(default)]
        ttl_secs: Option<u64>,
    }
    if body.is_empty() {
        return Ok(default);
    }
    let req: Ttl = serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match req.ttl_secs {
        None => Ok(default),
        Some(s) if (1..=max.as_secs()).contains(&s) => Ok(Duration::from_secs(s)),
        Some(_) => Err(ApiError::BadRequest(format!(
            "ttl_secs must be 1 to {}",
            max.as_secs()
        ))),
    }
}

/// The largest JSON body a REST route reads (axum's default body limit).
pub const JSON_BODY_LIMIT: usize = 2 << 20;

/// `application/json` or any `application/...+json`, parameters aside.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The 400 for text with a NUL character: no database column stores one (Postgres refuses it),
/// and no name, message or title needs one.
pub fn nul_refused() -> ApiError {
    ApiError::Coded {
        status: StatusCode::BAD_REQUEST,
        code: "nul_character",
        message: "text must not contain NUL characters (\\u0000)".into(),
    }
}

/// Whether a JSON text has a string with a NUL character. JSON can only carry one as the
/// escape `\u0000` (a raw NUL byte is not valid JSON, and serde_json refuses it), so this scans
/// escapes, skipping escaped backslashes: `\\u0000` is a backslash followed by text.
pub fn json_has_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = json[i..].iter().position(|&b| b == b'\\') {
        let at = i + off;
        match json.get(at + 1) {
            Some(b'u') if json.get(at + 2..at + 6) == Some(b"0000") => return true,
            Some(_) => i = at + 2,
            None => break,
        }
    }
    json.contains(&0)
}
/// The caller, from `Authorization: Bearer <access token>`: a user account (subject
/// `user:<id>`) whose token allows chat.
pub struct Authed {
    pub user: UserId,
    pub claims: Claims,
}

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized("send Authorization: Bearer <access token>".into())
        })?;
        let claims = app
            .tokens
            .verify(&token)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        let user = UserId::from_subject(&claims.sub)
            .ok_or_else(|| ApiError::Forbidden("this token is not for a user account".into()))?;
        if !claims.can_chat {
            return Err(ApiError::Forbidden("this token does not allow chat".into()));
        }
        Ok(Authed { user, claims })
    }
}

/// Any valid GAX token (a user's access token, or a share link's token).
pub struct AnyToken(pub Claims);

impl FromRequestParts<Arc<App>> for AnyToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)
            .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <token>".into()))?;
        app.tokens
            .verify(&token)
            .map(AnyToken)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))
    }
}

/// Who is asking, for login rate limiting: the peer address.
pub struct ClientKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientKey {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(ClientKey(ip.unwrap_or_else(|| "unknown".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_and_escaped_backslashes_are_not_mistaken_for_them() {
        assert!(json_has_nul(br#"{"username":"a\u0000b"}"#));
        assert!(json_has_nul(br#"["\u0000"]"#));
        assert!(
            json_has_nul(br#"["x\\\u0000"]"#),
            "an escaped backslash, then a NUL"
        );
        assert!(
            !json_has_nul(br#"{"text":"a\\u0000b"}"#),
            "a backslash, then text"
        );
        assert!(!json_has_nul(br#"{"text":"\u0001 \n \\"}"#));
        assert!(!json_has_nul(br#"{"text":"ends with \"#));
        assert!(json_has_nul(b"{\"raw\":\"\0\"}"));
    }

    #[test]
    fn json_content_types() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
