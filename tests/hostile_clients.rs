//! Hostile and broken clients against a real `gax serve` (issue 14): each does what an attacker
//! or a stuck browser would, and the test shows the limit that stops it and that everyone
//! else carries on.

mod common;

use std::time::{Duration, Instant};

use common::ws::{self, Ws};
use common::Gax;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A `/ws` connection whose receive buffer is small, so a client that stops reading fills the
/// server's side quickly (the kernel's buffers are not what this test measures).
async fn connect_small_buffer(gax: &Gax) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(gax.http).await.expect("connect");
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    tokio_tungstenite::client_async(gax.ws_url(), stream)
        .await
        .expect("upgrade")
        .0
}

async fn join(ws: &mut Ws, token: &str) -> serde_json::Value {
    let offer = common::sdp::publisher();
    ws::put(
        ws,
        json!({"type": "join", "version": 1, "token": token, "sdp": offer}),
    )
    .await;
    ws::until(ws, "joined").await.1
}

/// `gax_ws_closed_total{code="4429"}`.
fn too_slow_closes(gax: &Gax) -> u64 {
    let metrics = gax.get("/metrics").2;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gax_ws_closed_total{code=\"4429\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Issue 14, item 1: participant X toggles mute in a loop while participant Y never reads its
/// socket. Y's queue of server events stops at its limit (256), Y is dropped and counted as
/// 4429 once its socket has been stuck for the send timeout (10 s), X's call goes on, and the
/// room no longer lists Y.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_member_that_stops_reading_is_dropped_and_the_room_goes_on() {
    // Without the per-session message quota (it would stop X's flood first: that limit is
    // shown below): this test shows the queue limit on its own.
    let gax = Gax::start(&["--media-timeout", "300s", "--rate-limit", "ws_messages=off"]);
    let token = |who: &str| gax.token(&["--room", "flood", "--identity", who]);
    let mut x = ws::connect(&gax).await;
    join(&mut x, &token("x")).await;
    let mut y = connect_small_buffer(&gax).await;
    join(&mut y, &token("y")).await;
    ws::until(&mut x, "participant_joined").await;

    // From here on Y reads nothing. 100,000 toggles are ~7.5 MB of events for Y: far more than
    // its socket buffers and its queue hold.
    const TOGGLES: usize = 100_000;
    for i in 0..TOGGLES {
        let mute = json!({"type": "mute", "kind": "audio", "muted": i % 2 == 0});
        x.feed(Message::Text(mute.to_string().into()))
            .await
            .expect("send");
        if i % 1000 == 999 {
            x.flush().await.expect("flush");
        }
    }
    x.flush().await.expect("flush");

    // Bounded wait: the 10 s send timeout plus the time to work through the flood.
    let deadline = Instant::now() + Duration::from_secs(90);
    while too_slow_closes(&gax) == 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled member was not dropped within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // X was never held up: its call still answers.
    ws::put(&mut x, json!({"type": "ping"})).await;
    let (before, _) = ws::until(&mut x, "pong").await;
    assert!(
        before.iter().any(|m| m["type"] == "participant_left"),
        "X is told Y left: {before:?}"
    );

    // Y's connection ends after what was already in its buffers, with far fewer events than
    // were meant for it: the rest were never queued.
    let mut heard = 0;
    let end = loop {
        let v = ws::next(&mut y).await;
        if let Some(code) = v.get("closed") {
            break code.clone();
        }
        if v["type"] == "mute" {
            heard += 1;
        }
    };
    assert!(
        end.is_null() || end == 4429,
        "Y's connection is dropped (or closed 4429), not closed normally: {end}"
    );
    assert!(
        heard < TOGGLES,
        "Y heard {heard} of {TOGGLES} toggles: its queue was bounded"
    );

    // The room's directory let Y go: a newcomer sees only X.
    let mut z = ws::connect(&gax).await;
    let joined = join(&mut z, &token("z")).await;
    let others: Vec<_> = joined["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(others, ["x"], "only X is left in the room");
    assert!(gax.terminate(), "the server shuts down cleanly");
}

/// Issue 14, item 11: garbage SDP is refused with a message that says what is wrong and
/// shows nothing of the parser (whose debug output has heap addresses), on `/ws` and WHIP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_of_garbage_sdp_show_no_internals() {
    let gax = Gax::start(&[]);
    let token = gax.token(&["--room", "r", "--identity", "mallory"]);
    let internals = |msg: &str| msg.contains("0x") || msg.contains("Pointer");
    for sdp in [
        "this is not sdp",
        "v=0\r\nbroken",
        "v=0\r\nm=video garbage\r\n",
        "v=x\r\n",
    ] {
        let mut ws = ws::connect(&gax).await;
        ws::put(
            &mut ws,
            json!({"type": "join", "version": 1, "token": token, "sdp": sdp}),
        )
        .await;
        let err = ws::next(&mut ws).await;
        assert_eq!(err["code"], "bad_sdp", "{sdp:?}: {err}");
        let msg = err["message"].as_str().unwrap();
        assert!(!internals(msg), "/ws {sdp:?}: {msg}");
        assert_eq!(ws::closed(&mut ws).await, Some(4415));

        let (status, _, body) = common::http_request(
            gax.http,
            "POST",
            "/whip/r",
            Some(&token),
            Some("application/sdp"),
            sdp.as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 400, "WHIP {sdp:?}: {body}");
        assert!(!internals(&body), "WHIP {sdp:?}: {body}");
    }
}

/// Opens `/ws` by hand (no WebSocket library, so the test can send frames no library would)
/// and returns the stream after the 101.
fn raw_upgrade(gax: &Gax) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(gax.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        gax.http
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads server frames until a close frame: its code, or `None` when the TCP connection ends
/// without one.
fn close_code(s: &mut std::net::TcpStream) -> Option<u16> {
    use std::io::Read;
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).ok()?;
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).ok()?;
            len = u64::from(u16::from_be_bytes(l));
        } else if len == 127 {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).ok()?;
            len = u64::from_be_bytes(l);
        }
        let mut payload = vec![0u8; usize::try_from(len).ok()?];
        s.read_exact(&mut payload).ok()?;
        if h[0] & 0x0f == 0x8 {
            return Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
        }
    }
}

