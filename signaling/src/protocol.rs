//! The call protocol on `/ws`: JSON messages, version 1, documented in `docs/protocol.md`.
//!
//! Every message is a JSON object with a `type`. Unknown types and unknown fields are errors:
//! a client that speaks another dialect learns it at once instead of silently losing data.

use serde::{Deserialize, Serialize};

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest client message accepted (an SDP with dozens of m-lines fits easily).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// WebSocket close codes. 1000/1009 are standard; the 4xxx ones mirror HTTP statuses.
pub mod close {
    /// Normal end (the client left).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame broke the WebSocket protocol (RFC 6455: reserved bits set, an unmasked client
    /// frame, a bad opcode or fragment).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A message was larger than [`super::MAX_MESSAGE_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// Malformed JSON, an unknown message type or field, or a message out of order.
    pub const BAD_MESSAGE: u16 = 4400;
    /// Missing, invalid or expired token.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The token does not grant this room.
    pub const FORBIDDEN: u16 = 4403;
    /// No `join` within the join timeout.
    pub const JOIN_TIMEOUT: u16 = 4408;
    /// The SDP was refused (garbage, or nothing we can forward).
    pub const BAD_SDP: u16 = 4415;
    /// Unsupported protocol version.
    pub const BAD_VERSION: u16 = 4426;
    /// The media session ended (ICE timeout, DTLS failure).
    pub const MEDIA_FAILED: u16 = 4410;
    /// The client fell behind: its queue of server events overflowed (it stopped reading).
    pub const TOO_SLOW: u16 = 4429;
    /// Internal error.
    pub const INTERNAL: u16 = 4500;
}

/// Messages from the client.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message: authenticate, publish (the offer) and enter the room.
    Join {
        /// Protocol version the client speaks; must be [`PROTOCOL_VERSION`].
        version: u32,
        /// The JWT; may be omitted when the upgrade request carried `Authorization: Bearer`.
        #[serde(default)]
        token: Option<String>,
        /// The room; must match the token's grant. Defaults to the token's room.
        #[serde(default)]
        room: Option<String>,
        /// Display name; defaults to the token's name, then its subject.
        #[serde(default)]
        name: Option<String>,
        /// The client's SDP offer.
        sdp: String,
    },
    /// The answer to a server `offer`.
    Answer { sdp: String },
    /// The client (un)muted its microphone or camera.
    Mute { kind: MediaKind, muted: bool },
    /// The client renders the video of track `mid` (its own session's mid) at this size in
    /// device pixels; the server picks the simulcast layer that fits.
    VideoSize {
        mid: String,
        width: u32,
        height: u32,
    },
    /// Pin track `mid` to a simulcast layer (`q`, `h`, `f`), or unpin with `null`.
    PinLayer {
        mid: String,
        #[serde(default)]
        layer: Option<String>,
    },
    /// Cap the bitrate this client receives (bits per second), or lift the cap with `null`.
    MaxBitrate {
        #[serde(default)]
        bps: Option<u64>,
    },
    /// Keepalive; answered with `pong`.
    Ping,
    /// The client leaves; the server closes with 1000.
    Leave,
}

/// `audio` or `video`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

impl From<sfu_core::Kind> for MediaKind {
    fn from(k: sfu_core::Kind) -> Self {
        match k {
            sfu_core::Kind::Audio => MediaKind::Audio,
            sfu_core::Kind::Video => MediaKind::Video,
        }
    }
}

impl From<MediaKind> for sfu_core::Kind {
    fn from(k: MediaKind) -> Self {
        match k {
            MediaKind::Audio => sfu_core::Kind::Audio,
            MediaKind::Video => sfu_core::Kind::Video,
        }
    }
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub identity: String,
    pub name: String,
    pub audio_muted: bool,
    pub video_muted: bool,
}

/// A track in a session: `mid` is the m-line in the receiving client's own session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    pub mid: String,
    pub participant: String,
    pub kind: MediaKind,
}

