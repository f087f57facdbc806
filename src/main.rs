//! `gax`: the GAX server and its command-line tools.
//!
//! The binary only wires crates together: configuration ([`config`]), the media plane
//! (`sfu-core`), the HTTP/WebSocket front door (`signaling`), tokens and the messenger
//! (`messaging`) and files (`media-store`).

mod config;
mod open_files;
mod private_files;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use messaging::auth::Claims;
use sfu_core::{Sfu, SfuConfig};

use config::{CommonArgs, Config, ServeArgs};

/// GAX: an SFU-first media server. Calls, chat, watch parties and files in one binary.
#[derive(Debug, Parser)]
#[command(name = "gax", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server on embedded defaults (no external service needed).
    Serve(Box<ServeArgs>),
    /// Print a signed token (JWT) for a call room on stdout.
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The room the token admits to (not needed with --admin).
    #[arg(long, required_unless_present = "admin")]
    room: Option<String>,
    /// An operator's token: reads per-session detail at /metrics (room names and participant
    /// ids); admits to no room unless --room is given too.
    #[arg(long)]
    admin: bool,
    /// Who the token is for (its subject).
    #[arg(long)]
    identity: String,
    /// Display name shown to others. [default: the identity]
    #[arg(long)]
    name: Option<String>,
    /// How long the token is valid, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Do not allow publishing audio/video.
    #[arg(long)]
    no_publish: bool,
    /// Do not allow receiving others' audio/video.
    #[arg(long)]
    no_subscribe: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Token(args) => token(&cli.common, args),
        Command::Serve(args) => {
            init_tracing();
            let config = Config::resolve(&cli.common, Some(&args))?;
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .worker_threads(2)
                .thread_name("gax-control")
                .build()?
                .block_on(serve(config))
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn token(common: &CommonArgs, args: TokenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.room.as_deref() != Some(""), "--room must not be empty");
    anyhow::ensure!(!args.identity.is_empty(), "--identity must not be empty");
    anyhow::ensure!(args.ttl.as_secs() > 0, "--ttl must be at least one second");
    let config = Config::resolve(common, None)?;
    let keys = config.token_keys()?;
    let room = args.room.as_deref().unwrap_or_default();
    let mut claims = Claims::for_room(&args.identity, args.name.as_deref(), room, args.ttl);
    if args.room.is_none() {
        claims.room = None;
    }
    claims.admin = args.admin;
    claims.can_publish = !args.no_publish;
    claims.can_subscribe = !args.no_subscribe;
    println!("{}", keys.mint(&claims)?);
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    private_files::restrict_new_files();
    private_files::private_dir(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let tokens = config.token_keys()?;
    let sfu = Arc::new(
        Sfu::start(&SfuConfig {
            workers: config.workers,
            bind_ip: config.media_bind,
            advertise_ip: config.media_ip,
            port_base: config.media_port,
            bandwidth_estimation: config.bandwidth_estimation,
        })
        .context("starting the media workers")?,
    );
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let fd_limit = open_files::raise();
    let max_connections = open_files::connection_cap(config.max_connections, fd_limit);
    if max_connections < config.max_connections {
        tracing::warn!(
            open_files = fd_limit,
            configured = config.max_connections,
            max_connections,
            "the open-files limit is low: fewer HTTP connections than configured are allowed \
             (raise `ulimit -n` / LimitNOFILE)"
        );
    }
    let options = signaling::Options {
        dev: config.dev,
        media_timeout: config.media_timeout,
        access_token_ttl: config.access_token_ttl,
        http: signaling::connections::Limits {
            header_timeout: config.http_header_timeout,
            max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
        },
        rate_limits: config.rate_limits,
    };
    let store = messaging::Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", config.database_url_redacted()))?;
    // Shared state in this process, or on Redis when several nodes share it.
    let messenger = async {
        let backends = match config.redis_url.as_deref() {
            Some(url) => messaging::Backends::redis(url, &config.redis_prefix).await?,
            None => messaging::Backends::in_process(),
        };
        signaling::messenger::Messenger::with_backends(&config.data_dir, backends, &store).await
    }
    .await
    .context("starting the messenger (bus, presence, search)")?;
    let blobs = media_store::BlobStore::open(&config.blobs)
        .await
        .context("opening the file store")?;
    tracing::info!(
        backend = blobs.backend_name(),
        max_upload = config.max_upload,
        "file store ready"
    );
    let files = signaling::files::Files {
        blobs,
        max_upload: config.max_upload,
    };
    let app = signaling::App::new(
        sfu.clone(),
        tokens,
        store,
        messenger,
        files,
        options,
        shutdown_rx,
    );
    let app_for_stop = app.clone();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding HTTP {}", config.listen))?;
    let addr = listener.local_addr()?;
    let media: Vec<String> = sfu.media_addrs().iter().map(|a| a.to_string()).collect();
    tracing::info!(
        http = %addr,
        media = %media.join(","),
        max_connections,
        max_connections_per_ip = config.max_connections_per_ip,
        open_files = fd_limit,
        dev = config.dev,
        data_dir = %config.data_dir.display(),
        "GAX is serving on http://{addr}/"
    );
    if config.dev {
        tracing::warn!(
            "DEVELOPMENT MODE (--dev): GET /api/dev/token hands anyone who asks a token for any \
             call room under any name. Never run --dev where others can reach http://{addr}/"
        );
    }
    signaling::server::serve(listener, app, async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        let _ = shutdown_tx.send(true);
    })
    .await;
    // Give open calls a moment to send their close frames, then stop the media plane.
    tokio::time::sleep(Duration::from_millis(200)).await;
    sfu.shutdown();
    app_for_stop.messenger.stop().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
