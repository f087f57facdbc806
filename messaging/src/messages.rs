//! Messages: send (with idempotent retries), edit, delete (tombstones) and history by cursor.
//!
//! Every message gets the next number of its chat's sequence (`seq`, 1, 2, 3, … without gaps)
//! inside the transaction that stores it: `UPDATE chats SET last_seq = last_seq + 1 …
//! RETURNING last_seq` both claims the number and, on Postgres, locks the chat row until
//! commit, so concurrent senders queue and never share or skip a number (on SQLite the store's
//! write gate does the same). The same statement checks membership, so a non-member changes
//! nothing. A client may attach an idempotency key: a retry with the same (chat, sender, key)
//! returns the original message and stores nothing.
//!
//! Deleting keeps the row as a tombstone (no text, no attachments, `deleted_at` set) so a
//! client syncing by `seq` sees the hole filled. Edits replace the text and set `edited_at`.
//! History is read newest-first before a cursor (scrolling back) or oldest-first after one
//! (catching up after a reconnect).

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::chats::membership;
use crate::error::{is_unique_violation, StoreError};
use crate::store::{ChatId, MessageId, Store, UserId, WriteTx};
use crate::validate;

/// Most messages one history call returns.
pub const PAGE_MAX: u32 = 200;

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// 1..=4000 characters after trimming; may be empty when there are attachments.
    pub text: String,
    /// File ids from the file store (at most 16).
    pub attachments: Vec<String>,
    /// Client idempotency key (1..=64 printable ASCII), unique per chat and sender.
    pub client_key: Option<String>,
}

impl NewMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        NewMessage {
            text: text.into(),
            ..Default::default()
        }
    }

    /// The same message with an idempotency key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.client_key = Some(key.into());
        self
    }

    /// The same message with attachments.
    pub fn with_attachments(mut self, ids: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.attachments = ids.into_iter().map(Into::into).collect();
        self
    }
}

/// A stored message (also carried on the bus, hence `Deserialize`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: MessageId,
    pub chat: ChatId,
    /// Position in the chat: 1, 2, 3, … without gaps.
    pub seq: i64,
    pub sender: UserId,
    /// `None` for a deleted message or one with attachments only.
    pub text: Option<String>,
    pub attachments: Vec<String>,
    pub client_key: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub edited_at: Option<i64>,
    /// Set on tombstones.
    pub deleted_at: Option<i64>,
}

impl Message {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// What [`Store::send_message`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sent {
    pub message: Message,
    /// True when this was a retry of an already stored message (nothing new was stored; do
    /// not broadcast it again).
    pub duplicate: bool,
}

pub(crate) const MESSAGE_COLUMNS: &str =
    "id, chat_id, seq, sender_id, body, attachments, client_key, \
                               created_at, edited_at, deleted_at";

