//! Sessions: opaque refresh tokens with rotation and reuse detection, and the access-token
//! claims a session is worth.
//!
//! A login starts a *family*. Each [`Store::refresh`] marks the presented token used and
//! issues the next one in the same family. Presenting a token that was already used means
//! two parties hold the same session (one of them stole it): the whole family is revoked and
//! [`StoreError::RefreshTokenReused`] returned. Only a SHA-256 hash of each token is stored,
//! so a database leak does not leak usable tokens. Access tokens are short-lived JWTs of the
//! existing token model ([`crate::auth::Claims::for_user`]), minted by the caller's
//! [`crate::auth::TokenKeys`].

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::auth::Claims;
use crate::error::StoreError;
use crate::profiles::Profile;
use crate::store::{Store, UserId, WriteTx};

/// What a login or a refresh hands the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    pub user: Profile,
    /// Opaque; give it back to [`Store::refresh`] or [`Store::logout`]. Shown once, never stored.
    pub refresh_token: String,
    /// Unix milliseconds.
    pub refresh_expires_at: i64,
}

impl Session {
    /// Access-token claims for this session's user (chat and upload allowed, no call room),
    /// valid for `ttl`. Sign them with [`crate::auth::TokenKeys::mint`].
    pub fn access_claims(&self, ttl: Duration) -> Claims {
        Claims::for_user(&self.user.id.subject(), Some(&self.user.display_name), ttl)
    }
}

fn random_hex<const N: usize>() -> String {
    let bytes: [u8; N] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// Starts a new session (family) for a user who just proved who they are.
    pub(crate) async fn start_session(&self, user: UserId) -> Result<Session, StoreError> {
        let profile = self.profile(user).await?;
        let mut w = self.write().await?;
        let family = random_hex::<16>();
        let (token, expires) = self.issue_refresh(&mut w, user, &family).await?;
        w.commit().await?;
        Ok(Session {
            user: profile,
            refresh_token: token,
            refresh_expires_at: expires,
        })
    }

    async fn issue_refresh(
        &self,
        w: &mut WriteTx<'_>,
        user: UserId,
        family: &str,
    ) -> Result<(String, i64), StoreError> {
        let token = random_hex::<32>();
        let now = self.now_ms();
        let ttl = i64::try_from(self.inner.config.refresh_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires = now.saturating_add(ttl);
        sqlx::query(
            "INSERT INTO refresh_tokens (user_id, family, token_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user.0)
        .bind(family)
        .bind(token_hash(&token))
        .bind(now)
        .bind(expires)
        .execute(&mut *w.tx)
        .await?;
        Ok((token, expires))
    }

    /// Trades a refresh token for the next one (rotation) and returns the session.
    ///
    /// Errors: `InvalidRefreshToken` (unknown), `RefreshTokenExpired`, `RefreshTokenRevoked`
    /// (logged out, or revoked after a reuse), `RefreshTokenReused` (this token was already
    /// rotated: the whole family is revoked now).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, StoreError> {
        let hash = token_hash(refresh_token);
        let now = self.now_ms();
        let mut w = self.write().await?;
        // One statement claims the token, so two concurrent refreshes cannot both win.
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2
             WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2
             RETURNING user_id, family",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(&mut *w.tx)
        .await?;
        if let Some(row) = claimed {
            let user = UserId(row.try_get("user_id")?);
            let family: String = row.try_get("family")?;
            let (token, expires) = self.issue_refresh(&mut w, user, &family).await?;
            w.commit().await?;
            return Ok(Session {
                user: self.profile(user).await?,
                refresh_token: token,
                refresh_expires_at: expires,
            });
        }

        // Not claimable: say why (and revoke the family on reuse).
        let row = sqlx::query(
            "SELECT family, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *w.tx)
        .await?;
        let Some(row) = row else {
            w.rollback().await?;
            return Err(StoreError::InvalidRefreshToken);
        };
        let family: String = row.try_get("family")?;
        let used: Option<i64> = row.try_get("used_at")?;
        let revoked: Option<i64> = row.try_get("revoked_at")?;
        if revoked.is_some() {
            w.rollback().await?;
            return Err(StoreError::RefreshTokenRevoked);
        }
        if used.is_some() {
            revoke_family(&mut w, &family, now).await?;
            w.commit().await?;
            return Err(StoreError::RefreshTokenReused);
        }
        w.rollback().await?;
        Err(StoreError::RefreshTokenExpired)
    }

    /// Ends the session a refresh token belongs to (its whole family). Logging out twice is
    /// fine. Errors: `InvalidRefreshToken` for a token this store never issued.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), StoreError> {
        let now = self.now_ms();
        let mut w = self.write().await?;
        let row = sqlx::query("SELECT family FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash(refresh_token))
            .fetch_optional(&mut *w.tx)
            .await?;
        let Some(row) = row else {
            w.rollback().await?;
            return Err(StoreError::InvalidRefreshToken);
        };
        let family: String = row.try_get("family")?;
        revoke_family(&mut w, &family, now).await?;
        w.commit().await
    }

    /// Ends every session of a user (e.g. after a password change). Returns how many
    /// sessions were still live.
    pub async fn logout_everywhere(&self, user: UserId) -> Result<u64, StoreError> {
        let now = self.now_ms();
        let mut w = self.write().await?;
        let live = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2
             WHERE user_id = $1 AND revoked_at IS NULL AND used_at IS NULL AND expires_at > $2",
        )
        .bind(user.0)
        .bind(now)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(user.0)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(live)
    }
}

async fn revoke_family(w: &mut WriteTx<'_>, family: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family = $1 AND revoked_at IS NULL",
    )
    .bind(family)
    .bind(now)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(random_hex::<32>().len(), 64);
        assert_ne!(random_hex::<32>(), random_hex::<32>());
    }
}
