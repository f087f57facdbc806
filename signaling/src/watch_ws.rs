//! Watch parties, live: the `/ws` session of one viewer in one watch room (first message
//! `watch`; protocol in docs/protocol.md, "GAX watch party"), the [`WatchHub`] that delivers a
//! room's events to this node's viewers, and the write path of controls (validate against the
//! state machine in [`messaging::watch`], compare-and-set in the [`PlaybackStore`], then
//! announce on the bus so viewers on every node hear it).
//!
//! Who may enter: a signed-in member of the room (user access token; role from the store), or
//! the holder of a share link (a token whose `room` claim is `watch:<room>`), who watches as a
//! guest. Only the host and controllers send controls; only the host grants.
//!
//! Clock sync happens here too: `time {t0}` is answered at once with the server's clock, so a
//! client can estimate its offset (NTP-style, several samples, lowest round trip wins).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::Message as WsMessage;
use messaging::auth::Claims;
use messaging::bus::Event;
use messaging::watch::{self, Control, Playback, Source, WatchError, WatchEvent, WatchRole};
use messaging::{PlaybackStore, UserId, WatchMember, WatchRoom};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::protocol::close;
use crate::ws::{Conn, End, Incoming};
use crate::App;

/// The watch protocol version.
pub const VERSION: u32 = 1;

/// Close code when the room does not exist.
pub const ROOM_NOT_FOUND: u16 = 4404;

/// Close code for a viewer that could not keep up (its queue overflowed).
pub const TOO_SLOW: u16 = 4429;

/// Events one viewer may have queued before it counts as too slow.
pub const VIEWER_QUEUE: usize = 256;

/// Requests that write or reach the whole room (controls, grants, chat, reactions, buffering
/// reports) one viewer may send in a burst; the budget refills at [`REFILL_PER_SEC`].
pub const BURST: f64 = 20.0;
/// See [`BURST`].
pub const REFILL_PER_SEC: f64 = 5.0;

/// How long a call token handed to a viewer (for the room's optional call) is valid.
pub const CALL_TTL: Duration = Duration::from_secs(3600);

/// The call room of a watch room; a share link's token grants exactly this room.
pub fn call_room(room: &str) -> String {
    format!("watch:{room}")
}

/// How long the signed link to a file source is valid (a viewer gets a fresh one each time it
/// joins).
pub const SOURCE_LINK_TTL: Duration = Duration::from_secs(12 * 3600);

/// The URL a browser plays a source from: URL sources as they are; uploaded files as a signed,
/// time-limited link to the file API, which needs no header, so a `<video>` can use it (the
/// room's members and link holders may read the room's file).
pub fn playable_url(app: &App, source: &Source) -> String {
    match source {
        Source::Url { url } => url.clone(),
        Source::File { file } => match app.signed_file_url(file, SOURCE_LINK_TTL) {
            Ok((url, _)) => url,
            Err(e) => {
                tracing::warn!(file, "cannot sign a link to a watch room's file: {e}");
                format!("/api/files/{file}")
            }
        },
    }
}

/// The server clock in Unix milliseconds, with sub-millisecond precision (for clock sync).
pub fn server_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn now_ms() -> i64 {
    server_now() as i64
}

/// Who is watching: a member (an account with a role) or a guest with a share link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    Member { user: UserId, role: WatchRole },
    Guest { sub: String },
}

impl Viewer {
    pub fn role(&self) -> WatchRole {
        match self {
            Viewer::Member { role, .. } => *role,
            Viewer::Guest { .. } => WatchRole::Viewer,
        }
    }
}

/// One item queued to a viewer.
#[derive(Debug, Clone)]
pub enum HubItem {
    Event(Arc<WatchEvent>),
    /// Events may have been lost (the bus lagged): re-read the state and send it.
    Resync,
}

type ViewerId = u64;

#[derive(Default)]
struct HubState {
    next: ViewerId,
    rooms: HashMap<String, HashMap<ViewerId, mpsc::Sender<HubItem>>>,
}

/// This node's viewers, by room.
#[derive(Default)]
pub struct WatchHub {
    state: Mutex<HubState>,
}

