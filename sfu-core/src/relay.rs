//! The links between the workers of one node: one room spread over several worker threads.
//!
//! A publisher's packet is decrypted and classified once, on the worker that owns the
//! publisher's session (its *origin*). Every other worker that hosts subscribers of that track
//! holds a *proxy* producer for it and receives each packet as a [`Relayed`]: the [`Packet`]
//! (its fields plus the payload's `Arc`: a refcount bump, never a copy). The packets travel
//! over one preallocated, bounded, wait-free single-producer ring per ordered worker pair
//! ([`rtrb`]): pushing never allocates, never locks and never blocks the origin; a full ring
//! drops the packet and counts it.
//!
//! Everything else between workers is rare and travels as an [`Inter`] message on the
//! receiving worker's command channel: a track appeared or went away, a worker starts or stops
//! wanting a track, a keyframe request for the publisher.
//!
//! The rings are plain memory, so [`crate::worker::WorkerCore`] stays sans-IO: it pushes into
//! them and notes which workers got something ([`RelayLinks::take_wakes`]); the thread loop
//! wakes a receiving worker only if it sleeps, so a busy worker pays no syscall per packet.

use crate::link::Link;
use crate::producer::ProducerKey;
use crate::session::Kind;
use crate::session::Packet;

/// Packets one worker may have in flight toward one other worker. At 1,024 packets a busy
/// receiver may fall about 4 ms behind a sender running at a core's full rate before packets
/// drop; each slot is 256 bytes, allocated once at start.
pub const RELAY_CAPACITY: usize = 1024;

/// One packet on its way to another worker's proxy producer.
#[derive(Debug, Clone)]
pub struct Relayed {
    pub key: ProducerKey,
    pub packet: Packet,
}

/// A control message between workers. The receiving worker learns the sender's index with it.
#[derive(Debug, Clone)]
pub enum Inter {
    /// A track was published on the sender: every worker learns it (its directory of remote
    /// tracks), whether or not it hosts members of `room` yet.
    ProducerAdded {
        room: String,
        key: ProducerKey,
        kind: Kind,
    },
    /// The track is gone (its publisher left): proxies and their consumers go too.
    ProducerRemoved { key: ProducerKey },
    /// The sender now has consumers of the track: relay its packets over the link to it.
    Subscribe { key: ProducerKey },
    /// The sender's last consumer of the track left: stop relaying.
    Unsubscribe { key: ProducerKey },
    /// A consumer on the sender needs a keyframe: of one simulcast layer, or of the track.
    Keyframe { key: ProducerKey, layer: Option<u8> },
}

/// One worker's ends of the rings: one sending end toward each other worker, one receiving end
/// from each.
pub struct RelayLinks {
    index: usize,
    /// `tx[w]`: toward worker `w` (`None` for ourselves).
    tx: Vec<Option<rtrb::Producer<Relayed>>>,
    /// (sending worker, receiving end).
    rx: Vec<(usize, rtrb::Consumer<Relayed>)>,
    /// Workers that got packets since the last [`RelayLinks::take_wakes`] (bit per worker).
    wakes: u64,
}

/// Most workers a mesh supports (the wake set is one `u64`).
pub const MAX_WORKERS: usize = 64;

impl RelayLinks {
    /// A lone worker: nothing to relay to.
    pub fn single() -> Self {
        RelayLinks {
            index: 0,
            tx: vec![None],
            rx: Vec::new(),
            wakes: 0,
        }
    }

    /// This worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of workers in the mesh.
    pub fn workers(&self) -> usize {
        self.tx.len()
    }

