//! The extractors every HTTP door shares, so a handler's body is its business logic only:
//! [`ApiJson`] (a strictly parsed JSON body), [`Authed`] (a user's access token that allows
//! chat), [`AnyToken`] (any valid GAX token), [`ClientKey`] (who asks, for rate limiting) and
//! [`bearer_token`] for doors that read the header themselves.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
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
/// fields are a 400 with a JSON error, never a plain-text rejection.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::Coded {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "unsupported_media_type",
                message: "send the body as Content-Type: application/json".into(),
            }),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
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
