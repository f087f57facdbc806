//! Watch parties end to end, against real `gax serve` processes: the REST routes and the
//! `/ws` watch session with their refusals (non-host controls, stale versions, seeks before
//! the start or past the end, bad rates, bad sources, unknown rooms, missing or wrong tokens:
//! each a clear error, the state unchanged), share links, handing control, chat and
//! reactions; two nodes sharing Postgres and Redis keeping one room consistent; and two
//! headless Chromium pages playing one video in sync, with a third joining late
//! (`tests/e2e/watch.mjs`; the video is made by ffmpeg at test time).
//!
//! Multi-node: `GAX_TEST_REDIS_URL` / `GAX_TEST_POSTGRES_URL` (see `common::cluster`). Browser:
//! Chromium, `npm ci` in tests/e2e and ffmpeg (`scripts/test` installs them);
//! `GAX_SKIP_BROWSER_TESTS=1` skips it.

mod common;

use common::ws::{closed, connect, next, put, until, Ws};
use common::{register, Gax};
use serde_json::{json, Value};

/// Creates a room hosted by `host` (a URL source, 30 s long); returns its id.
fn create_room(gax: &Gax, host: &str) -> String {
    let (s, v) = gax.api(
        "POST",
        "/api/watch",
        Some(host),
        Some(json!({"title": "Movie night", "source": {"url": "https://example.com/m.webm"}, "duration": 30.0})),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["state"]["version"], 1);
    assert_eq!(v["state"]["paused"], true);
    assert_eq!(v["role"], "host");
    v["room"]["id"].as_str().unwrap().to_owned()
}

fn control(gax: &Gax, token: &str, room: &str, body: Value) -> (u16, Value) {
    gax.api(
        "POST",
        &format!("/api/watch/{room}/control"),
        Some(token),
        Some(body),
    )
}

fn version(gax: &Gax, token: &str, room: &str) -> u64 {
    let (s, v) = gax.api("GET", &format!("/api/watch/{room}"), Some(token), None);
    assert_eq!(s, 200, "{v}");
    v["state"]["version"].as_u64().unwrap()
}

