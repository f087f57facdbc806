//! The watch session's wire protocol (docs/protocol.md, "GAX watch party"): what a viewer
//! sends ([`ClientMsg`]), what it is sent ([`ServerMsg`]), and how a first frame is recognised
//! as a watch session's ([`is_watch`]).

use messaging::watch::{Playback, WatchRole};
use messaging::{UserId, WatchMember, WatchRoom};
use serde::{Deserialize, Serialize};

use crate::ws::conn::{parse_json, Conn, End};

/// The watch protocol version.
pub const VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum ClientMsg {
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
pub(super) struct You<'a> {
    pub(super) id: &'a str,
    pub(super) name: &'a str,
    pub(super) role: WatchRole,
}

#[derive(Debug, Serialize)]
pub(super) struct CallInfo {
    pub(super) room: String,
    pub(super) token: String,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ServerMsg<'a> {
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

pub(super) fn parse(text: &str) -> Result<ClientMsg, End> {
    parse_json(text)
}

/// Whether `text` is a client message of this protocol (for `crate::fuzzing`).
pub(crate) fn is_client_message(text: &str) -> bool {
    parse(text).is_ok()
}

pub(super) async fn send(conn: &mut Conn, msg: &ServerMsg<'_>) -> bool {
    let text = serde_json::to_string(msg)
        .unwrap_or_else(|_| r#"{"type":"error","code":"internal","message":"encoding"}"#.into());
    conn.send_text(text).await
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
}
