//! A call participant's stay in a room, for every door a participant comes through (the call
//! WebSocket and a WHIP publisher): [`Departure`] leaves the media plane and the room, and
//! tells the others about its tracks, however the connection ends.

use std::sync::Arc;

use crate::app::App;
use crate::protocol::{ServerMessage, Track};

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