impl From<sfu_core::Member> for ParticipantInfo {
    fn from(m: sfu_core::Member) -> Self {
        ParticipantInfo {
            id: m.id.to_string(),
            identity: m.identity,
            name: m.name,
            audio_muted: m.audio_muted,
            video_muted: m.video_muted,
        }
    }
}

impl From<sfu_core::TrackInfo> for Track {
    /// The track as its publisher's session names it (`mid` is the publisher's).
    fn from(t: sfu_core::TrackInfo) -> Self {
        Track {
            mid: t.mid,
            participant: t.publisher.to_string(),
            kind: t.kind.into(),
        }
    }
}

/// Messages from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Reply to `join`: the answer to the client's offer and who is already there.
    Joined {
        version: u32,
        participant: ParticipantInfo,
        room: String,
        sdp: String,
        participants: Vec<ParticipantInfo>,
    },
    /// A server offer (renegotiation). `tracks` maps the new mids to their publishers;
    /// `removed` lists mids whose tracks ended. The client replies with `answer`.
    Offer {
        sdp: String,
        tracks: Vec<Track>,
        removed: Vec<String>,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        participant: String,
    },
    /// A track went live: its media arrived and it is routed to the room. Sent to everyone,
    /// the publisher included (`mid` is in the publisher's session).
    TrackPublished {
        track: Track,
    },
    TrackUnpublished {
        track: Track,
    },
    Mute {
        participant: String,
        kind: MediaKind,
        muted: bool,
    },
    /// The simulcast layer this client receives on track `mid` changed, and why
    /// (`initial`, `rendered_size`, `bandwidth`, `publisher_paused`, `manual`).
    Layer {
        mid: String,
        layer: String,
        reason: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        width: Option<u16>,
    },
    /// The room's active speaker (from audio levels) changed; `null` when nobody speaks.
    ActiveSpeaker {
        participant: Option<String>,
    },
    /// ICE + DTLS are up for this client.
    MediaConnected,
    Pong,
    /// Something went wrong. `code` is stable; when the server also closes, the close code
    /// is in `close`.
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        close: Option<u16>,
    },
}

/// Why a client message could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("message is {0} bytes; the limit is {MAX_MESSAGE_BYTES}")]
    TooBig(usize),
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid message: {0}")]
    Invalid(String),
}

impl ParseError {
    /// The close code this error ends the connection with.
    pub fn close_code(&self) -> u16 {
        match self {
            ParseError::TooBig(_) => close::TOO_BIG,
            _ => close::BAD_MESSAGE,
        }
    }
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::TooBig(_) => "message_too_big",
            ParseError::UnknownType(_) => "unknown_type",
            ParseError::Invalid(_) => "bad_message",
        }
    }
}

const KNOWN_TYPES: &[&str] = &[
    "join",
    "answer",
    "mute",
    "video_size",
    "pin_layer",
    "max_bitrate",
    "ping",
    "leave",
];

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientMessage, ParseError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooBig(text.len()));
    }
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => Ok(m),
        Err(e) => {
            // Distinguish "well-formed but unknown type" for a clearer error.
            if let Ok(serde_json::Value::Object(o)) =
                serde_json::from_str::<serde_json::Value>(text)
            {
                if let Some(serde_json::Value::String(t)) = o.get("type") {
                    if !KNOWN_TYPES.contains(&t.as_str()) {
                        return Err(ParseError::UnknownType(t.clone()));
                    }
                }
            }
            Err(ParseError::Invalid(e.to_string()))
        }
    }
}

impl ServerMessage {
    /// An error message.
    pub fn error(code: &str, message: impl Into<String>, close: Option<u16>) -> Self {
        ServerMessage::Error {
            code: code.to_owned(),
            message: message.into(),
            close,
        }
    }

