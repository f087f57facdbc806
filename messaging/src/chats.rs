//! Chats and membership: direct chats (exactly two members, one per pair), group chats
//! (title, admins, members), the chat list with unread counts, and read receipts.
//!
//! Every operation takes the acting user and checks membership first; a chat one is not a
//! member of answers [`StoreError::NotMember`] whether or not it exists. In a group, the
//! creator starts as the only admin; admins rename, add and remove; anyone may leave, and if
//! the last admin leaves, the longest-standing member becomes admin. Direct chats cannot be
//! renamed, joined or left.
//!
//! Read receipts are a per-member `last_read_seq` that only moves forward and never past the
//! chat's last message. Sending a message marks it read for its sender.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};

use crate::error::StoreError;
use crate::store::{ChatId, Store, UserId, WriteTx};
use crate::validate;

/// Most members of one group.
pub const GROUP_MAX_MEMBERS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChatKind {
    Direct,
    Group,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Direct => "direct",
            ChatKind::Group => "group",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "direct" => Ok(ChatKind::Direct),
            "group" => Ok(ChatKind::Group),
            _ => Err(StoreError::Internal(format!("unknown chat kind {s:?}"))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(StoreError::Internal(format!("unknown role {s:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Chat {
    pub id: ChatId,
    pub kind: ChatKind,
    /// Groups only.
    pub title: Option<String>,
    pub created_by: UserId,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Sequence number of the newest message (0: none yet).
    pub last_seq: i64,
    /// Unix milliseconds of the newest message, or of creation.
    pub last_activity_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatMember {
    pub user: UserId,
    pub role: Role,
    /// Unix milliseconds.
    pub joined_at: i64,
    /// The member's read receipt: every message up to this seq has been read.
    pub last_read_seq: i64,
}

/// One line of a user's chat list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChatSummary {
    pub chat: Chat,
    /// The user's role in it.
    pub role: Role,
    pub last_read_seq: i64,
    /// Messages from others after `last_read_seq`, deleted ones not counted.
    pub unread: i64,
    /// Direct chats: the other member.
    pub peer: Option<UserId>,
}

pub(crate) const CHAT_COLUMNS: &str =
    "c.id, c.kind, c.title, c.created_by, c.created_at, c.last_seq, c.last_activity_at";

pub(crate) fn chat_from_row(row: &AnyRow) -> Result<Chat, StoreError> {
    Ok(Chat {
        id: ChatId(row.try_get("id")?),
        kind: ChatKind::parse(&row.try_get::<String, _>("kind")?)?,
        title: row.try_get("title")?,
        created_by: UserId(row.try_get("created_by")?),
        created_at: row.try_get("created_at")?,
        last_seq: row.try_get("last_seq")?,
        last_activity_at: row.try_get("last_activity_at")?,
    })
}

/// The user's role in the chat and the chat's kind; `NotMember` if not a member.
pub(crate) async fn membership<'e, E: Executor<'e, Database = Any>>(
    exec: E,
    chat: ChatId,
    user: UserId,
) -> Result<(ChatKind, Role), StoreError> {
    let row = sqlx::query(
        "SELECT c.kind, m.role FROM chat_members m JOIN chats c ON c.id = m.chat_id
         WHERE m.chat_id = $1 AND m.user_id = $2",
    )
    .bind(chat.0)
    .bind(user.0)
    .fetch_optional(exec)
    .await?
    .ok_or(StoreError::NotMember)?;
    Ok((
        ChatKind::parse(&row.try_get::<String, _>("kind")?)?,
        Role::parse(&row.try_get::<String, _>("role")?)?,
    ))
}

/// Membership of a group admin: `NotMember`, `NotGroup` or `NotAdmin` otherwise.
async fn require_group_admin(
    w: &mut WriteTx<'_>,
    chat: ChatId,
    user: UserId,
) -> Result<(), StoreError> {
    match membership(&mut *w.tx, chat, user).await? {
        (ChatKind::Direct, _) => Err(StoreError::NotGroup),
        (ChatKind::Group, Role::Member) => Err(StoreError::NotAdmin),
        (ChatKind::Group, Role::Admin) => Ok(()),
    }
}

async fn is_member(w: &mut WriteTx<'_>, chat: ChatId, user: UserId) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT user_id FROM chat_members WHERE chat_id = $1 AND user_id = $2")
            .bind(chat.0)
            .bind(user.0)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_some(),
    )
}

/// Adds a member whose read receipt starts at the chat's newest message.
async fn insert_member(
    w: &mut WriteTx<'_>,
    chat: ChatId,
    user: UserId,
    role: Role,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO chat_members (chat_id, user_id, role, joined_at, last_read_seq)
         SELECT $1, $2, $3, $4, last_seq FROM chats WHERE id = $1",
    )
    .bind(chat.0)
    .bind(user.0)
    .bind(role.as_str())
    .bind(now)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

async fn chat_by_id(w: &mut WriteTx<'_>, chat: ChatId) -> Result<Chat, StoreError> {
    let sql = format!("SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id = $1");
    let row = sqlx::query(&sql).bind(chat.0).fetch_one(&mut *w.tx).await?;
    chat_from_row(&row)
}

impl Store {
    /// The direct chat between `me` and `other`, created (with both as members) if it does not
    /// exist yet. Calling it again, from either side, returns the same chat.
    ///
    /// Errors: `CannotChatSelf`, `UserNotFound`.
    pub async fn open_direct_chat(&self, me: UserId, other: UserId) -> Result<Chat, StoreError> {
        if me == other {
            return Err(StoreError::CannotChatSelf);
        }
        let key = format!("{}:{}", me.0.min(other.0), me.0.max(other.0));
        let by_key = format!("SELECT {CHAT_COLUMNS} FROM chats c WHERE c.direct_key = $1");
        let now = self.now_ms();
        let mut w = self.write().await?;
        if !w.user_exists(other).await? {
            w.rollback().await?;
            return Err(StoreError::UserNotFound);
        }
        if let Some(row) = sqlx::query(&by_key)
            .bind(&key)
            .fetch_optional(&mut *w.tx)
            .await?
        {
            w.rollback().await?;
            return chat_from_row(&row);
        }
        // A concurrent opener (Postgres) may win the race: then ours inserts nothing.
        let created = sqlx::query(
            "INSERT INTO chats (kind, title, direct_key, created_by, created_at, last_seq, last_activity_at)
             VALUES ('direct', NULL, $1, $2, $3, 0, $3)
             ON CONFLICT (direct_key) DO NOTHING RETURNING id",
        )
        .bind(&key)
        .bind(me.0)
        .bind(now)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(row) = created else {
            let row = sqlx::query(&by_key)
                .bind(&key)
                .fetch_one(&mut *w.tx)
                .await?;
            w.rollback().await?;
            return chat_from_row(&row);
        };
        let chat = ChatId(row.try_get("id")?);
        insert_member(&mut w, chat, me, Role::Member, now).await?;
        insert_member(&mut w, chat, other, Role::Member, now).await?;
        let chat = chat_by_id(&mut w, chat).await?;
        w.commit().await?;
        Ok(chat)
    }

    /// Creates a group titled `title` with `me` as admin and `members` (duplicates and `me`
    /// ignored) as members.
    ///
    /// Errors: `InvalidInput` (title), `UserNotFound`, `GroupFull`.
    pub async fn create_group(
        &self,
        me: UserId,
        title: &str,
        members: &[UserId],
    ) -> Result<Chat, StoreError> {
        let title = validate::title(title)?;
        let mut others: Vec<UserId> = members.iter().copied().filter(|u| *u != me).collect();
        others.sort_unstable();
        others.dedup();
        if others.len() + 1 > GROUP_MAX_MEMBERS {
            return Err(StoreError::GroupFull {
                max: GROUP_MAX_MEMBERS,
            });
        }
        let now = self.now_ms();
        let mut w = self.write().await?;
        let row = sqlx::query(
            "INSERT INTO chats (kind, title, direct_key, created_by, created_at, last_seq, last_activity_at)
             VALUES ('group', $1, NULL, $2, $3, 0, $3) RETURNING id",
        )
        .bind(&title)
        .bind(me.0)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await?;
        let chat = ChatId(row.try_get("id")?);
        insert_member(&mut w, chat, me, Role::Admin, now).await?;
        for &user in &others {
            if !w.user_exists(user).await? {
                w.rollback().await?;
                return Err(StoreError::UserNotFound);
            }
            insert_member(&mut w, chat, user, Role::Member, now).await?;
        }
        let chat = chat_by_id(&mut w, chat).await?;
        w.commit().await?;
        Ok(chat)
    }

    /// A chat `me` is a member of. Errors: `NotMember`.
    pub async fn chat(&self, me: UserId, chat: ChatId) -> Result<Chat, StoreError> {
        let sql = format!(
            "SELECT {CHAT_COLUMNS} FROM chats c JOIN chat_members m ON m.chat_id = c.id
             WHERE c.id = $1 AND m.user_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(chat.0)
            .bind(me.0)
            .fetch_optional(&self.inner.pool)
            .await?
            .ok_or(StoreError::NotMember)?;
        chat_from_row(&row)
    }

    /// A chat, whoever asks: for the server's own announcements (who must hear that a chat
    /// changed), never for answering a user. Errors: `ChatNotFound`.
    pub async fn chat_as_system(&self, chat: ChatId) -> Result<Chat, StoreError> {
        let sql = format!("SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id = $1");
        let row = sqlx::query(&sql)
            .bind(chat.0)
            .fetch_optional(&self.inner.pool)
            .await?
            .ok_or(StoreError::ChatNotFound)?;
        chat_from_row(&row)
    }

    /// The member ids of a chat, whoever asks (see [`Store::chat_as_system`]).
    pub async fn members_as_system(&self, chat: ChatId) -> Result<Vec<UserId>, StoreError> {
        let rows =
            sqlx::query("SELECT user_id FROM chat_members WHERE chat_id = $1 ORDER BY user_id")
                .bind(chat.0)
                .fetch_all(&self.inner.pool)
                .await?;
        rows.iter()
            .map(|r| Ok(UserId(r.try_get("user_id")?)))
            .collect()
    }

    /// The members of a chat `me` belongs to, with roles and read receipts, oldest first.
    /// Errors: `NotMember`.
    pub async fn chat_members(
        &self,
        me: UserId,
        chat: ChatId,
    ) -> Result<Vec<ChatMember>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.user_id, m.role, m.joined_at, m.last_read_seq FROM chat_members m
             WHERE m.chat_id = $1
               AND EXISTS (SELECT 1 FROM chat_members me WHERE me.chat_id = $1 AND me.user_id = $2)
             ORDER BY m.joined_at, m.user_id",
        )
        .bind(chat.0)
        .bind(me.0)
        .fetch_all(&self.inner.pool)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::NotMember);
        }
        rows.iter()
            .map(|r| {
                Ok(ChatMember {
                    user: UserId(r.try_get("user_id")?),
                    role: Role::parse(&r.try_get::<String, _>("role")?)?,
                    joined_at: r.try_get("joined_at")?,
                    last_read_seq: r.try_get("last_read_seq")?,
                })
            })
            .collect()
    }

    /// `me`'s chats, most recently active first, with unread counts.
    pub async fn list_chats(&self, me: UserId) -> Result<Vec<ChatSummary>, StoreError> {
        let sql = format!(
            "SELECT {CHAT_COLUMNS}, m.role, m.last_read_seq,
                (SELECT COUNT(*) FROM messages x
                  WHERE x.chat_id = c.id AND x.seq > m.last_read_seq
                    AND x.sender_id <> $1 AND x.deleted_at IS NULL) AS unread,
                (SELECT o.user_id FROM chat_members o
                  WHERE o.chat_id = c.id AND o.user_id <> $1 AND c.kind = 'direct'
                  LIMIT 1) AS peer
             FROM chat_members m JOIN chats c ON c.id = m.chat_id
             WHERE m.user_id = $1
             ORDER BY c.last_activity_at DESC, c.id DESC"
        );
        sqlx::query(&sql)
            .bind(me.0)
            .fetch_all(&self.inner.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(ChatSummary {
                    chat: chat_from_row(r)?,
                    role: Role::parse(&r.try_get::<String, _>("role")?)?,
                    last_read_seq: r.try_get("last_read_seq")?,
                    unread: r.try_get("unread")?,
                    peer: r.try_get::<Option<i64>, _>("peer")?.map(UserId),
                })
            })
            .collect()
    }

    /// Renames a group. Errors: `NotMember`, `NotGroup`, `NotAdmin`, `InvalidInput`.
    pub async fn rename_group(
        &self,
        me: UserId,
        chat: ChatId,
        title: &str,
    ) -> Result<Chat, StoreError> {
        let title = validate::title(title)?;
        let mut w = self.write().await?;
        require_group_admin(&mut w, chat, me).await?;
        sqlx::query("UPDATE chats SET title = $2 WHERE id = $1")
            .bind(chat.0)
            .bind(&title)
            .execute(&mut *w.tx)
            .await?;
        let chat = chat_by_id(&mut w, chat).await?;
        w.commit().await?;
        Ok(chat)
    }

    /// Adds `user` to a group as a member; their read receipt starts at the newest message.
    ///
    /// Errors: `NotMember`, `NotGroup`, `NotAdmin`, `UserNotFound`, `AlreadyMember`,
    /// `GroupFull`.
    pub async fn add_member(
        &self,
        me: UserId,
        chat: ChatId,
        user: UserId,
    ) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut w = self.write().await?;
        require_group_admin(&mut w, chat, me).await?;
        if !w.user_exists(user).await? {
            w.rollback().await?;
            return Err(StoreError::UserNotFound);
        }
        if is_member(&mut w, chat, user).await? {
            w.rollback().await?;
            return Err(StoreError::AlreadyMember);
        }
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM chat_members WHERE chat_id = $1")
            .bind(chat.0)
            .fetch_one(&mut *w.tx)
            .await?
            .try_get("n")?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= GROUP_MAX_MEMBERS {
            w.rollback().await?;
            return Err(StoreError::GroupFull {
                max: GROUP_MAX_MEMBERS,
            });
        }
        insert_member(&mut w, chat, user, Role::Member, now).await?;
        w.commit().await
    }

    /// Removes `user` from a group (`user == me` is [`Store::leave_chat`]). The creator cannot
    /// be removed by others.
    ///
    /// Errors: `NotMember`, `NotGroup`, `NotAdmin`, `CannotRemoveCreator`, `UserNotInChat`.
    pub async fn remove_member(
        &self,
        me: UserId,
        chat: ChatId,
        user: UserId,
    ) -> Result<(), StoreError> {
        if me == user {
            return self.leave_chat(me, chat).await;
        }
        let mut w = self.write().await?;
        require_group_admin(&mut w, chat, me).await?;
        if chat_by_id(&mut w, chat).await?.created_by == user {
            w.rollback().await?;
            return Err(StoreError::CannotRemoveCreator);
        }
        let done = sqlx::query("DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2")
            .bind(chat.0)
            .bind(user.0)
            .execute(&mut *w.tx)
            .await?;
        if done.rows_affected() == 0 {
            w.rollback().await?;
            return Err(StoreError::UserNotInChat);
        }
        w.commit().await
    }

    /// Leaves a group. If no admin remains, the longest-standing member becomes one.
    ///
    /// Errors: `NotMember`, `NotGroup` (direct chats cannot be left).
    pub async fn leave_chat(&self, me: UserId, chat: ChatId) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        if membership(&mut *w.tx, chat, me).await?.0 == ChatKind::Direct {
            w.rollback().await?;
            return Err(StoreError::NotGroup);
        }
        sqlx::query("DELETE FROM chat_members WHERE chat_id = $1 AND user_id = $2")
            .bind(chat.0)
            .bind(me.0)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query(
            "UPDATE chat_members SET role = 'admin'
             WHERE chat_id = $1
               AND user_id = (SELECT user_id FROM chat_members WHERE chat_id = $1
                              ORDER BY joined_at, user_id LIMIT 1)
               AND NOT EXISTS (SELECT 1 FROM chat_members WHERE chat_id = $1 AND role = 'admin')",
        )
        .bind(chat.0)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await
    }

    /// Moves `me`'s read receipt forward to `seq` (capped at the newest message; a smaller
    /// value than the current one changes nothing) and returns the receipt now stored.
    ///
    /// Errors: `NotMember`, `InvalidInput` (negative seq).
    pub async fn mark_read(&self, me: UserId, chat: ChatId, seq: i64) -> Result<i64, StoreError> {
        if seq < 0 {
            return Err(StoreError::InvalidInput {
                field: "seq",
                reason: "negative",
            });
        }
        let mut w = self.write().await?;
        let row = sqlx::query(
            "SELECT c.last_seq, m.last_read_seq FROM chat_members m JOIN chats c ON c.id = m.chat_id
             WHERE m.chat_id = $1 AND m.user_id = $2",
        )
        .bind(chat.0)
        .bind(me.0)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(row) = row else {
            w.rollback().await?;
            return Err(StoreError::NotMember);
        };
        let last_seq: i64 = row.try_get("last_seq")?;
        let current: i64 = row.try_get("last_read_seq")?;
        let target = seq.min(last_seq);
        if target <= current {
            w.rollback().await?;
            return Ok(current);
        }
        sqlx::query(
            "UPDATE chat_members SET last_read_seq = $3
             WHERE chat_id = $1 AND user_id = $2 AND last_read_seq < $3",
        )
        .bind(chat.0)
        .bind(me.0)
        .bind(target)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(target)
    }
}
