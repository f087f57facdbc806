//! What the watch party's two doors share (REST under `/api/watch`, the `/ws` watch session):
//! the wire form of a control, the URL a browser plays a source from, the server clock for
//! clock sync, and the call room of a watch room. The write path itself (roles,
//! compare-and-set, announcing) is [`messaging::service::Service`]'s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use messaging::watch::{Control, Source, WatchError};

use crate::app::App;

pub use messaging::service::call_room;

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

/// The control a request names in its wire form (`action` plus the field it needs), for the
/// REST route and the `/ws` session alike.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
