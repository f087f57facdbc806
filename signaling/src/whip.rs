//! WHIP ingest (RFC 9725) and WHEP egress (the WHEP draft): one HTTP request publishes into a
//! call room, or plays one participant of it.
//!
//! - `POST /whip/{room}` publishes, for broadcasters (OBS, GStreamer, `simple-whip-client`).
//!   The publisher joins the room like a call participant that only publishes: the others see
//!   it join and its tracks appear.
//! - `POST /whep/{room}/{participant}` plays `participant`'s tracks on the `recvonly` m-lines
//!   of the player's offer (no renegotiation: one track per m-line of its kind, the simulcast
//!   layer chosen by the bandwidth estimate unless `?layer=q|h|f` pins one). Players are not
//!   shown to the room.
//!
//! Both carry the SDP offer (`Content-Type: application/sdp`) and a call token
//! (`Authorization: Bearer`) that grants the room and publishing (WHIP) or subscribing (WHEP).
//! The answer comes back as `201 Created` with the session's URL in `Location`; `DELETE` on
//! that URL ends it. A session ends on `DELETE`, when its media connection ends, or when its
//! media never connects within the media timeout; everything it held is freed then. Trickle
//! ICE (`PATCH`) is not supported: 405 with `Allow: DELETE`, as RFC 9725 asks.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sfu_core::{Grants, PeerEvent, Profile};
use tokio::sync::oneshot;

use crate::app::App;
use crate::error::{ApiError, ErrorBody};
use crate::extract::bearer_token;
use crate::participant::Departure;
use crate::whip_sessions::{Protocol, Session};

/// Largest SDP offer accepted.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

fn checked_claims(app: &App, headers: &HeaderMap) -> Result<messaging::auth::Claims, ApiError> {
    let token = bearer_token(headers)
        .ok_or_else(|| ApiError::Unauthorized("send Authorization: Bearer <call token>".into()))?;
    app.tokens
        .verify(&token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

/// The bearer token's claims, if it grants call room `room` (401 / 403 otherwise).
fn room_claims(
    app: &App,
    headers: &HeaderMap,
    room: &str,
) -> Result<messaging::auth::Claims, ApiError> {
    let claims = checked_claims(app, headers)?;
    if claims.room.as_deref() != Some(room) {
        return Err(ApiError::Forbidden(format!(
            "the token does not grant room {room:?}"
        )));
    }
    Ok(claims)
}

/// `POST /whip/{room}`: publish into `room` (WHIP, RFC 9725).
#[utoipa::path(post, path = "/whip/{room}", tag = "calls",
    params(("room" = String, Path, description = "The call room (granted by the token)")),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session URL", body = String, content_type = "application/sdp"),
        (status = 400, description = "No media, unparsable, or nothing receivable", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Another room, or no publish grant", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "Too many sessions started with this token's subject; see Retry-After", body = ErrorBody),
    ))]
pub async fn publish(
    State(app): State<Arc<App>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let claims = room_claims(&app, &headers, &room)?;
    app.whip_starts
        .take(&claims.sub, std::time::Instant::now())?;
    if !claims.can_publish {
        return Err(ApiError::Forbidden(
            "the token does not allow publishing".into(),
        ));
    }
    let offer = checked_offer(&headers, body)?;
    if !sends_media(&offer) {
        return Err(ApiError::BadRequest(
            "a WHIP offer must send audio or video, but every m-line is recvonly or inactive \
             (to play a participant, use WHEP)"
                .into(),
        ));
    }
    start(app, room, claims, offer, None).await
}

/// The query of a WHEP request.
#[derive(Debug, serde::Deserialize)]
pub struct PlayQuery {
    /// Pin this simulcast layer (`q`, `h` or `f`) instead of the one the bandwidth allows.
    layer: Option<String>,
}

