//! The watch party's REST routes under `/api/watch`: create a room from a URL or an uploaded
//! file, read a room with its live state, invite members and hand them control, make a share
//! link, and send a control (the same rules as the `/ws` session's `control`). Live delivery
//! is on `/ws` ([`crate::ws::watch`]); these routes are described in the OpenAPI document.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use messaging::auth::Claims;
use messaging::service::Viewer;
use messaging::watch_rooms::is_room_id;
use messaging::{Playback, Source, UserId, WatchError, WatchMember, WatchRole, WatchRoom};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AnyToken, ApiJson, Authed};
use crate::watch::{call_room, control_from_parts, playable_url, server_now};

/// How long a share link works by default, and at most.
pub const LINK_TTL: Duration = Duration::from_secs(24 * 3600);
pub const LINK_TTL_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

async fn load_room(app: &App, room: &str) -> Result<WatchRoom, ApiError> {
    if !is_room_id(room) {
        return Err(WatchError::RoomNotFound.into());
    }
    Ok(app.store.watch_room(room).await?)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWatchRoom {
    /// 1 to 100 characters.
    pub title: String,
    /// `{"url": "https://…"}` (http or https only) or `{"file": "<file id>"}` (from
    /// `POST /api/files`).
    pub source: Source,
    /// Length of the media in seconds, when known: seeks past it are refused.
    #[serde(default)]
    pub duration: Option<f64>,
}

/// A room as one viewer sees it.
#[derive(Serialize, ToSchema)]
pub struct WatchRoomView {
    pub room: WatchRoom,
    /// The live playback state (server clock, Unix ms).
    pub state: Playback,
    /// Where the browser plays the source from.
    pub source_url: String,
    pub members: Vec<WatchMember>,
    /// The caller's role (`viewer` for a share-link guest).
    pub role: WatchRole,
    /// The watch page.
    pub page: String,
    /// The server clock when this was answered (Unix ms).
    pub server_time: f64,
}

pub async fn view(app: &App, room: WatchRoom, role: WatchRole) -> Result<WatchRoomView, ApiError> {
    let state = app.service.watch_state(&room).await?;
    let members = app.store.watch_members(&room.id).await?;
    Ok(WatchRoomView {
        source_url: playable_url(app, &room.source),
        page: format!("/watch/{}", room.id),
        room,
        state,
        members,
        role,
        server_time: server_now(),
    })
}

/// Creates a watch room you host, playing an http(s) URL or an uploaded file; it starts
/// paused at 0.
#[utoipa::path(post, path = "/api/watch", tag = "watch", security(("bearer" = [])),
    request_body = NewWatchRoom,
    responses((status = 201, body = WatchRoomView),
        (status = 400, description = "Bad title, source (not http/https) or duration", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn create_room(
    State(app): State<Arc<App>>,
    me: Authed,
    ApiJson(req): ApiJson<NewWatchRoom>,
) -> Result<(StatusCode, Json<WatchRoomView>), ApiError> {
    let room = app
        .store
        .create_watch_room(me.user, &req.title, &req.source, req.duration)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&app, room, WatchRole::Host).await?),
    ))
}

