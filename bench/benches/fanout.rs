//! Fan-out: one publisher RTP packet to N subscribers, SRTP included, all in memory.
//!
//! Each iteration feeds one 1200-byte VP8 SRTP datagram from the publisher to
//! `WorkerCore::handle_datagram` (SRTP decrypt, route, per-subscriber sequence rewrite and
//! SRTP encrypt in each subscriber's str0m session), runs `handle_timeouts` as the worker
//! thread does, and moves the outbox into a buffer. Untimed, after each chunk, the subscribers
//! receive those datagrams, so their TWCC feedback keeps the bandwidth estimate and pacer honest
//! (otherwise the pacer holds packets past the timed region and the figure flatters us). Throughput is `Elements(N)`, so criterion's
//! elem/s is datagrams out per second on one core. No socket send is included.
//!
//! Outside the timed region (`iter_custom`): the publisher client encrypts the packets in
//! chunks of [`CHUNK`] ahead of time, and after each chunk the room is settled (STUN, RTCP and
//! the clients' timers), so sessions stay alive however long criterion runs.
//!
//! `fanout_two_workers/N` is the same room spread over two workers (the publisher and half
//! the subscribers on one, the other half on the other, see `InMemoryRoom::spanning`), both
//! run one after the other on this one thread: the figure is datagrams out per second of CPU
//! for the whole server, so the gap to `fanout/N` is what the hop between workers costs
//! (a push and a pop on the relay ring, the proxy producer's own pass). On a real server the
//! two workers run on two cores at once.
//!
//! Run: `cargo bench -p bench --bench fanout`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sfu_core::testing::{is_media_rtp, InMemoryRoom, PublisherPacket, PACKET_INTERVAL};

/// Subscriber counts measured. 1000 only under `cargo bench` (its setup, 1000 DTLS handshakes in
/// memory, is too slow for the one-shot test run `cargo test --all-targets` makes of benches).
const SUBSCRIBERS: [usize; 4] = [1, 10, 100, 1000];

fn measured(n: usize) -> bool {
    n < 1000 || std::env::args().any(|a| a == "--bench")
}

/// Publisher packets prepared per timed chunk: 64 x 4 ms = 256 ms of simulated time between
/// two settles.
const CHUNK: u64 = 64;

fn fanout(c: &mut Criterion) {
    run(c, "fanout", 1, &SUBSCRIBERS);
    run(c, "fanout_two_workers", 2, &[10, 100]);
}

fn run(c: &mut Criterion, name: &str, workers: usize, sizes: &[usize]) {
    let mut group = c.benchmark_group(name);
    for n in sizes.iter().copied().filter(|n| measured(*n)) {
        let setup = Instant::now();
        let mut room = InMemoryRoom::spanning(n, &[], workers).expect("the room connects");
        // Let the keyframe requests and first RTCP go by, then check the path once.
        room.advance(Duration::from_millis(50)).expect("settle");
        let first = room.publisher_packet().expect("publisher packet");
        eprintln!(
            "{name}/{n}: room set up in {:.1} s",
            setup.elapsed().as_secs_f64()
        );
        let out = room.forward_collect(&first);
        let rtp = out.iter().filter(|(_, d)| is_media_rtp(d)).count();
        assert_eq!(rtp, n, "one publisher packet must give {n} RTP datagrams");
        room.settle().expect("settle");

        let stats_before = (room.stats().rtp_in.get(), room.total(|s| &s.rtp_forwarded));
        let mut packets_in = 0u64;
        let mut datagrams_out = 0u64;
        let mut batch: Vec<PublisherPacket> = Vec::with_capacity(CHUNK as usize);
        let mut out: Vec<(std::net::SocketAddr, Vec<u8>)> = Vec::new();

        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let k = left.min(CHUNK);
                    batch.clear();
                    for _ in 0..k {
                        batch.push(room.publisher_packet().expect("publisher packet"));
                    }
                    out.clear();
                    let start = Instant::now();
                    for p in &batch {
                        room.server_work(black_box(p));
                        room.output_into(&mut out);
                    }
                    elapsed += start.elapsed();
                    datagrams_out += black_box(out.len()) as u64;
                    // Untimed: the subscribers receive what was sent, so their transport
                    // feedback keeps each session's bandwidth estimate (and pacer) honest.
                    room.deliver(std::mem::take(&mut out)).expect("deliver");
                    room.settle().expect("settle");
                    left -= k;
                }
                packets_in += iters;
                elapsed
            })
        });

        let rtp_in = room.stats().rtp_in.get() - stats_before.0;
        let forwarded = room.total(|s| &s.rtp_forwarded) - stats_before.1;
        eprintln!(
            "{name}/{n}: {packets_in} publisher packets ({} ms apart, simulated) -> \
             {datagrams_out} datagrams out ({:.3} per packet; RTP forwarded {forwarded} for \
             {rtp_in} in = {:.3} per packet; dropped: not ready {}, codec {}, rejected {})",
            PACKET_INTERVAL.as_millis(),
            datagrams_out as f64 / packets_in.max(1) as f64,
            forwarded as f64 / rtp_in.max(1) as f64,
            room.total(|s| &s.dropped_not_ready),
            room.total(|s| &s.dropped_codec),
            room.total(|s| &s.dropped_rejected),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = fanout
}
criterion_main!(benches);