/// `POST /whep/{room}/{participant}[?layer=q|h|f]`: play `participant`'s tracks (WHEP).
#[utoipa::path(post, path = "/whep/{room}/{participant}", tag = "calls",
    params(("room" = String, Path, description = "The call room (granted by the token)"),
        ("participant" = String, Path, description = "Whose tracks to play, e.g. `p3` (the id in the room's participant list, or in a WHIP session's Location)"),
        ("layer" = Option<String>, Query, description = "Pin this simulcast layer of the video: `q`, `h` or `f` (default: chosen by the bandwidth estimate)")),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer with `recvonly` audio and/or video"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The SDP answer; `Location` is the session URL", body = String, content_type = "application/sdp"),
        (status = 400, description = "No media, unparsable, nothing receivable, or an unknown layer", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Another room, or no subscribe grant", body = ErrorBody),
        (status = 404, description = "No such participant in the room", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "Too many sessions started with this token's subject; see Retry-After", body = ErrorBody),
    ))]
pub async fn play(
    State(app): State<Arc<App>>,
    Path((room, participant)): Path<(String, String)>,
    Query(query): Query<PlayQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // The same layer names as a call session's pin (`sfu_core::layers::layer_index`).
    let layer = match query.layer.as_deref() {
        None => None,
        Some(name) => Some(sfu_core::layers::layer_index(name).ok_or_else(|| {
            ApiError::BadRequest(format!("unknown layer {name:?}: use q, h or f"))
        })?),
    };
    let claims = room_claims(&app, &headers, &room)?;
    app.whip_starts
        .take(&claims.sub, std::time::Instant::now())?;
    if !claims.can_subscribe {
        return Err(ApiError::Forbidden(
            "the token does not allow receiving media".into(),
        ));
    }
    let offer = checked_offer(&headers, body)?;
    let publisher = participant
        .strip_prefix('p')
        .filter(|n| !n.starts_with('+'))
        .and_then(|n| n.parse().ok())
        .map(sfu_core::ParticipantId)
        .filter(|p| app.sfu.rooms().is_listed(&room, *p))
        .ok_or_else(|| {
            ApiError::NotFound(format!("no participant {participant:?} in room {room:?}"))
        })?;
    start(app, room, claims, offer, Some((publisher, layer))).await
}

/// The offer of a WHIP/WHEP request: `application/sdp`, at most [`MAX_OFFER_BYTES`], UTF-8,
/// with at least one audio or video m-line.
fn checked_offer(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
    {
        return Err(ApiError::Coded {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: "send the offer as Content-Type: application/sdp".into(),
        });
    }
    let too_large = || ApiError::Coded {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "offer_too_large",
        message: format!("the offer is larger than {MAX_OFFER_BYTES} bytes"),
    };
    // Past the server's body limit the body is not even read: the same JSON 413.
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    if body.len() > MAX_OFFER_BYTES {
        return Err(too_large());
    }
    let offer = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the offer is not UTF-8".into()))?;
    if !offer
        .lines()
        .any(|l| l.starts_with("m=audio") || l.starts_with("m=video"))
    {
        return Err(ApiError::BadRequest(
            "the offer has no audio or video".into(),
        ));
    }

    Ok(offer)
}

/// Whether an offer has an audio or video m-line that sends (`sendrecv`, the default, or
/// `sendonly`, on the m-line or else at session level).
pub(crate) fn sends_media(offer: &str) -> bool {
    fn direction(line: &str) -> Option<&str> {
        let d = line.trim().strip_prefix("a=")?;
        matches!(d, "sendrecv" | "sendonly" | "recvonly" | "inactive").then_some(d)
    }
    let (session, media) = offer.split_once("\nm=").unwrap_or((offer, ""));
    let session_dir = session.lines().find_map(direction).unwrap_or("sendrecv");
    media.split("\nm=").any(|section| {
        let av = section.starts_with("audio") || section.starts_with("video");
        let dir = section.lines().find_map(direction).unwrap_or(session_dir);
        av && matches!(dir, "sendrecv" | "sendonly")
    })
}

