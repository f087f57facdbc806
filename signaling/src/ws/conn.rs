//! One WebSocket connection as every session kind sees it: [`Conn`] (the shared state and the
//! socket), reading the next text frame within the size limit ([`Incoming`]), how a session
//! ends ([`End`]: close code and closing error), and the checks every session's first message
//! makes (version, token).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use messaging::auth::TokenError;

use crate::app::App;
use crate::protocol::{close, ServerMessage, MAX_MESSAGE_BYTES};

pub(crate) struct Conn {
    pub(crate) app: Arc<App>,
    pub(crate) socket: WebSocket,
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
    pub(crate) async fn send(&mut self, msg: &ServerMessage) -> bool {
        self.socket
            .send(Message::Text(msg.to_json().into()))
            .await
            .is_ok()
    }

    pub(crate) async fn finish(&mut self, end: End) {
        self.app.stats.record_close(end.code);
        if let Some((kind, message)) = end.error {
            tracing::debug!(code = end.code, kind, %message, "closing call connection");
            let _ = self
                .send(&ServerMessage::error(kind, message, Some(end.code)))
                .await;
        }
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code: end.code,
                reason: "".into(),
            })))
            .await;
    }

    pub(crate) async fn next(&mut self) -> Incoming {
        loop {
            match self.socket.recv().await {
                Some(Ok(Message::Text(t))) => return Incoming::Text(t.to_string()),
                Some(Ok(Message::Binary(_))) => {
                    return Incoming::Bad(End::error(
                        close::BAD_MESSAGE,
                        "bad_message",
                        "binary frames are not part of the protocol; send JSON text",
                    ))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None => return Incoming::Closed,
                // Frames beyond the transport's own limit (4x ours) end here; anything else is
                // a broken connection with nobody left to tell.
                Some(Err(e)) if e.to_string().contains("too long") => {
                    return Incoming::Bad(End::error(
                        close::TOO_BIG,
                        "message_too_big",
                        format!("message too big; the limit is {MAX_MESSAGE_BYTES} bytes"),
                    ))
                }
                Some(Err(e)) => {
                    tracing::debug!("call connection broke: {e}");
                    return Incoming::Closed;
                }
            }
        }
    }
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

/// A JSON message of the messenger or watch session, within the size limit.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, End> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(End::error(
            close::TOO_BIG,
            "message_too_big",
            format!("message too big; the limit is {MAX_MESSAGE_BYTES} bytes"),
        ));
    }
    serde_json::from_str(text)
        .map_err(|e| End::error(close::BAD_MESSAGE, "bad_message", e.to_string()))
}
