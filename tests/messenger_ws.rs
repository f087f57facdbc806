//! The messenger session on `/ws` end to end, against real `gax serve` processes: live
//! delivery, resume after a reconnect (exactly the missed messages, in order, once),
//! idempotent sends, acknowledgement only after durable storage (SIGKILL and restart), search
//! within a second, bad input with close codes, and two nodes sharing Postgres and the real
//! Redis (cross-node delivery and presence).
//!
//! Redis: `GAX_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); Postgres:
//! `GAX_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`). Either set to
//! `skip` skips the two-node test with a note.

mod common;

use std::time::{Duration, Instant};

use common::ws::{closed, connect, next, put, until, Ws};
use common::{register, Gax};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn group(gax: &Gax, owner: &str, members: &[i64]) -> i64 {
    let (s, chat) = gax.api(
        "POST",
        "/api/chats",
        Some(owner),
        Some(json!({"kind": "group", "title": "team", "members": members})),
    );
    assert_eq!(s, 201, "{chat}");
    chat["id"].as_i64().unwrap()
}

/// Opens a messenger session and reads through `synced`; returns the messages of the
/// catch-up.
async fn hello(gax: &Gax, token: &str, resume: Value) -> (Ws, Vec<Value>) {
    let mut ws = connect(gax).await;
    put(
        &mut ws,
        json!({"type": "hello", "version": 1, "token": token, "resume": resume}),
    )
    .await;
    let welcome = next(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let (caught_up, _) = until(&mut ws, "synced").await;
    (ws, caught_up)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reconnecting_client_gets_exactly_what_it_missed() {
    let gax = Gax::start(&["--rate-limit", "sends=off"]); // 850 sends in a row
    let (alice, _) = register(&gax, "alice");
    let (bob, bob_id) = register(&gax, "bob");
    let chat = group(&gax, &alice, &[bob_id]);
    let path = format!("/api/chats/{chat}/messages");

    // Bob is online: a message arrives live.
    let (mut ws, _) = hello(&gax, &bob, json!({})).await;
    let (s, _) = gax.api("POST", &path, Some(&alice), Some(json!({"text": "first"})));
    assert_eq!(s, 201);
    let (_, live) = until(&mut ws, "message").await;
    assert_eq!(live["message"]["seq"], 1);
    drop(ws);

    // Bob is away while alice sends 100.
    for i in 0..100 {
        let (s, b) = gax.api(
            "POST",
            &path,
            Some(&alice),
            Some(json!({"text": format!("m{i}")})),
        );
        assert_eq!(s, 201, "{b}");
    }
    // Back, resuming after seq 1: exactly those 100, in order, then live again.
    let (mut ws, caught_up) = hello(&gax, &bob, json!({ chat.to_string(): 1 })).await;
    let seqs: Vec<i64> = caught_up
        .iter()
        .filter(|m| m["type"] == "message")
        .map(|m| m["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (2..=101).collect::<Vec<_>>(),
        "exactly the missed ones, in order"
    );
    let texts: Vec<&str> = caught_up
        .iter()
        .map(|m| m["message"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts[0], "m0");
    assert_eq!(texts[99], "m99");
    let (s, _) = gax.api(
        "POST",
        &path,
        Some(&alice),
        Some(json!({"text": "live again"})),
    );
    assert_eq!(s, 201);
    let (skipped, live) = until(&mut ws, "message").await;
    assert_eq!(live["message"]["seq"], 102);
    assert!(
        skipped.iter().all(|m| m["type"] != "message"),
        "no duplicates: {skipped:?}"
    );
    drop(ws);

    // Away for 250 (more than one page of the store): all of them, once, in order.
    for i in 0..250 {
        let (s, _) = gax.api(
            "POST",
            &path,
            Some(&alice),
            Some(json!({"text": format!("p{i}")})),
        );
        assert_eq!(s, 201);
    }
    let (ws, caught_up) = hello(&gax, &bob, json!({ chat.to_string(): 102 })).await;
    let seqs: Vec<i64> = caught_up
        .iter()
        .map(|m| m["message"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (103..=352).collect::<Vec<_>>());
    drop(ws);

    // Away for more than the resume limit (500): told to refetch instead of flooded.
    for i in 0..500 {
        let (s, _) = gax.api(
            "POST",
            &path,
            Some(&alice),
            Some(json!({"text": format!("n{i}")})),
        );
        assert_eq!(s, 201);
    }
    let (_, caught_up) = hello(&gax, &bob, json!({ chat.to_string(): 1 })).await;
    assert_eq!(
        caught_up.len(),
        1,
        "{} messages instead of one refetch",
        caught_up.len()
    );
    assert_eq!(
        (caught_up[0]["type"].as_str(), caught_up[0]["chat"].as_i64()),
        (Some("refetch"), Some(chat))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_are_acked_once_stored_retries_are_idempotent_and_members_see_them() {
    let gax = Gax::start(&[]);
    let (alice, _) = register(&gax, "alice");
    let (bob, bob_id) = register(&gax, "bob");
    let (carol, carol_id) = register(&gax, "carol");
    let chat = group(&gax, &alice, &[bob_id]);
    let (mut a, _) = hello(&gax, &alice, json!({})).await;
    let (mut b, _) = hello(&gax, &bob, json!({})).await;

    let send = json!({"type": "send", "chat": chat, "text": "hello bob", "client_key": "k-1"});
    put(&mut a, send.clone()).await;
    let (_, ack1) = until(&mut a, "ack").await;
    put(&mut a, send).await; // a retry, e.g. after a lost ack
    let (_, ack2) = until(&mut a, "ack").await;
    assert_eq!(ack1["message"]["id"], ack2["message"]["id"], "one message");
    assert_eq!(ack1["client_key"], "k-1");
    let (_, got) = until(&mut b, "message").await;
    assert_eq!(got["message"]["text"], "hello bob");
    let (_, page) = gax.api(
        "GET",
        &format!("/api/chats/{chat}/messages"),
        Some(&bob),
        None,
    );
    assert_eq!(page.as_array().unwrap().len(), 1, "stored once: {page}");

    // Typing and read marks reach the other member.
    put(&mut a, json!({"type": "typing", "chat": chat})).await;
    let (_, typing) = until(&mut b, "typing").await;
    assert_eq!(typing["chat"], chat);
    put(&mut b, json!({"type": "read", "chat": chat, "seq": 1})).await;
    let (_, read) = until(&mut a, "read").await;
    assert_eq!(
        (read["seq"].as_i64(), read["user"].as_i64()),
        (Some(1), Some(bob_id))
    );

    // A non-member's send is refused with its key; nothing stored.
    let (mut c, _) = hello(&gax, &carol, json!({})).await;
    put(
        &mut c,
        json!({"type": "send", "chat": chat, "text": "hi", "client_key": "c-1"}),
    )
    .await;
    let (_, err) = until(&mut c, "error").await;
    assert_eq!(
        (err["code"].as_str(), err["client_key"].as_str()),
        (Some("not_member"), Some("c-1"))
    );
    put(
        &mut a,
        json!({"type": "send", "chat": chat, "text": "", "client_key": "k-2"}),
    )
    .await;
    let (_, err) = until(&mut a, "error").await;
    assert_eq!(err["code"], "message_empty");
    let (_, page) = gax.api(
        "GET",
        &format!("/api/chats/{chat}/messages"),
        Some(&bob),
        None,
    );
    assert_eq!(page.as_array().unwrap().len(), 1);

    // A chat created while both are connected: followed at once (typing, messages).
    let second = group(&gax, &alice, &[bob_id]);
    let (_, changed) = until(&mut a, "chat_changed").await;
    assert_eq!(changed["chat"], second);
    let (_, changed) = until(&mut b, "chat_changed").await;
    assert_eq!(changed["chat"], second);
    put(&mut a, json!({"type": "typing", "chat": second})).await;
    let (_, typing) = until(&mut b, "typing").await;
    assert_eq!(typing["chat"], second);

    // Presence: alice watches bob (a co-member) and carol (a stranger: no friendship, no
    // shared chat); both are online. Only bob's presence is told, and only bob's leaving.
    put(
        &mut a,
        json!({"type": "watch", "users": [carol_id, bob_id]}),
    )
    .await;
    let (_, p) = until(&mut a, "presence").await;
    assert_eq!(
        (p["user"].as_i64(), p["online"].as_bool()),
        (Some(bob_id), Some(true))
    );
    c.close(None).await.unwrap();
    b.close(None).await.unwrap();
    let (_, p) = until(&mut a, "presence").await;
    assert_eq!(
        (p["user"].as_i64(), p["online"].as_bool()),
        (Some(bob_id), Some(false))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_on_the_messenger_session_gets_close_codes() {
    let gax = Gax::start(&[]);
    let (alice, _) = register(&gax, "alice");
    let call = gax.token(&["--room", "r", "--identity", "guest"]);
    let cases = [
        (
            json!({"type": "hello", "version": 1, "token": "garbage"}),
            4401,
        ),
        (json!({"type": "hello", "version": 9, "token": alice}), 4426),
        (json!({"type": "hello", "version": 1, "token": call}), 4403),
        (json!({"type": "hello", "version": 1}), 4401),
        (
            json!({"type": "hello", "version": 1, "token": alice, "resume": {"x": 1}}),
            4400,
        ),
        (
            json!({"type": "hello", "version": 1, "token": alice, "bogus": 1}),
            4400,
        ),
    ];
    for (hello, code) in cases {
        let mut ws = connect(&gax).await;
        put(&mut ws, hello.clone()).await;
        assert_eq!(closed(&mut ws).await, Some(code), "{hello}");
    }
    // After a good hello: garbage, then a second hello.
    let frames = [
        Message::Text("{not json".into()),
        Message::Text(json!({"type": "hello", "version": 1}).to_string().into()),
    ];
    for frame in frames {
        let (mut ws, _) = hello(&gax, &alice, json!({})).await;
        ws.send(frame).await.unwrap();
        assert_eq!(closed(&mut ws).await, Some(4400));
    }
}

/// A messenger session lives as long as its access token: one that never re-authenticates is
/// closed with 4401 `token_expired` when the token expires; one that sends `auth` with each
/// refreshed token goes on past it, sending and getting acks; `auth` with another user's token
/// ends the session (4403).
#[tokio::test(flavor = "multi_thread")]
async fn a_session_outlives_its_token_only_by_reauthenticating() {
    let gax = Gax::start(&["--access-token-ttl", "3s"]);
    let (s, reg) = gax.api(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"username": "alice", "password": "password-alice"})),
    );
    assert_eq!(s, 201, "{reg}");
    assert_eq!(reg["expires_in"], 3);
    let access = reg["access_token"].as_str().unwrap().to_owned();
    let mut refresh = reg["refresh_token"].as_str().unwrap().to_owned();
    let chat = group(&gax, &access, &[]);
    let started = Instant::now();
    let (mut stale, _) = hello(&gax, &access, json!({})).await;
    let (mut fresh, _) = hello(&gax, &access, json!({})).await;

    // `fresh` re-authenticates every second for twice the token's lifetime, and keeps sending.
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (s, tokens) = gax.api(
            "POST",
            "/api/auth/refresh",
            None,
            Some(json!({ "refresh_token": refresh })),
        );
        assert_eq!(s, 200, "{tokens}");
        refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let token = tokens["access_token"].as_str().unwrap();
        put(&mut fresh, json!({"type": "auth", "token": token})).await;
        let (_, authed) = until(&mut fresh, "authed").await;
        assert!(authed["expires_at"].as_u64().is_some(), "{authed}");
        n += 1;
        let key = format!("k{n}");
        put(
            &mut fresh,
            json!({"type": "send", "chat": chat, "text": format!("still here {n}"), "client_key": key}),
        )
        .await;
        let (_, ack) = until(&mut fresh, "ack").await;
        assert_eq!(ack["client_key"], key.as_str(), "{ack}");
    }
    assert!(n >= 5, "{n} rounds");

    // `stale` was closed when its token expired, with the reason.
    let (_, err) = until(&mut stale, "error").await;
    assert_eq!(err["code"], "token_expired", "{err}");
    assert_eq!(closed(&mut stale).await, Some(4401));

    // `auth` with another user's token is refused and ends the session.
    let (bob, _) = register(&gax, "bob");
    put(&mut fresh, json!({"type": "auth", "token": bob})).await;
    assert_eq!(closed(&mut fresh).await, Some(4403));
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_messages_survive_a_sigkill() {
    let dir = Gax::fresh_data_dir();
    let gax = Gax::start_in(&dir, &[], true);
    let (alice, _) = register(&gax, "alice");
    let (_, bob_id) = register(&gax, "bob");
    let chat = group(&gax, &alice, &[bob_id]);
    let (mut a, _) = hello(&gax, &alice, json!({})).await;
    let mut acked = Vec::new();
    for i in 0..50 {
        put(&mut a, json!({"type": "send", "chat": chat, "text": format!("m{i}"), "client_key": format!("k{i}")})).await;
        let (_, ack) = until(&mut a, "ack").await;
        acked.push(ack["message"]["seq"].as_i64().unwrap());
    }
    // Fire more without waiting, then kill -9 mid-stream.
    for i in 50..80 {
        put(&mut a, json!({"type": "send", "chat": chat, "text": format!("m{i}"), "client_key": format!("k{i}")})).await;
    }
    if let Ok(v) = tokio::time::timeout(Duration::from_millis(30), next(&mut a)).await {
        if v["type"] == "ack" {
            acked.push(v["message"]["seq"].as_i64().unwrap());
        }
    }
    gax.kill_hard();

    let gax = Gax::start_in(&dir, &[], true);
    let (s, login) = gax.api(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "alice", "password": "password-alice"})),
    );
    assert_eq!(s, 200, "{login}");
    let token = login["access_token"].as_str().unwrap();
    let (_, page) = gax.api(
        "GET",
        &format!("/api/chats/{chat}/messages?after=0&limit=200"),
        Some(token),
        None,
    );
    let stored: Vec<i64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    for seq in &acked {
        assert!(
            stored.contains(seq),
            "acked seq {seq} lost after SIGKILL; stored {stored:?}"
        );
    }
    assert_eq!(
        stored,
        (1..=stored.len() as i64).collect::<Vec<_>>(),
        "no holes"
    );

    // The search index is brought up to date from the store at start: the last stored message
    // (sent a moment before the kill, maybe never indexed) is found, and so is everything
    // else after the index is lost altogether.
    let last = page.as_array().unwrap().last().unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = |gax: &Gax, token: &str, word: &str| {
        let (s, r) = gax.api("GET", &format!("/api/search?q={word}"), Some(token), None);
        assert_eq!(s, 200, "{r}");
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "message")
    };
    assert!(
        found(&gax, token, &last),
        "{last} not searchable after the restart"
    );
    let token = token.to_owned();
    gax.kill_hard();
    std::fs::remove_dir_all(dir.join("search")).unwrap();
    let gax = Gax::start_in(&dir, &[], false);
    assert!(
        found(&gax, &token, "m10"),
        "a lost index is rebuilt from the store"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_russian_message_is_found_by_another_word_form_within_a_second() {
    let gax = Gax::start(&[]);
    let (alice, _) = register(&gax, "alice");
    let (bob, bob_id) = register(&gax, "bob");
    let (carol, _) = register(&gax, "carol");
    let chat = group(&gax, &alice, &[bob_id]);
    let (s, _) = gax.api(
        "POST",
        &format!("/api/chats/{chat}/messages"),
        Some(&alice),
        Some(json!({"text": "Мы встретимся завтра в библиотеке"})),
    );
    assert_eq!(s, 201);
    let sent = Instant::now();
    let found = loop {
        let (s, r) = gax.api(
            "GET",
            "/api/search?q=%D0%B1%D0%B8%D0%B1%D0%BB%D0%B8%D0%BE%D1%82%D0%B5%D0%BA%D0%B0",
            Some(&bob),
            None,
        );
        assert_eq!(s, 200, "{r}");
        let hit = r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "message" && h["chat"] == chat);
        if hit || sent.elapsed() > Duration::from_secs(1) {
            break hit;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(found, "\"библиотека\" did not find the message within 1 s");
    // Carol is no member: she never sees it, nor the chat.
    let (_, r) = gax.api(
        "GET",
        "/api/search?q=%D0%B1%D0%B8%D0%B1%D0%BB%D0%B8%D0%BE%D1%82%D0%B5%D0%BA%D0%B0",
        Some(&carol),
        None,
    );
    assert_eq!(r["hits"].as_array().unwrap().len(), 0, "{r}");
    let (_, r) = gax.api("GET", "/api/search?q=team", Some(&carol), None);
    assert!(
        r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["kind"] != "chat"),
        "{r}"
    );
    // Garbage queries are just words: no error.
    let (s, _) = gax.api("GET", "/api/search?q=%22((%20AND%20OR", Some(&bob), None);
    assert_eq!(s, 200);
    let (s, _) = gax.api("GET", "/api/search", Some(&bob), None);
    assert_eq!(s, 400, "q is required");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_delivery_and_presence_through_redis() {
    let Some(cluster) = common::cluster::Cluster::new("nodes_t").await else {
        return;
    };
    let a = cluster.node();
    let b = cluster.node();

    let (alice, _) = register(&a, "alice");
    let (bob, bob_id) = register(&a, "bob");
    let chat = group(&a, &alice, &[bob_id]);
    // Alice watches bob on node A; bob connects to node B.
    let (mut wa, _) = hello(&a, &alice, json!({})).await;
    put(&mut wa, json!({"type": "watch", "users": [bob_id]})).await;
    let (mut wb, _) = hello(&b, &bob, json!({})).await;
    let (_, p) = until(&mut wa, "presence").await;
    assert_eq!(
        (p["user"].as_i64(), p["online"].as_bool()),
        (Some(bob_id), Some(true)),
        "presence crossed nodes"
    );

    // A message sent on node A reaches bob on node B; one sent on B reaches alice on A.
    put(
        &mut wa,
        json!({"type": "send", "chat": chat, "text": "from A", "client_key": "a1"}),
    )
    .await;
    let (_, got) = until(&mut wb, "message").await;
    assert_eq!(got["message"]["text"], "from A");
    put(
        &mut wb,
        json!({"type": "send", "chat": chat, "text": "from B", "client_key": "b1"}),
    )
    .await;
    let (_, got) = until(&mut wa, "message").await;
    assert_eq!(got["message"]["text"], "from B");
    // Searchable on the other node too (each node indexes from the shared bus).
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (_, r) = b.api("GET", "/api/search?q=from", Some(&bob), None);
        if r["hits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["kind"] == "message")
            .count()
            == 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node B did not index node A's message: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((wa, wb));
    drop((a, b));
    cluster.cleanup().await;
}