/// One client frame: `first` is FIN/RSV/opcode, masked with a fixed key when `masked`.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut f = vec![first, payload.len() as u8 | if masked { 0x80 } else { 0 }];
    if masked {
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// Frames that break RFC 6455 (a text frame that is not UTF-8, reserved bits, an unmasked client
/// frame, an unknown opcode) are answered with a close frame and its code (1007, 1002), not by
/// dropping the TCP connection; the server goes on.
#[test]
fn broken_websocket_frames_get_a_close_code() {
    use std::io::Write;
    let gax = Gax::start(&[]);
    let cases: [(&str, Vec<u8>, u16); 4] = [
        (
            "invalid UTF-8",
            frame(0x81, b"{\"a\":\"\xff\xfe\"}", true),
            1007,
        ),
        ("RSV1 set", frame(0xC1, b"{}", true), 1002),
        ("unmasked", frame(0x81, b"{}", false), 1002),
        ("unknown opcode 0x3", frame(0x83, b"{}", true), 1002),
    ];
    for (what, bytes, want) in cases {
        let mut s = raw_upgrade(&gax);
        s.write_all(&bytes).unwrap();
        assert_eq!(close_code(&mut s), Some(want), "{what}");
    }
    assert_eq!(gax.get("/healthz").0, 200);
}

/// `/metrics` needs no token, so by default it shows aggregates only: no room names, no
/// participant ids (an unbounded label set, and a list of who is in which call). An operator's
/// admin token (`gax token --admin`) also gets the per-session families.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_rooms_and_participants_to_an_admin_only() {
    let gax = Gax::start(&[]);
    let room = "board-meeting-7f3a";
    let token = gax.token(&["--room", room, "--identity", "ceo"]);
    let mut ws = ws::connect(&gax).await;
    join(&mut ws, &token).await;
    let admin = gax.token(&["--admin", "--identity", "ops"]);
    let read = |bearer: Option<&str>| {
        common::http_request(gax.http, "GET", "/metrics", bearer, None, b"")
            .unwrap()
            .2
    };
    // Wait until the session shows in the admin's view (the join is in place by now).
    let detailed = read(Some(&admin));
    assert!(
        detailed.contains(&format!("room=\"{room}\"")),
        "the admin sees the session: {detailed}"
    );
    for (who, bearer) in [("anyone", None), ("a call token", Some(token.as_str()))] {
        let text = read(bearer);
        assert!(text.contains("gax_media_packets_in_total"), "{who}: {text}");
        assert!(!text.contains(room), "{who} sees the room name");
        assert!(!text.contains("participant="), "{who} sees participant ids");
        assert!(
            !text.contains("gax_session_"),
            "{who} sees per-session families"
        );
    }
    ws.close(None).await.ok();
}

