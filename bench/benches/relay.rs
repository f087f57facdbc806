//! The hop between workers on its own: one relayed packet (a `Copy` descriptor plus the
//! payload's `Arc`) pushed into the bounded ring toward another worker and popped there.
//!
//! - `relay/same_thread`: push then pop on one thread: the cost of the ring operations and the
//!   refcount bump and drop, without any cache line moving between cores.
//! - `relay/cross_thread`: this thread pushes, a second thread (the "other worker") spins
//!   popping; the figure is packets per second through the ring, cache-line transfers
//!   included. A full ring makes the pusher retry here (the server drops and counts instead).
//!   Needs two cores to mean anything.
//!
//! Run: `cargo bench -p bench --bench relay`

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sfu_core::link::Link;
use sfu_core::producer::ProducerKey;
use sfu_core::relay::{mesh, Relayed, RELAY_CAPACITY};
use sfu_core::session::MediaId;
use sfu_core::session::Packet;
use sfu_core::ParticipantId;

/// A relayed packet as the server makes them: a 1200-byte payload, shared.
fn relayed(payload: &Arc<[u8]>, seq: u64) -> Relayed {
    Relayed {
        key: ProducerKey {
            owner: ParticipantId(1),
            media: MediaId::from_sdp("0"),
        },
        packet: Packet {
            media: MediaId::from_sdp("0"),
            rid: None,
            layer: 0,
            simulcast: false,
            pt: 96,
            codec: None,
            seq,
            timestamp: seq as u32 * 3000,
            marker: false,
            audio_level: None,
            voice_activity: None,
            arrival: Instant::now(),
            vp8: None,
            payload: payload.clone(),
        },
    }
}

fn relay(c: &mut Criterion) {
    let payload: Arc<[u8]> = Arc::from(vec![0u8; 1200]);
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(1));

    let mut links = mesh(2, RELAY_CAPACITY);
    let (a, b) = links.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    let template = relayed(&payload, 0);
    group.bench_function("same_thread", |bench| {
        bench.iter(|| {
            assert!(a.push(Link::Worker(1), black_box(template.clone())).is_ok());
            black_box(b.pop(0).expect("the packet is there"));
        })
    });

    // The other worker: pops as fast as it can and counts.
    let mut links = mesh(2, RELAY_CAPACITY);
    let mut receiver = links.pop().expect("worker 1");
    let mut sender = links.pop().expect("worker 0");
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (received, stop) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match receiver.pop(0) {
                    Some(r) => {
                        black_box(r);
                        received.fetch_add(1, Ordering::Release);
                    }
                    None => std::hint::spin_loop(),
                }
            }
        })
    };
    let mut pushed = 0u64;
    group.bench_function("cross_thread", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                let mut r = template.clone();
                r.packet.seq = i;
                // Retry on a full ring (the server drops instead; here we want the rate).
                while let Err(back) = sender.push(Link::Worker(1), r) {
                    r = back;
                    std::hint::spin_loop();
                }
            }
            pushed += iters;
            while received.load(Ordering::Acquire) < pushed {
                std::hint::spin_loop();
            }
            start.elapsed()
        })
    });
    stop.store(true, Ordering::Relaxed);
    let _ = thread.join();
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = relay
}
criterion_main!(benches);
