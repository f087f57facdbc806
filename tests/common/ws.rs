//! WebSocket helpers for end-to-end tests: connect to `/ws`, send JSON, read JSON or the close
//! code, read until a message of some type.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::Gax;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(gax: &Gax) -> Ws {
    tokio_tungstenite::connect_async(gax.ws_url())
        .await
        .expect("connect")
        .0
}

pub async fn put(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

/// The next JSON message, or the close code as `{"closed": code}`.
pub async fn next(ws: &mut Ws) -> Value {
    let read = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("JSON"),
                Some(Ok(Message::Close(f))) => {
                    return json!({ "closed": f.map(|f| u16::from(f.code)) })
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return json!({ "closed": null }),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a message within 10 s")
}

/// Reads until a message of `kind`, returning the ones before it too.
pub async fn until(ws: &mut Ws, kind: &str) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        let v = next(ws).await;
        if v["type"] == kind {
            return (before, v);
        }
        assert!(
            v.get("closed").is_none(),
            "closed while waiting for {kind}: {v}, after {before:?}"
        );
        before.push(v);
    }
}

/// Reads to the end of the session; the close code.
pub async fn closed(ws: &mut Ws) -> Option<u16> {
    loop {
        let v = next(ws).await;
        if let Some(code) = v.get("closed") {
            return code.as_u64().map(|c| c as u16);
        }
    }
}