/// A connection from `src` (any 127.x address reaches the server on loopback) that has sent
/// nothing yet.
fn connect_from(gax: &Gax, src: [u8; 4]) -> std::net::TcpStream {
    // std cannot bind before connecting, tokio can; on a thread of its own, so this also works
    // from inside an async test.
    let to = gax.http;
    let stream = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket
                .bind(std::net::SocketAddr::from((src, 0)))
                .expect("bind a loopback source address");
            let stream = socket.connect(to).await.expect("connect");
            stream.into_std().unwrap()
        })
    })
    .join()
    .unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// One `GET path` on `s` (Connection: close): (status, head, body).
fn get_on(mut s: std::net::TcpStream, path: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: gax\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    common::split_reply(&String::from_utf8_lossy(&buf))
}

/// A request line dripped slowly, and a connection that sends nothing, are both closed at the
/// header timeout (here 1 s; 10 s by default) instead of holding a descriptor for ever.
#[test]
fn slow_and_silent_http_connections_are_cut_at_the_header_timeout() {
    use std::io::{Read, Write};
    let gax = Gax::start(&["--http-header-timeout", "1s"]);
    let mut slow = connect_from(&gax, [127, 0, 0, 1]);
    slow.write_all(b"GET /hea").unwrap();
    let mut silent = connect_from(&gax, [127, 0, 0, 1]);
    for (what, s) in [("slow", &mut slow), ("silent", &mut silent)] {
        // Without a timeout this read would wait for the test's own 10 s read timeout (an error).
        let mut rest = Vec::new();
        let r = s.read_to_end(&mut rest);
        assert!(
            r.is_ok(),
            "{what}: the server kept the connection open: {r:?}"
        );
    }
    assert_eq!(gax.get("/healthz").0, 200);
}

