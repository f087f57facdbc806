//! Per-packet header work of the simulcast path, without str0m or SRTP: the per-consumer
//! `Rewriter` (sequence number, RTP timestamp, VP8 picture id / TL0PICIDX continuity) and the
//! VP8 payload descriptor parser that runs once per incoming simulcast packet.
//!
//! Run: `cargo bench -p bench --bench rewrite`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sfu_core::rewrite::Rewriter;
use sfu_core::vp8;

/// A VP8 payload as a browser sends it: X=1, I=1 (15-bit picture id), L=1, T=1; on a
/// keyframe's first packet the 10-byte keyframe header (1280x720); 1000 bytes in all.
fn vp8_payload(keyframe: bool, pid: u16, tl0: u8) -> Vec<u8> {
    let mut p = vec![0u8; 1_000];
    p[..6].copy_from_slice(&[0x90, 0xe0, 0x80 | (pid >> 8) as u8, pid as u8, tl0, 0x20]);
    if keyframe {
        p[6..16].copy_from_slice(&[0x50, 0x2f, 0x01, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02]);
    } else {
        p[6] = 0x11;
    }
    p
}

fn rewrite(c: &mut Criterion) {
    let mut group = c.benchmark_group("rewrite");
    group.throughput(Throughput::Elements(1));
    let t0 = Instant::now();

    // The steady state of a simulcast consumer: forwarding one layer after a switch, so every
    // packet gets new sequence number, timestamp and VP8 ids (offsets are not zero).
    group.bench_function("rewrite_vp8", |b| {
        let mut r = Rewriter::new();
        r.switch_to(0, 500, 1_000, t0, 90_000, Some((7, 1)));
        r.rewrite(500, 1_000, t0, Some((7, 1)));
        r.switch_to(2, 60_000, 4_000_000, t0, 90_000, Some((20_000, 100)));
        let (mut seq, mut ts, mut pid) = (60_000u64, 4_000_000u32, 20_000u16);
        b.iter(|| {
            seq += 1;
            if seq.is_multiple_of(4) {
                ts = ts.wrapping_add(3_000);
                pid = (pid + 1) & 0x7fff;
            }
            black_box(r.rewrite(
                black_box(seq),
                black_box(ts),
                t0,
                black_box(Some((pid, 100))),
            ))
        })
    });

    // A single-stream track (audio, or video without simulcast): sequence and timestamp only.
    group.bench_function("rewrite_plain", |b| {
        let mut r = Rewriter::new();
        r.switch_to(0, 100, 0, t0, 48_000, None);
        let (mut seq, mut ts) = (100u64, 0u32);
        b.iter(|| {
            seq += 1;
            ts = ts.wrapping_add(960);
            black_box(r.rewrite(black_box(seq), black_box(ts), t0, None))
        })
    });

    // A layer switch and the first packet of the new layer, alternating between two layers
    // (the work done once per switch).
    group.bench_function("switch_to+rewrite", |b| {
        let mut r = Rewriter::new();
        r.switch_to(0, 100, 0, t0, 90_000, Some((1, 1)));
        r.rewrite(100, 0, t0, Some((1, 1)));
        let mut i = 0u64;
        let mut now = t0;
        b.iter(|| {
            i += 1;
            now += Duration::from_millis(33);
            let layer = (i % 2) as u8 * 2;
            let seq = 10_000 * u64::from(layer) + i;
            let ts = (i as u32).wrapping_mul(3_000);
            let ids = Some(((i as u16) & 0x7fff, i as u8));
            r.switch_to(layer, black_box(seq), ts, now, 90_000, ids);
            black_box(r.rewrite(seq, ts, now, ids))
        })
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("vp8_parse");
    group.throughput(Throughput::Elements(1));
    let delta = vp8_payload(false, 1234, 56);
    let key = vp8_payload(true, 1234, 56);
    let minimal = [0x10u8, 0x01, 0, 0, 0, 0, 0, 0];
    group.bench_function("delta", |b| b.iter(|| vp8::parse(black_box(&delta))));
    group.bench_function("keyframe", |b| b.iter(|| vp8::parse(black_box(&key))));
    group.bench_function("minimal_descriptor", |b| {
        b.iter(|| vp8::parse(black_box(&minimal)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = rewrite, parse
}
criterion_main!(benches);
