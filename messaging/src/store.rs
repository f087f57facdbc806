//! The [`Store`]: the connection pool, its backend (SQLite or Postgres), migrations, the clock
//! and the ids every other module uses.
//!
//! One SQL text runs on both backends through sqlx's `any` driver (`$1` placeholders work on
//! SQLite too). Ids and timestamps (Unix milliseconds) are `BIGINT`; there are no booleans,
//! JSON or date types in the schema, because the `any` driver only carries null, integers,
//! reals, text and blobs. Each backend has its own migrations folder
//! (`migrations/sqlite`, `migrations/postgres`), embedded in the binary.
//!
//! SQLite runs in WAL mode with `synchronous = FULL` (a commit is on disk when it returns)
//! and `foreign_keys = ON`. SQLite allows one writer at a time; write transactions of one
//! store are queued on an in-process gate so a transaction that read first never fails with
//! "database is locked" when it then writes. On Postgres, transactions run at READ COMMITTED
//! and ordering comes from row locks (see `messages.rs`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};

use crate::error::StoreError;
use crate::passwords::{HashCost, Passwords};

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An account.
    UserId
);
id_type!(
    /// A chat (direct or group).
    ChatId
);
id_type!(
    /// A message, unique across chats. Within a chat, messages are also numbered by `seq`.
    MessageId
);

impl UserId {
    /// The JWT subject for this account: `user:<id>` (cannot clash with a bare guest identity).
    pub fn subject(self) -> String {
        format!("user:{}", self.0)
    }

    /// The account named by a JWT subject made by [`UserId::subject`].
    pub fn from_subject(sub: &str) -> Option<UserId> {
        let id = sub.strip_prefix("user:")?;
        if id.starts_with('+') {
            return None;
        }
        id.parse().ok().map(UserId)
    }
}

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The time source, in Unix milliseconds. Injected so tests can move time (token expiry).
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// How a store is opened.
#[derive(Clone)]
pub struct StoreConfig {
    /// Password hashing cost for new hashes.
    pub hash_cost: HashCost,
    /// How long a refresh token stays valid (each rotation starts a new period).
    pub refresh_ttl: Duration,
    /// Pool size (SQLite in-memory databases always use 1).
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection.
    pub acquire_timeout: Duration,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            hash_cost: HashCost::default(),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("hash_cost", &self.hash_cost)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

/// The messenger's durable state: accounts, sessions, profiles, friends, chats and messages.
///
/// Cheap to clone (one shared pool). Methods are grouped by module: accounts and sessions
/// (`accounts.rs`), friends (`friends.rs`), chats and read receipts (`chats.rs`), messages
/// (`messages.rs`). Every chat operation takes the acting user and checks membership.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) config: StoreConfig,
    pub(crate) passwords: Passwords,
    /// SQLite only: one write transaction at a time (see the module doc).
    write_gate: Option<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A write transaction (holding the SQLite write gate while it lives).
pub(crate) struct WriteTx<'a> {
    pub(crate) tx: Transaction<'static, Any>,
    _gate: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl WriteTx<'_> {
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn user_exists(&mut self, user: UserId) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(user.0)
            .fetch_optional(&mut *self.tx)
            .await?
            .is_some())
    }

    /// Rolls back before the gate is released (dropping would roll back later, lazily).
    pub(crate) async fn rollback(self) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

/// A database URL resolved to a backend and the URL sqlx gets.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    backend: Backend,
    url: String,
    in_memory: bool,
}

/// `postgres://…` / `postgresql://…` -> Postgres; `sqlite:…` -> SQLite (created if missing
/// unless a `mode` is given); anything else is a path to a SQLite file.
fn resolve(url: &str) -> Result<Target, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target {
            backend: Backend::Postgres,
            url: url.to_owned(),
            in_memory: false,
        });
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let in_memory =
            rest.trim_start_matches("//").starts_with(":memory:") || rest.contains("mode=memory");
        let url = if rest.contains("mode=") || in_memory {
            url.to_owned()
        } else if rest.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
        };
        return Ok(Target {
            backend: Backend::Sqlite,
            url,
            in_memory,
        });
    }
    if url.is_empty() || url.contains("://") {
        return Err(StoreError::Config(format!(
            "unsupported database url {url:?} (use a file path, sqlite:… or postgres://…)"
        )));
    }
    // A plain path: percent-escape what the URL parser would otherwise read as syntax.
    let escaped = url
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    Ok(Target {
        backend: Backend::Sqlite,
        url: format!("sqlite://{escaped}?mode=rwc"),
        in_memory: false,
    })
}