    /// The links to every other worker of the mesh.
    pub fn others(&self) -> impl Iterator<Item = Link> + '_ {
        let me = self.index;
        (0..self.tx.len())
            .filter(move |w| *w != me)
            .map(Link::Worker)
    }

    /// Queues one packet for link `to`. Gives it back when the ring toward `to` is full or
    /// `to` is not a peer (the caller drops and counts it).
    #[inline]
    // Handed back by value on purpose: boxing it would allocate per packet.
    #[allow(clippy::result_large_err)]
    pub fn push(&mut self, to: Link, relayed: Relayed) -> Result<(), Relayed> {
        let Link::Worker(to) = to;
        let Some(Some(tx)) = self.tx.get_mut(to) else {
            return Err(relayed);
        };
        tx.push(relayed).map_err(|rtrb::PushError::Full(r)| r)?;
        self.wakes |= 1 << to;
        Ok(())
    }

    /// The workers that were sent packets since the last call (bit per worker), cleared.
    pub fn take_wakes(&mut self) -> u64 {
        std::mem::take(&mut self.wakes)
    }

    /// True when a packet waits in one of the rings toward this worker.
    pub fn pending(&self) -> bool {
        self.rx.iter().any(|(_, rx)| !rx.is_empty())
    }

    /// Takes the next waiting packet from ring `i` of [`RelayLinks::inbound`], with the link it
    /// came over.
    #[inline]
    pub fn pop(&mut self, i: usize) -> Option<(Link, Relayed)> {
        let (from, rx) = self.rx.get_mut(i)?;
        rx.pop().ok().map(|r| (Link::Worker(*from), r))
    }

    /// Number of inbound rings.
    pub fn inbound(&self) -> usize {
        self.rx.len()
    }
}

/// Builds the rings between `workers` workers; entry `i` belongs to worker `i`.
///
/// # Panics
/// If `workers` is 0 or more than [`MAX_WORKERS`] (a configuration error caught at start).
pub fn mesh(workers: usize, capacity: usize) -> Vec<RelayLinks> {
    assert!(
        (1..=MAX_WORKERS).contains(&workers),
        "1 to {MAX_WORKERS} workers"
    );
    let mut links: Vec<RelayLinks> = (0..workers)
        .map(|index| RelayLinks {
            index,
            tx: (0..workers).map(|_| None).collect(),
            rx: Vec::with_capacity(workers - 1),
            wakes: 0,
        })
        .collect();
    for from in 0..workers {
        for to in 0..workers {
            if from == to {
                continue;
            }
            let (tx, rx) = rtrb::RingBuffer::new(capacity);
            links[from].tx[to] = Some(tx);
            links[to].rx.push((from, rx));
        }
    }
    links
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::session::test_media_id;
    use crate::ParticipantId;

    fn relayed(seq: u64, payload: &Arc<[u8]>) -> Relayed {
        Relayed {
            key: ProducerKey {
                owner: ParticipantId(1),
                media: test_media_id("0"),
            },
            packet: Packet::test(test_media_id("0"), seq, 0, payload.clone()),
        }
    }

    #[test]
    fn packets_cross_in_order_share_the_payload_and_drop_when_full() {
        let mut links = mesh(3, 4);
        let payload: Arc<[u8]> = Arc::from(&[1u8, 2, 3][..]);
        let (a, rest) = links.split_at_mut(1);
        let a = &mut a[0];
        for seq in 0..4 {
            assert!(a.push(Link::Worker(1), relayed(seq, &payload)).is_ok());
        }
        assert!(
            a.push(Link::Worker(1), relayed(4, &payload)).is_err(),
            "full ring"
        );
        assert!(
            a.push(Link::Worker(0), relayed(5, &payload)).is_err(),
            "no ring to ourselves"
        );
        assert!(
            a.push(Link::Worker(7), relayed(6, &payload)).is_err(),
            "no such worker"
        );
        assert_eq!(a.take_wakes(), 0b010);
        assert_eq!(a.take_wakes(), 0, "cleared");
        assert_eq!(Arc::strong_count(&payload), 5, "shared, never copied");

        let b = &mut rest[0];
        assert!(b.pending());
        assert!(!rest[1].pending(), "worker 2 got nothing");
        let b = &mut rest[0];
        let from_a = (0..b.inbound()).find(|i| b.rx[*i].0 == 0).unwrap();
        let seqs: Vec<u64> = std::iter::from_fn(|| b.pop(from_a))
            .map(|(link, r)| {
                assert_eq!(link, Link::Worker(0));
                r.packet.seq
            })
            .collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
        assert!(!b.pending());
        assert_eq!(Arc::strong_count(&payload), 1);
    }

    #[test]
    fn a_single_worker_relays_nowhere() {
        let mut l = RelayLinks::single();
        let payload: Arc<[u8]> = Arc::from(&[0u8][..]);
        assert!(l.push(Link::Worker(0), relayed(0, &payload)).is_err());
        assert!(!l.pending());
        assert_eq!(l.workers(), 1);
    }
}
