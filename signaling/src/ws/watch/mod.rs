//! The watch session on `/ws`: one viewer in one watch room (first message `watch`; protocol
//! in [`protocol`] and docs/protocol.md, "GAX watch party"). It admits the viewer, sends the
//! welcome, passes the viewer's requests to [`messaging::service::Service`] (controls,
//! grants) or the room (chat, reactions, buffering), and delivers the room's live events from
//! the [`WatchHub`](crate::hub::watch::WatchHub).
//!
//! Who may enter: a signed-in member of the room (user access token; role from the store), or
//! the holder of a share link (a token whose `room` claim is `watch:<room>`), who watches as a
//! guest. Only the host and controllers send controls; only the host grants.
//!
//! Clock sync happens here too: `time {t0}` is answered at once with the server's clock, so a
//! client can estimate its offset (NTP-style, several samples, lowest round trip wins).

pub mod protocol;

use std::time::Duration;

use messaging::auth::Claims;
use messaging::service::Viewer;
use messaging::watch::{self, WatchError, WatchEvent};
use messaging::WatchRoom;

use super::budget::Budget;
use super::conn::{check_version, session_claims, token_deadline, Conn, End, Incoming};
use crate::error::watch_status;
use crate::hub::watch::HubItem;
use crate::protocol::close;
use crate::watch::{call_room, control_from_parts, playable_url, server_now};
use protocol::{parse, send, CallInfo, ClientMsg, ServerMsg, You};

pub use protocol::{is_watch, VERSION};

/// Close code when the room does not exist.
pub const ROOM_NOT_FOUND: u16 = 4404;

/// Close code for a viewer that could not keep up (its queue overflowed).
pub const TOO_SLOW: u16 = 4429;

/// Requests that write or reach the whole room (controls, grants, chat, reactions, buffering
/// reports) one viewer may send in a burst; the budget refills at [`REFILL_PER_SEC`].
pub const BURST: f64 = 20.0;
/// See [`BURST`].
pub const REFILL_PER_SEC: f64 = 5.0;

/// How long a call token handed to a viewer (for the room's optional call) is valid.
pub const CALL_TTL: Duration = Duration::from_secs(3600);

fn now_ms() -> i64 {
    server_now() as i64
}

