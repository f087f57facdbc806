//! Bad input at every door of a real `gax serve`: HTTP routes, the call WebSocket (malformed
//! JSON, unknown types, oversized messages, invalid/expired/other-room/forged tokens, garbage
//! SDP) and garbage datagrams on the media ports. Each gets a clear error, and the server keeps
//! serving.

mod common;

use std::time::Duration;

use common::{metric_sum as counter, Gax};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Sends `frames` on a fresh connection and returns (the error message, the close code).
async fn exchange(
    gax: &Gax,
    bearer: Option<&str>,
    frames: Vec<Message>,
) -> (Option<Value>, Option<u16>) {
    let mut req = gax.ws_url().into_client_request().unwrap();
    if let Some(t) = bearer {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    for f in frames {
        ws.send(f).await.expect("send");
    }
    let mut error = None;
    let mut code = None;
    let read = async {
        while let Some(msg) = ws.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).expect("server sends JSON");
                    if v["type"] == "error" {
                        error = Some(v);
                    }
                }
                Ok(Message::Close(Some(f))) => {
                    code = Some(u16::from(f.code));
                    break;
                }
                Ok(Message::Close(None)) | Err(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("server closes");
    (error, code)
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

fn join(token: &str, room: Option<&str>, sdp: &str) -> Message {
    let mut j = json!({"type": "join", "version": 1, "token": token, "sdp": sdp});
    if let Some(r) = room {
        j["room"] = json!(r);
    }
    text(j)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_bad_input_gets_error_and_close_code() {
    let gax = Gax::start(&[]);
    let good = gax.token(&["--room", "r1", "--identity", "alice"]);

    // Malformed JSON.
    let (err, code) = exchange(&gax, None, vec![Message::Text("{nope".into())]).await;
    assert_eq!(code, Some(4400));
    assert_eq!(err.unwrap()["code"], "bad_message");

    // Unknown message type.
    let (err, code) = exchange(&gax, None, vec![text(json!({"type": "dance"}))]).await;
    assert_eq!(code, Some(4400));
    assert_eq!(err.unwrap()["code"], "unknown_type");

    // Unknown field.
    let (err, code) = exchange(
        &gax,
        None,
        vec![text(
            json!({"type": "join", "version": 1, "token": good, "sdp": "x", "colour": 1}),
        )],
    )
    .await;
    assert_eq!(code, Some(4400));
    assert!(err.unwrap()["message"].as_str().unwrap().contains("colour"));

    // Binary frame.
    let (_, code) = exchange(&gax, None, vec![Message::Binary(vec![1, 2, 3].into())]).await;
    assert_eq!(code, Some(4400));

    // Oversized message.
    let big = "a".repeat(300 * 1024);
    let (err, code) = exchange(&gax, None, vec![join(&good, None, &big)]).await;
    assert_eq!(code, Some(1009));
    assert_eq!(err.unwrap()["code"], "message_too_big");

    // Far beyond the limit: cut by the transport, still a clear 1009.
    let huge = "a".repeat(2 * 1024 * 1024);
    let (_, code) = exchange(&gax, None, vec![join(&good, None, &huge)]).await;
    assert_eq!(code, Some(1009));

    // Something other than join first.
    let (err, code) = exchange(&gax, None, vec![text(json!({"type": "ping"}))]).await;
    assert_eq!(code, Some(4400));
    assert_eq!(err.unwrap()["code"], "join_first");

    // Wrong protocol version.
    let (_, code) = exchange(
        &gax,
        None,
        vec![text(
            json!({"type": "join", "version": 99, "token": good, "sdp": "x"}),
        )],
    )
    .await;
    assert_eq!(code, Some(4426));

    // No token at all.
    let (err, code) = exchange(
        &gax,
        None,
        vec![text(json!({"type": "join", "version": 1, "sdp": "x"}))],
    )
    .await;
    assert_eq!(code, Some(4401));
    assert_eq!(err.unwrap()["code"], "unauthorized");

    // Garbage token.
    let (_, code) = exchange(&gax, None, vec![join("garbage", None, "x")]).await;
    assert_eq!(code, Some(4401));

    // Forged: signed with another secret (another data dir's gax token).
    let other = Gax::start(&[]);
    let forged = other.token(&["--room", "r1", "--identity", "mallory"]);
    drop(other);
    let (err, code) = exchange(&gax, None, vec![join(&forged, None, "x")]).await;
    assert_eq!(code, Some(4401));
    assert!(err.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("signature"));

    // Expired (ttl 1s, wait it out).
    let short = gax.token(&["--room", "r1", "--identity", "bob", "--ttl", "1s"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (err, code) = exchange(&gax, None, vec![join(&short, None, "x")]).await;
    assert_eq!(code, Some(4401));
    assert_eq!(err.unwrap()["code"], "token_expired");

    // A token for another room.
    let (err, code) = exchange(&gax, None, vec![join(&good, Some("r2"), "x")]).await;
    assert_eq!(code, Some(4403));
    assert_eq!(err.unwrap()["code"], "forbidden");

    // A valid token (from `gax token`) passes auth; garbage SDP is refused as such.
    let (err, code) = exchange(&gax, None, vec![join(&good, Some("r1"), "this is not sdp")]).await;
    assert_eq!(code, Some(4415), "auth passed, SDP refused");
    assert_eq!(err.unwrap()["code"], "bad_sdp");

    // The same via Authorization: Bearer instead of join.token.
    let (err, code) = exchange(
        &gax,
        Some(&good),
        vec![text(
            json!({"type": "join", "version": 1, "sdp": "v=0\r\nbroken"}),
        )],
    )
    .await;
    assert_eq!(code, Some(4415));
    assert_eq!(err.unwrap()["code"], "bad_sdp");

    // Every refusal was counted, and the server still serves.
    let (status, _, metrics) = gax.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("gax_ws_closed_total{code=\"4401\"}"),
        "{metrics}"
    );
    assert_eq!(gax.get("/healthz").0, 200);
    assert!(gax.terminate(), "SIGTERM gives a clean exit");
}

#[test]
fn http_errors_are_json() {
    let gax = Gax::start(&[]);
    let (status, head, body) = gax.get("/no/such/route");
    assert_eq!(status, 404);
    assert!(head
        .to_lowercase()
        .contains("content-type: application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "not_found");

    // Dev tokens are off unless --dev.
    let (status, _, body) = gax.get("/api/dev/token?room=a&name=b");
    assert_eq!(status, 404);
    assert!(body.contains("--dev"));

    // The page and its script are served.
    let (status, head, body) = gax.get("/");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"));
    assert!(body.contains("/app.js"));
    assert_eq!(gax.get("/app.js").0, 200);
    assert_eq!(gax.get("/chat.js").0, 200, "the messenger's script");
    assert_eq!(gax.get("/chat.css").0, 200);
    assert_eq!(gax.get("/app.css").0, 200);
}

#[test]
fn dev_mode_hands_out_working_tokens_and_checks_its_query() {
    let gax = Gax::start(&["--dev"]);
    let (status, _, body) = gax.get("/api/dev/token?room=demo&name=Ann");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["room"], "demo");
    assert!(v["token"].as_str().unwrap().split('.').count() == 3);

    let (status, _, body) = gax.get("/api/dev/token?name=Ann");
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "bad_request"
    );
    let (status, _, _) = gax.get("/api/dev/token?room=demo&bogus=1");
    assert_eq!(status, 400);
}

#[test]
fn garbage_datagrams_are_counted_and_dropped() {
    let gax = Gax::start(&["--workers", "2"]);
    let (_, _, metrics) = gax.get("/metrics");
    // The media ports are ephemeral here: read the server's UDP sockets from /proc.
    let ports = udp_ports_of(&gax);
    assert_eq!(ports.len(), 2, "two workers, two sockets: {ports:?}");
    let before_unknown = counter(&metrics, "gax_media_dropped_unknown_source_total");
    let before_malformed = counter(&metrics, "gax_media_dropped_malformed_total");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let junk: [&[u8]; 4] = [
        b"",
        b"hello",
        &[0x80u8; 1200],
        // Looks like STUN (magic cookie) but belongs to no session.
        &[
            0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    ];
    for p in &ports {
        for j in junk {
            sock.send_to(j, ("127.0.0.1", *p)).unwrap();
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, _, m) = gax.get("/metrics");
        // Per port: "" and "hello" have impossible framing; the RTP-looking and STUN-looking
        // datagrams are well framed but come from an address no session knows.
        let unknown = counter(&m, "gax_media_dropped_unknown_source_total") - before_unknown;
        let malformed = counter(&m, "gax_media_dropped_malformed_total") - before_malformed;
        if unknown >= 4 && malformed >= 4 {
            assert_eq!((unknown, malformed), (4, 4), "{m}");
            // /metrics reads one counter after another: fetch again so the received count is
            // read after the drops we just saw.
            let (_, _, again) = gax.get("/metrics");
            assert!(
                counter(&again, "gax_media_packets_in_total") >= 8,
                "{again}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "drops not counted:\n{m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(gax.get("/healthz").0, 200, "the server survived");
}

/// The UDP ports the server process has open (its media sockets), read from /proc.
fn udp_ports_of(gax: &Gax) -> Vec<u16> {
    let pid = gax.pid();
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(link) = std::fs::read_link(fd.path()) {
            let l = link.to_string_lossy().to_string();
            if let Some(i) = l.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                inodes.push(i.to_owned());
            }
        }
    }
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let mut ports: Vec<u16> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let inode = cols.get(9)?;
            if !inodes.iter().any(|i| i == inode) {
                return None;
            }
            let port = cols.get(1)?.rsplit(':').next()?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect();
    ports.sort();
    ports
}
