//! The messaging store's behaviour, once per backend: every case below runs as
//! `sqlite::<case>` (a fresh database file in a temp directory) and as `postgres::<case>`
//! (a fresh schema, dropped afterwards).
//!
//! Postgres: `GAX_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! the Postgres tests fail, saying so, when it is unreachable. `GAX_TEST_POSTGRES_URL=skip`
//! skips them explicitly.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use messaging::auth::TokenKeys;
use messaging::{
    Backend, ChatId, ChatKind, Clock, ErrorKind, FriendRequestOutcome, HashCost, LoginLimiter,
    NewFile, NewMessage, ProfileUpdate, Role, Store, StoreConfig, StoreError, UserId,
};
use sqlx::{AnyConnection, Connection, Executor, Row};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
const TTL_MS: i64 = 3_600_000;

/// Time that moves only when told to.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// What a case gets: a fresh store, its clock and how to open it again.
#[derive(Clone)]
struct Env {
    store: Store,
    clock: Arc<ManualClock>,
    url: String,
}

impl Env {
    fn config(&self, cost: HashCost) -> StoreConfig {
        config(self.clock.clone(), cost)
    }

    async fn user(&self, name: &str) -> UserId {
        self.store
            .register(name, &format!("pw-{name}-secret"))
            .await
            .unwrap()
            .id
    }
}

/// Cheap hashing so tests are fast; production uses `HashCost::default()` (OWASP).
const TEST_COST: HashCost = HashCost {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn config(clock: Arc<ManualClock>, cost: HashCost) -> StoreConfig {
    StoreConfig {
        hash_cost: cost,
        refresh_ttl: Duration::from_millis(TTL_MS as u64),
        max_connections: 5,
        clock,
        ..StoreConfig::default()
    }
}

fn random_name() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

async fn admin_connection(base: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    AnyConnection::connect(base).await.unwrap_or_else(|e| {
        panic!(
            "the Postgres tests need a server at {base} ({e}); start one, point \
             GAX_TEST_POSTGRES_URL at another, or set GAX_TEST_POSTGRES_URL=skip"
        )
    })
}

/// Runs one case on a fresh database of `kind`, then removes it (also when the case fails).
async fn run<F, Fut>(kind: Kind, case: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    let clock = Arc::new(ManualClock(AtomicI64::new(1_700_000_000_000)));
    let (url, cleanup): (String, Cleanup) = match kind {
        Kind::Sqlite => {
            let dir = std::env::temp_dir().join(format!("gax-msg-{}", random_name()));
            // A plain path in a directory that does not exist yet: both are created.
            let path = dir.join("sub").join("messaging.db");
            (path.display().to_string(), Cleanup::Dir(dir))
        }
        Kind::Postgres => {
            let base =
                std::env::var("GAX_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
            if base == "skip" {
                eprintln!("GAX_TEST_POSTGRES_URL=skip: Postgres case skipped");
                return;
            }
            let schema = format!("gax_msg_t_{}", random_name());
            let mut admin = admin_connection(&base).await;
            admin
                .execute(format!("CREATE SCHEMA {schema}").as_str())
                .await
                .unwrap();
            admin.close().await.unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            (url, Cleanup::Schema { base, schema })
        }
    };
    let store = Store::connect_with(&url, config(clock.clone(), TEST_COST))
        .await
        .unwrap();
    let env = Env {
        store: store.clone(),
        clock,
        url,
    };
    let outcome = AssertUnwindSafe(case(env)).catch_unwind().await;
    store.close().await;
    match cleanup {
        Cleanup::Dir(dir) => {
            let _ = std::fs::remove_dir_all(dir);
        }
        Cleanup::Schema { base, schema } => {
            let mut admin = admin_connection(&base).await;
            admin
                .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await
                .unwrap();
            admin.close().await.unwrap();
        }
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

enum Cleanup {
    Dir(PathBuf),
    Schema { base: String, schema: String },
}

/// The machine code of the error `r` must be.
#[track_caller]
fn code<T: std::fmt::Debug>(r: Result<T, StoreError>) -> &'static str {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.code(),
    }
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(super::Kind::Sqlite, super::$case).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run(super::Kind::Postgres, super::$case).await;
                }
            )*
        }
    };
}

on_both_backends!(
    register_and_login,
    login_does_the_same_work_for_unknown_users,
    login_limiter_blocks_guessing,
    password_hash_upgraded_on_login_when_cost_changes,
    refresh_rotates_and_detects_reuse,
    refresh_expiry_and_logout,
    profiles,
    friend_requests,
    direct_chats,
    group_admin_rules,
    message_validation_stores_nothing,
    non_members_get_nothing,
    idempotent_retry_stores_one_message,
    edit_and_delete,
    files_and_who_may_read_them,
    history_cursors,
    read_receipts_and_unread_counts,
    concurrent_senders_get_gapless_seqs,
    concurrent_retries_and_opens_agree,
    data_survives_reopen,
);

// ---------------------------------------------------------------- accounts

async fn register_and_login(env: Env) {
    let s = &env.store;
    let alice = s.register("Alice", "correct horse").await.unwrap();
    assert_eq!(
        (alice.username.as_str(), alice.display_name.as_str()),
        ("Alice", "Alice")
    );

    assert_eq!(
        code(s.register("alice", "another password").await),
        "username_taken"
    );
    assert_eq!(
        code(s.register("ALICE", "another password").await),
        "username_taken"
    );
    for bad in ["al", "al ice", "ålice", "a/b", ""] {
        assert_eq!(
            code(s.register(bad, "long enough").await),
            "invalid_username",
            "{bad:?}"
        );
    }
    assert_eq!(
        code(s.register(&"x".repeat(33), "long enough").await),
        "invalid_username"
    );
    assert_eq!(code(s.register("bob", "short").await), "invalid_password");
    assert_eq!(code(s.register("bob", "1234567").await), "invalid_password");
    s.register(&"b".repeat(32), "12345678").await.unwrap();

    // Any case logs in; the session is for the account.
    let session = s.login("aLiCe", "correct horse").await.unwrap();
    assert_eq!(session.user.id, alice.id);
    assert_eq!(session.refresh_token.len(), 64);

    // Wrong password and unknown user: the same error.
    let wrong = s.login("alice", "wrong horse").await.unwrap_err();
    let unknown = s.login("nobody", "correct horse").await.unwrap_err();
    assert!(matches!(wrong, StoreError::BadCredentials));
    assert!(matches!(unknown, StoreError::BadCredentials));
    assert_eq!(
        (wrong.code(), wrong.kind()),
        (unknown.code(), unknown.kind())
    );
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(code(s.login("alice", "").await), "bad_credentials");
    assert_eq!(code(s.login("", "").await), "bad_credentials");
    assert_eq!(
        code(s.login("alice", &"x".repeat(100_000)).await),
        "bad_credentials"
    );

    // The access token is the existing JWT model.
    let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
    let claims = session.access_claims(Duration::from_secs(600));
    let verified = keys.verify(&keys.mint(&claims).unwrap()).unwrap();
    assert_eq!(UserId::from_subject(&verified.sub), Some(alice.id));
    assert!(verified.can_chat && verified.can_upload && verified.room.is_none());
    assert_eq!(verified.name.as_deref(), Some("Alice"));
}

