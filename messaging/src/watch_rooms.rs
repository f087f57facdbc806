//! Watch-party rooms in the database: the room record (`watch_rooms`: host, title, source,
//! length) and its members with their roles (`watch_members`). The live playback state is not
//! here (see [`crate::watch_live`]).
//!
//! Rules: the creator is the host and a member with role `host`; a file source must be a file
//! the host may read, and the room's members may then read it too (`files.rs`); only the host
//! invites
//! members and changes roles (hands control to others with `controller`, takes it back with
//! `viewer`); the host's own role never changes. Share-link guests are not members: they hold
//! a token for the room (checked by the HTTP layer) and only watch.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StoreError;
use crate::store::{Store, UserId};
use crate::validate;
use crate::watch::{Source, WatchError, WatchMember, WatchRole};

/// A watch room's record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchRoom {
    pub id: String,
    pub host: UserId,
    pub title: String,
    pub source: Source,
    /// Length of the media in seconds, when known.
    pub duration: Option<f64>,
    /// Unix milliseconds.
    pub created_at: i64,
}

const ROOM_COLUMNS: &str = "id, host_id, title, source_url, source_file, duration_ms, created_at";

fn room_from_row(row: &AnyRow) -> Result<WatchRoom, WatchError> {
    let url: Option<String> = row.try_get("source_url")?;
    let file: Option<String> = row.try_get("source_file")?;
    let source = match (url, file) {
        (Some(url), None) => Source::Url { url },
        (None, Some(file)) => Source::File { file },
        _ => {
            return Err(WatchError::Internal(
                "a watch room without one source".into(),
            ))
        }
    };
    let duration_ms: Option<i64> = row.try_get("duration_ms")?;
    Ok(WatchRoom {
        id: row.try_get("id")?,
        host: UserId(row.try_get("host_id")?),
        title: row.try_get("title")?,
        source,
        duration: duration_ms.map(|ms| ms as f64 / 1000.0),
        created_at: row.try_get("created_at")?,
    })
}

