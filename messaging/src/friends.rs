//! Friends: requests (send, accept, decline, cancel), removal and the three lists.
//!
//! A pending request is a row `friend_requests(from_user, to_user)`; a friendship is one row
//! `friendships(user_lo, user_hi)` with the smaller id first, so each pair exists once.
//! Requesting someone who already asked you accepts their request.

use serde::Serialize;
use sqlx::Row;

use crate::error::{is_unique_violation, StoreError};
use crate::profiles::{profile_from_row, Profile, PROFILE_COLUMNS};
use crate::store::{Store, UserId, WriteTx};

/// What [`Store::request_friend`] led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FriendRequestOutcome {
    /// The request waits for the other user.
    Pending,
    /// They had already asked you: you are friends now.
    Accepted,
}

fn pair(a: UserId, b: UserId) -> (i64, i64) {
    (a.0.min(b.0), a.0.max(b.0))
}

async fn are_friends(w: &mut WriteTx<'_>, a: UserId, b: UserId) -> Result<bool, StoreError> {
    let (lo, hi) = pair(a, b);
    Ok(
        sqlx::query("SELECT user_lo FROM friendships WHERE user_lo = $1 AND user_hi = $2")
            .bind(lo)
            .bind(hi)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_some(),
    )
}

/// Deletes the request `from -> to`; true if there was one.
async fn take_request(w: &mut WriteTx<'_>, from: UserId, to: UserId) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM friend_requests WHERE from_user = $1 AND to_user = $2")
        .bind(from.0)
        .bind(to.0)
        .execute(&mut *w.tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

async fn befriend(w: &mut WriteTx<'_>, a: UserId, b: UserId, now: i64) -> Result<(), StoreError> {
    let (lo, hi) = pair(a, b);
    sqlx::query(
        "INSERT INTO friendships (user_lo, user_hi, since) VALUES ($1, $2, $3)
         ON CONFLICT (user_lo, user_hi) DO NOTHING",
    )
    .bind(lo)
    .bind(hi)
    .bind(now)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

impl Store {
    /// Asks `to` to be `me`'s friend.
    ///
    /// Errors: `CannotFriendSelf`, `UserNotFound`, `AlreadyFriends`, `FriendRequestExists`
    /// (already asked).
    pub async fn request_friend(
        &self,
        me: UserId,
        to: UserId,
    ) -> Result<FriendRequestOutcome, StoreError> {
        if me == to {
            return Err(StoreError::CannotFriendSelf);
        }
        let now = self.now_ms();
        let mut w = self.write().await?;
        if !w.user_exists(to).await? {
            w.rollback().await?;
            return Err(StoreError::UserNotFound);
        }
        if are_friends(&mut w, me, to).await? {
            w.rollback().await?;
            return Err(StoreError::AlreadyFriends);
        }
        if take_request(&mut w, to, me).await? {
            befriend(&mut w, me, to, now).await?;
            w.commit().await?;
            return Ok(FriendRequestOutcome::Accepted);
        }
        let inserted = sqlx::query(
            "INSERT INTO friend_requests (from_user, to_user, created_at) VALUES ($1, $2, $3)",
        )
        .bind(me.0)
        .bind(to.0)
        .bind(now)
        .execute(&mut *w.tx)
        .await;
        match inserted {
            Ok(_) => {
                w.commit().await?;
                Ok(FriendRequestOutcome::Pending)
            }
            Err(e) if is_unique_violation(&e) => {
                w.rollback().await?;
                Err(StoreError::FriendRequestExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Accepts `from`'s request to `me`. Errors: `FriendRequestNotFound`.
    pub async fn accept_friend(&self, me: UserId, from: UserId) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut w = self.write().await?;
        if !take_request(&mut w, from, me).await? {
            w.rollback().await?;
            return Err(StoreError::FriendRequestNotFound);
        }
        befriend(&mut w, me, from, now).await?;
        w.commit().await
    }

    /// Declines `from`'s request to `me`. Errors: `FriendRequestNotFound`.
    pub async fn decline_friend(&self, me: UserId, from: UserId) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        if !take_request(&mut w, from, me).await? {
            w.rollback().await?;
            return Err(StoreError::FriendRequestNotFound);
        }
        w.commit().await
    }

    /// Withdraws `me`'s own pending request to `to`. Errors: `FriendRequestNotFound`.
    pub async fn cancel_friend_request(&self, me: UserId, to: UserId) -> Result<(), StoreError> {
        let mut w = self.write().await?;
        if !take_request(&mut w, me, to).await? {
            w.rollback().await?;
            return Err(StoreError::FriendRequestNotFound);
        }
        w.commit().await
    }

    /// Ends a friendship (either side may). Errors: `NotFriends`.
    pub async fn remove_friend(&self, me: UserId, other: UserId) -> Result<(), StoreError> {
        let (lo, hi) = pair(me, other);
        let mut w = self.write().await?;
        let done = sqlx::query("DELETE FROM friendships WHERE user_lo = $1 AND user_hi = $2")
            .bind(lo)
            .bind(hi)
            .execute(&mut *w.tx)
            .await?;
        if done.rows_affected() == 0 {
            w.rollback().await?;
            return Err(StoreError::NotFriends);
        }
        w.commit().await
    }

    /// `me`'s friends, by username.
    pub async fn friends(&self, me: UserId) -> Result<Vec<Profile>, StoreError> {
        self.profiles_where(
            "u.id IN (SELECT user_hi FROM friendships WHERE user_lo = $1
                      UNION SELECT user_lo FROM friendships WHERE user_hi = $1)",
            me,
        )
        .await
    }

    /// Users who asked `me` and wait for an answer.
    pub async fn incoming_friend_requests(&self, me: UserId) -> Result<Vec<Profile>, StoreError> {
        self.profiles_where(
            "u.id IN (SELECT from_user FROM friend_requests WHERE to_user = $1)",
            me,
        )
        .await
    }

    /// Users `me` asked, still waiting.
    pub async fn outgoing_friend_requests(&self, me: UserId) -> Result<Vec<Profile>, StoreError> {
        self.profiles_where(
            "u.id IN (SELECT to_user FROM friend_requests WHERE from_user = $1)",
            me,
        )
        .await
    }

    /// Of `users`, those whose presence `me` may see: friends, and members of a chat `me` is
    /// in. Strangers are left out (user ids are sequential: anyone could watch anyone).
    pub async fn presence_visible(
        &self,
        me: UserId,
        users: &[UserId],
    ) -> Result<Vec<UserId>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_hi AS id FROM friendships WHERE user_lo = $1
             UNION SELECT user_lo FROM friendships WHERE user_hi = $1
             UNION SELECT o.user_id FROM chat_members m
                   JOIN chat_members o ON o.chat_id = m.chat_id
                   WHERE m.user_id = $1 AND o.user_id <> $1",
        )
        .bind(me.0)
        .fetch_all(&self.inner.pool)
        .await?;
        let mut visible = std::collections::HashSet::with_capacity(rows.len());
        for r in &rows {
            visible.insert(UserId(r.try_get("id")?));
        }
        Ok(users
            .iter()
            .copied()
            .filter(|u| visible.contains(u))
            .collect())
    }

    async fn profiles_where(&self, cond: &str, me: UserId) -> Result<Vec<Profile>, StoreError> {
        let sql =
            format!("SELECT {PROFILE_COLUMNS} FROM users u WHERE {cond} ORDER BY u.username_key");
        sqlx::query(&sql)
            .bind(me.0)
            .fetch_all(&self.inner.pool)
            .await?
            .iter()
            .map(profile_from_row)
            .collect()
    }
}
