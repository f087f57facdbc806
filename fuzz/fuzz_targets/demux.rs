#![no_main]
//! sfu_core::fuzzing::demux (GAX's own parser; its invariants are in that function).
libfuzzer_sys::fuzz_target!(|data: &[u8]| sfu_core::fuzzing::demux(data));