/// Past `--max-connections-per-ip` an address gets 429 `too_many_connections`, past
/// `--max-connections` everyone gets 503 `server_full` (JSON, `Retry-After`), `/healthz` keeps
/// answering 200 all along, and once connections close, everything is served again.
#[test]
fn connections_over_the_caps_are_refused_and_healthz_still_answers() {
    let gax = Gax::start(&[
        "--max-connections",
        "30",
        "--max-connections-per-ip",
        "20",
        "--http-header-timeout",
        "60s",
    ]);
    let from = |src: [u8; 4], path: &str| get_on(connect_from(&gax, src), path);
    // Metrics are read from an address of their own, so they never count against another's cap.
    let metrics = || from([127, 0, 0, 9], "/metrics").2;
    // The start-up probes have closed: only this test's connections count from here (the
    // reading itself is one; give its place a moment to be freed after it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while common::metric_sum(&metrics(), "gax_http_connections") > 1 {
        assert!(Instant::now() < deadline, "probes still open");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut held: Vec<_> = (0..20)
        .map(|_| connect_from(&gax, [127, 0, 0, 1]))
        .collect();
    // Connections are admitted in the accept loop, in order: wait until all 20 count.
    std::thread::sleep(Duration::from_millis(300));

    let (status, head, body) = from([127, 0, 0, 1], "/api/anything");
    assert_eq!(status, 429, "{head}\n{body}");
    assert!(body.contains("\"too_many_connections\""), "{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert_eq!(from([127, 0, 0, 1], "/healthz").0, 200, "per-address cap");
    assert_eq!(from([127, 0, 0, 2], "/healthz").0, 200);

    held.extend((0..10).map(|_| connect_from(&gax, [127, 0, 0, 2])));
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, body) = from([127, 0, 0, 3], "/api/anything");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"server_full\""), "{body}");
    let (status, _, body) = from([127, 0, 0, 3], "/healthz");
    assert_eq!(status, 200, "the server is full, and alive: {body}");

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, body) = from([127, 0, 0, 3], "/api/anything");
        if status == 404 {
            assert!(body.contains("\"not_found\""), "the real router: {body}");
            break;
        }
        assert!(Instant::now() < deadline, "still refused: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = metrics();
    let refused = |reason: &str| {
        m.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "gax_http_connections_refused_total{{reason=\"{reason}\"}} "
                ))
            })
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(refused("per_ip") >= 2, "{m}");
    assert!(refused("server_full") >= 2, "{m}");
}

/// The soft open-files limit a shell hands a process is often far below the hard one: the
/// server raises it to the hard limit at start (started here under `ulimit -S -n 256`).
#[test]
fn the_open_files_limit_is_raised_at_start() {
    let read_limits = |pid: u32| -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        let mut n = line.split_whitespace().skip(3);
        Some((n.next()?.parse().ok()?, n.next()?.parse().ok()?))
    };
    let Some((_, hard)) = read_limits(std::process::id()) else {
        eprintln!("note: no /proc/<pid>/limits here; nothing to check");
        return;
    };
    if hard <= 256 {
        eprintln!("note: the hard open-files limit is {hard}; nothing to raise");
        return;
    }
    let dir = Gax::fresh_data_dir();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -S -n 256 && exec \"$0\" \"$@\"")
        .arg(common::gax_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--media-port", "0"])
        .arg("--data-dir")
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn gax");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = None;
    while Instant::now() < deadline {
        seen = read_limits(child.id());
        if seen.is_some_and(|(soft, _)| soft > 256) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        seen,
        Some((hard, hard)),
        "soft limit raised to the hard one"
    );
}

/// One HTTP request from `src` with a JSON (or raw) body and an optional bearer token:
/// (status, head, body).
fn request_from(
    gax: &Gax,
    src: [u8; 4],
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = connect_from(gax, src);
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: gax\r\nConnection: close\r\n{auth}\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    common::split_reply(&String::from_utf8_lossy(&buf))
}