impl Store {
    /// Opens (creating if needed) the store at `url` with default settings and runs migrations.
    ///
    /// `url` is a SQLite file path (`data/messaging.db`), a `sqlite:` URL, or a
    /// `postgres://` URL.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_with(url, StoreConfig::default()).await
    }

    /// [`Store::connect`] with explicit settings.
    pub async fn connect_with(url: &str, config: StoreConfig) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let target = resolve(url)?;
        let passwords = Passwords::new(config.hash_cost).await?;

        let read_only = target.url.contains("mode=ro");
        if target.backend == Backend::Sqlite && !target.in_memory && !read_only {
            if let Some(dir) = sqlite_parent_dir(&target.url) {
                std::fs::create_dir_all(&dir).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            // WAL is a property of the file; switching needs a lock that busy_timeout cannot
            // wait on, so do it once here rather than on every pooled connection.
            let mut conn = AnyConnection::connect(&target.url).await?;
            conn.execute("PRAGMA journal_mode = WAL").await?;
            conn.close().await?;
        }

        let max = if target.in_memory {
            1
        } else {
            config.max_connections.max(1)
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(config.acquire_timeout);
        if target.in_memory {
            // The one connection is the database: never let the pool close it.
            options = options
                .idle_timeout(None)
                .max_lifetime(None)
                .min_connections(1);
        }
        if target.backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&target.url).await?;

        match target.backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }

        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend: target.backend,
                write_gate: (target.backend == Backend::Sqlite)
                    .then(|| tokio::sync::Mutex::new(())),
                config,
                passwords,
            }),
        })
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    /// The connection pool, for health checks and tests.
    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.config.clock.now_ms()
    }

    /// Starts a write transaction.
    pub(crate) async fn write(&self) -> Result<WriteTx<'_>, StoreError> {
        let gate = match &self.inner.write_gate {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        let tx = self.inner.pool.begin().await?;
        Ok(WriteTx { tx, _gate: gate })
    }
}

/// The directory of a `sqlite://` file URL, if it has one.
fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next()?;
    let path = path
        .replace("%3F", "?")
        .replace("%23", "#")
        .replace("%25", "%");
    let parent = std::path::Path::new(&path).parent()?;
    (!parent.as_os_str().is_empty()).then(|| parent.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_to_backends() {
        let t = resolve("postgres://u@h/db").unwrap();
        assert_eq!(t.backend, Backend::Postgres);
        let t = resolve("data/m.db").unwrap();
        assert_eq!(
            (t.backend, t.url.as_str()),
            (Backend::Sqlite, "sqlite://data/m.db?mode=rwc")
        );
        assert_eq!(
            resolve("/tmp/a?b#c%.db").unwrap().url,
            "sqlite:///tmp/a%3Fb%23c%25.db?mode=rwc"
        );
        assert_eq!(
            resolve("sqlite://x.db").unwrap().url,
            "sqlite://x.db?mode=rwc"
        );
        assert_eq!(
            resolve("sqlite://x.db?mode=ro").unwrap().url,
            "sqlite://x.db?mode=ro"
        );
        assert!(resolve("sqlite::memory:").unwrap().in_memory);
        assert!(resolve("mysql://x").is_err());
        assert!(resolve("").is_err());
        assert_eq!(
            sqlite_parent_dir("sqlite:///tmp/a%3Fb/c.db?mode=rwc").unwrap(),
            std::path::PathBuf::from("/tmp/a?b")
        );
        assert_eq!(sqlite_parent_dir("sqlite://c.db?mode=rwc"), None);
    }

    #[test]
    fn subjects_round_trip() {
        assert_eq!(UserId(42).subject(), "user:42");
        assert_eq!(UserId::from_subject("user:42"), Some(UserId(42)));
        assert_eq!(UserId::from_subject("42"), None);
        assert_eq!(UserId::from_subject("user:+4"), None);
        assert_eq!(UserId::from_subject("user:x"), None);
    }
}
