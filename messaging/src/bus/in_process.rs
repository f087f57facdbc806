//! The in-process bus, for a single node: a tokio broadcast channel. A subscriber that falls
//! more than the channel's capacity behind gets [`BusError::Lagged`] with the number of
//! events it lost, then continues with the newest.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::{BusError, Envelope};

/// Capacity of the in-process channel made by [`Bus::in_process`](super::Bus::in_process).
pub const IN_PROCESS_CAPACITY: usize = 4096;

/// The in-process backend of one [`Bus`](super::Bus).
pub(super) struct LocalBus(broadcast::Sender<Arc<Envelope>>);

impl LocalBus {
    pub(super) fn new(capacity: usize) -> LocalBus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        LocalBus(tx)
    }

    pub(super) fn publish(&self, envelope: Envelope) {
        // Err only means "no subscriber right now".
        let _ = self.0.send(Arc::new(envelope));
    }

    pub(super) fn subscribe(&self) -> LocalSubscription {
        LocalSubscription(self.0.subscribe())
    }
}

/// One in-process subscription.
pub(super) struct LocalSubscription(broadcast::Receiver<Arc<Envelope>>);

impl LocalSubscription {
    pub(super) async fn next(&mut self) -> Result<Envelope, BusError> {
        match self.0.recv().await {
            Ok(envelope) => Ok(Envelope::clone(&envelope)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                Err(BusError::Lagged { missed: Some(n) })
            }
            Err(broadcast::error::RecvError::Closed) => Err(BusError::Closed),
        }
    }
}