/// A 429 with `Retry-After` (whole seconds, at least 1) and the JSON `rate_limited` error.
fn assert_rate_limited(what: &str, (status, head, body): (u16, String, String)) {
    assert_eq!(status, 429, "{what}: {head}\n{body}");
    let retry = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("retry-after:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry.is_some_and(|s| s >= 1),
        "{what}: no Retry-After: {head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(json["error"], "rate_limited", "{what}: {json}");
    assert!(json["message"].is_string(), "{what}: {json}");
}

/// Sign-ups per address, message sends per user (REST and WebSocket together), uploads per
/// user and WHIP sessions per token subject have quotas (`--rate-limit KIND=N/PERIOD`): past
/// one, a 429 with `Retry-After` and a JSON body (a `rate_limited` error on the WebSocket),
/// nothing stored, and others are not affected.
#[tokio::test(flavor = "multi_thread")]
async fn quotas_answer_429_with_retry_after_and_spare_everyone_else() {
    let gax = Gax::start(&[
        "--rate-limit",
        "signups=2/1h",
        "--rate-limit",
        "sends=3/1h,uploads=1/1h",
        "--rate-limit",
        "whip=1/1h",
    ]);
    let json = "application/json";
    let signup = |src: [u8; 4], name: &str| {
        let body = json!({"username": name, "password": format!("password-{name}")});
        request_from(
            &gax,
            src,
            "POST",
            "/api/auth/register",
            None,
            json,
            body.to_string().as_bytes(),
        )
    };
    let (s, _, alice) = signup([127, 0, 0, 1], "alice");
    assert_eq!(s, 201, "{alice}");
    let alice: serde_json::Value = serde_json::from_str(&alice).unwrap();
    let alice_token = alice["access_token"].as_str().unwrap().to_owned();
    assert_eq!(signup([127, 0, 0, 1], "bob").0, 201);
    assert_rate_limited(
        "a third sign-up from one address",
        signup([127, 0, 0, 1], "carl"),
    );
    assert_eq!(
        signup([127, 0, 0, 2], "carl").0,
        201,
        "another address signs up"
    );
    let (s, body) = gax.api(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "carl", "password": "password-carl"})),
    );
    assert_eq!(s, 200, "carl exists: {body}");

    // Sends: 3 per user an hour, REST and WebSocket together.
    let (s, chat) = gax.api(
        "POST",
        "/api/chats",
        Some(&alice_token),
        Some(json!({"kind": "group", "title": "quota"})),
    );
    assert_eq!(s, 201, "{chat}");
    let path = format!("/api/chats/{}/messages", chat["id"]);
    let send_rest = |text: &str| {
        let body = json!({ "text": text }).to_string();
        request_from(
            &gax,
            [127, 0, 0, 1],
            "POST",
            &path,
            Some(&alice_token),
            json,
            body.as_bytes(),
        )
    };
    assert_eq!(send_rest("one").0, 201);
    assert_eq!(send_rest("two").0, 201);
    let mut ws = ws::connect(&gax).await;
    ws::put(
        &mut ws,
        json!({"type": "hello", "version": 1, "token": alice_token}),
    )
    .await;
    ws::until(&mut ws, "synced").await;
    ws::put(
        &mut ws,
        json!({"type": "send", "chat": chat["id"], "text": "three", "client_key": "k3"}),
    )
    .await;
    ws::until(&mut ws, "ack").await;
    ws::put(
        &mut ws,
        json!({"type": "send", "chat": chat["id"], "text": "four", "client_key": "k4"}),
    )
    .await;
    let (_, err) = ws::until(&mut ws, "error").await;
    assert_eq!(
        (err["code"].as_str(), err["client_key"].as_str()),
        (Some("rate_limited"), Some("k4")),
        "{err}"
    );
    assert_rate_limited("a fourth message over REST", send_rest("five"));
    let (_, history) = gax.api("GET", &path, Some(&alice_token), None);
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(3),
        "nothing over the quota stored: {history}"
    );

    // Uploads: 1 per user an hour.
    let upload = |token: &str| {
        request_from(
            &gax,
            [127, 0, 0, 1],
            "POST",
            "/api/files?name=a.txt",
            Some(token),
            "application/octet-stream",
            b"hello",
        )
    };
    assert_eq!(upload(&alice_token).0, 201);
    assert_rate_limited("a second upload", upload(&alice_token));
    let carl = gax.api(
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"username": "carl", "password": "password-carl"})),
    );
    assert_eq!(
        upload(carl.1["access_token"].as_str().unwrap()).0,
        201,
        "another user uploads"
    );

    // WHIP: 1 session start per token subject an hour (refused before the offer is read).
    let whip = gax.token(&["--room", "stage", "--identity", "obs"]);
    let offer = common::sdp::publisher();
    let start = |token: &str| {
        request_from(
            &gax,
            [127, 0, 0, 1],
            "POST",
            "/whip/stage",
            Some(token),
            "application/sdp",
            offer.as_bytes(),
        )
    };
    assert_eq!(start(&whip).0, 201);
    assert_rate_limited("a second WHIP session", start(&whip));
    let other = gax.token(&["--room", "stage", "--identity", "obs2"]);
    assert_eq!(start(&other).0, 201, "another identity publishes");
}

