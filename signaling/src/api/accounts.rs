//! Accounts and sessions: register, log in (rate limited), refresh (rotating refresh
//! tokens), log out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use messaging::{Profile, ProfileUpdate, Session};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ClientKey};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3 to 32 characters of a-z, 0-9, `_`, `.`, `-` (case is kept, uniqueness ignores it).
    pub username: String,
    /// 8 to 1024 characters.
    pub password: String,
    /// Defaults to the username.
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A signed-in session: a short-lived access token (JWT) and a refresh token to renew it.
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub user: Profile,
    /// Send as `Authorization: Bearer` (and as `token` on `/ws`).
    pub access_token: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// Opaque; exchange at `/api/auth/refresh`. Each refresh token works once.
    pub refresh_token: String,
    /// Unix milliseconds.
    pub refresh_expires_at: i64,
}

fn session_response(app: &App, session: Session) -> Result<TokenResponse, ApiError> {
    let claims = session.access_claims(app.access_token_ttl);
    let access_token = app
        .tokens
        .mint(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(TokenResponse {
        user: session.user,
        access_token,
        expires_in: app.access_token_ttl.as_secs(),
        refresh_token: session.refresh_token,
        refresh_expires_at: session.refresh_expires_at,
    })
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/api/auth/register", tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created and signed in", body = TokenResponse),
        (status = 400, description = "Invalid username, password or display name", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this address; see Retry-After", body = ErrorBody),
    ))]
pub async fn register(
    State(app): State<Arc<App>>,
    ClientKey(client): ClientKey,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    app.signups.take(&client, std::time::Instant::now())?;
    // Check the display name first: a refusal must not leave an account behind.
    if let Some(name) = &req.display_name {
        messaging::validate::display_name(name)?;
    }
    let profile = app.store.register(&req.username, &req.password).await?;
    if let Some(name) = req.display_name {
        let update = ProfileUpdate {
            display_name: Some(name),
            ..Default::default()
        };
        app.store.update_profile(profile.id, update).await?;
    }
    let session = app.store.login(&req.username, &req.password).await?;
    app.service.user_changed(&session.user).await;
    Ok((StatusCode::CREATED, Json(session_response(&app, session)?)))
}

/// Signs in with a password. Wrong username and wrong password get the same answer in the
/// same time; repeated failures per (username, client address) and per client address are rate
/// limited.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 429, description = "Too many failures; retry later", body = ErrorBody),
    ))]
pub async fn login(
    State(app): State<Arc<App>>,
    ClientKey(client): ClientKey,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let session = app
        .store
        .login_limited(&app.limiter, &client, &req.username, &req.password)
        .await?;
    Ok(Json(session_response(&app, session)?))
}

/// Exchanges a refresh token for a new access token and a new refresh token. A refresh token
/// works once: presenting a used one ends the whole session.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = ErrorBody),
    ))]
pub async fn refresh(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let session = app.store.refresh(&req.refresh_token).await?;
    Ok(Json(session_response(&app, session)?))
}

/// Ends the session of a refresh token (signs out).
#[utoipa::path(post, path = "/api/auth/logout", tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Invalid refresh token", body = ErrorBody),
    ))]
pub async fn logout(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<StatusCode, ApiError> {
    app.store.logout(&req.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}
