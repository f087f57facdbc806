//! Signaling to Janus's VideoRoom plugin over its HTTP JSON API, so the same load runs
//! against Janus: `create` a session -> `attach` the plugin -> a publisher `joinandconfigure`s
//! with its offer; a player `join`s as a subscriber of one feed, gets Janus's offer and answers
//! with `start`. Events come by long poll (`GET /janus/{session}`), which also keeps the session
//! alive. Every client has a session of its own, as browsers do.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use webrtc::peer_connection::RTCPeerConnection;

use crate::client;

/// A Janus server's HTTP API at `url` (e.g. http://127.0.0.1:8088/janus).
pub struct Janus {
    http: reqwest::Client,
    url: String,
    transactions: AtomicU64,
    /// A session and handle used to create rooms.
    admin: tokio::sync::OnceCell<Handle>,
}

/// One attached VideoRoom handle in a session of its own.
#[derive(Debug, Clone, Copy)]
pub struct Handle {
    session: u64,
    handle: u64,
}

/// Janus's error in a reply or plugin event, if there is one.
fn error_of(reply: &Value) -> Option<String> {
    if reply["janus"] == "error" {
        return Some(reply["error"].to_string());
    }
    let data = &reply["plugindata"]["data"];
    data.get("error_code")
        .map(|code| format!("{code} {}", data["error"]))
}

impl Janus {
    pub fn new(url: &str) -> Self {
        Janus {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_owned(),
            transactions: AtomicU64::new(1),
            admin: tokio::sync::OnceCell::new(),
        }
    }

    /// POSTs one request (a transaction id is added); a Janus or plugin error is an error.
    async fn request(&self, path: &str, mut body: Value) -> anyhow::Result<Value> {
        body["transaction"] = json!(format!(
            "t{}",
            self.transactions.fetch_add(1, Ordering::Relaxed)
        ));
        let reply: Value = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if let Some(e) = error_of(&reply) {
            bail!("Janus {}: {e}", body["janus"]);
        }
        Ok(reply)
    }

    /// A new session with the VideoRoom plugin attached.
    async fn attach(&self) -> anyhow::Result<Handle> {
        let session = self.request("", json!({"janus": "create"})).await?["data"]["id"]
            .as_u64()
            .context("Janus create: no session id")?;
        let handle = self
            .request(
                &format!("/{session}"),
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
            )
            .await?["data"]["id"]
            .as_u64()
            .context("Janus attach: no handle id")?;
        Ok(Handle { session, handle })
    }

    /// Sends a plugin message (with a JSEP if given); returns the reply (synchronous
    /// requests answer in it, asynchronous ones are acknowledged and answer by event).
    async fn message(&self, h: Handle, body: Value, jsep: Option<Value>) -> anyhow::Result<Value> {
        let mut msg = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            msg["jsep"] = jsep;
        }
        self.request(&format!("/{}/{}", h.session, h.handle), msg)
            .await
    }

    /// Long-polls the session until a plugin event for which `done` is true; an error event
    /// is an error.
    async fn event(&self, h: Handle, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        loop {
            let ev: Value = self
                .http
                .get(format!("{}/{}?maxev=1", self.url, h.session))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            if let Some(e) = error_of(&ev) {
                bail!("Janus event: {e}");
            }
            if ev["janus"] == "event" && done(&ev) {
                return Ok(ev);
            }
        }
    }

    /// Keeps long-polling a session (events drained, session kept alive) until it is gone or
    /// `stop` is set.
    fn keep_polling(self: &Arc<Self>, h: Handle, stop: Arc<AtomicBool>) {
        let me = self.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let res = me
                    .http
                    .get(format!("{}/{}?maxev=10", me.url, h.session))
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        if let Ok(v) = r.json::<Value>().await {
                            if v["janus"] == "error" {
                                return; // session gone
                            }
                        }
                    }
                    _ => return,
                }
            }
        });
    }

    /// Creates room `room` (no bitrate cap, VP8 + Opus, room for `publishers`).
    pub async fn create_room(&self, room: u64, publishers: usize) -> anyhow::Result<()> {
        let admin = *self.admin.get_or_try_init(|| self.attach()).await?;
        self.message(
            admin,
            json!({
                "request": "create",
                "room": room,
                "publishers": publishers.max(1),
                "bitrate": 0,
                "videocodec": "vp8",
                "audiocodec": "opus",
                "notify_joining": false,
            }),
            None,
        )
        .await
        .with_context(|| format!("creating Janus room {room}"))?;
        Ok(())
    }

    /// Publishes `pc`'s tracks into `room`; returns the feed id players ask for, and the handle.
    pub async fn publish(
        self: &Arc<Self>,
        pc: &RTCPeerConnection,
        room: u64,
        name: &str,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<(String, Handle)> {
        let h = self.attach().await?;
        let offer = client::local_offer(pc).await?;
        self.message(
            h,
            json!({"request": "joinandconfigure", "room": room, "ptype": "publisher",
                   "display": name, "audio": true, "video": true}),
            Some(json!({"type": "offer", "sdp": offer})),
        )
        .await?;
        let ev = self.event(h, |ev| ev.get("jsep").is_some()).await?;
        let feed = ev["plugindata"]["data"]["id"]
            .as_u64()
            .context("Janus joined: no publisher id")?;
        let answer = ev["jsep"]["sdp"]
            .as_str()
            .context("Janus: no SDP answer")?
            .to_owned();
        client::remote_answer(pc, answer).await?;
        self.keep_polling(h, stop);
        Ok((feed.to_string(), h))
    }

    /// Plays `feed` in `room` on `pc`: Janus offers, we answer.
    pub async fn play(
        self: &Arc<Self>,
        pc: &RTCPeerConnection,
        room: u64,
        feed: &str,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Handle> {
        let feed: u64 = feed.parse().context("Janus feed ids are numbers")?;
        let h = self.attach().await?;
        self.message(
            h,
            json!({"request": "join", "room": room, "ptype": "subscriber",
                   "streams": [{"feed": feed}]}),
            None,
        )
        .await?;
        let ev = self.event(h, |ev| ev.get("jsep").is_some()).await?;
        let offer = ev["jsep"]["sdp"]
            .as_str()
            .context("Janus: no SDP offer")?
            .to_owned();
        let answer = client::local_answer(pc, offer).await?;
        self.message(
            h,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
        )
        .await?;
        self.event(h, |ev| ev["plugindata"]["data"]["started"] == "ok")
            .await?;
        self.keep_polling(h, stop);
        Ok(h)
    }

    /// Ends a client's session (`destroy`).
    pub async fn end(&self, h: Handle) -> anyhow::Result<()> {
        self.request(&format!("/{}", h.session), json!({"janus": "destroy"}))
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_found_in_replies_and_plugin_events() {
        assert_eq!(
            error_of(&json!({"janus": "success", "data": {"id": 1}})),
            None
        );
        assert!(error_of(&json!({"janus": "error", "error": {"code": 458}}))
            .unwrap()
            .contains("458"));
        let ev = json!({"janus": "event", "plugindata": {"data":
            {"videoroom": "event", "error_code": 426, "error": "No such room"}}});
        assert_eq!(error_of(&ev).as_deref(), Some("426 \"No such room\""));
    }
}
