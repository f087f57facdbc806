//! Chats: the caller's list, open a direct chat or create a group, a chat with its members,
//! rename, add and remove members (or leave), and a call token for a chat's call room.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use messaging::auth::Claims;
use messaging::{Chat, ChatId, ChatMember, ChatSummary, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::CALL_TTL;
use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Authed};

/// A new chat: a direct chat with one user, or a group.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewChat {
    /// Opens (or returns the existing) direct chat with `user`.
    Direct { user: i64 },
    /// Creates a group you administer.
    Group {
        title: String,
        #[serde(default)]
        members: Vec<i64>,
    },
}

/// The caller's chats, most recently active first, with unread counts.
#[utoipa::path(get, path = "/api/chats", tag = "chats", security(("bearer" = [])),
    responses((status = 200, body = Vec<ChatSummary>)))]
pub async fn list_chats(
    State(app): State<Arc<App>>,
    me: Authed,
) -> Result<Json<Vec<ChatSummary>>, ApiError> {
    Ok(Json(app.store.list_chats(me.user).await?))
}

/// Opens a direct chat or creates a group.
#[utoipa::path(post, path = "/api/chats", tag = "chats", security(("bearer" = [])),
    request_body = NewChat,
    responses((status = 201, body = Chat), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn create_chat(
    State(app): State<Arc<App>>,
    me: Authed,
    ApiJson(req): ApiJson<NewChat>,
) -> Result<(StatusCode, Json<Chat>), ApiError> {
    let chat = match req {
        NewChat::Direct { user } => app.store.open_direct_chat(me.user, UserId(user)).await?,
        NewChat::Group { title, members } => {
            let members: Vec<UserId> = members.into_iter().map(UserId).collect();
            app.store.create_group(me.user, &title, &members).await?
        }
    };
    app.service.chat_changed(me.user, chat.id).await;
    Ok((StatusCode::CREATED, Json(chat)))
}

#[derive(Serialize, ToSchema)]
pub struct ChatDetails {
    pub chat: Chat,
    pub members: Vec<ChatMember>,
}

/// A chat you are a member of, with its members and their read marks.
#[utoipa::path(get, path = "/api/chats/{chat}", tag = "chats", security(("bearer" = [])),
    params(("chat" = i64, Path)),
    responses((status = 200, body = ChatDetails), (status = 403, body = ErrorBody)))]
pub async fn get_chat(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
) -> Result<Json<ChatDetails>, ApiError> {
    let chat = ChatId(chat);
    Ok(Json(ChatDetails {
        chat: app.store.chat(me.user, chat).await?,
        members: app.store.chat_members(me.user, chat).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameChat {
    pub title: String,
}

/// Renames a group (group admins).
#[utoipa::path(patch, path = "/api/chats/{chat}", tag = "chats", security(("bearer" = [])),
    params(("chat" = i64, Path)), request_body = RenameChat,
    responses((status = 200, body = Chat), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn rename_chat(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    ApiJson(req): ApiJson<RenameChat>,
) -> Result<Json<Chat>, ApiError> {
    let chat = app
        .store
        .rename_group(me.user, ChatId(chat), &req.title)
        .await?;
    app.service.chat_changed(me.user, chat.id).await;
    Ok(Json(chat))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user: i64,
}

/// Adds a member to a group (group admins).
#[utoipa::path(post, path = "/api/chats/{chat}/members", tag = "chats",
    security(("bearer" = [])), params(("chat" = i64, Path)), request_body = AddMember,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_member(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    ApiJson(req): ApiJson<AddMember>,
) -> Result<StatusCode, ApiError> {
    app.store
        .add_member(me.user, ChatId(chat), UserId(req.user))
        .await?;
    app.service.chat_changed(me.user, ChatId(chat)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member from a group (group admins), or leaves it when `user` is you.
#[utoipa::path(delete, path = "/api/chats/{chat}/members/{user}", tag = "chats",
    security(("bearer" = [])), params(("chat" = i64, Path), ("user" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    State(app): State<Arc<App>>,
    me: Authed,
    Path((chat, user)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let (chat, user) = (ChatId(chat), UserId(user));
    if user == me.user {
        app.store.leave_chat(me.user, chat).await?;
    } else {
        app.store.remove_member(me.user, chat, user).await?;
    }
    app.service.chat_changed(me.user, chat).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A call in a chat: its room and a call token for it.
#[derive(Serialize, ToSchema)]
pub struct ChatCall {
    /// The call room of this chat (`chat-<id>`).
    pub room: String,
    /// A call token for that room (publish and subscribe).
    pub token: String,
    /// The call page, ready to open.
    pub url: String,
}

/// Starts (or joins) the call of a chat: members get a call token for the chat's room.
#[utoipa::path(post, path = "/api/chats/{chat}/call", tag = "chats",
    security(("bearer" = [])), params(("chat" = i64, Path)),
    responses((status = 200, body = ChatCall), (status = 403, body = ErrorBody)))]
pub async fn chat_call(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
) -> Result<Json<ChatCall>, ApiError> {
    let chat = app.store.chat(me.user, ChatId(chat)).await?;
    let room = format!("chat-{}", chat.id);
    let claims = Claims::for_room(&me.claims.sub, me.claims.name.as_deref(), &room, CALL_TTL);
    let token = app
        .tokens
        .mint(&claims)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let url = format!("/?room={room}&token={token}&autojoin=1");
    Ok(Json(ChatCall { room, token, url }))
}
