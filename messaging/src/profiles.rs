//! The public profile of a user (display name, avatar file id, bio) as others see it, and how
//! it is read from the database. Registration and profile changes are in [`crate::accounts`].

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::StoreError;
use crate::store::UserId;

/// A user as others see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    pub id: UserId,
    /// As registered (case kept); unique ignoring case.
    pub username: String,
    pub display_name: String,
    /// A file id in the file store, if the user set an avatar.
    pub avatar_file_id: Option<String>,
    pub bio: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A partial profile change: `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// 1..=64 characters after trimming.
    pub display_name: Option<String>,
    /// `Some(None)` removes the avatar.
    pub avatar_file_id: Option<Option<String>>,
    /// 0..=500 characters after trimming.
    pub bio: Option<String>,
}

/// Columns read by [`profile_from_row`], for a table aliased `u`.
pub(crate) const PROFILE_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.avatar_file_id, u.bio, u.created_at";

pub(crate) fn profile_from_row(row: &AnyRow) -> Result<Profile, StoreError> {
    Ok(Profile {
        id: UserId(row.try_get("id")?),
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        avatar_file_id: row.try_get("avatar_file_id")?,
        bio: row.try_get("bio")?,
        created_at: row.try_get("created_at")?,
    })
}