impl WatchHub {
    /// Registers a viewer of `room`; its events arrive on the receiver, which ends when the
    /// hub drops it (too slow).
    pub fn register(&self, room: &str) -> (ViewerId, mpsc::Receiver<HubItem>) {
        let (tx, rx) = mpsc::channel(VIEWER_QUEUE);
        let mut st = self.lock();
        st.next += 1;
        let id = st.next;
        st.rooms.entry(room.to_owned()).or_default().insert(id, tx);
        (id, rx)
    }

    pub fn unregister(&self, room: &str, id: ViewerId) {
        let mut st = self.lock();
        if let Some(viewers) = st.rooms.get_mut(room) {
            viewers.remove(&id);
            if viewers.is_empty() {
                st.rooms.remove(room);
            }
        }
    }

    /// Queues `event` to the viewers of `room` on this node; drops those whose queue is full.
    pub fn dispatch(&self, room: &str, event: WatchEvent) {
        let item = HubItem::Event(Arc::new(event));
        let mut st = self.lock();
        if let Some(viewers) = st.rooms.get_mut(room) {
            viewers.retain(|id, tx| {
                let ok = tx.try_send(item.clone()).is_ok();
                if !ok {
                    tracing::debug!(viewer = id, "watch viewer too slow; dropped");
                }
                ok
            });
        }
    }

    /// Every viewer re-reads the state (after the bus lost events).
    pub fn resync_all(&self) {
        let st = self.lock();
        for viewers in st.rooms.values() {
            for tx in viewers.values() {
                let _ = tx.try_send(HubItem::Resync);
            }
        }
    }

