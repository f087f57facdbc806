//! Password hashing: Argon2id with a configurable [`HashCost`], run off the async threads,
//! and a dummy hash so that checking an unknown user costs the same as a wrong password.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::StoreError;

/// Argon2id cost. The default is OWASP's recommendation (19 MiB, 2 passes, 1 lane); tests
/// use a much cheaper one. Changing it affects new hashes only: stored hashes carry their
/// own parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        HashCost {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Argon2id hashing off the async threads, plus the dummy hash for unknown users.
pub(crate) struct Passwords {
    argon: Argon2<'static>,
    params: Params,
    dummy_hash: String,
}

impl Passwords {
    pub(crate) async fn new(cost: HashCost) -> Result<Self, StoreError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| StoreError::Config(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut p = Passwords {
            argon,
            params,
            dummy_hash: String::new(),
        };
        let random: [u8; 16] = rand::random();
        let dummy: String = random.iter().map(|b| format!("{b:02x}")).collect();
        p.dummy_hash = p.hash(dummy).await?;
        Ok(p)
    }

    pub(crate) async fn hash(&self, password: String) -> Result<String, StoreError> {
        let argon = self.argon.clone();
        blocking(move || {
            let salt: [u8; 16] = rand::random();
            let salt = SaltString::encode_b64(&salt).map_err(internal)?;
            argon
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(internal)
        })
        .await
    }

    /// Verifies against `hash`, or against the dummy hash when `hash` is `None`; the work is
    /// the same either way. False for `None` whatever the password.
    pub(crate) async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, StoreError> {
        let argon = self.argon.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        blocking(move || {
            // A stored hash that does not parse is a failed login, not a crash.
            let ok = PasswordHash::new(&hash)
                .map(|h| argon.verify_password(password.as_bytes(), &h).is_ok())
                .unwrap_or(false);
            Ok(ok && known)
        })
        .await
    }

    /// True when `hash` was made with other parameters than the current ones.
    pub(crate) fn needs_rehash(&self, hash: &str) -> bool {
        PasswordHash::new(hash)
            .ok()
            .and_then(|h| {
                let same_alg = h.algorithm == Algorithm::Argon2id.ident();
                Params::try_from(&h).ok().map(|p| {
                    !same_alg
                        || p.m_cost() != self.params.m_cost()
                        || p.t_cost() != self.params.t_cost()
                        || p.p_cost() != self.params.p_cost()
                })
            })
            .unwrap_or(true)
    }
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}
