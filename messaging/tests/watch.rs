//! Watch parties in the messaging crate: rooms and members in the store (each case on SQLite
//! and on Postgres), and the live playback state's compare-and-set in process and against the
//! real Redis (two stores racing on one room: exactly one write wins per version).
//!
//! Postgres: `GAX_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! Redis: `GAX_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). Either set to `skip` skips
//! its cases with a note.

mod common;

use std::sync::Arc;

use messaging::watch::{apply, Control, Playback, Source, WatchRole};
use messaging::{HashCost, PlaybackStore, Store, StoreConfig, UserId, WatchError};
use sqlx::{AnyConnection, Connection, Executor};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A fresh store on `postgres` (a new schema) or SQLite (a new file); `None` when skipped.
async fn fresh_store(postgres: bool) -> Option<(Store, Cleanup)> {
    let config = StoreConfig {
        hash_cost: HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..StoreConfig::default()
    };
    let id = common::random_hex();
    if !postgres {
        let dir = std::env::temp_dir().join(format!("gax-watch-{id}"));
        let store = Store::connect_with(&dir.join("m.db").display().to_string(), config)
            .await
            .unwrap();
        return Some((store, Cleanup::Dir(dir)));
    }
    let base = std::env::var("GAX_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
    if base == "skip" {
        eprintln!("GAX_TEST_POSTGRES_URL=skip: Postgres case skipped");
        return None;
    }
    sqlx::any::install_default_drivers();
    let schema = format!("gax_watch_t_{id}");
    let mut admin = AnyConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("Postgres at {base} ({e}); or GAX_TEST_POSTGRES_URL=skip"));
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    let store = Store::connect_with(&url, config).await.unwrap();
    Some((store, Cleanup::Schema { base, schema }))
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Schema { base: String, schema: String },
}

impl Cleanup {
    async fn run(self) {
        match self {
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Cleanup::Schema { base, schema } => {
                let mut admin = AnyConnection::connect(&base).await.unwrap();
                admin
                    .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                    .await
                    .unwrap();
            }
        }
    }
}

#[track_caller]
fn code<T: std::fmt::Debug>(r: Result<T, WatchError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.code(),
    }
}

