//! Search over users, the caller's chats and messages, and files they may see.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use messaging::{ChatId, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authed;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words to find (every word must match, in any word form; English and Russian).
    pub q: String,
    /// 1 to 50, default 20.
    pub limit: Option<usize>,
}

/// One search result: what was found and where.
#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    /// `user`, `chat`, `message` or `file`.
    pub kind: String,
    pub user: Option<UserId>,
    pub chat: Option<ChatId>,
    pub seq: Option<i64>,
    pub file_id: Option<String>,
    /// The matched text (a piece of it for long texts).
    pub snippet: String,
    pub score: f32,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
}

/// Searches users, your chats' titles and messages, and files you may see. Results never
/// include chats you are not (or no longer) a member of.
#[utoipa::path(get, path = "/api/search", tag = "search", security(("bearer" = [])),
    params(SearchQuery),
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody)))]
pub async fn search(
    State(app): State<Arc<App>>,
    me: Authed,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchResults>, ApiError> {
    use messaging::search::{Item, Viewer};
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if q.q.len() > 512 {
        return Err(ApiError::BadRequest(
            "the query is longer than 512 bytes".into(),
        ));
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 50);
    let viewer = Viewer::load(&app.store, me.user).await?;
    let index = app.messenger.search.clone();
    let hits = tokio::task::spawn_blocking(move || index.search(&viewer, &q.q, limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let hits = hits
        .into_iter()
        .map(|h| {
            let mut hit = SearchHit {
                kind: String::new(),
                user: None,
                chat: None,
                seq: None,
                file_id: None,
                snippet: h.snippet.text,
                score: h.score,
            };
            match h.item {
                Item::User { user } => {
                    hit.kind = "user".into();
                    hit.user = Some(user);
                }
                Item::Chat { chat } => {
                    hit.kind = "chat".into();
                    hit.chat = Some(chat);
                }
                Item::Message {
                    chat, seq, sender, ..
                } => {
                    hit.kind = "message".into();
                    hit.chat = Some(chat);
                    hit.seq = Some(seq);
                    hit.user = Some(sender);
                }
                Item::File { file_id, owner } => {
                    hit.kind = "file".into();
                    hit.file_id = Some(file_id);
                    hit.user = Some(owner);
                }
            }
            hit
        })
        .collect();
    Ok(Json(SearchResults { hits }))
}
