//! Watch party playback: the authoritative state of one room's player ([`Playback`]), the
//! controls that change it ([`Control`]) and their rules ([`apply`]), sans-IO: time is passed
//! in (Unix milliseconds of the server clock), nothing here reads a clock or touches a socket.
//!
//! The state is `{version, source, paused, position, rate, updated_at, duration}`: at server
//! time `t` the media position is `position + (t - updated_at) * rate` while playing, and just
//! `position` while paused or while `t < updated_at` (a start scheduled in the future). Play,
//! resume and seeks while playing are scheduled [`LEAD_MS`] ahead, so every viewer (whose
//! clock offset to the server is known) starts at the same instant.
//!
//! Every accepted control bumps `version` by one; a control names the version it was made
//! against and is refused with [`WatchError::StaleVersion`] when the room has moved on, so two
//! controllers never silently overwrite each other. The live state is kept by
//! [`crate::watch_live::PlaybackStore`] (in process or in Redis, compare-and-set on `version`).
//!
//! ```
//! use messaging::watch::{apply, Control, Playback, Source, LEAD_MS};
//!
//! let s = Playback::new(Source::Url { url: "https://example.com/a.webm".into() }, Some(60.0), 1_000);
//! let playing = apply(&s, &Control::Play, s.version, 2_000).unwrap();
//! assert_eq!(playing.updated_at, 2_000 + LEAD_MS);
//! assert_eq!(playing.position_at(2_000 + LEAD_MS + 1_500), 1.5);
//! let err = apply(&playing, &Control::Pause, s.version, 3_000).unwrap_err();
//! assert_eq!(err.code(), "stale_version");
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, StoreError};
use crate::UserId;

/// How far ahead of the command a play or resume is scheduled, in milliseconds: enough for
/// the state to reach every viewer (and their player to be ready) before it starts.
pub const LEAD_MS: i64 = 400;

/// Slowest playback rate accepted.
pub const MIN_RATE: f64 = 0.25;
/// Fastest playback rate accepted.
pub const MAX_RATE: f64 = 4.0;

/// Longest URL of a URL source.
pub const URL_MAX: usize = 2048;
/// Longest room chat message, in characters.
pub const CHAT_MAX: usize = 1000;
/// Longest reaction (an emoji or a short word), in characters.
pub const REACTION_MAX: usize = 16;

/// What a room plays: an http(s) URL, or a file uploaded to GAX (its file id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged, try_from = "SourceWire")]
pub enum Source {
    /// `{"url": "https://…"}`
    Url { url: String },
    /// `{"file": "<file id>"}`
    File { file: String },
}

/// The JSON form of a [`Source`]: exactly one of `url` and `file`, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceWire {
    url: Option<String>,
    file: Option<String>,
}

impl TryFrom<SourceWire> for Source {
    type Error = String;

    fn try_from(w: SourceWire) -> Result<Source, String> {
        match (w.url, w.file) {
            (Some(url), None) => Ok(Source::Url { url }),
            (None, Some(file)) => Ok(Source::File { file }),
            _ => Err("a source is {\"url\": …} or {\"file\": …}".into()),
        }
    }
}

impl Source {
    /// Checks the source's form: an absolute `http://` or `https://` URL with a host and no
    /// spaces or control characters, or a file id as the file store issues them. (Whether the
    /// host may read the file is checked when the room is created.)
    pub fn validate(&self) -> Result<(), WatchError> {
        match self {
            Source::Url { url } => {
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"))
                    .ok_or_else(|| {
                        WatchError::BadSource("the URL must start with http:// or https://".into())
                    })?;
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                if host.is_empty() || host.starts_with(':') {
                    return Err(WatchError::BadSource("the URL has no host".into()));
                }
                if url.len() > URL_MAX {
                    return Err(WatchError::BadSource(format!(
                        "the URL is longer than {URL_MAX} bytes"
                    )));
                }
                if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(WatchError::BadSource(
                        "the URL contains spaces or control characters".into(),
                    ));
                }
                Ok(())
            }
            Source::File { file } => crate::validate::file_id("source", file)
                .map_err(|_| WatchError::BadSource("not a valid file id".into())),
        }
    }
}

/// The authoritative player state of one room. Times are Unix milliseconds of the server
/// clock; positions and durations are seconds of media time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Playback {
    /// Bumped by every accepted control.
    pub version: u64,
    pub source: Source,
    pub paused: bool,
    /// Media position (seconds) at `updated_at`.
    pub position: f64,
    /// Playback rate (1.0 = normal speed).
    pub rate: f64,
    /// Server time (Unix ms) at which `position` holds; in the future for a scheduled start.
    pub updated_at: i64,
    /// Length of the media in seconds, when known (seeks past it are refused).
    pub duration: Option<f64>,
}

