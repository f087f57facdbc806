//! The GAX token: a JWT (HS256) with a subject, a display name, an expiry and grants.
//!
//! Minted by `gax token` (and later by login), checked by every door: the call WebSocket,
//! REST, WHIP/WHEP and file URLs. The signing secret is configured, or generated on first run
//! and kept in the data directory so the CLI and the server agree.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Name of the secret file inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// What a token allows. Missing grants default to "not allowed", except publish/subscribe,
/// which default to allowed when a room is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user (or identity) the token was issued to.
    pub sub: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
    /// The call room this token admits to (`None`: no call room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The watch-party room this token admits a guest to: set on share links only. A call
    /// token for the same party's call room is no share link (it could otherwise renew itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<String>,
    #[serde(default = "yes")]
    pub can_publish: bool,
    #[serde(default = "yes")]
    pub can_subscribe: bool,
    #[serde(default)]
    pub can_chat: bool,
    #[serde(default)]
    pub can_upload: bool,
    #[serde(default)]
    pub admin: bool,
}

fn yes() -> bool {
    true
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token could not be created: {0}")]
    Encode(String),
}

/// Errors reading or creating the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read or write the token secret at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the token secret at {0} is too short (need at least 32 bytes)")]
    TooShort(String),
}

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TokenKeys {
    pub fn from_secret(secret: &[u8]) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// Reads `<data_dir>/jwt-secret`, creating it (32 random bytes, hex, mode 0600) if absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        let path = data_dir.join(SECRET_FILE);
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(s) => {
                let s = s.trim();
                if s.len() < 32 {
                    return Err(SecretError::TooShort(path.display().to_string()));
                }
                Ok(Self::from_secret(s.as_bytes()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let bytes: [u8; 32] = rand::random();
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                write_private(&path, hex.as_bytes()).map_err(io)?;
                Ok(Self::from_secret(hex.as_bytes()))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Signs claims.
    pub fn mint(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Encode(e.to_string()))
    }

    /// Verifies a token's signature and expiry (no leeway) and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.validate_exp = true;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed,
            })
    }
}

impl Claims {
    /// Claims for a call room, valid for `ttl` from now.
    pub fn for_room(identity: &str, name: Option<&str>, room: &str, ttl: Duration) -> Claims {
        let now = unix_now();
        Claims {
            sub: identity.to_owned(),
            name: name.map(str::to_owned),
            exp: now + ttl.as_secs(),
            iat: now,
            room: Some(room.to_owned()),
            watch: None,
            can_publish: true,
            can_subscribe: true,
            can_chat: false,
            can_upload: false,
            admin: false,
        }
    }

    /// Claims for a signed-in messenger user, valid for `ttl` from now: may chat and upload,
    /// no call room (a room token is asked for separately). `identity` is the account's
    /// subject (`UserId::subject`, `user:<id>`).
    pub fn for_user(identity: &str, name: Option<&str>, ttl: Duration) -> Claims {
        let now = unix_now();
        Claims {
            sub: identity.to_owned(),
            name: name.map(str::to_owned),
            exp: now + ttl.as_secs(),
            iat: now,
            room: None,
            watch: None,
            can_publish: true,
            can_subscribe: true,
            can_chat: true,
            can_upload: true,
            admin: false,
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn round_trip_keeps_grants() {
        let mut c = Claims::for_room("alice", Some("Alice"), "r1", Duration::from_secs(60));
        c.can_publish = false;
        let t = keys().mint(&c).unwrap();
        assert_eq!(keys().verify(&t).unwrap(), c);
    }

    #[test]
    fn expired_forged_and_garbage_tokens_are_refused() {
        let mut c = Claims::for_room("a", None, "r", Duration::from_secs(60));
        c.exp = unix_now() - 1;
        let t = keys().mint(&c).unwrap();
        assert_eq!(keys().verify(&t), Err(TokenError::Expired));

        let c = Claims::for_room("a", None, "r", Duration::from_secs(60));
        let other = TokenKeys::from_secret(b"another secret another secret 32");
        let forged = other.mint(&c).unwrap();
        assert_eq!(keys().verify(&forged), Err(TokenError::BadSignature));

        assert_eq!(keys().verify("not.a.jwt"), Err(TokenError::Malformed));
        assert_eq!(keys().verify(""), Err(TokenError::Malformed));
    }

    #[test]
    fn user_claims_grant_chat_and_upload_but_no_room() {
        let c = Claims::for_user("user:7", Some("Ann"), Duration::from_secs(60));
        assert_eq!(c.room, None);
        assert!(c.can_chat && c.can_upload && !c.admin);
        assert!(c.exp >= c.iat + 60);
        let t = keys().mint(&c).unwrap();
        assert_eq!(keys().verify(&t).unwrap(), c);
    }

    #[test]
    fn secret_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("gax-auth-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = TokenKeys::load_or_create(&dir).unwrap();
        let b = TokenKeys::load_or_create(&dir).unwrap();
        let t = a
            .mint(&Claims::for_room("x", None, "r", Duration::from_secs(5)))
            .unwrap();
        assert!(b.verify(&t).is_ok(), "a second load uses the same secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join(SECRET_FILE), "short").unwrap();
        assert!(matches!(
            TokenKeys::load_or_create(&dir),
            Err(SecretError::TooShort(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
