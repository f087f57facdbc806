//! File records: the metadata of the blobs `media-store` keeps (owner, name, size, sniffed
//! content type, SHA-256, created), who may read a file, and resumable uploads in progress.
//!
//! The bytes never pass through here; the HTTP layer stores them with `media-store` first and
//! records them here after. Who may read a file:
//! - its owner;
//! - the members of every chat it was attached to: [`Store::send_message`] checks that the
//!   sender may read each attachment and records the share (`file_shares`) in the same
//!   transaction as the message;
//! - the members of every watch-party room that plays it (`watch_rooms.source_file`; a room
//!   can only be made with a file its host may read, see `watch_rooms.rs`).
//!
//! [`Store::send_message`]: crate::Store::send_message

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::error::StoreError;
use crate::store::{ChatId, Store, UserId};
use crate::validate;

/// A stored file as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileRecord {
    /// Server-generated id (also the blob id).
    pub id: String,
    pub owner: UserId,
    /// The name the uploader gave (never a path).
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Sniffed from the bytes, never taken from the client.
    pub content_type: String,
    /// SHA-256 of the content, lowercase hex (the download's `ETag`).
    pub sha256: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A file to record after its bytes are stored.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub id: String,
    pub name: String,
    pub size: i64,
    pub content_type: String,
    pub sha256: String,
}

/// A resumable upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRecord {
    /// Server-generated id that the client uses.
    pub id: String,
    /// The file id it becomes when completed.
    pub file_id: String,
    /// The blob store's own id for the upload (S3's `UploadId`).
    pub backend_id: String,
    pub owner: UserId,
    pub name: String,
    pub created_at: i64,
}

pub(crate) const FILE_COLUMNS: &str =
    "f.id, f.owner_id, f.name, f.size, f.content_type, f.sha256, f.created_at";

pub(crate) fn file_from_row(row: &AnyRow) -> Result<FileRecord, StoreError> {
    Ok(FileRecord {
        id: row.try_get("id")?,
        owner: UserId(row.try_get("owner_id")?),
        name: row.try_get("name")?,
        size: row.try_get("size")?,
        content_type: row.try_get("content_type")?,
        sha256: row.try_get("sha256")?,
        created_at: row.try_get("created_at")?,
    })
}

/// `$1` file id, `$2` user: true if the user may read the file (see the module doc).
const READABLE: &str = "f.owner_id = $2
    OR EXISTS (SELECT 1 FROM file_shares s
               JOIN chat_members m ON m.chat_id = s.chat_id
               WHERE s.file_id = f.id AND m.user_id = $2)
    OR EXISTS (SELECT 1 FROM watch_rooms w
               JOIN watch_members wm ON wm.room_id = w.id
               WHERE w.source_file = f.id AND wm.user_id = $2)";

/// Whether `user` may read file `id`: `None` if there is no such file.
pub(crate) async fn readable<'e, E>(
    db: E,
    user: UserId,
    id: &str,
) -> Result<Option<(FileRecord, bool)>, StoreError>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let sql = format!("SELECT {FILE_COLUMNS}, CASE WHEN {READABLE} THEN 1 ELSE 0 END AS readable FROM files f WHERE f.id = $1");
    let Some(row) = sqlx::query(&sql)
        .bind(id)
        .bind(user.0)
        .fetch_optional(db)
        .await?
    else {
        return Ok(None);
    };
    let ok: i64 = row.try_get("readable")?;
    Ok(Some((file_from_row(&row)?, ok == 1)))
}

impl Store {
    /// Records a stored blob as a file owned by `owner`. The name must pass
    /// [`validate::file_name`] (checked by the caller before storing, and again here).
    pub async fn add_file(&self, owner: UserId, file: NewFile) -> Result<FileRecord, StoreError> {
        validate::file_id("id", &file.id)?;
        let name = validate::file_name(&file.name)?;
        let now = self.now_ms();
        let row = sqlx::query(
            "INSERT INTO files (id, owner_id, name, size, content_type, sha256, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             RETURNING id, owner_id, name, size, content_type, sha256, created_at",
        )
        .bind(&file.id)
        .bind(owner.0)
        .bind(&name)
        .bind(file.size)
        .bind(&file.content_type)
        .bind(&file.sha256)
        .bind(now)
        .fetch_one(self.pool())
        .await?;
        file_from_row(&row)
    }

