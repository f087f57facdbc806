//! The `fanout` bench's timed loop without criterion, for instruction counts under callgrind:
//! `N` subscribers on one worker, `M` publisher packets in chunks of 64 (the subscribers get
//! what was sent and everyone's timers run between chunks, as in the bench).
//!
//! ```sh
//! cargo build --release -p bench --example fanout_loop
//! valgrind --tool=callgrind --toggle-collect='*WorkerCore*handle_datagram*' \
//!   --toggle-collect='*WorkerCore*handle_timeouts*' \
//!   $CARGO_TARGET_DIR/release/examples/fanout_loop 10 640
//! ```
//!
//! The cost per packet is the difference of two runs with different `M` divided by the
//! difference in `M` (setup and the first packets cancel out).

use std::time::Duration;

use sfu_core::testing::InMemoryRoom;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: fanout_loop N M"))
        .collect();
    let [n, m] = args[..] else {
        eprintln!("usage: fanout_loop SUBSCRIBERS PACKETS");
        std::process::exit(2);
    };
    let mut room = InMemoryRoom::spanning(n, &[], 1).expect("the room connects");
    room.advance(Duration::from_millis(50)).expect("settle");
    let first = room.publisher_packet().expect("publisher packet");
    let out = room.forward_collect(&first);
    room.deliver(out).expect("deliver");
    room.settle().expect("settle");
    let mut out = Vec::new();
    let mut left = m;
    while left > 0 {
        let k = left.min(64);
        let batch: Vec<_> = (0..k)
            .map(|_| room.publisher_packet().expect("publisher packet"))
            .collect();
        out.clear();
        for p in &batch {
            room.server_work(std::hint::black_box(p));
            room.output_into(&mut out);
        }
        room.deliver(std::mem::take(&mut out)).expect("deliver");
        room.settle().expect("settle");
        left -= k;
    }
}
