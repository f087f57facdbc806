//! Live delivery on one node: which open sessions want which events. [`chat::Hub`] serves
//! the messenger sessions (by chat membership and watched presence), [`watch::WatchHub`] the
//! watch-party viewers (by room). Both are fed from the event bus by [`crate::messenger`] and
//! drop a session whose bounded queue is full, so one slow client never holds up the rest.

pub mod chat;
pub mod watch;
