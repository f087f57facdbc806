//! Messages: a page of history (before or after a cursor), send (idempotent by client key),
//! edit, delete (a tombstone keeps the `seq`), and read marks.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use messaging::{ChatId, Message, NewMessage, Sent};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, Authed};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Newest first, messages with `seq` below this (default: the newest).
    pub before: Option<i64>,
    /// Oldest first, messages with `seq` above this (catching up). Excludes `before`.
    pub after: Option<i64>,
    /// 1 to 200, default 50.
    pub limit: Option<u32>,
}

/// Messages per history page: the range a client may ask for, and the default.
const HISTORY_LIMIT: std::ops::RangeInclusive<u32> = 1..=200;
const HISTORY_DEFAULT: u32 = 50;

/// A page of a chat's history: newest first before a cursor, or oldest first after one.
/// Deleted messages appear as tombstones so `seq` has no holes.
#[utoipa::path(get, path = "/api/chats/{chat}/messages", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path), HistoryQuery),
    responses((status = 200, body = Vec<Message>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn history(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(HISTORY_DEFAULT);
    if !HISTORY_LIMIT.contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "`limit` must be {} to {}",
            HISTORY_LIMIT.start(),
            HISTORY_LIMIT.end()
        )));
    }
    let chat = ChatId(chat);
    let page = match (q.before, q.after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give `before` or `after`, not both".into(),
            ))
        }
        (before, None) => {
            app.store
                .messages_before(me.user, chat, before, limit)
                .await?
        }
        (None, Some(after)) => {
            app.store
                .messages_after(me.user, chat, after, limit)
                .await?
        }
    };
    Ok(Json(page))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// 1 to 4000 characters (may be empty with attachments).
    #[serde(default)]
    pub text: String,
    /// File ids.
    #[serde(default)]
    pub attachments: Vec<String>,
    /// Idempotency key: a retry with the same key returns the original message.
    #[serde(default)]
    pub client_key: Option<String>,
}

/// Sends a message. Answered only once it is durably stored; a retry with the same
/// `client_key` answers 200 with the original instead of storing a duplicate.
#[utoipa::path(post, path = "/api/chats/{chat}/messages", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path)), request_body = SendMessage,
    responses((status = 201, body = Sent), (status = 200, description = "A retry", body = Sent),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn send_message(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    ApiJson(req): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    let sent = app
        .service
        .send(
            me.user,
            ChatId(chat),
            NewMessage {
                text: req.text,
                attachments: req.attachments,
                client_key: req.client_key,
            },
        )
        .await?;
    let status = match sent.duplicate {
        true => StatusCode::OK,
        false => StatusCode::CREATED,
    };
    Ok((status, Json(sent)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    pub text: String,
}

/// Edits one of your messages.
#[utoipa::path(patch, path = "/api/chats/{chat}/messages/{seq}", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path), ("seq" = i64, Path)),
    request_body = EditMessage,
    responses((status = 200, body = Message), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn edit_message(
    State(app): State<Arc<App>>,
    me: Authed,
    Path((chat, seq)): Path<(i64, i64)>,
    ApiJson(req): ApiJson<EditMessage>,
) -> Result<Json<Message>, ApiError> {
    let original = app.store.message(me.user, ChatId(chat), seq).await?;
    let edited = app
        .store
        .edit_message(me.user, original.id, &req.text)
        .await?;
    app.service.message_changed(&edited, false).await;
    Ok(Json(edited))
}

/// Deletes one of your messages (a tombstone keeps its `seq`).
#[utoipa::path(delete, path = "/api/chats/{chat}/messages/{seq}", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path), ("seq" = i64, Path)),
    responses((status = 200, body = Message), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_message(
    State(app): State<Arc<App>>,
    me: Authed,
    Path((chat, seq)): Path<(i64, i64)>,
) -> Result<Json<Message>, ApiError> {
    let original = app.store.message(me.user, ChatId(chat), seq).await?;
    let tombstone = app.store.delete_message(me.user, original.id).await?;
    app.service.message_changed(&tombstone, true).await;
    Ok(Json(tombstone))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// Everything up to this `seq` has been read.
    pub seq: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ReadMark {
    pub last_read_seq: i64,
}

/// Moves your read mark forward (never back).
#[utoipa::path(post, path = "/api/chats/{chat}/read", tag = "messages",
    security(("bearer" = [])), params(("chat" = i64, Path)), request_body = MarkRead,
    responses((status = 200, body = ReadMark), (status = 403, body = ErrorBody)))]
pub async fn mark_read(
    State(app): State<Arc<App>>,
    me: Authed,
    Path(chat): Path<i64>,
    ApiJson(req): ApiJson<MarkRead>,
) -> Result<Json<ReadMark>, ApiError> {
    let last_read_seq = app
        .service
        .mark_read(me.user, ChatId(chat), req.seq)
        .await?;
    Ok(Json(ReadMark { last_read_seq }))
}