    /// Viewers on this node.
    pub fn viewers(&self) -> usize {
        self.lock().rooms.values().map(HashMap::len).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The watch party's moving parts on one node: live states and delivery.
pub struct Watch {
    pub playback: PlaybackStore,
    pub hub: WatchHub,
}

impl Watch {
    pub fn new(playback: PlaybackStore) -> Watch {
        Watch {
            playback,
            hub: WatchHub::default(),
        }
    }
}

impl App {
    fn watch(&self) -> &Watch {
        &self.messenger.watch
    }

    /// The room's live state (started paused at 0 the first time anyone asks).
    pub async fn watch_state(&self, room: &WatchRoom) -> Result<Playback, WatchError> {
        let initial = Playback::new(room.source.clone(), room.duration, now_ms());
        self.watch().playback.get_or_init(&room.id, initial).await
    }

    /// Applies a control made against `version` by someone allowed to control, stores it by
    /// compare-and-set and announces the new state to the room on every node. A refused
    /// control changes nothing.
    pub async fn watch_control(
        &self,
        room: &WatchRoom,
        control: &Control,
        version: u64,
    ) -> Result<Playback, WatchError> {
        let current = self.watch_state(room).await?;
        let next = watch::apply(&current, control, version, now_ms())?;
        if !self
            .watch()
            .playback
            .compare_and_set(&room.id, current.version, &next)
            .await?
        {
            // Someone else's control won this version.
            let now = self.watch_state(room).await?;
            return Err(WatchError::StaleVersion {
                current: now.version,
            });
        }
        self.watch_publish(
            &room.id,
            WatchEvent::State {
                state: next.clone(),
            },
        )
        .await;
        Ok(next)
    }

    /// Announces an event to the room's viewers on every node.
    pub async fn watch_publish(&self, room: &str, event: WatchEvent) {
        self.publish(Event::Watch {
            room: room.to_owned(),
            event,
        })
        .await;
    }

    /// The room's members changed: tell its viewers.
    pub async fn watch_members_changed(&self, room: &str) {
        match self.store.watch_members(room).await {
            Ok(members) => {
                self.watch_publish(room, WatchEvent::Members { members })
                    .await
            }
            Err(e) => tracing::warn!(room, "watch members not announced: {e}"),
        }
    }

    /// Who `claims` is in `room`: a guest with the room's share link, or a member with their
    /// role. `NotMember` for anyone else.
    pub async fn watch_viewer(
        &self,
        room: &WatchRoom,
        claims: &Claims,
    ) -> Result<Viewer, WatchError> {
        if claims.room.as_deref() == Some(call_room(&room.id).as_str()) {
            return Ok(Viewer::Guest {
                sub: claims.sub.clone(),
            });
        }
        let Some(user) = UserId::from_subject(&claims.sub).filter(|_| claims.can_chat) else {
            return Err(WatchError::NotMember);
        };
        match self.store.watch_role(&room.id, user).await? {
            Some(role) => Ok(Viewer::Member { user, role }),
            None => Err(WatchError::NotMember),
        }
    }

    /// May this viewer control the room now (the role is read afresh: grants take effect at
    /// once, on every node)?
    pub async fn watch_may_control(
        &self,
        room: &WatchRoom,
        viewer: &Viewer,
    ) -> Result<(), WatchError> {
        match viewer {
            Viewer::Member { user, .. }
                if self.store.can_control_watch(&room.id, *user).await? =>
            {
                Ok(())
            }
            _ => Err(WatchError::NotController),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The session

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMsg {
    Watch {
        version: u32,
        room: String,
        #[serde(default)]
        token: Option<String>,
        /// Display name (guests; members are shown by their profile's name).
        #[serde(default)]
        name: Option<String>,
    },
    /// Clock sync: the client's send time, echoed with the server's clock.
    Time {
        t0: f64,
    },
    Control {
        action: String,
        version: u64,
        #[serde(default)]
        position: Option<f64>,
        #[serde(default)]
        rate: Option<f64>,
    },
    Chat {
        text: String,
    },
    Reaction {
        emoji: String,
    },
    Grant {
        user: UserId,
        role: WatchRole,
    },
    Buffering {
        buffering: bool,
    },
    Ping,
}

#[derive(Debug, Serialize)]
struct You<'a> {
    id: &'a str,
    name: &'a str,
    role: WatchRole,
}

#[derive(Debug, Serialize)]
struct CallInfo {
    room: String,
    token: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ServerMsg<'a> {
    Welcome {
        version: u32,
        room: &'a WatchRoom,
        you: You<'a>,
        state: &'a Playback,
        source_url: &'a str,
        server_time: f64,
        members: &'a [WatchMember],
        call: Option<CallInfo>,
    },
    Time {
        t0: f64,
        server: f64,
    },
    State {
        state: &'a Playback,
    },
    Members {
        members: &'a [WatchMember],
    },
    Chat {
        from: &'a str,
        name: &'a str,
        text: &'a str,
        at: i64,
    },
    Reaction {
        from: &'a str,
        name: &'a str,
        emoji: &'a str,
    },
    Buffering {
        from: &'a str,
        name: &'a str,
        buffering: bool,
    },
    Pong,
    Error {
        code: &'a str,
        message: String,
        /// The state as it is (unchanged), so the client can resynchronise.
        #[serde(skip_serializing_if = "Option::is_none")]
        state: Option<&'a Playback>,
    },
}

/// Is this first frame a watch-party `watch`?
pub fn is_watch(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
    }
    serde_json::from_str::<Kind>(text).is_ok_and(|k| k.kind == "watch")
}

fn parse(text: &str) -> Result<ClientMsg, End> {
    crate::ws::parse_json(text)
}

async fn send(conn: &mut Conn, msg: &ServerMsg<'_>) -> bool {
    let text = serde_json::to_string(msg)
        .unwrap_or_else(|_| r#"{"type":"error","code":"internal","message":"encoding"}"#.into());
    conn.socket.send(WsMessage::Text(text.into())).await.is_ok()
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

pub fn control_from_parts(
    action: &str,
    position: Option<f64>,
    rate: Option<f64>,
) -> Result<Control, WatchError> {
    let missing = |what: &str| WatchError::BadInput(format!("{action} needs {what}"));
    match action {
        "play" => Ok(Control::Play),
        "pause" => Ok(Control::Pause),
        "seek" => Ok(Control::Seek {
            position: position.ok_or_else(|| missing("position"))?,
        }),
        "rate" => Ok(Control::Rate {
            rate: rate.ok_or_else(|| missing("rate"))?,
        }),
        other => Err(WatchError::BadInput(format!(
            "unknown action {other:?} (play, pause, seek, rate)"
        ))),
    }
}

/// A token bucket: [`BURST`] requests at once, [`REFILL_PER_SEC`] a second after that.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: std::time::Instant,
}

impl Budget {
    fn new(now: std::time::Instant) -> Budget {
        Budget {
            tokens: BURST,
            at: now,
        }
    }

    /// Takes one request's worth; false when the budget is spent.
    fn take(&mut self, now: std::time::Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * REFILL_PER_SEC;
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
    let claims = match crate::ws::check_version("watch", version, VERSION)
        .and_then(|()| crate::ws::session_claims(&app, token, bearer, "watch needs a token"))
    {
        Ok(c) => c,
        Err(end) => return end,
    };
    let refuse = |e: WatchError| {
        let code = match crate::http::status_of(e.kind()).as_u16() {
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
    let viewer = match app.watch_viewer(&room, &claims).await {
        Ok(v) => v,
        Err(e) => return refuse(e),
    };
    // Register before reading the state: a change committed meanwhile arrives live too, and
    // states are applied by version, so nothing is missed or applied twice.
    let (viewer_id, mut live) = app.messenger.watch.hub.register(&room.id);
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
                app.watch_state(&session.room).await?,
                app.store.watch_members(&session.room.id).await?,
            ))
        }
        .await
        {
            Ok(v) => v,
            Err(e) => return refuse(e),
        };
        let call = {
            let claims = Claims::for_room(
                &claims.sub,
                Some(&session.name),
                &call_room(&session.room.id),
                CALL_TTL,
            );
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
        let mut budget = Budget::new(std::time::Instant::now());
        let mut shutdown = app.shutdown.clone();
        loop {
            tokio::select! {
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
    app.messenger.watch.hub.unregister(&room_id, viewer_id);
    end
}

/// Sends an error about one request (the session goes on), with the state as it is.
async fn refuse_request(conn: &mut Conn, session: &Session, e: &WatchError) -> bool {
    if e.is_internal() {
        tracing::warn!(room = %session.room.id, "watch request failed: {e}");
    }
    let state = conn.app.watch_state(&session.room).await.ok();
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
                app.watch_may_control(&session.room, &session.viewer)
                    .await?;
                app.watch_control(&session.room, &control, version).await?;
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
                app.watch_publish(room, event).await;
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
                app.watch_publish(room, event).await;
                Ok(())
            }
            Err(e) => Err(e),
        },
        ClientMsg::Grant { user, role } => match &session.viewer {
            Viewer::Member { user: me, .. } => {
                match app.store.set_watch_member(*me, room, user, role).await {
                    Ok(()) => {
                        app.watch_members_changed(room).await;
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
            app.watch_publish(room, event).await;
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
        HubItem::Resync => match conn.app.watch_state(&session.room).await {
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
    fn watch_is_recognised_by_its_type_only() {
        assert!(is_watch(r#"{"type":"watch","version":1,"room":"x"}"#));
        assert!(!is_watch(r#"{"type":"hello","version":1}"#));
        assert!(!is_watch("garbage"));
    }

    #[test]
    fn controls_parse_from_their_wire_form() {
        assert_eq!(
            control_from_parts("play", None, None).unwrap(),
            Control::Play
        );
        assert_eq!(
            control_from_parts("seek", Some(2.5), None).unwrap(),
            Control::Seek { position: 2.5 }
        );
        assert_eq!(
            control_from_parts("seek", None, None).unwrap_err().code(),
            "invalid_input"
        );
        assert_eq!(
            control_from_parts("rate", None, None).unwrap_err().code(),
            "invalid_input"
        );
        assert_eq!(
            control_from_parts("jump", None, None).unwrap_err().code(),
            "invalid_input"
        );
    }

    #[test]
    fn the_hub_delivers_by_room_and_drops_slow_viewers() {
        let hub = WatchHub::default();
        let (a, mut ra) = hub.register("r1");
        let (_b, mut rb) = hub.register("r2");
        let ev = WatchEvent::Reaction {
            from: "user:1".into(),
            name: "a".into(),
            emoji: "👍".into(),
        };
        hub.dispatch("r1", ev.clone());
        assert!(matches!(ra.try_recv(), Ok(HubItem::Event(e)) if *e == ev));
        assert!(rb.try_recv().is_err());
        for _ in 0..=VIEWER_QUEUE {
            hub.dispatch("r1", ev.clone());
        }
        assert_eq!(hub.viewers(), 1, "the slow viewer of r1 was dropped");
        hub.unregister("r1", a);
        assert_eq!(hub.viewers(), 1);
    }

    #[test]
    fn the_budget_allows_a_burst_then_refills() {
        let t0 = std::time::Instant::now();
        let mut b = Budget::new(t0);
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
