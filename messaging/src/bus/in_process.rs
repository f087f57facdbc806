//! The in-process bus, for a single node: two tokio broadcast channels, one for durable events
//! (messages, chats, users, files) and one for ephemeral ones (typing, read marks, presence,
//! watch rooms), so a flood of ephemeral events never pushes a durable one out. A subscriber
//! that falls more than a channel's capacity behind gets [`BusError::Lagged`] with the number
//! of events it lost and which channel lost them, then continues with the newest.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{BusError, Envelope};

/// Capacity of each in-process channel made by [`Bus::in_process`](super::Bus::in_process).
pub const IN_PROCESS_CAPACITY: usize = 4096;

/// The in-process backend of one [`Bus`](super::Bus).
pub(super) struct LocalBus {
    durable: broadcast::Sender<Arc<Envelope>>,
    ephemeral: broadcast::Sender<Arc<Envelope>>,
}

impl LocalBus {
    pub(super) fn new(capacity: usize) -> LocalBus {
        LocalBus {
            durable: broadcast::channel(capacity.max(1)).0,
            ephemeral: broadcast::channel(capacity.max(1)).0,
        }
    }

    pub(super) fn publish(&self, envelope: Envelope) {
        let channel = match envelope.event.is_durable() {
            true => &self.durable,
            false => &self.ephemeral,
        };
        // Err only means "no subscriber right now".
        let _ = channel.send(Arc::new(envelope));
    }

    pub(super) fn subscribe(&self) -> LocalSubscription {
        LocalSubscription {
            durable: self.durable.subscribe(),
            ephemeral: self.ephemeral.subscribe(),
        }
    }
}

/// One in-process subscription.
pub(super) struct LocalSubscription {
    durable: broadcast::Receiver<Arc<Envelope>>,
    ephemeral: broadcast::Receiver<Arc<Envelope>>,
}

impl LocalSubscription {
    /// Durable events first when both channels have some (`recv` is cancel-safe, so the
    /// `select!` loses nothing).
    pub(super) async fn next(&mut self) -> Result<Envelope, BusError> {
        let (received, durable) = tokio::select! {
            biased;
            r = self.durable.recv() => (r, true),
            r = self.ephemeral.recv() => (r, false),
        };
        match received {
            Ok(envelope) => Ok(Envelope::clone(&envelope)),
            Err(broadcast::error::RecvError::Lagged(n)) => Err(BusError::Lagged {
                missed: Some(n),
                durable,
            }),
            Err(broadcast::error::RecvError::Closed) => Err(BusError::Closed),
        }
    }
}