async fn rooms_and_roles(postgres: bool) {
    let Some((s, cleanup)) = fresh_store(postgres).await else {
        return;
    };
    let host = s.register("host", "pw-host-secret").await.unwrap().id;
    let ann = s.register("ann", "pw-ann-secret").await.unwrap().id;
    let bob = s.register("bob", "pw-bob-secret").await.unwrap().id;
    let url = Source::Url {
        url: "https://example.com/movie.webm".into(),
    };

    // Creation checks its input and stores nothing on refusal.
    let bad_url = Source::Url {
        url: "ftp://example.com/x".into(),
    };
    assert_eq!(
        code(s.create_watch_room(host, "t", &bad_url, None).await),
        "bad_source"
    );
    assert_eq!(
        code(s.create_watch_room(host, "  ", &url, None).await),
        "invalid_input"
    );
    assert_eq!(
        code(s.create_watch_room(host, "t", &url, Some(-1.0)).await),
        "invalid_input"
    );
    assert_eq!(
        code(s.create_watch_room(UserId(999_999), "t", &url, None).await),
        "user_not_found"
    );

    let room = s
        .create_watch_room(host, "Movie night", &url, Some(90.5))
        .await
        .unwrap();
    assert_eq!(
        (room.title.as_str(), room.duration),
        ("Movie night", Some(90.5))
    );
    assert_eq!(s.watch_room(&room.id).await.unwrap(), room);
    assert_eq!(
        code(s.watch_room("0000000000000000").await),
        "room_not_found"
    );
    // A file source must be a file the host may read; the room's members may then read it.
    let clip = s
        .add_file(
            host,
            messaging::files::NewFile {
                id: "f_clip".into(),
                name: "clip.webm".into(),
                size: 10,
                content_type: "video/webm".into(),
                sha256: "00".repeat(32),
            },
        )
        .await
        .unwrap();
    let bobs = s
        .add_file(
            bob,
            messaging::files::NewFile {
                id: "f_bob".into(),
                name: "b.webm".into(),
                size: 10,
                content_type: "video/webm".into(),
                sha256: "11".repeat(32),
            },
        )
        .await
        .unwrap();
    let file = |id: &str| Source::File { file: id.into() };
    assert_eq!(
        code(s.create_watch_room(host, "t", &file(&bobs.id), None).await),
        "file_forbidden"
    );
    assert_eq!(
        code(s.create_watch_room(host, "t", &file("f_nope"), None).await),
        "file_not_found"
    );
    let file_room = s
        .create_watch_room(host, "Clip", &file(&clip.id), None)
        .await
        .unwrap();
    assert_eq!(
        s.watch_room(&file_room.id).await.unwrap().source,
        file(&clip.id)
    );
    assert_eq!(
        s.file_for(ann, &clip.id).await.unwrap_err().code(),
        "file_forbidden"
    );
    s.set_watch_member(host, &file_room.id, ann, WatchRole::Viewer)
        .await
        .unwrap();
    assert_eq!(s.file_for(ann, &clip.id).await.unwrap(), clip);
    assert!(
        s.file_for(bob, &clip.id).await.is_err(),
        "not a member of that room"
    );

    // The host is a member with role host and controls; others are not members yet.
    assert_eq!(
        s.watch_role(&room.id, host).await.unwrap(),
        Some(WatchRole::Host)
    );
    assert!(s.can_control_watch(&room.id, host).await.unwrap());
    assert_eq!(s.watch_role(&room.id, ann).await.unwrap(), None);
    assert!(!s.can_control_watch(&room.id, ann).await.unwrap());

    // Only the host invites and grants; the host's role never changes.
    s.set_watch_member(host, &room.id, ann, WatchRole::Viewer)
        .await
        .unwrap();
    assert_eq!(
        code(
            s.set_watch_member(ann, &room.id, bob, WatchRole::Viewer)
                .await
        ),
        "not_host"
    );
    assert_eq!(
        code(
            s.set_watch_member(bob, &room.id, bob, WatchRole::Controller)
                .await
        ),
        "not_member"
    );
    assert_eq!(
        code(
            s.set_watch_member(host, &room.id, host, WatchRole::Viewer)
                .await
        ),
        "host_role"
    );
    assert_eq!(
        code(
            s.set_watch_member(host, &room.id, ann, WatchRole::Host)
                .await
        ),
        "host_role"
    );
    assert_eq!(
        code(
            s.set_watch_member(host, &room.id, UserId(999_999), WatchRole::Viewer)
                .await
        ),
        "user_not_found"
    );
    assert_eq!(
        code(
            s.set_watch_member(host, "0000000000000000", ann, WatchRole::Viewer)
                .await
        ),
        "room_not_found"
    );
    assert!(!s.can_control_watch(&room.id, ann).await.unwrap());
    // Handing control, and taking it back.
    s.set_watch_member(host, &room.id, ann, WatchRole::Controller)
        .await
        .unwrap();
    assert!(s.can_control_watch(&room.id, ann).await.unwrap());
    s.set_watch_member(host, &room.id, bob, WatchRole::Viewer)
        .await
        .unwrap();
    let members = s.watch_members(&room.id).await.unwrap();
    let roles: Vec<(UserId, WatchRole)> = members.iter().map(|m| (m.user, m.role)).collect();
    assert_eq!(
        roles,
        [
            (host, WatchRole::Host),
            (ann, WatchRole::Controller),
            (bob, WatchRole::Viewer)
        ]
    );
    assert_eq!(members[1].display_name, "ann");
    s.set_watch_member(host, &room.id, ann, WatchRole::Viewer)
        .await
        .unwrap();
    assert!(!s.can_control_watch(&room.id, ann).await.unwrap());
    assert_eq!(s.watch_members(&room.id).await.unwrap().len(), 3);
    // Another room's members are its own.
    assert_eq!(s.watch_members(&file_room.id).await.unwrap().len(), 2);

    s.close().await;
    cleanup.run().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_roles_on_sqlite() {
    rooms_and_roles(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_roles_on_postgres() {
    rooms_and_roles(true).await;
}

/// Two stores (two nodes) race to apply a control on every version: exactly one wins each
/// time, and the loser's write never lands.
async fn race(a: Arc<PlaybackStore>, b: Arc<PlaybackStore>, room: &str) {
    let initial = Playback::new(Source::File { file: "f".into() }, Some(100.0), 0);
    let first = a.get_or_init(room, initial.clone()).await.unwrap();
    assert_eq!(b.get_or_init(room, initial).await.unwrap(), first);
    for round in 0..30u64 {
        let current = a.get(room).await.unwrap().unwrap();
        assert_eq!(current.version, round + 1);
        let ca = apply(
            &current,
            &Control::Seek { position: 1.0 },
            current.version,
            10,
        )
        .unwrap();
        let cb = apply(
            &current,
            &Control::Seek { position: 2.0 },
            current.version,
            10,
        )
        .unwrap();
        let (sa, sb) = (a.clone(), b.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let room = room.to_owned();
                async move { sa.compare_and_set(&room, current.version, &ca).await }
            }),
            tokio::spawn({
                let room = room.to_owned();
                async move { sb.compare_and_set(&room, current.version, &cb).await }
            }),
        );
        let (wa, wb) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
        assert!(wa ^ wb, "round {round}: exactly one wins ({wa}, {wb})");
        let now = b.get(room).await.unwrap().unwrap();
        assert_eq!(now.version, current.version + 1);
        assert_eq!(
            now.position,
            if wa { 1.0 } else { 2.0 },
            "the winner's state"
        );
    }
    // A stale write is refused and changes nothing.
    let now = a.get(room).await.unwrap().unwrap();
    let stale = apply(&now, &Control::Pause, now.version, 20).unwrap();
    assert!(!b
        .compare_and_set(room, now.version - 1, &stale)
        .await
        .unwrap());
    assert_eq!(a.get(room).await.unwrap().unwrap(), now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_compare_and_set_has_one_winner_per_version() {
    let store = Arc::new(PlaybackStore::in_process());
    race(store.clone(), store, "room").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_compare_and_set_has_one_winner_per_version_across_nodes() {
    let Some(case) = common::redis("watch_cas").await else {
        return;
    };
    let a = Arc::new(PlaybackStore::redis(&case.url, &case.prefix).await.unwrap());
    let b = Arc::new(PlaybackStore::redis(&case.url, &case.prefix).await.unwrap());
    race(a.clone(), b, "0123456789abcdef").await;
    // Another prefix is another deployment: it sees nothing.
    let other = PlaybackStore::redis(&case.url, &format!("{}other:", case.prefix))
        .await
        .unwrap();
    assert!(other.get("0123456789abcdef").await.unwrap().is_none());
    case.cleanup().await;
}
