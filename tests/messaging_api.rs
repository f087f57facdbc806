//! The messenger's REST API end to end, against a real `gax serve`: accounts and sessions,
//! friends, chats and messages, the bad-input and security cases of each, and the OpenAPI
//! document. Every scenario runs twice: on the embedded SQLite default and on Postgres
//! (`GAX_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`, a fresh schema
//! per run; `GAX_TEST_POSTGRES_URL=skip` skips those runs with a note).

mod common;

use common::pg::PgSchema;
use common::register;
use serde_json::{json, Value};

/// Where a scenario's data lives.
enum Db {
    Sqlite,
    Postgres,
}

/// Starts gax on `db`; `None` when Postgres runs are skipped on purpose.
fn start(db: Db, extra: &[&str]) -> Option<(common::Gax, Option<PgSchema>)> {
    match db {
        Db::Sqlite => Some((common::Gax::start(extra), None)),
        Db::Postgres => {
            let schema = PgSchema::create("api")?;
            let mut args = vec!["--database-url", schema.url.as_str()];
            args.extend_from_slice(extra);
            let gax = common::Gax::start(&args);
            Some((gax, Some(schema)))
        }
    }
}

fn error_code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("<no error code>")
}

fn accounts_and_sessions(db: Db) {
    let Some((gax, _schema)) = start(db, &[]) else {
        return;
    };
    let (alice, _) = register(&gax, "alice");
    // Duplicate registration, ignoring case.
    let (s, b) = gax.api(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"username": "Alice", "password": "another-password"})),
    );
    assert_eq!((s, error_code(&b)), (409, "username_taken"), "{b}");
    // Bad username / password.
    let (s, b) = gax.api(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"username": "a", "password": "short"})),
    );
    assert_eq!((s, error_code(&b)), (400, "invalid_username"), "{b}");

    // A refused display name leaves no account behind.
    let (s, b) = gax.api(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"username": "dora", "password": "password-dora", "display_name": "d".repeat(65)})),
    );
    assert_eq!((s, error_code(&b)), (400, "invalid_input"), "{b}");
    let (s, b) = gax.api(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"username": "dora", "password": "password-dora", "display_name": "Dora"})),
    );
    assert_eq!(
        (s, b["user"]["display_name"].as_str()),
        (201, Some("Dora")),
        "{b}"
    );

    // The access token works, and says who we are.
    let (s, me) = gax.api("GET", "/api/me", Some(&alice), None);
    assert_eq!((s, me["username"].as_str()), (200, Some("alice")));
    let (s, me) = gax.api(
        "PATCH",
        "/api/me",
        Some(&alice),
        Some(json!({"display_name": "Alice A.", "bio": "hi"})),
    );
    assert_eq!(
        (s, me["display_name"].as_str()),
        (200, Some("Alice A.")),
        "{me}"
    );

    // Wrong password and unknown user: the same answer.
    let (s1, b1) = gax.api(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "alice", "password": "wrong-password"})),
    );
    let (s2, b2) = gax.api(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "nobody", "password": "wrong-password"})),
    );
    assert_eq!((s1, error_code(&b1)), (401, "bad_credentials"));
    assert_eq!((s2, &b2), (401, &b1), "no hint whether the user exists");

    // Refresh rotates; the old refresh token reused ends the whole session.
    let (s, login) = gax.api(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "alice", "password": "password-alice"})),
    );
    assert_eq!(s, 200, "{login}");
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let (s, rotated) = gax.api(
        "POST",
        "/api/auth/refresh",
        None,
        Some(json!({ "refresh_token": first })),
    );
    assert_eq!(s, 200, "{rotated}");
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let (s, b) = gax.api(
        "POST",
        "/api/auth/refresh",
        None,
        Some(json!({ "refresh_token": first })),
    );
    assert_eq!((s, error_code(&b)), (401, "refresh_reused"), "{b}");
    let (s, b) = gax.api(
        "POST",
        "/api/auth/refresh",
        None,
        Some(json!({ "refresh_token": second })),
    );
    assert_eq!(s, 401, "the family is revoked: {b}");

    // Logout revokes.
    let (_, login) = gax.api(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "alice", "password": "password-alice"})),
    );
    let token = login["refresh_token"].as_str().unwrap().to_owned();
    let (s, _) = gax.api(
        "POST",
        "/api/auth/logout",
        None,
        Some(json!({ "refresh_token": token })),
    );
    assert_eq!(s, 204);
    let (s, b) = gax.api(
        "POST",
        "/api/auth/refresh",
        None,
        Some(json!({ "refresh_token": token })),
    );
    assert_eq!((s, error_code(&b)), (401, "refresh_revoked"), "{b}");

    // Login failures are rate limited per username.
    let mut last = (0, Value::Null);
    for _ in 0..8 {
        last = gax.api(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"username": "alice", "password": "guess-guess"})),
        );
    }
    assert_eq!(
        (last.0, error_code(&last.1)),
        (429, "rate_limited"),
        "{}",
        last.1
    );
}

