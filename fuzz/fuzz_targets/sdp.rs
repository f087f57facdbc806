#![no_main]
//! str0m's SDP parser, as an offer and as an answer.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = str0m::_internal_test_exports::fuzz::sdp_offer(data);
    let _ = str0m::_internal_test_exports::fuzz::sdp_answer(data);
});