// Every float in a `Playback` is finite (the constructors and `apply` refuse anything else),
// so equality is reflexive and `Eq` holds; the bus's `Event` needs it.
impl Eq for Playback {}

impl Playback {
    /// A fresh room: paused at 0, normal speed, version 1.
    pub fn new(source: Source, duration: Option<f64>, now_ms: i64) -> Playback {
        Playback {
            version: 1,
            source,
            paused: true,
            position: 0.0,
            rate: 1.0,
            updated_at: now_ms,
            duration: duration.filter(|d| d.is_finite() && *d > 0.0),
        }
    }

    /// The media position at server time `t_ms`: advancing at `rate` while playing (from
    /// `updated_at` on), held while paused or before a scheduled start; never past the end.
    pub fn position_at(&self, t_ms: i64) -> f64 {
        let p = if self.paused || t_ms <= self.updated_at {
            self.position
        } else {
            self.position + (t_ms - self.updated_at) as f64 / 1000.0 * self.rate
        };
        match self.duration {
            Some(d) => p.min(d),
            None => p,
        }
    }
}

/// A command of a host or controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Control {
    /// Start or resume, [`LEAD_MS`] from now.
    Play,
    /// Stop where the media is now.
    Pause,
    /// Jump to `position` seconds (while playing: restart there, [`LEAD_MS`] from now).
    Seek { position: f64 },
    /// Change the speed, keeping the current position.
    Rate { rate: f64 },
}

/// Applies `control`, made against `expected_version`, to `state` at server time `now_ms`.
/// Returns the new state (version + 1) or why it was refused; `state` itself never changes.
pub fn apply(
    state: &Playback,
    control: &Control,
    expected_version: u64,
    now_ms: i64,
) -> Result<Playback, WatchError> {
    if expected_version != state.version {
        return Err(WatchError::StaleVersion {
            current: state.version,
        });
    }
    let mut next = state.clone();
    next.version = state.version + 1;
    match *control {
        Control::Play => {
            next.position = state.position_at(now_ms);
            next.paused = false;
            // Already playing: keep the running clock (a scheduled start stays scheduled).
            next.updated_at = if state.paused {
                now_ms + LEAD_MS
            } else {
                state.updated_at.max(now_ms)
            };
        }
        Control::Pause => {
            next.position = state.position_at(now_ms);
            next.paused = true;
            next.updated_at = now_ms;
        }
        Control::Seek { position } => {
            if !position.is_finite() {
                return Err(WatchError::NotFinite);
            }
            if position < 0.0 {
                return Err(WatchError::SeekOutOfRange {
                    position,
                    duration: state.duration,
                });
            }
            if let Some(d) = state.duration {
                if position > d {
                    return Err(WatchError::SeekOutOfRange {
                        position,
                        duration: Some(d),
                    });
                }
            }
            next.position = position;
            next.updated_at = if state.paused {
                now_ms
            } else {
                now_ms + LEAD_MS
            };
        }
        Control::Rate { rate } => {
            if !rate.is_finite() {
                return Err(WatchError::NotFinite);
            }
            if !(MIN_RATE..=MAX_RATE).contains(&rate) {
                return Err(WatchError::BadRate { rate });
            }
            next.position = state.position_at(now_ms);
            next.rate = rate;
            // A scheduled start stays scheduled; a running clock restarts from now.
            next.updated_at = state.updated_at.max(now_ms);
        }
    }
    Ok(next)
}

/// A member's part in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WatchRole {
    /// Created the room; always controls; invites and grants.
    Host,
    /// May play, pause, seek and change the rate.
    Controller,
    /// Watches.
    Viewer,
}

impl WatchRole {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchRole::Host => "host",
            WatchRole::Controller => "controller",
            WatchRole::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<WatchRole> {
        match s {
            "host" => Some(WatchRole::Host),
            "controller" => Some(WatchRole::Controller),
            "viewer" => Some(WatchRole::Viewer),
            _ => None,
        }
    }

    /// May this role send controls?
    pub fn can_control(self) -> bool {
        matches!(self, WatchRole::Host | WatchRole::Controller)
    }
}

/// A room member as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WatchMember {
    pub user: UserId,
    pub display_name: String,
    pub role: WatchRole,
    /// Unix milliseconds.
    pub joined_at: i64,
}

