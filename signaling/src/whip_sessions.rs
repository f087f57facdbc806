//! This node's live WHIP and WHEP sessions, by id: what `DELETE` on a session's URL ends, and
//! who may end it. Held in [`crate::App`]; the WHIP/WHEP door ([`crate::whip`]) fills it.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Which protocol a session came from (its URLs differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Whip,
    Whep,
}

/// One live session: enough to check who may end it, and the switch that ends it.
pub(crate) struct Session {
    pub(crate) protocol: Protocol,
    pub(crate) room: String,
    /// The token subject that created it (only it may end it).
    pub(crate) owner: String,
    pub(crate) stop: oneshot::Sender<()>,
}

/// The live WHIP and WHEP sessions, by id.
#[derive(Default)]
pub struct WhipSessions {
    map: Mutex<HashMap<String, Session>>,
}

impl WhipSessions {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
