//! `gax-chatload`: messenger throughput on one node. Serves GAX's HTTP/WebSocket front door in
//! this process (the same `signaling` router `gax serve` runs, on SQLite or Postgres, with the
//! in-process bus), registers a group of users, opens one messenger session per member, and
//! has `senders` members send `messages` messages in total as fast as acks come back (each
//! sender keeps `window` sends in flight). Reports messages persisted per second (acked:
//! committed to the database) and delivered per second (every other member's session got
//! it), with the end-to-end delivery latency.
//!
//! ```text
//! cargo run --release -p bench --bin gax-chatload -- --db sqlite --members 10 --messages 5000
//! cargo run --release -p bench --bin gax-chatload -- --db postgres://postgres@127.0.0.1:5432/test
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
struct Args {
    /// `sqlite` (a fresh file in a temp dir) or a `postgres://` URL (a fresh schema in it).
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// Members of the group (each has one messenger session).
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Members that send.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Messages in total.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Sends each sender keeps in flight.
    #[arg(long, default_value_t = 8)]
    window: usize,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.senders == 0 || args.senders > args.members || args.members < 2 {
        bail!("need 2+ members and 1..=members senders");
    }
    let dir = std::env::temp_dir().join(format!("gax-chatload-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (url, schema) = match args.db.as_str() {
        "sqlite" => (dir.join("gax.db").to_string_lossy().into_owned(), None),
        pg if pg.starts_with("postgres") => {
            let schema = format!("gax_chatload_{}", std::process::id());
            let store = messaging::Store::connect(pg).await?;
            sqlx_exec(&store, &format!("CREATE SCHEMA {schema}")).await?;
            store.close().await;
            let sep = if pg.contains('?') { '&' } else { '?' };
            (
                format!("{pg}{sep}options=-c%20search_path%3D{schema}"),
                Some((pg.to_owned(), schema)),
            )
        }
        other => bail!("--db sqlite or a postgres:// URL, not {other}"),
    };
    let result = run(&args, &url, &dir).await;
    if let Some((pg, schema)) = schema {
        let store = messaging::Store::connect(&pg).await?;
        sqlx_exec(&store, &format!("DROP SCHEMA {schema} CASCADE")).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn sqlx_exec(store: &messaging::Store, sql: &str) -> anyhow::Result<()> {
    sqlx::query(sql).execute(store.pool()).await?;
    Ok(())
}

async fn run(args: &Args, url: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    let store = messaging::Store::connect(url).await?;
    let messenger = signaling::messenger::Messenger::with_backends(
        dir,
        messaging::Backends::in_process(),
        &store,
    )
    .await?;
    let sfu = Arc::new(sfu_core::Sfu::start(&sfu_core::SfuConfig {
        workers: 1,
        ..Default::default()
    })?);
    let tokens = messaging::auth::TokenKeys::from_secret(b"chatload-secret-chatload-secret-000");
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let files = signaling::files::Files {
        blobs: media_store::BlobStore::open(&media_store::BlobConfig::Local {
            dir: dir.join("media"),
        })
        .await?,
        max_upload: 1 << 20,
    };
    let app = signaling::App::new(
        sfu,
        tokens,
        store,
        messenger,
        files,
        // The load is the point: no quotas (sign-ups, sends, messages per session).
        signaling::Options {
            rate_limits: messaging::RateLimits::OFF,
            ..Default::default()
        },
        shutdown,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, signaling::router(app)).await;
    });

    // Users and the group, over REST like any client.
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for i in 0..args.members {
        let body = http_json(
            addr,
            "POST",
            "/api/auth/register",
            None,
            json!({"username": format!("user{i}"), "password": "chatload-password"}),
        )
        .await?;
        tokens.push(body["access_token"].as_str().context("token")?.to_owned());
        ids.push(body["user"]["id"].as_i64().context("id")?);
    }
    let chat = http_json(
        addr,
        "POST",
        "/api/chats",
        Some(&tokens[0]),
        json!({"kind": "group", "title": "load", "members": ids[1..]}),
    )
    .await?["id"]
        .as_i64()
        .context("chat id")?;

    let mut sessions = Vec::new();
    for t in &tokens {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await?;
        ws.send(Message::Text(
            json!({"type": "hello", "version": 1, "token": t})
                .to_string()
                .into(),
        ))
        .await?;
        loop {
            let v = read(&mut ws).await?;
            if v["type"] == "synced" {
                break;
            }
        }
        sessions.push(ws);
    }
    let receivers: Vec<Ws> = sessions.split_off(args.senders);
    let senders = sessions;
    let expected_per_receiver = args.messages;
    let per_sender = args.messages / args.senders;
    let total = per_sender * args.senders;

    let start = Instant::now();
    // Receivers: count deliveries, note latency from the send timestamp in the text.
    let mut recv_tasks = Vec::new();
    for mut ws in receivers {
        recv_tasks.push(tokio::spawn(async move {
            let mut got = 0usize;
            let mut latencies = Vec::with_capacity(total);
            while got < total.min(expected_per_receiver) {
                let v = read(&mut ws).await?;
                if v["type"] == "message" {
                    got += 1;
                    if let Some(sent) = v["message"]["text"]
                        .as_str()
                        .and_then(|t| t.split(':').nth(1))
                        .and_then(|n| n.parse::<u128>().ok())
                    {
                        latencies.push(now_micros().saturating_sub(sent));
                    }
                }
            }
            anyhow::Ok((Instant::now(), latencies))
        }));
    }
    let mut send_tasks = Vec::new();
    for (s, mut ws) in senders.into_iter().enumerate() {
        let window = args.window;
        send_tasks.push(tokio::spawn(async move {
            let mut sent = 0usize;
            let mut acked = 0usize;
            while acked < per_sender {
                while sent < per_sender && sent - acked < window {
                    let text = format!("s{s}m{sent}:{}", now_micros());
                    ws.send(Message::Text(json!({"type": "send", "chat": chat, "text": text, "client_key": format!("s{s}-{sent}")}).to_string().into())).await?;
                    sent += 1;
                }
                let v = read(&mut ws).await?;
                match v["type"].as_str() {
                    Some("ack") => acked += 1,
                    Some("error") => bail!("send failed: {v}"),
                    _ => {}
                }
            }
            anyhow::Ok(Instant::now())
        }));
    }
    let mut persisted_at = start;
    for t in send_tasks {
        persisted_at = persisted_at.max(t.await??);
    }
    let mut delivered_at = start;
    let mut latencies = Vec::new();
    for t in recv_tasks {
        let (at, mut l) = t.await??;
        delivered_at = delivered_at.max(at);
        latencies.append(&mut l);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let persist_s = persisted_at.duration_since(start).as_secs_f64();
    let deliver_s = delivered_at.duration_since(start).as_secs_f64();
    let receivers = args.members - args.senders;
    println!(
        "db={} members={} senders={} window={} messages={total}: persisted {:.0} msg/s ({persist_s:.2} s); \
         delivered to all {receivers} receivers {:.0} msg/s ({:.0} deliveries/s, {deliver_s:.2} s); \
         send->delivery latency p50 {:.1} ms p99 {:.1} ms",
        if url.starts_with("postgres") { "postgres" } else { "sqlite" },
        args.members, args.senders, args.window,
        total as f64 / persist_s,
        total as f64 / deliver_s,
        (total * receivers) as f64 / deliver_s,
        pct(0.5), pct(0.99),
    );
    Ok(())
}

fn now_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

async fn read(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(Message::Close(f))) => bail!("closed: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed"),
        }
    }
}

/// A tiny HTTP/1.1 JSON request (the chat setup is a handful of calls).
async fn http_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let body = body.to_string();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (_, json) = text.split_once("\r\n\r\n").context("HTTP response")?;
    Ok(serde_json::from_str(json)?)
}