/// A room with its live state, for its members and share-link holders.
#[utoipa::path(get, path = "/api/watch/{room}", tag = "watch", security(("bearer" = [])),
    params(("room" = String, Path, description = "Room id")),
    responses((status = 200, body = WatchRoomView), (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, no link for this room", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_room(
    State(app): State<Arc<App>>,
    AnyToken(claims): AnyToken,
    Path(room): Path<String>,
) -> Result<Json<WatchRoomView>, ApiError> {
    let room = load_room(&app, &room).await?;
    let viewer = app.service.watch_viewer(&room, &claims).await?;
    Ok(Json(view(&app, room, viewer.role()).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWatchMember {
    pub user: i64,
    /// `viewer` (default) or `controller` (may play, pause, seek, change the rate).
    #[serde(default)]
    pub role: Option<WatchRole>,
}

/// Invites a user, or changes a member's role (host only): `controller` hands control,
/// `viewer` takes it back.
#[utoipa::path(post, path = "/api/watch/{room}/members", tag = "watch",
    security(("bearer" = [])), params(("room" = String, Path)), request_body = SetWatchMember,
    responses((status = 204), (status = 403, description = "Not the host, or the host's role", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn set_member(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(room): Path<String>,
    ApiJson(req): ApiJson<SetWatchMember>,
) -> Result<StatusCode, ApiError> {
    let room = load_room(&app, &room).await?;
    let role = req.role.unwrap_or(WatchRole::Viewer);
    app.store
        .set_watch_member(me.user, &room.id, UserId(req.user), role)
        .await?;
    app.service.watch_members_changed(&room.id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A share link: whoever opens it watches as a guest (and may join the room's call).
#[derive(Serialize, ToSchema)]
pub struct ShareLink {
    /// The watch page with the token, ready to open.
    pub url: String,
    pub token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareLinkRequest {
    /// Lifetime in seconds (1 to 604800). Default 86400 (24 hours).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// Makes a share link for the room (host only), valid for 24 hours unless asked otherwise. It
/// expires when it says: the call token a guest is handed in the welcome expires no later, and
/// is no share link itself.
#[utoipa::path(post, path = "/api/watch/{room}/link", tag = "watch",
    security(("bearer" = [])), params(("room" = String, Path)),
    request_body(content = ShareLinkRequest, description = "Optional (an empty body: 24 hours)"),
    responses((status = 200, body = ShareLink), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn share_link(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(room): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ShareLink>, ApiError> {
    let ttl = crate::extract::optional_ttl(&body, LINK_TTL, LINK_TTL_MAX)?;
    let room = load_room(&app, &room).await?;
    if room.host != me.user {
        return Err(match app.store.watch_role(&room.id, me.user).await? {
            Some(_) => WatchError::NotHost,
            None => WatchError::NotMember,
        }
        .into());
    }
    let guest: [u8; 6] = rand::random();
    let guest: String = guest.iter().map(|b| format!("{b:02x}")).collect();
    let mut claims = Claims::for_room(&format!("guest-{guest}"), None, &call_room(&room.id), ttl);
    claims.watch = Some(room.id.clone());
    let token = app
        .tokens
        .mint(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(ShareLink {
        url: format!("/watch/{}?token={token}&autojoin=1", room.id),
        token,
        expires_at: i64::try_from(claims.exp).unwrap_or(i64::MAX) * 1000,
    }))
}

/// A control, as on the `/ws` watch session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchControl {
    /// `play`, `pause`, `seek` (with `position`) or `rate` (with `rate`).
    pub action: String,
    /// The state version this control was made against.
    pub version: u64,
    /// Seconds, for `seek`: 0 to the media's length.
    #[serde(default)]
    pub position: Option<f64>,
    /// For `rate`: 0.25 to 4.
    #[serde(default)]
    pub rate: Option<f64>,
}

/// Plays, pauses, seeks or changes the rate (host and controllers). Answers the new state;
/// refused controls change nothing.
#[utoipa::path(post, path = "/api/watch/{room}/control", tag = "watch",
    security(("bearer" = [])), params(("room" = String, Path)), request_body = WatchControl,
    responses((status = 200, body = Playback),
        (status = 400, description = "Bad action, negative or past-the-end seek, rate outside 0.25..=4", body = ErrorBody),
        (status = 403, description = "Not the host or a controller", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Stale state version", body = ErrorBody)))]
pub async fn control(
    State(app): State<Arc<App>>,
    AnyToken(claims): AnyToken,
    Path(room): Path<String>,
    ApiJson(req): ApiJson<WatchControl>,
) -> Result<Json<Playback>, ApiError> {
    let room = load_room(&app, &room).await?;
    let viewer: Viewer = app.service.watch_viewer(&room, &claims).await?;
    let control = control_from_parts(&req.action, req.position, req.rate)?;
    app.service.watch_may_control(&room, &viewer).await?;
    Ok(Json(
        app.service
            .watch_control(&room, &control, req.version)
            .await?,
    ))
}