#[test]
fn rest_routes_refuse_bad_input_and_change_nothing() {
    let gax = Gax::start(&[]);
    let (host, _) = register(&gax, "host");
    let (ann, ann_id) = register(&gax, "ann");

    // Creation: bad sources, bad bodies, no or a wrong token.
    let create =
        |token: Option<&str>, body: Value| gax.api("POST", "/api/watch", token, Some(body));
    for (source, code) in [
        (json!({"url": "ftp://example.com/a.webm"}), "bad_source"),
        (json!({"url": "javascript:alert(1)"}), "bad_source"),
        (json!({"file": "../etc/passwd"}), "bad_source"),
    ] {
        let (s, v) = create(Some(&host), json!({"title": "t", "source": source}));
        assert_eq!((s, v["error"].as_str()), (400, Some(code)), "{source}: {v}");
    }
    let (s, v) = create(
        Some(&host),
        json!({"title": "t", "source": {"url": "https://e.com/a", "file": "x"}}),
    );
    assert_eq!(s, 400, "{v}");
    let (s, _) = create(
        None,
        json!({"title": "t", "source": {"url": "https://e.com/a"}}),
    );
    assert_eq!(s, 401);
    let (s, _) = create(
        Some("not-a-token"),
        json!({"title": "t", "source": {"url": "https://e.com/a"}}),
    );
    assert_eq!(s, 401);

    let room = create_room(&gax, &host);
    let path = format!("/api/watch/{room}");
    // Reading: members and link holders only.
    let (s, v) = gax.api("GET", &path, Some(&ann), None);
    assert_eq!((s, v["error"].as_str()), (403, Some("not_member")));
    let (s, v) = gax.api("GET", "/api/watch/0123456789abcdef", Some(&host), None);
    assert_eq!((s, v["error"].as_str()), (404, Some("room_not_found")));
    let (s, _) = gax.api("GET", "/api/watch/..%2F..", Some(&host), None);
    assert_eq!(s, 404);
    let (s, _) = gax.api("GET", &path, None, None);
    assert_eq!(s, 401);

    // Controls: each refusal is a clear error and the state stays at version 1.
    let (s, v) = gax.api(
        "POST",
        &format!("{path}/members"),
        Some(&ann),
        Some(json!({"user": ann_id})),
    );
    assert_eq!((s, v["error"].as_str()), (403, Some("not_member")));
    let (s, _) = gax.api(
        "POST",
        &format!("{path}/members"),
        Some(&host),
        Some(json!({"user": ann_id})),
    );
    assert_eq!(s, 204);
    let refusals = [
        (
            &ann,
            json!({"action": "play", "version": 1}),
            403,
            "not_controller",
        ),
        (
            &host,
            json!({"action": "play", "version": 7}),
            409,
            "stale_version",
        ),
        (
            &host,
            json!({"action": "play", "version": 0}),
            409,
            "stale_version",
        ),
        (
            &host,
            json!({"action": "seek", "version": 1, "position": -0.5}),
            400,
            "seek_out_of_range",
        ),
        (
            &host,
            json!({"action": "seek", "version": 1, "position": 30.5}),
            400,
            "seek_out_of_range",
        ),
        (
            &host,
            json!({"action": "seek", "version": 1}),
            400,
            "invalid_input",
        ),
        (
            &host,
            json!({"action": "rate", "version": 1, "rate": 5.0}),
            400,
            "bad_rate",
        ),
        (
            &host,
            json!({"action": "rate", "version": 1, "rate": 0.1}),
            400,
            "bad_rate",
        ),
        (
            &host,
            json!({"action": "rewind", "version": 1}),
            400,
            "invalid_input",
        ),
    ];
    for (token, body, status, code) in refusals {
        let (s, v) = control(&gax, token, &room, body.clone());
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(code)),
            "{body}: {v}"
        );
    }
    let (s, _) = control(
        &gax,
        "garbage",
        &room,
        json!({"action": "play", "version": 1}),
    );
    assert_eq!(s, 401);
    assert_eq!(version(&gax, &host, &room), 1, "refusals changed nothing");

    // A good control: scheduled slightly ahead of the server clock.
    let (s, v) = control(&gax, &host, &room, json!({"action": "play", "version": 1}));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["version"].as_u64(), v["paused"].as_bool()),
        (Some(2), Some(false))
    );
    let (_, view) = gax.api("GET", &path, Some(&host), None);
    assert!(
        view["state"]["updated_at"].as_f64().unwrap()
            > view["server_time"].as_f64().unwrap() - 1000.0
    );

    // Handing control to ann, and taking it back.
    let grant = |role: &str| {
        gax.api(
            "POST",
            &format!("{path}/members"),
            Some(&host),
            Some(json!({"user": ann_id, "role": role})),
        )
    };
    assert_eq!(grant("controller").0, 204);
    let (s, v) = control(&gax, &ann, &room, json!({"action": "pause", "version": 2}));
    assert_eq!((s, v["version"].as_u64()), (200, Some(3)), "{v}");
    assert_eq!(grant("viewer").0, 204);
    let (s, _) = control(&gax, &ann, &room, json!({"action": "play", "version": 3}));
    assert_eq!(s, 403);
    let (s, v) = grant("host");
    assert_eq!((s, v["error"].as_str()), (403, Some("host_role")));

    // Share links: host only; the holder reads as a viewer and cannot control.
    let (s, v) = gax.api("POST", &format!("{path}/link"), Some(&ann), None);
    assert_eq!((s, v["error"].as_str()), (403, Some("not_host")));
    let (s, link) = gax.api("POST", &format!("{path}/link"), Some(&host), None);
    assert_eq!(s, 200, "{link}");
    let guest = link["token"].as_str().unwrap();
    assert!(link["url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("/watch/{room}?token=")));
    let (s, v) = gax.api("GET", &path, Some(guest), None);
    assert_eq!((s, v["role"].as_str()), (200, Some("viewer")));
    let (s, v) = control(&gax, guest, &room, json!({"action": "play", "version": 3}));
    assert_eq!((s, v["error"].as_str()), (403, Some("not_controller")));
    let other = create_room(&gax, &host);
    let (s, _) = gax.api("GET", &format!("/api/watch/{other}"), Some(guest), None);
    assert_eq!(s, 403, "a link is for one room");
    assert_eq!(version(&gax, &host, &room), 3);

    // A file source: only a file the creator may read; its members (and link holders) play
    // it from a signed link that needs no header.
    let (s, _, body) = common::http_request(
        gax.http,
        "POST",
        "/api/files?name=notes.txt",
        Some(&host),
        Some("text/plain"),
        b"not really a movie",
    )
    .unwrap();
    assert_eq!(s, 201, "{body}");
    let file: Value = serde_json::from_str(&body).unwrap();
    let file_id = file["id"].as_str().unwrap();
    let (s, v) = create(
        Some(&ann),
        json!({"title": "mine now", "source": {"file": file_id}}),
    );
    assert_eq!(
        (s, v["error"].as_str()),
        (403, Some("file_forbidden")),
        "{v}"
    );
    let (s, v) = create(
        Some(&host),
        json!({"title": "t", "source": {"file": "f_does-not-exist"}}),
    );
    assert_eq!(
        (s, v["error"].as_str()),
        (404, Some("file_not_found")),
        "{v}"
    );
    let (s, v) = create(
        Some(&host),
        json!({"title": "From a file", "source": {"file": file_id}}),
    );
    assert_eq!(s, 201, "{v}");
    let file_room = v["room"]["id"].as_str().unwrap().to_owned();
    let (s, _) = gax.api("GET", &format!("/api/files/{file_id}"), Some(&ann), None);
    assert_eq!(s, 403, "not yet a member of the file's room");
    gax.api(
        "POST",
        &format!("/api/watch/{file_room}/members"),
        Some(&host),
        Some(json!({"user": ann_id})),
    );
    let (s, _, _) = common::http_request(
        gax.http,
        "GET",
        &format!("/api/files/{file_id}"),
        Some(&ann),
        None,
        b"",
    )
    .unwrap();
    assert_eq!(s, 200, "a member of the file's room reads it");
    let (_, link) = gax.api(
        "POST",
        &format!("/api/watch/{file_room}/link"),
        Some(&host),
        None,
    );
    let (_, view) = gax.api(
        "GET",
        &format!("/api/watch/{file_room}"),
        Some(link["token"].as_str().unwrap()),
        None,
    );
    let src = view["source_url"].as_str().unwrap();
    assert!(
        src.starts_with(&format!("/api/files/{file_id}?link=")),
        "{src}"
    );
    let (s, _, bytes) = gax.get(src);
    assert_eq!(
        (s, bytes.as_str()),
        (200, "not really a movie"),
        "the guest plays it"
    );

    // The page and the API description.
    let (s, _, html) = gax.get(&format!("/watch/{room}"));
    assert_eq!(s, 200);
    assert!(html.contains("<video") && html.contains("/watch.js"));
    let (s, _, js) = gax.get("/watch.js");
    assert!(s == 200 && js.contains("gaxWatch"));
    let (_, doc) = gax.api("GET", "/api/openapi.json", None, None);
    for p in [
        "/api/watch",
        "/api/watch/{room}",
        "/api/watch/{room}/members",
        "/api/watch/{room}/link",
        "/api/watch/{room}/control",
    ] {
        assert!(doc["paths"].get(p).is_some(), "OpenAPI lacks {p}");
    }
}

/// Opens a watch session; returns it with its welcome.
async fn watch(gax: &Gax, room: &str, token: &str) -> (Ws, Value) {
    let mut ws = connect(gax).await;
    put(
        &mut ws,
        json!({"type": "watch", "version": 1, "room": room, "token": token, "name": "Guest G"}),
    )
    .await;
    let welcome = next(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome)
}

/// Sends a control and expects an error with `code`, carrying the unchanged state.
async fn refused(ws: &mut Ws, msg: Value, code: &str, version: u64) {
    put(ws, msg.clone()).await;
    let (_, e) = until(ws, "error").await;
    assert_eq!(e["code"], code, "{msg}: {e}");
    assert_eq!(e["state"]["version"], version, "{msg}: state unchanged");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ws_session_syncs_clocks_relays_and_refuses_bad_input() {
    let gax = Gax::start(&[]);
    let (host, _) = register(&gax, "host");
    let (ann, ann_id) = register(&gax, "ann");
    let (stranger, _) = register(&gax, "stranger");
    let room = create_room(&gax, &host);
    gax.api(
        "POST",
        &format!("/api/watch/{room}/members"),
        Some(&host),
        Some(json!({"user": ann_id})),
    );
    let (_, link) = gax.api(
        "POST",
        &format!("/api/watch/{room}/link"),
        Some(&host),
        None,
    );
    let guest = link["token"].as_str().unwrap().to_owned();
    let call = gax.token(&["--room", "r", "--identity", "x"]);

    // Refused sessions close with a code.
    let cases = [
        (json!({"type": "watch", "version": 1, "room": room}), 4401),
        (
            json!({"type": "watch", "version": 1, "room": room, "token": "garbage"}),
            4401,
        ),
        (
            json!({"type": "watch", "version": 2, "room": room, "token": host}),
            4426,
        ),
        (
            json!({"type": "watch", "version": 1, "room": "0123456789abcdef", "token": host}),
            4404,
        ),
        (
            json!({"type": "watch", "version": 1, "room": "nope", "token": host}),
            4404,
        ),
        (
            json!({"type": "watch", "version": 1, "room": room, "token": stranger}),
            4403,
        ),
        (
            json!({"type": "watch", "version": 1, "room": room, "token": call}),
            4403,
        ),
        (json!({"type": "watch", "version": 1, "token": host}), 4400),
        (
            json!({"type": "watch", "version": 1, "room": room, "token": host, "x": 1}),
            4400,
        ),
    ];
    for (first, code) in cases {
        let mut ws = connect(&gax).await;
        put(&mut ws, first.clone()).await;
        assert_eq!(closed(&mut ws).await, Some(code), "{first}");
    }

    let (mut h, welcome) = watch(&gax, &room, &host).await;
    assert_eq!(welcome["you"]["role"], "host");
    assert_eq!(welcome["state"]["version"], 1);
    assert_eq!(welcome["source_url"], "https://example.com/m.webm");
    assert_eq!(welcome["call"]["room"], format!("watch:{room}"));
    assert_eq!(welcome["members"].as_array().unwrap().len(), 2);
    let (mut a, welcome) = watch(&gax, &room, &ann).await;
    assert_eq!(welcome["you"]["role"], "viewer");
    let (mut g, welcome) = watch(&gax, &room, &guest).await;
    assert_eq!(
        (
            welcome["you"]["role"].as_str(),
            welcome["you"]["name"].as_str()
        ),
        (Some("viewer"), Some("Guest G"))
    );
    // The guest's call token (1 h, renewed by every welcome) is no share link: presenting it
    // as one would let a link live forever.
    let guest_call = welcome["call"]["token"].as_str().unwrap().to_owned();
    let (s, v) = gax.api(
        "GET",
        &format!("/api/watch/{room}"),
        Some(&guest_call),
        None,
    );
    assert_eq!((s, v["error"].as_str()), (403, Some("not_member")), "{v}");
    let mut renewed = connect(&gax).await;
    put(
        &mut renewed,
        json!({"type": "watch", "version": 1, "room": room, "token": guest_call}),
    )
    .await;
    assert_eq!(closed(&mut renewed).await, Some(4403));
    // A link expires when it says: its session closes then, and it opens nothing after.
    let (s, short) = gax.api(
        "POST",
        &format!("/api/watch/{room}/link"),
        Some(&host),
        Some(json!({"ttl_secs": 2})),
    );
    assert_eq!(s, 200, "{short}");
    let short = short["token"].as_str().unwrap().to_owned();
    let (mut brief, welcome) = watch(&gax, &room, &short).await;
    assert_eq!(welcome["you"]["role"], "viewer");
    let (_, err) = until(&mut brief, "error").await;
    assert_eq!(err["code"], "token_expired", "{err}");
    assert_eq!(closed(&mut brief).await, Some(4401));
    let mut late = connect(&gax).await;
    put(
        &mut late,
        json!({"type": "watch", "version": 1, "room": room, "token": short}),
    )
    .await;
    assert_eq!(closed(&mut late).await, Some(4401));
    for bad in [
        json!({"ttl_secs": 0}),
        json!({"ttl_secs": 604_801}),
        json!({"x": 1}),
    ] {
        let (s, _) = gax.api(
            "POST",
            &format!("/api/watch/{room}/link"),
            Some(&host),
            Some(bad.clone()),
        );
        assert_eq!(s, 400, "{bad}");
    }

    // Clock sync: the reply echoes t0 and carries the server clock.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0;
    put(&mut g, json!({"type": "time", "t0": 12.5})).await;
    let (_, t) = until(&mut g, "time").await;
    assert_eq!(t["t0"], 12.5);
    let server = t["server"].as_f64().unwrap();
    assert!(
        (server - before).abs() < 1000.0,
        "server clock {server} vs {before}"
    );

    // Refusals on the session: an error with the state as it is; the session goes on.
    refused(
        &mut a,
        json!({"type": "control", "action": "play", "version": 1}),
        "not_controller",
        1,
    )
    .await;
    refused(
        &mut g,
        json!({"type": "control", "action": "play", "version": 1}),
        "not_controller",
        1,
    )
    .await;
    refused(
        &mut h,
        json!({"type": "control", "action": "play", "version": 4}),
        "stale_version",
        1,
    )
    .await;
    refused(
        &mut h,
        json!({"type": "control", "action": "seek", "version": 1, "position": -1}),
        "seek_out_of_range",
        1,
    )
    .await;
    refused(
        &mut h,
        json!({"type": "control", "action": "seek", "version": 1, "position": 31}),
        "seek_out_of_range",
        1,
    )
    .await;
    refused(
        &mut h,
        json!({"type": "control", "action": "rate", "version": 1, "rate": 8}),
        "bad_rate",
        1,
    )
    .await;
    refused(
        &mut g,
        json!({"type": "grant", "user": ann_id, "role": "controller"}),
        "not_host",
        1,
    )
    .await;
    refused(
        &mut g,
        json!({"type": "chat", "text": "   "}),
        "invalid_input",
        1,
    )
    .await;
    refused(
        &mut g,
        json!({"type": "reaction", "emoji": "x".repeat(40)}),
        "invalid_input",
        1,
    )
    .await;

    // The host plays: every viewer gets the new state, scheduled ahead.
    put(
        &mut h,
        json!({"type": "control", "action": "play", "version": 1}),
    )
    .await;
    for ws in [&mut h, &mut a, &mut g] {
        let (_, s) = until(ws, "state").await;
        assert_eq!(
            (
                s["state"]["version"].as_u64(),
                s["state"]["paused"].as_bool()
            ),
            (Some(2), Some(false))
        );
    }
    // A second control against the same version loses.
    refused(
        &mut h,
        json!({"type": "control", "action": "pause", "version": 1}),
        "stale_version",
        2,
    )
    .await;

    // Chat, reactions and buffering reports reach the room.
    put(&mut g, json!({"type": "chat", "text": "hello room"})).await;
    let (_, c) = until(&mut h, "chat").await;
    assert_eq!(
        (c["text"].as_str(), c["name"].as_str()),
        (Some("hello room"), Some("Guest G"))
    );
    put(&mut a, json!({"type": "reaction", "emoji": "👍"})).await;
    let (_, r) = until(&mut g, "reaction").await;
    assert_eq!(
        (r["emoji"].as_str(), r["name"].as_str()),
        (Some("👍"), Some("ann"))
    );
    put(&mut g, json!({"type": "buffering", "buffering": true})).await;
    let (_, b) = until(&mut h, "buffering").await;
    assert_eq!(b["buffering"], true);

    // Handing control over the session: everyone sees the members change; ann then controls.
    put(
        &mut h,
        json!({"type": "grant", "user": ann_id, "role": "controller"}),
    )
    .await;
    let (_, m) = until(&mut a, "members").await;
    assert!(m["members"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["user"] == ann_id && x["role"] == "controller"));
    put(
        &mut a,
        json!({"type": "control", "action": "seek", "version": 2, "position": 12.0}),
    )
    .await;
    let (_, s) = until(&mut g, "state").await;
    assert_eq!(
        (
            s["state"]["version"].as_u64(),
            s["state"]["position"].as_f64()
        ),
        (Some(3), Some(12.0))
    );
    put(&mut a, json!({"type": "ping"})).await;
    until(&mut a, "pong").await;

    // A flood of reactions is cut off with `rate_limited`; the session goes on.
    let (mut flood, _) = watch(&gax, &room, &guest).await;
    for _ in 0..40 {
        put(&mut flood, json!({"type": "reaction", "emoji": "🎉"})).await;
    }
    let (_, e) = until(&mut flood, "error").await;
    assert_eq!(e["code"], "rate_limited", "{e}");
    put(&mut flood, json!({"type": "ping"})).await;
    until(&mut flood, "pong").await;

    let (_, _, metrics) = gax.get("/metrics");
    assert!(metrics.contains("gax_watch_viewers 4"), "{metrics}");

    // Garbage and a second `watch` close the session.
    put(&mut g, json!({"type": "watch", "version": 1, "room": room})).await;
    assert_eq!(closed(&mut g).await, Some(4400));
    put(&mut a, json!({"type": "control", "action": "play"})).await;
    assert_eq!(closed(&mut a).await, Some(4400));
    assert_eq!(version(&gax, &host, &room), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_keep_one_room_consistent_through_redis() {
    let Some(cluster) = common::cluster::Cluster::new("watch_t").await else {
        return;
    };
    let n1 = cluster.node();
    let n2 = cluster.node();
    let (host, _) = register(&n1, "host");
    let (ann, ann_id) = register(&n2, "ann");
    let room = create_room(&n1, &host);
    let (s, _) = n2.api(
        "POST",
        &format!("/api/watch/{room}/members"),
        Some(&host),
        Some(json!({"user": ann_id, "role": "controller"})),
    );
    assert_eq!(s, 204);

    // A viewer on node 2 hears a control sent to node 1, and the other way round.
    let (mut v2, _) = watch(&n2, &room, &ann).await;
    let (mut h1, _) = watch(&n1, &room, &host).await;
    put(
        &mut h1,
        json!({"type": "control", "action": "play", "version": 1}),
    )
    .await;
    let (_, own) = until(&mut h1, "state").await;
    assert_eq!(own["state"]["version"], 2);
    let (_, s) = until(&mut v2, "state").await;
    assert_eq!(
        (
            s["state"]["version"].as_u64(),
            s["state"]["paused"].as_bool()
        ),
        (Some(2), Some(false))
    );
    let (s, v) = control(
        &n2,
        &ann,
        &room,
        json!({"action": "seek", "version": 2, "position": 7.5}),
    );
    assert_eq!(s, 200, "{v}");
    let (_, s) = until(&mut h1, "state").await;
    assert_eq!(
        (
            s["state"]["version"].as_u64(),
            s["state"]["position"].as_f64()
        ),
        (Some(3), Some(7.5))
    );
    // Both nodes read the same state.
    assert_eq!(version(&n1, &host, &room), 3);
    assert_eq!(version(&n2, &ann, &room), 3);

    // The same version sent to both nodes at once: exactly one wins, the other is stale.
    for round in 0..5u64 {
        let v = 3 + round;
        let (r1, r2) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                control(
                    &n1,
                    &host,
                    &room,
                    json!({"action": "rate", "version": v, "rate": 1.5}),
                )
            });
            let b = s.spawn(|| {
                control(
                    &n2,
                    &ann,
                    &room,
                    json!({"action": "rate", "version": v, "rate": 0.5}),
                )
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        let mut statuses = [r1.0, r2.0];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}: {r1:?} {r2:?}");
        assert_eq!(version(&n1, &host, &room), v + 1);
        assert_eq!(version(&n2, &ann, &room), v + 1);
    }
    drop((v2, h1));
    drop((n1, n2));
    cluster.cleanup().await;
}

#[test]
fn two_browsers_play_in_sync_and_a_late_joiner_catches_up() {
    let _one_at_a_time = common::browser::BROWSER
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if common::browser::e2e_dir().is_none() {
        return;
    }
    let gax = Gax::start(&[]);
    let (host, _) = register(&gax, "host");
    let (ann, _) = register(&gax, "ann");
    // A test pattern, VP8 in WebM, a keyframe every 10 frames (quick, exact seeks).
    let media = tempfile::tempdir().unwrap();
    let video = media.path().join("party.webm");
    common::browser::ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=40",
            "-c:v",
            "libvpx",
            "-b:v",
            "400k",
            "-g",
            "10",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
        ],
        &video,
    );
    common::browser::run_scenario(
        "watch.mjs",
        &[
            ("GAX_URL", format!("http://{}", gax.http)),
            ("GAX_VIDEO", video.display().to_string()),
            ("GAX_VIDEO_SECONDS", "40".into()),
            ("GAX_TOKENS", json!({"host": host, "ann": ann}).to_string()),
        ],
    );
}