/// A new random room id: 16 lowercase hex digits.
fn new_room_id() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Is `id` shaped like a room id (so it can be used in keys and URLs as it is)?
pub fn is_room_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Store {
    /// Creates a room hosted by `host` playing `source` (`duration` in seconds when known).
    pub async fn create_watch_room(
        &self,
        host: UserId,
        title: &str,
        source: &Source,
        duration: Option<f64>,
    ) -> Result<WatchRoom, WatchError> {
        let title = validate::title(title)?;
        source.validate()?;
        if let Some(d) = duration {
            if !d.is_finite() || d <= 0.0 || d > 1e7 {
                return Err(WatchError::BadInput(
                    "duration must be a positive number of seconds".into(),
                ));
            }
        }
        let duration_ms = duration.map(|d| (d * 1000.0).round() as i64);
        let (url, file) = match source {
            Source::Url { url } => (Some(url.clone()), None),
            Source::File { file } => (None, Some(file.clone())),
        };
        let id = new_room_id();
        let now = self.now_ms();
        let mut w = self.write().await?;
        if !w.user_exists(host).await? {
            w.rollback().await?;
            return Err(WatchError::UserNotFound);
        }
        // A room shares its file with its members: only someone who may read it can.
        if let Source::File { file } = source {
            let refused = match crate::files::readable(&mut *w.tx, host, file).await? {
                None => Some(StoreError::FileNotFound),
                Some((_, false)) => Some(StoreError::FileForbidden),
                Some((_, true)) => None,
            };
            if let Some(e) = refused {
                w.rollback().await?;
                return Err(e.into());
            }
        }
        sqlx::query(
            "INSERT INTO watch_rooms (id, host_id, title, source_url, source_file, duration_ms, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(host.0)
        .bind(&title)
        .bind(url)
        .bind(file)
        .bind(duration_ms)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        sqlx::query(
            "INSERT INTO watch_members (room_id, user_id, role, joined_at) VALUES ($1, $2, 'host', $3)",
        )
        .bind(&id)
        .bind(host.0)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(WatchRoom {
            id,
            host,
            title,
            source: source.clone(),
            duration: duration_ms.map(|ms| ms as f64 / 1000.0),
            created_at: now,
        })
    }

    /// A room's record (`RoomNotFound` if there is none).
    pub async fn watch_room(&self, room: &str) -> Result<WatchRoom, WatchError> {
        let row = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM watch_rooms WHERE id = $1"
        ))
        .bind(room)
        .fetch_optional(&self.inner.pool)
        .await?
        .ok_or(WatchError::RoomNotFound)?;
        room_from_row(&row)
    }

    /// `user`'s role in the room, `None` if not a member.
    pub async fn watch_role(
        &self,
        room: &str,
        user: UserId,
    ) -> Result<Option<WatchRole>, WatchError> {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT role FROM watch_members WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room)
        .bind(user.0)
        .fetch_optional(&self.inner.pool)
        .await?;
        role.map(|r| {
            WatchRole::parse(&r)
                .ok_or_else(|| WatchError::Internal(format!("unknown watch role {r:?}")))
        })
        .transpose()
    }

    /// May `user` play, pause, seek and change the rate in the room?
    pub async fn can_control_watch(&self, room: &str, user: UserId) -> Result<bool, WatchError> {
        Ok(self
            .watch_role(room, user)
            .await?
            .is_some_and(WatchRole::can_control))
    }

    /// The room's members, host first, then by joining time.
    pub async fn watch_members(&self, room: &str) -> Result<Vec<WatchMember>, WatchError> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.display_name, m.role, m.joined_at
             FROM watch_members m JOIN users u ON u.id = m.user_id
             WHERE m.room_id = $1
             ORDER BY CASE m.role WHEN 'host' THEN 0 ELSE 1 END, m.joined_at, m.user_id",
        )
        .bind(room)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get("role")?;
                Ok(WatchMember {
                    user: UserId(row.try_get("user_id")?),
                    display_name: row.try_get("display_name")?,
                    role: WatchRole::parse(&role).ok_or_else(|| {
                        WatchError::Internal(format!("unknown watch role {role:?}"))
                    })?,
                    joined_at: row.try_get("joined_at")?,
                })
            })
            .collect()
    }

    /// The host (`actor`) adds `user` to the room with `role` (controller or viewer), or
    /// changes the role of a member. Errors: `RoomNotFound`, `NotHost`, `UserNotFound`,
    /// `HostRole` (the host's role, or making someone else host).
    pub async fn set_watch_member(
        &self,
        actor: UserId,
        room: &str,
        user: UserId,
        role: WatchRole,
    ) -> Result<(), WatchError> {
        let record = self.watch_room(room).await?;
        if record.host != actor {
            return Err(if self.watch_role(room, actor).await?.is_some() {
                WatchError::NotHost
            } else {
                WatchError::NotMember
            });
        }
        if user == record.host || role == WatchRole::Host {
            return Err(WatchError::HostRole);
        }
        let now = self.now_ms();
        let mut w = self.write().await?;
        if !w.user_exists(user).await? {
            w.rollback().await?;
            return Err(WatchError::UserNotFound);
        }
        let updated =
            sqlx::query("UPDATE watch_members SET role = $3 WHERE room_id = $1 AND user_id = $2")
                .bind(room)
                .bind(user.0)
                .bind(role.as_str())
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
        if updated == 0 {
            sqlx::query(
                "INSERT INTO watch_members (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(room)
            .bind(user.0)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        }
        w.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_16_hex_digits() {
        let id = new_room_id();
        assert!(is_room_id(&id), "{id}");
        assert!(!is_room_id("0123456789abcdeF"));
        assert!(!is_room_id("../../etc/passwd"));
        assert!(!is_room_id(""));
    }
}
