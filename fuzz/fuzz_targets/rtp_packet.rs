#![no_main]
//! str0m's rtp_packet parser (GAX's vendored copy, third_party/str0m).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = str0m::_internal_test_exports::fuzz::rtp_packet(data);
});
