//! # bench: benchmarks and load tools for GAX
//!
//! - `benches/`: criterion benches of the media hot path (fan-out, relay between workers,
//!   rewriting, layer choice). They drive `sfu_core::testing::InMemoryRoom` (sfu-core's
//!   feature `testing`): str0m clients around a worker core, without sockets.
//! - `gax-loadgen`: whole-server load with real WebRTC clients (webrtc-rs), against GAX or
//!   Janus; `gax-chatload`: the messenger under WebSocket load; `gax-benchtable`: the
//!   side-by-side table.
//!
//! [`report`] holds what the whole-server load generator (`gax-loadgen`) records and how runs
//! are shown: the JSON run, its PNG plot, and the side-by-side table against Janus.

pub mod report;