    /// File `id` if `viewer` may read it: `FileNotFound` if there is none, `FileForbidden` if
    /// it is not theirs to see.
    pub async fn file_for(&self, viewer: UserId, id: &str) -> Result<FileRecord, StoreError> {
        validate::file_id("id", id).map_err(|_| StoreError::FileNotFound)?;
        match readable(self.pool(), viewer, id).await? {
            None => Err(StoreError::FileNotFound),
            Some((_, false)) => Err(StoreError::FileForbidden),
            Some((file, true)) => Ok(file),
        }
    }

    /// File `id` without an access check: for a request that proved access another way (a
    /// signed link the server made for someone who could read it).
    pub async fn file(&self, id: &str) -> Result<FileRecord, StoreError> {
        validate::file_id("id", id).map_err(|_| StoreError::FileNotFound)?;
        let sql = format!("SELECT {FILE_COLUMNS} FROM files f WHERE f.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::FileNotFound)?;
        file_from_row(&row)
    }

    /// The chats file `id` was shared in (for the search index).
    pub async fn file_chats(&self, id: &str) -> Result<Vec<ChatId>, StoreError> {
        let rows =
            sqlx::query("SELECT chat_id FROM file_shares WHERE file_id = $1 ORDER BY chat_id")
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| Ok(ChatId(r.try_get("chat_id")?)))
            .collect()
    }

    /// `owner`'s newest files, at most `limit` (1..=200).
    pub async fn files_of(&self, owner: UserId, limit: u32) -> Result<Vec<FileRecord>, StoreError> {
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files f WHERE f.owner_id = $1
             ORDER BY f.created_at DESC, f.id LIMIT $2"
        );
        sqlx::query(&sql)
            .bind(owner.0)
            .bind(i64::from(limit.clamp(1, 200)))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(file_from_row)
            .collect()
    }

    /// Deletes file `id`'s record (owner only) and returns it; the caller then deletes the
    /// blob. Messages keep the id; it no longer resolves.
    pub async fn delete_file(&self, me: UserId, id: &str) -> Result<FileRecord, StoreError> {
        let file = self.file_for(me, id).await?;
        if file.owner != me {
            return Err(StoreError::NotFileOwner);
        }
        let mut w = self.write().await?;
        sqlx::query("DELETE FROM file_shares WHERE file_id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("DELETE FROM files WHERE id = $1 AND owner_id = $2")
            .bind(id)
            .bind(me.0)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(file)
    }

    /// Records a resumable upload that `owner` started (`id` is the server's, `backend_id` the
    /// blob store's).
    pub async fn add_upload(
        &self,
        owner: UserId,
        id: &str,
        file_id: &str,
        backend_id: &str,
        name: &str,
    ) -> Result<UploadRecord, StoreError> {
        let name = validate::file_name(name)?;
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO uploads (id, file_id, backend_id, owner_id, name, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(file_id)
        .bind(backend_id)
        .bind(owner.0)
        .bind(&name)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(UploadRecord {
            id: id.to_owned(),
            file_id: file_id.to_owned(),
            backend_id: backend_id.to_owned(),
            owner,
            name,
            created_at: now,
        })
    }

    /// Upload `id` of `owner`: `UploadNotFound` for an unknown upload or someone else's.
    pub async fn upload_for(&self, owner: UserId, id: &str) -> Result<UploadRecord, StoreError> {
        let row = sqlx::query(
            "SELECT id, file_id, backend_id, owner_id, name, created_at FROM uploads
             WHERE id = $1 AND owner_id = $2",
        )
        .bind(id)
        .bind(owner.0)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::UploadNotFound)?;
        Ok(UploadRecord {
            id: row.try_get("id")?,
            file_id: row.try_get("file_id")?,
            backend_id: row.try_get("backend_id")?,
            owner: UserId(row.try_get("owner_id")?),
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        })
    }

    /// Forgets an upload (completed or aborted).
    pub async fn remove_upload(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
