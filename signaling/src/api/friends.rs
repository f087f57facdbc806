//! Friends: the lists, requests, accept, decline, remove.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use messaging::{FriendRequestOutcome, Profile, StoreError, UserId};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authed;

#[derive(Serialize, ToSchema)]
pub struct FriendLists {
    pub friends: Vec<Profile>,
    /// Requests others sent you.
    pub incoming: Vec<Profile>,
    /// Requests you sent.
    pub outgoing: Vec<Profile>,
}

/// Friends and pending requests.
#[utoipa::path(get, path = "/api/friends", tag = "friends", security(("bearer" = [])),
    responses((status = 200, body = FriendLists)))]
pub async fn friends(
    State(app): State<Arc<App>>,
    me: Authed,
) -> Result<Json<FriendLists>, ApiError> {
    Ok(Json(FriendLists {
        friends: app.store.friends(me.user).await?,
        incoming: app.store.incoming_friend_requests(me.user).await?,
        outgoing: app.store.outgoing_friend_requests(me.user).await?,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct FriendRequestResult {
    pub outcome: FriendRequestOutcome,
}

/// Asks a user to be friends (if they already asked you, you are friends at once).
#[utoipa::path(post, path = "/api/friends/{id}/request", tag = "friends",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, body = FriendRequestResult), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn request_friend(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(id): Path<i64>,
) -> Result<Json<FriendRequestResult>, ApiError> {
    let outcome = app.store.request_friend(me.user, UserId(id)).await?;
    app.service.friends_changed(me.user, UserId(id)).await;
    Ok(Json(FriendRequestResult { outcome }))
}

/// Accepts a user's friend request.
#[utoipa::path(post, path = "/api/friends/{id}/accept", tag = "friends",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn accept_friend(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    app.store.accept_friend(me.user, UserId(id)).await?;
    app.service.friends_changed(me.user, UserId(id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Declines a user's friend request.
#[utoipa::path(post, path = "/api/friends/{id}/decline", tag = "friends",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn decline_friend(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    app.store.decline_friend(me.user, UserId(id)).await?;
    app.service.friends_changed(me.user, UserId(id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a friend, or withdraws a request you sent.
#[utoipa::path(delete, path = "/api/friends/{id}", tag = "friends",
    security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_friend(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    match app.store.remove_friend(me.user, UserId(id)).await {
        Ok(()) => {}
        Err(StoreError::NotFriends) => {
            app.store.cancel_friend_request(me.user, UserId(id)).await?;
        }
        Err(e) => return Err(e.into()),
    }
    app.service.friends_changed(me.user, UserId(id)).await;
    Ok(StatusCode::NO_CONTENT)
}