async fn login_does_the_same_work_for_unknown_users(env: Env) {
    // With a noticeable cost, a missing user must not answer faster than a wrong password:
    // without the dummy hash it would answer in a fraction of the time.
    let cost = HashCost {
        memory_kib: 8 * 1024,
        iterations: 2,
        parallelism: 1,
    };
    let s = Store::connect_with(&env.url, env.config(cost))
        .await
        .unwrap();
    s.register("timed", "the password").await.unwrap();
    let fastest = |durations: Vec<Duration>| durations.into_iter().min().unwrap();
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        assert_eq!(
            code(s.login("timed", "not the password").await),
            "bad_credentials"
        );
        wrong.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            code(s.login("untimed", "not the password").await),
            "bad_credentials"
        );
        unknown.push(t.elapsed());
    }
    // The fastest of 7 each, within 4x of each other (other tests load the same 2 cores;
    // skipping the hash would make the unknown user ~50x faster).
    let (wrong, unknown) = (fastest(wrong), fastest(unknown));
    assert!(
        unknown * 4 > wrong && wrong * 4 > unknown,
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
    s.close().await;
}

async fn login_limiter_blocks_guessing(env: Env) {
    let s = &env.store;
    env.user("victim").await;
    let limiter = LoginLimiter::new(3, 5, Duration::from_secs(60));
    for _ in 0..3 {
        let r = s
            .login_limited(&limiter, "10.0.0.1", "victim", "guess-guess")
            .await;
        assert_eq!(code(r), "bad_credentials");
    }
    // The guessing address is refused for this account, even with the right password.
    let r = s
        .login_limited(&limiter, "10.0.0.1", "victim", "pw-victim-secret")
        .await;
    match r {
        Err(StoreError::RateLimited { retry_after }) => {
            assert!(retry_after > Duration::from_secs(50) && retry_after <= Duration::from_secs(60))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(
        StoreError::RateLimited {
            retry_after: Duration::ZERO
        }
        .kind(),
        ErrorKind::RateLimited
    );
    // The victim, from its own address, is not locked out by someone else's failures.
    let ok = s
        .login_limited(&limiter, "10.0.0.2", "victim", "pw-victim-secret")
        .await;
    assert!(ok.is_ok(), "victim locked out: {:?}", ok.err());
    // The guessing address may try other accounts until its own total (5) is used up.
    env.user("other").await;
    for _ in 0..2 {
        let r = s
            .login_limited(&limiter, "10.0.0.1", "other", "guess-guess")
            .await;
        assert_eq!(code(r), "bad_credentials");
    }
    let r = s
        .login_limited(&limiter, "10.0.0.1", "other", "pw-other-secret")
        .await;
    assert_eq!(code(r), "rate_limited");
    // Another client is not.
    let ok = s
        .login_limited(&limiter, "10.0.0.3", "other", "pw-other-secret")
        .await;
    assert!(ok.is_ok());
}

async fn password_hash_upgraded_on_login_when_cost_changes(env: Env) {
    env.user("carol").await;
    let hash_of = |store: Store| async move {
        sqlx::query("SELECT password_hash FROM users WHERE username_key = 'carol'")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get::<String, _>("password_hash")
            .unwrap()
    };
    let before = hash_of(env.store.clone()).await;
    assert!(
        before.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{before}"
    );

    let stronger = HashCost {
        memory_kib: 128,
        iterations: 2,
        parallelism: 1,
    };
    let s2 = Store::connect_with(&env.url, env.config(stronger))
        .await
        .unwrap();
    assert_eq!(
        code(s2.login("carol", "wrong password").await),
        "bad_credentials"
    );
    assert_eq!(
        hash_of(s2.clone()).await,
        before,
        "a failed login changes nothing"
    );
    s2.login("carol", "pw-carol-secret").await.unwrap();
    let after = hash_of(s2.clone()).await;
    assert!(
        after.starts_with("$argon2id$v=19$m=128,t=2,p=1$"),
        "{after}"
    );
    // Both stores still accept the password.
    s2.login("carol", "pw-carol-secret").await.unwrap();
    env.store.login("carol", "pw-carol-secret").await.unwrap();
    s2.close().await;
}

async fn refresh_rotates_and_detects_reuse(env: Env) {
    let s = &env.store;
    let dave = env.user("dave").await;
    let first = s.login("dave", "pw-dave-secret").await.unwrap();
    let other_device = s.login("dave", "pw-dave-secret").await.unwrap();

    let second = s.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(second.user.id, dave);
    assert_ne!(second.refresh_token, first.refresh_token);
    let third = s.refresh(&second.refresh_token).await.unwrap();

    // Replaying a rotated token revokes the whole family, including the newest token.
    assert_eq!(
        code(s.refresh(&first.refresh_token).await),
        "refresh_reused"
    );
    assert_eq!(
        code(s.refresh(&third.refresh_token).await),
        "refresh_revoked"
    );
    assert_eq!(
        code(s.refresh(&second.refresh_token).await),
        "refresh_revoked"
    );
    // Another login (another family) is untouched.
    let other2 = s.refresh(&other_device.refresh_token).await.unwrap();

    // Garbage and unknown tokens.
    for bad in ["", "nope", &"0".repeat(64), &"é".repeat(1000)] {
        assert_eq!(code(s.refresh(bad).await), "refresh_invalid");
    }
    let e = s.refresh("nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);

    // Only hashes are stored.
    let stored: i64 = sqlx::query("SELECT COUNT(*) AS n FROM refresh_tokens WHERE token_hash = $1")
        .bind(&other2.refresh_token)
        .fetch_one(s.pool())
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
    assert_eq!(stored, 0);
}

async fn refresh_expiry_and_logout(env: Env) {
    let s = &env.store;
    let erin = env.user("erin").await;
    let a = s.login("erin", "pw-erin-secret").await.unwrap();
    assert_eq!(a.refresh_expires_at, env.clock.now_ms() + TTL_MS);
    env.clock.advance(TTL_MS - 1);
    let b = s.refresh(&a.refresh_token).await.unwrap(); // just in time; a new period starts
    env.clock.advance(TTL_MS);
    assert_eq!(code(s.refresh(&b.refresh_token).await), "refresh_expired");

    // Logout ends that session only; twice is fine; unknown tokens are refused.
    let c = s.login("erin", "pw-erin-secret").await.unwrap();
    let d = s.login("erin", "pw-erin-secret").await.unwrap();
    s.logout(&c.refresh_token).await.unwrap();
    s.logout(&c.refresh_token).await.unwrap();
    assert_eq!(code(s.refresh(&c.refresh_token).await), "refresh_revoked");
    assert_eq!(code(s.logout("unknown").await), "refresh_invalid");
    let d2 = s.refresh(&d.refresh_token).await.unwrap();

    // Everywhere: every live token of the user.
    let e = s.login("erin", "pw-erin-secret").await.unwrap();
    assert_eq!(s.logout_everywhere(erin).await.unwrap(), 2);
    assert_eq!(code(s.refresh(&d2.refresh_token).await), "refresh_revoked");
    assert_eq!(code(s.refresh(&e.refresh_token).await), "refresh_revoked");
}

async fn profiles(env: Env) {
    let s = &env.store;
    let fay = env.user("Fay").await;
    let p = s.profile(fay).await.unwrap();
    assert_eq!(
        (p.display_name.as_str(), p.bio.as_str(), p.avatar_file_id),
        ("Fay", "", None)
    );
    assert_eq!(s.find_user("FAY").await.unwrap().id, fay);
    assert_eq!(code(s.find_user("nobody").await), "user_not_found");
    assert_eq!(code(s.profile(UserId(999_999)).await), "user_not_found");

    let p = s
        .update_profile(
            fay,
            ProfileUpdate {
                display_name: Some("  Fay Wray ".into()),
                avatar_file_id: Some(Some("file_01H:avatar.png".into())),
                bio: Some("line 1\nline 2".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(p.display_name, "Fay Wray");
    assert_eq!(p.avatar_file_id.as_deref(), Some("file_01H:avatar.png"));
    assert_eq!(p.bio, "line 1\nline 2");
    assert_eq!(s.profile(fay).await.unwrap(), p);

    // Only what is given changes; Some(None) clears the avatar.
    let p = s
        .update_profile(
            fay,
            ProfileUpdate {
                avatar_file_id: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (p.display_name.as_str(), p.avatar_file_id.clone()),
        ("Fay Wray", None)
    );

    let bad = [
        ProfileUpdate {
            display_name: Some("   ".into()),
            ..Default::default()
        },
        ProfileUpdate {
            display_name: Some("x".repeat(65)),
            ..Default::default()
        },
        ProfileUpdate {
            bio: Some("b".repeat(501)),
            ..Default::default()
        },
        ProfileUpdate {
            avatar_file_id: Some(Some("../../etc/passwd".into())),
            ..Default::default()
        },
        ProfileUpdate {
            avatar_file_id: Some(Some(String::new())),
            ..Default::default()
        },
    ];
    for u in bad {
        assert_eq!(
            code(s.update_profile(fay, u.clone()).await),
            "invalid_input",
            "{u:?}"
        );
    }
    assert_eq!(
        s.profile(fay).await.unwrap(),
        p,
        "refused updates change nothing"
    );
    assert_eq!(
        code(
            s.update_profile(UserId(999_999), ProfileUpdate::default())
                .await
        ),
        "user_not_found"
    );
}

// ---------------------------------------------------------------- friends

async fn friend_requests(env: Env) {
    let s = &env.store;
    let (ann, ben, cat, dan) = (
        env.user("ann").await,
        env.user("ben").await,
        env.user("cat").await,
        env.user("dan").await,
    );
    let ids = |v: Vec<messaging::Profile>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();

    assert_eq!(code(s.request_friend(ann, ann).await), "cannot_friend_self");
    assert_eq!(
        code(s.request_friend(ann, UserId(999_999)).await),
        "user_not_found"
    );
    assert_eq!(
        s.request_friend(ann, ben).await.unwrap(),
        FriendRequestOutcome::Pending
    );
    assert_eq!(
        code(s.request_friend(ann, ben).await),
        "friend_request_exists"
    );
    assert_eq!(ids(s.outgoing_friend_requests(ann).await.unwrap()), [ben]);
    assert_eq!(ids(s.incoming_friend_requests(ben).await.unwrap()), [ann]);
    assert!(s.friends(ann).await.unwrap().is_empty());

    // Only the addressee can accept, and only once.
    assert_eq!(
        code(s.accept_friend(ann, ben).await),
        "friend_request_not_found"
    );
    s.accept_friend(ben, ann).await.unwrap();
    assert_eq!(
        code(s.accept_friend(ben, ann).await),
        "friend_request_not_found"
    );
    assert_eq!(ids(s.friends(ann).await.unwrap()), [ben]);
    assert_eq!(ids(s.friends(ben).await.unwrap()), [ann]);
    assert!(s.incoming_friend_requests(ben).await.unwrap().is_empty());
    assert_eq!(code(s.request_friend(ann, ben).await), "already_friends");
    assert_eq!(code(s.request_friend(ben, ann).await), "already_friends");

    // Decline and cancel.
    s.request_friend(cat, ann).await.unwrap();
    assert_eq!(
        code(s.decline_friend(ann, dan).await),
        "friend_request_not_found"
    );
    s.decline_friend(ann, cat).await.unwrap();
    assert!(s.incoming_friend_requests(ann).await.unwrap().is_empty());
    assert_eq!(ids(s.friends(ann).await.unwrap()), [ben]);
    s.request_friend(dan, ann).await.unwrap();
    s.cancel_friend_request(dan, ann).await.unwrap();
    assert_eq!(
        code(s.cancel_friend_request(dan, ann).await),
        "friend_request_not_found"
    );

    // Asking someone who asked you accepts.
    s.request_friend(cat, dan).await.unwrap();
    assert_eq!(
        s.request_friend(dan, cat).await.unwrap(),
        FriendRequestOutcome::Accepted
    );
    assert_eq!(ids(s.friends(cat).await.unwrap()), [dan]);
    assert!(s.outgoing_friend_requests(cat).await.unwrap().is_empty());

    // Remove, from either side, once.
    s.remove_friend(ben, ann).await.unwrap();
    assert_eq!(code(s.remove_friend(ann, ben).await), "not_friends");
    assert!(s.friends(ann).await.unwrap().is_empty());
    assert_eq!(
        s.request_friend(ann, ben).await.unwrap(),
        FriendRequestOutcome::Pending
    );
}

// ---------------------------------------------------------------- chats

async fn direct_chats(env: Env) {
    let s = &env.store;
    let (gus, hal, ivy) = (
        env.user("gus").await,
        env.user("hal").await,
        env.user("ivy").await,
    );
    let chat = s.open_direct_chat(gus, hal).await.unwrap();
    assert_eq!(
        (chat.kind, chat.title.as_deref(), chat.last_seq),
        (ChatKind::Direct, None, 0)
    );
    assert_eq!(s.open_direct_chat(gus, hal).await.unwrap().id, chat.id);
    assert_eq!(s.open_direct_chat(hal, gus).await.unwrap().id, chat.id);
    let other = s.open_direct_chat(gus, ivy).await.unwrap();
    assert_ne!(other.id, chat.id);

    assert_eq!(code(s.open_direct_chat(gus, gus).await), "cannot_chat_self");
    assert_eq!(
        code(s.open_direct_chat(gus, UserId(999_999)).await),
        "user_not_found"
    );

    let members = s.chat_members(hal, chat.id).await.unwrap();
    let mut ids: Vec<_> = members.iter().map(|m| m.user).collect();
    ids.sort();
    assert_eq!(ids, [gus, hal]);

    // Exactly two members, for good.
    assert_eq!(code(s.leave_chat(gus, chat.id).await), "not_group");
    assert_eq!(code(s.add_member(gus, chat.id, ivy).await), "not_group");
    assert_eq!(code(s.remove_member(gus, chat.id, hal).await), "not_group");
    assert_eq!(code(s.rename_group(gus, chat.id, "x").await), "not_group");
    assert_eq!(s.chat_members(gus, chat.id).await.unwrap().len(), 2);

    assert_eq!(code(s.chat(ivy, chat.id).await), "not_member");
    assert_eq!(code(s.chat(gus, ChatId(999_999)).await), "not_member");
    assert_eq!(s.chat(gus, chat.id).await.unwrap(), chat);
}

async fn group_admin_rules(env: Env) {
    let s = &env.store;
    let (amy, bo, cy, di, ed) = (
        env.user("amy").await,
        env.user("bob").await,
        env.user("cyd").await,
        env.user("dix").await,
        env.user("eddy").await,
    );
    assert_eq!(
        code(s.create_group(amy, "  ", &[bo]).await),
        "invalid_input"
    );
    assert_eq!(
        code(s.create_group(amy, &"t".repeat(101), &[bo]).await),
        "invalid_input"
    );
    assert_eq!(
        code(s.create_group(amy, "x", &[bo, UserId(999_999)]).await),
        "user_not_found"
    );
    assert!(
        s.list_chats(amy).await.unwrap().is_empty(),
        "a refused group leaves nothing"
    );

    let g = s
        .create_group(amy, "  Trip ", &[bo, cy, bo, amy])
        .await
        .unwrap();
    assert_eq!(
        (g.kind, g.title.as_deref(), g.created_by),
        (ChatKind::Group, Some("Trip"), amy)
    );
    let roles: Vec<_> = s
        .chat_members(bo, g.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(roles.len(), 3);
    assert!(roles.contains(&(amy, Role::Admin)) && roles.contains(&(bo, Role::Member)));

    // Members are not admins; outsiders are not members.
    assert_eq!(code(s.rename_group(bo, g.id, "Mine").await), "not_admin");
    assert_eq!(code(s.add_member(bo, g.id, di).await), "not_admin");
    assert_eq!(code(s.remove_member(bo, g.id, cy).await), "not_admin");
    assert_eq!(code(s.rename_group(di, g.id, "Mine").await), "not_member");
    assert_eq!(code(s.add_member(di, g.id, di).await), "not_member");
    assert_eq!(code(s.leave_chat(di, g.id).await), "not_member");

    assert_eq!(
        s.rename_group(amy, g.id, "Trip 2")
            .await
            .unwrap()
            .title
            .as_deref(),
        Some("Trip 2")
    );
    assert_eq!(code(s.rename_group(amy, g.id, "").await), "invalid_input");
    assert_eq!(code(s.add_member(amy, g.id, bo).await), "already_member");
    assert_eq!(
        code(s.add_member(amy, g.id, UserId(999_999)).await),
        "user_not_found"
    );
    s.add_member(amy, g.id, di).await.unwrap();
    assert_eq!(
        code(s.remove_member(amy, g.id, ed).await),
        "user_not_in_chat"
    );
    s.remove_member(amy, g.id, di).await.unwrap();
    assert_eq!(code(s.chat(di, g.id).await), "not_member");

    // The creator cannot be removed; when the last admin leaves, the longest member leads.
    s.send_message(amy, g.id, NewMessage::text("bye"))
        .await
        .unwrap();
    s.leave_chat(amy, g.id).await.unwrap();
    assert_eq!(code(s.chat(amy, g.id).await), "not_member");
    let after: Vec<_> = s
        .chat_members(bo, g.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(
        after.iter().filter(|(_, r)| *r == Role::Admin).count(),
        1,
        "{after:?}"
    );
    let new_admin = after.iter().find(|(_, r)| *r == Role::Admin).unwrap().0;
    assert!(new_admin == bo || new_admin == cy);
    s.add_member(new_admin, g.id, amy).await.unwrap();
    assert_eq!(
        code(s.remove_member(new_admin, g.id, amy).await),
        "cannot_remove_creator"
    );
    // Removing oneself is leaving.
    s.remove_member(cy, g.id, cy).await.unwrap();
    assert_eq!(s.chat_members(bo, g.id).await.unwrap().len(), 2);
}

// ---------------------------------------------------------------- messages

async fn message_validation_stores_nothing(env: Env) {
    let s = &env.store;
    let (jo, kim) = (env.user("joe").await, env.user("kim").await);
    let chat = s.open_direct_chat(jo, kim).await.unwrap().id;
    for id in ["file_1", "file_2", "f"] {
        s.add_file(jo, new_file(id, "a.png")).await.unwrap();
    }

    let refused = [
        (NewMessage::text(""), "message_empty"),
        (NewMessage::text(" \n\t "), "message_empty"),
        (NewMessage::text("x".repeat(4001)), "message_too_long"),
        (NewMessage::text("é".repeat(4001)), "message_too_long"),
        (
            NewMessage::text("ok").with_attachments(["../x"]),
            "invalid_input",
        ),
        (
            NewMessage::text("ok").with_attachments(vec!["f1"; 17]),
            "invalid_input",
        ),
        (NewMessage::text("ok").with_key(""), "invalid_input"),
        (
            NewMessage::text("ok").with_key("k".repeat(65)),
            "invalid_input",
        ),
        (
            NewMessage::text("ok").with_key("has space"),
            "invalid_input",
        ),
    ];
    for (m, want) in refused {
        assert_eq!(
            code(s.send_message(jo, chat, m.clone()).await),
            want,
            "{m:?}"
        );
    }
    assert_eq!(s.chat(jo, chat).await.unwrap().last_seq, 0);
    assert!(s.messages_after(jo, chat, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        StoreError::MessageTooLong { max: 4000 }.kind(),
        ErrorKind::TooLarge,
        "oversized maps to Payload Too Large"
    );

    // The limits themselves are fine; text is stored trimmed.
    let m = s
        .send_message(
            jo,
            chat,
            NewMessage::text(format!("  {}  ", "é".repeat(4000))),
        )
        .await
        .unwrap()
        .message;
    assert_eq!((m.seq, m.text.as_ref().unwrap().chars().count()), (1, 4000));
    let m = s
        .send_message(
            jo,
            chat,
            NewMessage::text("  ").with_attachments(["file_1", "file_2"]),
        )
        .await
        .unwrap()
        .message;
    assert_eq!(
        (m.seq, m.text, m.attachments),
        (2, None, vec!["file_1".to_owned(), "file_2".to_owned()])
    );
    let m = s
        .send_message(
            jo,
            chat,
            NewMessage::text(" caption ").with_attachments(["f"]),
        )
        .await
        .unwrap()
        .message;
    assert_eq!(m.text.as_deref(), Some("caption"));
    assert_eq!(s.messages_after(kim, chat, 0, 10).await.unwrap().len(), 3);
}

async fn non_members_get_nothing(env: Env) {
    let s = &env.store;
    let (lea, max, ned, oz) = (
        env.user("lea").await,
        env.user("max").await,
        env.user("ned").await,
        env.user("ozz").await,
    );
    let g = s.create_group(lea, "g", &[max, oz]).await.unwrap().id;
    let first = s
        .send_message(max, g, NewMessage::text("hello"))
        .await
        .unwrap()
        .message;

    // An outsider: nothing stored, nothing returned.
    assert_eq!(
        code(s.send_message(ned, g, NewMessage::text("spam")).await),
        "not_member"
    );
    assert_eq!(
        code(s.messages_before(ned, g, None, 50).await),
        "not_member"
    );
    assert_eq!(code(s.messages_after(ned, g, 0, 50).await), "not_member");
    assert_eq!(code(s.message(ned, g, 1).await), "not_member");
    assert_eq!(
        code(s.edit_message(ned, first.id, "mine").await),
        "not_member"
    );
    assert_eq!(code(s.delete_message(ned, first.id).await), "not_member");
    assert_eq!(code(s.mark_read(ned, g, 1).await), "not_member");
    assert_eq!(code(s.chat_members(ned, g).await), "not_member");
    // A chat that does not exist looks the same.
    assert_eq!(
        code(
            s.send_message(ned, ChatId(999_999), NewMessage::text("x"))
                .await
        ),
        "not_member"
    );
    assert_eq!(
        code(s.messages_after(ned, ChatId(999_999), 0, 5).await),
        "not_member"
    );
    assert!(s.list_chats(ned).await.unwrap().is_empty());

    // A member who was removed: no longer sends, reads or edits, even their own messages.
    let own = s
        .send_message(oz, g, NewMessage::text("mine").with_key("k1"))
        .await
        .unwrap()
        .message;
    s.remove_member(lea, g, oz).await.unwrap();
    assert_eq!(
        code(s.send_message(oz, g, NewMessage::text("still here?")).await),
        "not_member"
    );
    assert_eq!(
        code(
            s.send_message(oz, g, NewMessage::text("mine").with_key("k1"))
                .await
        ),
        "not_member",
        "not even an idempotent retry"
    );
    assert_eq!(code(s.messages_before(oz, g, None, 50).await), "not_member");
    assert_eq!(
        code(s.edit_message(oz, own.id, "changed").await),
        "not_member"
    );
    assert_eq!(code(s.delete_message(oz, own.id).await), "not_member");
    assert!(s.list_chats(oz).await.unwrap().is_empty());

    let history = s.messages_after(lea, g, 0, 50).await.unwrap();
    assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(history[1].text.as_deref(), Some("mine"));
    assert_eq!(s.chat(lea, g).await.unwrap().last_seq, 2);
}

async fn idempotent_retry_stores_one_message(env: Env) {
    let s = &env.store;
    let (pia, quinn) = (env.user("pia").await, env.user("quinn").await);
    let chat = s.open_direct_chat(pia, quinn).await.unwrap().id;
    let other_chat = s.create_group(pia, "other", &[quinn]).await.unwrap().id;

    let a = s
        .send_message(pia, chat, NewMessage::text("once").with_key("m-1"))
        .await
        .unwrap();
    assert!(!a.duplicate);
    // A retry, even with other content, returns the original.
    let b = s
        .send_message(pia, chat, NewMessage::text("once!").with_key("m-1"))
        .await
        .unwrap();
    assert!(b.duplicate);
    assert_eq!(b.message, a.message);
    assert_eq!(
        s.chat(pia, chat).await.unwrap().last_seq,
        1,
        "no sequence number used"
    );

    // The key is per chat and per sender.
    let c = s
        .send_message(quinn, chat, NewMessage::text("me too").with_key("m-1"))
        .await
        .unwrap();
    let d = s
        .send_message(pia, other_chat, NewMessage::text("there").with_key("m-1"))
        .await
        .unwrap();
    let e = s
        .send_message(pia, chat, NewMessage::text("twice"))
        .await
        .unwrap();
    let f = s
        .send_message(pia, chat, NewMessage::text("twice"))
        .await
        .unwrap();
    assert!(!c.duplicate && !d.duplicate && !e.duplicate && !f.duplicate);
    assert_eq!(
        (c.message.seq, d.message.seq, e.message.seq, f.message.seq),
        (2, 1, 3, 4)
    );
    let history = s.messages_after(quinn, chat, 0, 50).await.unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(
        history
            .iter()
            .filter(|m| m.client_key.as_deref() == Some("m-1"))
            .count(),
        2
    );
}

async fn edit_and_delete(env: Env) {
    let s = &env.store;
    let (rae, sol) = (env.user("rae").await, env.user("sol").await);
    let chat = s.open_direct_chat(rae, sol).await.unwrap().id;
    let m1 = s
        .send_message(rae, chat, NewMessage::text("helo"))
        .await
        .unwrap()
        .message;
    let m2 = s
        .send_message(sol, chat, NewMessage::text("hi"))
        .await
        .unwrap()
        .message;
    assert_eq!(m1.edited_at, None);

    env.clock.advance(5_000);
    let e = s.edit_message(rae, m1.id, " hello ").await.unwrap();
    assert_eq!((e.id, e.seq, e.text.as_deref()), (m1.id, 1, Some("hello")));
    assert_eq!(e.edited_at, Some(m1.created_at + 5_000));
    assert_eq!(s.message(sol, chat, 1).await.unwrap(), e);

    assert_eq!(
        code(s.edit_message(sol, m1.id, "hijack").await),
        "not_author"
    );
    assert_eq!(code(s.delete_message(sol, m1.id).await), "not_author");
    assert_eq!(
        code(s.edit_message(rae, m1.id, "  ").await),
        "message_empty"
    );
    assert_eq!(
        code(s.edit_message(rae, m1.id, &"x".repeat(4001)).await),
        "message_too_long"
    );
    assert_eq!(
        code(
            s.edit_message(rae, messaging::MessageId(999_999), "x")
                .await
        ),
        "message_not_found"
    );
    assert_eq!(
        s.message(sol, chat, 1).await.unwrap().text.as_deref(),
        Some("hello")
    );

    // Delete leaves a tombstone at the same seq.
    let t = s.delete_message(sol, m2.id).await.unwrap();
    assert!(t.is_deleted());
    assert_eq!((t.seq, t.text.clone(), t.attachments.len()), (2, None, 0));
    assert_eq!(
        s.delete_message(sol, m2.id).await.unwrap(),
        t,
        "deleting twice is harmless"
    );
    assert_eq!(
        code(s.edit_message(sol, m2.id, "back").await),
        "message_deleted"
    );
    let history = s.messages_after(rae, chat, 0, 10).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|m| (m.seq, m.is_deleted()))
            .collect::<Vec<_>>(),
        [(1, false), (2, true)]
    );
    assert_eq!(
        s.message(rae, chat, 3)
            .await
            .map(|_| ())
            .unwrap_err()
            .code(),
        "message_not_found"
    );

    // Attachment messages may lose their caption but not everything.
    s.add_file(rae, new_file("f1", "b.png")).await.unwrap();
    let a = s
        .send_message(rae, chat, NewMessage::text("cap").with_attachments(["f1"]))
        .await
        .unwrap()
        .message;
    assert_eq!(s.edit_message(rae, a.id, "").await.unwrap().text, None);
}

fn new_file(id: &str, name: &str) -> NewFile {
    NewFile {
        id: id.into(),
        name: name.into(),
        size: 1234,
        content_type: "image/png".into(),
        sha256: "ab".repeat(32),
    }
}

async fn files_and_who_may_read_them(env: Env) {
    let s = &env.store;
    let (ann, ben, cat) = (
        env.user("ann").await,
        env.user("ben").await,
        env.user("cat").await,
    );
    let f = s
        .add_file(ann, new_file("f_ann", "holiday.png"))
        .await
        .unwrap();
    assert_eq!(
        (f.owner, f.name.as_str(), f.size),
        (ann, "holiday.png", 1234)
    );
    assert_eq!(s.file_for(ann, "f_ann").await.unwrap(), f);
    let code = |r: Result<messaging::FileRecord, StoreError>| r.unwrap_err().code();
    assert_eq!(code(s.file_for(ben, "f_ann").await), "file_forbidden");
    assert_eq!(code(s.file_for(ann, "nope").await), "file_not_found");
    assert_eq!(code(s.file_for(ann, "../etc").await), "file_not_found");
    for bad in ["../x", "", "a/b", "..", "a\0b"] {
        assert_eq!(
            code(s.add_file(ann, new_file("f_bad", bad)).await),
            "invalid_input",
            "{bad:?}"
        );
    }

    // Attached in a chat with ben: ben may read it; cat may not, nor attach it.
    let chat = s.open_direct_chat(ann, ben).await.unwrap().id;
    s.send_message(
        ann,
        chat,
        NewMessage::text("look").with_attachments(["f_ann"]),
    )
    .await
    .unwrap();
    assert_eq!(s.file_for(ben, "f_ann").await.unwrap().id, "f_ann");
    assert_eq!(s.file_chats("f_ann").await.unwrap(), vec![chat]);
    assert_eq!(code(s.file_for(cat, "f_ann").await), "file_forbidden");
    let other = s.open_direct_chat(cat, ben).await.unwrap().id;
    let err = s
        .send_message(
            cat,
            other,
            NewMessage::text("x").with_attachments(["f_ann"]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "file_forbidden");
    let err = s
        .send_message(
            cat,
            other,
            NewMessage::text("x").with_attachments(["missing"]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "file_not_found");
    assert!(
        s.messages_after(cat, other, 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing sent"
    );
    // Ben may pass on what he may read; then cat may read it too.
    s.send_message(
        ben,
        other,
        NewMessage::text("fwd").with_attachments(["f_ann"]),
    )
    .await
    .unwrap();
    assert_eq!(s.file_for(cat, "f_ann").await.unwrap().id, "f_ann");

    // Only the owner deletes.
    assert_eq!(code(s.delete_file(ben, "f_ann").await), "not_file_owner");
    s.delete_file(ann, "f_ann").await.unwrap();
    assert_eq!(code(s.file_for(ann, "f_ann").await), "file_not_found");
    assert!(s.files_of(ann, 10).await.unwrap().is_empty());

    // Uploads belong to whoever started them.
    s.add_upload(ann, "u1", "f_big", "s3-upload-id", "big.bin")
        .await
        .unwrap();
    assert_eq!(
        s.upload_for(ann, "u1").await.unwrap().backend_id,
        "s3-upload-id"
    );
    assert_eq!(
        s.upload_for(ben, "u1").await.unwrap_err().code(),
        "upload_not_found"
    );
    s.remove_upload("u1").await.unwrap();
    assert!(s.upload_for(ann, "u1").await.is_err());
}

async fn history_cursors(env: Env) {
    let s = &env.store;
    let (tia, uma) = (env.user("tia").await, env.user("uma").await);
    let chat = s.open_direct_chat(tia, uma).await.unwrap().id;
    for i in 1..=25 {
        let from = if i % 2 == 0 { tia } else { uma };
        let m = s
            .send_message(from, chat, NewMessage::text(format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(m.message.seq, i);
    }
    let seqs = |v: Vec<messaging::Message>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();

    // Scrolling back, newest first.
    assert_eq!(
        seqs(s.messages_before(tia, chat, None, 10).await.unwrap()),
        (16..=25).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(s.messages_before(tia, chat, Some(16), 10).await.unwrap()),
        (6..=15).rev().collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(s.messages_before(tia, chat, Some(6), 10).await.unwrap()),
        [5, 4, 3, 2, 1]
    );
    assert!(s
        .messages_before(tia, chat, Some(1), 10)
        .await
        .unwrap()
        .is_empty());
    // Resuming after a reconnect, oldest first.
    assert_eq!(
        seqs(s.messages_after(uma, chat, 0, 10).await.unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(s.messages_after(uma, chat, 20, 10).await.unwrap()),
        [21, 22, 23, 24, 25]
    );
    assert!(s
        .messages_after(uma, chat, 25, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.messages_after(uma, chat, 4, 1).await.unwrap()[0]
            .text
            .as_deref(),
        Some("m5")
    );
    // Limits are clamped to 1..=200; odd cursors are harmless.
    assert_eq!(s.messages_after(uma, chat, 0, 0).await.unwrap().len(), 1);
    assert_eq!(
        s.messages_after(uma, chat, i64::MIN, u32::MAX)
            .await
            .unwrap()
            .len(),
        25
    );
    assert_eq!(
        s.messages_before(uma, chat, Some(i64::MIN), 5)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        s.messages_before(uma, chat, Some(i64::MAX), 5)
            .await
            .unwrap()
            .len(),
        5
    );
}

async fn read_receipts_and_unread_counts(env: Env) {
    let s = &env.store;
    let (vi, wu, xo) = (
        env.user("vic").await,
        env.user("wuu").await,
        env.user("xor").await,
    );
    let direct = s.open_direct_chat(vi, wu).await.unwrap().id;
    env.clock.advance(1);
    let group = s.create_group(xo, "g", &[vi, wu]).await.unwrap().id;

    let mut last = 0;
    for text in ["a", "b", "c"] {
        env.clock.advance(1);
        last = s
            .send_message(vi, direct, NewMessage::text(text))
            .await
            .unwrap()
            .message
            .seq;
    }
    let unread = |list: Vec<messaging::ChatSummary>, chat: ChatId| {
        list.into_iter()
            .find(|c| c.chat.id == chat)
            .map(|c| (c.unread, c.last_read_seq, c.peer))
    };
    // The sender has read their own messages; the peer has not.
    assert_eq!(
        unread(s.list_chats(vi).await.unwrap(), direct),
        Some((0, 3, Some(wu)))
    );
    assert_eq!(
        unread(s.list_chats(wu).await.unwrap(), direct),
        Some((3, 0, Some(vi)))
    );
    assert_eq!(
        unread(s.list_chats(wu).await.unwrap(), group),
        Some((0, 0, None))
    );
    // Most recent activity first.
    let order: Vec<_> = s
        .list_chats(wu)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.chat.id)
        .collect();
    assert_eq!(order, [direct, group]);
    env.clock.advance(1);
    s.send_message(xo, group, NewMessage::text("news"))
        .await
        .unwrap();
    let list = s.list_chats(wu).await.unwrap();
    assert_eq!(
        list.iter().map(|c| c.chat.id).collect::<Vec<_>>(),
        [group, direct]
    );
    assert_eq!(
        (list[0].chat.kind, list[0].role, list[0].unread),
        (ChatKind::Group, Role::Member, 1)
    );

    // Receipts move forward only and never past the newest message.
    assert_eq!(s.mark_read(wu, direct, 2).await.unwrap(), 2);
    assert_eq!(
        unread(s.list_chats(wu).await.unwrap(), direct),
        Some((1, 2, Some(vi)))
    );
    assert_eq!(s.mark_read(wu, direct, 1).await.unwrap(), 2);
    assert_eq!(s.mark_read(wu, direct, 0).await.unwrap(), 2);
    assert_eq!(s.mark_read(wu, direct, 1_000).await.unwrap(), last);
    assert_eq!(s.mark_read(wu, direct, i64::MAX).await.unwrap(), last);
    assert_eq!(code(s.mark_read(wu, direct, -1).await), "invalid_input");
    assert_eq!(
        unread(s.list_chats(wu).await.unwrap(), direct),
        Some((0, 3, Some(vi)))
    );
    // Others see the receipt.
    let receipts = s.chat_members(vi, direct).await.unwrap();
    assert_eq!(
        receipts
            .iter()
            .find(|m| m.user == wu)
            .unwrap()
            .last_read_seq,
        3
    );

    // Deleted messages are not unread; a new member starts with nothing unread.
    let m4 = s
        .send_message(vi, direct, NewMessage::text("oops"))
        .await
        .unwrap()
        .message;
    s.send_message(vi, direct, NewMessage::text("ok"))
        .await
        .unwrap();
    s.delete_message(vi, m4.id).await.unwrap();
    assert_eq!(
        unread(s.list_chats(wu).await.unwrap(), direct).unwrap().0,
        1
    );
    let yu = env.user("yuu").await;
    s.add_member(xo, group, yu).await.unwrap();
    assert_eq!(
        unread(s.list_chats(yu).await.unwrap(), group),
        Some((0, 1, None))
    );
    s.send_message(vi, group, NewMessage::text("welcome"))
        .await
        .unwrap();
    assert_eq!(unread(s.list_chats(yu).await.unwrap(), group).unwrap().0, 1);
}

async fn concurrent_senders_get_gapless_seqs(env: Env) {
    let s = &env.store;
    let mut users = Vec::new();
    for name in ["cc0", "cc1", "cc2", "cc3"] {
        users.push(env.user(name).await);
    }
    let g = s.create_group(users[0], "busy", &users).await.unwrap().id;
    let tasks: Vec<_> = users
        .iter()
        .map(|&u| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    let m = s
                        .send_message(
                            u,
                            g,
                            NewMessage::text(format!("{u}-{i}")).with_key(format!("k{i}")),
                        )
                        .await
                        .unwrap();
                    assert!(!m.duplicate);
                    seqs.push(m.message.seq);
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "one sender's messages keep their order"
        );
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=100).collect::<Vec<_>>());
    let history = s.messages_after(users[1], g, 0, 200).await.unwrap();
    assert_eq!(
        history.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=100).collect::<Vec<_>>()
    );
    assert_eq!(s.chat(users[2], g).await.unwrap().last_seq, 100);
}

async fn concurrent_retries_and_opens_agree(env: Env) {
    let s = &env.store;
    let (zed, ada) = (env.user("zed").await, env.user("ada").await);
    // Four simultaneous first opens of the same direct chat agree on one chat.
    let opens: Vec<_> = (0..4)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let (a, b) = if i % 2 == 0 { (zed, ada) } else { (ada, zed) };
                s.open_direct_chat(a, b).await.unwrap().id
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in opens {
        ids.push(t.await.unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let chat = ids[0];

    // Four simultaneous retries of one message store it once.
    let sends: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                s.send_message(zed, chat, NewMessage::text("only once").with_key("same"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in sends {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(results.iter().all(|r| r.message == results[0].message));
    assert_eq!(s.messages_after(ada, chat, 0, 10).await.unwrap().len(), 1);
    assert_eq!(s.chat(ada, chat).await.unwrap().last_seq, 1);
}

async fn data_survives_reopen(env: Env) {
    let s = &env.store;
    let (bea, cal) = (env.user("bea").await, env.user("cal").await);
    let chat = s.open_direct_chat(bea, cal).await.unwrap().id;
    let sent = s
        .send_message(bea, chat, NewMessage::text("kept"))
        .await
        .unwrap()
        .message;
    if s.backend() == Backend::Sqlite {
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(s.pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(mode, "wal");
        // Every pooled connection: durable commits, enforced foreign keys.
        for _ in 0..3 {
            let mut conn = s.pool().acquire().await.unwrap();
            let sync: i64 = sqlx::query("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            let fk: i64 = sqlx::query("PRAGMA foreign_keys")
                .fetch_one(&mut *conn)
                .await
                .unwrap()
                .try_get(0)
                .unwrap();
            assert_eq!((sync, fk), (2, 1), "synchronous = FULL, foreign_keys = ON");
        }
    }
    // A second store on the same database (migrations already applied) sees everything.
    let again = Store::connect_with(&env.url, env.config(TEST_COST))
        .await
        .unwrap();
    assert_eq!(again.message(cal, chat, 1).await.unwrap(), sent);
    again.login("bea", "pw-bea-secret").await.unwrap();
    again.close().await;
}

/// SQLite in memory (one connection, for tools and tests) works like a file.
#[tokio::test]
async fn sqlite_in_memory() {
    let clock = Arc::new(ManualClock(AtomicI64::new(1)));
    let s = Store::connect_with("sqlite::memory:", config(clock, TEST_COST))
        .await
        .unwrap();
    let a = s.register("mem_a", "password1").await.unwrap().id;
    let b = s.register("mem_b", "password2").await.unwrap().id;
    let chat = s.open_direct_chat(a, b).await.unwrap().id;
    s.send_message(a, chat, NewMessage::text("hi"))
        .await
        .unwrap();
    s.login("mem_b", "password2").await.unwrap();
    assert_eq!(s.messages_after(b, chat, 0, 5).await.unwrap().len(), 1);
    assert_eq!(code(Store::connect("mysql://x").await), "internal");
    s.close().await;
}
