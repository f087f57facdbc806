//! Fuzz entry points for what the front door parses from the network: the `/ws` JSON of every
//! session kind, the NUL scan of JSON bodies (checked against serde_json as an oracle), the
//! HTTP Range header, and the WHIP/WHEP offer checks. Each takes arbitrary bytes and must not
//! panic; libFuzzer drives them from `fuzz/` (`scripts/fuzz`), and `tests/fuzz_corpora.rs`
//! replays the checked-in corpora through them as ordinary tests.

use media_store::ByteRange;

/// A `/ws` text frame as each session kind reads it (call, messenger, watch party).
pub fn ws_message(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::protocol::parse(text);
    let _ = crate::ws::chat::is_hello(text);
    let _ = crate::ws::chat::is_client_message(text);
    let _ = crate::ws::watch::protocol::is_watch(text);
    let _ = crate::ws::watch::protocol::is_client_message(text);
}

/// The NUL scan agrees with a full parse: valid JSON has a NUL in a string (or a key) exactly
/// when [`crate::extract::json_has_nul`] says so.
pub fn json_nul(data: &[u8]) {
    let scanned = crate::extract::json_has_nul(data);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    assert_eq!(
        scanned,
        has_nul(&value),
        "json_has_nul disagrees on {value}"
    );
}

/// The Range header: whatever parses resolves, against any size, to a range inside the file.
pub fn range(data: &[u8]) {
    let (size, header) = match data.split_first() {
        Some((&n, rest)) => (u64::from(n) * 1000 + rest.len() as u64, rest),
        None => return,
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let Ok(range) = ByteRange::parse(header) else {
        return;
    };
    if let Ok(r) = range.resolve(size) {
        assert!(
            r.start <= r.end && r.end < size,
            "{header:?} of {size}: {r:?}"
        );
        assert_eq!(r.len(), r.end - r.start + 1);
    }
}

/// The WHIP/WHEP checks of an offer and an answer (plain text scans of SDP).
pub fn sdp_checks(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::whip::sends_media(text);
    let _ = crate::whip::accepts_media(text);
}
