//! The messenger part of a run (`--chat-sockets N`): N users signed up over REST, in groups of
//! [`GROUP`], each on its own `/ws` messenger session that sends a message every
//! `--chat-every` (a `typing` event first) and marks every fifth message it receives as read.
//! At the end every acknowledged message is looked up in its chat's history: an acked message
//! missing there is lost. Against GAX only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use messaging::auth::{Claims, TokenKeys};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Users per group chat.
pub const GROUP: usize = 10;
/// How long a stopping session waits for the acks of what it sent.
const DRAIN: Duration = Duration::from_secs(5);

/// Live counters of the messenger load.
#[derive(Default)]
pub struct ChatTally {
    pub connected: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    pub disconnects: AtomicU64,
    first_errors: Mutex<Vec<String>>,
    /// (chat, seq, text) of every acked message.
    acked_messages: Mutex<Vec<(i64, i64, String)>>,
}

impl ChatTally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < 10 {
            first.push(what);
        }
    }
}

/// What the messenger load did, for the run's JSON.
#[derive(Debug, Serialize)]
pub struct ChatSummary {
    pub sockets: usize,
    pub sent: u64,
    pub acked: u64,
    pub delivered: u64,
    pub errors: u64,
    pub disconnects: u64,
    /// Acked messages missing from their chat's history.
    pub lost: u64,
    pub first_errors: Vec<String>,
}

pub struct ChatLoad {
    http: reqwest::Client,
    base: String,
    tally: Arc<ChatTally>,
    tasks: Vec<JoinHandle<()>>,
    /// (chat id, a member's token) per group.
    chats: Vec<(i64, String)>,
    sockets: usize,
}

impl ChatLoad {
    pub fn tally(&self) -> &Arc<ChatTally> {
        &self.tally
    }

