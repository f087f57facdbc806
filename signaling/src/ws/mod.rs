//! The WebSocket door `/ws`: upgrade, wait for the first message, and hand the connection to
//! the session kind it names: a call (`join`, [`call`]), the messenger (`hello`, [`chat`]) or a
//! watch party (`watch`, [`watch`]). Every kind ends through [`conn::Conn::finish`], which
//! counts the close code and sends the closing error; the protocols are in docs/protocol.md.

mod budget;
mod call;
pub mod chat;
mod conn;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::app::App;
use crate::extract::bearer_token;
use crate::protocol::{close, MAX_MESSAGE_BYTES};
use conn::{Conn, End, Incoming};

/// A client must send `join` this soon after connecting.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /ws`: upgrades to the call protocol (first message `join`), the messenger session
/// (first message `hello`) or a watch-party session (first message `watch`); all are
/// described in docs/protocol.md.
#[utoipa::path(get, path = "/ws", tag = "calls",
    responses((status = 101, description = "WebSocket: a call (`join`), a messenger session (`hello`) or a watch party (`watch`); docs/protocol.md")))]
pub async fn upgrade(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let bearer = bearer_token(&headers);
    // Frames above our own limit still reach `parse`, which answers 1009 with a message;
    // only far larger ones are cut by the transport.
    ws.max_message_size(MAX_MESSAGE_BYTES * 4)
        .on_upgrade(move |socket| async move {
            let mut conn = Conn::new(app, socket);
            conn.run(bearer).await;
        })
}

impl Conn {
    async fn run(&mut self, bearer: Option<String>) {
        self.app.stats.connections.inc();
        let first = match tokio::time::timeout(JOIN_TIMEOUT, self.next()).await {
            Err(_) => {
                return self
                    .finish(End::error(
                        close::JOIN_TIMEOUT,
                        "join_timeout",
                        "no join received in time",
                    ))
                    .await
            }
            Ok(Incoming::Closed) => return,
            Ok(Incoming::Bad(end)) => return self.finish(end).await,
            Ok(Incoming::Text(t)) => t,
        };
        if chat::is_hello(&first) {
            let end = chat::run(self, &first, bearer).await;
            return self.finish(end).await;
        }
        if watch::is_watch(&first) {
            let end = watch::run(self, &first, bearer).await;
            return self.finish(end).await;
        }
        let end = call::run(self, &first, bearer).await;
        self.finish(end).await
    }
}
