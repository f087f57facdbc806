//! Which SRTP protection profile DTLS negotiates between a str0m client and the GAX server.
//!
//! str0m logs the profile at debug level on both ends of every DTLS association. This test
//! captures that log. It lives in its own test binary (one process, one test) because
//! tracing's per-callsite interest cache is shared by every thread of a process: a scoped
//! subscriber in a unit test running in parallel with other tests can miss the event.
//!
//! Run with `cargo test -p sfu-core --test srtp_profile -- --nocapture` to see the profile.

use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn negotiated_srtp_profile_is_aes_gcm() {
    let log = Capture::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        sfu_core::testing::InMemoryRoom::new(1).expect("room connects");
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let profiles: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("keying material and profile: ").nth(1))
        .map(str::trim)
        .collect();
    println!("negotiated SRTP profiles (one per DTLS end): {profiles:?}");
    // Publisher and subscriber, each logged by the client and the server end.
    assert_eq!(profiles.len(), 4, "{profiles:?}");
    assert!(profiles.iter().all(|p| *p == profiles[0]), "{profiles:?}");
    assert!(profiles[0].contains("GCM"), "{profiles:?}");
}