/// Something that happened in a watch room, carried on the bus (ephemeral: pub/sub on Redis)
/// to the viewers of the room on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WatchEvent {
    /// The playback state changed (a control was accepted).
    State { state: Playback },
    /// The members or their roles changed; carries the list as it is now.
    Members { members: Vec<WatchMember> },
    /// A chat line.
    Chat {
        from: String,
        name: String,
        text: String,
        at: i64,
    },
    /// A reaction (an emoji).
    Reaction {
        from: String,
        name: String,
        emoji: String,
    },
    /// A viewer's player is (no longer) buffering.
    Buffering {
        from: String,
        name: String,
        buffering: bool,
    },
}

/// Why a watch-party request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The control was made against an older state; `current` is the room's version now.
    #[error("stale state version; the room is at version {current}")]
    StaleVersion { current: u64 },
    #[error("cannot seek to {position} s (the media is {} long)", match duration { Some(d) => format!("{d} s"), None => "of unknown length".into() })]
    SeekOutOfRange {
        position: f64,
        duration: Option<f64>,
    },
    #[error("rate {rate} is outside {MIN_RATE}..={MAX_RATE}")]
    BadRate { rate: f64 },
    #[error("numbers must be finite")]
    NotFinite,
    #[error("bad source: {0}")]
    BadSource(String),
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("only the host or a controller can do this")]
    NotController,
    #[error("only the host can do this")]
    NotHost,
    #[error("you are not a member of this watch room")]
    NotMember,
    #[error("no such watch room")]
    RoomNotFound,
    #[error("no such user")]
    UserNotFound,
    #[error("the host's role cannot be changed")]
    HostRole,
    #[error("too many requests; slow down")]
    RateLimited,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("live state store: {0}")]
    Live(String),
    /// Stored data that breaks the schema's rules (a bug or a hand-edited database).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for WatchError {
    fn from(e: sqlx::Error) -> Self {
        WatchError::Store(StoreError::Database(e))
    }
}

