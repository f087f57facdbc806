//! The live playback state of watch rooms ([`PlaybackStore`]): in this process (one node, the
//! default) or in Redis (several nodes), updated only by compare-and-set on the state's
//! `version`, so two controllers, or two nodes, never overwrite each other.
//!
//! On Redis each room is one key, `{prefix}watch:{room}`, holding the state as JSON in a hash
//! beside its version; a Lua script reads the version, compares it with the expected one and
//! writes, atomically. Keys expire [`STATE_TTL`] after the last change; a room whose state
//! expired starts again from its record (paused at 0).
//!
//! ```text
//!  control ─► get(room) ─► watch::apply(state, control, version, now) ─► compare_and_set
//!                                                   won ─► publish WatchEvent::State on the bus
//!                                                   lost ─► StaleVersion (someone was first)
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, Script};

use crate::watch::{Playback, WatchError};

/// How long Redis keeps a room's state after its last change.
pub const STATE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// KEYS: the room's key. ARGV: expected version (`0`: the key must not exist), new version,
/// new state (JSON), TTL in ms. Returns 1 when written, 0 when the version did not match.
const CAS_LUA: &str = "local v = redis.call('HGET', KEYS[1], 'v')
if (v == false and ARGV[1] == '0') or (v ~= false and v == ARGV[1]) then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
";

/// Where the live states are kept. Cheap to share behind an `Arc`.
pub struct PlaybackStore {
    backend: Backend,
}

enum Backend {
    Local(Mutex<HashMap<String, Playback>>),
    Redis {
        conn: ConnectionManager,
        prefix: String,
        cas: Script,
    },
}

impl std::fmt::Debug for PlaybackStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.backend {
            Backend::Local(_) => "in-process",
            Backend::Redis { .. } => "redis",
        };
        f.debug_struct("PlaybackStore")
            .field("backend", &kind)
            .finish()
    }
}

fn live(e: impl std::fmt::Display) -> WatchError {
    WatchError::Live(e.to_string())
}

impl PlaybackStore {
    /// States in this process's memory.
    pub fn in_process() -> PlaybackStore {
        PlaybackStore {
            backend: Backend::Local(Mutex::new(HashMap::new())),
        }
    }

    /// States in the Redis at `url`, keys under `prefix` (the same on every node).
    pub async fn redis(url: &str, prefix: &str) -> Result<PlaybackStore, WatchError> {
        let client = Client::open(url).map_err(live)?;
        let conn = client.get_connection_manager().await.map_err(live)?;
        Ok(PlaybackStore {
            backend: Backend::Redis {
                conn,
                prefix: prefix.to_owned(),
                cas: Script::new(CAS_LUA),
            },
        })
    }

    /// The room's current state, if it has one.
    pub async fn get(&self, room: &str) -> Result<Option<Playback>, WatchError> {
        match &self.backend {
            Backend::Local(map) => Ok(lock(map).get(room).cloned()),
            Backend::Redis { conn, prefix, .. } => {
                let mut conn = conn.clone();
                let json: Option<String> = redis::cmd("HGET")
                    .arg(key(prefix, room))
                    .arg("s")
                    .query_async(&mut conn)
                    .await
                    .map_err(live)?;
                json.map(|j| serde_json::from_str(&j).map_err(live))
                    .transpose()
            }
        }
    }

    /// The room's state, first storing `initial` if it has none (when two nodes race, both
    /// get the one that was stored).
    pub async fn get_or_init(&self, room: &str, initial: Playback) -> Result<Playback, WatchError> {
        loop {
            if let Some(s) = self.get(room).await? {
                return Ok(s);
            }
            if self.compare_and_set(room, 0, &initial).await? {
                return Ok(initial);
            }
        }
    }

    /// Stores `next` if the room's version is `expected` (`0`: the room has no state yet).
    /// Returns whether it was stored.
    pub async fn compare_and_set(
        &self,
        room: &str,
        expected: u64,
        next: &Playback,
    ) -> Result<bool, WatchError> {
        match &self.backend {
            Backend::Local(map) => {
                let mut map = lock(map);
                let current = map.get(room).map_or(0, |s| s.version);
                if current != expected {
                    return Ok(false);
                }
                map.insert(room.to_owned(), next.clone());
                Ok(true)
            }
            Backend::Redis { conn, prefix, cas } => {
                let mut conn = conn.clone();
                let json = serde_json::to_string(next).map_err(live)?;
                let won: i64 = cas
                    .key(key(prefix, room))
                    .arg(expected)
                    .arg(next.version)
                    .arg(json)
                    .arg(STATE_TTL.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(live)?;
                Ok(won == 1)
            }
        }
    }
}

fn key(prefix: &str, room: &str) -> String {
    format!("{prefix}watch:{room}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::{apply, Control, Source};

    #[tokio::test]
    async fn in_process_compare_and_set_takes_one_writer_per_version() {
        let store = PlaybackStore::in_process();
        let initial = Playback::new(Source::File { file: "f1".into() }, None, 0);
        assert!(store.get("r").await.unwrap().is_none());
        let s = store.get_or_init("r", initial.clone()).await.unwrap();
        assert_eq!(s, initial);
        let play = apply(&s, &Control::Play, 1, 10).unwrap();
        let pause = apply(&s, &Control::Pause, 1, 10).unwrap();
        assert!(store.compare_and_set("r", 1, &play).await.unwrap());
        assert!(!store.compare_and_set("r", 1, &pause).await.unwrap());
        assert_eq!(store.get("r").await.unwrap(), Some(play));
        // A second init does not reset.
        let again = store.get_or_init("r", initial).await.unwrap();
        assert_eq!(again.version, 2);
    }
}