/// Issue 14, item 3: 20,000 `typing` frames from one user. The flood is cut at the session's
/// message budget (a `rate_limited` error, the rest dropped and counted) and typing's own
/// budget; the member beside it hears a handful of typing events, a bystander in another chat
/// is not disconnected and chats on, the flooder itself stays connected and may send again
/// once the budget refills, and search finds what was sent after the flood.
#[tokio::test(flavor = "multi_thread")]
async fn a_typing_flood_reaches_nobody_and_disconnects_no_one() {
    let gax = Gax::start(&[]);
    let (alice, _) = common::register(&gax, "alice");
    let (bob, bob_id) = common::register(&gax, "bob");
    let (carol, _) = common::register(&gax, "carol");
    let (dave, dave_id) = common::register(&gax, "dave");
    let group = |owner: &str, members: &[i64]| {
        let (s, chat) = gax.api(
            "POST",
            "/api/chats",
            Some(owner),
            Some(json!({"kind": "group", "title": "t", "members": members})),
        );
        assert_eq!(s, 201, "{chat}");
        chat["id"].as_i64().unwrap()
    };
    let flooded = group(&alice, &[bob_id]);
    let elsewhere = group(&carol, &[dave_id]);
    let hello = |token: String| {
        let gax = &gax;
        async move {
            let mut ws = ws::connect(gax).await;
            ws::put(
                &mut ws,
                json!({"type": "hello", "version": 1, "token": token}),
            )
            .await;
            ws::until(&mut ws, "synced").await;
            ws
        }
    };
    let mut a = hello(alice.clone()).await;
    let mut b = hello(bob).await;
    let mut c = hello(carol).await;
    let mut d = hello(dave).await;

    let typing = json!({"type": "typing", "chat": flooded}).to_string();
    for _ in 0..20_000 {
        a.feed(Message::Text(typing.clone().into())).await.unwrap();
    }
    a.flush().await.unwrap();
    let (_, err) = ws::until(&mut a, "error").await;
    assert_eq!(err["code"], "rate_limited", "{err}");

    // The bystanders chat on.
    ws::put(
        &mut c,
        json!({"type": "send", "chat": elsewhere, "text": "still here", "client_key": "c1"}),
    )
    .await;
    ws::until(&mut c, "ack").await;
    let (_, got) = ws::until(&mut d, "message").await;
    assert_eq!(got["message"]["text"], "still here");

    // Bob heard a handful of typing events, not thousands, and nothing else went wrong.
    ws::put(&mut b, json!({"type": "ping"})).await;
    let (before_pong, _) = ws::until(&mut b, "pong").await;
    let heard = before_pong.iter().filter(|m| m["type"] == "typing").count();
    assert!((1..=10).contains(&heard), "bob heard {heard} typing events");

    // Alice is still connected; after a pause her budget has refilled and she may send.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ws::put(&mut a, json!({"type": "send", "chat": flooded, "text": "octopus after the flood", "client_key": "a1"})).await;
    let (_, ack) = ws::until(&mut a, "ack").await;
    assert_eq!(ack["client_key"], "a1");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, hits) = gax.api("GET", "/api/search?q=octopus", Some(&alice), None);
        assert_eq!(s, 200, "{hits}");
        if hits.to_string().contains("octopus after the flood") {
            break;
        }
        assert!(Instant::now() < deadline, "search never found it: {hits}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = gax.get("/metrics").2;
    assert!(
        common::metric_sum(&m, "gax_ws_rate_limited_total") >= 10_000,
        "drops are counted: {m}"
    );
    assert_eq!(
        common::metric_sum(&m, "gax_ws_closed_total"),
        0,
        "nobody was closed: {m}"
    );
}
