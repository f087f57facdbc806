//! The simulcast layer decision, without str0m: `LayerSelector::update` as the worker calls it
//! for each consumer at every re-evaluation (every 250 ms per producer, and at once when an
//! input changes), and the per-packet `SimulcastIn` bookkeeping it reads.
//!
//! Run: `cargo bench -p bench --bench layers`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sfu_core::layers::{Inputs, LayerSelector, LayerState, SimulcastIn};

/// Three active layers as a browser sends them, measured.
fn typical(rendered_width: Option<u32>, budget: Option<u64>) -> Inputs {
    let layer = |bitrate, width| LayerState {
        active: true,
        bitrate,
        width: Some(width),
    };
    Inputs {
        layers: [
            layer(150_000, 320),
            layer(500_000, 640),
            layer(1_500_000, 1280),
        ],
        rendered_width,
        budget,
        pinned: None,
    }
}

fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("layer_selector");
    group.throughput(Throughput::Elements(1));
    let now = Instant::now();

    // The common case: a periodic re-evaluation that changes nothing (a 640-pixel tile, a
    // 2 Mbit/s estimate: h stays).
    group.bench_function("update_stable", |b| {
        let inputs = typical(Some(640), Some(2_000_000));
        let mut s = LayerSelector::new();
        s.update(now, &inputs);
        b.iter(|| black_box(s.update(now, black_box(&inputs))))
    });

    // A consumer's first decision.
    group.bench_function("update_initial", |b| {
        let inputs = typical(None, Some(2_000_000));
        b.iter(|| black_box(LayerSelector::new().update(now, black_box(&inputs))))
    });

    // Every call changes the target: the tile alternates between 300 and 1280 pixels.
    group.bench_function("update_switch", |b| {
        let small = typical(Some(300), None);
        let big = typical(Some(1280), None);
        let mut s = LayerSelector::new();
        s.update(now, &small);
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            let inputs = if i.is_multiple_of(2) { &small } else { &big };
            black_box(s.update(now, black_box(inputs)))
        })
    });

    // An upward move for bandwidth held by the hysteresis (the estimate allows f, the
    // selector waits).
    group.bench_function("update_held_up", |b| {
        let low = typical(None, Some(300_000));
        let high = typical(None, Some(5_000_000));
        let mut s = LayerSelector::new();
        s.update(now, &low);
        b.iter(|| black_box(s.update(now, black_box(&high))))
    });
    group.finish();
}

/// What the worker does per incoming simulcast packet before the consumers: record it, check
/// whether a re-evaluation is due, snapshot the layer states.
fn per_packet(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulcast_in");
    group.throughput(Throughput::Elements(1));
    group.bench_function("on_packet+eval_due+states", |b| {
        let mut sim = SimulcastIn::default();
        let mut now = Instant::now();
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            now += Duration::from_micros(250);
            let layer = (i % 3) as u8;
            sim.on_packet(now, layer, black_box(1_000), None);
            let eval = sim.eval_due(now);
            black_box((eval, sim.states(now)))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = update, per_packet
}
criterion_main!(benches);