impl WatchError {
    /// A stable, machine-readable code (snake_case).
    pub fn code(&self) -> &'static str {
        use WatchError::*;
        match self {
            StaleVersion { .. } => "stale_version",
            SeekOutOfRange { .. } => "seek_out_of_range",
            BadRate { .. } => "bad_rate",
            NotFinite => "not_finite",
            BadSource(_) => "bad_source",
            BadInput(_) => "invalid_input",
            NotController => "not_controller",
            NotHost => "not_host",
            NotMember => "not_member",
            RoomNotFound => "room_not_found",
            UserNotFound => "user_not_found",
            HostRole => "host_role",
            RateLimited => "rate_limited",
            Store(e) => e.code(),
            Live(_) | Internal(_) => "internal",
        }
    }

    /// What kind of refusal or failure this is.
    pub fn kind(&self) -> ErrorKind {
        use WatchError::*;
        match self {
            SeekOutOfRange { .. } | BadRate { .. } | NotFinite | BadSource(_) | BadInput(_) => {
                ErrorKind::Invalid
            }
            NotController | NotHost | NotMember | HostRole => ErrorKind::Forbidden,
            RoomNotFound | UserNotFound => ErrorKind::NotFound,
            StaleVersion { .. } => ErrorKind::Conflict,
            RateLimited => ErrorKind::RateLimited,
            Store(e) => e.kind(),
            Live(_) | Internal(_) => ErrorKind::Internal,
        }
    }

    /// True for failures of the server rather than of the request.
    pub fn is_internal(&self) -> bool {
        self.kind() == ErrorKind::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(duration: Option<f64>) -> Playback {
        Playback::new(
            Source::Url {
                url: "https://example.com/v.webm".into(),
            },
            duration,
            10_000,
        )
    }

    #[test]
    fn play_is_scheduled_and_the_position_runs_from_then() {
        let s = room(Some(60.0));
        assert_eq!(s.position_at(50_000), 0.0, "paused holds");
        let p = apply(&s, &Control::Play, 1, 20_000).unwrap();
        assert_eq!(
            (p.version, p.paused, p.updated_at),
            (2, false, 20_000 + LEAD_MS)
        );
        assert_eq!(p.position_at(20_000), 0.0, "before the scheduled start");
        assert_eq!(p.position_at(20_000 + LEAD_MS + 2_000), 2.0);
        assert_eq!(p.position_at(1_000_000), 60.0, "never past the end");
        // Play while playing keeps the clock running.
        let again = apply(&p, &Control::Play, 2, 25_000).unwrap();
        assert_eq!(again.updated_at, 25_000);
        assert!((again.position_at(26_000) - p.position_at(26_000)).abs() < 1e-9);
    }

    #[test]
    fn pause_keeps_the_position_and_seek_and_rate_apply() {
        let s = room(Some(60.0));
        let p = apply(&s, &Control::Play, 1, 0).unwrap();
        let paused = apply(&p, &Control::Pause, 2, LEAD_MS + 3_000).unwrap();
        assert!(paused.paused);
        assert_eq!(paused.position, 3.0);
        assert_eq!(paused.position_at(99_999), 3.0);
        let sought = apply(&paused, &Control::Seek { position: 42.5 }, 3, 50_000).unwrap();
        assert_eq!((sought.position, sought.updated_at), (42.5, 50_000));
        let playing = apply(&sought, &Control::Play, 4, 60_000).unwrap();
        let fast = apply(&playing, &Control::Rate { rate: 2.0 }, 5, 61_000 + LEAD_MS).unwrap();
        assert_eq!(fast.position, 43.5);
        assert_eq!(fast.position_at(62_000 + LEAD_MS), 45.5);
        // A seek while playing restarts in step.
        let jump = apply(&fast, &Control::Seek { position: 10.0 }, 6, 70_000).unwrap();
        assert_eq!(
            (jump.position, jump.updated_at, jump.paused),
            (10.0, 70_000 + LEAD_MS, false)
        );
        assert_eq!(jump.version, 7);
    }

    #[test]
    fn bad_controls_are_refused_and_change_nothing() {
        let s = room(Some(60.0));
        let before = s.clone();
        let code = |c: Control, v: u64| apply(&s, &c, v, 20_000).unwrap_err();
        let stale = code(Control::Play, 0);
        assert!(matches!(stale, WatchError::StaleVersion { current: 1 }));
        assert_eq!(
            (stale.code(), stale.kind()),
            ("stale_version", ErrorKind::Conflict)
        );
        for bad in [-0.5, 60.01, 1e9] {
            let e = code(Control::Seek { position: bad }, 1);
            assert_eq!(
                (e.code(), e.kind()),
                ("seek_out_of_range", ErrorKind::Invalid),
                "{bad}"
            );
        }
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                code(Control::Seek { position: bad }, 1).code(),
                "not_finite"
            );
            assert_eq!(code(Control::Rate { rate: bad }, 1).code(), "not_finite");
        }
        for bad in [0.0, 0.2, 4.01, -1.0] {
            assert_eq!(code(Control::Rate { rate: bad }, 1).code(), "bad_rate");
        }
        assert_eq!(s, before);
        // Edges are fine; unknown durations allow any non-negative seek.
        assert!(apply(&s, &Control::Seek { position: 60.0 }, 1, 0).is_ok());
        assert!(apply(&s, &Control::Rate { rate: 0.25 }, 1, 0).is_ok());
        assert!(apply(&s, &Control::Rate { rate: 4.0 }, 1, 0).is_ok());
        let open = room(None);
        assert!(apply(&open, &Control::Seek { position: 1e6 }, 1, 0).is_ok());
        assert!(apply(&open, &Control::Seek { position: -1.0 }, 1, 0).is_err());
    }

    #[test]
    fn sources_are_checked() {
        let url = |u: &str| Source::Url { url: u.into() }.validate();
        assert!(url("https://example.com/a.webm").is_ok());
        assert!(url("http://127.0.0.1:8080/x?y=1").is_ok());
        for bad in [
            "ftp://example.com/a",
            "javascript:alert(1)",
            "https://",
            "https:///path",
            "//example.com/a",
            "https://exa mple.com/",
            "file:///etc/passwd",
        ] {
            assert_eq!(url(bad).unwrap_err().code(), "bad_source", "{bad}");
        }
        assert!(url(&format!("https://e.com/{}", "a".repeat(URL_MAX))).is_err());
        let file = |f: &str| Source::File { file: f.into() }.validate();
        assert!(file("f_01H-abc.webm").is_ok());
        for bad in ["", "../x", "a/b", "a b", "a\u{0}"] {
            assert!(file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wire_forms_are_stable() {
        let c: Control = serde_json::from_str(r#"{"action":"seek","position":3.5}"#).unwrap();
        assert_eq!(c, Control::Seek { position: 3.5 });
        let s: Source = serde_json::from_str(r#"{"file":"abc"}"#).unwrap();
        assert_eq!(s, Source::File { file: "abc".into() });
        assert!(serde_json::from_str::<Source>(r#"{"url":"x","file":"y"}"#).is_err());
        let e = WatchEvent::Buffering {
            from: "user:1".into(),
            name: "a".into(),
            buffering: true,
        };
        let back: WatchEvent = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(WatchRole::parse("controller"), Some(WatchRole::Controller));
        assert!(WatchRole::Host.can_control() && !WatchRole::Viewer.can_control());
    }
}
