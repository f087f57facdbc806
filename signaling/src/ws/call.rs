//! The call session: a connection whose first message is `join`. Validate the join against
//! the token, enter the room, relay SDP between the browser and the media plane, pass
//! layer-choice inputs on, fan out room events, and leave on every way out ([`Departure`]).

use sfu_core::{Control, Grants, PeerEvent, Profile, SfuError};

use super::conn::{check_version, session_claims, Conn, End, Incoming};
use crate::participant::Departure;
use crate::protocol::{
    close, parse, ClientMessage, ParticipantInfo, ServerMessage, Track, PROTOCOL_VERSION,
};

/// Runs a call whose first frame was `first` until it ends.
pub(super) async fn run(conn: &mut Conn, first: &str, bearer: Option<String>) -> End {
    let join = match parse(first) {
        Ok(m @ ClientMessage::Join { .. }) => m,
        Ok(_) => {
            return End::error(
                close::BAD_MESSAGE,
                "join_first",
                "the first message must be join",
            )
        }
        Err(e) => return End::error(e.close_code(), e.code(), e.to_string()),
    };
    match conn.joined(join, bearer).await {
        Ok(end) | Err(end) => end,
    }
}

impl Conn {
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

        let (peer_tx, mut peer_rx) = sfu_core::peer_events(sfu_core::events::DEFAULT_CAPACITY);
        let joined = self
            .app
            .sfu
            .join(&room, grants, sdp, peer_tx)
            .await
            .map_err(sfu_end)?;
        let who = joined.placement.participant;
        let guard = Departure {
            app: self.app.clone(),
            room: room.clone(),
            placement: joined.placement,
        };
        let profile = Profile {
            identity: claims.sub.clone(),
            name: name.clone(),
        };
        let others = self
            .app
            .sfu
            .rooms()
            .enter(&room, who, profile)
            .ok_or_else(|| sfu_end(SfuError::UnknownParticipant))?;
        tracing::info!(%room, participant = %who, "joined");
        let me = ParticipantInfo {
            id: who.to_string(),
            identity: claims.sub.clone(),
            name,
            audio_muted: false,
            video_muted: false,
        };
        let ok = self
            .send(&ServerMessage::Joined {
                version: PROTOCOL_VERSION,
                participant: me,
                room: room.clone(),
                sdp: joined.answer,
                participants: others.into_iter().map(ParticipantInfo::from).collect(),
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
                            self.app.sfu.rooms().set_muted(&room, who, kind.into(), muted);
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
                ev = peer_rx.recv() => {
                    let Ok(ev) = ev else {
                        break End::error(close::TOO_SLOW, "too_slow", "the client fell behind its events; reconnect and join again");
                    };
                    let msg = match ev {
                        Some(PeerEvent::Offer { sdp, added, removed }) => ServerMessage::Offer {
                            sdp,
                            tracks: added
                                .into_iter()
                                .map(Track::from)
                                .collect(),
                            removed,
                        },
                        Some(PeerEvent::Published(t)) => {
                            self.app.sfu.rooms().published(&room, t.clone());
                            ServerMessage::TrackPublished { track: t.into() }
                        }
                        Some(PeerEvent::Room(event)) => ServerMessage::room_event(event),
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
