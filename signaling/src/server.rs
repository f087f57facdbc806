//! The HTTP server around the router: accepts TCP connections within the listener's limits (a
//! cap on open connections, overall and per source address: [`crate::connections`]), serves
//! each with hyper (HTTP/1.1 with upgrades for WebSocket, a deadline for reading request
//! headers), and stops gracefully.
//!
//! A connection over a cap is not left hanging: it is served by a small answer-and-close
//! service that keeps `/healthz` answering (a load balancer must not think a full node is
//! dead) and says 503 `server_full` or 429 `too_many_connections` to everything else, with
//! `Retry-After`. Those are few (at most [`OVERFLOW_MAX`] at once, 2 s to send their request);
//! past that a refused connection is closed at once. Accept errors (out of file descriptors)
//! are logged and retried after a pause, never fatal.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower_service::Service;

use crate::connections::{Refusal, Slot};

/// Connections over a cap that still get an answer at once (the rest are closed unanswered).
pub const OVERFLOW_MAX: usize = 64;
/// How long an over-the-cap connection has to send its request.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long open requests may take to finish once the server is stopping.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the app's routes on `listener` until `shutdown` resolves, then lets open requests
/// finish (for at most 10 s). Connections are admitted by [`crate::App::connections`].
pub async fn serve(
    listener: TcpListener,
    app: Arc<crate::App>,
    shutdown: impl Future<Output = ()>,
) {
    let admission = app.connections.clone();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.header_timeout);
    let mut overflow_builder = http1::Builder::new();
    overflow_builder
        .timer(TokioTimer::new())
        .header_read_timeout(OVERFLOW_HEADER_TIMEOUT)
        .keep_alive(false);
    let router = crate::routes::router(app);
    let overflow = Arc::new(AtomicUsize::new(0));
    // Every connection task holds a clone of `open_tx`: when all are gone, `open_rx` ends.
    let (open_tx, mut open_rx) = mpsc::channel::<Infallible>(1);
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE/ENFILE (descriptors exhausted) or a connection reset before accept:
                    // pause so a busy loop does not spin, then go on.
                    tracing::warn!("accepting an HTTP connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        match admission.admit(peer.ip()) {
            Ok(slot) => {
                let io = TokioIo::new(Counted {
                    stream,
                    _slot: slot,
                });
                let conn = builder
                    .serve_connection(io, connection_service(router.clone(), peer))
                    .with_upgrades();
                let (open, mut stop) = (open_tx.clone(), stop_rx.clone());
                tokio::spawn(async move {
                    let _open = open;
                    tokio::pin!(conn);
                    let served = tokio::select! {
                        ended = conn.as_mut() => Some(ended),
                        _ = stop.changed() => None,
                    };
                    let ended = match served {
                        Some(ended) => ended,
                        None => {
                            conn.as_mut().graceful_shutdown();
                            conn.await
                        }
                    };
                    if let Err(e) = ended {
                        tracing::debug!("HTTP connection ended: {e}");
                    }
                });
            }
            Err(refusal) => {
                if overflow.fetch_add(1, Ordering::Relaxed) >= OVERFLOW_MAX {
                    overflow.fetch_sub(1, Ordering::Relaxed);
                    drop(stream);
                    continue;
                }
                let service = connection_service(refused_router(refusal), peer);
                let conn = overflow_builder.serve_connection(TokioIo::new(stream), service);
                let overflow = overflow.clone();
                tokio::spawn(async move {
                    let _ = conn.await;
                    overflow.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_tx);
    if tokio::time::timeout(DRAIN_TIMEOUT, open_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("open HTTP requests did not finish within {DRAIN_TIMEOUT:?}");
    }
}

/// The router as hyper's service for one connection, with the peer address as
/// [`ConnectInfo`] (what `into_make_service_with_connect_info` would add).
fn connection_service(router: Router, peer: SocketAddr) -> WithPeer {
    WithPeer { router, peer }
}

#[derive(Clone)]
struct WithPeer {
    router: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for WithPeer {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        // A Router is always ready: no poll_ready needed.
        self.router.clone().call(req.map(axum::body::Body::new))
    }
}

/// What a connection over a cap is told: `/healthz` as usual, everything else 503 (the server
/// is full) or 429 (this address holds too many connections), JSON, with `Retry-After`.
fn refused_router(refusal: Refusal) -> Router {
    let (status, code, message) = match refusal {
        Refusal::Full => (
            StatusCode::SERVICE_UNAVAILABLE,
            "server_full",
            "the server holds as many connections as it allows; retry shortly",
        ),
        Refusal::PerIp => (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            "your address holds as many connections as one address may; close some or retry",
        ),
    };
    let refuse = move || async move {
        (
            status,
            [(header::RETRY_AFTER, "1")],
            axum::Json(serde_json::json!({ "error": code, "message": message })),
        )
            .into_response()
    };
    Router::new()
        .route("/healthz", get(crate::http::healthz))
        .fallback(refuse)
}

/// A socket that holds its connection's place while it lives (through a WebSocket upgrade
/// too: hyper hands this same object to the upgraded connection).
struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
