//! Reading the whole store in pages, for the server's own use: rebuilding the search index
//! after it missed events (a process killed between a commit to the database and the next
//! commit of the index, or a fresh index). Never used to answer a user: there is no
//! membership check here.

use sqlx::any::AnyRow;

use crate::chats::{chat_from_row, CHAT_COLUMNS};
use crate::error::StoreError;
use crate::messages::{message_from_row, MESSAGE_COLUMNS};
use crate::profiles::{profile_from_row, PROFILE_COLUMNS};
use crate::store::Store;
use crate::{Chat, Message, Profile};

/// Rows per page of an export.
pub const EXPORT_PAGE: i64 = 500;

impl Store {
    /// Up to [`EXPORT_PAGE`] users with an id above `after`, by id.
    pub async fn export_users(&self, after: i64) -> Result<Vec<Profile>, StoreError> {
        let sql =
            format!("SELECT {PROFILE_COLUMNS} FROM users u WHERE u.id > $1 ORDER BY u.id LIMIT $2");
        self.export_page(&sql, after, profile_from_row).await
    }

    /// Up to [`EXPORT_PAGE`] chats with an id above `after`, by id.
    pub async fn export_chats(&self, after: i64) -> Result<Vec<Chat>, StoreError> {
        let sql =
            format!("SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id > $1 ORDER BY c.id LIMIT $2");
        self.export_page(&sql, after, chat_from_row).await
    }

    /// Up to [`EXPORT_PAGE`] messages (tombstones included) with an id above `after`, by id.
    pub async fn export_messages(&self, after: i64) -> Result<Vec<Message>, StoreError> {
        let sql =
            format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id > $1 ORDER BY id LIMIT $2");
        self.export_page(&sql, after, message_from_row).await
    }

    /// One page of `sql` (binding `after` and [`EXPORT_PAGE`]), each row read by `row`.
    async fn export_page<T>(
        &self,
        sql: &str,
        after: i64,
        row: fn(&AnyRow) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        sqlx::query(sql)
            .bind(after)
            .bind(EXPORT_PAGE)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(row)
            .collect()
    }
}