    /// What a call client is told about a change in its room.
    pub fn room_event(event: sfu_core::RoomEvent) -> Self {
        use sfu_core::RoomEvent as E;
        match event {
            E::Joined(m) => ServerMessage::ParticipantJoined {
                participant: m.into(),
            },
            E::Left(who) => ServerMessage::ParticipantLeft {
                participant: who.to_string(),
            },
            E::Muted { who, kind, muted } => ServerMessage::Mute {
                participant: who.to_string(),
                kind: kind.into(),
                muted,
            },
            E::TrackPublished(t) => ServerMessage::TrackPublished { track: t.into() },
            E::TrackUnpublished(t) => ServerMessage::TrackUnpublished { track: t.into() },
        }
    }

    /// Serialises to a JSON text frame.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message() {
        assert_eq!(
            parse(r#"{"type":"join","version":1,"token":"t","sdp":"v=0"}"#).unwrap(),
            ClientMessage::Join {
                version: 1,
                token: Some("t".into()),
                room: None,
                name: None,
                sdp: "v=0".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"answer","sdp":"x"}"#).unwrap(),
            ClientMessage::Answer { sdp: "x".into() }
        );
        assert_eq!(
            parse(r#"{"type":"mute","kind":"video","muted":true}"#).unwrap(),
            ClientMessage::Mute {
                kind: MediaKind::Video,
                muted: true
            }
        );
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientMessage::Ping);
        assert_eq!(
            parse(r#"{"type":"video_size","mid":"3","width":320,"height":180}"#).unwrap(),
            ClientMessage::VideoSize {
                mid: "3".into(),
                width: 320,
                height: 180
            }
        );
        assert_eq!(
            parse(r#"{"type":"pin_layer","mid":"3","layer":null}"#).unwrap(),
            ClientMessage::PinLayer {
                mid: "3".into(),
                layer: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"max_bitrate","bps":300000}"#).unwrap(),
            ClientMessage::MaxBitrate { bps: Some(300_000) }
        );
        assert!(matches!(
            parse(r#"{"type":"video_size","mid":"3","width":-5,"height":1}"#),
            Err(ParseError::Invalid(_))
        ));
        assert_eq!(parse(r#"{"type":"leave"}"#).unwrap(), ClientMessage::Leave);
    }

    #[test]
    fn refuses_bad_messages_with_clear_reasons() {
        assert!(matches!(parse("{not json"), Err(ParseError::Invalid(_))));
        assert!(matches!(parse("[]"), Err(ParseError::Invalid(_))));
        assert!(matches!(
            parse(r#"{"sdp":"x"}"#),
            Err(ParseError::Invalid(_))
        ));
        assert_eq!(
            parse(r#"{"type":"dance"}"#),
            Err(ParseError::UnknownType("dance".into()))
        );
        assert!(
            matches!(parse(r#"{"type":"answer","sdp":"x","extra":1}"#), Err(ParseError::Invalid(e)) if e.contains("extra")),
            "unknown fields are refused"
        );
        assert!(matches!(
            parse(r#"{"type":"mute","kind":"smell","muted":true}"#),
            Err(ParseError::Invalid(_))
        ));
        let big = format!(
            r#"{{"type":"answer","sdp":"{}"}}"#,
            "a".repeat(MAX_MESSAGE_BYTES)
        );
        let err = parse(&big).unwrap_err();
        assert_eq!(err.close_code(), close::TOO_BIG);
        assert_eq!(
            ParseError::UnknownType("x".into()).close_code(),
            close::BAD_MESSAGE
        );
    }

    #[test]
    fn server_messages_are_tagged_json() {
        let m = ServerMessage::error("unauthorized", "bad token", Some(close::UNAUTHORIZED));
        let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "unauthorized");
        assert_eq!(v["close"], 4401);
        let p = ServerMessage::ParticipantLeft {
            participant: "p1".into(),
        };
        assert_eq!(
            p.to_json(),
            r#"{"type":"participant_left","participant":"p1"}"#
        );
    }
}