    /// Signs up `sockets` users, makes their groups and opens their sessions (spread over
    /// `ramp`); they run until `stop`.
    pub async fn start(
        base: &str,
        secret: &str,
        sockets: usize,
        every: Duration,
        ramp: Duration,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<ChatLoad> {
        let http = reqwest::Client::new();
        let base = base.trim_end_matches('/').to_owned();
        let keys = TokenKeys::from_secret(secret.as_bytes());
        let run = crate::client::now_us() & 0xff_ffff;
        // Sign-ups hash a password each (argon2): a few at a time.
        let mut users: Vec<(i64, String)> = Vec::with_capacity(sockets);
        for chunk in (0..sockets).collect::<Vec<_>>().chunks(8) {
            let signups = chunk.iter().map(|i| {
                let http = http.clone();
                let url = format!("{base}/api/auth/register");
                let name = format!("load{run:x}u{i}");
                async move {
                    let r = http
                        .post(url)
                        .json(&json!({"username": name, "password": "load-password-123"}))
                        .send()
                        .await?;
                    let status = r.status();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    anyhow::ensure!(status.as_u16() == 201, "sign-up answered {status}: {body}");
                    body["user"]["id"]
                        .as_i64()
                        .context("sign-up without a user id")
                }
            });
            for id in futures_util::future::join_all(signups).await {
                let id = id?;
                // Our own token, valid for the whole run (the server's access tokens last 15 min).
                let claims =
                    Claims::for_user(&format!("user:{id}"), None, Duration::from_secs(4 * 3600));
                users.push((id, keys.mint(&claims)?));
            }
        }
        let mut chats = Vec::new();
        let mut member_of = Vec::with_capacity(sockets);
        for group in users.chunks(GROUP) {
            let members: Vec<i64> = group[1..].iter().map(|u| u.0).collect();
            let r = http
                .post(format!("{base}/api/chats"))
                .bearer_auth(&group[0].1)
                .json(&json!({"kind": "group", "title": "load", "members": members}))
                .send()
                .await?;
            let body: Value = r.json().await?;
            let chat = body["id"]
                .as_i64()
                .with_context(|| format!("creating a group: {body}"))?;
            chats.push((chat, group[0].1.clone()));
            member_of.extend(std::iter::repeat_n(chat, group.len()));
        }
        let tally = Arc::new(ChatTally::default());
        let ws_url = format!("{}/ws", base.replacen("http", "ws", 1));
        let gap = ramp / u32::try_from(sockets.max(1)).unwrap_or(u32::MAX);
        let mut tasks = Vec::with_capacity(sockets);
        for (i, ((_, token), chat)) in users.into_iter().zip(member_of).enumerate() {
            let (url, tally, stop) = (ws_url.clone(), tally.clone(), stop.clone());
            // Each session's first send is offset so the sends spread over `every`.
            let offset = every.mul_f64(i as f64 / sockets as f64);
            tasks.push(tokio::spawn(async move {
                session(&url, &token, chat, i, every, offset, &tally, &stop).await;
            }));
            tokio::time::sleep(gap).await;
        }
        Ok(ChatLoad {
            http,
            base,
            tally,
            tasks,
            chats,
            sockets,
        })
    }

    /// Waits for the sessions (after `stop`), then looks every acked message up in its history.
    pub async fn finish(self) -> anyhow::Result<ChatSummary> {
        for t in self.tasks {
            let _ = t.await;
        }
        let acked = std::mem::take(
            &mut *self
                .tally
                .acked_messages
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let mut stored: HashMap<(i64, i64), String> = HashMap::new();
        for (chat, token) in &self.chats {
            let mut after = 0;
            loop {
                let page: Vec<Value> = self
                    .http
                    .get(format!(
                        "{}/api/chats/{chat}/messages?after={after}&limit=200",
                        self.base
                    ))
                    .bearer_auth(token)
                    .send()
                    .await?
                    .json()
                    .await?;
                for m in &page {
                    let seq = m["seq"].as_i64().unwrap_or(0);
                    stored.insert((*chat, seq), m["text"].as_str().unwrap_or("").to_owned());
                }
                match page.last().and_then(|m| m["seq"].as_i64()) {
                    Some(last) if page.len() == 200 => after = last,
                    _ => break,
                }
            }
        }
        let lost = acked
            .iter()
            .filter(|(chat, seq, text)| stored.get(&(*chat, *seq)) != Some(text))
            .count() as u64;
        let t = &self.tally;
        Ok(ChatSummary {
            sockets: self.sockets,
            sent: t.sent.load(Ordering::Relaxed),
            acked: t.acked.load(Ordering::Relaxed),
            delivered: t.delivered.load(Ordering::Relaxed),
            errors: t.errors.load(Ordering::Relaxed),
            disconnects: t.disconnects.load(Ordering::Relaxed),
            lost,
            first_errors: t
                .first_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        })
    }
}

/// One user's messenger session until `stop` (then up to [`DRAIN`] for the last acks).
#[allow(clippy::too_many_arguments)]
async fn session(
    url: &str,
    token: &str,
    chat: i64,
    index: usize,
    every: Duration,
    offset: Duration,
    tally: &ChatTally,
    stop: &AtomicBool,
) {
    let mut ws = match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => ws,
        Err(e) => return tally.error(format!("connect: {e}")),
    };
    let hello = json!({"type": "hello", "version": 1, "token": token}).to_string();
    if let Err(e) = ws.send(Message::Text(hello.into())).await {
        return tally.error(format!("hello: {e}"));
    }
    tally.connected.fetch_add(1, Ordering::Relaxed);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
    let mut check = tokio::time::interval(Duration::from_millis(200));
    let mut pending: HashMap<String, String> = HashMap::new();
    let (mut n, mut received) = (0u64, 0u64);
    let mut draining: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick(), if draining.is_none() => {
                n += 1;
                let key = format!("s{index}-{n}");
                let text = format!("load message {n} from {index}");
                let typing = json!({"type": "typing", "chat": chat}).to_string();
                let send = json!({"type": "send", "chat": chat, "text": text, "client_key": key}).to_string();
                if ws.send(Message::Text(typing.into())).await.is_err()
                    || ws.send(Message::Text(send.into())).await.is_err()
                {
                    tally.disconnects.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                tally.sent.fetch_add(1, Ordering::Relaxed);
                pending.insert(key, text);
            }
            _ = check.tick() => {
                match draining {
                    None if stop.load(Ordering::Relaxed) => {
                        draining = Some(tokio::time::Instant::now() + DRAIN);
                    }
                    Some(until) if pending.is_empty() || tokio::time::Instant::now() >= until => break,
                    _ => {}
                }
            }
            frame = ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(f))) => {
                        tally.disconnects.fetch_add(1, Ordering::Relaxed);
                        return tally.error(format!("closed by the server: {f:?}"));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        tally.disconnects.fetch_add(1, Ordering::Relaxed);
                        return tally.error(format!("connection broke: {e}"));
                    }
                    None => {
                        tally.disconnects.fetch_add(1, Ordering::Relaxed);
                        return tally.error("connection ended".into());
                    }
                };
                let Ok(msg) = serde_json::from_str::<Value>(&text) else {
                    tally.error(format!("not JSON: {text}"));
                    continue;
                };
                match msg["type"].as_str() {
                    Some("ack") => {
                        let key = msg["client_key"].as_str().unwrap_or("");
                        if let Some(text) = pending.remove(key) {
                            tally.acked.fetch_add(1, Ordering::Relaxed);
                            let seq = msg["message"]["seq"].as_i64().unwrap_or(0);
                            tally
                                .acked_messages
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((chat, seq, text));
                        }
                    }
                    Some("message") => {
                        tally.delivered.fetch_add(1, Ordering::Relaxed);
                        received += 1;
                        if received % 5 == 0 {
                            let seq = msg["message"]["seq"].as_i64().unwrap_or(0);
                            let read = json!({"type": "read", "chat": chat, "seq": seq}).to_string();
                            let _ = ws.send(Message::Text(read.into())).await;
                        }
                    }
                    Some("error") => tally.error(format!("error: {msg}")),
                    _ => {}
                }
            }
        }
    }
    for (key, _) in pending {
        tally.error(format!("no ack for {key}"));
    }
    let _ = ws.close(None).await;
}
