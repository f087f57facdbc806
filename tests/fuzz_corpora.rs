//! Replays the fuzz corpora checked in under `fuzz/corpus/<target>/` through the same entry
//! points libFuzzer drives (`scripts/fuzz`, docs/fuzzing.md), as ordinary tests: seconds, not
//! minutes. Every crash a fuzzer finds is added to its corpus, so it stays fixed.

use std::path::Path;

/// Every file of `fuzz/corpus/<target>` (at least one: an empty corpus would test nothing).
fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "{target}: empty corpus");
}

/// str0m's own fuzz entry points return `Option<()>` (`None`: the input was refused).
macro_rules! str0m_target {
    ($name:ident) => {
        |data: &[u8]| {
            let _ = str0m::_internal_test_exports::fuzz::$name(data);
        }
    };
}

#[test]
fn rtp_packet() {
    replay("rtp_packet", str0m_target!(rtp_packet));
}

#[test]
fn rtcp() {
    replay("rtcp", str0m_target!(rtcp));
}

#[test]
fn stun() {
    replay("stun", str0m_target!(stun));
}

#[test]
fn sdp_offer() {
    replay("sdp", str0m_target!(sdp_offer));
    replay("sdp", str0m_target!(sdp_answer));
}

#[test]
fn demux() {
    replay("demux", sfu_core::fuzzing::demux);
}

#[test]
fn vp8() {
    replay("vp8", sfu_core::fuzzing::vp8);
}

#[test]
fn rewriter() {
    replay("rewriter", sfu_core::fuzzing::rewriter);
}

#[test]
fn ws_message() {
    replay("ws_message", signaling::fuzzing::ws_message);
}

#[test]
fn json_nul() {
    replay("json_nul", signaling::fuzzing::json_nul);
}

#[test]
fn range() {
    replay("range", signaling::fuzzing::range);
}

#[test]
fn sdp_checks() {
    replay("sdp", signaling::fuzzing::sdp_checks);
}