/// A short, single-line text of at most `max` characters, trimmed.
fn short_text(field: &str, s: &str, max: usize) -> Result<String, WatchError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(WatchError::BadInput(format!(
            "{field} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(s.to_owned())
}

/// The session's fixed facts.
struct Session {
    room: WatchRoom,
    viewer: Viewer,
    /// How others see this viewer: `user:<id>`, or `guest:<node>-<n>` for a guest.
    id: String,
    name: String,
}

/// Runs a watch session whose first frame was `first` until it ends.
pub(crate) async fn run(conn: &mut Conn, first: &str, bearer: Option<String>) -> End {
    let (version, room_id, token, name) = match parse(first) {
        Ok(ClientMsg::Watch {
            version,
            room,
            token,
            name,
        }) => (version, room, token, name),
        Ok(_) => {
            return End::error(
                close::BAD_MESSAGE,
                "watch_first",
                "the first message must be watch",
            )
        }
        Err(end) => return end,
    };
    let app = conn.app.clone();
    let claims = match check_version("watch", version, VERSION)
        .and_then(|()| session_claims(&app, token, bearer, "watch needs a token"))
    {
        Ok(c) => c,
        Err(end) => return end,
    };
    let refuse = |e: WatchError| {
        let code = match watch_status(&e).as_u16() {
            404 => ROOM_NOT_FOUND,
            403 => close::FORBIDDEN,
            s if s >= 500 => close::INTERNAL,
            _ => close::BAD_MESSAGE,
        };
        End::error(code, e.code(), e.to_string())
    };
    if !messaging::watch_rooms::is_room_id(&room_id) {
        return refuse(WatchError::RoomNotFound);
    }
    let room = match app.store.watch_room(&room_id).await {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    let viewer = match app.service.watch_viewer(&room, &claims).await {
        Ok(v) => v,
        Err(e) => return refuse(e),
    };
    // Register before reading the state: a change committed meanwhile arrives live too, and
    // states are applied by version, so nothing is missed or applied twice.
    let (viewer_id, mut live) = app.messenger.watch_hub.register(&room.id);
    let end = async {
        let (id, name) = match &viewer {
            Viewer::Member { user, .. } => {
                let name = match app.store.profile(*user).await {
                    Ok(p) => p.display_name,
                    Err(e) => return End::error(close::INTERNAL, "internal", e.to_string()),
                };
                (user.subject(), name)
            }
            Viewer::Guest { .. } => {
                let name = name
                    .as_deref()
                    .and_then(|n| short_text("name", n, 64).ok())
                    .unwrap_or_else(|| "guest".into());
                (
                    format!("guest:{}-{viewer_id}", app.messenger.bus.node().as_str()),
                    name,
                )
            }
        };
        let session = Session {
            room,
            viewer,
            id,
            name,
        };
        let (state, members) = match async {
            Ok::<_, WatchError>((
                app.service.watch_state(&session.room).await?,
                app.store.watch_members(&session.room.id).await?,
            ))
        }
        .await
        {
            Ok(v) => v,
            Err(e) => return refuse(e),
        };
        let call = {
            let mut call = Claims::for_room(
                &claims.sub,
                Some(&session.name),
                &call_room(&session.room.id),
                CALL_TTL,
            );
            // A guest's call ends with its share link.
            if matches!(session.viewer, Viewer::Guest { .. }) {
                call.exp = call.exp.min(claims.exp);
            }
            let claims = call;
            app.tokens.mint(&claims).ok().map(|token| CallInfo {
                room: call_room(&session.room.id),
                token,
            })
        };
        let source_url = playable_url(&app, &session.room.source);
        let welcome = ServerMsg::Welcome {
            version: VERSION,
            room: &session.room,
            you: You {
                id: &session.id,
                name: &session.name,
                role: session.viewer.role(),
            },
            state: &state,
            source_url: &source_url,
            server_time: server_now(),
            members: &members,
            call,
        };
        if !send(conn, &welcome).await {
            return End::normal(close::NORMAL);
        }
        let mut last_version = state.version;
        let mut budget = Budget::new(BURST, REFILL_PER_SEC, std::time::Instant::now());
        let mut shutdown = app.shutdown.clone();
        // A guest watches while its share link is valid, not a moment longer.
        let guest = matches!(session.viewer, Viewer::Guest { .. });
        let link_expiry = tokio::time::sleep_until(token_deadline(claims.exp));
        tokio::pin!(link_expiry);
        loop {
            tokio::select! {
                _ = &mut link_expiry, if guest => {
                    return End::error(close::UNAUTHORIZED, "token_expired", "the share link expired");
                }
                incoming = conn.next() => {
                    let text = match incoming {
                        Incoming::Text(t) => t,
                        Incoming::Closed => return End::normal(close::NORMAL),
                        Incoming::Bad(end) => return end,
                    };
                    let msg = match parse(&text) {
                        Ok(m) => m,
                        Err(end) => return end,
                    };
                    if let Some(end) = handle(conn, &session, &mut budget, msg).await {
                        return end;
                    }
                }
                item = live.recv() => {
                    let Some(item) = item else {
                        return End::error(TOO_SLOW, "too_slow", "the viewer fell behind; reconnect");
                    };
                    if !deliver(conn, &session, item, &mut last_version).await {
                        return End::normal(close::NORMAL);
                    }
                }
                _ = shutdown.changed() => return End::normal(close::GOING_AWAY),
            }
        }
    }
    .await;
    app.messenger.watch_hub.unregister(&room_id, viewer_id);
    end
}

/// Sends an error about one request (the session goes on), with the state as it is.
async fn refuse_request(conn: &mut Conn, session: &Session, e: &WatchError) -> bool {
    if e.is_internal() {
        tracing::warn!(room = %session.room.id, "watch request failed: {e}");
    }
    let state = conn.app.service.watch_state(&session.room).await.ok();
    let err = ServerMsg::Error {
        code: e.code(),
        message: e.to_string(),
        state: state.as_ref(),
    };
    send(conn, &err).await
}

/// One client request. Returns how the session ends, if it does.
async fn handle(
    conn: &mut Conn,
    session: &Session,
    budget: &mut Budget,
    msg: ClientMsg,
) -> Option<End> {
    let app = conn.app.clone();
    let room = &session.room.id;
    let free = matches!(
        msg,
        ClientMsg::Ping | ClientMsg::Time { .. } | ClientMsg::Watch { .. }
    );
    if !free && !budget.take(std::time::Instant::now()) {
        let refused = refuse_request(conn, session, &WatchError::RateLimited).await;
        return (!refused).then(|| End::normal(close::NORMAL));
    }
    let result: Result<(), WatchError> = match msg {
        ClientMsg::Watch { .. } => {
            return Some(End::error(
                close::BAD_MESSAGE,
                "bad_message",
                "watch is only the first message",
            ))
        }
        ClientMsg::Ping => {
            return (!send(conn, &ServerMsg::Pong).await).then(|| End::normal(close::NORMAL))
        }
        ClientMsg::Time { t0 } => {
            let reply = ServerMsg::Time {
                t0,
                server: server_now(),
            };
            return (!send(conn, &reply).await).then(|| End::normal(close::NORMAL));
        }
        ClientMsg::Control {
            action,
            version,
            position,
            rate,
        } => {
            async {
                let control = control_from_parts(&action, position, rate)?;
                app.service
                    .watch_may_control(&session.room, &session.viewer)
                    .await?;
                app.service
                    .watch_control(&session.room, &control, version)
                    .await?;
                Ok(())
            }
            .await
        }
        ClientMsg::Chat { text } => match short_text("text", &text, watch::CHAT_MAX) {
            Ok(text) => {
                let event = WatchEvent::Chat {
                    from: session.id.clone(),
                    name: session.name.clone(),
                    text,
                    at: now_ms(),
                };
                app.service.watch_publish(room, event).await;
                Ok(())
            }
            Err(e) => Err(e),
        },
        ClientMsg::Reaction { emoji } => match short_text("emoji", &emoji, watch::REACTION_MAX) {
            Ok(emoji) => {
                let event = WatchEvent::Reaction {
                    from: session.id.clone(),
                    name: session.name.clone(),
                    emoji,
                };
                app.service.watch_publish(room, event).await;
                Ok(())
            }
            Err(e) => Err(e),
        },
        ClientMsg::Grant { user, role } => match &session.viewer {
            Viewer::Member { user: me, .. } => {
                match app.store.set_watch_member(*me, room, user, role).await {
                    Ok(()) => {
                        app.service.watch_members_changed(room).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Viewer::Guest { .. } => Err(WatchError::NotHost),
        },
        ClientMsg::Buffering { buffering } => {
            let event = WatchEvent::Buffering {
                from: session.id.clone(),
                name: session.name.clone(),
                buffering,
            };
            app.service.watch_publish(room, event).await;
            Ok(())
        }
    };
    match result {
        Ok(()) => None,
        Err(e) => (!refuse_request(conn, session, &e).await).then(|| End::normal(close::NORMAL)),
    }
}

/// Sends one live item; false if the connection is gone. States older than one already sent
/// are skipped (they may arrive out of order from different nodes).
async fn deliver(
    conn: &mut Conn,
    session: &Session,
    item: HubItem,
    last_version: &mut u64,
) -> bool {
    let event = match item {
        HubItem::Resync => match conn.app.service.watch_state(&session.room).await {
            Ok(state) => {
                *last_version = state.version;
                return send(conn, &ServerMsg::State { state: &state }).await;
            }
            Err(e) => {
                tracing::warn!(room = %session.room.id, "watch resync: {e}");
                return true;
            }
        },
        HubItem::Event(e) => e,
    };
    let msg = match &*event {
        WatchEvent::State { state } => {
            if state.version <= *last_version {
                return true;
            }
            *last_version = state.version;
            ServerMsg::State { state }
        }
        WatchEvent::Members { members } => ServerMsg::Members { members },
        WatchEvent::Chat {
            from,
            name,
            text,
            at,
        } => ServerMsg::Chat {
            from,
            name,
            text,
            at: *at,
        },
        WatchEvent::Reaction { from, name, emoji } => ServerMsg::Reaction { from, name, emoji },
        WatchEvent::Buffering {
            from,
            name,
            buffering,
        } => {
            if *from == session.id {
                return true;
            }
            ServerMsg::Buffering {
                from,
                name,
                buffering: *buffering,
            }
        }
    };
    send(conn, &msg).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_burst_then_refills() {
        let t0 = std::time::Instant::now();
        let mut b = Budget::new(BURST, REFILL_PER_SEC, t0);
        assert!((0..BURST as usize).all(|_| b.take(t0)));
        assert!(!b.take(t0), "the burst is spent");
        let later = t0 + std::time::Duration::from_secs_f64(1.0 / REFILL_PER_SEC);
        assert!(b.take(later));
        assert!(!b.take(later));
        let much_later = later + std::time::Duration::from_secs(3600);
        assert!(
            (0..BURST as usize).all(|_| b.take(much_later)),
            "never above the burst"
        );
        assert!(!b.take(much_later));
    }

    #[test]
    fn short_texts_are_checked() {
        assert_eq!(short_text("t", "  hi ", 5).unwrap(), "hi");
        assert!(short_text("t", "", 5).is_err());
        assert!(short_text("t", "abcdef", 5).is_err());
        assert!(short_text("t", "a\u{7}", 5).is_err());
    }
}
