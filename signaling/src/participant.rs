//! A call participant's stay in a room, for every door a participant comes through (the call
//! WebSocket and WHIP/WHEP): [`Departure`] leaves the media plane and the room however the
//! connection ends; the room's directory tells the others about it and its tracks.

use std::sync::Arc;

use crate::app::App;

/// Leaves the media plane and the room however the connection ends (even on panic).
pub(crate) struct Departure {
    pub(crate) app: Arc<App>,
    pub(crate) room: String,
    pub(crate) placement: sfu_core::Placement,
}

impl Drop for Departure {
    fn drop(&mut self) {
        self.app.sfu.leave(self.placement, &self.room);
        tracing::info!(room = %self.room, participant = %self.placement.participant, "left");
    }
}
