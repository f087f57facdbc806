//! Profiles: the caller's own (read, change) and anyone's by id or username.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use messaging::{Profile, ProfileUpdate, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Authed};

/// The caller's profile.
#[utoipa::path(get, path = "/api/me", tag = "profiles", security(("bearer" = [])),
    responses((status = 200, body = Profile), (status = 401, body = ErrorBody)))]
pub async fn me(State(app): State<Arc<App>>, me: Authed) -> Result<Json<Profile>, ApiError> {
    Ok(Json(app.store.profile(me.user).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// 1 to 64 characters.
    #[serde(default)]
    pub display_name: Option<String>,
    /// 0 to 500 characters.
    #[serde(default)]
    pub bio: Option<String>,
    /// A file id, or `null` to remove the avatar; absent leaves it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_file_id: Option<Option<String>>,
}

/// Absent -> `None`, `null` -> `Some(None)`, a value -> `Some(Some(v))`.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Changes the caller's profile; absent fields stay as they are.
#[utoipa::path(patch, path = "/api/me", tag = "profiles", security(("bearer" = [])),
    request_body = ProfilePatch,
    responses((status = 200, body = Profile), (status = 400, body = ErrorBody)))]
pub async fn update_me(
    State(app): State<Arc<App>>,
    me: Authed,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Json<Profile>, ApiError> {
    let update = ProfileUpdate {
        display_name: patch.display_name,
        avatar_file_id: patch.avatar_file_id,
        bio: patch.bio,
    };
    let profile = app.store.update_profile(me.user, update).await?;
    app.service.user_changed(&profile).await;
    Ok(Json(profile))
}

/// A user's profile by id.
#[utoipa::path(get, path = "/api/users/{id}", tag = "profiles", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
pub async fn user(
    State(app): State<Arc<App>>,
    _me: Authed,
    Path(id): Path<i64>,
) -> Result<Json<Profile>, ApiError> {
    Ok(Json(app.store.profile(UserId(id)).await?))
}

/// A user's profile by username (case ignored).
#[utoipa::path(get, path = "/api/users/by-name/{username}", tag = "profiles",
    security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)))]
pub async fn user_by_name(
    State(app): State<Arc<App>>,
    _me: Authed,
    Path(username): Path<String>,
) -> Result<Json<Profile>, ApiError> {
    Ok(Json(app.store.find_user(&username).await?))
}
