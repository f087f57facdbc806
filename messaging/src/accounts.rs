//! Accounts: registration, login with Argon2id password hashes ([`crate::passwords`]), and
//! reading and changing the public profile ([`crate::profiles`]).
//!
//! Login does the same work whether the username exists or not: an unknown user is checked
//! against a dummy hash made with the same cost at startup, and both failures return
//! [`StoreError::BadCredentials`]. Throttling repeated failures is [`crate::LoginLimiter`]'s job;
//! [`Store::login_limited`] wires the two together.

use std::time::Instant;

use sqlx::Row;

use crate::error::{is_unique_violation, StoreError};
use crate::profiles::{profile_from_row, Profile, ProfileUpdate, PROFILE_COLUMNS};
use crate::ratelimit::LoginLimiter;
use crate::sessions::Session;
use crate::store::{Store, UserId};
use crate::validate;

impl Store {
    /// Creates an account. The display name starts as the username.
    ///
    /// Errors: `InvalidUsername`, `InvalidPassword`, `UsernameTaken`.
    pub async fn register(&self, username: &str, password: &str) -> Result<Profile, StoreError> {
        let key = validate::username_key(username)?;
        validate::password(password)?;
        // Cheap check first so a taken name costs no hashing; the unique index decides races.
        let taken = sqlx::query("SELECT id FROM users WHERE username_key = $1")
            .bind(&key)
            .fetch_optional(&self.inner.pool)
            .await?;
        if taken.is_some() {
            return Err(StoreError::UsernameTaken);
        }
        let hash = self.inner.passwords.hash(password.to_owned()).await?;
        let now = self.now_ms();
        let mut w = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (username, username_key, password_hash, display_name, bio, created_at)
             VALUES ($1, $2, $3, $1, '', $4) RETURNING id",
        )
        .bind(username)
        .bind(&key)
        .bind(&hash)
        .bind(now)
        .fetch_one(&mut *w.tx)
        .await;
        let id: i64 = match inserted {
            Ok(row) => row.try_get("id")?,
            Err(e) if is_unique_violation(&e) => {
                w.rollback().await?;
                return Err(StoreError::UsernameTaken);
            }
            Err(e) => return Err(e.into()),
        };
        w.commit().await?;
        Ok(Profile {
            id: UserId(id),
            username: username.to_owned(),
            display_name: username.to_owned(),
            avatar_file_id: None,
            bio: String::new(),
            created_at: now,
        })
    }

    /// Checks a username (any case) and password and starts a session (a new refresh-token
    /// family).
    ///
    /// Errors: `BadCredentials` for an unknown user and for a wrong password alike, after the
    /// same amount of hashing work.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session, StoreError> {
        // A name that could never have been registered (a NUL, spaces, too long) is an unknown
        // user: not looked up at all, since some such text cannot even reach the database.
        let row = match validate::username_key(username) {
            Ok(key) => {
                sqlx::query("SELECT id, password_hash FROM users WHERE username_key = $1")
                    .bind(&key)
                    .fetch_optional(&self.inner.pool)
                    .await?
            }
            Err(_) => None,
        };
        let (id, hash) = match row {
            Some(r) => (
                Some(UserId(r.try_get("id")?)),
                Some(r.try_get::<String, _>("password_hash")?),
            ),
            None => (None, None),
        };
        // An absurdly long password is checked as an empty one (still the full hashing work).
        let too_long = password.len() > 4 * validate::PASSWORD_MAX;
        let candidate = if too_long { "" } else { password };
        let ok = self
            .inner
            .passwords
            .verify(candidate.to_owned(), hash.clone())
            .await?;
        let (Some(id), Some(hash), true, false) = (id, hash, ok, too_long) else {
            return Err(StoreError::BadCredentials);
        };
        if self.inner.passwords.needs_rehash(&hash) {
            // Cost changed since this hash was made: upgrade it now that we know the password.
            let fresh = self.inner.passwords.hash(password.to_owned()).await?;
            let mut w = self.write().await?;
            sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
                .bind(id.0)
                .bind(&fresh)
                .execute(&mut *w.tx)
                .await?;
            w.commit().await?;
        }
        self.start_session(id).await
    }

    /// [`Store::login`] behind a [`LoginLimiter`]: refused early while either this (username,
    /// client) pair or the client (e.g. its IP address) has too many recent failures; a
    /// failure is counted, a success clears the pair's count.
    ///
    /// Errors: `RateLimited { retry_after }`, then those of [`Store::login`].
    pub async fn login_limited(
        &self,
        limiter: &LoginLimiter,
        client: &str,
        username: &str,
        password: &str,
    ) -> Result<Session, StoreError> {
        limiter.check(username, client, Instant::now())?;
        match self.login(username, password).await {
            Ok(s) => {
                limiter.record_success(username, client);
                Ok(s)
            }
            Err(StoreError::BadCredentials) => {
                limiter.record_failure(username, client, Instant::now());
                Err(StoreError::BadCredentials)
            }
            Err(e) => Err(e),
        }
    }

    /// A user's profile. Errors: `UserNotFound`.
    pub async fn profile(&self, user: UserId) -> Result<Profile, StoreError> {
        let sql = format!("SELECT {PROFILE_COLUMNS} FROM users u WHERE u.id = $1");
        let row = sqlx::query(&sql)
            .bind(user.0)
            .fetch_optional(&self.inner.pool)
            .await?
            .ok_or(StoreError::UserNotFound)?;
        profile_from_row(&row)
    }

    /// Looks a user up by username (any case). Errors: `UserNotFound`.
    pub async fn find_user(&self, username: &str) -> Result<Profile, StoreError> {
        let key = validate::username_key(username).map_err(|_| StoreError::UserNotFound)?;
        let sql = format!("SELECT {PROFILE_COLUMNS} FROM users u WHERE u.username_key = $1");
        let row = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(&self.inner.pool)
            .await?
            .ok_or(StoreError::UserNotFound)?;
        profile_from_row(&row)
    }

    /// Changes the given fields of the user's own profile and returns the result.
    ///
    /// Errors: `InvalidInput` (field too long, empty display name, bad file id), `UserNotFound`.
    pub async fn update_profile(
        &self,
        user: UserId,
        update: ProfileUpdate,
    ) -> Result<Profile, StoreError> {
        let display_name = update
            .display_name
            .as_deref()
            .map(validate::display_name)
            .transpose()?;
        let bio = update.bio.as_deref().map(validate::bio).transpose()?;
        if let Some(Some(id)) = &update.avatar_file_id {
            validate::file_id("avatar_file_id", id)?;
        }
        let mut w = self.write().await?;
        let sql = format!(
            "UPDATE users SET
                 display_name = COALESCE($2, display_name),
                 bio = COALESCE($3, bio),
                 avatar_file_id = CASE WHEN $4 = 1 THEN $5 ELSE avatar_file_id END
             WHERE id = $1
             RETURNING {}",
            PROFILE_COLUMNS.replace("u.", "")
        );
        let row = sqlx::query(&sql)
            .bind(user.0)
            .bind(display_name)
            .bind(bio)
            .bind(i64::from(update.avatar_file_id.is_some()))
            .bind(update.avatar_file_id.flatten())
            .fetch_optional(&mut *w.tx)
            .await?;
        let Some(row) = row else {
            w.rollback().await?;
            return Err(StoreError::UserNotFound);
        };
        let profile = profile_from_row(&row)?;
        w.commit().await?;
        Ok(profile)
    }
}
