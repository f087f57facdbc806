//! Joining with a real SDP offer (made by an independent str0m client) against a real
//! `gax serve`: the answer carries our ICE-lite host candidate, the room learns of the
//! newcomer, and a client whose media never connects is closed with 4410 and leaves the room.

mod common;

use std::time::{Duration, Instant};

use common::Gax;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A browser-like offer: send-only audio and video.
fn offer() -> String {
    common::sdp::publisher()
}

/// Sends one JSON message.
async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

async fn connect(gax: &Gax) -> Ws {
    tokio_tungstenite::connect_async(gax.ws_url())
        .await
        .expect("connect")
        .0
}

async fn recv(ws: &mut Ws) -> Option<Result<Value, u16>> {
    let next = tokio::time::timeout(Duration::from_secs(15), ws.next())
        .await
        .expect("a message in time");
    match next? {
        Ok(Message::Text(t)) => Some(Ok(serde_json::from_str(&t).unwrap())),
        Ok(Message::Close(f)) => Some(Err(f.map_or(0, |f| u16::from(f.code)))),
        Ok(_) => Some(Ok(json!({}))),
        Err(_) => None,
    }
}

/// Reads until a message of `kind` arrives (skipping others).
async fn expect(ws: &mut Ws, kind: &str) -> Value {
    loop {
        match recv(ws).await {
            Some(Ok(v)) if v["type"] == kind => return v,
            Some(Ok(_)) => continue,
            other => panic!("wanted {kind}, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_offer_is_answered_and_a_silent_peer_times_out() {
    let gax = Gax::start(&["--media-timeout", "2s", "--workers", "1"]);
    let t1 = gax.token(&["--room", "m", "--identity", "one"]);
    let t2 = gax.token(&["--room", "m", "--identity", "two", "--no-publish"]);

    let mut a = connect(&gax).await;
    send(
        &mut a,
        json!({"type": "join", "version": 1, "token": t1, "sdp": offer()}),
    )
    .await;
    let joined = expect(&mut a, "joined").await;
    let answer = joined["sdp"].as_str().unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(
        answer.contains("a=candidate:") && answer.contains("127.0.0.1"),
        "{answer}"
    );
    assert!(
        answer.contains("a=recvonly"),
        "the server receives what the client sends"
    );
    assert_eq!(joined["participant"]["identity"], "one");
    assert_eq!(joined["participants"], json!([]));

    // A second participant (may not publish) joins and is announced to the first.
    let mut b = connect(&gax).await;
    send(
        &mut b,
        json!({"type": "join", "version": 1, "token": t2, "name": "Two", "sdp": offer()}),
    )
    .await;
    let joined_b = expect(&mut b, "joined").await;
    assert_eq!(joined_b["participants"][0]["identity"], "one");
    let announced = expect(&mut a, "participant_joined").await;
    assert_eq!(announced["participant"]["name"], "Two");

    // Neither ever does ICE: both are closed with media_timeout after 2 s.
    let started = Instant::now();
    let err = expect(&mut a, "error").await;
    assert_eq!(err["code"], "media_timeout");
    assert_eq!(err["close"], 4410);
    assert!(matches!(recv(&mut a).await, Some(Err(4410))));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = expect(&mut b, "error").await;
    assert_eq!(err["code"], "media_timeout");

    // The room is empty again: a newcomer sees nobody.
    let mut c = connect(&gax).await;
    send(
        &mut c,
        json!({"type": "join", "version": 1, "token": t1, "sdp": offer()}),
    )
    .await;
    let joined_c = expect(&mut c, "joined").await;
    assert_eq!(
        joined_c["participants"],
        json!([]),
        "timed-out participants left the room"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_without_offer_and_garbage_answer_are_refused() {
    let gax = Gax::start(&[]);
    let t = gax.token(&["--room", "m", "--identity", "one"]);
    let mut a = connect(&gax).await;
    send(
        &mut a,
        json!({"type": "join", "version": 1, "token": t, "sdp": offer()}),
    )
    .await;
    expect(&mut a, "joined").await;
    // Alone in the room: no server offer is pending, so an answer is out of order.
    send(&mut a, json!({"type": "answer", "sdp": "v=0"})).await;
    let err = expect(&mut a, "error").await;
    assert_eq!(err["code"], "bad_sdp");
    assert_eq!(err["close"], 4415);

    // A second join on the same connection is refused too.
    let mut b = connect(&gax).await;
    send(
        &mut b,
        json!({"type": "join", "version": 1, "token": t, "sdp": offer()}),
    )
    .await;
    expect(&mut b, "joined").await;
    send(
        &mut b,
        json!({"type": "join", "version": 1, "token": t, "sdp": offer()}),
    )
    .await;
    let err = expect(&mut b, "error").await;
    assert_eq!(err["code"], "already_joined");
}

/// The mids in an SDP, in order, with their kinds.
fn mids(sdp: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut kind = String::new();
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("m=") {
            kind = rest.split(' ').next().unwrap_or("").to_owned();
        }
        if let Some(mid) = line.strip_prefix("a=mid:") {
            out.push((mid.trim().to_owned(), kind.clone()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_requests_for_missing_tracks_or_layers_get_clear_errors() {
    let gax = Gax::start(&[]);
    let t = gax.token(&["--room", "l", "--identity", "one"]);
    let mut a = connect(&gax).await;
    send(
        &mut a,
        json!({"type": "join", "version": 1, "token": t, "sdp": offer()}),
    )
    .await;
    let joined = expect(&mut a, "joined").await;
    let mids = mids(joined["sdp"].as_str().unwrap());
    let audio = mids.iter().find(|(_, k)| k == "audio").unwrap().0.clone();
    let video = mids.iter().find(|(_, k)| k == "video").unwrap().0.clone();

    let cases = [
        (
            json!({"type": "pin_layer", "mid": "nope", "layer": "f"}),
            "unknown_track",
        ),
        (
            json!({"type": "video_size", "mid": "", "width": 100, "height": 50}),
            "unknown_track",
        ),
        (
            json!({"type": "pin_layer", "mid": audio, "layer": "q"}),
            "not_video",
        ),
        (
            json!({"type": "pin_layer", "mid": video, "layer": "xl"}),
            "unknown_layer",
        ),
        // Its own published video is not a track it receives.
        (
            json!({"type": "pin_layer", "mid": video, "layer": "q"}),
            "unknown_track",
        ),
    ];
    for (msg, code) in cases {
        send(&mut a, msg.clone()).await;
        let err = expect(&mut a, "error").await;
        assert_eq!(err["code"], code, "{msg}");
        assert!(err.get("close").is_none(), "not fatal: {err}");
    }
    // The call goes on: a cap and a ping are answered normally.
    send(&mut a, json!({"type": "max_bitrate", "bps": 300000})).await;
    send(&mut a, json!({"type": "ping"})).await;
    let next = recv(&mut a).await.unwrap().unwrap();
    assert_eq!(next["type"], "pong", "no error for a valid cap: {next}");
}