pub(crate) fn message_from_row(row: &AnyRow) -> Result<Message, StoreError> {
    let attachments: String = row.try_get("attachments")?;
    Ok(Message {
        id: MessageId(row.try_get("id")?),
        chat: ChatId(row.try_get("chat_id")?),
        seq: row.try_get("seq")?,
        sender: UserId(row.try_get("sender_id")?),
        text: row.try_get("body")?,
        attachments: serde_json::from_str(&attachments)
            .map_err(|e| StoreError::Internal(format!("stored attachments: {e}")))?,
        client_key: row.try_get("client_key")?,
        created_at: row.try_get("created_at")?,
        edited_at: row.try_get("edited_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

async fn by_client_key(
    w: &mut WriteTx<'_>,
    chat: ChatId,
    sender: UserId,
    key: &str,
) -> Result<Option<Message>, StoreError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages
         WHERE chat_id = $1 AND sender_id = $2 AND client_key = $3"
    );
    sqlx::query(&sql)
        .bind(chat.0)
        .bind(sender.0)
        .bind(key)
        .fetch_optional(&mut *w.tx)
        .await?
        .as_ref()
        .map(message_from_row)
        .transpose()
}

/// The message (any chat) and whether `me` may act on it: `MessageNotFound`, `NotMember`.
async fn message_for_member(
    w: &mut WriteTx<'_>,
    me: UserId,
    id: MessageId,
) -> Result<Message, StoreError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1");
    let row = sqlx::query(&sql)
        .bind(id.0)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or(StoreError::MessageNotFound)?;
    let message = message_from_row(&row)?;
    membership(&mut *w.tx, message.chat, me).await?;
    Ok(message)
}

impl Store {
    /// Stores a message from `me` in `chat` and returns it with its `seq`. When committed, it
    /// is durable. A retry with the same `client_key` returns the first message
    /// (`duplicate: true`) and stores nothing.
    ///
    /// Attachments are file ids the sender may read (see `files.rs`); the chat's members may
    /// read them from then on.
    ///
    /// Errors: `EmptyMessage`, `MessageTooLong`, `InvalidInput` (attachments, key),
    /// `NotMember`, `FileNotFound`, `FileForbidden`.
    pub async fn send_message(
        &self,
        me: UserId,
        chat: ChatId,
        message: NewMessage,
    ) -> Result<Sent, StoreError> {
        let text = validate::message_text(&message.text, !message.attachments.is_empty())?;
        validate::attachments(&message.attachments)?;
        if let Some(key) = &message.client_key {
            validate::client_key(key)?;
        }
        let attachments = serde_json::to_string(&message.attachments)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let now = self.now_ms();

        let mut w = self.write().await?;
        // Claims the next seq and (Postgres) locks the chat row; no row: not a member.
        let seq: Option<i64> = sqlx::query(
            "UPDATE chats SET last_seq = last_seq + 1, last_activity_at = $3
             WHERE id = $1
               AND EXISTS (SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2)
             RETURNING last_seq",
        )
        .bind(chat.0)
        .bind(me.0)
        .bind(now)
        .fetch_optional(&mut *w.tx)
        .await?
        .map(|r| r.try_get("last_seq"))
        .transpose()?;
        let Some(seq) = seq else {
            w.rollback().await?;
            return Err(StoreError::NotMember);
        };
        // Under the chat lock, an earlier send with this key is visible if it committed.
        if let Some(key) = &message.client_key {
            if let Some(original) = by_client_key(&mut w, chat, me, key).await? {
                w.rollback().await?; // gives the claimed seq back
                return Ok(Sent {
                    message: original,
                    duplicate: true,
                });
            }
        }
        // Attachments: the sender must be able to read each file; its chat's members then can.
        for file in &message.attachments {
            let denied = match crate::files::readable(&mut *w.tx, me, file).await? {
                None => Some(StoreError::FileNotFound),
                Some((_, false)) => Some(StoreError::FileForbidden),
                Some((_, true)) => None,
            };
            if let Some(e) = denied {
                w.rollback().await?;
                return Err(e);
            }
            sqlx::query(
                "INSERT INTO file_shares (file_id, chat_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING",
            )
            .bind(file)
            .bind(chat.0)
            .execute(&mut *w.tx)
            .await?;
        }
        let sql = format!(
            "INSERT INTO messages (chat_id, seq, sender_id, body, attachments, client_key, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {MESSAGE_COLUMNS}"
        );
        let inserted = sqlx::query(&sql)
            .bind(chat.0)
            .bind(seq)
            .bind(me.0)
            .bind(text)
            .bind(attachments)
            .bind(message.client_key.as_deref())
            .bind(now)
            .fetch_one(&mut *w.tx)
            .await;
        let row = match inserted {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) && message.client_key.is_some() => {
                // Belt and braces: a concurrent retry committed first after all.
                w.rollback().await?;
                return self.original(me, chat, message.client_key.as_deref()).await;
            }
            Err(e) => return Err(e.into()),
        };
        let stored = message_from_row(&row)?;
        // One's own message is read.
        sqlx::query(
            "UPDATE chat_members SET last_read_seq = $3
             WHERE chat_id = $1 AND user_id = $2 AND last_read_seq < $3",
        )
        .bind(chat.0)
        .bind(me.0)
        .bind(seq)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(Sent {
            message: stored,
            duplicate: false,
        })
    }

    async fn original(
        &self,
        me: UserId,
        chat: ChatId,
        key: Option<&str>,
    ) -> Result<Sent, StoreError> {
        let mut w = self.write().await?;
        let found = match key {
            Some(key) => by_client_key(&mut w, chat, me, key).await?,
            None => None,
        };
        w.rollback().await?;
        found
            .map(|message| Sent {
                message,
                duplicate: true,
            })
            .ok_or_else(|| StoreError::Internal("idempotency conflict without a message".into()))
    }

    /// Replaces the text of `me`'s own message and sets `edited_at`.
    ///
    /// Errors: `MessageNotFound`, `NotMember` (not or no longer in the chat), `NotAuthor`,
    /// `MessageDeleted`, `EmptyMessage`, `MessageTooLong`.
    pub async fn edit_message(
        &self,
        me: UserId,
        id: MessageId,
        text: &str,
    ) -> Result<Message, StoreError> {
        let now = self.now_ms();
        let mut w = self.write().await?;
        let current = message_for_member(&mut w, me, id).await?;
        if current.sender != me {
            w.rollback().await?;
            return Err(StoreError::NotAuthor);
        }
        if current.is_deleted() {
            w.rollback().await?;
            return Err(StoreError::MessageDeleted);
        }
        let text = match validate::message_text(text, !current.attachments.is_empty()) {
            Ok(t) => t,
            Err(e) => {
                w.rollback().await?;
                return Err(e);
            }
        };
        let sql = format!(
            "UPDATE messages SET body = $2, edited_at = $3
             WHERE id = $1 AND deleted_at IS NULL RETURNING {MESSAGE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .bind(text)
            .bind(now)
            .fetch_optional(&mut *w.tx)
            .await?;
        let Some(row) = row else {
            // Deleted between our read and write (Postgres).
            w.rollback().await?;
            return Err(StoreError::MessageDeleted);
        };
        let edited = message_from_row(&row)?;
        w.commit().await?;
        Ok(edited)
    }

    /// Deletes `me`'s own message, leaving a tombstone with the same `seq`. Deleting a
    /// tombstone again returns it unchanged.
    ///
    /// Errors: `MessageNotFound`, `NotMember`, `NotAuthor`.
    pub async fn delete_message(&self, me: UserId, id: MessageId) -> Result<Message, StoreError> {
        let now = self.now_ms();
        let mut w = self.write().await?;
        let current = message_for_member(&mut w, me, id).await?;
        if current.sender != me {
            w.rollback().await?;
            return Err(StoreError::NotAuthor);
        }
        if current.is_deleted() {
            w.rollback().await?;
            return Ok(current);
        }
        let sql = format!(
            "UPDATE messages SET body = NULL, attachments = '[]', deleted_at = $2
             WHERE id = $1 RETURNING {MESSAGE_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.0)
            .bind(now)
            .fetch_one(&mut *w.tx)
            .await?;
        let tombstone = message_from_row(&row)?;
        w.commit().await?;
        Ok(tombstone)
    }

    /// One message of a chat `me` is in, by seq. Errors: `NotMember`, `MessageNotFound`.
    pub async fn message(&self, me: UserId, chat: ChatId, seq: i64) -> Result<Message, StoreError> {
        let mut page = self.page(me, chat, "seq = $3", "", seq, 1).await?;
        page.pop().ok_or(StoreError::MessageNotFound)
    }

    /// Up to `limit` (1..=200) messages with `seq < before` (`None`: the newest), newest
    /// first. Tombstones included. Errors: `NotMember`.
    pub async fn messages_before(
        &self,
        me: UserId,
        chat: ChatId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let before = before.unwrap_or(i64::MAX);
        self.page(me, chat, "seq < $3", "DESC", before, limit).await
    }

    /// Up to `limit` (1..=200) messages with `seq > after`, oldest first: what a client that
    /// has everything up to `after` missed. Tombstones included. Errors: `NotMember`.
    pub async fn messages_after(
        &self,
        me: UserId,
        chat: ChatId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.page(me, chat, "seq > $3", "ASC", after, limit).await
    }

    async fn page(
        &self,
        me: UserId,
        chat: ChatId,
        cond: &str,
        order: &str,
        cursor: i64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        membership(&self.inner.pool, chat, me).await?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE chat_id = $1 AND {cond}
               AND EXISTS (SELECT 1 FROM chat_members WHERE chat_id = $1 AND user_id = $2)
             ORDER BY seq {order} LIMIT $4"
        );
        sqlx::query(&sql)
            .bind(chat.0)
            .bind(me.0)
            .bind(cursor)
            .bind(i64::from(limit.clamp(1, PAGE_MAX)))
            .fetch_all(&self.inner.pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }
}
