//! One call connection on `/ws`: authenticate, join the room, relay SDP between the browser
//! and the media plane, fan out room events, and clean up on every way out.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use messaging::auth::TokenError;
use sfu_core::{Control, Grants, PeerEvent, SfuError};
use tokio::sync::mpsc;

use crate::protocol::{
    close, parse, ClientMessage, ParticipantInfo, ServerMessage, Track, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
};
use crate::App;

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
    let bearer = crate::http::bearer_token(&headers);
    // Frames above our own limit still reach `parse`, which answers 1009 with a message;
    // only far larger ones are cut by the transport.
    ws.max_message_size(MAX_MESSAGE_BYTES * 4)
        .on_upgrade(move |socket| async move {
            let mut conn = Conn { app, socket };
            conn.run(bearer).await;
        })
}

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
    async fn send(&mut self, msg: &ServerMessage) -> bool {
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

    /// Sends a layer-choice input to the media plane. A request about a track or layer that
    /// does not exist is answered with an error and the call goes on; other failures end it.
    async fn control(&mut self, who: sfu_core::Placement, control: Control) -> Option<End> {
        match self.app.sfu.control(who, control).await {
            Ok(()) => None,
            Err(e) if e.is_bad_request() => {
                let code = match e {
                    SfuError::UnknownLayer => "unknown_layer",
                    SfuError::NotVideo => "not_video",
                    _ => "unknown_track",
                };
                let sent = self
                    .send(&ServerMessage::error(code, e.to_string(), None))
                    .await;
                (!sent).then(|| End::normal(close::NORMAL))
            }
            Err(e) => Some(sfu_end(e)),
        }
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
        if crate::chat_ws::is_hello(&first) {
            let end = crate::chat_ws::run(self, &first, bearer).await;
            return self.finish(end).await;
        }
        if crate::watch_ws::is_watch(&first) {
            let end = crate::watch_ws::run(self, &first, bearer).await;
            return self.finish(end).await;
        }
        let join = match parse(&first) {
            Ok(m @ ClientMessage::Join { .. }) => m,
            Ok(_) => {
                return self
                    .finish(End::error(
                        close::BAD_MESSAGE,
                        "join_first",
                        "the first message must be join",
                    ))
                    .await
            }
            Err(e) => {
                return self
                    .finish(End::error(e.close_code(), e.code(), e.to_string()))
                    .await
            }
        };
        match self.joined(join, bearer).await {
            Ok(end) | Err(end) => self.finish(end).await,
        }
    }

    /// Validates the join, enters the room and runs the session until it ends.
    async fn joined(&mut self, join: ClientMessage, bearer: Option<String>) -> Result<End, End> {
        let ClientMessage::Join {
            version,
            token,
            room,
            name,
            sdp,
        } = join
        else {
            return Err(End::error(
                close::BAD_MESSAGE,
                "join_first",
                "expected join",
            ));
        };
        check_version("protocol", version, PROTOCOL_VERSION)?;
        let claims = session_claims(
            &self.app,
            token,
            bearer,
            "a token is required (join.token or Authorization: Bearer)",
        )?;
        let granted = claims.room.clone().ok_or_else(|| {
            End::error(
                close::FORBIDDEN,
                "forbidden",
                "the token grants no call room",
            )
        })?;
        let room = room.unwrap_or_else(|| granted.clone());
        if room != granted {
            return Err(End::error(
                close::FORBIDDEN,
                "forbidden",
                format!("the token grants room {granted:?}, not {room:?}"),
            ));
        }
        let name: String = name
            .or(claims.name.clone())
            .unwrap_or_else(|| claims.sub.clone())
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        let grants = Grants {
            publish: claims.can_publish,
            subscribe: claims.can_subscribe,
        };

        let (peer_tx, mut peer_rx) = mpsc::unbounded_channel();
        let joined = self
            .app
            .sfu
            .join(&room, grants, sdp, peer_tx)
            .await
            .map_err(sfu_end)?;
        let id = joined.placement.participant.to_string();
        let me = ParticipantInfo {
            id: id.clone(),
            identity: claims.sub.clone(),
            name,
            audio_muted: false,
            video_muted: false,
        };
        let (room_tx, mut room_rx) = mpsc::unbounded_channel();
        let others = self.app.rooms.enter(&room, me.clone(), room_tx);
        tracing::info!(%room, participant = %id, "joined");
        let mut guard = Departure {
            app: self.app.clone(),
            room: room.clone(),
            id: id.clone(),
            placement: joined.placement,
            published: Vec::new(),
        };
        let ok = self
            .send(&ServerMessage::Joined {
                version: PROTOCOL_VERSION,
                participant: me,
                room: room.clone(),
                sdp: joined.answer,
                participants: others,
            })
            .await;
        if !ok {
            return Ok(End::normal(close::NORMAL));
        }

        let mut shutdown = self.app.shutdown.clone();
        // A participant whose media never connects (blocked UDP, wrong --media-ip) is told so
        // instead of sitting in the room as a black tile.
        let media_deadline = tokio::time::sleep(self.app.media_timeout);
        tokio::pin!(media_deadline);
        let mut media_up = false;
        let end = loop {
            tokio::select! {
                _ = &mut media_deadline, if !media_up => {
                    break End::error(
                        close::MEDIA_FAILED,
                        "media_timeout",
                        format!("no media connection within {:?} (is UDP to the media port blocked?)", self.app.media_timeout),
                    );
                }
                incoming = self.next() => {
                    let text = match incoming {
                        Incoming::Text(t) => t,
                        Incoming::Closed => break End::normal(close::NORMAL),
                        Incoming::Bad(end) => break end,
                    };
                    match parse(&text) {
                        Ok(ClientMessage::Answer { sdp }) => {
                            if let Err(e) = self.app.sfu.answer(joined.placement, sdp).await {
                                break sfu_end(e);
                            }
                        }
                        Ok(ClientMessage::Mute { kind, muted }) => {
                            self.app.rooms.set_muted(&room, &id, kind, muted);
                        }
                        Ok(ClientMessage::VideoSize { mid, width, height: _ }) => {
                            if let Some(end) = self.control(joined.placement, Control::VideoSize { mid, width }).await {
                                break end;
                            }
                        }
                        Ok(ClientMessage::PinLayer { mid, layer }) => {
                            if let Some(end) = self.control(joined.placement, Control::PinLayer { mid, layer }).await {
                                break end;
                            }
                        }
                        Ok(ClientMessage::MaxBitrate { bps }) => {
                            if let Some(end) = self.control(joined.placement, Control::MaxBitrate { bps }).await {
                                break end;
                            }
                        }
                        Ok(ClientMessage::Ping) => {
                            if !self.send(&ServerMessage::Pong).await {
                                break End::normal(close::NORMAL);
                            }
                        }
                        Ok(ClientMessage::Leave) => break End::normal(close::NORMAL),
                        Ok(ClientMessage::Join { .. }) => {
                            break End::error(close::BAD_MESSAGE, "already_joined", "join was sent twice")
                        }
                        Err(e) => break End::error(e.close_code(), e.code(), e.to_string()),
                    }
                }
                Some(msg) = room_rx.recv() => {
                    if !self.send(&msg).await {
                        break End::normal(close::NORMAL);
                    }
                }
                ev = peer_rx.recv() => {
                    let msg = match ev {
                        Some(PeerEvent::Offer { sdp, added, removed }) => ServerMessage::Offer {
                            sdp,
                            tracks: added
                                .into_iter()
                                .map(|t| Track { mid: t.mid, participant: t.publisher.to_string(), kind: t.kind.into() })
                                .collect(),
                            removed,
                        },
                        Some(PeerEvent::Published(t)) => {
                            let track = Track { mid: t.mid, participant: id.clone(), kind: t.kind.into() };
                            guard.published.push(track.clone());
                            let msg = ServerMessage::TrackPublished { track };
                            self.app.rooms.broadcast(&room, &id, &msg);
                            msg
                        }
                        Some(PeerEvent::LayerSwitched { mid, layer, reason, width }) => ServerMessage::Layer {
                            mid,
                            layer: layer.to_owned(),
                            reason: reason.as_str().to_owned(),
                            width,
                        },
                        Some(PeerEvent::ActiveSpeaker(who)) => ServerMessage::ActiveSpeaker {
                            participant: who.map(|p| p.to_string()),
                        },
                        Some(PeerEvent::Connected) => {
                            media_up = true;
                            ServerMessage::MediaConnected
                        }
                        Some(PeerEvent::Closed) | None => {
                            break End::error(close::MEDIA_FAILED, "media_failed", "the media connection ended")
                        }
                    };
                    if !self.send(&msg).await {
                        break End::normal(close::NORMAL);
                    }
                }
                _ = shutdown.changed() => break End::error(close::GOING_AWAY, "shutdown", "the server is shutting down"),
            }
        };
        drop(guard);
        Ok(end)
    }
}

/// How an error of the media plane ends the connection: 4415 for the client's SDP, 4500 for
/// our own faults (logged).
fn sfu_end(e: SfuError) -> End {
    if e.is_client_error() {
        End::error(close::BAD_SDP, "bad_sdp", e.to_string())
    } else {
        tracing::error!("media plane error: {e}");
        End::error(close::INTERNAL, "internal", e.to_string())
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

/// Leaves the media plane and the room however the connection ends (even on panic).
pub(crate) struct Departure {
    pub(crate) app: Arc<App>,
    pub(crate) room: String,
    pub(crate) id: String,
    pub(crate) placement: sfu_core::Placement,
    pub(crate) published: Vec<Track>,
}

impl Drop for Departure {
    fn drop(&mut self) {
        self.app.sfu.leave(self.placement, &self.room);
        for t in &self.published {
            self.app.rooms.broadcast(
                &self.room,
                &self.id,
                &ServerMessage::TrackUnpublished { track: t.clone() },
            );
        }
        self.app.rooms.leave(&self.room, &self.id);
        tracing::info!(room = %self.room, participant = %self.id, "left");
    }
}