fn bad_requests_get_json_errors(db: Db) {
    let Some((gax, _schema)) = start(db, &[]) else {
        return;
    };
    let (alice, _) = register(&gax, "alice");
    let send = |ct: Option<&str>, body: &str| {
        let (s, _, text) = common::http_request(
            gax.http,
            "POST",
            "/api/chats",
            Some(&alice),
            ct,
            body.as_bytes(),
        )
        .unwrap();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        (s, json)
    };
    let (s, b) = send(Some("application/json"), "{not json");
    assert_eq!((s, error_code(&b)), (400, "bad_request"), "{b}");
    let (s, b) = send(
        Some("application/json"),
        r#"{"kind":"group","title":"x","extra":1}"#,
    );
    assert_eq!(
        (s, error_code(&b)),
        (400, "bad_request"),
        "unknown field: {b}"
    );
    let (s, b) = send(Some("text/plain"), r#"{"kind":"group","title":"x"}"#);
    assert_eq!((s, error_code(&b)), (415, "unsupported_media_type"), "{b}");
    // A body over the 2 MiB JSON limit is a 413 with a JSON body, not a 400.
    let huge = format!(r#"{{"kind":"group","title":"{}"}}"#, "x".repeat(3 << 20));
    let (s, b) = send(Some("application/json"), &huge);
    assert_eq!((s, error_code(&b)), (413, "too_large"), "{b}");
    // History pages are 1 to 200 messages, as the docs say.
    let (s, chat) = send(Some("application/json"), r#"{"kind":"group","title":"x"}"#);
    assert_eq!(s, 201, "{chat}");
    let chat = chat["id"].as_i64().unwrap();
    for (limit, want) in [(0, 400), (201, 400), (100_000, 400), (1, 200), (200, 200)] {
        let path = format!("/api/chats/{chat}/messages?limit={limit}");
        let (s, b) = gax.api("GET", &path, Some(&alice), None);
        assert_eq!(s, want, "limit={limit}: {b}");
        if want == 400 {
            assert_eq!(error_code(&b), "bad_request", "{b}");
        }
    }
    // No token, a garbage token, a call token (not a user account).
    let (s, b) = gax.api("GET", "/api/chats", None, None);
    assert_eq!((s, error_code(&b)), (401, "unauthorized"));
    let (s, _) = gax.api("GET", "/api/chats", Some("garbage"), None);
    assert_eq!(s, 401);
    let call = gax.token(&["--room", "r", "--identity", "guest"]);
    let (s, b) = gax.api("GET", "/api/chats", Some(&call), None);
    assert_eq!((s, error_code(&b)), (403, "forbidden"), "{b}");
    // Unknown routes are JSON 404s.
    let (s, b) = gax.api("GET", "/api/nothing-here", Some(&alice), None);
    assert_eq!((s, error_code(&b)), (404, "not_found"));
}

/// Postgres refuses a NUL in text (SQLite would store it): every text that could reach SQL,
/// in a JSON body, a path or a query, is a 400 `nul_character` on both databases, never a 500.
fn nul_characters_are_refused(db: Db) {
    let Some((gax, _schema)) = start(db, &[]) else {
        return;
    };
    let (alice, _) = register(&gax, "alice");
    let (s, chat) = gax.api(
        "POST",
        "/api/chats",
        Some(&alice),
        Some(json!({"kind": "group", "title": "notes"})),
    );
    assert_eq!(s, 201, "{chat}");
    let chat = chat["id"].as_i64().unwrap();
    let nul = "a\u{0}b";
    let bodies: Vec<(&str, String, Option<&str>, Value)> = vec![
        (
            "POST",
            "/api/auth/login".into(),
            None,
            json!({"username": nul, "password": "password-x"}),
        ),
        (
            "POST",
            "/api/auth/login".into(),
            None,
            json!({"username": "alice", "password": nul}),
        ),
        (
            "POST",
            "/api/auth/register".into(),
            None,
            json!({"username": nul, "password": "password-x"}),
        ),
        (
            "POST",
            "/api/auth/register".into(),
            None,
            json!({"username": "nora", "password": "password-x", "display_name": nul}),
        ),
        (
            "POST",
            "/api/auth/refresh".into(),
            None,
            json!({"refresh_token": nul}),
        ),
        ("PATCH", "/api/me".into(), Some(&alice), json!({"bio": nul})),
        (
            "POST",
            "/api/chats".into(),
            Some(&alice),
            json!({"kind": "group", "title": nul}),
        ),
        (
            "POST",
            format!("/api/chats/{chat}/messages"),
            Some(&alice),
            json!({"text": nul}),
        ),
        (
            "POST",
            format!("/api/chats/{chat}/messages"),
            Some(&alice),
            json!({"text": "hi", "client_key": nul}),
        ),
        (
            "POST",
            "/api/watch".into(),
            Some(&alice),
            json!({"title": nul, "source": {"url": "https://example.com/m.webm"}}),
        ),
    ];
    for (method, path, token, body) in bodies {
        let (s, b) = gax.api(method, &path, token, Some(body.clone()));
        assert_eq!(
            (s, error_code(&b)),
            (400, "nul_character"),
            "{method} {path} {body}: {b}"
        );
    }
    for path in [
        "/api/users/by-name/a%00b",
        "/api/search?q=a%00b",
        "/api/files?name=a%00b.txt",
    ] {
        let (s, b) = gax.api("GET", path, Some(&alice), None);
        assert_eq!((s, error_code(&b)), (400, "nul_character"), "{path}: {b}");
    }
    // Nothing was stored, and the server still answers.
    let (s, b) = gax.api(
        "GET",
        &format!("/api/chats/{chat}/messages"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b.as_array().map(Vec::len), Some(0), "{b}");
    let (s, _) = gax.api(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "alice", "password": "password-alice"})),
    );
    assert_eq!(s, 200);
}

fn chats_and_messages(db: Db) {
    let Some((gax, _schema)) = start(db, &[]) else {
        return;
    };
    let (alice, _) = register(&gax, "alice");
    let (bob, bob_id) = register(&gax, "bob");
    let (carol, carol_id) = register(&gax, "carol");

    // Friends.
    let (s, b) = gax.api(
        "POST",
        &format!("/api/friends/{bob_id}/request"),
        Some(&alice),
        None,
    );
    assert_eq!((s, b["outcome"].as_str()), (200, Some("pending")), "{b}");
    let (_, lists) = gax.api("GET", "/api/friends", Some(&bob), None);
    assert_eq!(lists["incoming"][0]["username"], "alice");
    let alice_id = lists["incoming"][0]["id"].as_i64().unwrap();
    let (s, _) = gax.api(
        "POST",
        &format!("/api/friends/{alice_id}/accept"),
        Some(&bob),
        None,
    );
    assert_eq!(s, 204);
    let (_, lists) = gax.api("GET", "/api/friends", Some(&alice), None);
    assert_eq!(lists["friends"][0]["username"], "bob");

    // A group of alice and bob; carol is outside.
    let (s, chat) = gax.api(
        "POST",
        "/api/chats",
        Some(&alice),
        Some(json!({"kind": "group", "title": "Plans", "members": [bob_id]})),
    );
    assert_eq!(s, 201, "{chat}");
    let chat_id = chat["id"].as_i64().unwrap();
    let messages = format!("/api/chats/{chat_id}/messages");

    let (s, sent) = gax.api(
        "POST",
        &messages,
        Some(&alice),
        Some(json!({"text": "hello", "client_key": "k-1"})),
    );
    assert_eq!(
        (s, sent["duplicate"].as_bool()),
        (201, Some(false)),
        "{sent}"
    );
    assert_eq!(sent["message"]["seq"], 1);
    // The retry with the same key answers the original, stores nothing.
    let (s, retry) = gax.api(
        "POST",
        &messages,
        Some(&alice),
        Some(json!({"text": "hello", "client_key": "k-1"})),
    );
    assert_eq!((s, retry["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(retry["message"]["id"], sent["message"]["id"]);
    let (s, b) = gax.api(
        "POST",
        &messages,
        Some(&bob),
        Some(json!({"text": "hi alice"})),
    );
    assert_eq!(s, 201, "{b}");
    let (_, page) = gax.api("GET", &messages, Some(&bob), None);
    let texts: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["hi alice", "hello"], "newest first, one hello");
    // Unread counts and read marks: bob's reply is unread for alice until she marks it.
    let (_, list) = gax.api("GET", "/api/chats", Some(&alice), None);
    assert_eq!(list[0]["unread"], 1, "bob's reply: {list}");
    let (s, b) = gax.api(
        "POST",
        &format!("/api/chats/{chat_id}/read"),
        Some(&alice),
        Some(json!({"seq": 2})),
    );
    assert_eq!((s, b["last_read_seq"].as_i64()), (200, Some(2)));
    let (_, list) = gax.api("GET", "/api/chats", Some(&alice), None);
    assert_eq!(list[0]["unread"], 0);
    let (s, b) = gax.api(
        "POST",
        &format!("/api/chats/{chat_id}/read"),
        Some(&alice),
        Some(json!({"seq": 1})),
    );
    assert_eq!(
        (s, b["last_read_seq"].as_i64()),
        (200, Some(2)),
        "never backwards"
    );
    let (_, after) = gax.api("GET", &format!("{messages}?after=1"), Some(&alice), None);
    assert_eq!(after.as_array().unwrap().len(), 1);
    let (s, b) = gax.api(
        "GET",
        &format!("{messages}?after=1&before=3"),
        Some(&alice),
        None,
    );
    assert_eq!(s, 400, "{b}");
    let (s, b) = gax.api("GET", &format!("{messages}?limit=abc"), Some(&alice), None);
    assert_eq!((s, error_code(&b)), (400, "bad_request"), "{b}");

    // Empty and oversized messages; nothing stored.
    let (s, b) = gax.api(
        "POST",
        &messages,
        Some(&alice),
        Some(json!({"text": "   "})),
    );
    assert_eq!((s, error_code(&b)), (400, "message_empty"), "{b}");
    let long = "x".repeat(4001);
    let (s, b) = gax.api(
        "POST",
        &messages,
        Some(&alice),
        Some(json!({ "text": long })),
    );
    assert_eq!((s, error_code(&b)), (413, "message_too_long"), "{b}");

    // Carol is not a member: she can neither send, read, nor see the chat.
    let (s, b) = gax.api(
        "POST",
        &messages,
        Some(&carol),
        Some(json!({"text": "let me in"})),
    );
    assert_eq!((s, error_code(&b)), (403, "not_member"), "{b}");
    let (s, b) = gax.api("GET", &messages, Some(&carol), None);
    assert_eq!((s, error_code(&b)), (403, "not_member"), "{b}");
    let (s, _) = gax.api("GET", &format!("/api/chats/{chat_id}"), Some(&carol), None);
    assert_eq!(s, 403);
    let (s, b) = gax.api(
        "POST",
        &format!("/api/chats/{chat_id}/call"),
        Some(&carol),
        None,
    );
    assert_eq!((s, error_code(&b)), (403, "not_member"), "{b}");
    let (_, carols) = gax.api("GET", "/api/chats", Some(&carol), None);
    assert_eq!(carols.as_array().unwrap().len(), 0);

    // Editing: only the author.
    let (s, b) = gax.api(
        "PATCH",
        &format!("{messages}/1"),
        Some(&bob),
        Some(json!({"text": "hacked"})),
    );
    assert_eq!((s, error_code(&b)), (403, "not_author"), "{b}");
    let (s, b) = gax.api(
        "PATCH",
        &format!("{messages}/1"),
        Some(&alice),
        Some(json!({"text": "hello, edited"})),
    );
    assert_eq!((s, b["text"].as_str()), (200, Some("hello, edited")), "{b}");
    assert!(b["edited_at"].is_i64());
    let (s, b) = gax.api("DELETE", &format!("{messages}/2"), Some(&alice), None);
    assert_eq!((s, error_code(&b)), (403, "not_author"));
    let (s, b) = gax.api("DELETE", &format!("{messages}/2"), Some(&bob), None);
    assert_eq!((s, b["text"].clone()), (200, Value::Null), "tombstone: {b}");
    let (s, _) = gax.api(
        "PATCH",
        &format!("{messages}/99"),
        Some(&alice),
        Some(json!({"text": "x"})),
    );
    assert_eq!(s, 404);

    // A call from the chat: a call token for the chat's room.
    let (s, call) = gax.api(
        "POST",
        &format!("/api/chats/{chat_id}/call"),
        Some(&bob),
        None,
    );
    assert_eq!(s, 200, "{call}");
    assert_eq!(call["room"], format!("chat-{chat_id}"));
    assert!(call["url"].as_str().unwrap().contains("autojoin=1"));

    // Membership: only admins add; bob leaves and loses the history.
    let (s, b) = gax.api(
        "POST",
        &format!("/api/chats/{chat_id}/members"),
        Some(&bob),
        Some(json!({ "user": carol_id })),
    );
    assert_eq!((s, error_code(&b)), (403, "not_admin"), "{b}");
    let (s, _) = gax.api(
        "DELETE",
        &format!("/api/chats/{chat_id}/members/{bob_id}"),
        Some(&bob),
        None,
    );
    assert_eq!(s, 204);
    let (s, b) = gax.api("GET", &messages, Some(&bob), None);
    assert_eq!((s, error_code(&b)), (403, "not_member"), "{b}");

    // A direct chat is found again, not duplicated.
    let (s, d1) = gax.api(
        "POST",
        "/api/chats",
        Some(&alice),
        Some(json!({"kind": "direct", "user": carol_id})),
    );
    assert_eq!(s, 201, "{d1}");
    let (_, d2) = gax.api(
        "POST",
        "/api/chats",
        Some(&carol),
        Some(json!({"kind": "direct", "user": alice_id})),
    );
    assert_eq!(d1["id"], d2["id"]);
}

#[test]
fn accounts_and_sessions_on_sqlite() {
    accounts_and_sessions(Db::Sqlite);
}
#[test]
fn accounts_and_sessions_on_postgres() {
    accounts_and_sessions(Db::Postgres);
}
#[test]
fn bad_requests_get_json_errors_on_sqlite() {
    bad_requests_get_json_errors(Db::Sqlite);
}
#[test]
fn bad_requests_get_json_errors_on_postgres() {
    bad_requests_get_json_errors(Db::Postgres);
}
#[test]
fn nul_characters_are_refused_on_sqlite() {
    nul_characters_are_refused(Db::Sqlite);
}
#[test]
fn nul_characters_are_refused_on_postgres() {
    nul_characters_are_refused(Db::Postgres);
}
#[test]
fn chats_and_messages_on_sqlite() {
    chats_and_messages(Db::Sqlite);
}
#[test]
fn chats_and_messages_on_postgres() {
    chats_and_messages(Db::Postgres);
}

/// Every REST route is in the OpenAPI document, with its method.
#[test]
fn the_openapi_document_describes_every_route() {
    let gax = common::Gax::start(&[]);
    let (s, doc) = gax.api("GET", "/api/openapi.json", None, None);
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/refresh", "post"),
        ("/api/auth/logout", "post"),
        ("/api/me", "get"),
        ("/api/me", "patch"),
        ("/api/users/{id}", "get"),
        ("/api/users/by-name/{username}", "get"),
        ("/api/friends", "get"),
        ("/api/friends/{id}/request", "post"),
        ("/api/friends/{id}/accept", "post"),
        ("/api/friends/{id}/decline", "post"),
        ("/api/friends/{id}", "delete"),
        ("/api/chats", "get"),
        ("/api/chats", "post"),
        ("/api/chats/{chat}", "get"),
        ("/api/chats/{chat}", "patch"),
        ("/api/chats/{chat}/members", "post"),
        ("/api/chats/{chat}/members/{user}", "delete"),
        ("/api/chats/{chat}/messages", "get"),
        ("/api/chats/{chat}/messages", "post"),
        ("/api/chats/{chat}/messages/{seq}", "patch"),
        ("/api/chats/{chat}/messages/{seq}", "delete"),
        ("/api/chats/{chat}/read", "post"),
        ("/api/chats/{chat}/call", "post"),
        ("/api/search", "get"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/api/dev/token", "get"),
        ("/ws", "get"),
        ("/whip/{room}", "post"),
        ("/whip/{room}/{session}", "delete"),
        ("/whip/{room}/{session}", "patch"),
        ("/whep/{room}/{participant}", "post"),
        ("/whep/{room}/{participant}/{session}", "delete"),
        ("/whep/{room}/{participant}/{session}", "patch"),
        ("/api/files", "post"),
        ("/api/files", "get"),
        ("/api/files/{id}", "get"),
        ("/api/files/{id}", "delete"),
        ("/api/files/{id}/info", "get"),
        ("/api/files/{id}/link", "post"),
        ("/api/uploads", "post"),
        ("/api/uploads/{id}", "get"),
        ("/api/uploads/{id}", "delete"),
        ("/api/uploads/{id}/parts/{n}", "put"),
        ("/api/uploads/{id}/complete", "post"),
        ("/api/watch", "post"),
        ("/api/watch/{room}", "get"),
        ("/api/watch/{room}/members", "post"),
        ("/api/watch/{room}/link", "post"),
        ("/api/watch/{room}/control", "post"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        operations,
        expected.len(),
        "an undocumented or unexpected route"
    );
}
