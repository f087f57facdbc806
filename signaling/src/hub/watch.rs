//! Watch-party delivery on one node: the [`WatchHub`] knows this node's viewers by room and
//! queues each room event to them (a bounded queue, [`VIEWER_QUEUE`]; a viewer whose queue is
//! full is dropped and its connection closes with 4429, so the client reconnects and re-reads
//! the state).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use messaging::WatchEvent;
use tokio::sync::mpsc;

/// Events one viewer may have queued before it counts as too slow.
pub const VIEWER_QUEUE: usize = 256;

/// One item queued to a viewer.
#[derive(Debug, Clone)]
pub enum HubItem {
    Event(Arc<WatchEvent>),
    /// Events may have been lost (the bus lagged): re-read the state and send it.
    Resync,
}

/// A viewer's id on this node.
pub type ViewerId = u64;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
