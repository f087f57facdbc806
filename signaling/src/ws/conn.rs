//! One WebSocket connection as every session kind sees it: [`Conn`] (the shared state and the
//! socket), reading the next text frame within the size limit ([`Incoming`]), how a session
//! ends ([`End`]: close code and closing error), and the checks every session's first message
//! makes (version, token).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use messaging::auth::TokenError;

use super::budget::Budget;
use crate::app::App;
use crate::protocol::{close, ServerMessage, MAX_MESSAGE_BYTES};

/// How long one frame may take to reach the kernel's socket buffer. A client whose buffers
/// stay full this long has stopped reading: the connection is dropped (no close frame can
/// reach it) and counted as 4429.
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Conn {
    pub(crate) app: Arc<App>,
    socket: WebSocket,
    /// A send timed out: nothing more is written, the connection is only dropped.
    stalled: bool,
    /// The session's budget for messages of every kind (`None`: unlimited).
    budget: Option<Budget>,
    /// The client was told it is over the budget, since its last accepted message.
    told_limited: bool,
}

/// How a connection ends: the close code and, for errors, the message sent before closing.
pub(crate) struct End {
    code: u16,
    error: Option<(&'static str, String)>,
}

impl End {
    pub(crate) fn normal(code: u16) -> Self {
        End { code, error: None }
    }
    pub(crate) fn error(code: u16, kind: &'static str, msg: impl Into<String>) -> Self {
        End {
            code,
            error: Some((kind, msg.into())),
        }
    }
}

pub(crate) enum Incoming {
    Text(String),
    Closed,
    Bad(End),
}

impl Conn {
    pub(crate) fn new(app: Arc<App>, socket: WebSocket) -> Conn {
        let budget = Budget::of(app.ws_messages, Instant::now());
        Conn {
            app,
            socket,
            stalled: false,
            budget,
            told_limited: false,
        }
    }

    /// Sends one message; false when the connection is gone or stalled ([`SEND_TIMEOUT`]).
    pub(crate) async fn send(&mut self, msg: &ServerMessage) -> bool {
        self.send_text(msg.to_json()).await
    }

    /// Sends one text frame (the messenger's and watch party's own messages).
    pub(crate) async fn send_text(&mut self, text: String) -> bool {
        self.send_frame(Message::Text(text.into())).await
    }

    async fn send_frame(&mut self, frame: Message) -> bool {
        if self.stalled {
            return false;
        }
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(frame)).await {
            Ok(sent) => sent.is_ok(),
            Err(_) => {
                self.stalled = true;
                false
            }
        }
    }

    pub(crate) async fn finish(&mut self, end: End) {
        if self.stalled {
            tracing::debug!("dropping a connection whose client stopped reading");
            self.app.stats.record_close(close::TOO_SLOW);
            return;
        }
        self.app.stats.record_close(end.code);
        if let Some((kind, message)) = end.error {
            tracing::debug!(code = end.code, kind, %message, "closing call connection");
            let _ = self
                .send(&ServerMessage::error(kind, message, Some(end.code)))
                .await;
        }
        let _ = self
            .send_frame(Message::Close(Some(CloseFrame {
                code: end.code,
                reason: "".into(),
            })))
            .await;
    }

    /// The next text frame within the session's budget. A frame over it is dropped and
    /// counted; the first of a run is answered with a `rate_limited` error (the same shape in
    /// every session kind), the rest silently, so a flood cannot make the server write as much.
    pub(crate) async fn next(&mut self) -> Incoming {
        loop {
            match self.socket.recv().await {
                Some(Ok(Message::Text(t))) => {
                    let Some(budget) = self.budget.as_mut() else {
                        return Incoming::Text(t.to_string());
                    };
                    if budget.take(Instant::now()) {
                        self.told_limited = false;
                        return Incoming::Text(t.to_string());
                    }
                    self.app.stats.rate_limited.inc();
                    if !self.told_limited {
                        self.told_limited = true;
                        let wait = budget.wait();
                        let error = serde_json::json!({
                            "type": "error",
                            "code": "rate_limited",
                            "message": format!(
                                "too many messages: this one was dropped; wait {} ms",
                                wait.as_millis().max(1)
                            ),
                        });
                        if !self.send_text(error.to_string()).await {
                            return Incoming::Closed;
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    return Incoming::Bad(End::error(
                        close::BAD_MESSAGE,
                        "bad_message",
                        "binary frames are not part of the protocol; send JSON text",
                    ))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => return Incoming::Closed,
                Some(Err(e)) => return broken(&e.to_string()),
            }
        }
    }
}

/// What a read error from the WebSocket means. The transport (tungstenite) only says it in
/// words, so this reads them: a frame beyond its own limit (4x ours), text that is not UTF-8
/// and frames that break RFC 6455 get their close code (the client still listens); a
/// connection reset or closed has nobody left to tell.
fn broken(error: &str) -> Incoming {
    if error.contains("too long") {
        return Incoming::Bad(End::error(
            close::TOO_BIG,
            "message_too_big",
            format!("message too big; the limit is {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    if error.starts_with("UTF-8 encoding error") {
        return Incoming::Bad(End::error(
            close::INVALID_DATA,
            "bad_frame",
            "a text frame was not valid UTF-8",
        ));
    }
    if error.starts_with("WebSocket protocol error") && !error.contains("reset without closing") {
        return Incoming::Bad(End::error(
            close::PROTOCOL_ERROR,
            "bad_frame",
            "a frame broke the WebSocket protocol (RFC 6455)",
        ));
    }
    tracing::debug!("connection broke: {error}");
    Incoming::Closed
}

/// The version check every session's first message makes: `protocol` names it in the error.
pub(crate) fn check_version(protocol: &str, got: u32, speaks: u32) -> Result<(), End> {
    if got == speaks {
        return Ok(());
    }
    Err(End::error(
        close::BAD_VERSION,
        "bad_version",
        format!("{protocol} version {got} is not supported; this server speaks {speaks}"),
    ))
}

/// The claims of a session's token, from its first message or else `Authorization: Bearer`:
/// 4401 `unauthorized` when missing or invalid, `token_expired` when expired. `missing` says
/// where the token goes.
pub(crate) fn session_claims(
    app: &App,
    token: Option<String>,
    bearer: Option<String>,
    missing: &str,
) -> Result<messaging::auth::Claims, End> {
    let token = token
        .or(bearer)
        .ok_or_else(|| End::error(close::UNAUTHORIZED, "unauthorized", missing.to_owned()))?;
    app.tokens.verify(&token).map_err(|e| {
        let code = match e {
            TokenError::Expired => "token_expired",
            _ => "unauthorized",
        };
        End::error(close::UNAUTHORIZED, code, e.to_string())
    })
}

/// When a token that expires at `exp` (Unix seconds) stops being valid, as a timer instant.
pub(crate) fn token_deadline(exp: u64) -> tokio::time::Instant {
    let left = exp.saturating_sub(messaging::auth::unix_now());
    tokio::time::Instant::now() + Duration::from_secs(left)
}

/// A JSON message of the messenger or watch session, within the size limit, without NUL
/// characters in its strings.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, End> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(End::error(
            close::TOO_BIG,
            "message_too_big",
            format!("message too big; the limit is {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    if crate::extract::json_has_nul(text.as_bytes()) {
        return Err(End::error(
            close::BAD_MESSAGE,
            "bad_message",
            "text must not contain NUL characters (\\u0000)",
        ));
    }
    serde_json::from_str(text)
        .map_err(|e| End::error(close::BAD_MESSAGE, "bad_message", e.to_string()))
}