/// Joins the SFU (as a publisher, or as a player of `follow`'s publisher, with its pinned
/// layer if any) and keeps the session until it
/// ends; answers 201 with the SDP answer and the session's `Location`.
async fn start(
    app: Arc<App>,
    room: String,
    claims: messaging::auth::Claims,
    offer: String,
    follow: Option<(sfu_core::ParticipantId, Option<u8>)>,
) -> Result<Response, ApiError> {
    let (peer_tx, mut peer_rx) = sfu_core::peer_events(sfu_core::events::DEFAULT_CAPACITY);
    let joined = match follow {
        None => {
            let grants = Grants {
                publish: true,
                subscribe: false,
            };
            app.sfu.join(&room, grants, offer, peer_tx).await
        }
        Some((publisher, layer)) => {
            app.sfu
                .join_player(&room, publisher, layer, offer, peer_tx)
                .await
        }
    };
    let joined = joined.map_err(|e| match e.is_client_error() {
        true => ApiError::BadRequest(format!("the offer was refused: {e}")),
        false => ApiError::Internal(e.to_string()),
    })?;
    // Nothing we can forward (every m-line refused, e.g. only codecs we do not support).
    if !accepts_media(&joined.answer) {
        app.sfu.leave(joined.placement, &room);
        return Err(ApiError::BadRequest(
            "none of the offered media can be received (supported: Opus, VP8, H.264)".into(),
        ));
    }

    let id = joined.placement.participant.to_string();
    let session = format!("{id}-{:016x}", rand::random::<u64>());
    let protocol = match follow {
        None => Protocol::Whip,
        Some(_) => Protocol::Whep,
    };
    if protocol == Protocol::Whip {
        // A WHIP publisher gets no room broadcasts; it only shows up in them. A WHEP player
        // does not show up at all.
        let name = claims.name.clone().unwrap_or_else(|| claims.sub.clone());
        let profile = Profile {
            identity: claims.sub.clone(),
            name,
        };
        app.sfu
            .rooms()
            .enter(&room, joined.placement.participant, profile);
    }
    let (stop_tx, mut stop_rx) = oneshot::channel();
    app.whip.lock().insert(
        session.clone(),
        Session {
            protocol,
            room: room.clone(),
            owner: claims.sub.clone(),
            stop: stop_tx,
        },
    );
    tracing::info!(%room, participant = %id, ?protocol, "WHIP/WHEP session started");

    let task_app = app.clone();
    let task_session = session.clone();
    let task_room = room.clone();
    tokio::spawn(async move {
        let guard = Departure {
            app: task_app.clone(),
            room: task_room.clone(),
            placement: joined.placement,
        };
        let media_deadline = tokio::time::sleep(task_app.media_timeout);
        tokio::pin!(media_deadline);
        let mut media_up = false;
        let mut shutdown = task_app.shutdown.clone();
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = &mut media_deadline, if !media_up => {
                    tracing::info!(room = %task_room, participant = %id, "WHIP/WHEP media never connected");
                    break;
                }
                _ = shutdown.changed() => break,
                ev = peer_rx.recv() => match ev {
                    Ok(Some(PeerEvent::Connected)) => media_up = true,
                    Ok(Some(PeerEvent::Published(t))) => task_app.sfu.rooms().published(&task_room, t),
                    Ok(Some(PeerEvent::Closed) | None) => break,
                    Ok(Some(_)) => {}
                    // This task reads at once, so only a stalled node gets here; the session's
                    // view of the room is incomplete, so it ends rather than go on wrong.
                    Err(e) => {
                        tracing::warn!(room = %task_room, participant = %id, "WHIP/WHEP session ended: {e}");
                        break;
                    }
                },
            }
        }
        task_app.whip.lock().remove(&task_session);
        drop(guard);
    });

    let location = match follow {
        None => format!("/whip/{room}/{session}"),
        Some((p, _)) => format!("/whep/{room}/{p}/{session}"),
    };
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
        ],
        joined.answer,
    )
        .into_response())
}

