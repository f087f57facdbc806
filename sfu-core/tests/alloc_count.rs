//! Heap allocations on the steady forwarding path, counted with a counting global allocator
//! while packets flow through an in-memory room (decrypt once, fan out, encrypt per
//! subscriber), on one worker and with the room spread over two workers (the packet crosses
//! the relay ring to the second worker's proxy producer). The test pins today's figure: an
//! added allocation per packet or per subscriber on the path, or on the hop between workers,
//! makes it fail.
//!
//! What remains is inside str0m: each encrypted output datagram is a fresh `Vec` (its
//! `Transmit` API), plus the bookkeeping its send queue does per written packet. Our own code
//! (demux, routing, layer choice, rewriting, the payload handed to every subscriber as one
//! shared `Arc<[u8]>`) adds none; the figures are in bench/README.md.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use sfu_core::testing::InMemoryRoom;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per RTP datagram sent to a subscriber, counted over `packets` packets after a
/// warm-up. Only the server's work is counted (receive, decrypt, route, rewrite, encrypt, timers);
/// making the publisher's packets and delivering the output to the subscribers (so their
/// transport feedback keeps the bandwidth estimate honest) happen outside the counted region.
fn allocations_per_output(subscribers: usize, packets: usize, workers: usize) -> f64 {
    let mut room = InMemoryRoom::spanning(subscribers, &[], workers).expect("room connects");
    let mut allocs = 0u64;
    let mut outputs = 0usize;
    for i in 0..(600 + packets) {
        let p = room.publisher_packet().unwrap();
        let before = ALLOCS.load(Ordering::Relaxed);
        room.server_work(&p);
        let after = ALLOCS.load(Ordering::Relaxed);
        let out = room.take_output();
        // The first 600 packets warm queues and caches up to their steady size.
        if i >= 600 {
            allocs += after - before;
            outputs += out
                .iter()
                .filter(|(_, d)| sfu_core::testing::is_media_rtp(d))
                .count();
        }
        room.deliver(out).unwrap();
        if i % 16 == 0 {
            room.settle().unwrap();
        }
    }
    assert!(
        outputs >= packets * subscribers * 9 / 10,
        "only {outputs} of {} packets went out",
        packets * subscribers
    );
    allocs as f64 / outputs as f64
}

/// Measured (deterministic: simulated clock, same packets): N=1 3.49 (3.50 on one worker since
/// the per-write str0m flush moved some timer work to its deadlines), N=10 1.28 allocations
/// per output datagram. One more allocation per packet
/// raises N=1 by 1.0 and N=10 by 0.1; one more per subscriber raises N=10 by 1.0. The limits
/// sit just above today's figures so either fails. Raise them only with a reason in the commit.
const MAX_PER_OUTPUT_N1: f64 = 3.55;
const MAX_PER_OUTPUT_N10: f64 = 1.33;

/// The allocator counts every thread: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check(workers: usize) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let one = allocations_per_output(1, 256, workers);
    let ten = allocations_per_output(10, 256, workers);
    eprintln!("allocations per output packet on {workers} worker(s): N=1 {one:.2}, N=10 {ten:.2}");
    assert!(
        one <= MAX_PER_OUTPUT_N1,
        "N=1: {one:.2} allocations per output packet"
    );
    assert!(
        ten <= MAX_PER_OUTPUT_N10,
        "N=10: {ten:.2} allocations per output packet"
    );
}

#[test]
fn forwarding_allocates_only_inside_the_per_subscriber_encryption() {
    check(1);
}

/// The publisher on worker 0; with N=1 the only subscriber is on worker 1 (every packet
/// crosses), with N=10 five are local and five remote. The hop adds nothing.
#[test]
fn the_hop_between_workers_allocates_nothing() {
    check(2);
}