/// `DELETE /whip/{room}/{session}`: end a WHIP session (its creator only).
#[utoipa::path(delete, path = "/whip/{room}/{session}", tag = "calls",
    params(("room" = String, Path), ("session" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Ended"), (status = 401, body = ErrorBody),
        (status = 403, description = "Someone else's session", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn stop(
    State(app): State<Arc<App>>,
    Path((room, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    end(&app, Protocol::Whip, &room, &session, &headers)
}

/// `DELETE /whep/{room}/{participant}/{session}`: end a WHEP session (its creator only).
#[utoipa::path(delete, path = "/whep/{room}/{participant}/{session}", tag = "calls",
    params(("room" = String, Path), ("participant" = String, Path), ("session" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Ended"), (status = 401, body = ErrorBody),
        (status = 403, description = "Someone else's session", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn stop_playing(
    State(app): State<Arc<App>>,
    Path((room, _participant, session)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    end(&app, Protocol::Whep, &room, &session, &headers)
}

/// `PATCH /whip/{room}/{session}`: trickle ICE and ICE restarts are not supported, so (RFC
/// 9725 §4.3.1) 405 with `Allow: DELETE`; offers must carry their candidates.
#[utoipa::path(patch, path = "/whip/{room}/{session}", tag = "calls",
    params(("room" = String, Path), ("session" = String, Path)),
    responses((status = 405, description = "Trickle ICE and ICE restarts are not supported", body = ErrorBody)))]
pub async fn trickle() -> Response {
    no_trickle()
}

/// `PATCH /whep/{room}/{participant}/{session}`: as for WHIP, 405 (no trickle ICE).
#[utoipa::path(patch, path = "/whep/{room}/{participant}/{session}", tag = "calls",
    params(("room" = String, Path), ("participant" = String, Path), ("session" = String, Path)),
    responses((status = 405, description = "Trickle ICE and ICE restarts are not supported", body = ErrorBody)))]
pub async fn trickle_playing() -> Response {
    no_trickle()
}

fn no_trickle() -> Response {
    let mut res = ApiError::Coded {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "trickle_not_supported",
        message: "trickle ICE and ICE restarts are not supported: put every candidate in the offer"
            .into(),
    }
    .into_response();
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static("DELETE"));
    res
}

fn end(
    app: &App,
    protocol: Protocol,
    room: &str,
    session: &str,
    headers: &HeaderMap,
) -> Result<StatusCode, ApiError> {
    let claims = checked_claims(app, headers)?;
    let mut sessions = app.whip.lock();
    match sessions.get(session) {
        Some(s) if s.protocol == protocol && s.room == room && s.owner == claims.sub => {}
        Some(s) if s.protocol == protocol && s.room == room => {
            return Err(ApiError::Forbidden(
                "this session belongs to someone else".into(),
            ))
        }
        _ => return Err(ApiError::NotFound("no such session".into())),
    }
    if let Some(s) = sessions.remove(session) {
        let _ = s.stop.send(());
    }
    Ok(StatusCode::OK)
}

/// True if the answer accepts at least one audio or video m-line (port not 0).
pub(crate) fn accepts_media(answer: &str) -> bool {
    answer.lines().any(|l| {
        (l.starts_with("m=audio ") || l.starts_with("m=video "))
            && l.split_whitespace().nth(1).is_some_and(|port| port != "0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_refusing_every_m_line_accepts_nothing() {
        assert!(accepts_media("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
        assert!(!accepts_media("v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\n"));
        assert!(!accepts_media(
            "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
        ));
    }

    #[test]
    fn a_publish_offer_must_send_something() {
        let m = |dirs: &[&str]| {
            let mut o = String::from("v=0\r\ns=-\r\n");
            for (i, d) in dirs.iter().enumerate() {
                let kind = if i % 2 == 0 { "audio" } else { "video" };
                o.push_str(&format!("m={kind} 9 UDP/TLS/RTP/SAVPF 96\r\n"));
                if !d.is_empty() {
                    o.push_str(&format!("a={d}\r\n"));
                }
            }
            o
        };
        assert!(sends_media(&m(&["sendonly"])));
        assert!(sends_media(&m(&["recvonly", "sendrecv"])));
        assert!(sends_media(&m(&[""])), "sendrecv is the default");
        assert!(!sends_media(&m(&["recvonly"])));
        assert!(!sends_media(&m(&["recvonly", "inactive"])));
        assert!(!sends_media(
            "v=0\r\na=recvonly\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        ));
        assert!(!sends_media(
            "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sendrecv\r\n"
        ));
    }
}
